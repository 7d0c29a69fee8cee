package records_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/search/query"
	"github.com/wardhealth/ward/internal/store/postgres/pgtest"
)

// BenchmarkSubscriptionBatchMatch measures what a delivery batch costs
// the criteria search (records.MatchingIDs): one op is one batch of 100
// changed Observations matched against 100 Subscriptions' criteria
// (code=...&status=final, over 4 codes, so each criteria matches a
// quarter of the database), with 2,000 and then 20,000 Observations
// stored. Its cost should be the batch's, the same at both sizes.
// Compare two builds side by side (docs/benchmarks.md):
//
//	go test ./internal/records/ -run '^$' -bench BenchmarkSubscriptionBatchMatch -benchtime 20x
func BenchmarkSubscriptionBatchMatch(b *testing.B) {
	for _, be := range apptest.Backends {
		b.Run(string(be), func(b *testing.B) { benchBatchMatch(b, be) })
	}
}

func benchBatchMatch(b *testing.B, be apptest.Backend) {
	w := apptest.Start(b, be)
	ctx := context.Background()
	codes := []string{"8867-4", "2708-6", "8310-5", "9279-1"}
	var crits []*query.Query
	for i := range 100 {
		q, err := records.ParseCriteria("Observation?code=http://loinc.org|" + codes[i%len(codes)] + "&status=final")
		if err != nil {
			b.Fatal(err)
		}
		crits = append(crits, q)
	}
	stored := 0
	var batch []string
	load := func(n int) {
		for stored < n {
			var es []string
			for i := range 500 {
				es = append(es, `{"resource":{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"`+codes[(stored+i)%len(codes)]+`"}]}},"request":{"method":"POST","url":"Observation"}}`)
			}
			r := w.Do(b, http.MethodPost, "/fhir", w.Tokens[authz.RoleAdmin], []byte(`{"resourceType":"Bundle","type":"transaction","entry":[`+strings.Join(es, ",")+`]}`))
			if r.Status != 200 {
				b.Fatalf("load: %d %.300s", r.Status, r.Body)
			}
			if batch == nil {
				var resp struct {
					Entry []struct {
						Response struct{ Location string } `json:"response"`
					} `json:"entry"`
				}
				if err := json.Unmarshal(r.Body, &resp); err != nil {
					b.Fatal(err)
				}
				for _, e := range resp.Entry[:100] {
					loc := e.Response.Location[strings.Index(e.Response.Location, "Observation/")+len("Observation/"):]
					batch = append(batch, loc[:strings.Index(loc, "/")])
				}
			}
			stored += 500
		}
		if be == apptest.Postgres {
			// Statistics, as the writer's periodic ANALYZE keeps them.
			db := pgtest.DB(b, w.Config.DatabaseURL, 1)
			if _, err := db.ExecContext(ctx, `ANALYZE`); err != nil {
				b.Fatal(err)
			}
			db.Close()
		}
	}
	for _, n := range []int{2000, 20000} {
		load(n)
		b.Run(fmt.Sprintf("observations-%d", n), func(b *testing.B) {
			matched := 0
			for b.Loop() {
				matched = 0
				for _, q := range crits {
					m, err := w.App.Records.MatchingIDs(ctx, w.Config.Tenant, q, "Observation", batch)
					if err != nil {
						b.Fatal(err)
					}
					matched += len(m)
				}
			}
			if matched != 100*25 {
				// Each criteria matches a quarter of the batch.
				b.Fatalf("matched %d, want %d", matched, 100*25)
			}
		})
	}
}
