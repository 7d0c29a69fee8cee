package siem

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"time"

	"github.com/wardhealth/ward/internal/audit"
)

// Ledger reads the ledger after a seq (store.Ledger's AuditScan).
type Ledger interface {
	AuditScan(ctx context.Context, after int64, fn func(head audit.Head, records iter.Seq2[*audit.Record, error]) error) error
}

// Cursor persists how far a sink has been delivered.
type Cursor interface {
	Load(ctx context.Context) (int64, error)
	Save(ctx context.Context, seq int64) error
}

// Exporter delivers the ledger to one sink from its cursor.
type Exporter struct {
	Ledger Ledger
	Sink   Sink
	Cursor Cursor
	Batch  int // records per delivery (500 when zero)
}

// errFull stops a scan once a batch is full.
var errFull = errors.New("batch full")

// Step delivers at most one batch after the saved cursor and saves the
// new cursor; it returns how many records it delivered (0: caught up).
func (x *Exporter) Step(ctx context.Context) (int, error) {
	after, err := x.Cursor.Load(ctx)
	if err != nil {
		return 0, fmt.Errorf("siem %s: load cursor: %w", x.Sink.Name(), err)
	}
	n := x.Batch
	if n <= 0 {
		n = 500
	}
	batch := make([]*audit.Record, 0, n)
	err = x.Ledger.AuditScan(ctx, after, func(_ audit.Head, recs iter.Seq2[*audit.Record, error]) error {
		for r, err := range recs {
			if err != nil {
				return err
			}
			batch = append(batch, r)
			if len(batch) == n {
				return errFull
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFull) {
		return 0, fmt.Errorf("siem %s: read ledger: %w", x.Sink.Name(), err)
	}
	if len(batch) == 0 {
		return 0, nil
	}
	if err := x.Sink.Send(ctx, batch); err != nil {
		return 0, fmt.Errorf("siem %s: %w", x.Sink.Name(), err)
	}
	if err := x.Cursor.Save(ctx, batch[len(batch)-1].Seq); err != nil {
		return 0, fmt.Errorf("siem %s: save cursor: %w", x.Sink.Name(), err)
	}
	return len(batch), nil
}

// Run delivers until ctx ends: batch after batch while there are records,
// then every interval. A failure is logged (ids only) and retried after
// a backoff that doubles up to a minute.
func (x *Exporter) Run(ctx context.Context, every time.Duration, log *slog.Logger) {
	defer x.Sink.Close()
	wait, backoff := every, every
	for {
		n, err := x.Step(ctx)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			log.Warn("siem delivery failed; retrying", "sink", x.Sink.Name(), "err", err, "retry", backoff)
			wait, backoff = backoff, min(2*backoff, time.Minute)
		case n > 0:
			wait, backoff = 0, every
		default:
			wait, backoff = every, every
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		} else if ctx.Err() != nil {
			return
		}
	}
}
