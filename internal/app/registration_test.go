package app_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/records"
)

// A physician who registers a Patient reads it back through a CareTeam
// created with it (explicit data, audited as create and careteam-change);
// when the CareTeam's period ends (WARD_REGISTRATION_CARE_PERIOD, here a
// fixed clock moved past it) the relationship ends; another physician
// never had one; with the period 0 there is no CareTeam and no access.
func TestRegistrationCareTeam(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	w := apptest.StartWith(t, apptest.SQLite, []app.Option{app.WithNow(clock), app.WithCacheTTL(time.Millisecond)},
		func(c *config.Config) { c.RegistrationCarePeriod = 48 * time.Hour })
	P, N, A := authz.RolePhysician, authz.RoleNurse, authz.RoleAdmin
	for _, pr := range []string{"pract-physician", "pract-nurse"} {
		if r := w.Do(t, "PUT", "/fhir/Practitioner/"+pr, w.Tokens[A], []byte(`{"resourceType":"Practitioner","id":"`+pr+`"}`)); r.Status != 201 {
			t.Fatalf("practitioner: %d %s", r.Status, r.Body)
		}
	}
	pid := w.Create(t, P, `{"resourceType":"Patient","name":[{"family":"Registered"}]}`)
	if r := w.Do(t, "GET", "/fhir/Patient/"+pid, w.Tokens[P], nil); r.Status != 200 {
		t.Fatalf("the registering physician reads the patient: %d %s", r.Status, r.Body)
	}
	if r := w.Do(t, "GET", "/fhir/Patient/"+pid, w.Tokens[N], nil); r.Status != 403 && r.Status != 404 {
		t.Fatalf("a nurse outside the care team: %d", r.Status)
	}
	// The relationship is data: a CareTeam of the patient, with a period.
	r := w.Do(t, "GET", "/fhir/CareTeam?patient=Patient/"+pid, w.Tokens[P], nil)
	b := r.JSON(t)
	entries, _ := b["entry"].([]any)
	if r.Status != 200 || len(entries) != 1 {
		t.Fatalf("care team of the patient: %d %s", r.Status, r.Body)
	}
	team := entries[0].(map[string]any)["resource"].(map[string]any)
	period, _ := team["period"].(map[string]any)
	if team["status"] != "active" || period["start"] != "2026-03-01T10:00:00Z" || period["end"] != "2026-03-03T10:00:00Z" {
		t.Fatalf("registration team: %v", team)
	}
	// Audited: the create of both, and the careteam-change.
	var creates, changes int
	for _, rec := range w.Ledger(t) {
		switch {
		case rec.Action == "create" && rec.ResourceType == "CareTeam" && rec.Actor == w.UserIDs[P]:
			creates++
		case rec.Action == records.ActionCareTeamChange:
			changes++
		}
	}
	if creates != 1 || changes != 1 {
		t.Fatalf("ledger: %d CareTeam creates, %d careteam-change", creates, changes)
	}
	// One day later: still in care. Three days later: the period ended.
	mu.Lock()
	now = now.Add(24 * time.Hour)
	mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	if r := w.Do(t, "GET", "/fhir/Patient/"+pid, w.Tokens[P], nil); r.Status != 200 {
		t.Fatalf("within the period: %d", r.Status)
	}
	mu.Lock()
	now = now.Add(48 * time.Hour)
	mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	if r := w.Do(t, "GET", "/fhir/Patient/"+pid, w.Tokens[P], nil); r.Status != 403 && r.Status != 404 {
		t.Fatalf("after the period: %d %s", r.Status, r.Body)
	}
	if r := w.Do(t, "GET", "/fhir/Patient?_count=10", w.Tokens[P], nil); r.Status != 200 || len(r.Body) == 0 || contains(r.Body, pid) {
		t.Fatalf("a search after the period still finds the patient: %d %s", r.Status, r.Body)
	}

	// Period 0: no CareTeam is made.
	w0 := apptest.Start(t, apptest.SQLite, func(c *config.Config) { c.RegistrationCarePeriod = 0 })
	id0 := w0.Create(t, P, `{"resourceType":"Patient","name":[{"family":"Alone"}]}`)
	if r := w0.Do(t, "GET", "/fhir/Patient/"+id0, w0.Tokens[P], nil); r.Status == 200 {
		t.Fatalf("period 0: the physician reads the patient without a relationship")
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }

// A Patient a physician creates inside a Bundle is registered as a plain
// create registers it: a transaction's POST (and its conditional create,
// when it creates) and a batch's entries get the registration CareTeam in
// the same commit, audited alike, so the physician reads the Patient and
// its first Observation back; a conditional create that matches, and a
// transaction that fails, make none. PUT of a new Patient registers too.
func TestRegistrationCareTeamBundles(t *testing.T) {
	for _, be := range apptest.Backends {
		t.Run(string(be), func(t *testing.T) { testRegistrationBundles(t, be) })
	}
}

func testRegistrationBundles(t *testing.T, be apptest.Backend) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	w := apptest.StartWith(t, be, []app.Option{app.WithNow(func() time.Time { return now }), app.WithCacheTTL(time.Millisecond)},
		func(c *config.Config) { c.RegistrationCarePeriod = 48 * time.Hour })
	P, A := authz.RolePhysician, authz.RoleAdmin
	if r := w.Do(t, "PUT", "/fhir/Practitioner/pract-physician", w.Tokens[A], []byte(`{"resourceType":"Practitioner","id":"pract-physician"}`)); r.Status != 201 {
		t.Fatalf("practitioner: %d %s", r.Status, r.Body)
	}
	// teams are the registration CareTeam creates the ledger holds, by
	// the Patient they name.
	teams := func() map[string]int {
		out := map[string]int{}
		for _, rec := range w.Ledger(t) {
			if rec.Action == "create" && rec.ResourceType == "CareTeam" && rec.Detail == "registration" && rec.Actor == w.UserIDs[P] && len(rec.Entities) == 2 {
				out[strings.SplitN(rec.Entities[1], "/", 3)[1]]++
			}
		}
		return out
	}
	changes := func() int {
		n := 0
		for _, rec := range w.Ledger(t) {
			if rec.Action == records.ActionCareTeamChange {
				n++
			}
		}
		return n
	}
	bundle := func(typ string, entries ...string) []byte {
		return []byte(`{"resourceType":"Bundle","type":"` + typ + `","entry":[` + strings.Join(entries, ",") + `]}`)
	}
	// created returns the id of entry i of a Bundle response.
	created := func(r *apptest.Response, i int) string {
		t.Helper()
		b := r.JSON(t)
		es, _ := b["entry"].([]any)
		if len(es) <= i {
			t.Fatalf("response: %s", r.Body)
		}
		resp, _ := es[i].(map[string]any)["response"].(map[string]any)
		loc, _ := resp["location"].(string)
		parts := strings.Split(loc, "/")
		if len(parts) < 2 || parts[1] == "" {
			t.Fatalf("entry %d: no location: %s", i, r.Body)
		}
		id := parts[1]
		if id == "" {
			t.Fatalf("entry %d: no resource: %s", i, r.Body)
		}
		return id
	}
	// inCare checks the registration team of pid and that the physician
	// reads the patient back.
	inCare := func(what, pid string) {
		t.Helper()
		if n := teams()[pid]; n != 1 {
			t.Fatalf("%s: %d registration CareTeam creates in the ledger for %s", what, n, pid)
		}
		r := w.Do(t, "GET", "/fhir/CareTeam?patient=Patient/"+pid, w.Tokens[P], nil)
		es, _ := r.JSON(t)["entry"].([]any)
		if r.Status != 200 || len(es) != 1 {
			t.Fatalf("%s: care team of the patient: %d %s", what, r.Status, r.Body)
		}
		team := es[0].(map[string]any)["resource"].(map[string]any)
		period, _ := team["period"].(map[string]any)
		subject, _ := team["subject"].(map[string]any)
		parts, _ := team["participant"].([]any)
		if team["status"] != "active" || period["start"] != "2026-03-01T10:00:00Z" || period["end"] != "2026-03-03T10:00:00Z" ||
			subject["reference"] != "Patient/"+pid || len(parts) != 1 ||
			parts[0].(map[string]any)["member"].(map[string]any)["reference"] != "Practitioner/pract-physician" {
			t.Fatalf("%s: registration team: %v", what, team)
		}
		if r := w.Do(t, "GET", "/fhir/Patient/"+pid, w.Tokens[P], nil); r.Status != 200 {
			t.Fatalf("%s: the registering physician reads the patient: %d %s", what, r.Status, r.Body)
		}
	}
	obs := `{"fullUrl":"urn:uuid:o1","resource":{"resourceType":"Observation","status":"final","code":{"text":"pulse"},"subject":{"reference":"urn:uuid:p1"}},"request":{"method":"POST","url":"Observation"}}`

	// A transaction: a Patient and its first Observation.
	r := w.Do(t, "POST", "/fhir", w.Tokens[P], bundle("transaction",
		`{"fullUrl":"urn:uuid:p1","resource":{"resourceType":"Patient","name":[{"family":"Tx"}]},"request":{"method":"POST","url":"Patient"}}`, obs))
	if r.Status != 200 {
		t.Fatalf("transaction: %d %s", r.Status, r.Body)
	}
	pid, oid := created(r, 0), created(r, 1)
	inCare("transaction", pid)
	if r := w.Do(t, "GET", "/fhir/Observation/"+oid, w.Tokens[P], nil); r.Status != 200 {
		t.Fatalf("transaction: the physician reads the observation: %d %s", r.Status, r.Body)
	}
	if n := changes(); n != 1 {
		t.Fatalf("transaction: %d careteam-change records", n)
	}

	// A conditional create in a transaction registers when it creates,
	// not when it matches.
	cond := `{"fullUrl":"urn:uuid:p1","resource":{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"reg-1"}]},"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:mrn|reg-1"}}`
	r = w.Do(t, "POST", "/fhir", w.Tokens[P], bundle("transaction", cond, obs))
	if r.Status != 200 {
		t.Fatalf("conditional transaction: %d %s", r.Status, r.Body)
	}
	cid := created(r, 0)
	inCare("conditional create", cid)
	r = w.Do(t, "POST", "/fhir", w.Tokens[P], bundle("transaction", cond))
	if r.Status != 200 || created(r, 0) != cid {
		t.Fatalf("conditional create that matches: %d %s", r.Status, r.Body)
	}
	if n := teams()[cid]; n != 1 {
		t.Fatalf("a conditional create that matched registered again: %d", n)
	}

	// A batch: a plain and a conditional create.
	r = w.Do(t, "POST", "/fhir", w.Tokens[P], bundle("batch",
		`{"resource":{"resourceType":"Patient","name":[{"family":"Batch"}]},"request":{"method":"POST","url":"Patient"}}`,
		`{"resource":{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"reg-2"}]},"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:mrn|reg-2"}}`))
	if r.Status != 200 {
		t.Fatalf("batch: %d %s", r.Status, r.Body)
	}
	inCare("batch", created(r, 0))
	inCare("conditional batch", created(r, 1))

	// A transaction with one bad entry commits nothing: no CareTeam.
	before := len(teams())
	r = w.Do(t, "POST", "/fhir", w.Tokens[P], bundle("transaction",
		`{"fullUrl":"urn:uuid:p1","resource":{"resourceType":"Patient","name":[{"family":"Failed"}]},"request":{"method":"POST","url":"Patient"}}`,
		`{"resource":{"resourceType":"Observation","status":"no-such-status","code":{"text":"x"},"subject":{"reference":"urn:uuid:p1"}},"request":{"method":"POST","url":"Observation"}}`))
	if r.Status < 400 {
		t.Fatalf("a transaction with a bad entry: %d %s", r.Status, r.Body)
	}
	if after := len(teams()); after != before {
		t.Fatalf("a failed transaction registered: %d -> %d", before, after)
	}
	if r := w.Do(t, "GET", "/fhir/Patient?family=Failed", w.Tokens[A], nil); r.Status != 200 || contains(r.Body, `"Patient"`) && contains(r.Body, "Failed") {
		t.Fatalf("a failed transaction stored its patient: %d %s", r.Status, r.Body)
	}

	// PUT of a new Patient (update as create) registers like POST.
	if r := w.Do(t, "PUT", "/fhir/Patient/reg-put", w.Tokens[P], []byte(`{"resourceType":"Patient","id":"reg-put"}`)); r.Status != 201 {
		t.Fatalf("put as create: %d %s", r.Status, r.Body)
	}
	inCare("put as create", "reg-put")
	if n := changes(); n != 5 {
		t.Fatalf("%d careteam-change records, want 5", n)
	}
}
