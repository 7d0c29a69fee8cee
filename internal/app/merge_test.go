package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/events"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/storetest"
)

// PHI planted in the merged patients' records: never in an event.
const (
	mergeName  = "Zebulonmergename"
	mergeMRN   = "MRN-77123-merge"
	mergeBirth = "1944-02-29"
)

// mergeWorld is a Ward with a source patient (in the care of the
// physician-user), a target patient (in the care of dr-target), and the
// source's records.
type mergeWorld struct {
	w           *apptest.Ward
	admin       string
	drSource    string // physician-user: generalPractitioner of the source only
	drTarget    string // generalPractitioner of the target only
	src, tgt    string
	moved       []string // Type/id of what moves
	encounter   string   // stays with the source
	observation string
}

func newMergeWorld(t *testing.T, b apptest.Backend) *mergeWorld {
	t.Helper()
	w := apptest.Start(t, b)
	m := &mergeWorld{w: w, admin: w.Tokens[authz.RoleAdmin], drSource: w.Tokens[authz.RolePhysician]}
	apptest.AddLinkedUser(t, w.App.Store, w.Config.Tenant, "dr-target", authz.RolePhysician, &store.User{Practitioner: "pract-target"})
	m.drTarget = w.Login(t, "dr-target", apptest.Password)
	patient := func(gp string) string {
		return w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","active":true,"name":[{"family":"`+mergeName+`"}],"birthDate":"`+mergeBirth+`",
			"identifier":[{"system":"urn:mrn","value":"`+mergeMRN+`-`+gp+`"}],"generalPractitioner":[{"reference":"Practitioner/`+gp+`"}]}`)
	}
	m.src = patient(apptest.Links[authz.RolePhysician].Practitioner)
	m.tgt = patient("pract-target")
	for i := range 3 {
		id := w.Create(t, authz.RoleAdmin, fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
			"subject":{"reference":"Patient/%s"},"performer":[{"reference":"Practitioner/pract-physician"}],"valueQuantity":{"value":%d},"note":[{"text":"%s"}]}`, m.src, 60+i, mergeName))
		m.moved = append(m.moved, "Observation/"+id)
		m.observation = id
	}
	m.moved = append(m.moved, "Condition/"+w.Create(t, authz.RoleAdmin, `{"resourceType":"Condition","subject":{"reference":"Patient/`+m.src+`"},
		"code":{"coding":[{"system":"http://snomed.info/sct","code":"38341003"}]},"recorder":{"reference":"Patient/`+m.src+`/_history/1"}}`))
	m.moved = append(m.moved, "Immunization/"+w.Create(t, authz.RoleAdmin, `{"resourceType":"Immunization","status":"completed","vaccineCode":{"coding":[{"system":"http://hl7.org/fhir/sid/cvx","code":"08"}]},
		"patient":{"reference":"`+w.URL+`/Patient/`+m.src+`"},"occurrenceDateTime":"2021-01-01"}`))
	// The nurse's care relationship with the source is this Encounter.
	m.encounter = w.Create(t, authz.RoleAdmin, `{"resourceType":"Encounter","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},
		"subject":{"reference":"Patient/`+m.src+`"},"participant":[{"individual":{"reference":"Practitioner/`+apptest.Links[authz.RoleNurse].Practitioner+`"}}],
		"period":{"start":"`+time.Now().UTC().Format("2006-01-02")+`"}}`)
	slices.Sort(m.moved)
	return m
}

func (m *mergeWorld) merge(t *testing.T, token string, params ...string) *apptest.Response {
	t.Helper()
	body := `{"resourceType":"Parameters","parameter":[` + strings.Join(params, ",") + `]}`
	return m.w.Do(t, http.MethodPost, "/fhir/Patient/$merge", token, []byte(body))
}

func ref(name, id string) string {
	return `{"name":"` + name + `","valueReference":{"reference":"Patient/` + id + `"}}`
}

const preview = `{"name":"preview","valueBoolean":true}`

// plan reads the plan parameter's moved and kept references.
func plan(t *testing.T, r *apptest.Response) (moved, kept []string, result map[string]any) {
	t.Helper()
	out := r.JSON(t)
	if out["resourceType"] != "Parameters" {
		t.Fatalf("not Parameters: %.300s", r.Body)
	}
	names := map[string]bool{}
	for _, x := range out["parameter"].([]any) {
		p := x.(map[string]any)
		names[p["name"].(string)] = true
		switch p["name"] {
		case "result":
			result = p["resource"].(map[string]any)
		case "plan":
			for _, y := range p["part"].([]any) {
				part := y.(map[string]any)
				switch part["name"] {
				case "moved-resource":
					moved = append(moved, part["valueReference"].(map[string]any)["reference"].(string))
				case "kept-resource":
					kept = append(kept, part["valueReference"].(map[string]any)["reference"].(string))
				}
			}
		}
	}
	for _, n := range []string{"input", "outcome", "result", "plan"} {
		if !names[n] {
			t.Fatalf("output has no %s parameter: %.300s", n, r.Body)
		}
	}
	slices.Sort(moved)
	return moved, kept, result
}

// versions are the current versions of refs (Type/id), as the admin reads them.
func (m *mergeWorld) versions(t *testing.T, refs ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, rf := range refs {
		r := m.w.Do(t, http.MethodGet, "/fhir/"+rf, m.admin, nil)
		if r.Status != 200 {
			t.Fatalf("read %s: %d", rf, r.Status)
		}
		out[rf] = r.JSON(t)["meta"].(map[string]any)["versionId"].(string)
	}
	return out
}

func (m *mergeWorld) all() []string {
	return append(slices.Clone(m.moved), "Patient/"+m.src, "Patient/"+m.tgt, "Encounter/"+m.encounter)
}

// searchIDs are the ids a search answers (as token).
func (m *mergeWorld) searchIDs(t *testing.T, token, path string) []string {
	t.Helper()
	r := m.w.Do(t, http.MethodGet, "/fhir/"+path, token, nil)
	if r.Status != 200 {
		t.Fatalf("search %s: %d %.300s", path, r.Status, r.Body)
	}
	var out []string
	entries, _ := r.JSON(t)["entry"].([]any)
	for _, e := range entries {
		res := e.(map[string]any)["resource"].(map[string]any)
		out = append(out, res["resourceType"].(string)+"/"+res["id"].(string))
	}
	slices.Sort(out)
	return out
}

// TestMerge: Patient/$merge through a real listener on both databases:
// who may merge, the preview, references moved as new versions, the
// links, histories, access after the merge, the one ledger record and
// the patient.merged event.
func TestMerge(t *testing.T) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			m := newMergeWorld(t, b)
			w := m.w
			ctx := context.Background()
			o := w.App.Store.(storetest.Outboxer)
			before := m.versions(t, m.all()...)
			// The source's clinician reads the source's records, not the target's.
			if r := w.Do(t, http.MethodGet, "/fhir/Observation/"+m.observation, m.drSource, nil); r.Status != 200 {
				t.Fatalf("source clinician reads the source's record: %d", r.Status)
			}
			if r := w.Do(t, http.MethodGet, "/fhir/Patient/"+m.tgt, m.drSource, nil); r.Status != 403 {
				t.Fatalf("source clinician reads the target before: %d", r.Status)
			}
			nurse := w.Tokens[authz.RoleNurse]
			if r := w.Do(t, http.MethodGet, "/fhir/Observation/"+m.observation, nurse, nil); r.Status != 200 {
				t.Fatalf("the source's encounter nurse reads the source's record: %d", r.Status)
			}

			// Who may merge: not a clinician of one patient alone, not a nurse.
			for _, c := range []struct {
				name, token string
			}{{"clinician of the source", m.drSource}, {"clinician of the target", m.drTarget}, {"nurse", w.Tokens[authz.RoleNurse]}, {"privacy officer", w.Tokens[authz.RolePrivacyOfficer]}} {
				if r := m.merge(t, c.token, ref("source-patient", m.src), ref("target-patient", m.tgt)); r.Status != 403 {
					t.Fatalf("%s merged: %d %.300s", c.name, r.Status, r.Body)
				}
			}

			// Preview: the plan, nothing written.
			head, err := o.OutboxStats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			r := m.merge(t, m.admin, ref("source-patient", m.src), ref("target-patient", m.tgt), preview)
			if r.Status != 200 {
				t.Fatalf("preview: %d %s", r.Status, r.Body)
			}
			moved, kept, result := plan(t, r)
			if !slices.Equal(moved, m.moved) || !slices.Equal(kept, []string{"Encounter/" + m.encounter}) {
				t.Fatalf("preview plan: moved %v kept %v, want %v", moved, kept, m.moved)
			}
			if !hasLinkTo(result, "replaces", m.src) {
				t.Fatalf("preview result has no replaces link: %v", result["link"])
			}
			if got := m.versions(t, m.all()...); !mapsEqual(got, before) {
				t.Fatalf("preview changed versions: %v -> %v", before, got)
			}
			evs, err := o.OutboxAfter(ctx, head.Head, 100)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range evs {
				// Reads are disclosures (phi.disclosed, derived from the
				// ledger); nothing else may follow a preview.
				if e.Type != events.PHIDisclosed {
					t.Fatalf("preview appended a %s event", e.Type)
				}
			}

			// The merge.
			r = m.merge(t, m.admin, ref("source-patient", m.src), ref("target-patient", m.tgt))
			if r.Status != 200 {
				t.Fatalf("merge: %d %s", r.Status, r.Body)
			}
			moved, _, result = plan(t, r)
			if !slices.Equal(moved, m.moved) || !hasLinkTo(result, "replaces", m.src) || result["meta"].(map[string]any)["versionId"] != "2" {
				t.Fatalf("merge answer: moved %v result %v", moved, result)
			}
			after := m.versions(t, m.all()...)
			for _, rf := range m.all() {
				want := "2"
				if rf == "Encounter/"+m.encounter {
					want = "1"
				}
				if after[rf] != want {
					t.Errorf("%s: version %s, want %s", rf, after[rf], want)
				}
			}
			// References moved: found by patient on the target, none on the source.
			onTarget := m.searchIDs(t, m.admin, "Observation?patient=Patient/"+m.tgt)
			if len(onTarget) != 3 || len(m.searchIDs(t, m.admin, "Observation?patient=Patient/"+m.src)) != 0 {
				t.Fatalf("observations on the target %v", onTarget)
			}
			if len(m.searchIDs(t, m.admin, "Condition?patient=Patient/"+m.tgt)) != 1 || len(m.searchIDs(t, m.admin, "Immunization?patient=Patient/"+m.tgt)) != 1 ||
				len(m.searchIDs(t, m.admin, "Condition?patient=Patient/"+m.src)) != 0 || len(m.searchIDs(t, m.admin, "Immunization?patient=Patient/"+m.src)) != 0 {
				t.Fatal("condition or immunization not moved")
			}
			if got := m.searchIDs(t, m.admin, "Encounter?patient=Patient/"+m.src); !slices.Equal(got, []string{"Encounter/" + m.encounter}) {
				t.Fatalf("the encounter (it governs access) left the source: %v", got)
			}
			// Moved records are re-sealed under the target's own data key
			// (per-patient keys, docs/keys.md); the source keeps its own.
			for _, rf := range append([]string{"Patient/" + m.tgt}, m.moved...) {
				typ, id, _ := strings.Cut(rf, "/")
				v, err := w.App.Store.Current(ctx, w.Config.Tenant, typ, id)
				if err != nil || v == nil {
					t.Fatalf("%s: %v", rf, err)
				}
				if kid := mustKeyID(t, v.Body); kid != keys.PatientKeyID(w.Config.Tenant, m.tgt) {
					t.Errorf("%s sealed under %s, want the target's key", rf, kid)
				}
			}
			cond := w.Do(t, http.MethodGet, "/fhir/"+m.moved[0], m.admin, nil).JSON(t)
			if b, _ := json.Marshal(cond); strings.Contains(string(b), m.src) {
				t.Fatalf("a moved resource still names the source: %s", b)
			}
			// Histories kept: version 1 names the source.
			h := w.Do(t, http.MethodGet, "/fhir/Observation/"+m.observation+"/_history", m.admin, nil).JSON(t)
			if h["total"].(float64) != 2 {
				t.Fatalf("observation history: %v", h["total"])
			}
			v1 := w.Do(t, http.MethodGet, "/fhir/Observation/"+m.observation+"/_history/1", m.admin, nil).JSON(t)
			if v1["subject"].(map[string]any)["reference"] != "Patient/"+m.src {
				t.Fatalf("version 1 rewritten: %v", v1["subject"])
			}
			for _, p := range []string{m.src, m.tgt} {
				if h := w.Do(t, http.MethodGet, "/fhir/Patient/"+p+"/_history", m.admin, nil).JSON(t); h["total"].(float64) != 2 {
					t.Fatalf("Patient/%s history: %v", p, h["total"])
				}
			}
			// Links.
			source := w.Do(t, http.MethodGet, "/fhir/Patient/"+m.src, m.admin, nil).JSON(t)
			if source["active"] != false || !hasLinkTo(source, "replaced-by", m.tgt) {
				t.Fatalf("source after the merge: active %v link %v", source["active"], source["link"])
			}
			target := w.Do(t, http.MethodGet, "/fhir/Patient/"+m.tgt, m.admin, nil).JSON(t)
			if target["active"] != true || !hasLinkTo(target, "replaces", m.src) {
				t.Fatalf("target after the merge: %v", target["link"])
			}

			// Access: the source's clinician gains nothing of the target,
			// and loses the moved records; the target's sees them.
			if r := w.Do(t, http.MethodGet, "/fhir/Patient/"+m.tgt, m.drSource, nil); r.Status != 403 {
				t.Fatalf("source clinician reads the target after the merge: %d", r.Status)
			}
			if r := w.Do(t, http.MethodGet, "/fhir/Observation/"+m.observation, m.drSource, nil); r.Status != 403 {
				t.Fatalf("source clinician reads a moved record: %d", r.Status)
			}
			if got := m.searchIDs(t, m.drSource, "Observation?patient=Patient/"+m.tgt); len(got) != 0 {
				t.Fatalf("source clinician finds the target's records: %v", got)
			}
			// Relationships by the source's Encounter stay with the source.
			if r := w.Do(t, http.MethodGet, "/fhir/Patient/"+m.tgt, nurse, nil); r.Status != 403 {
				t.Fatalf("the source's encounter nurse reads the target after the merge: %d", r.Status)
			}
			if r := w.Do(t, http.MethodGet, "/fhir/Observation/"+m.observation, nurse, nil); r.Status != 403 {
				t.Fatalf("the source's encounter nurse reads a moved record: %d", r.Status)
			}
			if r := w.Do(t, http.MethodGet, "/fhir/Patient/"+m.src, nurse, nil); r.Status != 200 {
				t.Fatalf("the source's encounter nurse lost the source: %d", r.Status)
			}
			if r := w.Do(t, http.MethodGet, "/fhir/Observation/"+m.observation, m.drTarget, nil); r.Status != 200 {
				t.Fatalf("target clinician reads a moved record: %d", r.Status)
			}
			if got := m.searchIDs(t, m.drTarget, "Observation?patient=Patient/"+m.tgt); len(got) != 3 {
				t.Fatalf("target clinician finds %v", got)
			}

			// One event, ids only; every event of the merge without PHI.
			evs, err = o.OutboxAfter(ctx, head.Head, 1000)
			if err != nil {
				t.Fatal(err)
			}
			merged := 0
			for _, e := range evs {
				text := uuidRE.ReplaceAllString(string(e.JSON), "")
				for _, phi := range []string{mergeName, mergeMRN, mergeBirth, "1944"} {
					if strings.Contains(text, phi) {
						t.Fatalf("event %s carries PHI %q: %s", e.Type, phi, e.JSON)
					}
				}
				if e.Type != events.PatientMerged {
					continue
				}
				merged++
				env, err := events.Parse(e.JSON)
				if err != nil {
					t.Fatal(err)
				}
				if env.Subject != "Patient/"+m.src || env.Data.Target != "Patient/"+m.tgt || env.Data.Moved != len(m.moved) || env.Tenant != w.Config.Tenant {
					t.Fatalf("patient.merged: %s", e.JSON)
				}
			}
			if merged != 1 {
				t.Fatalf("%d patient.merged events", merged)
			}

			// One ledger record naming both patients and the count.
			var recs int
			for _, rec := range w.Ledger(t) {
				if rec.Action != "merge" || rec.Outcome != 0 {
					continue
				}
				recs++
				if rec.Detail != fmt.Sprintf("moved:%d", len(m.moved)) || !slices.Contains(rec.Patients, m.src) || !slices.Contains(rec.Patients, m.tgt) {
					t.Fatalf("merge record: %+v", rec)
				}
			}
			if recs != 1 {
				t.Fatalf("%d merge records", recs)
			}
			if _, _, err := app.VerifyLedger(ctx, w.App.Store); err != nil {
				t.Fatalf("ledger verify after the merge: %v", err)
			}

		})
	}
}

// TestMergeRefusals: every refusal of $merge is an OperationOutcome with
// its 4xx and writes nothing; a physician of both patients merges; a
// source named by identifier.
func TestMergeRefusals(t *testing.T) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			m := newMergeWorld(t, b)
			w := m.w
			if r := m.merge(t, m.admin, ref("source-patient", m.src), ref("target-patient", m.tgt)); r.Status != 200 {
				t.Fatalf("merge: %d %.300s", r.Status, r.Body)
			}
			other := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","identifier":[{"system":"urn:dup","value":"d1"}]}`)
			w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","identifier":[{"system":"urn:dup","value":"d1"}]}`)
			for _, c := range []struct {
				name   string
				params []string
				status int
			}{
				{"source is target", []string{ref("source-patient", m.tgt), ref("target-patient", m.tgt)}, 400},
				{"unknown source", []string{ref("source-patient", "no-such-patient"), ref("target-patient", m.tgt)}, 404},
				{"unknown target", []string{ref("source-patient", other), ref("target-patient", "no-such-patient")}, 404},
				{"source already merged", []string{ref("source-patient", m.src), ref("target-patient", other)}, 422},
				{"target replaced", []string{ref("source-patient", other), ref("target-patient", m.src)}, 422},
				{"identifiers of several patients", []string{`{"name":"source-patient-identifier","valueIdentifier":{"system":"urn:dup","value":"d1"}}`, ref("target-patient", m.tgt)}, 422},
				{"reference and identifier disagree", []string{ref("source-patient", other), `{"name":"source-patient-identifier","valueIdentifier":{"system":"urn:mrn","value":"` + mergeMRN + `-pract-target"}}`, ref("target-patient", m.src)}, 422},
				{"no target", []string{ref("source-patient", other)}, 400},
				{"unknown parameter", []string{ref("source-patient", other), ref("target-patient", m.tgt), `{"name":"delete-source","valueBoolean":true}`}, 400},
			} {
				if r := m.merge(t, m.admin, c.params...); r.Status != c.status || !strings.Contains(string(r.Body), "OperationOutcome") {
					t.Errorf("%s: %d %.300s, want %d", c.name, r.Status, r.Body, c.status)
				}
			}
			// A source with an active Consent: refused, nothing written.
			consented := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient"}`)
			w.Create(t, authz.RoleAdmin, `{"resourceType":"Consent","status":"active","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],"patient":{"reference":"Patient/`+consented+`"},"policyRule":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"OPTIN"}]}}`)
			if r := m.merge(t, m.admin, ref("source-patient", consented), ref("target-patient", m.tgt)); r.Status != 422 {
				t.Errorf("source with an active consent: %d %.300s", r.Status, r.Body)
			}
			if v := m.versions(t, "Patient/"+consented); v["Patient/"+consented] != "1" {
				t.Errorf("refused merge wrote the source: %v", v)
			}
			// A physician in the care of both patients merges them.
			gp := `,"generalPractitioner":[{"reference":"Practitioner/` + apptest.Links[authz.RolePhysician].Practitioner + `"}]}`
			p1 := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient"`+gp)
			p2 := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient"`+gp)
			obs := w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/`+p1+`"}}`)
			if r := m.merge(t, m.drSource, ref("source-patient", p1), ref("target-patient", p2)); r.Status != 200 {
				t.Fatalf("physician of both: %d %.300s", r.Status, r.Body)
			}
			if got := m.searchIDs(t, m.drSource, "Observation?patient=Patient/"+p2); !slices.Equal(got, []string{"Observation/" + obs}) {
				t.Fatalf("physician's merge moved %v", got)
			}

			// result-patient: the target as stored, with the replaces link
			// added; one naming another id is refused.
			p5 := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient"}`)
			p6 := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient"}`)
			result := func(id string) string {
				return `{"name":"result-patient","resource":{"resourceType":"Patient","id":"` + id + `","gender":"female"}}`
			}
			if r := m.merge(t, m.admin, ref("source-patient", p5), ref("target-patient", p6), result(p5)); r.Status != 422 {
				t.Fatalf("result-patient with the source's id: %d %.300s", r.Status, r.Body)
			}
			if r := m.merge(t, m.admin, ref("source-patient", p5), ref("target-patient", p6), result(p6)); r.Status != 200 {
				t.Fatalf("merge with result-patient: %d %.300s", r.Status, r.Body)
			}
			if s := w.Do(t, http.MethodGet, "/fhir/Patient/"+p6, m.admin, nil).JSON(t); s["gender"] != "female" || !hasLinkTo(s, "replaces", p5) {
				t.Fatalf("target after a merge with result-patient: %v", s)
			}

			// By identifier: the one patient it selects.
			third := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"only-one"}]}`)
			r := m.merge(t, m.admin, `{"name":"source-patient-identifier","valueIdentifier":{"system":"urn:mrn","value":"only-one"}}`, ref("target-patient", m.tgt))
			if r.Status != 200 {
				t.Fatalf("merge by identifier: %d %s", r.Status, r.Body)
			}
			if s := w.Do(t, http.MethodGet, "/fhir/Patient/"+third, m.admin, nil).JSON(t); !hasLinkTo(s, "replaced-by", m.tgt) {
				t.Fatalf("identifier merge: %v", s["link"])
			}
		})
	}
}

// TestMergeAtomic: a merge that fails midway, by an injected fault or
// by a commit that loses to another writer inside the store transaction,
// changes nothing: no version, no event, no link.
func TestMergeAtomic(t *testing.T) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			m := newMergeWorld(t, b)
			w := m.w
			ctx := context.Background()
			o := w.App.Store.(storetest.Outboxer)
			check := func(what string, before map[string]string, head int64) {
				t.Helper()
				if got := m.versions(t, m.all()...); !mapsEqual(got, before) {
					t.Fatalf("%s: versions changed %v -> %v", what, before, got)
				}
				evs, err := o.OutboxAfter(ctx, head, 1000)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range evs {
					if e.Type != events.AccessDenied && !strings.HasPrefix(e.Type, "phi.") {
						t.Fatalf("%s: event %s appended", what, e.Type)
					}
				}
				if got := m.searchIDs(t, m.admin, "Observation?patient=Patient/"+m.src); len(got) != 3 {
					t.Fatalf("%s: source has %v", what, got)
				}
			}

			before := m.versions(t, m.all()...)
			head, _ := o.OutboxStats(ctx)
			w.App.Records.InjectMergeFault(func(staged int) error {
				if staged == 3 {
					return errors.New("injected fault")
				}
				return nil
			})
			if r := m.merge(t, m.admin, ref("source-patient", m.src), ref("target-patient", m.tgt)); r.Status != 500 || strings.Contains(string(r.Body), "injected") {
				t.Fatalf("merge with a fault: %d %s", r.Status, r.Body)
			}
			check("injected fault", before, head.Head)

			// Another writer changes a record the merge already staged,
			// every attempt: the unit fails inside the transaction.
			n := 0
			w.App.Records.InjectMergeFault(func(staged int) error {
				if staged != 2 {
					return nil
				}
				n++
				body := fmt.Sprintf(`{"resourceType":"Observation","id":"%s","status":"amended","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/%s"},"valueQuantity":{"value":%d}}`,
					m.observation, m.src, n)
				if r := w.Do(t, http.MethodPut, "/fhir/Observation/"+m.observation, m.admin, []byte(body)); r.Status != 200 {
					t.Errorf("concurrent update: %d %s", r.Status, r.Body)
				}
				return nil
			})
			head, _ = o.OutboxStats(ctx)
			r := m.merge(t, m.admin, ref("source-patient", m.src), ref("target-patient", m.tgt))
			if r.Status != 409 || n < 2 {
				t.Fatalf("merge racing a writer: %d after %d attempts %s", r.Status, n, r.Body)
			}
			before = m.versions(t, m.all()...)
			evs, _ := o.OutboxAfter(ctx, head.Head, 1000)
			for _, e := range evs {
				if e.Type == events.PatientMerged {
					t.Fatal("a failed merge emitted patient.merged")
				}
			}
			if s := w.Do(t, http.MethodGet, "/fhir/Patient/"+m.src, m.admin, nil).JSON(t); s["link"] != nil || s["active"] != true {
				t.Fatalf("source changed by a failed merge: %v", s)
			}
			w.App.Records.InjectMergeFault(nil)
			head, _ = o.OutboxStats(ctx)
			check("after the faults", before, head.Head)
			if r := m.merge(t, m.admin, ref("source-patient", m.src), ref("target-patient", m.tgt)); r.Status != 200 {
				t.Fatalf("merge without a fault: %d %s", r.Status, r.Body)
			}
			if _, _, err := app.VerifyLedger(ctx, w.App.Store); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func hasLinkTo(doc map[string]any, typ, id string) bool {
	links, _ := doc["link"].([]any)
	for _, l := range links {
		lm := l.(map[string]any)
		if lm["type"] == typ && lm["other"].(map[string]any)["reference"] == "Patient/"+id {
			return true
		}
	}
	return false
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
