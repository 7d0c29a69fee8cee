package dispatch_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wardhealth/ward/internal/dispatch"
	"github.com/wardhealth/ward/internal/store"
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

// TestNATSChainKeepsOrder: batches delivered straight to the sink, with
// the stream's chain broken between them (a message of another
// publisher, a batch re-delivered that overlaps new events), leave every
// event in its tenant's stream exactly once and in outbox order.
func TestNATSChainKeepsOrder(t *testing.T) {
	u := natsURL(t)
	prefix := "wardchain" + time.Now().Format("150405")
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
	emit(t, st, "ta", 200, 4)
	emit(t, st, "tb", 100, 2)
	emit(t, st, "ta", 100, 1)
	all, err := st.OutboxAfter(ctx, 0, 1000)
	if err != nil || len(all) != 400 {
		t.Fatalf("outbox: %d %v", len(all), err)
	}
	deliver := func(evs []store.OutboxEvent) {
		t.Helper()
		if n, err := sink.Deliver(ctx, evs); err != nil || n != len(evs) {
			t.Fatalf("deliver %d: %d %v", len(evs), n, err)
		}
	}
	deliver(all[:150])
	// Another publisher on the tenant's subjects: the sink's next chain
	// names a sequence the stream has passed.
	if _, err := js.Publish(ctx, prefix+".ta.other", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	deliver(all[150:250])
	// Re-delivered events (dropped as duplicates) followed by new ones.
	deliver(all[200:320])
	deliver(all[320:])
	for _, ten := range []string{"ta", "tb"} {
		var want []string
		for _, e := range all {
			if e.Tenant == ten {
				want = append(want, e.ID)
			}
		}
		s, err := js.Stream(ctx, sink.StreamName(ten))
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := c.Fetch(int(info.State.Msgs), jetstream.FetchMaxWait(3*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for m := range msgs.Messages() {
			if id := m.Headers().Get("Nats-Msg-Id"); id != "" {
				got = append(got, id)
			}
		}
		gs := map[string]bool{}
		for _, g := range got {
			gs[g] = true
		}
		for i, e := range all {
			if e.Tenant == ten && !gs[e.ID] {
				t.Errorf("%s: event %d missing", ten, i)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%s: stream holds %d events (%d messages), want %d", ten, len(got), info.State.Msgs, len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: event %d is %s, want %s (out of order)", ten, i, got[i], want[i])
			}
		}
	}
}
