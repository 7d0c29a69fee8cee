package app_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
)

// BenchmarkMerge1000: one Patient/$merge of a source with 1,000 resources
// (Observations, Conditions, Immunizations) into another patient,
// through the listener on SQLite (and PostgreSQL when reachable). The
// records are loaded by transaction Bundles outside the timer; ns/op is
// one merge (every version rewritten, sealed, indexed, evented and
// committed in one unit with its ledger record).
func BenchmarkMerge1000(b *testing.B) {
	for _, backend := range apptest.Backends {
		b.Run(string(backend), func(b *testing.B) {
			w := apptest.Start(b, backend, benchLimits)
			admin := w.Tokens[authz.RoleAdmin]
			const n = 1000
			setup := func() (src, tgt string) {
				src = w.Create(b, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"Source"}]}`)
				tgt = w.Create(b, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"Target"}]}`)
				for start := 0; start < n; start += 250 {
					var entries []string
					for i := start; i < start+250; i++ {
						var res, typ string
						switch i % 4 {
						case 0, 1:
							typ = "Observation"
							res = fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/%s"},"valueQuantity":{"value":%d}}`, src, i)
						case 2:
							typ = "Condition"
							res = fmt.Sprintf(`{"resourceType":"Condition","code":{"coding":[{"system":"http://snomed.info/sct","code":"38341003"}]},"subject":{"reference":"Patient/%s"}}`, src)
						default:
							typ = "Immunization"
							res = fmt.Sprintf(`{"resourceType":"Immunization","status":"completed","vaccineCode":{"coding":[{"system":"http://hl7.org/fhir/sid/cvx","code":"08"}]},"patient":{"reference":"Patient/%s"},"occurrenceDateTime":"2021-01-01"}`, src)
						}
						entries = append(entries, `{"resource":`+res+`,"request":{"method":"POST","url":"`+typ+`"}}`)
					}
					bundle := `{"resourceType":"Bundle","type":"transaction","entry":[` + strings.Join(entries, ",") + `]}`
					if r := w.Do(b, http.MethodPost, "/fhir", admin, []byte(bundle)); r.Status != 200 {
						b.Fatalf("load: %d %.300s", r.Status, r.Body)
					}
				}
				return src, tgt
			}
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				src, tgt := setup()
				body := `{"resourceType":"Parameters","parameter":[{"name":"source-patient","valueReference":{"reference":"Patient/` + src +
					`"}},{"name":"target-patient","valueReference":{"reference":"Patient/` + tgt + `"}}]}`
				b.StartTimer()
				r := w.Do(b, http.MethodPost, "/fhir/Patient/$merge", admin, []byte(body))
				if r.Status != 200 || !strings.Contains(string(r.Body), `"name":"moved","valueInteger":1000`) {
					b.Fatalf("merge: %d %.300s", r.Status, r.Body)
				}
			}
			b.ReportMetric(float64(n), "resources/op")
		})
	}
}
