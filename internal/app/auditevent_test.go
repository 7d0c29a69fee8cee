package app_test

import (
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/store"
)

// disclosureScenario scripts the accesses of the accounting test on the
// patient the user-role account is linked to: a clinician (a physician
// who is the patient's GP), a nurse (also in the patient's care), a
// physician outside the care who is refused and then breaks the glass,
// and an admin's bulk export. It returns the physician-GP's token.
func disclosureScenario(t *testing.T, w *apptest.Ward) (gpToken, obs string) {
	t.Helper()
	P := apptest.Links[authz.RoleUser].Patient
	apptest.AddLinkedUser(t, w.App.Store, w.Config.Tenant, "gp-user", authz.RolePhysician, &store.User{Practitioner: "pract-gp"})
	gp := w.Login(t, "gp-user", apptest.Password)
	admin := w.Tokens[authz.RoleAdmin]
	if r := w.Do(t, "PUT", "/fhir/Patient/"+P, admin, []byte(`{"resourceType":"Patient","id":"`+P+`","generalPractitioner":[{"reference":"Practitioner/pract-gp"},{"reference":"Practitioner/pract-nurse"}]}`)); r.Status != 201 {
		t.Fatalf("put patient: %d %s", r.Status, r.Body)
	}
	obs = w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+P+`"}}`)
	// An unrelated patient, whose accesses must not show.
	w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","active":true}`)
	steps := []struct {
		token, path string
		headers     []string
		want        int
	}{
		{gp, "/fhir/Patient/" + P, nil, 200},
		{w.Tokens[authz.RoleNurse], "/fhir/Observation?subject=Patient/" + P, nil, 200},
		{w.Tokens[authz.RolePhysician], "/fhir/Observation/" + obs, nil, 403},
		{w.Tokens[authz.RolePhysician], "/fhir/Observation/" + obs, []string{"X-Break-Glass: ETREAT"}, 200},
	}
	for _, s := range steps {
		if r := w.Do(t, "GET", s.path, s.token, nil, s.headers...); r.Status != s.want {
			t.Fatalf("GET %s: %d, want %d: %s", s.path, r.Status, s.want, r.Body)
		}
	}
	exportAs(t, w, authz.RoleAdmin, "/fhir/Patient/$export")
	return gp, obs
}

// auditEvents decodes a Bundle of AuditEvents and validates each against
// the R4 JSON schema.
func auditEvents(t *testing.T, body []byte) []map[string]any {
	t.Helper()
	val, err := fhir.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		ResourceType string
		Entry        []struct{ Resource json.RawMessage }
	}
	if err := json.Unmarshal(body, &b); err != nil || b.ResourceType != "Bundle" {
		t.Fatalf("not a Bundle: %v %.300s", err, body)
	}
	var out []map[string]any
	for _, e := range b.Entry {
		res, err := fhir.Parse(e.Resource)
		if err != nil {
			t.Fatalf("AuditEvent does not parse: %v", err)
		}
		if issues := val.Validate(res); len(issues) > 0 {
			t.Fatalf("AuditEvent fails the R4 schema: %+v\n%s", issues, e.Resource)
		}
		out = append(out, res.Doc)
	}
	return out
}

// summary is one AuditEvent as "role action [BTG]", the role from the
// agent, the action from the ward action subtype.
func summary(ev map[string]any) string {
	agent := ev["agent"].([]any)[0].(map[string]any)
	role := agent["role"].([]any)[0].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"].(string)
	var action string
	for _, s := range ev["subtype"].([]any) {
		if c := s.(map[string]any); c["system"] == "urn:ward:audit-action" {
			action = c["code"].(string)
		}
	}
	s := role + " " + action
	for _, p := range asList(ev["purposeOfEvent"]) {
		if c := p.(map[string]any)["coding"].([]any)[0].(map[string]any); c["code"] == "BTG" {
			s += " BTG"
		}
	}
	if ev["outcome"] != "0" {
		s += " outcome=" + ev["outcome"].(string)
	}
	return s
}

func asList(v any) []any { l, _ := v.([]any); return l }

func TestDisclosuresScenario(t *testing.T) {
	for _, backend := range apptest.Backends {
		t.Run(string(backend), func(t *testing.T) {
			w := apptest.Start(t, backend)
			disclosureScenario(t, w)
			P := apptest.Links[authz.RoleUser].Patient
			po := w.Tokens[authz.RolePrivacyOfficer]
			r := w.Do(t, "GET", "/fhir/Patient/"+P+"/$disclosures", po, nil)
			if r.Status != 200 {
				t.Fatalf("$disclosures: %d %s", r.Status, r.Body)
			}
			var got []string
			for _, ev := range auditEvents(t, r.Body) {
				got = append(got, summary(ev))
				refs := fmt.Sprint(ev["entity"])
				if !strings.Contains(refs, "Patient/"+P) {
					t.Errorf("disclosure does not name the patient: %s", refs)
				}
				// The client address is a keyed hash, never the address.
				net, _ := ev["agent"].([]any)[0].(map[string]any)["network"].(map[string]any)
				if addr, _ := net["address"].(string); len(addr) != 32 || strings.Contains(addr, "127.0.0.1") || net["type"] != "2" {
					t.Errorf("agent.network: %v", net)
				}
			}
			// Newest first: the export's two files (Patient, Observation),
			// the break-glass read, the nurse's search, the GP's read, the
			// admin's Observation create, and the PUT that created the
			// Patient with the governance record its GPs make. The refused
			// read is no disclosure; the unrelated patient is absent.
			want := []string{"admin export-download", "admin export-download", "physician read BTG", "nurse search-type", "physician read",
				"admin create", "admin gp-change", "admin update"}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("accounting:\n got %q\nwant %q", got, want)
			}
			// The refused read is in the AuditEvent view, as a failure.
			r = w.Do(t, "GET", "/fhir/AuditEvent?patient=Patient/"+P+"&outcome=4", po, nil)
			if r.Status != 200 {
				t.Fatalf("AuditEvent search: %d %s", r.Status, r.Body)
			}
			var denied []string
			for _, ev := range auditEvents(t, r.Body) {
				denied = append(denied, summary(ev))
			}
			if fmt.Sprint(denied) != "[physician read outcome=4]" {
				t.Fatalf("denied reads: %q", denied)
			}
			// CSV: a header and one row per disclosure; the break-glass
			// row says emergency.
			r = w.Do(t, "GET", "/fhir/Patient/"+P+"/$disclosures?_format=csv", po, nil)
			rows, err := csv.NewReader(strings.NewReader(string(r.Body))).ReadAll()
			if r.Status != 200 || err != nil || len(rows) != len(want)+1 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv") {
				t.Fatalf("csv: %d %v %d rows\n%s", r.Status, err, len(rows), r.Body)
			}
			if rows[3][2] != "physician" || rows[3][7] != "yes" || rows[3][5] != "Observation:1" || rows[4][7] != "no" {
				t.Fatalf("csv rows: %q", rows[1:5])
			}
			if files := []string{rows[1][5], rows[2][5]}; !slices.Contains(files, "Patient:1") || !slices.ContainsFunc(files, func(s string) bool { return strings.HasPrefix(s, "Observation:") }) {
				t.Fatalf("export rows: %q", files)
			}
			r = w.Do(t, "GET", "/fhir/Patient/"+P+"/$disclosures", po, nil, "Accept: text/html")
			if r.Status != 200 || !strings.Contains(string(r.Body), `<tr class="emergency">`) || strings.Count(string(r.Body), "<tr") != len(want)+1 {
				t.Fatalf("html: %d %.500s", r.Status, r.Body)
			}
			// A period that ends before the scenario holds nothing.
			r = w.Do(t, "GET", "/fhir/Patient/"+P+"/$disclosures?end=2001-01-01", po, nil)
			if evs := auditEvents(t, r.Body); r.Status != 200 || len(evs) != 0 {
				t.Fatalf("old period: %d, %d events", r.Status, len(evs))
			}
			// Reading the accounting is itself audited.
			ledger := w.Ledger(t)
			if !slices.ContainsFunc(ledger, func(rec *audit.Record) bool {
				return rec.Action == "disclosures" && rec.Actor == w.UserIDs[authz.RolePrivacyOfficer] && slices.Contains(rec.Entities, "Patient/"+P)
			}) {
				t.Fatal("the accounting read is not in the ledger")
			}
		})
	}
}

// TestAuditEventAccess: who reads AuditEvents (privacy officer and admin
// all, a patient only their own minus the withheld, a clinician nothing),
// that they are read-only, and that reading them is audited.
func TestAuditEventAccess(t *testing.T) {
	for _, backend := range apptest.Backends {
		t.Run(string(backend), func(t *testing.T) {
			w := apptest.Start(t, backend)
			gp, obs := disclosureScenario(t, w)
			P := apptest.Links[authz.RoleUser].Patient
			po, user := w.Tokens[authz.RolePrivacyOfficer], w.Tokens[authz.RoleUser]
			for _, tok := range []string{gp, w.Tokens[authz.RoleNurse]} {
				r := w.Do(t, "GET", "/fhir/AuditEvent?patient="+P, tok, nil)
				if r.Status != 403 || !strings.Contains(string(r.Body), "OperationOutcome") {
					t.Fatalf("clinician: %d %s", r.Status, r.Body)
				}
				if r := w.Do(t, "GET", "/fhir/Patient/"+P+"/$disclosures", tok, nil); r.Status != 403 {
					t.Fatalf("clinician $disclosures: %d", r.Status)
				}
			}
			// The officer and the admin see everything of the tenant.
			var all []map[string]any
			for _, tok := range []string{po, w.Tokens[authz.RoleAdmin]} {
				r := w.Do(t, "GET", "/fhir/AuditEvent?_count=1000", tok, nil)
				if r.Status != 200 {
					t.Fatalf("officer: %d %s", r.Status, r.Body)
				}
				all = auditEvents(t, r.Body)
			}
			if len(all) < 15 {
				t.Fatalf("%d AuditEvents for the whole tenant", len(all))
			}
			// Search parameters.
			for _, c := range []struct {
				query string
				want  func(map[string]any) bool
				n     int
			}{
				{"agent=" + w.UserIDs[authz.RoleNurse], func(ev map[string]any) bool {
					return strings.Contains(fmt.Sprint(ev["agent"]), w.UserIDs[authz.RoleNurse])
				}, -1},
				{"entity=Observation/" + obs + "&outcome=0", func(ev map[string]any) bool { return strings.Contains(fmt.Sprint(ev["entity"]), "Observation/"+obs) }, -1},
				{"patient=" + P + "&subtype=http://hl7.org/fhir/restful-interaction|read", func(ev map[string]any) bool { return strings.HasPrefix(summary(ev), "physician read") }, 3},
				{"patient=" + P + "&action=C", func(ev map[string]any) bool { return ev["action"] == "C" }, 1},
				{"patient=" + P + "&type=110106", func(ev map[string]any) bool { return summary(ev) == "admin export-download" }, 2},
				{"patient=" + P + "&date=lt2001-01-01", nil, 0},
				{"patient=" + P + "&date=ge2001-01-01&date=le2999", nil, 9},
			} {
				r := w.Do(t, "GET", "/fhir/AuditEvent?"+c.query, po, nil)
				if r.Status != 200 {
					t.Fatalf("%s: %d %s", c.query, r.Status, r.Body)
				}
				evs := auditEvents(t, r.Body)
				if c.n >= 0 && len(evs) != c.n || c.n < 0 && len(evs) == 0 {
					t.Errorf("%s: %d events, want %d", c.query, len(evs), c.n)
				}
				for _, ev := range evs {
					if c.want != nil && !c.want(ev) {
						t.Errorf("%s: does not match: %s", c.query, summary(ev))
					}
				}
			}
			// Paging: _count=3 and next links walk the patient's events.
			seen := 0
			next := "/fhir/AuditEvent?patient=" + P + "&_count=3"
			for next != "" && seen < 100 {
				r := w.Do(t, "GET", next, po, nil)
				seen += len(auditEvents(t, r.Body))
				next = ""
				var b struct {
					Link []struct{ Relation, URL string }
				}
				json.Unmarshal(r.Body, &b)
				for _, l := range b.Link {
					if l.Relation == "next" {
						next = strings.TrimPrefix(l.URL, w.Server.URL)
					}
				}
			}
			if seen != 9 {
				t.Fatalf("paging saw %d events of the patient, want 9 (8 disclosures and the refused read)", seen)
			}
			// Bad input: OperationOutcome, 400, the value not echoed.
			for _, q := range []string{"date=xx<script>", "outcome=5", "patient=a/b/c", "colour=red", "_count=-1", "action=Q", "_cursor=zz"} {
				r := w.Do(t, "GET", "/fhir/AuditEvent?"+q, po, nil)
				if r.Status != 400 || !strings.Contains(string(r.Body), "OperationOutcome") || strings.Contains(string(r.Body), "script") {
					t.Errorf("%s: %d %s", q, r.Status, r.Body)
				}
			}
			// The patient sees only their own record.
			r := w.Do(t, "GET", "/fhir/AuditEvent?_count=1000", user, nil)
			own := auditEvents(t, r.Body)
			if r.Status != 200 || len(own) != 9 {
				t.Fatalf("patient's own: %d, %d events", r.Status, len(own))
			}
			for _, ev := range own {
				if !strings.Contains(fmt.Sprint(ev["entity"]), "Patient/"+P) {
					t.Fatalf("patient sees an event not about them: %v", ev)
				}
			}
			if r := w.Do(t, "GET", "/fhir/AuditEvent?patient=someone-else", user, nil); r.Status != 403 {
				t.Fatalf("patient asks for another: %d", r.Status)
			}
			if r := w.Do(t, "GET", "/fhir/Patient/someone-else/$disclosures", user, nil); r.Status != 403 {
				t.Fatalf("patient asks another's accounting: %d", r.Status)
			}
			r = w.Do(t, "GET", "/fhir/Patient/"+P+"/$disclosures", user, nil)
			if n := len(auditEvents(t, r.Body)); r.Status != 200 || n != 8 {
				t.Fatalf("patient's accounting: %d, %d events", r.Status, n)
			}
			// The officer withholds the break-glass read: gone from the
			// patient's view and accounting, kept for the officer.
			var btg string
			for _, ev := range own {
				if summary(ev) == "physician read BTG" {
					btg = ev["id"].(string)
				}
			}
			if r := w.Do(t, "POST", "/fhir/AuditEvent/"+btg+"/$withhold", gp, nil); r.Status != 403 {
				t.Fatalf("clinician withholds: %d", r.Status)
			}
			if r := w.Do(t, "POST", "/fhir/AuditEvent/"+btg+"/$withhold", po, nil); r.Status != 200 {
				t.Fatalf("withhold: %d %s", r.Status, r.Body)
			}
			r = w.Do(t, "GET", "/fhir/Patient/"+P+"/$disclosures", user, nil)
			for _, ev := range auditEvents(t, r.Body) {
				if ev["id"] == btg || strings.Contains(summary(ev), "withhold") {
					t.Fatalf("withheld event in the patient's accounting: %s", summary(ev))
				}
			}
			if n := len(auditEvents(t, r.Body)); n != 7 {
				t.Fatalf("patient's accounting after withholding: %d events, want 7", n)
			}
			if r := w.Do(t, "GET", "/fhir/AuditEvent/"+btg, user, nil); r.Status != 404 {
				t.Fatalf("patient reads the withheld event: %d", r.Status)
			}
			if r := w.Do(t, "GET", "/fhir/AuditEvent/"+btg, po, nil); r.Status != 200 {
				t.Fatalf("officer reads the withheld event: %d", r.Status)
			}
			r = w.Do(t, "GET", "/fhir/Patient/"+P+"/$disclosures", po, nil)
			if !slices.ContainsFunc(auditEvents(t, r.Body), func(ev map[string]any) bool { return ev["id"] == btg }) {
				t.Fatal("the officer's accounting lost the withheld event")
			}
			// Read-only: every write is 405 with an OperationOutcome, also
			// inside a transaction; nothing is stored.
			ae := []byte(`{"resourceType":"AuditEvent","type":{"code":"rest"},"recorded":"2026-01-01T00:00:00Z","agent":[{"requestor":true}],"source":{"observer":{"display":"x"}}}`)
			for _, m := range []struct{ method, path string }{
				{"POST", "/fhir/AuditEvent"}, {"PUT", "/fhir/AuditEvent/" + btg}, {"DELETE", "/fhir/AuditEvent/" + btg},
				{"PATCH", "/fhir/AuditEvent/" + btg}, {"PUT", "/fhir/AuditEvent?patient=" + P}, {"DELETE", "/fhir/AuditEvent?patient=" + P},
				{"GET", "/fhir/AuditEvent/" + btg + "/_history"},
			} {
				r := w.Do(t, m.method, m.path, w.Tokens[authz.RoleAdmin], ae)
				if r.Status != 405 || !strings.Contains(string(r.Body), "OperationOutcome") {
					t.Errorf("%s %s: %d %s", m.method, m.path, r.Status, r.Body)
				}
			}
			tx := `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + string(ae) + `,"request":{"method":"POST","url":"AuditEvent"}}]}`
			if r := w.Do(t, "POST", "/fhir", w.Tokens[authz.RoleAdmin], []byte(tx)); r.Status < 400 {
				t.Fatalf("AuditEvent written in a transaction: %d %s", r.Status, r.Body)
			}
			// Reading AuditEvents is audited.
			if !slices.ContainsFunc(w.Ledger(t), func(rec *audit.Record) bool {
				return rec.ResourceType == "AuditEvent" && rec.Action == "search-type" && rec.Actor == w.UserIDs[authz.RoleUser]
			}) {
				t.Fatal("the patient's AuditEvent search is not in the ledger")
			}
			if !slices.ContainsFunc(w.Ledger(t), func(rec *audit.Record) bool {
				return rec.Action == "withhold" && slices.Contains(rec.Entities, "AuditEvent/"+btg) && slices.Contains(rec.Patients, P)
			}) {
				t.Fatal("the withholding is not in the ledger")
			}
		})
	}
}

// TestPatientIndexTamperDetected: the patient index is part of each
// record's hash (canonical format version 2), so removing a patient row
// (hiding an access from the accounting) or moving it to another patient
// breaks verification at that record.
// TestAuditPlainAddresses: configured, the ledger keeps the client's
// address as it is.
func TestAuditPlainAddresses(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite, func(c *config.Config) { c.AuditPlainAddresses = true })
	r := w.Do(t, "GET", "/fhir/AuditEvent?_count=1", w.Tokens[authz.RolePrivacyOfficer], nil)
	evs := auditEvents(t, r.Body)
	r = w.Do(t, "GET", "/fhir/AuditEvent?_count=1", w.Tokens[authz.RolePrivacyOfficer], nil)
	evs = auditEvents(t, r.Body)
	if len(evs) != 1 || !strings.Contains(fmt.Sprint(evs[0]["agent"]), "address:127.0.0.1") {
		t.Fatalf("plain address: %v", evs)
	}
}

func TestPatientIndexTamperDetected(t *testing.T) {
	for _, tamper := range []string{
		`DELETE FROM audit_patients WHERE rowid = (SELECT max(rowid) FROM audit_patients)`,
		`UPDATE audit_patients SET patient = 'someone-else' WHERE rowid = (SELECT max(rowid) FROM audit_patients)`,
		// The record's own copy of its patients, which searches read
		// (migration 00047), is checked against the index.
		`UPDATE audit_log SET patients = 'someone-else' WHERE seq = (SELECT seq FROM audit_patients ORDER BY rowid DESC LIMIT 1)`,
	} {
		w := apptest.Start(t, apptest.SQLite)
		disclosureScenario(t, w)
		ctx := t.Context()
		if _, err := app.VerifyLedgerSummary(ctx, w.App.Store); err != nil {
			t.Fatalf("before tampering: %v", err)
		}
		db, err := sql.Open("sqlite", "file:"+filepath.Join(w.Config.DataDir, app.DatabaseFileName)+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		var seq int64
		if err := db.QueryRow(`SELECT seq FROM audit_patients ORDER BY rowid DESC LIMIT 1`).Scan(&seq); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(tamper); err != nil {
			t.Fatal(err)
		}
		db.Close()
		_, err = app.VerifyLedgerSummary(ctx, w.App.Store)
		var be *audit.BreakError
		if !errors.As(err, &be) || be.Seq != seq || be.Reason != audit.ReasonHashMismatch {
			t.Fatalf("%s: verify = %v, want a hash mismatch at %d", tamper, err, seq)
		}
	}
}
