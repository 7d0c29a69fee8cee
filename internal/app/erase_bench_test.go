package app_test

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
)

// BenchmarkErase: Patient/$erase of a patient with N Observations
// (WARD_BENCH_ERASE_N, default 50) through a real listener; only the
// erasure is timed. Run with -benchtime 1x for one erasure per backend:
//
//	WARD_BENCH_ERASE_N=5000 go test ./internal/app -run XXX -bench BenchmarkErase -benchtime 1x
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
				// The Observations in transaction Bundles of 250: the
				// setup is not timed, and one by one it took minutes.
				for j := 0; j < n; j += 250 {
					var entries []string
					for k := j; k < min(n, j+250); k++ {
						entries = append(entries, `{"request":{"method":"POST","url":"Observation"},"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+p+`"}}}`)
					}
					bundle := `{"resourceType":"Bundle","type":"transaction","entry":[` + strings.Join(entries, ",") + `]}`
					if r := w.Do(b, "POST", "/fhir", w.Tokens[authz.RoleAdmin], []byte(bundle)); r.Status != 200 {
						b.Fatalf("transaction: %d %s", r.Status, r.Body)
					}
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
