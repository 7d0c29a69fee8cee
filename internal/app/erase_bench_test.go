package app_test

import (
	"os"
	"strconv"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
)

// BenchmarkErase: Patient/$erase of a patient with N Observations
// (WARD_BENCH_ERASE_N, default 50) through a real listener; only the
// erasure is timed.
func BenchmarkErase(b *testing.B) {
	n := 50
	if v, err := strconv.Atoi(os.Getenv("WARD_BENCH_ERASE_N")); err == nil && v > 0 {
		n = v
	}
	for _, backend := range apptest.Backends {
		b.Run(string(backend), func(b *testing.B) {
			w := apptest.Start(b, backend, func(c *config.Config) { c.APIRate = 0 })
			po := w.Tokens[authz.RolePrivacyOfficer]
			body := []byte(`{"resourceType":"Parameters","parameter":[{"name":"reason","valueString":"bench"}]}`)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				p := w.Create(b, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"Bench"}]}`)
				for j := 0; j < n; j++ {
					w.Create(b, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+p+`"}}`)
				}
				b.StartTimer()
				if r := w.Do(b, "POST", "/fhir/Patient/"+p+"/$erase", po, body); r.Status != 200 {
					b.Fatalf("erase: %d %s", r.Status, r.Body)
				}
			}
			b.ReportMetric(float64(n+1), "resources/op")
		})
	}
}
