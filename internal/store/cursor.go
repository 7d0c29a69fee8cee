package store

import "context"

// SaveCursor records how far a ledger consumer (the alert engine, a SIEM
// exporter) has read: the last sequence number it processed and its state
// (opaque bytes, ids and counters only, never PHI). Committed in the same
// unit as the ledger records the consumer writes (alerts), the cursor and
// its output are durable together: a restart neither loses nor repeats
// them. Saving a cursor is an upsert, never a conflict, unless Guarded:
// then the stored position must still be From (0: none saved yet), else
// the unit fails with ErrConflict, so that two nodes running the same
// consumer never both commit the output of one batch.
type SaveCursor struct {
	Name    string
	Seq     int64
	State   []byte
	Guarded bool
	From    int64
}

func (SaveCursor) part() {}

// Cursors reads the saved positions of ledger consumers.
type Cursors interface {
	// Cursor returns the saved position and state of the consumer name,
	// or seq 0 and nil state when it never saved one.
	Cursor(ctx context.Context, name string) (seq int64, state []byte, err error)
}
