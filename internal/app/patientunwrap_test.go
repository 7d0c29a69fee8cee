package app_test

import (
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/keys"
)

// TestPatientReadsUnwrapOncePerPatient: reading a patient's records
// costs at most one unwrap of the patient's key per cache lifetime,
// however many reads, vreads and search pages open them. The keys are
// first dropped from this node's cache (as a restart or an expiry
// would), then three patients' records are read over HTTP many times:
// exactly three unwraps.
func TestPatientReadsUnwrapOncePerPatient(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	tok := w.Tokens[authz.RoleAdmin]
	var pats []string
	var obs []string
	for range 3 {
		p := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","gender":"other"}`)
		pats = append(pats, p)
		for range 5 {
			obs = append(obs, w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"text":"pulse"},"subject":{"reference":"Patient/`+p+`"}}`))
		}
	}
	for _, p := range pats {
		w.App.Keys.Forget(keys.PatientKeyID(w.Config.Tenant, p))
	}
	u0 := w.App.Keys.PatientUnwraps()
	for range 4 {
		for _, p := range pats {
			for _, path := range []string{"/fhir/Patient/" + p, "/fhir/Patient/" + p + "/_history/1", "/fhir/Observation?subject=Patient/" + p, "/fhir/Patient/" + p + "/Observation"} {
				if r := w.Do(t, "GET", path, tok, nil); r.Status != 200 {
					t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
				}
			}
		}
		for _, o := range obs {
			if r := w.Do(t, "GET", "/fhir/Observation/"+o, tok, nil); r.Status != 200 {
				t.Fatalf("GET Observation/%s: %d %s", o, r.Status, r.Body)
			}
		}
	}
	if n := w.App.Keys.PatientUnwraps() - u0; n != int64(len(pats)) {
		t.Fatalf("%d unwraps for %d patients' reads in one cache lifetime, want one each", n, len(pats))
	}
}
