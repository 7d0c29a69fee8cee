package app_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/fhir"
)

// BenchmarkPatientKeys compares reads and creates with per-patient data
// keys against tenant keys only, side by side in one run: two servers on
// SQLite, one of each, each with 200 patients and an Observation each.
// Each round times 200 operations of each kind on both servers, in
// alternating order; the benchmark reports, per operation, the median
// over the rounds of each mode's µs/op and their ratio (patient/tenant).
//
//	go test ./internal/app -run '^$' -bench PatientKeys -benchtime 1x
//
// WARD_BENCH_ROUNDS sets the rounds (default 8). read: an Observation of
// one of the 200 patients (their keys cached after the first round);
// create-obs: an Observation for one of them; create-patient: a new
// Patient (its key is created, wrapped and stored with it).
func BenchmarkPatientKeys(b *testing.B) {
	ctx := context.Background()
	rounds := 8
	if n, err := strconv.Atoi(os.Getenv("WARD_BENCH_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	modes := []struct {
		name string
		opts []app.Option
	}{{"tenant", []app.Option{app.WithTenantKeysOnly()}}, {"patient", nil}}
	admin := authz.Subject{Tenant: "default", ID: "a", Role: authz.RoleAdmin, Scopes: []string{"user/*.cruds"}}
	type server struct {
		w    *apptest.Ward
		pats []string
		obs  []string
	}
	servers := make([]server, len(modes))
	for i, m := range modes {
		w := apptest.StartWith(b, apptest.SQLite, m.opts)
		s := server{w: w}
		for range 200 {
			p := w.Create(b, authz.RoleAdmin, `{"resourceType":"Patient","gender":"other"}`)
			s.pats = append(s.pats, p)
			s.obs = append(s.obs, w.Create(b, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"text":"pulse"},"subject":{"reference":"Patient/`+p+`"}}`))
		}
		servers[i] = s
	}
	ops := []string{"read", "create-obs", "create-patient"}
	const per = 200
	run := func(s server, op string) time.Duration {
		repo := s.w.App.Records.For(admin, "bench")
		start := time.Now()
		for n := range per {
			var err error
			switch op {
			case "read":
				_, err = repo.Read(ctx, "Observation", s.obs[n%len(s.obs)])
			case "create-obs":
				res, _ := fhir.Parse([]byte(`{"resourceType":"Observation","status":"final","code":{"text":"pulse"},"subject":{"reference":"Patient/` + s.pats[n%len(s.pats)] + `"}}`))
				_, err = repo.Create(ctx, res)
			case "create-patient":
				res, _ := fhir.Parse([]byte(`{"resourceType":"Patient","gender":"other"}`))
				_, err = repo.Create(ctx, res)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start) / per
	}
	for b.Loop() {
		times := map[string][]float64{}
		for r := range rounds {
			for _, op := range ops {
				for k := range modes {
					i := (k + r) % len(modes) // alternate which goes first
					times[op+"/"+modes[i].name] = append(times[op+"/"+modes[i].name], float64(run(servers[i], op).Microseconds()))
				}
			}
		}
		for _, op := range ops {
			t, p := medianF(times[op+"/tenant"]), medianF(times[op+"/patient"])
			b.ReportMetric(t, op+"-tenant-µs/op")
			b.ReportMetric(p, op+"-patient-µs/op")
			b.ReportMetric(p/t, op+"-ratio")
			b.Logf("%s: tenant %v µs, patient %v µs (rounds)", op, times[op+"/tenant"], times[op+"/patient"])
		}
	}
}

func medianF(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
