package subscriptions

// The manager keeps one dispatch receiver per deliverable Subscription,
// in step with the Subscriptions stored (every node polls; the
// dispatcher's leases make one node deliver each), and writes their
// status: requested -> active (after the backport handshake), error with
// the last error when a delivery fails, active again once one succeeds;
// off (or deleted) stops delivery.

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/wardhealth/ward/internal/authn"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
)

// Owners lists the recorded owners of Subscriptions (the SQL stores).
type Owners interface {
	SubscriptionOwners(ctx context.Context) ([]store.SubscriptionRow, error)
	// OutboxHead is the outbox's largest seq (one index probe).
	OutboxHead(ctx context.Context) (int64, error)
	OutboxAfter(ctx context.Context, after int64, limit int) ([]store.OutboxEvent, error)
}

// Options configure a Manager.
type Options struct {
	Records *records.Service
	Owners  Owners
	// Add and Remove run receivers (the dispatcher's methods).
	Add    func(s *Receiver)
	Remove func(name string)
	// Holds says whether this node holds a receiver's lease (the
	// dispatcher's Holds): only the holder sends heartbeats. nil: none.
	Holds func(name string) bool
	// Base is the FHIR base URL notifications name resources under.
	Base string
	// Client sends rest-hook notifications (nil: 10 s timeout, no
	// redirects).
	Client *http.Client
	Log    *slog.Logger
}

// Receiver is a Subscription's dispatch receiver (a dispatch.Sink).
type Receiver = sink

// Manager keeps the receivers of Subscriptions.
type Manager struct {
	rec    *records.Service
	owners Owners
	add    func(s *Receiver)
	remove func(name string)
	holds  func(name string) bool
	base   string
	client *http.Client
	log    *slog.Logger
	hub    *Hub
	// envs are the envelopes of recent events, parsed once (sink.go).
	envs envCache

	mu      sync.Mutex
	running map[string]*running
}

type running struct {
	sink    *sink
	version int64
	doc     map[string]any
	status  string
	lastErr string
	config  string
}

// New returns a Manager; Run keeps it in step.
func New(o Options) *Manager {
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second, Transport: transport(),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{rec: o.Records, owners: o.Owners, add: o.Add, remove: o.Remove, holds: o.Holds, base: o.Base, client: o.Client,
		log: o.Log, hub: newHub(), running: map[string]*running{}}
	m.hub.follow = m.follow
	return m
}

// idlePerHost is how many idle connections to one receiving host the
// rest-hook client keeps: one per Subscription that posts to it at once.
// Go's default keeps two, so with a hundred Subscriptions to one host
// (an integration engine, the benchmark's loopback receiver) nearly
// every notification opened a new connection and closed it after.
const idlePerHost = 256

// transport is the rest-hook client's: the default transport's settings
// (proxy, dial and TLS timeouts, HTTP/2) with idlePerHost.
func transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 4 * idlePerHost
	t.MaxIdleConnsPerHost = idlePerHost
	return t
}

// Hub is where websocket clients bind to Subscriptions.
func (m *Manager) Hub() *Hub { return m.hub }

// Run syncs every interval, and sends heartbeats, until ctx ends.
func (m *Manager) Run(ctx context.Context, every time.Duration) {
	done := make(chan struct{})
	defer func() { <-done }()
	go func() { defer close(done); m.heartbeats(ctx, time.Second) }()
	for {
		if err := m.Sync(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("subscriptions sync", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// Sync starts, replaces and stops receivers to match the Subscriptions
// stored now.
func (m *Manager) Sync(ctx context.Context) error {
	rows, err := m.owners.SubscriptionOwners(ctx)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, r := range rows {
		name := ReceiverName(r.Tenant, r.ID)
		seen[name] = true
		if err := m.syncOne(ctx, r); err != nil && ctx.Err() == nil {
			m.log.Warn("subscription not loaded", "subscription", r.ID, "error", err.Error())
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for name := range m.running {
		if !seen[name] {
			m.stopLocked(name)
		}
	}
	return nil
}

func (m *Manager) syncOne(ctx context.Context, r store.SubscriptionRow) error {
	name := ReceiverName(r.Tenant, r.ID)
	m.mu.Lock()
	cur := m.running[name]
	known := int64(0)
	if cur != nil {
		known = cur.version
	}
	m.mu.Unlock()
	v, err := m.rec.Subscription(ctx, r.Tenant, r.ID, known)
	if errors.Is(err, store.ErrNotFound) {
		v, err = &records.SubscriptionVersion{Deleted: true}, nil
	}
	if err != nil {
		return err
	}
	if v.Deleted {
		m.stop(name)
		return nil
	}
	if v.Doc == nil {
		return nil // unchanged
	}
	s, perr := Parse(r.Tenant, r.ID, v.Version, v.Doc)
	if s.Status == "off" || s.Status == "" {
		m.stop(name)
		return nil
	}
	if perr != nil {
		m.stop(name)
		m.setStatus(ctx, &running{version: v.Version, doc: v.Doc, status: s.Status}, s, "error", errText(perr))
		return nil
	}
	m.start(ctx, s, r.Owner, v)
	return nil
}

// config is what makes a receiver: a change of anything else (status,
// error) keeps it running.
func config(s *Sub, owner []byte) string {
	b, _ := json.Marshal([]any{s.Criteria, s.Topic, s.Channel, s.Endpoint, s.Headers, s.Payload, s.Content, string(owner)})
	return string(b)
}

func (m *Manager) start(ctx context.Context, s *Sub, owner []byte, v *records.SubscriptionVersion) {
	name := ReceiverName(s.Tenant, s.ID)
	cfg := config(s, owner)
	m.mu.Lock()
	cur := m.running[name]
	if cur != nil && cur.config == cfg {
		cur.version, cur.doc, cur.status = v.Version, v.Doc, s.Status
		m.mu.Unlock()
		return
	}
	m.mu.Unlock()
	head, err := m.owners.OutboxHead(ctx)
	if err != nil {
		m.log.Warn("subscription not started", "subscription", s.ID, "error", err.Error())
		return
	}
	k := &sink{m: m, sub: s, owner: owner, start: head}
	k.last.Store(time.Now().UnixNano())
	m.mu.Lock()
	r := &running{sink: k, version: v.Version, doc: v.Doc, status: s.Status, config: cfg}
	m.running[name] = r
	m.mu.Unlock()
	if s.Status == "requested" {
		// A failed handshake leaves it in error; deliveries go on, and
		// the first that succeeds makes it active.
		if err := m.handshake(ctx, s); err != nil {
			m.setStatus(ctx, r, s, "error", errText(err))
		} else {
			m.setStatus(ctx, r, s, "active", "")
		}
	}
	m.add(k)
}

// handshake is the Backport IG's: a handshake Bundle to a rest-hook
// endpoint of a Subscription with a payload before it becomes active.
func (m *Manager) handshake(ctx context.Context, s *Sub) error {
	if s.Channel != ChannelRestHook || s.Payload == "" {
		return nil
	}
	b, err := s.Bundle("handshake", m.base, 0, 0, time.Now(), nil)
	if err != nil {
		return err
	}
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return m.post(hctx, s, b)
}

func (m *Manager) stop(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopLocked(name)
}

func (m *Manager) stopLocked(name string) {
	if _, ok := m.running[name]; ok {
		m.remove(name)
		delete(m.running, name)
	}
}

// failed and delivered move a Subscription to error (with the error) and
// back to active.
func (m *Manager) failed(ctx context.Context, s *Sub, err error) {
	m.transition(ctx, s, "error", errText(err))
}

func (m *Manager) delivered(ctx context.Context, s *Sub) { m.transition(ctx, s, "active", "") }

func (m *Manager) transition(ctx context.Context, s *Sub, status, lastErr string) {
	m.mu.Lock()
	r := m.running[ReceiverName(s.Tenant, s.ID)]
	same := r == nil || r.status == status && r.lastErr == lastErr || r.sink.sub != s
	m.mu.Unlock()
	if !same {
		m.setStatus(ctx, r, s, status, lastErr)
	}
}

// setStatus writes status and error into the Subscription (a new version
// by the subscription manager, which keeps the recorded owner). A
// concurrent change of the Subscription wins: the next sync sees it.
func (m *Manager) setStatus(ctx context.Context, r *running, s *Sub, status, lastErr string) {
	m.mu.Lock()
	doc := cloneDoc(r.doc)
	version := r.version
	r.status, r.lastErr = status, lastErr
	m.mu.Unlock()
	doc["status"] = status
	if lastErr != "" {
		doc["error"] = lastErr
	} else {
		delete(doc, "error")
	}
	res := &fhir.Resource{Type: "Subscription", ID: s.ID, Doc: doc}
	repo := m.rec.For(authz.Subject{Tenant: s.Tenant, ID: records.SubscriptionsActor, Role: authz.RoleAdmin,
		Scopes: []string{authn.DefaultScope}}, "subscriptions")
	out, _, err := repo.Update(context.WithoutCancel(ctx), res, &version)
	if err != nil {
		m.log.Warn("subscription status not written", "subscription", s.ID, "error", errText(err))
		return
	}
	m.mu.Lock()
	r.version, r.doc = out.Version, doc
	m.mu.Unlock()
}

func cloneDoc(d map[string]any) map[string]any {
	b, err := fhir.Marshal(d)
	if err == nil {
		if res, err := fhir.Parse(b); err == nil {
			return res.Doc
		}
	}
	return map[string]any{"resourceType": "Subscription"}
}
