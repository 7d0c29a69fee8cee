package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ward serve raises the default rules' alerts in the background (here
// flagged-patient: an admin reads an employee's record) and ward audit
// alerts lists them; ward audit export writes the ledger as JSON lines or
// syslog lines, with no PHI.
func TestAuditAlertsAndExport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ward-data")
	s := serve(t, dir, "WARD_ALERT_INTERVAL=1s")
	if _, stderr, code := ward(t, pass+"\n", "users", "add", "--data-dir", dir, "--username", "boss", "--role", "admin", "--password-stdin"); code != 0 {
		t.Fatal(stderr)
	}
	tok := s.token(t, "boss", pass)
	status, pid := s.post(t, tok, "Patient", `{"resourceType":"Patient","meta":{"security":[{"code":"EMP"}]},"name":[{"family":"Staffordshire"}],"birthDate":"1977-07-07"}`)
	if status != 201 {
		t.Fatalf("patient: %d", status)
	}
	if status, _ := s.get(t, tok, "/fhir/Patient/"+pid); status != 200 {
		t.Fatalf("read: %d", status)
	}
	var out string
	deadline := time.Now().Add(30 * time.Second)
	for {
		var stderr string
		var code int
		out, stderr, code = ward(t, "", "audit", "alerts", "--data-dir", dir)
		if code != 0 {
			t.Fatalf("audit alerts: %d %s", code, stderr)
		}
		if strings.Contains(out, "flagged-patient") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no flagged-patient alert listed:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(out, "Patient/"+pid) || !strings.HasPrefix(out, "SEQ") {
		t.Errorf("alert listing:\n%s", out)
	}
	for _, format := range []string{"json", "syslog"} {
		out, stderr, code := ward(t, "", "audit", "export", "--data-dir", dir, "--format", format, "--since", "0")
		if code != 0 || !strings.Contains(stderr, "records exported") || !strings.Contains(out, `detail="flagged-patient"`) && !strings.Contains(out, `"detail":"flagged-patient"`) {
			t.Fatalf("export %s: %d %s\n%s", format, code, stderr, out)
		}
		for _, phi := range []string{"Staffordshire", "1977-07-07"} {
			if strings.Contains(out, phi) {
				t.Errorf("export %s holds PHI %q", format, phi)
			}
		}
	}
	if _, stderr, code := ward(t, "", "audit", "export", "--data-dir", dir, "--format", "xml"); code == 0 || !strings.Contains(stderr, "--format must be json or syslog") {
		t.Errorf("bad format: %d %s", code, stderr)
	}
}
