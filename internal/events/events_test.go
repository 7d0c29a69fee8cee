package events

import (
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/audit"
)

func TestFromAudit(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		name string
		rec  audit.Record
		want string
	}{
		{"denied", audit.Record{Action: "read", Outcome: audit.OutcomeMinor, Detail: "denied:no-relationship", Entities: []string{"Patient/p1/_history/2"}}, AccessDenied},
		{"break-glass", audit.Record{Action: "read", Emergency: true, Entities: []string{"Observation/o1/_history/1", "Patient/p9"}}, AccessEmergency},
		{"login failed", audit.Record{Action: "login", Outcome: audit.OutcomeMinor, Detail: "invalid-credentials"}, LoginFailed},
		{"signing key", audit.Record{Action: "signing-key-create", Entities: []string{"signing-key/k1"}}, KeysRotated},
		{"data key", audit.Record{Action: "data-key-create", Entities: []string{"key/k2"}}, KeysRotated},
		{"a read", audit.Record{Action: "read", Entities: []string{"Patient/p1/_history/1"}}, ""},
		{"a conflict", audit.Record{Action: "update", Outcome: audit.OutcomeMinor, Detail: "conflict"}, ""},
		{"a successful login", audit.Record{Action: "login"}, ""},
		{"a read of a patient's record", audit.Record{Action: "read", Entities: []string{"Observation/o1/_history/1"}, Patients: []string{"p1"}}, PHIDisclosed},
		{"a search", audit.Record{Action: "search-type", ResourceType: "Observation", Entities: []string{"Observation/o1/_history/1", "Observation/o2/_history/1"}, Patients: []string{"p1", "p2"}}, PHIDisclosed},
		{"an export file", audit.Record{Action: "export-download", Patients: []string{"p1"}}, PHIDisclosed},
		{"an async result", audit.Record{Action: "async-download", Patients: []string{"p1"}}, PHIDisclosed},
		{"a merge preview", audit.Record{Action: "merge-preview", Entities: []string{"Patient/p2"}, Patients: []string{"p2", "p1"}}, PHIDisclosed},
		{"a merge", audit.Record{Action: "merge", Entities: []string{"Patient/p2"}, Patients: []string{"p2", "p1"}}, PHIDisclosed},
		{"break-glass read", audit.Record{Action: "read", Emergency: true, Entities: []string{"Observation/o1/_history/1"}, Patients: []string{"p9"}}, AccessEmergency + " " + PHIDisclosed},
		{"a create", audit.Record{Action: "create", Entities: []string{"Observation/o1/_history/1"}, Patients: []string{"p1"}}, ""},
		{"a refused read", audit.Record{Action: "read", Outcome: audit.OutcomeMinor, Detail: "not-found", Patients: []string{"p1"}}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.rec.Time, c.rec.Tenant, c.rec.Seq = at, "t1", 42
			// What a record stands for: FromAudit's events, committed
			// with it, then Disclosed's, derived from the ledger.
			evs := FromAudit(&c.rec)
			for _, e := range evs {
				if e.Type == PHIDisclosed {
					t.Fatalf("FromAudit emits phi.disclosed on the read path")
				}
			}
			if e, ok := Disclosed(&c.rec); ok {
				again, _ := Disclosed(&c.rec)
				if again.ID != e.ID {
					t.Fatalf("phi.disclosed id not derived from the record: %s, %s", e.ID, again.ID)
				}
				other := c.rec
				other.Seq++
				if o, _ := Disclosed(&other); o.ID == e.ID {
					t.Fatalf("two records, one phi.disclosed id %s", e.ID)
				}
				evs = append(evs, e)
			}
			if c.want == "" {
				if len(evs) != 0 {
					t.Fatalf("got %s", evs[0].Type)
				}
				return
			}
			var got []string
			for _, e := range evs {
				got = append(got, e.Type)
				if e.Tenant != "t1" || !e.Time.Equal(at) {
					t.Fatalf("got %+v", e)
				}
				env, err := Parse(e.JSON)
				if err != nil || env.ID != e.ID || env.Type != e.Type {
					t.Fatalf("envelope %s: %v", e.JSON, err)
				}
				if e.Type == PHIDisclosed && (len(env.Data.Patients) != len(c.rec.Patients) || e.Key != "Patient/"+c.rec.Patients[0]) {
					t.Fatalf("phi.disclosed names patients %v, key %s", env.Data.Patients, e.Key)
				}
			}
			if strings.Join(got, " ") != c.want {
				t.Fatalf("got %v, want %s", got, c.want)
			}
			e, _ := Parse(evs[0].JSON)
			if c.want == AccessEmergency && (evs[0].Key != "Patient/p9" || e.Subject != "Observation/o1") {
				t.Fatalf("key %s subject %s", evs[0].Key, e.Subject)
			}
		})
	}
}

func TestForChange(t *testing.T) {
	at := time.Now()
	types := func(c Change) string {
		var out []string
		for _, e := range ForChange(c) {
			out = append(out, e.Type)
		}
		return strings.Join(out, " ")
	}
	pat := func(active any) map[string]any {
		m := map[string]any{"resourceType": "Patient"}
		if active != nil {
			m["active"] = active
		}
		return m
	}
	for _, c := range []struct {
		c    Change
		want string
	}{
		{Change{Type: "Patient", ID: "p", Version: 1, Doc: pat(nil)}, "resource.created patient.created"},
		{Change{Type: "Patient", ID: "p", Version: 2, Old: pat(nil), Doc: pat(false)}, "resource.updated patient.updated patient.deactivated"},
		{Change{Type: "Patient", ID: "p", Version: 3, Old: pat(false), Doc: pat(false)}, "resource.updated patient.updated"},
		{Change{Type: "Patient", ID: "p", Version: 4, Old: pat(true)}, "resource.deleted"},
		{Change{Type: "Immunization", ID: "i", Version: 1, Doc: map[string]any{}}, "resource.created immunization.recorded"},
		{Change{Type: "Immunization", ID: "i", Version: 2, Old: map[string]any{}, Doc: map[string]any{}}, "resource.updated immunization.updated"},
		{Change{Type: "Consent", ID: "c", Version: 1, Doc: map[string]any{"status": "active"}}, "resource.created consent.provided"},
		{Change{Type: "Consent", ID: "c", Version: 1, Doc: map[string]any{"status": "draft"}}, "resource.created"},
		{Change{Type: "Consent", ID: "c", Version: 2, Old: map[string]any{"status": "active"}, Doc: map[string]any{"status": "inactive"}}, "resource.updated consent.revoked"},
		{Change{Type: "Consent", ID: "c", Version: 3, Old: map[string]any{"status": "active"}}, "resource.deleted consent.revoked"},
		{Change{Type: "Observation", ID: "o", Version: 1, Doc: map[string]any{}, Patients: []string{"p1"}}, "resource.created"},
	} {
		c.c.Tenant, c.c.Time = "t", at
		if got := types(c.c); got != c.want {
			t.Errorf("%s v%d: %q, want %q", c.c.Type, c.c.Version, got, c.want)
		}
	}
	evs := ForChange(Change{Tenant: "t", Type: "Observation", ID: "o", Version: 1, Time: at, Doc: map[string]any{"note": "secret"}, Patients: []string{"p1"}})
	if evs[0].Key != "Patient/p1" || strings.Contains(string(evs[0].JSON), "secret") {
		t.Fatalf("event %s key %s", evs[0].JSON, evs[0].Key)
	}
}

// FuzzParse: Parse never panics, and what it accepts re-encodes.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"specversion":"1.0","id":"a","source":"urn:ward","type":"patient.created","time":"2026-01-01T00:00:00Z","datacontenttype":"application/json","tenant":"t","data":{}}`))
	f.Add([]byte(`{"specversion":"0.3"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Parse(b)
		if err == nil && (e.ID == "" || e.SpecVersion != "1.0") {
			t.Fatalf("accepted %q", b)
		}
	})
}

func TestMerged(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e := Merged(Merge{Tenant: "t1", Source: "s1", Target: "t9", SourceVersion: 3, Moved: 42, Time: at, Actor: "u1", Role: "admin", RequestID: "r1"})
	env, err := Parse(e.JSON)
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != PatientMerged || env.Subject != "Patient/s1" || e.Key != "Patient/s1" || env.Tenant != "t1" {
		t.Fatalf("envelope %s", e.JSON)
	}
	d := env.Data
	if d.Target != "Patient/t9" || d.Moved != 42 || d.VersionID != "3" || d.Action != "merge" || strings.Join(d.Patients, ",") != "Patient/s1,Patient/t9" {
		t.Fatalf("data %+v", d)
	}
}
