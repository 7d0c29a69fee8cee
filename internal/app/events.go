package app

// Events out (issue #27): the dispatcher a serving node runs, and the
// operations of `ward events`.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/dispatch"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/subscriptions"
)

// eventsRunner is a serving node's dispatcher.
type eventsRunner struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	nats   *dispatch.NATS
	subs   *subscriptions.Manager
}

// startEvents starts the dispatcher when configured; stop waits for it.
func startEvents(cfg config.Events, st store.Store, km *keys.Manager, rec *records.Service, base string, log *slog.Logger) (*eventsRunner, error) {
	o, ok := st.(dispatch.Outbox)
	if !cfg.Dispatch || !ok {
		return nil, nil
	}
	host, _ := os.Hostname()
	d := dispatch.New(o, dispatch.Options{Owner: host + "/" + uuid.NewString(), MaxAttempts: cfg.MaxAttempts, Log: log})
	r := &eventsRunner{}
	if cfg.NATSURL != "" {
		s, err := dispatch.DialNATS(dispatch.NATSOptions{URL: cfg.NATSURL, Prefix: cfg.NATSPrefix, Name: "ward events " + host})
		if err != nil {
			return nil, err
		}
		r.nats = s
		d.Add(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Add(1)
	go func() { defer r.wg.Done(); d.Run(ctx) }()
	// phi.disclosed comes from the committed ledger, not the read path
	// (disclosed.go); the cursor is guarded, so every node may run it.
	disclosed := &DisclosureRunner{st: st}
	r.wg.Add(1)
	go func() { defer r.wg.Done(); disclosed.Run(ctx, 200*time.Millisecond, log) }()
	if ow, ok := st.(subscriptions.Owners); ok && rec != nil {
		m := subscriptions.New(subscriptions.Options{Records: rec, Owners: ow, Base: base, Log: log,
			Add: func(s *subscriptions.Receiver) { d.Add(s) }, Remove: d.Remove, Holds: d.Holds})
		r.subs = m
		r.wg.Add(1)
		go func() { defer r.wg.Done(); m.Run(ctx, cfg.WebhookSync) }()
	}
	if l, ok := st.(webhookLister); ok && km != nil {
		r.wg.Add(1)
		go func() { defer r.wg.Done(); syncWebhooks(ctx, d, l, km, cfg.WebhookSync, log.Warn) }()
	}
	return r, nil
}

func (r *eventsRunner) stop() {
	if r == nil {
		return
	}
	r.cancel()
	r.wg.Wait()
	if r.nats != nil {
		r.nats.Close()
	}
}

// EventsAdmin runs the `ward events` operations over an existing database.
type EventsAdmin struct {
	st store.Store
	o  dispatch.Outbox
	r  interface {
		Receivers(ctx context.Context) ([]store.Receiver, error)
		MarkReplay(ctx context.Context, receiver string, seq int64) (int64, error)
		DropDead(ctx context.Context, receiver string, seq int64) (int64, error)
	}
}

// OpenEvents opens the existing database of cfg for `ward events`.
func OpenEvents(ctx context.Context, cfg config.Config) (*EventsAdmin, error) {
	st, err := OpenExistingStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	e := &EventsAdmin{st: st}
	var ok1, ok2 bool
	e.o, ok1 = st.(dispatch.Outbox)
	e.r, ok2 = st.(interface {
		Receivers(ctx context.Context) ([]store.Receiver, error)
		MarkReplay(ctx context.Context, receiver string, seq int64) (int64, error)
		DropDead(ctx context.Context, receiver string, seq int64) (int64, error)
	})
	if !ok1 || !ok2 {
		st.Close()
		return nil, errors.New("this store has no outbox")
	}
	return e, nil
}

// Close closes the database.
func (e *EventsAdmin) Close() error { return e.st.Close() }

// Status writes the outbox depth and, per receiver, its lag (events and
// age of the oldest undelivered one), lease and dead letters.
func (e *EventsAdmin) Status(ctx context.Context, w io.Writer) error {
	s, err := e.o.OutboxStats(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "outbox: %d events, head seq %d\n", s.Rows, s.Head)
	rs, err := e.r.Receivers(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, r := range rs {
		age := "0s"
		if next, err := e.o.OutboxAfter(ctx, r.Pos, 1); err == nil && len(next) == 1 {
			age = now.Sub(next[0].Time).Round(time.Millisecond).String()
		}
		dl, err := e.o.DeadLetters(ctx, r.Name, false, 100000)
		if err != nil {
			return err
		}
		lease := "free"
		if r.LeaseUntil > now.UnixMicro() {
			lease = "held by " + r.LeaseOwner
		}
		fmt.Fprintf(w, "%s: position %d, lag %d events (oldest %s), delivered %d, dead letters %d, lease %s\n",
			r.Name, r.Pos, s.Head-r.Pos, age, r.Delivered, len(dl), lease)
	}
	return nil
}

// DeadLetters lists dead letters (of one receiver, "" : all).
func (e *EventsAdmin) DeadLetters(ctx context.Context, receiver string, w io.Writer) error {
	dls, err := e.o.DeadLetters(ctx, receiver, false, 100000)
	if err != nil {
		return err
	}
	for _, d := range dls {
		ev, err := e.o.OutboxEvent(ctx, d.Seq)
		id, typ := "?", "?"
		if err == nil {
			id, typ = ev.ID, ev.Type
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\tattempts=%d\treplay=%v\t%s\n", d.Receiver, d.Seq, id, typ, d.Attempts, d.Replay, d.LastError)
	}
	return nil
}

// Replay marks dead letters for delivery again (seq 0: all of receiver's,
// or all of every receiver's when receiver is "").
func (e *EventsAdmin) Replay(ctx context.Context, receiver string, seq int64) (int64, error) {
	return e.r.MarkReplay(ctx, receiver, seq)
}

// Drop deletes dead letters.
func (e *EventsAdmin) Drop(ctx context.Context, receiver string, seq int64) (int64, error) {
	return e.r.DropDead(ctx, receiver, seq)
}

// Tail writes the outbox's events (CloudEvents JSON, one a line) from
// after seq, following new ones until ctx ends.
func (e *EventsAdmin) Tail(ctx context.Context, after int64, w io.Writer) error {
	if after < 0 {
		s, err := e.o.OutboxStats(ctx)
		if err != nil {
			return err
		}
		after = s.Head
	}
	for ctx.Err() == nil {
		evs, err := e.o.OutboxAfter(ctx, after, 500)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, ev := range evs {
			fmt.Fprintf(w, "%s\t%s\n", strconv.FormatInt(ev.Seq, 10), ev.JSON)
			after = ev.Seq
		}
		if len(evs) == 0 {
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}
