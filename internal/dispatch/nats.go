package dispatch

// The NATS JetStream sink: one stream per tenant, subjects
// <prefix>.<tenant>.<type>, every publish acknowledged by the stream
// before the receiver's position moves, and Nats-Msg-Id set to the event
// id so that the stream drops a re-delivered event within its duplicate
// window.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wardhealth/ward/internal/store"
)

// NATS publishes events to JetStream.
type NATS struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	prefix  string
	dupes   time.Duration
	mu      sync.Mutex
	streams map[string]bool
}

// NATSOptions configure the sink.
type NATSOptions struct {
	URL string
	// Prefix is the first subject token (default "ward").
	Prefix string
	// Duplicates is the stream's deduplication window (default 2 min).
	Duplicates time.Duration
	// Name names the connection.
	Name string
}

// DialNATS connects the sink.
func DialNATS(o NATSOptions) (*NATS, error) {
	if o.Prefix == "" {
		o.Prefix = "ward"
	}
	if o.Duplicates <= 0 {
		o.Duplicates = 2 * time.Minute
	}
	if !validToken(o.Prefix) {
		return nil, fmt.Errorf("events: NATS prefix must be one subject token of letters, digits, '-' or '_'")
	}
	nc, err := nats.Connect(o.URL, nats.Name(o.Name), nats.Timeout(3*time.Second), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("events: connect to NATS: %w", err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(16384))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("events: JetStream: %w", err)
	}
	return &NATS{nc: nc, js: js, prefix: o.Prefix, dupes: o.Duplicates, streams: map[string]bool{}}, nil
}

// Close closes the connection.
func (s *NATS) Close() { s.nc.Close() }

// Name is the receiver name of the sink.
func (s *NATS) Name() string { return "nats" }

// FromStart: the stream receives the whole outbox, from its first event.
func (s *NATS) FromStart() bool { return true }

// SystemTenant is the subject token of events of no tenant (a new
// signing key): tenant ids cannot start with '_'.
const SystemTenant = "_system"

func token(tenant string) string {
	if tenant == "" {
		return SystemTenant
	}
	return tenant
}

// Subject is the subject of an event of tenant and type.
func (s *NATS) Subject(tenant, typ string) string { return s.prefix + "." + token(tenant) + "." + typ }

// StreamName is the stream of a tenant's events.
func (s *NATS) StreamName(tenant string) string {
	return strings.ToUpper(s.prefix) + "_EVENTS_" + token(tenant)
}

func validToken(t string) bool {
	if t == "" {
		return false
	}
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func (s *NATS) stream(ctx context.Context, tenant string) error {
	s.mu.Lock()
	ok := s.streams[tenant]
	s.mu.Unlock()
	if ok {
		return nil
	}
	if !validToken(token(tenant)) {
		return fmt.Errorf("tenant id is not a NATS subject token")
	}
	_, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       s.StreamName(tenant),
		Subjects:   []string{s.prefix + "." + token(tenant) + ".>"},
		Duplicates: s.dupes,
		Storage:    jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("create stream: %w", err)
	}
	s.mu.Lock()
	s.streams[tenant] = true
	s.mu.Unlock()
	return nil
}

// Deliver publishes evs asynchronously and waits for every ack in order:
// the whole batch is in flight at once (up to the connection's pending
// limit), and the position moves only once the stream acknowledged the
// events up to it.
func (s *NATS) Deliver(ctx context.Context, evs []store.OutboxEvent) (int, error) {
	futures := make([]jetstream.PubAckFuture, 0, len(evs))
	var perr error
	ready := ""
	for i, e := range evs {
		if i == 0 || e.Tenant != ready {
			if err := s.stream(ctx, e.Tenant); err != nil {
				perr = err
				break
			}
			ready = e.Tenant
		}
		// The header is built as a literal: its keys are already in
		// canonical form, and Header.Set would canonicalise them again
		// for every event.
		m := &nats.Msg{Subject: s.Subject(e.Tenant, e.Type), Data: e.JSON, Header: nats.Header{
			jetstream.MsgIDHeader: []string{e.ID},
			"Content-Type":        contentType,
		}}
		f, err := s.js.PublishMsgAsync(m)
		if err != nil {
			perr = fmt.Errorf("publish: %w", err)
			break
		}
		futures = append(futures, f)
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return i, fmt.Errorf("publish not acknowledged: %w", err)
		case <-ctx.Done():
			return i, fmt.Errorf("publish not acknowledged: %w", ctx.Err())
		}
	}
	return len(futures), perr
}

// contentType is every message's Content-Type (shared: never modified).
var contentType = []string{"application/cloudevents+json"}
