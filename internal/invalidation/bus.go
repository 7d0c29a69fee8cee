package invalidation

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// Subject is the NATS subject of the invalidations under prefix.
func Subject(prefix string) string { return prefix + ".invalidate" }

// Handler applies what other nodes invalidated.
type Handler interface {
	// Invalidated applies one message of another node.
	Invalidated(Message)
	// Reset drops everything cached that another node could have
	// invalidated: messages may have been lost (a reconnect, or messages
	// dropped because this node fell behind).
	Reset()
}

// Options configure Connect.
type Options struct {
	URL    string // nats://host:port[,nats://...]
	Prefix string // subject prefix (Subject)
	Log    *slog.Logger
	// PingInterval bounds how long a silently dead connection goes
	// unnoticed (about two intervals); 0: 1 s.
	PingInterval time.Duration
}

// Bus is one node's connection to the others.
type Bus struct {
	nc      *nats.Conn
	subject string
	node    string
	log     *slog.Logger

	mu      sync.Mutex // orders Subscribe against the connection callbacks
	handler Handler
	// state is the loss generation (state >> 1), bumped whenever this
	// node could start missing messages, and a live bit (state & 1): set
	// only by a reset that began in the current generation, so a loss
	// during the reset keeps the bus not live.
	state atomic.Uint64
}

// lost records that messages may be missed from now on.
func (b *Bus) lost() {
	for {
		old := b.state.Load()
		if b.state.CompareAndSwap(old, (old>>1+1)<<1) {
			return
		}
	}
}

// resetAndGoLive resets h and then sets live, unless a loss happened
// since the reset began.
func (b *Bus) resetAndGoLive(h Handler) {
	gen := b.state.Load() >> 1
	h.Reset()
	b.state.CompareAndSwap(gen<<1, gen<<1|1)
}

// Connect connects to NATS. It fails (naming the server, never its
// credentials) when no server is reachable: a node that is configured for
// a cluster must not serve as if it were alone.
func Connect(o Options) (*Bus, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.PingInterval <= 0 {
		o.PingInterval = time.Second
	}
	b := &Bus{subject: Subject(o.Prefix), node: newNodeID(), log: o.Log}
	nc, err := nats.Connect(o.URL,
		nats.Name("ward "+b.node),
		nats.NoEcho(), // our own messages need not come back
		nats.Timeout(3*time.Second),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		// The default (2 minutes, 2 outstanding) would leave a dead
		// connection "connected", with caches trusted, for minutes.
		nats.PingInterval(o.PingInterval),
		nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(b.disconnected),
		// Runs synchronously before every reconnect attempt, so the bus
		// is not live before the connection can be CONNECTED again (the
		// disconnect callback runs asynchronously and may come later);
		// nil lets the client choose the server as usual.
		nats.ReconnectToServer(func([]nats.Server, nats.ServerInfo) (*nats.Server, time.Duration) {
			b.lost()
			return nil, 0
		}),
		nats.ReconnectHandler(b.reconnected),
		nats.ClosedHandler(func(*nats.Conn) { b.lost() }),
		nats.ErrorHandler(b.asyncError),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", redact(o.URL), err)
	}
	b.nc = nc
	return b, nil
}

// Node is this node's id: random per process, carried in its messages.
func (b *Bus) Node() string { return b.node }

// Subscribe starts applying other nodes' messages to h. Live is false
// until it returns: what this node cached before could not be invalidated.
func (b *Bus) Subscribe(h Handler) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.handler = h
	if _, err := b.nc.Subscribe(b.subject, b.receive); err != nil {
		return fmt.Errorf("subscribe to %s: %w", b.subject, err)
	}
	// The server has the subscription once a flush returns.
	if err := b.nc.FlushTimeout(3 * time.Second); err != nil {
		return fmt.Errorf("subscribe to %s: %w", b.subject, err)
	}
	b.resetAndGoLive(h)
	return nil
}

// Live reports whether every message published since the caches were last
// reset has been, or will be, delivered to this node: it is subscribed and
// connected. While it is false, callers must not trust their caches.
//
// The live bit is cleared synchronously before any reconnect attempt and
// set again only by a reset that no loss interrupted; the status is read
// from the connection too because a loss is noticed there before any
// callback runs.
func (b *Bus) Live() bool {
	return b.state.Load()&1 == 1 && b.nc.Status() == nats.CONNECTED
}

// Publish tells the other nodes. It does not wait: the client sends it
// at once when connected, and while reconnecting keeps it in its reconnect
// buffer; receivers reset their caches on reconnect anyway. A message that
// cannot be published is logged (its kind only).
func (b *Bus) Publish(m Message) {
	m.Node = b.node
	data, err := Encode(m)
	if err == nil {
		err = b.nc.Publish(b.subject, data)
	}
	if err != nil {
		b.log.Warn("cluster invalidation not published", "node", b.node, "kind", m.Kind.String(), "error", err.Error())
	}
}

// Close drains nothing: an invalidation still in flight matters only to a
// node that keeps running, and those reset their caches on lost messages.
func (b *Bus) Close() {
	b.lost()
	b.nc.Close()
}

func (b *Bus) receive(msg *nats.Msg) {
	m, err := Decode(msg.Data)
	if err != nil {
		// Not from a Ward node of this version: it cannot be applied,
		// and it may have been meant to invalidate something.
		b.log.Warn("cluster invalidation not understood; resetting caches", "node", b.node, "bytes", len(msg.Data))
		b.reset()
		return
	}
	if m.Node == b.node {
		return
	}
	b.mu.Lock()
	h := b.handler
	b.mu.Unlock()
	if h != nil {
		h.Invalidated(m)
	}
}

func (b *Bus) reset() {
	b.mu.Lock()
	h := b.handler
	b.mu.Unlock()
	if h != nil {
		h.Reset()
	}
}

func (b *Bus) disconnected(nc *nats.Conn, err error) {
	b.lost()
	if nc.IsClosed() {
		return // Close: this node is stopping, nothing to warn about
	}
	reason := "closed"
	if err != nil {
		reason = err.Error()
	}
	b.log.Warn("cluster bus disconnected; caches bypassed until reconnected", "node", b.node, "reason", reason)
}

func (b *Bus) reconnected(nc *nats.Conn) {
	// Messages published while this node was away are lost: reset before
	// trusting the caches again.
	b.mu.Lock()
	h := b.handler
	if h != nil {
		b.resetAndGoLive(h)
	}
	b.mu.Unlock()
	b.log.Info("cluster bus reconnected; caches reset", "node", b.node, "server", redact(nc.ConnectedUrl()))
}

func (b *Bus) asyncError(_ *nats.Conn, _ *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrSlowConsumer) {
		b.log.Warn("cluster bus dropped messages (slow consumer); resetting caches", "node", b.node)
		b.reset()
		return
	}
	b.log.Warn("cluster bus error", "node", b.node, "error", err.Error())
}

func newNodeID() string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	var raw [20]byte
	rand.Read(raw[:])
	out := make([]byte, len(raw))
	for i, c := range raw {
		out[i] = alphabet[int(c)%len(alphabet)]
	}
	return string(out)
}

// redact hides credentials in a server URL (user:password@ or a token).
func redact(s string) string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		u, err := url.Parse(strings.TrimSpace(part))
		if err != nil {
			out = append(out, "(unparsable URL)")
			continue
		}
		if u.User != nil {
			u.User = url.User("xxxxx")
		}
		out = append(out, u.Redacted())
	}
	return strings.Join(out, ",")
}
