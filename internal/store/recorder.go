package store

import (
	"context"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/events"
)

// AddAudit appends records to the unit; the recorder (audit.Recorder) is
// the only caller outside the stores and their tests. A record that stands
// for a security event (events.FromAudit) also appends that event to the
// outbox, so that the event commits with its record or not at all.
func (u *Unit) AddAudit(recs ...*audit.Record) {
	u.Audit = append(u.Audit, recs...)
	var evs []events.Event
	for _, r := range recs {
		evs = append(evs, events.FromAudit(r)...)
	}
	if len(evs) > 0 {
		u.Parts = append(u.Parts, Outbox{Events: evs})
	}
}

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
