package app_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/store/postgres/pgtest"
)

// exportAll runs a Patient export as the physician and returns the file
// paths (relative to the server root).
func exportAll(t *testing.T, w *apptest.Ward) []string {
	t.Helper()
	tok := w.Tokens[authz.RoleAdmin]
	r := w.Do(t, "GET", "/fhir/$export?_type=Patient", tok, nil, "Prefer: respond-async")
	if r.Status != 202 {
		t.Fatalf("kick-off: %d %s", r.Status, r.Body)
	}
	status := strings.TrimPrefix(r.Header.Get("Content-Location"), w.Server.URL)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r = w.Do(t, "GET", status, tok, nil)
		if r.Status == 200 {
			break
		}
		if r.Status != 202 || time.Now().After(deadline) {
			t.Fatalf("status: %d %s", r.Status, r.Body)
		}
	}
	var m struct{ Output []struct{ URL string } }
	json.Unmarshal(r.Body, &m)
	var files []string
	for _, o := range m.Output {
		files = append(files, strings.TrimPrefix(o.URL, w.Server.URL))
	}
	if len(files) == 0 {
		t.Fatalf("no files: %s", r.Body)
	}
	return files
}

// TestBulkExportNoPHIAtRest: the export tables hold no planted PHI (the
// SQLite file and WAL; a pg_dump), while the download does.
func TestBulkExportNoPHIAtRest(t *testing.T) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			w := apptest.Start(t, b)
			w.Create(t, authz.RoleAdmin, phiPatient)
			files := exportAll(t, w)
			if r := w.Do(t, "GET", files[0], w.Tokens[authz.RoleAdmin], nil); r.Status != 200 || !bytes.Contains(r.Body, []byte(phi[0])) {
				t.Fatalf("control: the download holds the PHI: %d", r.Status)
			}
			if b == apptest.SQLite {
				paths, _ := filepath.Glob(filepath.Join(w.Config.DataDir, "ward.db*"))
				for _, p := range paths {
					data, err := os.ReadFile(p)
					if err != nil {
						t.Fatal(err)
					}
					if len(data) > 0 {
						assertNoPHI(t, filepath.Base(p), data)
					}
				}
			} else {
				schema := pgtest.Schema(t, w.Config.DatabaseURL)
				out := pgtest.Dump(t, w.Config.DatabaseURL)
				if !bytes.Contains(out, []byte("COPY "+schema+".export_chunks")) {
					t.Fatalf("dump lacks the export chunks: %.300s", out)
				}
				assertNoPHI(t, "pg_dump", out)
			}
			assertNoPHI(t, "server log", []byte(w.Log.String()))
		})
	}
}

// TestBulkLedgerFailureDisclosesNothing: with the ledger down, a file is
// not sent (its record comes first), no export is queued and no import
// line is stored.
func TestBulkLedgerFailureDisclosesNothing(t *testing.T) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			w := apptest.Start(t, b)
			w.Create(t, authz.RoleAdmin, phiPatient)
			files := exportAll(t, w)
			tok := w.Tokens[authz.RoleAdmin]
			before := len(w.Ledger(t))
			restore := breakLedger(t, w)
			line := strings.Join(strings.Fields(strings.Replace(phiPatient, `"resourceType": "Patient",`, `"resourceType": "Patient", "id": "while-down",`, 1)), " ")
			for _, c := range []struct{ method, path, body, ct string }{
				{"GET", files[0], "", ""},
				{"GET", "/fhir/$export?_type=Patient", "", ""},
				{"POST", "/fhir/$import", line, "Content-Type: application/fhir+ndjson"},
			} {
				var body []byte
				headers := []string{"Prefer: respond-async"}
				if c.body != "" {
					body = []byte(c.body)
					headers = append(headers, c.ct)
				}
				r := w.Do(t, c.method, c.path, tok, body, headers...)
				if r.Status != 503 {
					t.Errorf("%s %s with the ledger down: %d, want 503 (%.200s)", c.method, c.path, r.Status, r.Body)
				}
				assertNoPHI(t, c.method+" "+c.path, append(r.Body, ' '))
				if r.Header.Get("Content-Location") != "" {
					t.Errorf("%s %s: a job was queued", c.method, c.path)
				}
			}
			restore()
			if n := len(w.Ledger(t)); n != before {
				t.Fatalf("ledger grew from %d to %d while failing", before, n)
			}
			if r := w.Do(t, "GET", "/fhir/Patient/while-down", tok, nil); r.Status != 404 {
				t.Fatalf("an import line was stored while the ledger was down: %d", r.Status)
			}
		})
	}
}
