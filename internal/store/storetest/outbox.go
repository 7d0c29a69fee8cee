package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/events"
	"github.com/wardhealth/ward/internal/store"
)

// Outboxer is the outbox side of a SQL store, as the dispatcher uses it.
type Outboxer interface {
	OutboxAfter(ctx context.Context, after int64, limit int) ([]store.OutboxEvent, error)
	OutboxEvent(ctx context.Context, seq int64) (*store.OutboxEvent, error)
	OutboxStats(ctx context.Context) (store.OutboxStats, error)
	OutboxHead(ctx context.Context) (int64, error)
	ClaimReceiver(ctx context.Context, name, owner string, start int64, now, until time.Time) (store.Receiver, bool, error)
	AdvanceReceiver(ctx context.Context, name, owner string, pos, delivered int64, now, until time.Time) (bool, error)
	ReleaseReceiver(ctx context.Context, name, owner string) error
	Receivers(ctx context.Context) ([]store.Receiver, error)
	DeadLetter(ctx context.Context, name, owner string, seq int64, attempts int, lastErr string, now, until time.Time) (bool, error)
	DeadLetters(ctx context.Context, receiver string, replayOnly bool, limit int) ([]store.DeadLetter, error)
	MarkReplay(ctx context.Context, receiver string, seq int64) (int64, error)
	DropDead(ctx context.Context, receiver string, seq int64) (int64, error)
	Replayed(ctx context.Context, receiver string, seq int64, delivered bool, lastErr string, now time.Time) error
	Webhooks(ctx context.Context) ([]store.Webhook, error)
}

func outboxer(t *testing.T, st store.Store) Outboxer {
	t.Helper()
	o, ok := st.(Outboxer)
	if !ok {
		t.Fatalf("%T has no outbox", st)
	}
	return o
}

func init() {
	cases = append(cases,
		struct {
			name string
			run  func(t *testing.T, open Opener)
		}{"OutboxCommitsWithItsUnit", testOutboxCommitsWithItsUnit},
		struct {
			name string
			run  func(t *testing.T, open Opener)
		}{"OutboxLeasesAndDeadLetters", testOutboxLeasesAndDeadLetters},
		struct {
			name string
			run  func(t *testing.T, open Opener)
		}{"OutboxBatchedUnits", testOutboxBatchedUnits},
		struct {
			name string
			run  func(t *testing.T, open Opener)
		}{"Webhooks", testWebhooks})
}

func ev(tenant, typ, id string) events.Event {
	return events.New(tenant, typ, "Patient/"+id, "Patient/"+id, t0, events.Data{ResourceType: "Patient", ID: id})
}

func testOutboxCommitsWithItsUnit(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	o := outboxer(t, st)
	e1, e2 := ev("t1", events.PatientCreated, "p1"), ev("t1", events.ResourceCreated, "p1")
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("t1", "Patient", "p1", 1, "x")},
		Parts: []store.Part{store.Outbox{Events: []events.Event{e1, e2}}}, Audit: []*audit.Record{rec("t1", "create")}}))
	// A unit whose precondition fails writes no event.
	lost := ev("t1", events.PatientCreated, "p1")
	err := st.Commit(ctx, &store.Unit{Writes: []store.Write{write("t1", "Patient", "p1", 1, "y")},
		Parts: []store.Part{store.Outbox{Events: []events.Event{lost}}}, Audit: []*audit.Record{rec("t1", "create")}})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("conflicting create: %v, want ErrConflict", err)
	}
	// A refusal recorded alone appends its security event (AddAudit).
	denied := rec("t1", "read", "Patient/p1")
	denied.Outcome, denied.Detail = audit.OutcomeMinor, "denied:no-relationship"
	u := &store.Unit{}
	u.AddAudit(denied)
	must(t, st.Commit(ctx, u))

	got, err := o.OutboxAfter(ctx, 0, 10)
	must(t, err)
	if len(got) != 3 {
		t.Fatalf("outbox holds %d events, want 3", len(got))
	}
	if got[0].ID != e1.ID || got[1].ID != e2.ID || got[2].Type != events.AccessDenied {
		t.Fatalf("outbox order: %s %s %s", got[0].Type, got[1].Type, got[2].Type)
	}
	if got[0].Seq >= got[1].Seq || got[1].Seq >= got[2].Seq {
		t.Fatalf("seq not increasing: %d %d %d", got[0].Seq, got[1].Seq, got[2].Seq)
	}
	if string(got[0].JSON) != string(e1.JSON) || got[0].Key != "Patient/p1" || got[0].Tenant != "t1" || !got[0].Time.Equal(e1.Time) {
		t.Fatalf("event not stored as given: %+v", got[0])
	}
	if rest, err := o.OutboxAfter(ctx, got[1].Seq, 10); err != nil || len(rest) != 1 {
		t.Fatalf("after %d: %d events, %v", got[1].Seq, len(rest), err)
	}
	one, err := o.OutboxEvent(ctx, got[2].Seq)
	must(t, err)
	if one.ID != got[2].ID {
		t.Fatalf("OutboxEvent returned %s", one.ID)
	}
	if _, err := o.OutboxEvent(ctx, 999999); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown seq: %v", err)
	}
	s, err := o.OutboxStats(ctx)
	must(t, err)
	if s.Head != got[2].Seq || s.Rows != 3 || s.HeadAt != t0.UnixMicro() {
		t.Fatalf("stats %+v", s)
	}
	if h, err := o.OutboxHead(ctx); err != nil || h != s.Head {
		t.Fatalf("OutboxHead = %d, %v; want %d", h, err, s.Head)
	}
}

// testOutboxBatchedUnits: units committed at once (so that the writer
// batches them, and appends their events in one insert) each leave their
// events together and in their order, and a unit that conflicts leaves
// none, whatever batch it shares.
func testOutboxBatchedUnits(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	o := outboxer(t, st)
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("t1", "Patient", "taken", 1, "x")}, Audit: []*audit.Record{rec("t1", "create")}}))
	const units = 40
	var wg sync.WaitGroup
	for i := range units {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("b%d", i)
			if i%5 == 0 {
				// A conflicting create: its events must not appear.
				id = "taken"
			}
			a, b := ev("t1", events.ResourceCreated, id), ev("t1", events.PatientCreated, id)
			err := st.Commit(ctx, &store.Unit{Writes: []store.Write{write("t1", "Patient", id, 1, "y")},
				Parts: []store.Part{store.Outbox{Events: []events.Event{a, b}}}, Audit: []*audit.Record{rec("t1", "create")}})
			if (err != nil) != (i%5 == 0) {
				t.Errorf("unit %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	got, err := o.OutboxAfter(ctx, 0, 1000)
	must(t, err)
	if want := 2 * (units - units/5); len(got) != want {
		t.Fatalf("outbox holds %d events, want %d", len(got), want)
	}
	for i := 0; i < len(got); i += 2 {
		a, b := got[i], got[i+1]
		if a.Type != events.ResourceCreated || b.Type != events.PatientCreated || a.Key != b.Key || a.Key == "Patient/taken" || b.Seq <= a.Seq {
			t.Fatalf("events %d, %d: %s %s %s %s", i, i+1, a.Type, a.Key, b.Type, b.Key)
		}
	}
}

func testOutboxLeasesAndDeadLetters(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	o := outboxer(t, st)
	now := time.Now()
	r, ok, err := o.ClaimReceiver(ctx, "nats", "a", 5, now, now.Add(time.Minute))
	must(t, err)
	if !ok || r.Pos != 5 || r.LeaseOwner != "a" {
		t.Fatalf("first claim: %+v %v", r, ok)
	}
	if _, ok, err := o.ClaimReceiver(ctx, "nats", "b", 0, now, now.Add(time.Minute)); err != nil || ok {
		t.Fatalf("claim of a held lease: ok=%v err=%v", ok, err)
	}
	if ok, err := o.AdvanceReceiver(ctx, "nats", "a", 9, 4, now, now.Add(time.Minute)); err != nil || !ok {
		t.Fatalf("advance by the holder: %v %v", ok, err)
	}
	if ok, err := o.AdvanceReceiver(ctx, "nats", "b", 12, 3, now, now.Add(time.Minute)); err != nil || ok {
		t.Fatalf("advance by another: %v %v", ok, err)
	}
	// The lease expires: b takes over, and a can no longer advance.
	later := now.Add(2 * time.Minute)
	r, ok, err = o.ClaimReceiver(ctx, "nats", "b", 0, later, later.Add(time.Minute))
	must(t, err)
	if !ok || r.Pos != 9 || r.Delivered != 4 {
		t.Fatalf("takeover: %+v %v", r, ok)
	}
	if ok, _ := o.AdvanceReceiver(ctx, "nats", "a", 10, 1, later, later.Add(time.Minute)); ok {
		t.Fatal("the old holder advanced after losing its lease")
	}
	// Dead letters: only the holder, and the position moves past.
	if ok, _ := o.DeadLetter(ctx, "nats", "a", 10, 3, "timeout", later, later.Add(time.Minute)); ok {
		t.Fatal("dead letter by a non-holder")
	}
	for _, seq := range []int64{10, 11} {
		ok, err := o.DeadLetter(ctx, "nats", "b", seq, 3, "status 500", later, later.Add(time.Minute))
		if err != nil || !ok {
			t.Fatalf("dead letter %d: %v %v", seq, ok, err)
		}
	}
	rs, err := o.Receivers(ctx)
	must(t, err)
	if len(rs) != 1 || rs[0].Pos != 11 {
		t.Fatalf("receivers %+v", rs)
	}
	dl, err := o.DeadLetters(ctx, "nats", false, 10)
	must(t, err)
	if len(dl) != 2 || dl[0].Seq != 10 || dl[0].LastError != "status 500" || dl[0].Attempts != 3 || dl[0].Replay {
		t.Fatalf("dead letters %+v", dl)
	}
	if n, err := o.MarkReplay(ctx, "nats", 11); err != nil || n != 1 {
		t.Fatalf("mark replay: %d %v", n, err)
	}
	dl, err = o.DeadLetters(ctx, "", true, 10)
	must(t, err)
	if len(dl) != 1 || dl[0].Seq != 11 || !dl[0].Replay {
		t.Fatalf("to replay %+v", dl)
	}
	must(t, o.Replayed(ctx, "nats", 11, false, "again", later))
	must(t, o.Replayed(ctx, "nats", 10, true, "", later))
	dl, err = o.DeadLetters(ctx, "nats", false, 10)
	must(t, err)
	if len(dl) != 1 || dl[0].Seq != 11 || dl[0].Attempts != 4 || dl[0].Replay || dl[0].LastError != "again" {
		t.Fatalf("after replay %+v", dl)
	}
	if n, err := o.DropDead(ctx, "", 0); err != nil || n != 1 {
		t.Fatalf("drop: %d %v", n, err)
	}
	must(t, o.ReleaseReceiver(ctx, "nats", "b"))
	if _, ok, err := o.ClaimReceiver(ctx, "nats", "c", 0, later, later.Add(time.Minute)); err != nil || !ok {
		t.Fatalf("claim after release: %v %v", ok, err)
	}
}

// OutboxAcrossWriters: two stores on one database commit events while a
// reader follows the outbox by position; the reader misses none, because
// seq is assigned under the ledger head lock and so is commit order.
func OutboxAcrossWriters(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	o := outboxer(t, a)
	start, err := o.OutboxStats(ctx)
	must(t, err)
	const per = 150
	var wg sync.WaitGroup
	want := map[string]bool{}
	var mu sync.Mutex
	for w, st := range []store.Store{a, b} {
		for g := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range per / 3 {
					id := fmt.Sprintf("w%dg%di%d", w, g, i)
					e := ev("t1", events.ResourceCreated, id)
					mu.Lock()
					want[e.ID] = true
					mu.Unlock()
					if err := st.Commit(ctx, &store.Unit{Writes: []store.Write{write("t1", "Patient", id, 1, "x")},
						Parts: []store.Part{store.Outbox{Events: []events.Event{e}}}, Audit: []*audit.Record{rec("t1", "create")}}); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	pos, seen := start.Head, map[string]bool{}
	follow := func() {
		evs, err := o.OutboxAfter(ctx, pos, 50)
		must(t, err)
		for _, e := range evs {
			if e.Seq <= pos {
				t.Fatalf("seq %d after position %d", e.Seq, pos)
			}
			pos = e.Seq
			seen[e.ID] = true
		}
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		follow()
	}
	for range 10 {
		follow()
	}
	if len(seen) != 2*per {
		t.Fatalf("follower saw %d events of %d", len(seen), 2*per)
	}
	for id := range want {
		if !seen[id] {
			t.Fatalf("follower missed %s", id)
		}
	}
}

func testWebhooks(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	o := outboxer(t, st)
	h := &store.Webhook{ID: "h1", Tenant: "t1", URL: "https://example.org/hook", Secret: []byte{1, 2, 3}, Types: []string{"patient.created", "consent.revoked"}, Created: t0}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewWebhook{Hook: h}}, Audit: []*audit.Record{rec("t1", "webhook-add")}}))
	if err := st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewWebhook{Hook: h}}, Audit: []*audit.Record{rec("t1", "webhook-add")}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("taken id: %v", err)
	}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewWebhook{Hook: &store.Webhook{ID: "h2", Tenant: "t2", URL: "http://127.0.0.1/h", Secret: []byte{4}, Created: t0}}}, Audit: []*audit.Record{rec("t2", "webhook-add")}}))
	hs, err := o.Webhooks(ctx)
	must(t, err)
	if len(hs) != 2 || hs[0].ID != "h1" || hs[0].URL != h.URL || string(hs[0].Secret) != string(h.Secret) || len(hs[0].Types) != 2 || !hs[0].Created.Equal(t0) || hs[1].Types != nil {
		t.Fatalf("webhooks %+v", hs)
	}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.RemoveWebhook{ID: "h1"}}, Audit: []*audit.Record{rec("t1", "webhook-remove")}}))
	if err := st.Commit(ctx, &store.Unit{Parts: []store.Part{store.RemoveWebhook{ID: "h1"}}, Audit: []*audit.Record{rec("t1", "webhook-remove")}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("unknown id: %v", err)
	}
	hs, err = o.Webhooks(ctx)
	must(t, err)
	if len(hs) != 1 || hs[0].ID != "h2" {
		t.Fatalf("after remove %+v", hs)
	}
}
