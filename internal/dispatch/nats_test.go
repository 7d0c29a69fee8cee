package dispatch_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wardhealth/ward/internal/dispatch"
)

func natsURL(t *testing.T) string {
	u := os.Getenv("WARD_TEST_NATS")
	if u == "" {
		if os.Getenv("WARD_TEST_REQUIRE_NATS") != "" || os.Getenv("CI") == "true" {
			t.Fatal("WARD_TEST_NATS is required")
		}
		t.Skip("no NATS (WARD_TEST_NATS)")
	}
	return u
}

// TestNATSJetStream: every event lands in its tenant's stream under
// <prefix>.<tenant>.<type> with Nats-Msg-Id = event id, acknowledged
// before the position moves; a re-delivered batch is dropped by the
// stream's deduplication.
func TestNATSJetStream(t *testing.T) {
	u := natsURL(t)
	prefix := "wardtest" + time.Now().Format("150405")
	sink, err := dispatch.DialNATS(dispatch.NATSOptions{URL: u, Prefix: prefix, Name: "ward test"})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	nc, err := nats.Connect(u)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	t.Cleanup(func() {
		for _, ten := range []string{"ta", "tb"} {
			js.DeleteStream(ctx, sink.StreamName(ten))
		}
	})

	st := openSQLite(t)
	ida := emit(t, st, "ta", 300, 3)
	idb := emit(t, st, "tb", 100, 1)
	run(t, st, dispatch.Options{Owner: "n1", Batch: 128}, sink)
	waitFor(t, 20*time.Second, "positions", func() bool {
		rs, err := st.Receivers(ctx)
		s, _ := st.OutboxStats(ctx)
		return err == nil && len(rs) == 1 && rs[0].Pos == s.Head
	})
	check := func(tenant string, ids map[string][]string, n int) {
		s, err := js.Stream(ctx, sink.StreamName(tenant))
		if err != nil {
			t.Fatal(err)
		}
		info, _ := s.Info(ctx)
		if info.State.Msgs != uint64(n) {
			t.Fatalf("stream of %s holds %d messages, want %d", tenant, info.State.Msgs, n)
		}
		want := map[string]bool{}
		for _, l := range ids {
			for _, id := range l {
				want[id] = true
			}
		}
		c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := c.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for m := range msgs.Messages() {
			if m.Subject() != prefix+"."+tenant+".resource.updated" {
				t.Fatalf("subject %s", m.Subject())
			}
			if !want[m.Headers().Get("Nats-Msg-Id")] {
				t.Fatalf("unknown Nats-Msg-Id %q", m.Headers().Get("Nats-Msg-Id"))
			}
			seen++
		}
		if seen != n {
			t.Fatalf("fetched %d of %d", seen, n)
		}
	}
	check("ta", ida, 300)
	check("tb", idb, 100)

	// At least once: a batch delivered again is dropped by the stream.
	evs, err := st.OutboxAfter(ctx, 0, 400)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := sink.Deliver(ctx, evs); err != nil || n != 400 {
		t.Fatalf("redeliver: %d %v", n, err)
	}
	check("ta", ida, 300)
	check("tb", idb, 100)
}
