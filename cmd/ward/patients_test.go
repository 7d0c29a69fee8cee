package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// ward patients hold|release: a hold refuses Patient/$erase (409) until
// released; holding twice or releasing none fails; the reason is never
// printed back.
func TestPatientsHoldRelease(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ward-data")
	s := serve(t, dir)
	for _, u := range [][]string{{"boss", "admin"}, {"keeper", "privacy-officer"}} {
		if _, stderr, code := ward(t, pass+"\n", "users", "add", "--data-dir", dir, "--username", u[0], "--role", u[1], "--password-stdin"); code != 0 {
			t.Fatal(stderr)
		}
	}
	status, pid := s.post(t, s.token(t, "boss", pass), "Patient", `{"resourceType":"Patient","name":[{"family":"Heldfamily"}]}`)
	if status != 201 {
		t.Fatalf("patient: %d", status)
	}
	out, stderr, code := ward(t, "", "patients", "hold", pid, "--data-dir", dir, "--tenant", "default", "--reason", "litigation Heldfamily")
	if code != 0 || strings.Contains(out+stderr, "litigation") {
		t.Fatalf("hold: %d %s %s", code, out, stderr)
	}
	if _, _, code := ward(t, "", "patients", "hold", pid, "--data-dir", dir, "--tenant", "default", "--reason", "again"); code == 0 {
		t.Fatal("a second hold succeeded")
	}
	erase := `{"resourceType":"Parameters","parameter":[{"name":"reason","valueString":"request"}]}`
	keeper := s.token(t, "keeper", pass)
	if status, _ := s.post(t, keeper, "Patient/"+pid+"/$erase", erase); status != 409 {
		t.Fatalf("erase under a hold: %d", status)
	}
	if out, stderr, code := ward(t, "", "patients", "release", pid, "--data-dir", dir, "--tenant", "default"); code != 0 {
		t.Fatalf("release: %d %s %s", code, out, stderr)
	}
	if _, _, code := ward(t, "", "patients", "release", pid, "--data-dir", dir, "--tenant", "default"); code == 0 {
		t.Fatal("releasing no hold succeeded")
	}
	if _, _, code := ward(t, "", "patients", "hold", pid, "--data-dir", dir, "--tenant", "default"); code == 0 {
		t.Fatal("a hold without a reason succeeded")
	}
	if status, _ := s.post(t, keeper, "Patient/"+pid+"/$erase", erase); status != 200 {
		t.Fatalf("erase after the release: %d", status)
	}
	if status, _ := s.get(t, keeper, "/fhir/Patient/"+pid); status != 410 {
		t.Fatalf("read after the erasure: %d", status)
	}
}
