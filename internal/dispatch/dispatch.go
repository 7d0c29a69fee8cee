// Package dispatch delivers the outbox (internal/events) to its receivers:
// the NATS JetStream sink and each webhook.
//
// Guarantees:
//   - At least once: a receiver's position in the outbox advances only
//     after the receiver acknowledged every event up to it, so a crash
//     (kill -9) at any point re-delivers at most the batch in flight.
//     Receivers drop duplicates by the event id (CloudEvents id,
//     Nats-Msg-Id, webhook-id).
//   - Order: each receiver takes the outbox in seq order, which is commit
//     order, so events of one patient (or resource) arrive in the order
//     they were committed. An event that fails blocks its receiver's later
//     events until it is delivered or dead-lettered; a replayed dead
//     letter arrives out of order.
//   - Retries back off exponentially with full jitter; after MaxAttempts
//     failed attempts the event is a dead letter for that receiver (listed,
//     replayed or dropped by `ward events dead-letters`).
//   - Isolation: each receiver has its own loop and its own circuit
//     breaker (sony/gobreaker), so a receiver that fails or times out
//     never delays another's deliveries.
//   - Leases: on one database several nodes share the receivers; a node
//     dispatches to a receiver only while it holds that receiver's lease
//     (a row updated atomically), renews it with every advance, and stops
//     sending before the lease ends, so no two nodes deliver one event
//     within a lease.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/wardhealth/ward/internal/store"
)

// Outbox is the store side the dispatcher uses (the SQL stores implement
// it).
type Outbox interface {
	OutboxAfter(ctx context.Context, after int64, limit int) ([]store.OutboxEvent, error)
	OutboxEvent(ctx context.Context, seq int64) (*store.OutboxEvent, error)
	OutboxStats(ctx context.Context) (store.OutboxStats, error)
	OutboxHead(ctx context.Context) (int64, error)
	ClaimReceiver(ctx context.Context, name, owner string, start int64, now, until time.Time) (store.Receiver, bool, error)
	AdvanceReceiver(ctx context.Context, name, owner string, pos, delivered int64, now, until time.Time) (bool, error)
	ReleaseReceiver(ctx context.Context, name, owner string) error
	DeadLetter(ctx context.Context, name, owner string, seq int64, attempts int, lastErr string, now, until time.Time) (bool, error)
	DeadLetters(ctx context.Context, receiver string, replayOnly bool, limit int) ([]store.DeadLetter, error)
	Replayed(ctx context.Context, receiver string, seq int64, delivered bool, lastErr string, now time.Time) error
}

// Signaler is implemented by an outbox that says when this process
// committed new events (the SQL stores): the tail reads them at once
// instead of at its next poll. Commits of other nodes are still found by
// polling.
type Signaler interface {
	OutboxSignal() <-chan struct{}
}

// Sink is one receiver. Deliver sends events in order and returns how many
// of them, from the first, the receiver acknowledged; err says why it
// stopped before the end. Its error text is stored with a dead letter and
// must hold no PHI (events hold none).
type Sink interface {
	Name() string
	Deliver(ctx context.Context, evs []store.OutboxEvent) (int, error)
}

// FromStart is implemented by a sink that must receive the whole outbox
// (the NATS stream) rather than start at its head when first seen (a new
// webhook).
type FromStart interface{ FromStart() bool }

// StartAfter is implemented by a sink that, when first seen, starts
// after a position it names (a FHIR Subscription: the outbox head when
// it was accepted, so that nothing committed after it said active is
// missed); 0 or less: the default.
type StartAfter interface{ StartAfter() int64 }

// Batcher is implemented by a sink that takes larger batches than the
// dispatcher's default (the NATS stream: a batch is one window of
// asynchronous publishes, and the pause between two batches, while the
// last acks come back, is what a larger batch amortises).
type Batcher interface{ Batch() int }

// Options tune the dispatcher; zero values take the defaults.
type Options struct {
	// Owner names this node in leases (unique per process).
	Owner string
	// Lease is how long a claim lasts; it is renewed with every advance.
	Lease time.Duration
	// Batch bounds the events read and sent at once.
	Batch int
	// MaxAttempts is how many failed deliveries make a dead letter.
	MaxAttempts int
	// BaseBackoff and MaxBackoff bound the retry delay (exponential,
	// full jitter).
	BaseBackoff, MaxBackoff time.Duration
	// Poll is how often an idle receiver looks for new events.
	Poll time.Duration
	// SaveEvery bounds how often a receiver's position is written: the
	// events a receiver took are recorded at most this often (and
	// before its lease is renewed, on a failure and when it stops), so
	// that many receivers taking a trickle of events do not each write
	// per event. A crash re-delivers at most this much (at least once).
	SaveEvery time.Duration
	// Timeout bounds one delivery.
	Timeout time.Duration
	// BreakerFailures consecutive failures open a receiver's breaker for
	// BreakerOpen.
	BreakerFailures uint32
	BreakerOpen     time.Duration
	// FromStart makes a new receiver start at the beginning of the outbox
	// instead of its head.
	FromStart bool
	Log       *slog.Logger
}

func (o *Options) defaults() {
	if o.Lease <= 0 {
		o.Lease = 15 * time.Second
	}
	if o.Batch <= 0 {
		o.Batch = 1000
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 8
	}
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = 50 * time.Millisecond
	}
	if o.SaveEvery <= 0 {
		o.SaveEvery = time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.BreakerFailures == 0 {
		o.BreakerFailures = 3
	}
	if o.BreakerOpen <= 0 {
		o.BreakerOpen = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Dispatcher runs one loop per sink.
type Dispatcher struct {
	o     Outbox
	opts  Options
	mu    sync.Mutex
	sinks map[string]*loop
	wg    sync.WaitGroup
	ctx   context.Context
	// stopped is set once Run's context has ended (under mu).
	stopped bool
	// tail holds the newest events for every loop (tail.go).
	tail tail
}

// New returns a dispatcher over o; Run starts it.
func New(o Outbox, opts Options) *Dispatcher {
	opts.defaults()
	return &Dispatcher{o: o, opts: opts, sinks: map[string]*loop{}}
}

// Run dispatches to every sink added (before or while it runs) until ctx
// ends, then releases its leases and returns.
func (d *Dispatcher) Run(ctx context.Context) {
	d.mu.Lock()
	d.ctx = ctx
	for _, l := range d.sinks {
		d.start(l)
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.tail.follow(ctx, d.o, max(d.opts.Poll/2, time.Millisecond), d.opts.Batch)
	}()
	d.mu.Unlock()
	<-ctx.Done()
	d.mu.Lock()
	d.stopped = true // no loop starts after this: Wait may begin
	d.mu.Unlock()
	d.wg.Wait()
}

// Add starts dispatching to s (a sink of the same name is replaced).
func (d *Dispatcher) Add(s Sink) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.sinks[s.Name()]; ok && old.cancel != nil {
		old.cancel()
	}
	batch := d.opts.Batch
	if b, ok := s.(Batcher); ok && b.Batch() > batch {
		batch = b.Batch()
	}
	l := &loop{d: d, sink: s, batch: batch, breaker: gobreaker.NewCircuitBreaker[int](gobreaker.Settings{
		Name:        s.Name(),
		MaxRequests: 1,
		Timeout:     d.opts.BreakerOpen,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= d.opts.BreakerFailures },
	})}
	d.sinks[s.Name()] = l
	if d.ctx != nil {
		d.start(l)
	}
}

// Remove stops dispatching to the sink named name.
func (d *Dispatcher) Remove(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if l, ok := d.sinks[name]; ok {
		if l.cancel != nil {
			l.cancel()
		}
		delete(d.sinks, name)
	}
}

// BreakerState names the state of a sink's breaker ("closed", "open",
// "half-open"; "" when unknown).
func (d *Dispatcher) BreakerState(name string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if l, ok := d.sinks[name]; ok {
		return l.breaker.State().String()
	}
	return ""
}

// Holds reports whether this node holds the lease of the sink named
// name now: only the holder delivers to it (and sends what else it
// needs, such as a Subscription's heartbeats).
func (d *Dispatcher) Holds(name string) bool {
	d.mu.Lock()
	l, ok := d.sinks[name]
	d.mu.Unlock()
	return ok && time.Now().UnixNano() < l.holds.Load()
}

func (d *Dispatcher) start(l *loop) {
	if d.stopped {
		return
	}
	ctx, cancel := context.WithCancel(d.ctx)
	l.cancel = cancel
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		l.run(ctx)
	}()
}

type loop struct {
	d       *Dispatcher
	sink    Sink
	breaker *gobreaker.CircuitBreaker[int]
	cancel  context.CancelFunc
	// batch bounds the events read and delivered at once.
	batch int

	pos        int64
	leaseUntil time.Time
	held       bool
	// holds mirrors the lease for other goroutines (Holds): its end in
	// Unix nanoseconds while held, else 0.
	holds    atomic.Int64
	attempts int
	// next is the batch read ahead while the previous one was being
	// delivered (nil: none); replayAt is when to look for replays next.
	next     *prefetch
	replayAt time.Time
	// claimed: a claim succeeded, so the receiver's row exists.
	claimed bool
	// unsaved counts the events taken since the position was last
	// written (at savedAt).
	unsaved int64
	savedAt time.Time
}

// save writes the position if events were taken since it was last
// written, renewing the lease; a lost lease or an error drops the hold.
func (l *loop) save(ctx context.Context, now time.Time) error {
	if l.unsaved == 0 || !l.held {
		return nil
	}
	o, opts := l.d.o, l.d.opts
	ok, err := o.AdvanceReceiver(ctx, l.sink.Name(), opts.Owner, l.pos, l.unsaved, now, now.Add(opts.Lease))
	l.unsaved = 0
	if err != nil || !ok {
		l.held = false // claim again (from the stored position) before sending
		return err
	}
	l.savedAt, l.leaseUntil = now, now.Add(opts.Lease)
	return nil
}

func (l *loop) run(ctx context.Context) {
	o, opts, name := l.d.o, l.d.opts, l.sink.Name()
	defer func() {
		if l.next != nil {
			<-l.next.done
			l.next = nil
		}
		if l.held {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = l.save(rctx, time.Now())
			_ = o.ReleaseReceiver(rctx, name, opts.Owner)
			cancel()
		}
	}()
	for ctx.Err() == nil {
		arrived := l.d.tail.signal()
		wait, err := l.step(ctx)
		if l.held {
			l.holds.Store(l.leaseUntil.UnixNano())
		} else {
			l.holds.Store(0)
		}
		if err != nil && ctx.Err() == nil {
			opts.Log.Warn("event dispatch", "receiver", name, "err", err.Error())
			wait = max(wait, opts.Poll)
		}
		if wait == opts.Poll && err == nil {
			// Idle: new events end the wait (see tail).
			select {
			case <-ctx.Done():
			case <-arrived:
			case <-time.After(wait):
			}
		} else if wait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
	}
}

// step does one round: hold the lease, send a batch (or a replay), and
// says how long to wait before the next.
func (l *loop) step(ctx context.Context) (time.Duration, error) {
	o, opts, name := l.d.o, l.d.opts, l.sink.Name()
	now := time.Now()
	// Renew the lease when a third of it is gone, and never send with
	// less than a third left: a delivery that outlives the lease could
	// overlap the next holder's.
	if l.unsaved > 0 && now.After(l.leaseUntil.Add(-2*opts.Lease/3)) {
		// Writing the position renews the lease: a claim would read the
		// stored (older) position back.
		if err := l.save(ctx, now); err != nil {
			return opts.Poll, err
		}
	}
	if !l.held || now.After(l.leaseUntil.Add(-2*opts.Lease/3)) {
		start := int64(0)
		// The start matters only to the claim that makes the receiver's
		// row; later claims keep its position, so the outbox head is
		// read only before the first.
		if fs, ok := l.sink.(FromStart); !l.claimed && !opts.FromStart && !(ok && fs.FromStart()) {
			head, err := o.OutboxHead(ctx)
			if err != nil {
				return opts.Poll, err
			}
			start = head
		}
		if sa, ok := l.sink.(StartAfter); ok && sa.StartAfter() > 0 {
			start = sa.StartAfter()
		}
		r, ok, err := o.ClaimReceiver(ctx, name, opts.Owner, start, now, now.Add(opts.Lease))
		if err != nil {
			l.held = false
			return opts.Poll, err
		}
		if !ok {
			l.held = false
			return opts.Lease / 3, nil
		}
		if !l.held || r.Pos != l.pos {
			l.attempts = 0
		}
		l.unsaved = 0 // the stored position is the one taken up
		l.held, l.claimed, l.pos, l.leaseUntil = true, true, r.Pos, now.Add(opts.Lease)
	}
	if now.After(l.replayAt) {
		// Replays are an operator's request: looked for every ten
		// polls, not before every batch.
		l.replayAt = now.Add(10 * opts.Poll)
		if n, err := l.replay(ctx); n > 0 || err != nil {
			return 0, err
		}
	}
	evs, cached, err := l.fetch(ctx)
	if err != nil {
		return opts.Poll, err
	}
	if len(evs) == 0 {
		if now.Sub(l.savedAt) >= opts.SaveEvery {
			return opts.Poll, l.save(ctx, now)
		}
		return opts.Poll, nil
	}
	if len(evs) == l.batch && !cached {
		// A full batch: more are likely waiting. Read the next while
		// this one is delivered; it is used only if this one is taken
		// whole.
		l.next = readAhead(ctx, o, evs[len(evs)-1].Seq, l.batch)
	}
	dctx, cancel := context.WithTimeout(ctx, min(opts.Timeout, time.Until(l.leaseUntil)-opts.Lease/3))
	n, derr := l.breaker.Execute(func() (int, error) {
		n, err := l.sink.Deliver(dctx, evs)
		if err == nil && n < len(evs) {
			err = fmt.Errorf("receiver took %d of %d events", n, len(evs))
		}
		return n, err
	})
	cancel()
	now = time.Now()
	if n > 0 {
		l.pos, l.attempts = evs[n-1].Seq, 0
		l.unsaved += int64(n)
	}
	if ctx.Err() != nil {
		return 0, nil // stopping: run saves the position, detached
	}
	if derr != nil || n > 0 && now.Sub(l.savedAt) >= opts.SaveEvery {
		if err := l.save(ctx, now); err != nil || !l.held {
			return opts.Poll, err
		}
	}
	if derr == nil {
		return 0, nil
	}
	if errors.Is(derr, gobreaker.ErrOpenState) || errors.Is(derr, gobreaker.ErrTooManyRequests) {
		return opts.BaseBackoff, nil // the breaker is open: no attempt was made
	}
	if ctx.Err() != nil {
		return 0, nil
	}
	l.attempts++
	failed := evs[n]
	if l.attempts >= opts.MaxAttempts {
		ok, err := o.DeadLetter(ctx, name, opts.Owner, failed.Seq, l.attempts, errText(derr), now, now.Add(opts.Lease))
		if err != nil {
			return opts.Poll, err
		}
		if !ok {
			l.held = false
			return 0, nil
		}
		opts.Log.Warn("event dead-lettered", "receiver", name, "seq", failed.Seq, "attempts", l.attempts)
		l.pos, l.leaseUntil, l.attempts = failed.Seq, now.Add(opts.Lease), 0
		return 0, nil
	}
	return backoff(opts.BaseBackoff, opts.MaxBackoff, l.attempts), nil
}

// prefetch is a batch being read ahead.
type prefetch struct {
	after int64
	done  chan struct{}
	evs   []store.OutboxEvent
	err   error
}

func readAhead(ctx context.Context, o Outbox, after int64, n int) *prefetch {
	p := &prefetch{after: after, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.evs, p.err = o.OutboxAfter(ctx, after, n)
	}()
	return p
}

// fetch returns the events after the position: the batch read ahead when
// it starts there, else the tail's when it covers the position (cached),
// else a fresh read.
func (l *loop) fetch(ctx context.Context) (evs []store.OutboxEvent, cached bool, err error) {
	if p := l.next; p != nil {
		l.next = nil
		<-p.done
		if p.after == l.pos && p.err == nil {
			return p.evs, false, nil
		}
	}
	if evs, ok := l.d.tail.after(l.pos, l.batch); ok {
		return evs, true, nil
	}
	evs, err = l.d.o.OutboxAfter(ctx, l.pos, l.batch)
	return evs, false, err
}

// replay delivers the dead letters an operator marked, one at a time.
func (l *loop) replay(ctx context.Context) (int, error) {
	o, opts, name := l.d.o, l.d.opts, l.sink.Name()
	dls, err := o.DeadLetters(ctx, name, true, 100)
	if err != nil || len(dls) == 0 {
		return 0, err
	}
	for i, dl := range dls {
		e, err := o.OutboxEvent(ctx, dl.Seq)
		if err != nil {
			return 0, err
		}
		dctx, cancel := context.WithTimeout(ctx, opts.Timeout)
		_, derr := l.breaker.Execute(func() (int, error) {
			n, err := l.sink.Deliver(dctx, []store.OutboxEvent{*e})
			if err == nil && n != 1 {
				err = errors.New("receiver did not take the event")
			}
			return n, err
		})
		cancel()
		if errors.Is(derr, gobreaker.ErrOpenState) || errors.Is(derr, gobreaker.ErrTooManyRequests) {
			return i, nil // not attempted: replay once the breaker lets a request through
		}
		if err := o.Replayed(ctx, name, dl.Seq, derr == nil, errText(derr), time.Now()); err != nil {
			return 0, err
		}
	}
	return len(dls), nil
}

// backoff is the delay before attempt n+1: a random duration up to
// base*2^(n-1), capped ("full jitter").
func backoff(base, maxd time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < maxd; i++ {
		d *= 2
	}
	d = min(d, maxd)
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}
