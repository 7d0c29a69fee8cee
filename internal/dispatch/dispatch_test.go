package dispatch_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/dispatch"
	"github.com/wardhealth/ward/internal/events"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/postgres"
	"github.com/wardhealth/ward/internal/store/postgres/pgtest"
	"github.com/wardhealth/ward/internal/store/sqlite"
	"github.com/wardhealth/ward/internal/store/sqlstore"
)

func openSQLite(t testing.TB) *sqlstore.DB {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ward.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func openPG(t testing.TB, u string) *sqlstore.DB {
	t.Helper()
	st, err := postgres.Open(context.Background(), u, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// emit commits n events, spread over patients, one unit each, and returns
// their ids in commit order per patient.
func emit(t testing.TB, st store.Store, tenant string, n, patients int) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for p := range patients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("Patient/p%d", p)
			for i := p; i < n; i += patients {
				e := events.New(tenant, events.ResourceUpdated, key, key, time.Now(), events.Data{ResourceType: "Patient", ID: fmt.Sprintf("p%d", p), VersionID: strconv.Itoa(i)})
				u := &store.Unit{Parts: []store.Part{store.Outbox{Events: []events.Event{e}}}}
				u.AddAudit(&audit.Record{Time: time.Now(), Tenant: tenant, Actor: "test", Role: "system", Action: "update"})
				if err := st.Commit(context.Background(), u); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				out[key] = append(out[key], e.ID)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// receiver is a webhook receiver on loopback that checks every signature
// with its own HMAC (per the Standard Webhooks text, not dispatch.Sign).
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	secret string
	mode   atomic.Int32 // 0 ok, 1 answer 500, 2 hang
	mu     sync.Mutex
	got    []got
	counts map[string]int
}

type got struct {
	id, key string
	at      time.Time
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, secret: dispatch.NewSecret(), counts: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	switch r.mode.Load() {
	case 1:
		w.WriteHeader(500)
		return
	case 2:
		select {
		case <-req.Context().Done():
		case <-time.After(5 * time.Second):
		}
		return
	}
	body, _ := io.ReadAll(req.Body)
	id, ts := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp")
	key, _ := base64.StdEncoding.DecodeString(r.secret[len("whsec_"):])
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	if req.Header.Get("webhook-signature") != want {
		r.t.Errorf("bad signature on %s", id)
		w.WriteHeader(400)
		return
	}
	env, err := events.Parse(body)
	if err != nil || env.ID != id {
		r.t.Errorf("body is not the event %s: %v", id, err)
	}
	r.mu.Lock()
	r.got = append(r.got, got{id: id, key: env.Subject, at: time.Now()})
	r.counts[id]++
	r.mu.Unlock()
}

func (r *receiver) hook(t *testing.T, id string) *dispatch.Webhook {
	h, err := dispatch.NewWebhook(id, r.srv.URL, r.secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (r *receiver) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.counts)
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func run(t *testing.T, o dispatch.Outbox, opts dispatch.Options, sinks ...dispatch.Sink) *dispatch.Dispatcher {
	opts.FromStart = true
	d := dispatch.New(o, opts)
	for _, s := range sinks {
		d.Add(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return d
}

// TestWebhookDeliversSignedInOrder: every event reaches the hook once,
// signed, and each patient's events arrive in commit order.
func TestWebhookDeliversSignedInOrder(t *testing.T) {
	st := openSQLite(t)
	r := newReceiver(t)
	order := emit(t, st, "t1", 300, 6)
	run(t, st, dispatch.Options{Owner: "n1", Batch: 50}, r.hook(t, "h1"))
	waitFor(t, 20*time.Second, "300 events", func() bool { return r.distinct() == 300 })
	r.mu.Lock()
	defer r.mu.Unlock()
	per := map[string][]string{}
	for _, g := range r.got {
		per[g.key] = append(per[g.key], g.id)
	}
	for key, ids := range order {
		if fmt.Sprint(per[key]) != fmt.Sprint(ids) {
			t.Fatalf("%s: events out of commit order", key)
		}
	}
}

// TestFailingReceiversDoNotDelayOthers: one hook answers 500, one hangs
// past the timeout; both open their breakers and dead-letter, while the
// healthy hook's delivery lag stays small. Dead letters then replay.
func TestFailingReceiversDoNotDelayOthers(t *testing.T) {
	st := openSQLite(t)
	good, bad, slow := newReceiver(t), newReceiver(t), newReceiver(t)
	bad.mode.Store(1)
	slow.mode.Store(2)
	d := run(t, st, dispatch.Options{Owner: "n1", Batch: 20, MaxAttempts: 3, BaseBackoff: 20 * time.Millisecond,
		Timeout: 300 * time.Millisecond, BreakerFailures: 2, BreakerOpen: 200 * time.Millisecond},
		good.hook(t, "good"), bad.hook(t, "bad"), slow.hook(t, "slow"))

	var lags []time.Duration
	sawOpen := false
	for i := range 40 {
		emit(t, st, "t1", 1, 1)
		at := time.Now()
		waitFor(t, 5*time.Second, "the healthy hook", func() bool { return good.distinct() == i+1 })
		lags = append(lags, time.Since(at))
		if d.BreakerState("webhook:bad") == "open" {
			sawOpen = true
		}
		time.Sleep(10 * time.Millisecond)
	}
	worst := time.Duration(0)
	for _, l := range lags {
		worst = max(worst, l)
	}
	t.Logf("healthy hook: worst delivery lag %v over %d events while two hooks fail", worst, len(lags))
	if worst > 500*time.Millisecond {
		t.Fatalf("healthy hook delayed %v by failing ones", worst)
	}
	if !sawOpen {
		t.Fatal("the failing hook's breaker never opened")
	}
	waitFor(t, 30*time.Second, "dead letters", func() bool {
		dl, err := st.DeadLetters(context.Background(), "webhook:bad", false, 100)
		return err == nil && len(dl) == 40
	})
	if bad.distinct() != 0 {
		t.Fatal("the failing hook took events")
	}
	// The hook recovers; replaying its dead letters delivers them.
	bad.mode.Store(0)
	if n, err := st.MarkReplay(context.Background(), "webhook:bad", 0); err != nil || n != 40 {
		t.Fatalf("mark replay: %d %v", n, err)
	}
	waitFor(t, 20*time.Second, "replayed dead letters", func() bool { return bad.distinct() == 40 })
	waitFor(t, 5*time.Second, "dead letters cleared", func() bool {
		dl, _ := st.DeadLetters(context.Background(), "webhook:bad", false, 100)
		return len(dl) == 0
	})
}

// TestTwoDispatchersOnePostgresNeverDeliverTwice: two nodes on one
// database dispatch to the same hook; leases keep every event delivered
// exactly once while no node dies.
func TestTwoDispatchersOnePostgresNeverDeliverTwice(t *testing.T) {
	if os.Getenv("WARD_TEST_POSTGRES") == "" && !pgtest.Required() {
		t.Skip("no PostgreSQL (WARD_TEST_POSTGRES)")
	}
	u := pgtest.URL(t)
	a, b := openPG(t, u), openPG(t, u)
	r := newReceiver(t)
	opts := dispatch.Options{Batch: 25, Lease: 2 * time.Second, Poll: 5 * time.Millisecond}
	oa, ob := opts, opts
	oa.Owner, ob.Owner = "node-a", "node-b"
	run(t, a, oa, r.hook(t, "shared"))
	run(t, b, ob, r.hook(t, "shared"))
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); emit(t, a, "t1", 200, 4) }()
	go func() { defer wg.Done(); emit(t, b, "t1", 200, 4) }()
	wg.Wait()
	waitFor(t, 30*time.Second, "400 events", func() bool { return r.distinct() == 400 })
	time.Sleep(300 * time.Millisecond)
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, n := range r.counts {
		if n != 1 {
			t.Fatalf("event %s delivered %d times", id, n)
		}
	}
	if len(r.got) != 400 {
		t.Fatalf("%d deliveries for 400 events", len(r.got))
	}
}

func TestCheckURL(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://example.org/hook": true, "http://127.0.0.1:8080/h": true, "http://localhost/h": true, "http://[::1]/h": true,
		"http://example.org/hook": false, "ftp://example.org": false, "https://u:p@example.org/": false, "/relative": false,
	} {
		if err := dispatch.CheckURL(raw); (err == nil) != ok {
			t.Errorf("%s: %v", raw, err)
		}
	}
}
