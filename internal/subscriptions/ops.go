package subscriptions

// The Backport IG's operations on a Subscription: $status (its status and
// event count) and $events (the notifications of past events, from the
// outbox). Both run for a caller, through the caller's repository: the
// Subscription is read (decided and audited) before anything is said of
// it, and each resource an answer carries is read by the caller.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/events"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
)

// Bounds of one $events answer.
const (
	maxEvents  = 100
	maxScanned = 10000
)

// readSub loads the Subscription as the caller may see it: s is nil
// when it could not be read, and err then says why; otherwise err is
// Parse's.
func (m *Manager) readSub(ctx context.Context, repo *records.Repo, id string) (*Sub, string, error) {
	res, err := repo.Read(ctx, "Subscription", id)
	if err != nil {
		return nil, "", err
	}
	doc, err := docOfJSON(res.JSON)
	if err != nil {
		return nil, "", err
	}
	s, perr := Parse(repo.Subject().Tenant, id, res.Version, doc)
	return s, s.Status, perr
}

// sentBy is how many notifications this node sent for a Subscription.
func (m *Manager) sentBy(tenant, id string) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.running[ReceiverName(tenant, id)]; r != nil {
		return r.sink.sent.Load()
	}
	return 0
}

// StatusOf answers $status: a searchset Bundle of the SubscriptionStatus.
func (m *Manager) StatusOf(ctx context.Context, repo *records.Repo, id string) ([]byte, error) {
	s, status, err := m.readSub(ctx, repo, id)
	if s == nil {
		return nil, err // the read's: refused, not found, gone
	}
	return s.bundle("searchset", "query-status", status, m.base, m.sentBy(s.Tenant, id), time.Now(), nil)
}

// EventsQuery selects $events: event numbers (outbox positions) from
// Since to Until (0: no bound), and the content wanted ("" : the
// Subscription's).
type EventsQuery struct {
	Since, Until int64
	Content      string
}

// EventsOf answers $events: a history Bundle (query-event) of the
// notifications of the events selected, at most maxEvents of them.
func (m *Manager) EventsOf(ctx context.Context, repo *records.Repo, id string, q EventsQuery) ([]byte, error) {
	s, status, err := m.readSub(ctx, repo, id)
	if s == nil {
		return nil, err
	}
	if err != nil {
		return nil, problem.New(problem.ErrInvalid, "invalid", "this Subscription cannot be delivered: "+errText(err))
	}
	switch q.Content {
	case "":
	case Empty, IDOnly, FullResource:
		c := *s
		c.Payload, c.Content = "application/fhir+json", q.Content
		s = &c
	default:
		return nil, problem.New(problem.ErrInvalid, "invalid", "content must be empty, id-only or full-resource")
	}
	evs, err := m.pastEvents(ctx, repo, s, q)
	if err != nil {
		return nil, err
	}
	return s.bundle("history", "query-event", status, m.base, m.sentBy(s.Tenant, id), time.Now(), evs)
}

func (m *Manager) pastEvents(ctx context.Context, repo *records.Repo, s *Sub, q EventsQuery) ([]Event, error) {
	var out []Event
	after := max(q.Since-1, 0)
	for scanned := 0; scanned < maxScanned && len(out) < maxEvents; {
		batch, err := m.owners.OutboxAfter(ctx, after, 500)
		if err != nil {
			return nil, err
		}
		if len(batch) == 0 {
			break
		}
		for _, e := range batch {
			if q.Until > 0 && e.Seq > q.Until || len(out) == maxEvents {
				return out, nil
			}
			after = e.Seq
			scanned++
			ev, ok, err := m.pastEvent(ctx, repo, s, e)
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, ev)
			}
		}
	}
	return out, nil
}

// pastEvent is the notification event of e for the caller, if any.
func (m *Manager) pastEvent(ctx context.Context, repo *records.Repo, s *Sub, e store.OutboxEvent) (Event, bool, error) {
	if e.Tenant != s.Tenant || e.Type != events.ResourceCreated && e.Type != events.ResourceUpdated && e.Type != events.ResourceDeleted {
		return Event{}, false, nil
	}
	env, err := events.Parse(e.JSON)
	if err != nil || env.Data.ResourceType != s.Query.Type {
		return Event{}, false, nil
	}
	f := &Focus{Type: env.Data.ResourceType, ID: env.Data.ID, Action: env.Data.Action}
	fmt.Sscan(env.Data.VersionID, &f.Version)
	k := &sink{m: m, sub: s}
	if ok, err := k.matches(ctx, f, nil); err != nil || !ok {
		return Event{}, false, err
	}
	res, err := repo.VRead(ctx, f.Type, f.ID, f.Version)
	allowed := err == nil || errors.Is(err, problem.ErrGone)
	if err != nil && !allowed && !errors.Is(err, problem.ErrForbidden) && !errors.Is(err, problem.ErrNotFound) {
		return Event{}, false, err
	}
	switch content := s.content(); {
	case !allowed && content != FullResource:
		return Event{}, false, nil
	case allowed && content == FullResource && res != nil:
		f.JSON = res.JSON
	}
	return Event{Number: e.Seq, At: e.Time, Focus: f}, true, nil
}

// Base is the FHIR base URL that notifications name resources under.
func (m *Manager) Base() string { return m.base }

// BindingTTL is how long a websocket binding token lives.
const BindingTTL = time.Minute

// Issuer signs a short-lived access token for a subject (authn).
type Issuer func(subj authz.Subject, ttl time.Duration) (token string, err error)

// BindingToken answers $get-ws-binding-token for Subscription id: the
// caller must be able to read it (decided and audited as a read), and it
// must be a websocket Subscription; the token is a short-lived access
// token of the caller (no broader than the caller), usable only until
// expiry to bind on wsURL.
func (m *Manager) BindingToken(ctx context.Context, repo *records.Repo, id string, issue Issuer, wsURL string) ([]byte, error) {
	s, _, err := m.readSub(ctx, repo, id)
	if s == nil {
		return nil, err
	}
	if err != nil || s.Channel != ChannelWS {
		return nil, problem.New(problem.ErrInvalid, "invalid", "$get-ws-binding-token needs a Subscription with a websocket channel")
	}
	tok, err := issue(repo.Subject(), BindingTTL)
	if err != nil {
		return nil, problem.New(problem.ErrUnavailable, "transient", "no binding token could be issued")
	}
	return json.Marshal(map[string]any{
		"resourceType": "Parameters",
		"parameter": []any{
			map[string]any{"name": "token", "valueString": tok},
			map[string]any{"name": "expiration", "valueDateTime": time.Now().Add(BindingTTL).UTC().Format(time.RFC3339)},
			map[string]any{"name": "subscription", "valueString": id},
			map[string]any{"name": "websocket-url", "valueUrl": wsURL},
		},
	})
}
