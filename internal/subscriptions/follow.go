package subscriptions

// Websocket pings on every node. A websocket client is connected to one
// node, and the receiver lease of its Subscription is held by one node,
// not necessarily the same. So pings do not come from the lease holder:
// every node that has clients bound to a websocket Subscription follows
// the outbox itself, from the moment the first client bound, decides
// each event as the receiver would (criteria, the owner's access now,
// audited), and pings its own clients. A ping is a nudge to search, not a
// log: a follower keeps its position in memory only, and a client that
// reconnects searches for what it missed.

import (
	"context"
	"time"

	"github.com/wardhealth/ward/internal/records"
)

// followPoll is how often a follower reads the outbox.
const followPoll = 25 * time.Millisecond

// follow pings the local clients of Subscription id of tenant until the
// returned stop is called.
func (m *Manager) follow(tenant, id string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	// The head is read before the bind is answered, so that every event
	// committed after "bound" is followed.
	hctx, hcancel := context.WithTimeout(ctx, 2*time.Second)
	pos, err := m.owners.OutboxHead(hctx)
	hcancel()
	known := err == nil
	go func() {
		defer close(done)
		for !known {
			head, err := m.owners.OutboxHead(ctx)
			if err == nil {
				pos, known = head, true
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(followPoll):
			}
		}
		for ctx.Err() == nil {
			pos = m.followOnce(ctx, tenant, id, pos)
			select {
			case <-ctx.Done():
			case <-time.After(followPoll):
			}
		}
	}()
	return func() { cancel(); <-done }
}

// followOnce pings for the events after pos and returns the new
// position; an error leaves it where the error was (tried again next
// poll).
func (m *Manager) followOnce(ctx context.Context, tenant, id string, pos int64) int64 {
	for {
		evs, err := m.owners.OutboxAfter(ctx, pos, 500)
		if err != nil || len(evs) == 0 {
			return pos
		}
		m.mu.Lock()
		r := m.running[ReceiverName(tenant, id)]
		m.mu.Unlock()
		for _, e := range evs {
			if r != nil && r.sink.sub.Channel == ChannelWS {
				if env := r.sink.relevant(e); env != nil {
					var d records.Deferred
					_, ok, err := r.sink.decide(ctx, e, env, nil, &owner{}, &d)
					if err == nil {
						err = m.rec.Flush(ctx, &d) // audited before the ping
					}
					if err != nil {
						return pos
					}
					if ok {
						m.hub.ping(tenant, id)
					}
				}
			}
			pos = e.Seq
		}
		if len(evs) < 500 {
			return pos
		}
	}
}
