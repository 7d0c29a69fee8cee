package dispatch

// The NATS JetStream sink: one stream per tenant, subjects
// <prefix>.<tenant>.<type>, every publish acknowledged by the stream
// before the receiver's position moves, and Nats-Msg-Id set to the event
// id so that the stream drops a re-delivered event within its duplicate
// window.

import (
	"context"
	"fmt"
	"maps"
	"strconv"
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
	// last is the last sequence of each tenant's stream as this sink
	// knows it (absent: read it from the stream before the next chain).
	last map[string]uint64
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
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(window))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("events: JetStream: %w", err)
	}
	return &NATS{nc: nc, js: js, prefix: o.Prefix, dupes: o.Duplicates, streams: map[string]bool{}, last: map[string]uint64{}}, nil
}

// batch is how many events the dispatcher hands over at once: a chain
// of that many publishes with one ack per stream (about 2 MiB in flight).
// window bounds the publishes awaiting their own ack on the slow path:
// twice a batch, so that a batch never stalls on it.
const (
	batch  = 4096
	window = 2 * batch
)

// Batch is the dispatcher batch of the stream (see Batcher).
func (s *NATS) Batch() int { return batch }

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

// Deliver publishes evs and returns once the stream acknowledged them.
//
// The fast path chains each tenant's events: the first message of a
// stream in the batch carries Nats-Expected-Last-Sequence (the stream's
// last sequence as the sink knows it) and every later one
// Nats-Expected-Last-Msg-Id (the id of the event before it in that
// stream), and only the last message of each stream asks for an ack.
// The stream stores a message only when the one before it is the
// stream's last, so a message that is refused or lost makes every later
// one of that stream fail too: the stream never holds a later event of a
// batch without the earlier ones (strict commit order per stream, and so
// per patient), and the one ack, at the sequence the chain predicts,
// proves the whole chain was stored. It saves the server an ack per
// message and the client a future per message: about twice the events
// per second of one asynchronous publish per event on this machine.
//
// When a chain breaks (a re-delivered event the stream drops as a
// duplicate, another publisher, a limit), the batch is published again
// one acknowledged asynchronous publish per event (slow path): the
// events the stream already holds are dropped by Nats-Msg-Id, the rest
// are appended in order, and a failure there leaves the later events of
// the batch unacknowledged (sent again after the failed one).
func (s *NATS) Deliver(ctx context.Context, evs []store.OutboxEvent) (int, error) {
	if len(evs) == 0 {
		return 0, nil
	}
	err := s.chained(ctx, evs)
	if err == nil {
		return len(evs), nil
	}
	if ctx.Err() != nil {
		return 0, fmt.Errorf("publish not acknowledged: %w", err)
	}
	return s.each(ctx, evs)
}

// chained is the fast path: true when every event was acknowledged.
func (s *NATS) chained(ctx context.Context, evs []store.OutboxEvent) (err error) {
	// The last event of each tenant in the batch asks for the ack.
	lastOf := map[string]int{}
	for i := range evs {
		lastOf[evs[i].Tenant] = i
	}
	next := make(map[string]uint64, len(lastOf))
	prev := make(map[string]string, len(lastOf))
	for t := range lastOf {
		seq, err := s.lastSeq(ctx, t)
		if err != nil {
			return err
		}
		next[t] = seq
	}
	defer func() {
		if err != nil {
			// What the stream holds is unknown now: read it again.
			s.mu.Lock()
			clear(s.last)
			s.mu.Unlock()
		}
	}()
	type pending struct {
		tenant string
		f      jetstream.PubAckFuture
	}
	futures := make([]pending, 0, len(lastOf))
	// Every message but a stream's last goes out through one reused
	// message and header: PublishMsg encodes the header and copies the
	// data before it returns, so nothing of them is kept. The header is
	// built as a literal: its keys are already in canonical form
	// (Header.Set would canonicalise them again).
	id, prevID, lastSeq := []string{""}, []string{""}, []string{""}
	reused := nats.Msg{Header: nats.Header{jetstream.MsgIDHeader: id, "Content-Type": contentType}}
	subjects := map[subjectKey]string{}
	for i := range evs {
		e := &evs[i]
		m, h := &reused, reused.Header
		last := lastOf[e.Tenant] == i
		if last {
			// The async publish keeps its message (for retries): its own.
			h = nats.Header{"Content-Type": contentType}
			m = &nats.Msg{Header: h}
		}
		// value is v in the reused slice buf, or in a new one for the
		// message the async publish keeps.
		value := func(buf []string, v string) []string {
			if last {
				return []string{v}
			}
			buf[0] = v
			return buf
		}
		h[jetstream.MsgIDHeader] = value(id, e.ID)
		if p, ok := prev[e.Tenant]; ok {
			delete(h, jetstream.ExpectedLastSeqHeader)
			h[jetstream.ExpectedLastMsgIDHeader] = value(prevID, p)
		} else {
			delete(h, jetstream.ExpectedLastMsgIDHeader)
			h[jetstream.ExpectedLastSeqHeader] = value(lastSeq, strconv.FormatUint(next[e.Tenant], 10))
		}
		k := subjectKey{e.Tenant, e.Type}
		subj, ok := subjects[k]
		if !ok {
			subj = s.Subject(e.Tenant, e.Type)
			subjects[k] = subj
		}
		m.Subject, m.Data = subj, e.JSON
		prev[e.Tenant] = e.ID
		next[e.Tenant]++
		if !last {
			if err := s.nc.PublishMsg(m); err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			continue
		}
		f, err := s.js.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		futures = append(futures, pending{e.Tenant, f})
	}
	acked := make(map[string]uint64, len(futures))
	for _, p := range futures {
		select {
		case a := <-p.f.Ok():
			if a.Duplicate || a.Sequence != next[p.tenant] {
				return fmt.Errorf("stream out of step")
			}
			acked[p.tenant] = a.Sequence
		case err := <-p.f.Err():
			return fmt.Errorf("publish not acknowledged: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("publish not acknowledged: %w", ctx.Err())
		}
	}
	s.mu.Lock()
	maps.Copy(s.last, acked)
	s.mu.Unlock()
	return nil
}

// subjectKey names the subject of a tenant's events of one type.
type subjectKey struct{ tenant, typ string }

// lastSeq is the last sequence of the tenant's stream, made if needed.
func (s *NATS) lastSeq(ctx context.Context, tenant string) (uint64, error) {
	s.mu.Lock()
	seq, ok := s.last[tenant]
	s.mu.Unlock()
	if ok {
		return seq, nil
	}
	if err := s.stream(ctx, tenant); err != nil {
		return 0, err
	}
	st, err := s.js.Stream(ctx, s.StreamName(tenant))
	if err != nil {
		return 0, fmt.Errorf("stream info: %w", err)
	}
	seq = st.CachedInfo().State.LastSeq
	s.mu.Lock()
	s.last[tenant] = seq
	s.mu.Unlock()
	return seq, nil
}

// each is the slow path: every event published asynchronously with its
// own ack, the whole batch in flight at once; the count returned is the
// acknowledged prefix.
func (s *NATS) each(ctx context.Context, evs []store.OutboxEvent) (int, error) {
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
