package app_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/store"
)

// TestErasePatient: Patient/$erase through a real listener on both
// databases. Clinicians are refused, a legal hold refuses it, a privacy
// officer erases; then the patient's records answer 410, searches find
// nothing, the index rows are gone, no key Ward still holds opens any
// stored version, the planted values are nowhere on disk (database,
// WAL, pg_dump, content objects), the ledger verifies, and the other
// patient is untouched.
func TestErasePatient(t *testing.T) {
	const (
		family = "Zqxerasefamily"
		mrn    = "MRN-ZQX-771234"
		note   = "Zqxplantednote about a rare condition"
		reason = "Zqxreason: request of Jane Zqx under GDPR art. 17"
		blob   = "Zqxblobcontent "
	)
	for _, backend := range apptest.Backends {
		t.Run(string(backend), func(t *testing.T) {
			w := apptest.Start(t, backend)
			cfg := w.Config
			ctx := context.Background()
			admin := w.Tokens[authz.RoleAdmin]
			po := w.Tokens[authz.RolePrivacyOfficer] // reads every record
			p1 := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"`+family+`","given":["Zqxgiven"]}],"identifier":[{"system":"urn:mrn","value":"`+mrn+`"}],"birthDate":"1931-02-17"}`)
			p2 := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"Keepfamily"}]}`)
			o1 := w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+p1+`"},"note":[{"text":"`+note+`"}]}`)
			o2 := w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"text":"y"},"subject":{"reference":"Patient/`+p1+`"},"valueString":"`+note+`"}`)
			o3 := w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"text":"z"},"subject":{"reference":"Patient/`+p2+`"}}`)
			req, _ := http.NewRequest("POST", w.URL+"/Binary", bytes.NewReader(bytes.Repeat([]byte(blob), 500)))
			req.Header.Set("Authorization", "Bearer "+admin)
			req.Header.Set("Content-Type", "application/octet-stream")
			req.Header.Set("X-Security-Context", "Patient/"+p1)
			resp, err := w.Server.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 201 {
				t.Fatalf("upload: %d %s", resp.StatusCode, b)
			}
			bin := (&apptest.Response{Body: b}).JSON(t)["id"].(string)
			erased := []string{"Patient/" + p1, "Observation/" + o1, "Observation/" + o2, "Binary/" + bin}
			var rids []int64
			for _, ref := range erased[:3] {
				rids = append(rids, ridOf(t, w, ref))
			}
			if n := indexRows(t, w, rids); n == 0 {
				t.Fatal("no index rows before the erasure: the check below would prove nothing")
			}

			for _, ref := range erased {
				if r := w.Do(t, "GET", "/fhir/"+ref, po, nil); r.Status != 200 {
					t.Fatalf("read %s before erasure: %d %s", ref, r.Status, r.Body)
				}
			}
			if r := w.Do(t, "GET", "/fhir/Patient?family="+family, po, nil); r.Status != 200 || !strings.Contains(string(r.Body), p1) {
				t.Fatalf("search before erasure: %d %s", r.Status, r.Body)
			}
			objects := func() int {
				n := 0
				filepath.WalkDir(filepath.Join(cfg.DataDir, "documents"), func(p string, d fs.DirEntry, err error) error {
					if err == nil && !d.IsDir() && strings.Contains(p, bin) {
						n++
					}
					return nil
				})
				return n
			}
			if objects() == 0 {
				t.Fatal("the Binary's content object is not in the documents directory")
			}
			body := []byte(`{"resourceType":"Parameters","parameter":[{"name":"reason","valueString":"` + reason + `"}]}`)
			erase := func(role authz.Role) *apptest.Response {
				return w.Do(t, "POST", "/fhir/Patient/"+p1+"/$erase", w.Tokens[role], body)
			}
			for _, role := range []authz.Role{authz.RoleNurse, authz.RolePhysician} {
				if r := erase(role); r.Status != 403 || !strings.Contains(string(r.Body), "OperationOutcome") {
					t.Fatalf("%s erases: %d %s", role, r.Status, r.Body)
				}
			}
			if r := w.Do(t, "POST", "/fhir/Patient/"+p1+"/$erase", w.Tokens[authz.RolePrivacyOfficer], []byte(`{"resourceType":"Parameters"}`)); r.Status != 400 {
				t.Fatalf("no reason: %d %s", r.Status, r.Body)
			}
			if err := app.LegalHold(ctx, cfg, app.HoldOptions{Tenant: cfg.Tenant, Patient: p1, Reason: "litigation " + family}); err != nil {
				t.Fatal(err)
			}
			if r := erase(authz.RolePrivacyOfficer); r.Status != 409 || !strings.Contains(string(r.Body), "OperationOutcome") {
				t.Fatalf("erase under a hold: %d %s", r.Status, r.Body)
			}
			if k, err := w.App.Store.Key(ctx, keys.PatientKeyID(cfg.Tenant, p1)); err != nil || k.State != store.KeyActive {
				t.Fatalf("the key after a refused erasure: %+v %v", k, err)
			}
			if err := app.LegalHold(ctx, cfg, app.HoldOptions{Tenant: cfg.Tenant, Patient: p1, Release: true}); err != nil {
				t.Fatal(err)
			}
			if r := erase(authz.RolePrivacyOfficer); r.Status != 200 || !strings.Contains(string(r.Body), `"name":"resources","valueInteger":4`) {
				t.Fatalf("erase: %d %s", r.Status, r.Body)
			}
			if n := objects(); n != 0 {
				t.Fatalf("%d content objects of the erased Binary remain", n)
			}

			// Reads answer 410; searches find nothing.
			for _, ref := range erased {
				if r := w.Do(t, "GET", "/fhir/"+ref, po, nil); r.Status != 410 {
					t.Fatalf("read %s after erasure: %d %s", ref, r.Status, r.Body)
				}
				if r := w.Do(t, "GET", "/fhir/"+ref+"/_history/1", po, nil); r.Status != 410 {
					t.Fatalf("vread %s after erasure: %d %s", ref, r.Status, r.Body)
				}
			}
			for _, q := range []string{"/fhir/Patient?family=" + family, "/fhir/Patient?identifier=" + mrn, "/fhir/Observation?subject=Patient/" + p1, "/fhir/Observation"} {
				r := w.Do(t, "GET", q, po, nil)
				if r.Status != 200 || strings.Contains(string(r.Body), `"id":"`+p1) || strings.Contains(string(r.Body), `"id":"`+o1) || strings.Contains(string(r.Body), `"id":"`+o2) {
					t.Fatalf("search %s after erasure: %d %s", q, r.Status, r.Body)
				}
			}
			if r := w.Do(t, "GET", "/fhir/Observation", po, nil); r.Status != 200 || !strings.Contains(string(r.Body), `"id":"`+o3) {
				t.Fatalf("a type scan after the erasure lost the other patient: %d %s", r.Status, r.Body)
			}
			if n := indexRows(t, w, rids); n != 0 {
				t.Fatalf("%d index rows of the erased resources remain", n)
			}
			if r := erase(authz.RolePrivacyOfficer); r.Status != 410 {
				t.Fatalf("erase twice: %d %s", r.Status, r.Body)
			}

			// No key Ward still holds opens any stored version.
			assertUnreadable(t, w.App.Store, cfg, erased)

			// The planted values are nowhere on disk.
			planted := []string{family, mrn, "Zqxplantednote", "Zqxreason", "1931-02-17", "Zqxblobcontent", "Zqxgiven"}
			dumps := onDisk(t, backend, cfg.DatabaseURL, cfg.DataDir)
			if len(dumps) == 0 {
				t.Fatal("nothing on disk to grep")
			}
			for _, d := range dumps {
				for _, s := range planted {
					if bytes.Contains(d, []byte(s)) {
						t.Fatalf("%q found on disk after the erasure", s)
					}
				}
			}

			// The erasure's ledger record: ids, the reason's SHA-256, counts.
			db, q := eraseDB(t, w)
			var details []string
			rows, err := db.Query(q(`SELECT detail FROM audit_log WHERE action = ? ORDER BY seq`), "erase")
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var d string
				rows.Scan(&d)
				details = append(details, d)
			}
			rows.Close()
			sum := sha256.Sum256([]byte(reason))
			if !slices.Contains(details, "reason-sha256:"+hex.EncodeToString(sum[:])+" resources:4") {
				t.Fatalf("erase records: %q", details)
			}
			if _, _, err := app.VerifyLedger(ctx, w.App.Store); err != nil {
				t.Fatalf("ledger: %v", err)
			}
			// The other patient is untouched.
			for _, ref := range []string{"Patient/" + p2, "Observation/" + o3} {
				if r := w.Do(t, "GET", "/fhir/"+ref, po, nil); r.Status != 200 {
					t.Fatalf("read %s: %d %s", ref, r.Status, r.Body)
				}
			}
			if r := w.Do(t, "GET", "/fhir/Patient?family=Keepfamily", po, nil); r.Status != 200 || !strings.Contains(string(r.Body), p2) {
				t.Fatalf("search the other patient: %d %s", r.Status, r.Body)
			}
		})
	}
}

// assertUnreadable: every stored version of refs has no body left, or
// one that no data key st holds (unwrapped with cfg's KEK) opens.
func assertUnreadable(t *testing.T, st store.Store, cfg config.Config, refs []string) {
	t.Helper()
	ctx := context.Background()
	kek, err := app.LoadKEK(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	held, err := st.KeysAfter(ctx, keys.DataKeyPurpose, "", 100000)
	if err != nil || len(held) == 0 {
		t.Fatalf("keys: %d %v", len(held), err)
	}
	versions := 0
	for _, ref := range refs {
		typ, id, _ := strings.Cut(ref, "/")
		vs, err := st.History(ctx, store.HistoryQuery{Tenant: cfg.Tenant, Type: typ, ID: id, Limit: 100})
		if err != nil || len(vs) == 0 {
			t.Fatalf("%s history: %d %v", ref, len(vs), err)
		}
		for _, v := range vs {
			versions++
			if len(v.Body) == 0 {
				continue // shredded with the erasure
			}
			kid, err := seal.EnvelopeKeyID(v.Body)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range held {
				if len(k.Wrapped) == 0 {
					continue // a destroyed key's tombstone
				}
				dek, err := kek.UnwrapDEK(k.ID, k.Wrapped)
				if err != nil {
					t.Fatalf("unwrap %s: %v", k.ID, err)
				}
				ring := seal.NewKeyring()
				if err := ring.Add(kid, dek); err != nil {
					t.Fatal(err)
				}
				if _, err := ring.Open(v.Body, seal.AAD(v.Tenant, v.Type, v.ID, v.Version)); err == nil {
					t.Fatalf("%s version %d opens with key %s", ref, v.Version, k.ID)
				}
			}
		}
	}
	if versions == 0 {
		t.Fatal("no stored version was checked")
	}
}

// eraseDB opens w's database directly (for checks of what is stored).
func eraseDB(t *testing.T, w *apptest.Ward) (*sql.DB, func(string) string) {
	t.Helper()
	var db *sql.DB
	var err error
	q := func(s string) string { return s }
	if w.Backend == apptest.Postgres {
		db, err = sql.Open("pgx", w.Config.DatabaseURL)
		q = func(s string) string {
			for i := 1; strings.Contains(s, "?"); i++ {
				s = strings.Replace(s, "?", "$"+strconv.Itoa(i), 1)
			}
			return s
		}
	} else {
		db, err = sql.Open("sqlite", "file:"+filepath.Join(w.Config.DataDir, app.DatabaseFileName)+"?_pragma=busy_timeout(10000)")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, q
}

// ridOf is the surrogate id of a stored resource.
func ridOf(t *testing.T, w *apptest.Ward, ref string) int64 {
	t.Helper()
	db, q := eraseDB(t, w)
	typ, id, _ := strings.Cut(ref, "/")
	var rid int64
	if err := db.QueryRow(q(`SELECT rid FROM resources WHERE tenant = ? AND type = ? AND id = ?`), w.Config.Tenant, typ, id).Scan(&rid); err != nil {
		t.Fatalf("rid of %s: %v", ref, err)
	}
	return rid
}

// indexRows counts the index rows of the resources given.
func indexRows(t *testing.T, w *apptest.Ward, rids []int64) int {
	t.Helper()
	db, q := eraseDB(t, w)
	n := 0
	for _, tbl := range []string{"search_token", "search_date", "search_number", "search_string", "search_prefix"} {
		for _, rid := range rids {
			var c int
			if err := db.QueryRow(q(`SELECT COUNT(*) FROM `+tbl+` WHERE rid = ?`), rid).Scan(&c); err != nil {
				t.Fatal(err)
			}
			n += c
		}
	}
	return n
}

// TestEraseOtherNode: a node that holds the patient's key unwrapped in
// its cache (it just read the patient) answers 410 as soon as another
// node erased the patient: it checks the key's state before opening.
func TestEraseOtherNode(t *testing.T) {
	a := apptest.Start(t, apptest.Postgres)
	b := apptest.Join(t, a, nil)
	po := a.Tokens[authz.RolePrivacyOfficer]
	p1 := a.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"Nodefamily"}]}`)
	if r := b.Do(t, "GET", "/fhir/Patient/"+p1, b.Tokens[authz.RolePrivacyOfficer], nil); r.Status != 200 {
		t.Fatalf("read on node b: %d %s", r.Status, r.Body)
	}
	v, err := b.App.Store.Version(context.Background(), b.Config.Tenant, "Patient", p1, 1)
	if err != nil {
		t.Fatal(err)
	}
	aad := seal.AAD(v.Tenant, v.Type, v.ID, v.Version)
	if _, err := b.App.Keys.Open(v.Body, aad); err != nil {
		t.Fatalf("node b before the erasure: %v", err)
	}
	body := []byte(`{"resourceType":"Parameters","parameter":[{"name":"reason","valueString":"request"}]}`)
	if r := a.Do(t, "POST", "/fhir/Patient/"+p1+"/$erase", po, body); r.Status != 200 {
		t.Fatalf("erase on node a: %d %s", r.Status, r.Body)
	}
	if r := b.Do(t, "GET", "/fhir/Patient/"+p1+"/_history/1", b.Tokens[authz.RolePrivacyOfficer], nil); r.Status != 410 {
		t.Fatalf("vread on node b after the erasure: %d %s", r.Status, r.Body)
	}
	// Below the HTTP answer: node b's keyring itself refuses to open the
	// version, though it had the key unwrapped.
	if _, err := b.App.Keys.Open(v.Body, aad); !errors.Is(err, keys.ErrErased) {
		t.Fatalf("node b opens a version under the destroyed key: %v", err)
	}
}

// onDisk reads what an attacker with the disks would hold: every file
// under dirs and, on PostgreSQL, a pg_dump of the schema of databaseURL
// (pgtest.URL names it in search_path, which libpq does not take).
func onDisk(t *testing.T, backend apptest.Backend, databaseURL string, dirs ...string) [][]byte {
	t.Helper()
	var dumps [][]byte
	for _, dir := range dirs {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if b, err := os.ReadFile(p); err == nil {
					dumps = append(dumps, b)
				}
			}
			return nil
		})
	}
	if backend != apptest.Postgres {
		return dumps
	}
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	schema := u.Query().Get("search_path")
	u.RawQuery = "sslmode=disable"
	cmd := exec.Command("pg_dump", "--no-owner", "-n", schema, u.String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pg_dump: %v %s", err, stderr.String())
	}
	if !bytes.Contains(out, []byte("legal_holds")) {
		t.Fatal("pg_dump lacks Ward's tables")
	}
	return append(dumps, out)
}
