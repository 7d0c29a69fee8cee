package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wardhealth/ward/internal/problem"
)

// Change is a unit of work that can carry audit records to its commit (the
// store's unit). AddAudit appends records to it.
type Change interface {
	AddAudit(recs ...*Record)
}

// Committer commits a change, with the audit records it carries, in one
// durable transaction. It is the one method the recorder writes through;
// the stores satisfy it.
type Committer[C Change] interface {
	Commit(ctx context.Context, c C) error
}

// Recorder is the only way records reach the ledger. Its one failure rule
// is fail closed: when the ledger cannot be written the caller gets an
// error wrapping problem.ErrUnavailable and must disclose nothing. The
// write runs under its own context and timeout, detached from the caller's
// cancellation, so a client that goes away cannot keep its attempt out of
// the ledger (STYLE.md, convention 3).
type Recorder[C Change] struct {
	c       Committer[C]
	fresh   func() C
	kept    error
	timeout time.Duration
}

// DefaultTimeout bounds one ledger write.
const DefaultTimeout = 15 * time.Second

// NewRecorder returns a recorder writing through c. fresh returns an empty
// change, for records alone. kept is the error class of a change whose
// precondition failed: the committer still wrote its records (with a
// failure outcome), so such an error is returned as is for the caller to
// decide on. A zero timeout is DefaultTimeout.
func NewRecorder[C Change](c Committer[C], fresh func() C, kept error, timeout time.Duration) *Recorder[C] {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Recorder[C]{c: c, fresh: fresh, kept: kept, timeout: timeout}
}

// Record makes recs durable, alone.
func (r *Recorder[C]) Record(ctx context.Context, recs ...*Record) error {
	return r.Commit(ctx, r.fresh(), recs...)
}

// Commit makes change and recs durable in one transaction: both or
// neither.
func (r *Recorder[C]) Commit(ctx context.Context, change C, recs ...*Record) error {
	change.AddAudit(recs...)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
	defer cancel()
	err := r.c.Commit(cctx, change)
	switch {
	case err == nil:
		return nil
	case r.kept != nil && errors.Is(err, r.kept):
		return err
	default:
		return fmt.Errorf("%w: audit ledger: %w", problem.ErrUnavailable, err)
	}
}

// Within returns a recorder like r whose writes may take up to d (a large
// transaction bundle).
func (r *Recorder[C]) Within(d time.Duration) *Recorder[C] {
	c := *r
	c.timeout = d
	return &c
}
