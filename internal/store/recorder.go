package store

import (
	"context"

	"github.com/wardhealth/ward/internal/audit"
)

// AddAudit appends records to the unit; the recorder (audit.Recorder) is
// the only caller outside the stores and their tests.
func (u *Unit) AddAudit(recs ...*audit.Record) { u.Audit = append(u.Audit, recs...) }

// Committer is the write half of a Store: what the audit recorder writes
// through.
type Committer interface {
	// Commit writes u in one durable transaction, group-committed with
	// other concurrent units. See the package doc.
	Commit(ctx context.Context, u *Unit) error
}

// Recorder is the audit recorder over store units.
type Recorder = audit.Recorder[*Unit]

// NewRecorder returns the recorder that writes units through c. A unit
// whose precondition fails (ErrConflict) still commits its records, so that
// error reaches the caller as is; every other failure is
// problem.ErrUnavailable.
func NewRecorder(c Committer) *Recorder {
	return audit.NewRecorder[*Unit](c, func() *Unit { return &Unit{} }, ErrConflict, 0)
}
