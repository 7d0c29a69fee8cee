package app_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/fhir"
)

// BenchmarkPatientKeys compares reads and creates with per-patient data
// keys against tenant keys only, side by side in one run: two servers on
// SQLite, one of each, each with 200 patients and an Observation each;
// every round (-count) runs each operation on both, alternating.
//
//	go test ./internal/app -run '^$' -bench PatientKeys -count 6 | benchstat -col /keys -
//
// read: an Observation of a random one of the 200 patients (keys cached);
// create-obs: an Observation for one of them; create-patient: a new
// Patient (its first key is created, wrapped and stored with it).
func BenchmarkPatientKeys(b *testing.B) {
	ctx := context.Background()
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
	for _, op := range []string{"read", "create-obs", "create-patient"} {
		for i, m := range modes {
			s := servers[i]
			b.Run(fmt.Sprintf("op=%s/keys=%s", op, m.name), func(b *testing.B) {
				repo := s.w.App.Records.For(admin, "bench")
				n := 0
				for b.Loop() {
					n++
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
			})
		}
	}
}
