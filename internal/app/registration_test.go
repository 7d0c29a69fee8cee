package app_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/records"
)

// A physician who registers a Patient reads it back through a CareTeam
// created with it (explicit data, audited as create and careteam-change);
// when the CareTeam's period ends (WARD_REGISTRATION_CARE_PERIOD, here a
// fixed clock moved past it) the relationship ends; another physician
// never had one; with the period 0 there is no CareTeam and no access.
func TestRegistrationCareTeam(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	w := apptest.StartWith(t, apptest.SQLite, []app.Option{app.WithNow(clock), app.WithCacheTTL(time.Millisecond)},
		func(c *config.Config) { c.RegistrationCarePeriod = 48 * time.Hour })
	P, N, A := authz.RolePhysician, authz.RoleNurse, authz.RoleAdmin
	for _, pr := range []string{"pract-physician", "pract-nurse"} {
		if r := w.Do(t, "PUT", "/fhir/Practitioner/"+pr, w.Tokens[A], []byte(`{"resourceType":"Practitioner","id":"`+pr+`"}`)); r.Status != 201 {
			t.Fatalf("practitioner: %d %s", r.Status, r.Body)
		}
	}
	pid := w.Create(t, P, `{"resourceType":"Patient","name":[{"family":"Registered"}]}`)
	if r := w.Do(t, "GET", "/fhir/Patient/"+pid, w.Tokens[P], nil); r.Status != 200 {
		t.Fatalf("the registering physician reads the patient: %d %s", r.Status, r.Body)
	}
	if r := w.Do(t, "GET", "/fhir/Patient/"+pid, w.Tokens[N], nil); r.Status != 403 && r.Status != 404 {
		t.Fatalf("a nurse outside the care team: %d", r.Status)
	}
	// The relationship is data: a CareTeam of the patient, with a period.
	r := w.Do(t, "GET", "/fhir/CareTeam?patient=Patient/"+pid, w.Tokens[P], nil)
	b := r.JSON(t)
	entries, _ := b["entry"].([]any)
	if r.Status != 200 || len(entries) != 1 {
		t.Fatalf("care team of the patient: %d %s", r.Status, r.Body)
	}
	team := entries[0].(map[string]any)["resource"].(map[string]any)
	period, _ := team["period"].(map[string]any)
	if team["status"] != "active" || period["start"] != "2026-03-01T10:00:00Z" || period["end"] != "2026-03-03T10:00:00Z" {
		t.Fatalf("registration team: %v", team)
	}
	// Audited: the create of both, and the careteam-change.
	var creates, changes int
	for _, rec := range w.Ledger(t) {
		switch {
		case rec.Action == "create" && rec.ResourceType == "CareTeam" && rec.Actor == w.UserIDs[P]:
			creates++
		case rec.Action == records.ActionCareTeamChange:
			changes++
		}
	}
	if creates != 1 || changes != 1 {
		t.Fatalf("ledger: %d CareTeam creates, %d careteam-change", creates, changes)
	}
	// One day later: still in care. Three days later: the period ended.
	mu.Lock()
	now = now.Add(24 * time.Hour)
	mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	if r := w.Do(t, "GET", "/fhir/Patient/"+pid, w.Tokens[P], nil); r.Status != 200 {
		t.Fatalf("within the period: %d", r.Status)
	}
	mu.Lock()
	now = now.Add(48 * time.Hour)
	mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	if r := w.Do(t, "GET", "/fhir/Patient/"+pid, w.Tokens[P], nil); r.Status != 403 && r.Status != 404 {
		t.Fatalf("after the period: %d %s", r.Status, r.Body)
	}
	if r := w.Do(t, "GET", "/fhir/Patient?_count=10", w.Tokens[P], nil); r.Status != 200 || len(r.Body) == 0 || contains(r.Body, pid) {
		t.Fatalf("a search after the period still finds the patient: %d %s", r.Status, r.Body)
	}

	// Period 0: no CareTeam is made.
	w0 := apptest.Start(t, apptest.SQLite, func(c *config.Config) { c.RegistrationCarePeriod = 0 })
	id0 := w0.Create(t, P, `{"resourceType":"Patient","name":[{"family":"Alone"}]}`)
	if r := w0.Do(t, "GET", "/fhir/Patient/"+id0, w0.Tokens[P], nil); r.Status == 200 {
		t.Fatalf("period 0: the physician reads the patient without a relationship")
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }
