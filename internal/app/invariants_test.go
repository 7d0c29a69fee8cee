package app_test

import (
	"bytes"
	"context"
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/store/postgres/pgtest"
)

// The planted PHI: every value is unique enough that finding it anywhere
// can only mean a leak.
var phi = []string{
	"Xanthippe", "Vordermann-Quaile", // given, family
	"1943-08-17",                   // birth date
	"987-65-4329",                  // SSN
	"+1-555-0147-882",              // phone
	"xanthippe.vq@mailbox.example", // e-mail
	"77 Ormsby Crescent",           // address line
	"Quernmouth",                   // city
	"allergic to penicillin since childhood; lives with her daughter", // free text
}

const phiPatient = `{
  "resourceType": "Patient",
  "identifier": [{"system": "http://hl7.org/fhir/sid/us-ssn", "value": "987-65-4329"}],
  "name": [{"family": "Vordermann-Quaile", "given": ["Xanthippe"]}],
  "telecom": [{"system": "phone", "value": "+1-555-0147-882"}, {"system": "email", "value": "xanthippe.vq@mailbox.example"}],
  "gender": "female",
  "birthDate": "1943-08-17",
  "address": [{"line": ["77 Ormsby Crescent"], "city": "Quernmouth", "postalCode": "QM4 7ZZ"}],
  "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">allergic to penicillin since childhood; lives with her daughter</div>"}
}`

// exercise writes, updates, reads, searches and deletes the PHI patient,
// so that every code path that touches it has run.
func exercise(t *testing.T, w *apptest.Ward) {
	tok := w.Tokens[authz.RoleAdmin]
	id := w.Create(t, authz.RoleAdmin, phiPatient)
	up := strings.Replace(phiPatient, `"resourceType": "Patient",`, `"resourceType": "Patient", "id": "`+id+`",`, 1)
	if r := w.Do(t, "PUT", "/fhir/Patient/"+id, tok, []byte(up)); r.Status != 200 {
		t.Fatalf("update: %d %s", r.Status, r.Body)
	}
	for _, p := range []string{"/fhir/Patient/" + id, "/fhir/Patient/" + id + "/_history/1", "/fhir/Patient/" + id + "/_history", "/fhir/Patient?_id=" + id, "/fhir/_history"} {
		r := w.Do(t, "GET", p, tok, nil)
		if r.Status != 200 || !bytes.Contains(r.Body, []byte("Xanthippe")) {
			t.Fatalf("GET %s: %d", p, r.Status)
		}
	}
	// Failed requests that carry PHI in the body or URL must not leak it
	// either (error messages, logs).
	bad := strings.Replace(phiPatient, `"gender": "female"`, `"gender": "Xanthippe"`, 1)
	if r := w.Do(t, "POST", "/fhir/Patient", tok, []byte(bad)); r.Status != 400 || bytes.Contains(r.Body, []byte("Xanthippe")) {
		t.Fatalf("invalid create: %d %s", r.Status, r.Body)
	}
	bad = strings.Replace(phiPatient, `"birthDate": "1943-08-17"`, `"birthDate": "1943-08-17 Quernmouth"`, 1)
	if r := w.Do(t, "POST", "/fhir/Patient", tok, []byte(bad)); r.Status != 400 || bytes.Contains(r.Body, []byte("Quernmouth")) {
		t.Fatalf("invalid create: %d %s", r.Status, r.Body)
	}
	w.Do(t, "GET", "/fhir/Patient?name="+url.QueryEscape("Xanthippe"), tok, nil)
	w.Do(t, "GET", "/fhir/Patient?name=Xanthippe", "", nil)
	if r := w.Do(t, "DELETE", "/fhir/Patient/"+id, tok, nil); r.Status != 200 {
		t.Fatalf("delete: %d", r.Status)
	}
}

func assertNoPHI(t *testing.T, where string, data []byte) {
	t.Helper()
	if len(data) == 0 {
		t.Fatalf("%s: nothing to check (empty)", where)
	}
	for _, s := range phi {
		if bytes.Contains(data, []byte(s)) {
			t.Errorf("%s contains plaintext PHI %q", where, s)
		}
	}
}

func TestNoPlaintextPHIAtRestSQLite(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	exercise(t, w)
	// Read the database file and its WAL while the server is running (the
	// WAL then still holds the recent pages), then again after close.
	var files []string // every file, the document objects' directory included
	filepath.WalkDir(w.Config.DataDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	var sawWAL bool
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, "-wal") && len(b) > 0 {
			sawWAL = true
		}
		if len(b) > 0 {
			assertNoPHI(t, filepath.Base(f), b)
		}
	}
	if !sawWAL {
		t.Fatalf("no WAL content found among %v: the test would not see recent writes", files)
	}
	assertNoPHI(t, "server log", []byte(w.Log.String()))
	// The control: the same bytes are found when they are there.
	if !bytes.Contains([]byte(phiPatient), []byte(phi[0])) {
		t.Fatal("control failed")
	}
}

func TestNoPlaintextPHIAtRestPostgres(t *testing.T) {
	w := apptest.Start(t, apptest.Postgres)
	exercise(t, w)
	schema := pgtest.Schema(t, w.Config.DatabaseURL)
	out := pgtest.Dump(t, w.Config.DatabaseURL)
	if !bytes.Contains(out, []byte("COPY "+schema+".resource_versions")) {
		t.Fatalf("dump does not contain the resource table: %.500s", out)
	}
	assertNoPHI(t, "pg_dump", out)
	assertNoPHI(t, "server log", []byte(w.Log.String()))
}

// The log names a request id on every line and never the query string.
func TestLogsCarryRequestIDs(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	w.Do(t, "GET", "/fhir/Patient?name=Xanthippe", w.Tokens[authz.RoleAdmin], nil, "X-Request-Id: 7f1c2a9e-3b4d-4e5f-8a6b-0c1d2e3f4a5b")
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(w.Log.String()), "\n") {
		if !strings.Contains(line, `"request_id"`) {
			t.Errorf("log line without request id: %s", line)
		}
		if strings.Contains(line, "7f1c2a9e-3b4d-4e5f-8a6b-0c1d2e3f4a5b") {
			found = true
		}
	}
	if !found {
		t.Fatal("the client's request id is not in the log")
	}
	assertNoPHI(t, "log", []byte(w.Log.String()))
}

// breakLedger makes every audit insert fail, from outside the server, the
// way a full disk or a revoked grant would.
func breakLedger(t *testing.T, w *apptest.Ward) (restore func()) {
	t.Helper()
	var db *sql.DB
	var err error
	var create, drop string
	if w.Backend == apptest.Postgres {
		db = pgtest.DB(t, w.Config.DatabaseURL, 1)
		create = `CREATE FUNCTION ward_test_fail() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'ledger unavailable'; END $$;
			CREATE TRIGGER ward_test_fail BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION ward_test_fail()`
		drop = `DROP TRIGGER ward_test_fail ON audit_log; DROP FUNCTION ward_test_fail()`
	} else {
		db, err = sql.Open("sqlite", "file:"+filepath.Join(w.Config.DataDir, "ward.db")+"?_pragma=busy_timeout(10000)")
		create = `CREATE TRIGGER ward_test_fail BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'ledger unavailable'); END`
		drop = `DROP TRIGGER ward_test_fail`
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(create); err != nil {
		t.Fatal(err)
	}
	return func() {
		if _, err := db.Exec(drop); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
}

func TestLedgerFailureDisclosesNothing(t *testing.T) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			if b == apptest.Postgres {
				pgtest.BaseURL(t)
			}
			w := apptest.Start(t, b)
			tok := w.Tokens[authz.RoleAdmin]
			id := w.Create(t, authz.RoleAdmin, phiPatient)
			before := len(w.Ledger(t))
			restore := breakLedger(t, w)
			for _, c := range []struct{ method, path, body string }{
				{"GET", "/fhir/Patient/" + id, ""},
				{"GET", "/fhir/Patient/" + id + "/_history/1", ""},
				{"GET", "/fhir/Patient/" + id + "/_history", ""},
				{"GET", "/fhir/Patient?_id=" + id, ""},
				{"POST", "/fhir/Patient", phiPatient},
				{"DELETE", "/fhir/Patient/" + id, ""},
			} {
				var body []byte
				if c.body != "" {
					body = []byte(c.body)
				}
				r := w.Do(t, c.method, c.path, tok, body)
				if r.Status != 503 {
					t.Errorf("%s %s with the ledger down: %d, want 503", c.method, c.path, r.Status)
				}
				assertNoPHI(t, c.method+" "+c.path+" response", append(r.Body, []byte(" ")...))
				if r.Header.Get("ETag") != "" || r.Header.Get("Location") != "" {
					t.Errorf("%s %s: headers disclose %v", c.method, c.path, r.Header)
				}
			}
			restore()
			// Nothing was written while the ledger was down.
			if n := len(w.Ledger(t)); n != before {
				t.Fatalf("ledger grew from %d to %d while failing", before, n)
			}
			r := w.Do(t, "GET", "/fhir/Patient/_history", tok, nil)
			if strings.Count(string(r.Body), `"fullUrl"`) != 1 {
				t.Fatalf("writes landed while the ledger was down: %s", r.Body)
			}
			if r := w.Do(t, "GET", "/fhir/Patient/"+id, tok, nil); r.Status != 200 {
				t.Fatalf("after the ledger is back: %d", r.Status)
			}
		})
	}
}

func TestEveryPHIRequestIsAudited(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	tok := w.Tokens[authz.RoleNurse]
	// The nurse is her general practitioner: a care relationship.
	id := w.Create(t, authz.RoleAdmin, strings.Replace(phiPatient, `"resourceType": "Patient",`,
		`"resourceType": "Patient", "generalPractitioner": [{"reference": "Practitioner/pract-nurse"}],`, 1))
	start := len(w.Ledger(t))
	w.Do(t, "GET", "/fhir/Patient/"+id, tok, nil, "X-Request-Id: 00000000-0000-4000-8000-000000000001")
	w.Do(t, "GET", "/fhir/Patient/"+id+"/_history/1", tok, nil, "X-Request-Id: 00000000-0000-4000-8000-000000000002")
	w.Do(t, "GET", "/fhir/Patient?_id="+id, tok, nil, "X-Request-Id: 00000000-0000-4000-8000-000000000003")
	w.Do(t, "DELETE", "/fhir/Patient/"+id, tok, nil, "X-Request-Id: 00000000-0000-4000-8000-000000000004") // refused
	recs := w.Ledger(t)[start:]
	want := []struct{ action, reqID, entity, detailPrefix string }{
		{"read", "00000000-0000-4000-8000-000000000001", "Patient/" + id + "/_history/1", ""},
		{"vread", "00000000-0000-4000-8000-000000000002", "Patient/" + id + "/_history/1", ""},
		{"search-type", "00000000-0000-4000-8000-000000000003", "Patient/" + id + "/_history/1", ""},
		{"delete", "00000000-0000-4000-8000-000000000004", "", "denied"},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d", len(recs), len(want))
	}
	for i, wnt := range want {
		r := recs[i]
		if r.Action != wnt.action || r.RequestID != wnt.reqID || r.Actor != w.UserIDs[authz.RoleNurse] || r.Role != "nurse" || r.Tenant != "default" {
			t.Errorf("record %d: %+v", i, r)
		}
		if wnt.entity != "" && (len(r.Entities) != 1 || r.Entities[0] != wnt.entity) {
			t.Errorf("record %d entities %v", i, r.Entities)
		}
		if !strings.HasPrefix(r.Detail, wnt.detailPrefix) {
			t.Errorf("record %d detail %q", i, r.Detail)
		}
	}
	_ = context.Background()
}

// A sealed body copied onto another row (another patient, or another
// version) does not open: the associated data binds it to its row. The read
// fails without disclosing either body, and the failure is in the ledger.
func TestMovedCiphertextDoesNotOpen(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	tok := w.Tokens[authz.RoleAdmin]
	a := w.Create(t, authz.RoleAdmin, phiPatient)
	b := w.Create(t, authz.RoleAdmin, patientB)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(w.Config.DataDir, "ward.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The one copy of the current body, the version's (migration 00058).
	for _, table := range []string{"resource_versions"} {
		if _, err := db.Exec(`UPDATE `+table+` SET body = (SELECT body FROM `+table+` WHERE id = ?) WHERE id = ?`, a, b); err != nil {
			t.Fatal(err)
		}
	}
	r := w.Do(t, "GET", "/fhir/Patient/"+b, tok, nil)
	if r.Status != 500 {
		t.Fatalf("read of a moved ciphertext: %d %s", r.Status, r.Body)
	}
	assertNoPHI(t, "response", r.Body)
	if bytes.Contains(r.Body, []byte("Pemberton")) {
		t.Fatal("response discloses the original body")
	}
	recs := w.Ledger(t)
	last := recs[len(recs)-1]
	if last.Action != "read" || last.Detail != "unsealable" || last.Outcome == 0 {
		t.Fatalf("failed open not audited: %+v", last)
	}
	// The untouched resource still reads.
	if r := w.Do(t, "GET", "/fhir/Patient/"+a, tok, nil); r.Status != 200 {
		t.Fatalf("untouched resource: %d", r.Status)
	}
}

const patientB = `{"resourceType":"Patient","name":[{"family":"Pemberton","given":["Lyle"]}]}`
