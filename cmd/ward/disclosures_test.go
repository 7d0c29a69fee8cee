package main

import (
	"encoding/csv"
	"path/filepath"
	"strings"
	"testing"
)

// ward audit disclosures lists the accesses to one patient's record in
// the three formats, ward audit access one user's activity, and ward
// audit withhold marks an event; each run is itself in the ledger.
func TestAuditDisclosuresCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ward-data")
	s := serve(t, dir)
	if _, stderr, code := ward(t, pass+"\n", "users", "add", "--data-dir", dir, "--username", "boss", "--role", "admin", "--password-stdin"); code != 0 {
		t.Fatal(stderr)
	}
	tok := s.token(t, "boss", pass)
	status, pid := s.post(t, tok, "Patient", `{"resourceType":"Patient","name":[{"family":"Accounted"}]}`)
	if status != 201 {
		t.Fatalf("patient: %d", status)
	}
	if status, _ := s.get(t, tok, "/fhir/Patient/"+pid); status != 200 {
		t.Fatalf("read: %d", status)
	}
	out, stderr, code := ward(t, "", "audit", "disclosures", "--data-dir", dir, "--patient", pid, "--format", "csv")
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != 0 || err != nil || len(rows) != 3 || rows[1][4] != "read" || rows[2][4] != "create" || rows[1][2] != "admin" || strings.Contains(out, "Accounted") {
		t.Fatalf("csv: %d %v %q %s", code, err, rows, stderr)
	}
	admin := rows[1][1]
	out, _, code = ward(t, "", "audit", "disclosures", "--data-dir", dir, "--patient", pid)
	if code != 0 || !strings.Contains(out, `"resourceType":"Bundle"`) || strings.Count(out, `"resourceType":"AuditEvent"`) != 2 {
		t.Fatalf("fhir: %d %s", code, out)
	}
	out, _, code = ward(t, "", "audit", "disclosures", "--data-dir", dir, "--patient", pid, "--format", "html", "--end", "2001-01-01")
	if code != 0 || !strings.Contains(out, "<table>") || strings.Count(out, "<tr") != 1 {
		t.Fatalf("html of an empty period: %d %s", code, out)
	}
	out, _, code = ward(t, "", "audit", "access", "--data-dir", dir, "--user", admin, "--format", "csv")
	if code != 0 || !strings.Contains(out, "create") || !strings.Contains(out, "read") {
		t.Fatalf("access: %d %s", code, out)
	}
	if out, stderr, code := ward(t, "", "audit", "withhold", "--data-dir", dir, "--event", rows[1][8]); code != 0 || !strings.Contains(out, "withheld") {
		t.Fatalf("withhold: %d %s %s", code, out, stderr)
	}
	if _, _, code := ward(t, "", "audit", "disclosures", "--data-dir", dir); code == 0 {
		t.Fatal("disclosures without --patient succeeded")
	}
	out, _, _ = ward(t, "", "audit", "access", "--data-dir", dir, "--user", "cli", "--format", "csv")
	for _, action := range []string{"disclosures", "access-review", "withhold"} {
		if !strings.Contains(out, ","+action+",") {
			t.Errorf("the command's own %s is not in the ledger:\n%s", action, out)
		}
	}
	if out, _, code := ward(t, "", "audit", "verify", "--data-dir", dir); code != 0 || !strings.Contains(out, "ledger intact") {
		t.Fatalf("verify after the reports: %d %s", code, out)
	}
}
