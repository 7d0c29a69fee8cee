package dispatch

// The outbox's tail, read once for every receiver. With a hundred
// receivers (a Subscription each) every poll of every receiver was a
// query, thousands a second on an idle outbox, and every new event was
// read once per receiver. One reader now keeps the newest events in
// memory; a receiver that has caught up takes its next events from there
// (or learns that there are none) without a query, and only a receiver
// further behind than the tail holds reads the database itself.

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

// tailCap bounds the events kept (a few MiB).
const tailCap = 32768

type tail struct {
	mu sync.Mutex
	// evs are every outbox event with a seq in (from, head], in order:
	// the reader asks for seq > head, in seq order, which is commit
	// order, so nothing between two of them is missing.
	evs        []store.OutboxEvent
	from, head int64
	ok         bool // head was read
	// wake is closed (and replaced) when new events arrive, so that idle
	// receivers take them at once rather than at their next poll.
	wake chan struct{}
}

// signal is closed when events arrive after it was taken.
func (t *tail) signal() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.wake == nil {
		t.wake = make(chan struct{})
	}
	return t.wake
}

// after returns up to n events after pos and true when the tail covers
// pos (none: pos is the head as last read); false sends the caller to
// the database.
func (t *tail) after(pos int64, n int) ([]store.OutboxEvent, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.ok || pos < t.from || pos > t.head {
		return nil, false
	}
	i := sort.Search(len(t.evs), func(i int) bool { return t.evs[i].Seq > pos })
	// The slice shares the tail's array up to its own length only:
	// appends by the reader never write into it, and trimming copies.
	return t.evs[i:min(len(t.evs), i+n):min(len(t.evs), i+n)], true
}

// follow reads the outbox's new events every poll until ctx ends, and at
// once when the store signals a commit of this process (Signaler).
func (t *tail) follow(ctx context.Context, o Outbox, poll time.Duration, batch int) {
	var committed func() <-chan struct{}
	if s, ok := o.(Signaler); ok {
		committed = s.OutboxSignal
	}
	timer := time.NewTimer(poll)
	defer timer.Stop()
	for ctx.Err() == nil {
		// Taken before the read: a commit during it wakes the next wait.
		var sig <-chan struct{}
		if committed != nil {
			sig = committed()
		}
		if err := t.read(ctx, o, batch); err != nil {
			// Receivers read the database themselves meanwhile.
			t.mu.Lock()
			t.ok = false
			t.mu.Unlock()
		}
		timer.Reset(poll)
		select {
		case <-ctx.Done():
		case <-sig:
		case <-timer.C:
		}
	}
}

func (t *tail) read(ctx context.Context, o Outbox, batch int) error {
	t.mu.Lock()
	ok, head := t.ok, t.head
	t.mu.Unlock()
	if !ok {
		// The head alone: counting the rows (OutboxStats) scanned the
		// whole outbox, tens of milliseconds per 100,000 events.
		h, err := o.OutboxHead(ctx)
		if err != nil {
			return err
		}
		t.mu.Lock()
		t.evs, t.from, t.head, t.ok = nil, h, h, true
		t.mu.Unlock()
		head = h
	}
	for {
		evs, err := o.OutboxAfter(ctx, head, batch)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		t.mu.Lock()
		t.evs = append(t.evs, evs...)
		if extra := len(t.evs) - tailCap; extra > 0 {
			t.from = t.evs[extra-1].Seq
			t.evs = append([]store.OutboxEvent(nil), t.evs[extra:]...)
		}
		t.head = evs[len(evs)-1].Seq
		head = t.head
		if t.wake != nil {
			close(t.wake)
			t.wake = nil
		}
		t.mu.Unlock()
		if len(evs) < batch {
			return nil
		}
	}
}
