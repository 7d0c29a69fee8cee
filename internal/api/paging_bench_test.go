package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
)

// BenchmarkSearchPaging pages through one search of 600 Observations 20
// at a time (30 pages), as a loader does: "carried" is the default, where
// the first page counts the total and the cursors carry it; "recount"
// asks _total=accurate, which counts on every page (what every page did
// before the total was carried). One op is the whole walk. "first/..."
// is the first page alone, with and without its count.
func BenchmarkSearchPaging(b *testing.B) {
	for _, be := range apptest.Backends {
		b.Run(string(be), func(b *testing.B) {
			w := apptest.Start(b, be)
			admin := w.Tokens[authz.RoleAdmin]
			pid := w.Create(b, authz.RoleAdmin, `{"resourceType":"Patient"}`)
			var entries []string
			for range 600 {
				entries = append(entries, `{"resource":{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8310-5"}]},"subject":{"reference":"Patient/`+pid+`"}},"request":{"method":"POST","url":"Observation"}}`)
			}
			for i := 0; i < len(entries); i += 100 {
				r := w.Do(b, "POST", "/fhir", admin, []byte(`{"resourceType":"Bundle","type":"transaction","entry":[`+strings.Join(entries[i:i+100], ",")+`]}`))
				if r.Status != 200 {
					b.Fatalf("load: %d %.300s", r.Status, r.Body)
				}
			}
			// The first page alone: what the count costs where it cannot
			// be carried (_total=none counts nothing).
			for _, mode := range []struct{ name, total string }{{"first/counted", ""}, {"first/none", "&_total=none"}} {
				b.Run(mode.name, func(b *testing.B) {
					for b.Loop() {
						if r := w.Do(b, "GET", "/fhir/Observation?code=http://loinc.org|8310-5&_count=20"+mode.total, admin, nil); r.Status != 200 {
							b.Fatalf("%d", r.Status)
						}
					}
				})
			}
			for _, mode := range []struct{ name, total string }{{"carried", ""}, {"recount", "&_total=accurate"}} {
				b.Run(mode.name, func(b *testing.B) {
					for b.Loop() {
						pages := 0
						for p := "/fhir/Observation?code=http://loinc.org|8310-5&_count=20" + mode.total; p != ""; pages++ {
							r := w.Do(b, "GET", p, admin, nil)
							var page struct {
								Total float64
								Link  []struct{ Relation, URL string }
							}
							if err := json.Unmarshal(r.Body, &page); err != nil || r.Status != 200 || page.Total != 600 {
								b.Fatalf("%s: %d total %v %v", p, r.Status, page.Total, err)
							}
							p = ""
							for _, l := range page.Link {
								if l.Relation == "next" {
									p = strings.TrimPrefix(l.URL, w.Server.URL)
								}
							}
						}
						if pages != 30 {
							b.Fatal(fmt.Sprint(pages, " pages"))
						}
					}
				})
			}
		})
	}
}
