package records_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/invalidation/natstest"
)

// BenchmarkReadDecision measures what the access decision adds to a read
// (p50 and p90 over the iterations, in µs): describing the resource,
// loading the facts through the search index (care relationship,
// organizations, consents) and Decide: with facts cached (decision/),
// after a write of a Patient and a Consent (decision-cold/) and after a
// write of a PractitionerRole and a Consent (decision-cold-all/). It also reports a whole Read
// (store read, open, decision, audit commit) for scale. Run with
//
//	go test ./internal/records/ -run '^$' -bench BenchmarkReadDecision -benchtime 2000x
//
// on SQLite and on PostgreSQL (skipped when it is not reachable).
func BenchmarkReadDecision(b *testing.B) {
	for _, be := range apptest.Backends {
		b.Run(string(be), func(b *testing.B) { benchReadDecision(b, be) })
	}
}

func benchReadDecision(b *testing.B, be apptest.Backend) {
	w := apptest.Start(b, be)
	pid := w.Create(b, authz.RoleAdmin, `{"resourceType":"Patient","gender":"female","generalPractitioner":[{"reference":"Practitioner/pract-physician"}]}`)
	eid := w.Create(b, authz.RoleAdmin, `{"resourceType":"Patient","gender":"male"}`)
	w.Create(b, authz.RoleAdmin, `{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/`+eid+`"},`+
		`"participant":[{"individual":{"reference":"Practitioner/pract-physician"}}],"period":{"start":"`+time.Now().Add(-48*time.Hour).UTC().Format(time.RFC3339)+`"}}`)
	obs := func(p string) string {
		return w.Create(b, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"text":"pulse"},"subject":{"reference":"Patient/`+p+`"}}`)
	}
	gpObs, encObs := obs(pid), obs(eid)
	// Some unrelated load in the index.
	var others, otherObs []string
	for range 200 {
		p := w.Create(b, authz.RoleAdmin, `{"resourceType":"Patient","gender":"other"}`)
		others, otherObs = append(others, p), append(otherObs, obs(p))
	}
	ctx := context.Background()
	b.Run("decision-writes-1-in-10/physician", func(b *testing.B) {
		// A clinic's mix: reads of 200 patients' Observations in random
		// order by a physician, and after every tenth an Encounter created
		// for a random patient (not timed). Only the patient written loses
		// its cached facts.
		s := authz.Subject{Tenant: "default", ID: "p", Role: authz.RolePhysician, Scopes: []string{"user/*.cruds"}, Practitioner: "pract-physician"}
		admin := authz.Subject{Tenant: "default", ID: "a", Role: authz.RoleAdmin, Scopes: []string{"user/*.cruds"}}
		rng := rand.New(rand.NewPCG(1, 2))
		plains := make([][]byte, len(otherObs))
		for i, id := range otherObs {
			v, err := w.App.Records.For(admin, "bench").Read(ctx, "Observation", id)
			if err != nil {
				b.Fatal(err)
			}
			plains[i] = v.JSON
		}
		var ds []time.Duration
		i := 0
		for b.Loop() {
			n := rng.IntN(len(otherObs))
			start := time.Now()
			_, err := w.App.Records.For(s, "bench").DecisionOnly(ctx, "Observation", plains[n], otherObs[n])
			ds = append(ds, time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
			if i++; i%10 == 0 {
				enc := `{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/` + others[rng.IntN(len(others))] + `"}}`
				res, err := fhir.Parse([]byte(enc))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := w.App.Records.For(admin, "bench").Create(ctx, res); err != nil {
					b.Fatal(err)
				}
			}
		}
		report(b, ds)
	})
	subj := map[string]authz.Subject{
		"admin":                 {Tenant: "default", ID: "a", Role: authz.RoleAdmin, Scopes: []string{"user/*.cruds"}},
		"physician-gp":          {Tenant: "default", ID: "p", Role: authz.RolePhysician, Scopes: []string{"user/*.cruds"}, Practitioner: "pract-physician"},
		"physician-encounter":   {Tenant: "default", ID: "p", Role: authz.RolePhysician, Scopes: []string{"user/*.cruds"}, Practitioner: "pract-physician"},
		"physician-unrelated":   {Tenant: "default", ID: "p", Role: authz.RolePhysician, Scopes: []string{"user/*.cruds"}, Practitioner: "pract-nobody"},
		"patient-own-compartm.": {Tenant: "default", ID: "u", Role: authz.RoleUser, Scopes: []string{"patient/*.rs"}, Patient: pid},
	}
	target := map[string]string{"physician-encounter": encObs}
	for _, name := range []string{"admin", "physician-gp", "physician-encounter", "physician-unrelated", "patient-own-compartm."} {
		id := gpObs
		if t, ok := target[name]; ok {
			id = t
		}
		s := subj[name]
		plain, err := w.App.Records.For(subj["admin"], "bench").Read(ctx, "Observation", id)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("decision/"+name, func(b *testing.B) {
			var ds []time.Duration
			for b.Loop() {
				start := time.Now()
				d, err := w.App.Records.For(s, "bench").DecisionOnly(ctx, "Observation", plain.JSON, id)
				ds = append(ds, time.Since(start))
				if err != nil || d.Allow == strings.HasSuffix(name, "unrelated") {
					b.Fatalf("%+v %v", d, err)
				}
			}
			report(b, ds)
		})
		cold := func(forget func(tenant string)) func(b *testing.B) {
			return func(b *testing.B) {
				var ds []time.Duration
				for b.Loop() {
					forget("default")
					start := time.Now()
					_, err := w.App.Records.For(s, "bench").DecisionOnly(ctx, "Observation", plain.JSON, id)
					ds = append(ds, time.Since(start))
					if err != nil {
						b.Fatal(err)
					}
				}
				report(b, ds)
			}
		}
		// Every iteration after a write of a Patient and a Consent: the
		// facts are loaded from the search index again; after a
		// PractitionerRole write, a clinician's organizations too.
		b.Run("decision-cold/"+name, cold(w.App.Records.ForgetFacts))
		b.Run("decision-cold-all/"+name, cold(w.App.Records.ForgetAllFacts))
		b.Run("read/"+name, func(b *testing.B) {
			var ds []time.Duration
			for b.Loop() {
				start := time.Now()
				_, err := w.App.Records.For(s, "bench").Read(ctx, "Observation", id)
				ds = append(ds, time.Since(start))
				if (err == nil) == strings.HasSuffix(name, "unrelated") {
					b.Fatal(err)
				}
			}
			report(b, ds)
		})
	}
}

func report(b *testing.B, ds []time.Duration) {
	slices.Sort(ds)
	if len(ds) == 0 {
		return
	}
	b.ReportMetric(float64(ds[len(ds)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(ds[len(ds)*9/10].Nanoseconds())/1e3, "p90-µs")
}

// BenchmarkCachedDecisionOnBus compares a decision from cached facts on a
// single node with the same decision on a node connected to the
// invalidation bus (which must check, on every cached fact, that the bus
// is live). The difference is what the bus adds to a cached read. Run with
//
//	go test ./internal/records/ -run '^$' -bench BenchmarkCachedDecisionOnBus -benchtime 20000x -count 5
func BenchmarkCachedDecisionOnBus(b *testing.B) {
	natsURL := natstest.URL(b)
	for _, mode := range []string{"single-node", "bus-connected"} {
		w := apptest.Start(b, apptest.SQLite, func(c *config.Config) {
			if mode == "bus-connected" {
				c.NATSURL, c.NATSPrefix = natsURL, natstest.Prefix()
			}
		})
		if (w.App.Bus != nil) != (mode == "bus-connected") || (w.App.Bus != nil && !w.App.Bus.Live()) {
			b.Fatalf("%s: bus %v", mode, w.App.Bus)
		}
		pid := w.Create(b, authz.RoleAdmin, `{"resourceType":"Patient","gender":"female","generalPractitioner":[{"reference":"Practitioner/pract-physician"}]}`)
		id := w.Create(b, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"text":"pulse"},"subject":{"reference":"Patient/`+pid+`"}}`)
		ctx := context.Background()
		plain, err := w.App.Records.For(authz.Subject{Tenant: "default", ID: "a", Role: authz.RoleAdmin, Scopes: []string{"user/*.cruds"}}, "bench").Read(ctx, "Observation", id)
		if err != nil {
			b.Fatal(err)
		}
		s := authz.Subject{Tenant: "default", ID: "p", Role: authz.RolePhysician, Scopes: []string{"user/*.cruds"}, Practitioner: "pract-physician"}
		b.Run("decision/"+mode, func(b *testing.B) {
			var ds []time.Duration
			for b.Loop() {
				start := time.Now()
				d, err := w.App.Records.For(s, "bench").DecisionOnly(ctx, "Observation", plain.JSON, id)
				ds = append(ds, time.Since(start))
				if err != nil || !d.Allow {
					b.Fatalf("%+v %v", d, err)
				}
			}
			report(b, ds)
		})
	}
}
