package app_test

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/invalidation"
	"github.com/wardhealth/ward/internal/invalidation/natstest"
	"github.com/wardhealth/ward/internal/store"
)

// Every cluster test makes the caches' own lifetime an hour: only the
// invalidation bus (or failing closed) can make a node see another node's
// change within the test.
var longTTL = []app.Option{app.WithCacheTTL(time.Hour)}

func onBus(natsURL, prefix string) func(*config.Config) {
	return func(c *config.Config) { c.NATSURL, c.NATSPrefix = natsURL, prefix }
}

func offBus(c *config.Config) { c.NATSURL = "" }

const (
	phys  = authz.RolePhysician
	admin = authz.RoleAdmin
)

// status GETs path on w with token.
func status(t *testing.T, w *apptest.Ward, path, token string) int {
	t.Helper()
	return w.Do(t, "GET", path, token, nil).Status
}

// propagation bounds how long a change on one node may take to reach
// another over the bus. The nodes cache for an hour (longTTL), so a change
// seen within it came over the bus, however slow a loaded machine makes
// the delivery: the bound is generous, not a latency target.
const propagation = 30 * time.Second

// within polls until GET path on w answers want, for at most propagation.
func within(t *testing.T, w *apptest.Ward, path, token string, want int, what string) {
	t.Helper()
	got := 0
	for deadline := time.Now().Add(propagation); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got = status(t, w, path, token); got == want {
			return
		}
	}
	t.Fatalf("%s: %s answered %d for %v, want %d", what, path, got, propagation, want)
}

func denyAll(pid string) string {
	return `{"resourceType":"Consent","status":"active","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},` +
		`"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],"patient":{"reference":"Patient/` + pid + `"},` +
		`"policyRule":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"OPTOUT"}]},"provision":{"type":"deny"}}`
}

func observation(pid string) string {
	return `{"resourceType":"Observation","status":"final","code":{"text":"pulse"},"subject":{"reference":"Patient/` + pid + `"}}`
}

func careTeam(pid, status string) string {
	return `{"resourceType":"CareTeam","status":"` + status + `","subject":{"reference":"Patient/` + pid + `"},"participant":[{"member":{"reference":"Practitioner/pract-physician"}}]}`
}

func revoke(t *testing.T, w *apptest.Ward, token string) {
	t.Helper()
	r := w.Do(t, "POST", "/oauth2/revoke", "", []byte(url.Values{"token": {token}}.Encode()), "Content-Type: application/x-www-form-urlencoded")
	if r.Status != 200 {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
}

// Three nodes on one PostgreSQL schema: a and b share the NATS bus, c is
// not on it. A change committed on a is honoured on b within the poll
// (immediately, in practice), while c, which has only its hour-long TTL,
// keeps serving what it cached: without the bus b would behave like c.
func TestClusterInvalidation(t *testing.T) {
	natsURL, prefix := natstest.URL(t), natstest.Prefix()
	a := apptest.StartWith(t, apptest.Postgres, longTTL, onBus(natsURL, prefix))
	b := apptest.Join(t, a, longTTL)
	c := apptest.Join(t, a, longTTL, offBus)
	if a.App.Bus == nil || b.App.Bus == nil || c.App.Bus != nil {
		t.Fatal("a and b must be on the bus, c not")
	}

	t.Run("consent denying the physician", func(t *testing.T) {
		pid := a.Create(t, admin, `{"resourceType":"Patient","gender":"female","generalPractitioner":[{"reference":"Practitioner/pract-physician"}]}`)
		obs := "/fhir/Observation/" + a.Create(t, admin, observation(pid))
		for _, w := range []*apptest.Ward{b, c} {
			for range 2 { // the second read is decided from cached facts
				if s := status(t, w, obs, w.Tokens[phys]); s != 200 {
					t.Fatalf("before the consent: %d", s)
				}
			}
		}
		a.Create(t, admin, denyAll(pid))
		within(t, b, obs, b.Tokens[phys], 403, "b after a stored a denying Consent")
		if s := status(t, c, obs, c.Tokens[phys]); s != 200 {
			t.Fatalf("control: c (off the bus) answered %d; the test cannot tell the bus from the TTL", s)
		}
	})

	t.Run("care team no longer active", func(t *testing.T) {
		pid := a.Create(t, admin, `{"resourceType":"Patient","gender":"male"}`)
		team := a.Create(t, admin, careTeam(pid, "active"))
		obs := "/fhir/Observation/" + a.Create(t, admin, observation(pid))
		for _, w := range []*apptest.Ward{b, c} {
			if s := status(t, w, obs, w.Tokens[phys]); s != 200 {
				t.Fatalf("through the active care team: %d", s)
			}
		}
		body := strings.Replace(careTeam(pid, "inactive"), `{"resourceType":"CareTeam",`, `{"resourceType":"CareTeam","id":"`+team+`",`, 1)
		if r := a.Do(t, "PUT", "/fhir/CareTeam/"+team, a.Tokens[admin], []byte(body)); r.Status != 200 {
			t.Fatalf("update care team: %d %s", r.Status, r.Body)
		}
		within(t, b, obs, b.Tokens[phys], 403, "b after a ended the care relationship")
		if s := status(t, c, obs, c.Tokens[phys]); s != 200 {
			t.Fatalf("control: c (off the bus) answered %d", s)
		}
	})

	t.Run("token revoked on another node", func(t *testing.T) {
		pid := a.Create(t, admin, `{"resourceType":"Patient","gender":"other","generalPractitioner":[{"reference":"Practitioner/pract-physician"}]}`)
		obs := "/fhir/Observation/" + a.Create(t, admin, observation(pid))
		tok := a.Login(t, "physician-user", apptest.Password)
		for _, w := range []*apptest.Ward{b, c} {
			if s := status(t, w, obs, tok); s != 200 {
				t.Fatalf("before the revocation: %d", s)
			}
		}
		revoke(t, a, tok)
		within(t, b, obs, tok, 401, "b after a revoked the token")
		if s := status(t, c, obs, tok); s != 200 {
			t.Fatalf("control: c (off the bus) answered %d", s)
		}
	})

	t.Run("user disabled on another node", func(t *testing.T) {
		pid := a.Create(t, admin, `{"resourceType":"Patient","gender":"female","generalPractitioner":[{"reference":"Practitioner/pract-physician"}]}`)
		obs := "/fhir/Observation/" + a.Create(t, admin, observation(pid))
		uid := apptest.AddLinkedUser(t, a.App.Store, "default", "locum", phys, &store.User{Practitioner: "pract-physician"})
		tok := a.Login(t, "locum", apptest.Password)
		for _, w := range []*apptest.Ward{a, b, c} {
			if s := status(t, w, obs, tok); s != 200 {
				t.Fatalf("before disabling: %d", s)
			}
		}
		if r := a.Do(t, "POST", "/admin/users/"+uid+"/disable", a.Tokens[admin], nil); r.Status != 200 {
			t.Fatalf("disable: %d %s", r.Status, r.Body)
		}
		if s := status(t, a, obs, tok); s != 401 {
			t.Fatalf("a, which disabled the user, answered %d", s)
		}
		within(t, b, obs, tok, 401, "b after a disabled the user")
		if s := status(t, c, obs, tok); s != 200 {
			t.Fatalf("control: c (off the bus) answered %d", s)
		}
		if r := a.Do(t, "POST", "/admin/users/"+uid+"/enable", a.Tokens[admin], nil); r.Status != 200 {
			t.Fatalf("enable: %d %s", r.Status, r.Body)
		}
		within(t, b, obs, tok, 200, "b after a enabled the user again")
	})
}

// While a node is cut off from the bus it cannot know what it missed: it
// decides from facts loaded afresh and checks revocations in the store on
// every request, and when it is back it drops what it cached before.
// Changes are written by c, a node off the bus, so that no message could
// ever make b see them: only b's own fail-closed behaviour can.
func TestClusterFailsClosedWhileDisconnected(t *testing.T) {
	srv := natstest.Start(t)
	prefix := natstest.Prefix()
	a := apptest.StartWith(t, apptest.Postgres, longTTL, onBus(srv.URL, prefix))
	b := apptest.Join(t, a, longTTL)
	c := apptest.Join(t, a, longTTL, offBus)

	pid := a.Create(t, admin, `{"resourceType":"Patient","gender":"female","generalPractitioner":[{"reference":"Practitioner/pract-physician"}]}`)
	obs := "/fhir/Observation/" + a.Create(t, admin, observation(pid))
	tok := b.Login(t, "physician-user", apptest.Password)
	for range 2 {
		if s := status(t, b, obs, tok); s != 200 {
			t.Fatalf("before: %d", s)
		}
	}
	// Connected, b trusts its cache: c's unpublished Consent is not seen.
	cid := c.Create(t, admin, denyAll(pid))
	if s := status(t, b, obs, tok); s != 200 {
		t.Fatalf("connected, cached: %d (want 200: the change was never published)", s)
	}

	srv.Stop()
	waitLive(t, b, false)
	if s := status(t, b, obs, tok); s != 403 {
		t.Fatalf("disconnected: b answered %d from its cache, want 403 from facts loaded afresh", s)
	}
	// Withdrawn (on c again): b, still cut off, sees that at once too.
	consentStatus(t, c, cid, pid, "inactive")
	if s := status(t, b, obs, tok); s != 200 {
		t.Fatalf("disconnected, consent withdrawn: %d", s)
	}
	// A revocation on c is honoured on b on the next request.
	other := b.Login(t, "physician-user", apptest.Password)
	if s := status(t, b, obs, other); s != 200 {
		t.Fatalf("disconnected, second token: %d", s)
	}
	revoke(t, c, other)
	if s := status(t, b, obs, other); s != 401 {
		t.Fatalf("disconnected: b accepted a token revoked on c (%d)", s)
	}

	// Re-activated on c while b is still away; then b comes back. What b
	// cached so far (the withdrawn state) must not outlive the reconnect.
	consentStatus(t, c, cid, pid, "active")
	srv.Restart()
	waitLive(t, b, true)
	if s := status(t, b, obs, tok); s != 403 {
		t.Fatalf("reconnected: %d, want 403 (caches reset on reconnect)", s)
	}
	for _, want := range []string{"cluster bus disconnected", "cluster bus reconnected"} {
		if !strings.Contains(b.Log.String(), want) {
			t.Errorf("b's log does not say %q", want)
		}
	}
}

func waitLive(t *testing.T, w *apptest.Ward, want bool) {
	t.Helper()
	for deadline := time.Now().Add(propagation); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if w.App.Bus.Live() == want {
			return
		}
	}
	t.Fatalf("bus live never became %v", want)
}

func consentStatus(t *testing.T, w *apptest.Ward, cid, pid, status string) {
	t.Helper()
	body := strings.Replace(denyAll(pid), `"status":"active"`, `"id":"`+cid+`","status":"`+status+`"`, 1)
	if r := w.Do(t, "PUT", "/fhir/Consent/"+cid, w.Tokens[admin], []byte(body)); r.Status != 200 {
		t.Fatalf("consent %s: %d %s", status, r.Status, r.Body)
	}
}

// Everything published on the cluster's subjects while PHI is written,
// consented, cared for and a token revoked is ids only: no planted name,
// identifier, birth date, phone or free text, and every message decodes.
func TestClusterMessagesCarryNoPHI(t *testing.T) {
	natsURL, prefix := natstest.URL(t), natstest.Prefix()
	plain, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	var mu sync.Mutex
	var msgs [][]byte
	if _, err := plain.Subscribe(prefix+".>", func(m *nats.Msg) {
		mu.Lock()
		msgs = append(msgs, m.Data)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	plain.Flush()
	a := apptest.StartWith(t, apptest.Postgres, longTTL, onBus(natsURL, prefix))
	b := apptest.Join(t, a, longTTL)

	planted := []string{"Zebediah", "Quillfeather", "987-65-4329", "1931-07-14", "555-0199", "Wisteria Lane", "allergic to penicillin since childhood"}
	pid := a.Create(t, admin, `{"resourceType":"Patient","name":[{"family":"Quillfeather","given":["Zebediah"]}],"birthDate":"1931-07-14",`+
		`"identifier":[{"system":"http://hl7.org/fhir/sid/us-ssn","value":"987-65-4329"}],"telecom":[{"system":"phone","value":"555-0199"}],`+
		`"address":[{"line":["12 Wisteria Lane"]}],"generalPractitioner":[{"reference":"Practitioner/pract-physician"}]}`)
	a.Create(t, admin, `{"resourceType":"AllergyIntolerance","patient":{"reference":"Patient/`+pid+`"},"note":[{"text":"allergic to penicillin since childhood"}]}`)
	a.Create(t, admin, careTeam(pid, "active"))
	a.Create(t, admin, `{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/`+pid+`"},"participant":[{"individual":{"reference":"Practitioner/pract-physician"}}]}`)
	a.Create(t, admin, denyAll(pid))
	revoke(t, a, a.Login(t, "nurse-user", apptest.Password))
	if _, err := a.App.Tokens.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	// b writes too (its messages go to a).
	b.Create(t, admin, `{"resourceType":"Patient","name":[{"family":"Quillfeather"}],"birthDate":"1931-07-14"}`)

	kinds := map[invalidation.Kind]bool{}
	for deadline := time.Now().Add(propagation); time.Now().Before(deadline) && len(kinds) < 4; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		for _, m := range msgs {
			if d, err := invalidation.Decode(m); err == nil {
				kinds[d.Kind] = true
			}
		}
		mu.Unlock()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(kinds) != 4 {
		t.Fatalf("saw kinds %v in %d messages, want all four", kinds, len(msgs))
	}
	for _, m := range msgs {
		d, err := invalidation.Decode(m)
		if err != nil {
			t.Errorf("a message that is not an invalidation: %q (%v)", m, err)
			continue
		}
		if d.Tenant != "" && d.Tenant != "default" {
			t.Errorf("tenant %q", d.Tenant)
		}
		for _, p := range planted {
			if strings.Contains(string(m), p) {
				t.Errorf("message %q carries %q", m, p)
			}
		}
	}
	for _, w := range []*apptest.Ward{a, b} {
		for _, p := range planted {
			if strings.Contains(w.Log.String(), p) {
				t.Errorf("a node's log carries %q", p)
			}
		}
	}
}

// A node configured for a cluster refuses to start without it, naming the
// setting and the server but not the password.
func TestClusterNodeNeedsNATS(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.NATSURL = "nats://ward:n4tspassw0rd@127.0.0.1:1"
	_, err := app.Open(context.Background(), cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "WARD_NATS_URL") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "n4tspassw0rd") {
		t.Fatalf("the error shows the password: %v", err)
	}
}
