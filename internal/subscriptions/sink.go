package subscriptions

// The receiver of one Subscription: it takes the outbox in order (as
// every dispatch receiver does), keeps the resource events its criteria
// match, decides on its owner what each may carry, and sends it.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/events"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/topics"
)

// sink is the dispatch receiver of one Subscription. It is replaced when
// the Subscription's delivery settings change.
type sink struct {
	m     *Manager
	sub   *Sub
	owner []byte
	// sent counts notifications since this node started the receiver
	// (events-since-subscription-start).
	sent atomic.Int64
	// last is when something was last sent (Unix nanoseconds), for
	// heartbeats.
	last atomic.Int64
	// start is the outbox head when the receiver was made: it takes the
	// events committed after it.
	start int64
	// failing is set when a send failed and cleared when one succeeds:
	// while set, a batch decides (and audits) only its first
	// notification.
	failing atomic.Bool
}

// StartAfter: a new receiver takes what was committed after it was made
// (dispatch.StartAfter).
func (k *sink) StartAfter() int64 { return k.start }

// ReceiverName is the dispatch receiver of Subscription id of tenant.
func ReceiverName(tenant, id string) string { return "subscription:" + tenant + "/" + id }

func (k *sink) Name() string { return ReceiverName(k.sub.Tenant, k.sub.ID) }

// Deliver sends the notifications of evs in order. The criteria of
// every created or updated resource in evs are evaluated together first
// (records.MatchingIDs): one search for the batch, not one per event.
// Then every notification is decided on the owner as they are now, and
// the audit records of all their reads are committed in one ledger
// transaction (records.Deferred) before the first is sent: one wait for
// the single writer per batch, not one per notification. A receiver
// that is behind takes a batch of many notifications and, waiting once,
// catches up instead of falling further behind.
func (k *sink) Deliver(ctx context.Context, evs []store.OutboxEvent) (int, error) {
	sent := k.sent.Load()
	envs := make([]*events.Envelope, len(evs))
	var ids []string
	for i, e := range evs {
		env := k.relevant(e)
		envs[i] = env
		if env != nil && env.Data.Action != "delete" && (k.sub.Topic == "" || topics.Triggers(k.sub.Topic, env.Data.Action)) {
			ids = append(ids, env.Data.ID)
		}
	}
	var matched map[string]bool
	if len(ids) > 1 {
		m, err := k.m.rec.MatchingIDs(ctx, k.sub.Tenant, k.sub.Query, k.sub.Query.Type, ids)
		if err != nil {
			k.m.failed(ctx, k.sub, err)
			return 0, err
		}
		matched = m
	}
	o := &owner{} // decided at the batch's first notification
	for pos := 0; pos < len(evs); {
		notes, next, derr := k.decideFrom(ctx, evs, envs, pos, matched, o)
		for _, n := range notes {
			if err := k.send(ctx, evs[n.at], n.f); err != nil {
				k.failing.Store(true)
				k.m.failed(ctx, k.sub, err)
				return n.at, err
			}
			k.failing.Store(false)
		}
		if derr != nil {
			k.m.failed(ctx, k.sub, derr)
			return next, derr
		}
		pos = next
	}
	if k.sent.Load() != sent {
		// Only a notification the endpoint took says it works again.
		k.m.delivered(ctx, k.sub)
	}
	return len(evs), nil
}

// note is a decided notification: the index of its event and its focus.
type note struct {
	at int
	f  *Focus
}

// decideFrom decides the events of evs from pos on, in order, and
// commits the audit records of their reads in one ledger transaction
// before returning them: every one of them may then be sent. It stops
// at the first event that fails to decide (next is its index, err why;
// those before it are returned) and, while the endpoint is failing,
// after the first notification, so that a dead receiver's retries read
// and audit one notification each, not a whole batch. next is where
// the following round starts.
func (k *sink) decideFrom(ctx context.Context, evs []store.OutboxEvent, envs []*events.Envelope, pos int, matched map[string]bool, o *owner) (notes []note, next int, err error) {
	var d records.Deferred
	next = len(evs)
	for i := pos; i < len(evs); i++ {
		env := envs[i]
		if env == nil {
			continue
		}
		f, ok, derr := k.decide(ctx, evs[i], env, matched, o, &d)
		if derr != nil {
			next, err = i, derr
			break
		}
		if ok {
			notes = append(notes, note{i, f})
			if k.failing.Load() {
				next = i + 1
				break
			}
		}
	}
	if ferr := k.m.rec.Flush(ctx, &d); ferr != nil {
		// Nothing is sent that is not audited.
		return nil, pos, ferr
	}
	return notes, next, err
}

// owner is the Subscription's owner as decided once for a delivery
// batch (records.OwnerNow), when its first notification needs it (a
// batch with none costs no lookup): ok false when the owner has no
// access at all, err when it could not be decided.
type owner struct {
	decided bool
	subj    authz.Subject
	ok      bool
	err     error
}

// now decides o on first use.
func (o *owner) now(ctx context.Context, k *sink) *owner {
	if !o.decided {
		o.subj, o.ok, o.err = k.m.rec.OwnerNow(ctx, k.sub.Tenant, k.owner)
		o.decided = true
	}
	return o
}

// relevant is the envelope of a resource event of the Subscription's
// tenant and criteria type (nil: not one).
func (k *sink) relevant(e store.OutboxEvent) *events.Envelope {
	if e.Tenant != k.sub.Tenant {
		return nil
	}
	switch e.Type {
	case events.ResourceCreated, events.ResourceUpdated, events.ResourceDeleted:
	default:
		return nil
	}
	env := k.m.envs.parse(e)
	if env == nil || env.Data.ResourceType != k.sub.Query.Type {
		return nil
	}
	return env
}

// decide says whether a resource event is notified and with what focus:
// the topic's interactions, the criteria, and what the owner may read
// now (the read audited as the owner's). matched, when not nil, holds
// the criteria's answer for created and updated resources.
func (k *sink) decide(ctx context.Context, e store.OutboxEvent, env *events.Envelope, matched map[string]bool, o *owner, dr *records.Deferred) (*Focus, bool, error) {
	d := env.Data
	f := &Focus{Type: d.ResourceType, ID: d.ID, Action: d.Action}
	fmt.Sscan(d.VersionID, &f.Version)
	if k.sub.Topic != "" && !topics.Triggers(k.sub.Topic, f.Action) {
		return nil, false, nil
	}
	match, err := k.matches(ctx, f, matched)
	if err != nil || !match {
		return nil, false, err
	}
	allowed, body, err := k.m.read(ctx, o.now(ctx, k), dr, e.ID, f)
	if err != nil {
		return nil, false, err
	}
	content := k.sub.content()
	switch {
	case !allowed && content != FullResource:
		return nil, false, nil // nothing to withhold but the fact: send nothing
	case allowed && content == FullResource:
		f.JSON = body
	}
	return f, true, nil
}

// matches evaluates the criteria on the resource as it is now; a
// deletion, on the version before it (a deleted resource has no search
// rows of its own).
func (k *sink) matches(ctx context.Context, f *Focus, matched map[string]bool) (bool, error) {
	if f.Action == "delete" {
		return k.m.rec.MatchedBefore(ctx, k.sub.Tenant, k.sub.Query, f.Type, f.ID, f.Version)
	}
	if matched != nil {
		return matched[f.ID], nil
	}
	return k.m.rec.Matches(ctx, k.sub.Tenant, k.sub.Query, f.Type, f.ID)
}

func (k *sink) send(ctx context.Context, e store.OutboxEvent, f *Focus) error {
	n := k.sent.Add(1)
	k.last.Store(time.Now().UnixNano())
	if k.sub.Channel == ChannelWS {
		// Pings go out from every node with bound clients (follow.go),
		// not from the lease holder alone.
		return nil
	}
	var body []byte
	if k.sub.Payload != "" {
		var err error
		if body, err = k.sub.Bundle("event-notification", k.m.base, n, e.Seq, e.Time, f); err != nil {
			return err
		}
	}
	return k.m.post(ctx, k.sub, body)
}

// post sends one notification (nil body: an empty POST) with the
// Subscription's headers; a 2xx answer acknowledges it.
func (m *Manager) post(ctx context.Context, s *Sub, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Endpoint, bytes.NewReader(body))
	if err != nil {
		return errors.New("subscription endpoint: bad request")
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for _, h := range s.Headers {
		name, val, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(name), strings.TrimSpace(val))
	}
	resp, err := m.client.Do(req)
	if err != nil {
		// The endpoint is the owner's own configuration; keep the error
		// short and free of the URL.
		if ctx.Err() != nil {
			return errors.New("subscription endpoint: timed out")
		}
		return errors.New("subscription endpoint: unreachable")
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("subscription endpoint answered %d", resp.StatusCode)
	}
	return nil
}

// read decides, on the owner as they are now (o, decided for the
// batch), whether the notification may name and carry the focus,
// through the owner's records repository: the read is decided and
// audited as a read, its record kept in d until the batch's one ledger
// commit. body is the resource when allowed (nil for a deletion).
func (m *Manager) read(ctx context.Context, o *owner, d *records.Deferred, eventID string, f *Focus) (allowed bool, body []byte, err error) {
	if o.err != nil || !o.ok {
		return false, nil, o.err
	}
	res, err := m.rec.For(o.subj, "subscription-"+eventID).Defer(d).VRead(ctx, f.Type, f.ID, f.Version)
	switch {
	case err == nil:
		return true, res.JSON, nil
	case errors.Is(err, problem.ErrGone):
		return true, nil, nil // deleted, and the owner may know it
	case errors.Is(err, problem.ErrForbidden), errors.Is(err, problem.ErrNotFound):
		return false, nil, nil
	}
	return false, nil, err
}

// envCache keeps the envelopes of recent outbox events, parsed once for
// every Subscription's receiver rather than once per receiver (a hundred
// receivers read every event). Envelopes are never modified.
type envCache struct {
	mu sync.Mutex
	m  map[int64]*events.Envelope
}

// envCacheCap bounds the envelopes kept; when full, the cache starts
// over (receivers read the same recent events, so it refills at once).
const envCacheCap = 16384

// parse returns e's envelope (nil: not one).
func (c *envCache) parse(e store.OutboxEvent) *events.Envelope {
	c.mu.Lock()
	env, ok := c.m[e.Seq]
	c.mu.Unlock()
	if ok {
		return env
	}
	env, err := events.Parse(e.JSON)
	if err != nil {
		env = nil
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= envCacheCap {
		c.m = make(map[int64]*events.Envelope, 1024)
	}
	c.m[e.Seq] = env
	c.mu.Unlock()
	return env
}
