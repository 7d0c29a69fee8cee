package clinic_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/clinic"
	"github.com/wardhealth/ward/internal/events"
	"github.com/wardhealth/ward/internal/store/storetest"
)

// TestFacadeWritesEmitTheFHIREvents: every write of the facade appends to
// the outbox exactly the domain events the same change made through the
// FHIR API appends (types, resource type, action, role, actor, patient
// count, in order), and no event of either carries PHI. Each facade step
// is mirrored on the FHIR API by writing the very FHIR resource the facade
// stored (read back through FHIR) for a twin patient, so the two paths
// make the same change.
func TestFacadeWritesEmitTheFHIREvents(t *testing.T) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			w := apptest.Start(t, b)
			o := w.App.Store.(storetest.Outboxer)
			A := w.Tokens[authz.RoleAdmin]
			ctx := context.Background()
			head := func() int64 {
				s, err := o.OutboxStats(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return s.Head
			}
			// since returns the events appended after seq, as comparable
			// summaries, and checks each for PHI.
			since := func(seq int64, ids ...string) []string {
				evs, err := o.OutboxAfter(ctx, seq, 100)
				if err != nil {
					t.Fatal(err)
				}
				var out []string
				for _, e := range evs {
					for _, phi := range planted {
						if strings.Contains(string(e.JSON), phi) {
							t.Errorf("event %s carries PHI %q", e.Type, phi)
						}
					}
					env, err := events.Parse(e.JSON)
					if err != nil {
						t.Fatal(err)
					}
					d := env.Data
					if d.Role == "system" {
						continue // key housekeeping (a first data key), not the change
					}
					if e.Type == events.PHIDisclosed {
						// Derived from the ledger's reads by a background
						// emitter, at its own pace: not a write's event.
						continue
					}
					out = append(out, fmt.Sprintf("%s %s %s %s %s patients:%d", e.Type, d.ResourceType, d.Action, d.Role, d.Actor, len(d.Patients)))
				}
				return out
			}
			facadeID := func(body []byte) string {
				var m struct{ ID string }
				json.Unmarshal(body, &m)
				return m.ID
			}
			// mirror writes through FHIR the current FHIR version of
			// typ/id (what the facade stored), its ids swapped for the
			// twin's, as a create (POST) or an update (PUT of twinID).
			idRE := regexp.MustCompile(`"(id|meta)":("[^"]*"|\{[^}]*\}),?`)
			mirror := func(typ, id, twinID string, swap map[string]string) string {
				r := w.Do(t, "GET", "/fhir/"+typ+"/"+id, A, nil)
				if r.Status != 200 {
					t.Fatalf("read back %s: %d", typ, r.Status)
				}
				body := idRE.ReplaceAllString(string(r.Body), "")
				for from, to := range swap {
					body = strings.ReplaceAll(body, from, to)
				}
				body = strings.Replace(body, "{", `{"id":"`+twinID+`",`, 1)
				if twinID == "" {
					body = strings.Replace(body, `"id":"",`, "", 1)
					r = w.Do(t, "POST", "/fhir/"+typ, A, []byte(body))
				} else {
					r = w.Do(t, "PUT", "/fhir/"+typ+"/"+twinID, A, []byte(body))
				}
				if r.Status >= 300 {
					t.Fatalf("FHIR mirror of %s: %d %s", typ, r.Status, r.Body)
				}
				return facadeID(r.Body)
			}
			compare := func(step string, facade, fhir []string) {
				t.Helper()
				if len(facade) == 0 {
					t.Errorf("%s: the facade appended no event", step)
				}
				if !slices.Equal(facade, fhir) {
					t.Errorf("%s: facade events\n  %v\nFHIR events\n  %v", step, facade, fhir)
				}
			}
			send := func(method, path string, v any) []byte {
				body, _ := json.Marshal(v)
				r := w.Do(t, method, path, A, body, "Content-Type: application/json")
				if r.Status >= 300 {
					t.Fatalf("%s %s: %d %s", method, path, r.Status, r.Body)
				}
				return r.Body
			}

			// Register.
			s := head()
			pat := facadeID(send("POST", "/patients", clinic.Patient{FirstName: "Oswin", LastName: "Quillfeather", DateOfBirth: "1958-02-23",
				MRN: "MRN-4711-XQ", Phone: "+1-617-555-0187", Address: &clinic.Address{Line1: "77 Larkspur Way", City: "Cambridgeport", PostalCode: "02139"}}))
			fe := since(s)
			s = head()
			twin := mirror("Patient", pat, "", nil)
			compare("register", fe, since(s))
			swap := map[string]string{"Patient/" + pat: "Patient/" + twin}

			// Update, then deactivate.
			s = head()
			send("PUT", "/patients/"+pat, clinic.Patient{FirstName: "Oswin", LastName: "Quillfeather", DateOfBirth: "1958-02-23", Phone: "+1-617-555-0187", Email: "oswin.q@example.org"})
			fe = since(s)
			s = head()
			mirror("Patient", pat, twin, swap)
			compare("update patient", fe, since(s))

			// A dose, its update, entered in error.
			s = head()
			dose := facadeID(send("POST", "/immunizations", clinic.Immunization{PatientID: pat, VaccineCode: "208", OccurredOn: "2021-03-04", LotNumber: "LOT-ZX-991",
				Reactions: []clinic.Reaction{{Date: "2021-03-05", Description: "hives on left forearm"}}}))
			fe = since(s)
			s = head()
			twinDose := mirror("Immunization", dose, "", swap)
			compare("record dose", fe, since(s))
			s = head()
			send("PUT", "/immunizations/"+dose, clinic.Immunization{PatientID: pat, VaccineCode: "208", OccurredOn: "2021-03-04", LotNumber: "LOT-ZX-992"})
			fe = since(s)
			s = head()
			mirror("Immunization", dose, twinDose, swap)
			compare("update dose", fe, since(s))
			s = head()
			if r := w.Do(t, "DELETE", "/immunizations/"+dose+"?reason=duplicate", A, nil); r.Status != 200 {
				t.Fatalf("entered in error: %d %s", r.Status, r.Body)
			}
			fe = since(s)
			s = head()
			mirror("Immunization", dose, twinDose, swap)
			compare("dose entered in error", fe, since(s))

			// A research consent granted, then revoked.
			s = head()
			consent := facadeID(send("POST", "/consents", clinic.Consent{PatientID: pat, Type: "research", LegalBasis: "hipaa-authorization", Witness: "Nurse Ratchet"}))
			fe = since(s)
			if !slices.ContainsFunc(fe, func(e string) bool { return strings.HasPrefix(e, events.ConsentProvided+" ") }) {
				t.Errorf("grant: no %s event in %v", events.ConsentProvided, fe)
			}
			s = head()
			twinConsent := mirror("Consent", consent, "", swap)
			compare("grant consent", fe, since(s))
			s = head()
			send("POST", "/consents/"+consent+"/revoke", clinic.Revocation{Reason: "patient withdrew by phone"})
			fe = since(s)
			if !slices.ContainsFunc(fe, func(e string) bool { return strings.HasPrefix(e, events.ConsentRevoked+" ") }) {
				t.Errorf("revoke: no %s event in %v", events.ConsentRevoked, fe)
			}
			s = head()
			mirror("Consent", consent, twinConsent, swap)
			compare("revoke consent", fe, since(s))

			// Deactivate.
			s = head()
			if r := w.Do(t, "DELETE", "/patients/"+pat, A, nil); r.Status != 200 {
				t.Fatalf("deactivate: %d %s", r.Status, r.Body)
			}
			fe = since(s)
			if !slices.ContainsFunc(fe, func(e string) bool { return strings.HasPrefix(e, events.PatientDeactivated+" ") }) {
				t.Errorf("deactivate: no %s event in %v", events.PatientDeactivated, fe)
			}
			s = head()
			mirror("Patient", pat, twin, swap)
			compare("deactivate", fe, since(s))

			// An upload: a Binary and a DocumentReference created in one
			// transaction, each with its event (a Binary is in no patient
			// compartment; its securityContext is not a compartment link).
			s = head()
			ct, form := multipartForm(t, map[string]string{"patient_id": pat, "title": "Signed intake"}, "application/pdf", pdf)
			if r := w.Do(t, "POST", "/documents", A, form, "Content-Type: "+ct); r.Status != 201 {
				t.Fatalf("upload: %d %s", r.Status, r.Body)
			}
			fe = since(s)
			for wnt, pats := range map[string]string{events.ResourceCreated + " Binary create admin": "patients:0",
				events.ResourceCreated + " DocumentReference create admin": "patients:1"} {
				if !slices.ContainsFunc(fe, func(e string) bool { return strings.HasPrefix(e, wnt) && strings.HasSuffix(e, pats) }) {
					t.Errorf("upload: no %q (%s) in %v", wnt, pats, fe)
				}
			}
		})
	}
}
