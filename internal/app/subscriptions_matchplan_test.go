package app_test

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/postgres/pgtest"
)

// TestSubscriptionBatchMatchReadsTheBatch: the search that matches a
// delivery batch against a Subscription's criteria
// (records.MatchingIDs) finds the batch's resources by their ids and
// probes each for the criteria by rid, on both databases: its cost is
// the batch's, not that of every resource the criteria match. Driven by
// the criteria's own index rows (as it was), it read every Observation
// with the criteria's code for each batch and each Subscription.
func TestSubscriptionBatchMatchReadsTheBatch(t *testing.T) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			w := apptest.Start(t, b)
			ctx := context.Background()
			var ids []string
			for round := range 5 {
				var es []string
				for i := range 200 {
					code := "8867-4"
					if i%4 == 0 {
						code = "2708-6"
					}
					es = append(es, `{"resource":{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"`+code+`"}]}},"request":{"method":"POST","url":"Observation"}}`)
				}
				r := w.Do(t, http.MethodPost, "/fhir", w.Tokens[authz.RoleAdmin], []byte(`{"resourceType":"Bundle","type":"transaction","entry":[`+strings.Join(es, ",")+`]}`))
				if r.Status != 200 {
					t.Fatalf("transaction: %d %.300s", r.Status, r.Body)
				}
				if round > 0 {
					continue
				}
				for _, e := range r.JSON(t)["entry"].([]any)[:8] {
					loc := e.(map[string]any)["response"].(map[string]any)["location"].(string)
					loc = loc[strings.Index(loc, "Observation/")+len("Observation/"):]
					ids = append(ids, loc[:strings.Index(loc, "/")])
				}
			}
			if b == apptest.Postgres {
				db := pgtest.DB(t, w.Config.DatabaseURL, 1)
				if _, err := db.ExecContext(ctx, `ANALYZE`); err != nil {
					t.Fatal(err)
				}
				db.Close()
			}
			q, err := records.ParseCriteria("Observation?code=http://loinc.org|8867-4&status=final")
			if err != nil {
				t.Fatal(err)
			}
			opts := []store.ExplainOptions{{NoSeqScan: true}}
			if b == apptest.Postgres {
				opts = append(opts, store.ExplainOptions{NoSeqScan: true, Generic: true})
			}
			for _, o := range opts {
				plan, err := w.App.Records.ExplainMatching(ctx, w.Config.Tenant, q, ids, o)
				if err != nil {
					t.Fatal(err)
				}
				what := ""
				if o.Generic {
					what = "generic "
				}
				// No full scan, probes by rid, bodies by seq.
				checkPlan(t, b, "subscription batch", what, plan)
				joined := strings.Join(plan, "\n")
				// The batch's ids are found by the resources key, and
				// no index row is read by value: every search_token
				// read is a probe of one candidate by its rid.
				byID := regexp.MustCompile(`resources_key \(tenant=\? AND type=\? AND id=\?\)|resources_pkey[^\n]*\n[^\n]*Index Cond: \(\(tenant = \S+\) AND \(type = \S+\) AND \(id = ANY`)
				if !byID.MatchString(joined) {
					t.Errorf("the %splan does not find the batch by its ids:\n%s", what, joined)
				}
				for _, line := range plan {
					if b == apptest.SQLite && strings.Contains(line, "search_token") && !strings.Contains(line, "(rid=?") ||
						b == apptest.Postgres && strings.Contains(line, "search_token_key") {
						t.Errorf("the %splan reads the criteria's index rows by value:\n%s", what, joined)
						break
					}
				}
			}
			got, err := w.App.Records.MatchingIDs(ctx, w.Config.Tenant, q, "Observation", ids)
			if err != nil {
				t.Fatal(err)
			}
			for i, id := range ids {
				if got[id] != (i%4 != 0) {
					t.Errorf("entry %d: matched %v", i, got[id])
				}
			}
		})
	}
}
