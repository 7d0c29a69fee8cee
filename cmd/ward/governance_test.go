package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// A privacy officer is added like any user, manages consents, and every
// change of a consent (or of another resource that governs access) is
// listed by ward audit governance, by id and code only.
func TestAuditGovernanceReport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ward-data")
	s := serve(t, dir)
	for _, u := range [][]string{{"boss", "admin"}, {"keeper", "privacy-officer"}} {
		if _, stderr, code := ward(t, pass+"\n", "users", "add", "--data-dir", dir, "--username", u[0], "--role", u[1], "--password-stdin"); code != 0 {
			t.Fatal(stderr)
		}
	}
	status, pid := s.post(t, s.token(t, "boss", pass), "Patient", `{"resourceType":"Patient","name":[{"family":"Governed"}]}`)
	if status != 201 {
		t.Fatalf("patient: %d", status)
	}
	status, cid := s.post(t, s.token(t, "keeper", pass), "Consent", `{"resourceType":"Consent","status":"active",`+
		`"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},`+
		`"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],"patient":{"reference":"Patient/`+pid+`"},"provision":{"type":"deny"}}`)
	if status != 201 {
		t.Fatalf("the privacy officer's consent: %d", status)
	}
	out, stderr, code := ward(t, "", "audit", "governance", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "1 access-governing changes") || !strings.Contains(out, "consent-change") ||
		!strings.Contains(out, "privacy-officer") || !strings.Contains(out, "Consent/"+cid) || strings.Contains(out, "Governed") {
		t.Fatalf("report: %d %s %s", code, out, stderr)
	}
}
