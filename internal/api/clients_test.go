package api_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/store/postgres/pgtest"
)

// TestRealClientFhirKit drives Ward with the fhir-kit-client npm library,
// unmodified. It needs node and npm; without them it is skipped, except in
// CI, where .ci/run installs them and a skip would hide a regression.
func TestRealClientFhirKit(t *testing.T) {
	dir, err := filepath.Abs("testdata/clients")
	if err != nil {
		t.Fatal(err)
	}
	node, nerr := exec.LookPath("node")
	npm, perr := exec.LookPath("npm")
	if nerr != nil || perr != nil {
		if pgtest.Required() {
			t.Fatal("node and npm are required in CI for the real-client tests")
		}
		t.Skip("node/npm not installed")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "fhir-kit-client")); err != nil {
		cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			if pgtest.Required() {
				t.Fatalf("npm ci: %v\n%s", err, out)
			}
			t.Skipf("npm ci failed (offline?): %v", err)
		}
	}
	w := apptest.Start(t, apptest.SQLite)
	cmd := exec.Command(node, "fhir-kit-client.mjs", w.URL+"/", w.Tokens[authz.RoleAdmin])
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("fhir-kit-client: %v\n%s", err, stderr)
	}
	var got struct {
		Capability struct {
			ResourceType, FhirVersion string
			Types                     int
		}
		Created           struct{ ID, VersionID string }
		Read              struct{ Family string }
		Updated           struct{ VersionID string }
		StaleUpdateStatus int
		Vread             struct {
			VersionID string
			Given     int
		}
		History, Search struct {
			Type    string
			Entries int
		}
		ReadAfterDelete int
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("client output %q: %v", out, err)
	}
	checks := []struct {
		what string
		ok   bool
	}{
		{"capability statement", got.Capability.ResourceType == "CapabilityStatement" && got.Capability.FhirVersion == "4.0.1" && got.Capability.Types == 146},
		{"create", got.Created.ID != "" && got.Created.VersionID == "1"},
		{"read", got.Read.Family == "Kitclient"},
		{"update with If-Match", got.Updated.VersionID == "2"},
		{"stale If-Match refused", got.StaleUpdateStatus == 412},
		{"vread", got.Vread.VersionID == "1" && got.Vread.Given == 1},
		{"history", got.History.Type == "history" && got.History.Entries == 2},
		{"search", got.Search.Type == "searchset" && got.Search.Entries == 1},
		{"read after delete", got.ReadAfterDelete == 410},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: %+v", c.what, got)
		}
	}
}
