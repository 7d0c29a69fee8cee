package invalidation_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wardhealth/ward/internal/invalidation"
	"github.com/wardhealth/ward/internal/invalidation/natstest"
)

// recorder is a Handler that keeps what it was given.
type recorder struct {
	mu     sync.Mutex
	msgs   []invalidation.Message
	resets int
}

func (r *recorder) Invalidated(m invalidation.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
}

func (r *recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resets++
}

func (r *recorder) snapshot() ([]invalidation.Message, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]invalidation.Message(nil), r.msgs...), r.resets
}

func connect(t *testing.T, url, prefix string, h invalidation.Handler) *invalidation.Bus {
	t.Helper()
	b, err := invalidation.Connect(invalidation.Options{URL: url, Prefix: prefix, PingInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if err := b.Subscribe(h); err != nil {
		t.Fatal(err)
	}
	return b
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// A message published by one node reaches the others (not itself), in the
// wire format and on the subject the package documents.
func TestPublishReachesOtherNodes(t *testing.T) {
	url, prefix := natstest.URL(t), natstest.Prefix()
	var ra, rb recorder
	a := connect(t, url, prefix, &ra)
	b := connect(t, url, prefix, &rb)
	if !a.Live() || !b.Live() {
		t.Fatal("subscribed buses are not live")
	}
	plain, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	raw, err := plain.SubscribeSync(invalidation.Subject(prefix))
	if err != nil {
		t.Fatal(err)
	}
	plain.Flush()
	sent := invalidation.Message{Tenant: "default", Kind: invalidation.Revocation, JTI: "00ff"}
	a.Publish(sent)
	sent.Node = a.Node()
	eventually(t, "b to receive", func() bool { m, _ := rb.snapshot(); return len(m) == 1 })
	if m, _ := rb.snapshot(); m[0] != sent {
		t.Fatalf("b got %+v, want %+v", m[0], sent)
	}
	msg, err := raw.NextMsg(2 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := invalidation.Decode(msg.Data); err != nil || got != sent {
		t.Fatalf("on the wire: %+v %v", got, err)
	}
	time.Sleep(100 * time.Millisecond)
	if m, _ := ra.snapshot(); len(m) != 0 {
		t.Fatalf("a applied its own message: %+v", m)
	}
	// Something that is not a message of this version cannot be applied:
	// the receiver resets instead of ignoring what may have mattered.
	_, before := rb.snapshot()
	plain.Publish(invalidation.Subject(prefix), []byte(`{"kind":"consents"}`))
	eventually(t, "b to reset on garbage", func() bool { _, r := rb.snapshot(); return r == before+1 })
}

// While the connection is down the bus is not live; after reconnecting it
// resets the caches and is live again.
func TestLiveFollowsTheConnection(t *testing.T) {
	srv := natstest.Start(t)
	var r recorder
	b := connect(t, srv.URL, natstest.Prefix(), &r)
	if _, resets := r.snapshot(); !b.Live() || resets != 1 {
		t.Fatalf("live=%v resets=%d after subscribing, want true 1", b.Live(), resets)
	}
	srv.Stop()
	eventually(t, "not live after the server stopped", func() bool { return !b.Live() })
	srv.Restart()
	eventually(t, "live after the server came back", b.Live)
	if _, resets := r.snapshot(); resets != 2 {
		t.Fatalf("%d resets after a reconnect, want 2", resets)
	}
}

// A node configured for a cluster does not start alone.
func TestConnectFailsWhenUnreachable(t *testing.T) {
	_, err := invalidation.Connect(invalidation.Options{URL: "nats://ward:s3cretpw@127.0.0.1:1", Prefix: "ward"})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("err = %v, want one naming the server", err)
	}
	if strings.Contains(err.Error(), "s3cretpw") {
		t.Fatalf("the error shows the password: %v", err)
	}
}

// BenchmarkLive is the check a cached read makes on a cluster node.
func BenchmarkLive(b *testing.B) {
	bus, err := invalidation.Connect(invalidation.Options{URL: natstest.URL(b), Prefix: natstest.Prefix()})
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close()
	var r recorder
	if err := bus.Subscribe(&r); err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !bus.Live() {
				b.Fatal("not live")
			}
		}
	})
}
