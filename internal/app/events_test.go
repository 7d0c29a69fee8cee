package app_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/events"
	"github.com/wardhealth/ward/internal/store/storetest"
)

// planted values: PHI that must never appear in an event.
const (
	plantedName  = "Quillfeatherzz"
	plantedBirth = "1931-07-04"
	plantedNote  = "secretnotevalue"
)

// TestWritesAppendEventsInTheirTransaction: every change through the API
// appends its domain events to the outbox (both databases), ids and codes
// only; security events derive from their audit records.
var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

func TestWritesAppendEventsInTheirTransaction(t *testing.T) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			w := apptest.Start(t, b)
			o := w.App.Store.(storetest.Outboxer)
			ctx := context.Background()
			start, err := o.OutboxStats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pid := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","active":true,"name":[{"family":"`+plantedName+`"}],"birthDate":"`+plantedBirth+`"}`)
			put := `{"resourceType":"Patient","id":"` + pid + `","active":false,"name":[{"family":"` + plantedName + `"}],"birthDate":"` + plantedBirth + `"}`
			if r := w.Do(t, http.MethodPut, "/fhir/Patient/"+pid, w.Tokens[authz.RoleAdmin], []byte(put)); r.Status != 200 {
				t.Fatalf("update: %d %s", r.Status, r.Body)
			}
			w.Create(t, authz.RoleAdmin, `{"resourceType":"Immunization","status":"completed","vaccineCode":{"coding":[{"system":"http://hl7.org/fhir/sid/cvx","code":"08"}]},"patient":{"reference":"Patient/`+pid+`"},"occurrenceDateTime":"2021-01-01","note":[{"text":"`+plantedNote+`"}]}`)
			cid := w.Create(t, authz.RoleAdmin, `{"resourceType":"Consent","status":"active","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],"patient":{"reference":"Patient/`+pid+`"},"policyRule":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"OPTIN"}]}}`)
			if r := w.Do(t, http.MethodDelete, "/fhir/Consent/"+cid, w.Tokens[authz.RoleAdmin], nil); r.Status >= 300 {
				t.Fatalf("delete consent: %d %s", r.Status, r.Body)
			}
			// A refused read (a patient-role user reading someone else's
			// record) and a failed login.
			if r := w.Do(t, http.MethodGet, "/fhir/Patient/"+pid, w.Tokens[authz.RoleUser], nil); r.Status != 403 && r.Status != 404 {
				t.Fatalf("user read of another patient: %d", r.Status)
			}
			resp, err := http.PostForm(w.Server.URL+"/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"nobody-" + plantedName}, "password": {"wrong"}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()

			evs, err := o.OutboxAfter(ctx, start.Head, 1000)
			if err != nil {
				t.Fatal(err)
			}
			count := map[string]int{}
			for _, e := range evs {
				count[e.Type]++
				env, err := events.Parse(e.JSON)
				if err != nil {
					t.Fatal(err)
				}
				if env.ID != e.ID || env.Tenant != w.Config.Tenant || env.Type != e.Type || env.DataContentType != "application/json" || env.Source == "" || env.Time.IsZero() {
					t.Fatalf("envelope does not match its row: %s", e.JSON)
				}
				// Ids are random hex: one may hold "1931" by chance,
				// so they are left out of the search for the bare year.
				text := uuidRE.ReplaceAllString(string(e.JSON), "")
				for _, phi := range []string{plantedName, plantedBirth, plantedNote, "1931"} {
					if strings.Contains(text, phi) {
						t.Fatalf("event %s carries PHI %q: %s", e.Type, phi, e.JSON)
					}
				}
			}
			want := map[string]int{
				events.PatientCreated: 1, events.PatientUpdated: 1, events.PatientDeactivated: 1,
				events.ImmunizationRecorded: 1, events.ConsentProvided: 1, events.ConsentRevoked: 1,
				events.ResourceDeleted: 1, events.AccessDenied: 1, events.LoginFailed: 1,
			}
			for typ, n := range want {
				if count[typ] < n {
					t.Errorf("%s: %d events, want %d (all: %v)", typ, count[typ], n, count)
				}
			}
			if count[events.ResourceCreated] < 3 || count[events.ResourceUpdated] < 1 {
				t.Errorf("resource events: %v", count)
			}
		})
	}
}
