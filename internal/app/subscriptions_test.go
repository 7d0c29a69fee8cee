package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/events"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/storetest"
	"github.com/wardhealth/ward/internal/subscriptions"
)

// receiver is a loopback rest-hook endpoint that keeps what it got.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies []string
	heads  []http.Header
	status int
}

func newReceiver(t *testing.T, status int) *receiver {
	r := &receiver{status: status}
	r.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, string(b))
		r.heads = append(r.heads, req.Header.Clone())
		code := r.status
		r.mu.Unlock()
		rw.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bodies...)
}

// notified returns the notification bodies naming Type/id.
func (r *receiver) notified(ref string) []string {
	var out []string
	for _, b := range r.got() {
		if strings.Contains(b, `"event-notification"`) && strings.Contains(b, ref+`"`) {
			out = append(out, b)
		}
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func subscription(endpoint, criteria, content string) string {
	payload := ""
	if content != "" {
		payload = `,"payload":"application/fhir+json","_payload":{"extension":[{"url":"` + subscriptions.ExtPayload + `","valueCode":"` + content + `"}]}`
	}
	return `{"resourceType":"Subscription","status":"requested","reason":"test","criteria":"` + criteria + `",` +
		`"channel":{"type":"rest-hook","endpoint":"` + endpoint + `","header":["X-Receiver-Token: tok-123"]` + payload + `}}`
}

func subStatus(t *testing.T, w *apptest.Ward, id string) (string, string) {
	r := w.Do(t, http.MethodGet, "/fhir/Subscription/"+id, w.Tokens[authz.RoleAdmin], nil)
	if r.Status != 200 {
		t.Fatalf("read subscription: %d %s", r.Status, r.Body)
	}
	m := r.JSON(t)
	s, _ := m["status"].(string)
	e, _ := m["error"].(string)
	return s, e
}

// receiverAt waits until the dispatch receiver of Subscription id has
// taken every event up to seq.
func receiverAt(t *testing.T, w *apptest.Ward, id string, seq int64) {
	o := w.App.Store.(storetest.Outboxer)
	name := subscriptions.ReceiverName(w.Config.Tenant, id)
	waitFor(t, name+" to take the outbox", func() bool {
		rs, err := o.Receivers(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Name == name && r.Pos >= seq {
				return true
			}
		}
		return false
	})
}

func head(t *testing.T, w *apptest.Ward) int64 {
	s, err := w.App.Store.(storetest.Outboxer).OutboxStats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s.Head
}

// TestSubscriptionRestHook: criteria-based rest-hook Subscriptions get
// active after the handshake, fire for matching changes only, carry the
// resource only as their payload asks and their owner may read it (the
// read audited as the owner's), turn to error on a failing endpoint, and
// stop carrying the resource when the owner loses access.
func TestSubscriptionRestHook(t *testing.T) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			w := apptest.Start(t, b, func(c *config.Config) { c.Events.WebhookSync = 50 * time.Millisecond })
			phys := w.Tokens[authz.RolePhysician]
			pid := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"`+plantedName+`"}],"birthDate":"`+plantedBirth+`","generalPractitioner":[{"reference":"Practitioner/`+apptest.Links[authz.RolePhysician].Practitioner+`"}]}`)
			full, ids, empty, dead := newReceiver(t, 200), newReceiver(t, 200), newReceiver(t, 204), newReceiver(t, 500)
			crit := "Observation?code=http://loinc.org|8867-4"
			create := func(body string) string {
				r := w.Do(t, http.MethodPost, "/fhir/Subscription", phys, []byte(body))
				if r.Status != 201 {
					t.Fatalf("create subscription: %d %s", r.Status, r.Body)
				}
				id, _ := r.JSON(t)["id"].(string)
				return id
			}
			sFull := create(subscription(full.srv.URL, crit, subscriptions.FullResource))
			sIDs := create(subscription(ids.srv.URL, crit, subscriptions.IDOnly))
			sEmpty := create(subscription(empty.srv.URL, crit, ""))
			sDead := create(subscription(dead.srv.URL, crit, subscriptions.FullResource))
			for _, id := range []string{sFull, sIDs, sEmpty} {
				waitFor(t, "subscription active", func() bool { s, _ := subStatus(t, w, id); return s == "active" })
			}
			waitFor(t, "dead endpoint's subscription in error", func() bool {
				s, e := subStatus(t, w, sDead)
				return s == "error" && e == "subscription endpoint answered 500"
			})
			if hs := full.got(); len(hs) != 1 || !strings.Contains(hs[0], `"handshake"`) {
				t.Fatalf("handshake: %v", hs)
			}

			obs := func(code string) string {
				return w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"`+code+`"}]},"subject":{"reference":"Patient/`+pid+`"},"note":[{"text":"`+plantedNote+`"}]}`)
			}
			other := obs("2708-6")
			hit := obs("8867-4")
			waitFor(t, "full-resource notification", func() bool { return len(full.notified("Observation/"+hit)) == 1 })
			waitFor(t, "id-only notification", func() bool { return len(ids.notified("Observation/"+hit)) == 1 })
			receiverAt(t, w, sEmpty, head(t, w))
			if n := full.notified("Observation/" + other); len(n) != 0 {
				t.Fatalf("a change that does not match was notified: %v", n)
			}
			var bundle struct {
				Type  string `json:"type"`
				Entry []struct {
					FullURL  string          `json:"fullUrl"`
					Resource json.RawMessage `json:"resource"`
				} `json:"entry"`
			}
			if err := json.Unmarshal([]byte(full.notified("Observation/" + hit)[0]), &bundle); err != nil {
				t.Fatal(err)
			}
			if bundle.Type != "history" || len(bundle.Entry) != 2 || !strings.Contains(string(bundle.Entry[0].Resource), `"Parameters"`) ||
				!strings.Contains(string(bundle.Entry[1].Resource), plantedNote) {
				t.Fatalf("full-resource notification: %s", full.notified("Observation/" + hit)[0])
			}
			if n := ids.notified("Observation/" + hit)[0]; strings.Contains(n, plantedNote) || strings.Contains(n, `"resourceType":"Observation"`) {
				t.Fatalf("id-only notification carries the resource: %s", n)
			}
			// The empty payload: one bodiless POST for the match.
			if e := empty.got(); len(e) != 1 || e[0] != "" {
				t.Fatalf("empty payload got %q", e)
			}
			full.mu.Lock()
			if h := full.heads[len(full.heads)-1]; h.Get("X-Receiver-Token") != "tok-123" || h.Get("Content-Type") != "application/fhir+json" {
				t.Fatalf("headers: %v", h)
			}
			full.mu.Unlock()
			// The disclosure is the owner's read, in the ledger.
			read := false
			for _, rec := range w.Ledger(t) {
				if rec.Actor == w.UserIDs[authz.RolePhysician] && rec.Action == "vread" && len(rec.Entities) == 1 && strings.HasPrefix(rec.Entities[0], "Observation/"+hit+"/") {
					read = true
				}
			}
			if !read {
				t.Fatal("no read by the subscription's owner in the ledger")
			}

			// The owner loses access: the Patient no longer names them.
			put := `{"resourceType":"Patient","id":"` + pid + `","name":[{"family":"` + plantedName + `"}],"birthDate":"` + plantedBirth + `"}`
			if r := w.Do(t, http.MethodPut, "/fhir/Patient/"+pid, w.Tokens[authz.RoleAdmin], []byte(put)); r.Status != 200 {
				t.Fatalf("update patient: %d %s", r.Status, r.Body)
			}
			if r := w.Do(t, http.MethodGet, "/fhir/Observation/"+hit, phys, nil); r.Status != 403 && r.Status != 404 {
				t.Fatalf("the owner still reads the Observation: %d", r.Status)
			}
			after := obs("8867-4")
			waitFor(t, "notification after the owner lost access", func() bool { return len(full.notified("Observation/"+after)) == 1 })
			receiverAt(t, w, sIDs, head(t, w))
			receiverAt(t, w, sEmpty, head(t, w))
			if n := full.notified("Observation/" + after)[0]; strings.Contains(n, plantedNote) || strings.Contains(n, `"resourceType":"Observation"`) {
				t.Fatalf("full-resource notification after the owner lost access carries the resource: %s", n)
			}
			if n := ids.notified("Observation/" + after); len(n) != 0 {
				t.Fatalf("id-only notification after the owner lost access: %v", n)
			}
			if e := empty.got(); len(e) != 1 {
				t.Fatalf("empty payload notified after the owner lost access: %d", len(e))
			}
			for _, r := range []*receiver{ids, empty} {
				for _, body := range r.got() {
					for _, phi := range []string{plantedName, plantedBirth, plantedNote} {
						if strings.Contains(body, phi) {
							t.Fatalf("notification carries PHI %q: %s", phi, body)
						}
					}
				}
			}
			// off stops delivery.
			r := w.Do(t, http.MethodGet, "/fhir/Subscription/"+sFull, phys, nil)
			m := r.JSON(t)
			m["status"] = "off"
			body, _ := json.Marshal(m)
			if r := w.Do(t, http.MethodPut, "/fhir/Subscription/"+sFull, phys, body); r.Status != 200 {
				t.Fatalf("turn off: %d %s", r.Status, r.Body)
			}
			time.Sleep(300 * time.Millisecond) // let the manager see it
			n := len(full.got())
			last := obs("8867-4")
			receiverAt(t, w, sIDs, head(t, w))
			time.Sleep(200 * time.Millisecond)
			if len(full.got()) != n || len(full.notified("Observation/"+last)) != 0 {
				t.Fatal("a Subscription that is off was notified")
			}
		})
	}
}

// TestSubscriptionBadCriteria: criteria Ward cannot evaluate are a 400
// OperationOutcome naming the element, not the value, and nothing is
// stored.
func TestSubscriptionBadCriteria(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	before := head(t, w)
	for _, crit := range []string{"Observation?nosuchparam=secretvalue", "Nothing?code=secretvalue", "Observation?code=a&_sort=secretvalue"} {
		r := w.Do(t, http.MethodPost, "/fhir/Subscription", w.Tokens[authz.RolePhysician], []byte(subscription("https://example.org/h", crit, "")))
		if r.Status != 400 || !strings.Contains(string(r.Body), "Subscription.criteria") || strings.Contains(string(r.Body), "secretvalue") {
			t.Fatalf("%s: %d %s", crit, r.Status, r.Body)
		}
	}
	evs, err := w.App.Store.(storetest.Outboxer).OutboxAfter(context.Background(), before, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if strings.HasPrefix(e.Type, "resource.") {
			t.Fatalf("a refused Subscription was written: %s", e.JSON)
		}
	}
}

// TestSubscriptionWebsocket: the R4 websocket channel: bind with a token,
// bound, then ping for each matching change, and nothing else on the wire.
func TestSubscriptionWebsocket(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite, func(c *config.Config) { c.Events.WebhookSync = 50 * time.Millisecond })
	phys := w.Tokens[authz.RolePhysician]
	pid := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"`+plantedName+`"}],"generalPractitioner":[{"reference":"Practitioner/`+apptest.Links[authz.RolePhysician].Practitioner+`"}]}`)
	r := w.Do(t, http.MethodPost, "/fhir/Subscription", phys, []byte(`{"resourceType":"Subscription","status":"requested","reason":"ws","criteria":"Observation?code=http://loinc.org|8867-4","channel":{"type":"websocket"}}`))
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	id, _ := r.JSON(t)["id"].(string)
	waitFor(t, "websocket subscription active", func() bool { s, _ := subStatus(t, w, id); return s == "active" })

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(w.Server.URL, "http")+app.WebsocketPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	read := func() string {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, phi := range []string{plantedName, plantedNote} {
			if strings.Contains(string(b), phi) {
				t.Fatalf("websocket message carries PHI: %s", b)
			}
		}
		return string(b)
	}
	send := func(s string) {
		if err := c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	send("bind " + id)
	if m := read(); !strings.HasPrefix(m, "error ") {
		t.Fatalf("bind without a token: %q", m)
	}
	send("bind " + id + " not-a-token")
	if m := read(); !strings.HasPrefix(m, "error ") {
		t.Fatalf("bind with a bad token: %q", m)
	}
	send("bind " + id + " " + phys)
	if m := read(); m != "bound "+id {
		t.Fatalf("bind: %q", m)
	}
	obs := func(code string) {
		w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"`+code+`"}]},"subject":{"reference":"Patient/`+pid+`"},"note":[{"text":"`+plantedNote+`"}]}`)
	}
	obs("2708-6") // no match: no ping
	obs("8867-4")
	if m := read(); m != "ping "+id {
		t.Fatalf("ping: %q", m)
	}
	receiverAt(t, w, id, head(t, w))
	rctx, rcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer rcancel()
	if _, b, err := c.Read(rctx); err == nil {
		t.Fatalf("one match, a second message: %q", b)
	}
}

// TestSubscriptionStatusAndEvents: the Backport IG's $status and $events,
// answered for the caller: past notifications from the outbox, matching
// ones only, the resource only for a caller who may read it.
func TestSubscriptionStatusAndEvents(t *testing.T) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			w := apptest.Start(t, b, func(c *config.Config) { c.Events.WebhookSync = 50 * time.Millisecond })
			phys := w.Tokens[authz.RolePhysician]
			pid := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"`+plantedName+`"}],"generalPractitioner":[{"reference":"Practitioner/`+apptest.Links[authz.RolePhysician].Practitioner+`"}]}`)
			rcv := newReceiver(t, 200)
			r := w.Do(t, http.MethodPost, "/fhir/Subscription", phys, []byte(subscription(rcv.srv.URL, "Observation?code=http://loinc.org|8867-4", subscriptions.FullResource)))
			if r.Status != 201 {
				t.Fatalf("create: %d %s", r.Status, r.Body)
			}
			id, _ := r.JSON(t)["id"].(string)
			waitFor(t, "active", func() bool { s, _ := subStatus(t, w, id); return s == "active" })
			since := head(t, w) + 1
			obs := func(code string) string {
				return w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"`+code+`"}]},"subject":{"reference":"Patient/`+pid+`"},"note":[{"text":"`+plantedNote+`"}]}`)
			}
			other, hit := obs("2708-6"), obs("8867-4")
			waitFor(t, "notification", func() bool { return len(rcv.notified("Observation/"+hit)) == 1 })

			r = w.Do(t, http.MethodGet, "/fhir/Subscription/"+id+"/$status", phys, nil)
			if r.Status != 200 || !strings.Contains(string(r.Body), `"type":"searchset"`) || !strings.Contains(string(r.Body), `"valueCode":"query-status"`) ||
				!strings.Contains(string(r.Body), `"valueCode":"active"`) {
				t.Fatalf("$status: %d %s", r.Status, r.Body)
			}
			r = w.Do(t, http.MethodGet, fmt.Sprintf("/fhir/Subscription/%s/$events?eventsSinceNumber=%d", id, since), phys, nil)
			body := string(r.Body)
			if r.Status != 200 || !strings.Contains(body, `"valueCode":"query-event"`) || !strings.Contains(body, "Observation/"+hit) ||
				strings.Contains(body, "Observation/"+other) || !strings.Contains(body, plantedNote) {
				t.Fatalf("$events: %d %s", r.Status, body)
			}
			// Another caller who may not read the resource gets its id
			// at most; a caller who may not read the Subscription, nothing.
			r = w.Do(t, http.MethodGet, fmt.Sprintf("/fhir/Subscription/%s/$events?eventsSinceNumber=%d", id, since), w.Tokens[authz.RoleNurse], nil)
			if strings.Contains(string(r.Body), plantedNote) || strings.Contains(string(r.Body), plantedName) {
				t.Fatalf("$events for a nurse without a relationship: %d %s", r.Status, r.Body)
			}
			r = w.Do(t, http.MethodGet, "/fhir/Subscription/"+id+"/$events?eventsSinceNumber=x", phys, nil)
			if r.Status != 400 || !strings.Contains(string(r.Body), "eventsSinceNumber") {
				t.Fatalf("bad parameter: %d %s", r.Status, r.Body)
			}
			if r := w.Do(t, http.MethodGet, "/fhir/Subscription/nosuch/$status", phys, nil); r.Status != 404 {
				t.Fatalf("unknown subscription: %d %s", r.Status, r.Body)
			}
		})
	}
}

// TestSubscriptionHeartbeat: a heartbeat period gets heartbeat Bundles
// while nothing else is sent.
func TestSubscriptionHeartbeat(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite, func(c *config.Config) { c.Events.WebhookSync = 50 * time.Millisecond })
	rcv := newReceiver(t, 200)
	body := `{"resourceType":"Subscription","status":"requested","reason":"hb","criteria":"Observation","channel":{"extension":[{"url":"` + subscriptions.ExtHeartbeat + `","valueUnsignedInt":1}],` +
		`"type":"rest-hook","endpoint":"` + rcv.srv.URL + `","payload":"application/fhir+json","_payload":{"extension":[{"url":"` + subscriptions.ExtPayload + `","valueCode":"id-only"}]}}}`
	r := w.Do(t, http.MethodPost, "/fhir/Subscription", w.Tokens[authz.RolePhysician], []byte(body))
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	start := time.Now()
	waitFor(t, "two heartbeats", func() bool {
		n := 0
		for _, b := range rcv.got() {
			if strings.Contains(b, `"valueCode":"heartbeat"`) {
				n++
			}
		}
		return n >= 2
	})
	if el := time.Since(start); el < time.Second {
		t.Fatalf("two heartbeats of a 1 s period in %v", el)
	}
}

// TestReadsEmitPHIDisclosed: a read and a search of a patient's record
// append phi.disclosed (ids and codes only) with their ledger records; a
// refused read does not.
func TestReadsEmitPHIDisclosed(t *testing.T) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			w := apptest.Start(t, b)
			pid := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"`+plantedName+`"}],"birthDate":"`+plantedBirth+`"}`)
			before := head(t, w)
			if r := w.Do(t, http.MethodGet, "/fhir/Patient/"+pid, w.Tokens[authz.RoleAdmin], nil); r.Status != 200 {
				t.Fatalf("read: %d", r.Status)
			}
			if r := w.Do(t, http.MethodGet, "/fhir/Patient?_id="+pid, w.Tokens[authz.RoleAdmin], nil); r.Status != 200 {
				t.Fatalf("search: %d", r.Status)
			}
			if r := w.Do(t, http.MethodGet, "/fhir/Patient/"+pid, w.Tokens[authz.RoleUser], nil); r.Status < 400 {
				t.Fatalf("user read: %d", r.Status)
			}
			// phi.disclosed is derived from the committed ledger, off the
			// read path: the reads above wrote none. The node's own emitter
			// (every 200 ms) may already have run; what it committed is
			// covered by its cursor, saved in the same commit, and carries
			// the id derived from the ledger record.
			evs, err := w.App.Store.(storetest.Outboxer).OutboxAfter(context.Background(), before, 100)
			if err != nil {
				t.Fatal(err)
			}
			covered, _, err := w.App.Store.Cursor(context.Background(), app.DisclosedCursor)
			if err != nil {
				t.Fatal(err)
			}
			derived := map[string]int64{}
			for _, rec := range w.Ledger(t) {
				if e, ok := events.Disclosed(rec); ok {
					derived[e.ID] = rec.Seq
				}
			}
			for _, e := range evs {
				if e.Type != events.PHIDisclosed {
					continue
				}
				if seq, ok := derived[e.ID]; !ok || seq > covered {
					t.Fatalf("a read committed phi.disclosed with its ledger record: %s", e.JSON)
				}
			}
			runner := w.App.NewDisclosureRunner()
			for {
				n, _, err := runner.Step(context.Background())
				if errors.Is(err, store.ErrConflict) {
					continue // a node's own emitter moved the cursor first
				}
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					break
				}
			}
			// A second node's emitter that read the same batch commits
			// nothing: its guarded cursor no longer matches.
			stale := &store.Unit{Parts: []store.Part{
				store.SaveCursor{Name: app.DisclosedCursor, Seq: 1, Guarded: true, From: 0},
				store.Outbox{Events: []events.Event{events.New("t", events.PHIDisclosed, "", "", time.Now(), events.Data{})}},
			}}
			if err := w.App.Store.Commit(context.Background(), stale); !errors.Is(err, store.ErrConflict) {
				t.Fatalf("stale emitter step: %v, want ErrConflict", err)
			}
			evs, err = w.App.Store.(storetest.Outboxer).OutboxAfter(context.Background(), before, 100)
			if err != nil {
				t.Fatal(err)
			}
			actions := map[string]int{}
			for _, e := range evs {
				for _, phi := range []string{plantedName, plantedBirth} {
					if strings.Contains(string(e.JSON), phi) {
						t.Fatalf("event carries PHI: %s", e.JSON)
					}
				}
				if e.Type != events.PHIDisclosed {
					continue
				}
				env, err := events.Parse(e.JSON)
				if err != nil {
					t.Fatal(err)
				}
				if len(env.Data.Patients) != 1 || env.Data.Patients[0] != "Patient/"+pid || env.Data.Actor != w.UserIDs[authz.RoleAdmin] || e.Key != "Patient/"+pid {
					t.Fatalf("phi.disclosed: %s", e.JSON)
				}
				actions[env.Data.Action]++
			}
			if actions["read"] != 1 || actions["search-type"] != 1 || len(actions) != 2 {
				t.Fatalf("phi.disclosed by action: %v", actions)
			}
		})
	}
}
