package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/wardhealth/ward/internal/events"
	"github.com/wardhealth/ward/internal/store"
)

// DisclosedCursor is the ledger cursor name of the phi.disclosed emitter.
const DisclosedCursor = "phi-disclosed"

// DisclosureRunner turns the ledger's disclosures into phi.disclosed
// events (events.Disclosed). Reads are Ward's hot path and commit their
// ledger records alone (on PostgreSQL in one statement): deriving the
// event from the committed ledger afterwards keeps the outbox off that
// path, and loses nothing, since the ledger is durable before any
// response leaves and the cursor commits with the events it covers.
type DisclosureRunner struct {
	st store.Store
	// Batch is the most records one Step reads (5000 when zero).
	Batch int
}

// NewDisclosureRunner returns the phi.disclosed emitter over a's ledger.
func (a *App) NewDisclosureRunner() *DisclosureRunner {
	return &DisclosureRunner{st: a.Store}
}

// Step appends the phi.disclosed events of one batch of ledger records
// after the cursor, with the cursor, in one transaction; it returns how
// many records it read and how many events it appended. The cursor is
// guarded: when another node committed the same batch first, the step is
// ErrConflict and commits nothing.
func (r *DisclosureRunner) Step(ctx context.Context) (read, emitted int, err error) {
	seq, _, err := r.st.Cursor(ctx, DisclosedCursor)
	if err != nil {
		return 0, 0, err
	}
	n := r.Batch
	if n <= 0 {
		n = 5000
	}
	batch, err := readAfter(ctx, r.st, seq, n)
	if err != nil || len(batch) == 0 {
		return 0, 0, err
	}
	var evs []events.Event
	for _, rec := range batch {
		if e, ok := events.Disclosed(rec); ok {
			evs = append(evs, e)
		}
	}
	parts := []store.Part{store.SaveCursor{Name: DisclosedCursor, Seq: batch[len(batch)-1].Seq, Guarded: true, From: seq}}
	if len(evs) > 0 {
		parts = append(parts, store.Outbox{Events: evs})
	}
	if err := r.st.Commit(ctx, &store.Unit{Parts: parts}); err != nil {
		return 0, 0, fmt.Errorf("phi.disclosed: commit: %w", err)
	}
	return len(batch), len(evs), nil
}

// Run steps until ctx ends: batch after batch while records wait, then
// every interval. A conflict (another node moved the cursor) is retried
// at once from the new cursor; other failures are logged and retried.
func (r *DisclosureRunner) Run(ctx context.Context, every time.Duration, log *slog.Logger) {
	for {
		n, _, err := r.Step(ctx)
		switch {
		case errors.Is(err, store.ErrConflict):
			continue
		case err != nil && ctx.Err() == nil:
			log.Warn("phi.disclosed emitter failed; retrying", "err", err)
		case n > 0 && err == nil:
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}
