package app_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/subscriptions"
)

// TestSubscriptionBatchCriteria: the changes of one transaction reach a
// Subscription's receiver together, and their criteria are evaluated
// in as few searches as the search limits allow (records.MatchingIDs); exactly the matching ones are
// notified, each once.
func TestSubscriptionBatchCriteria(t *testing.T) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			w := apptest.Start(t, b, func(c *config.Config) { c.Events.WebhookSync = 50 * time.Millisecond })
			admin := w.Tokens[authz.RoleAdmin]
			pid := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","active":true}`)
			rcv := newReceiver(t, 200)
			r := w.Do(t, http.MethodPost, "/fhir/Subscription", admin, []byte(subscription(rcv.srv.URL, "Observation?code=http://loinc.org|8867-4", subscriptions.IDOnly)))
			if r.Status != 201 {
				t.Fatalf("create subscription: %d %s", r.Status, r.Body)
			}
			id, _ := r.JSON(t)["id"].(string)
			waitFor(t, "subscription active", func() bool { s, _ := subStatus(t, w, id); return s == "active" })
			// 90 changes: their ids (UUIDs) take more than one search's
			// 2,000 characters of _id values.
			const entries = 90
			var es []string
			for i := range entries {
				code := "2708-6"
				if i%3 == 0 {
					code = "8867-4"
				}
				es = append(es, `{"resource":{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"`+code+`"}]},"subject":{"reference":"Patient/`+pid+`"}},"request":{"method":"POST","url":"Observation"}}`)
			}
			r = w.Do(t, http.MethodPost, "/fhir", admin, []byte(`{"resourceType":"Bundle","type":"transaction","entry":[`+strings.Join(es, ",")+`]}`))
			if r.Status != 200 {
				t.Fatalf("transaction: %d %s", r.Status, r.Body)
			}
			var resp struct {
				Entry []struct {
					Response struct {
						Location string `json:"location"`
					} `json:"response"`
				} `json:"entry"`
			}
			if err := json.Unmarshal(r.Body, &resp); err != nil || len(resp.Entry) != entries {
				t.Fatalf("transaction answer: %v", err)
			}
			ref := func(i int) string {
				loc := resp.Entry[i].Response.Location
				loc = loc[strings.Index(loc, "Observation/"):]
				return strings.Join(strings.Split(loc, "/")[:2], "/")
			}
			for i := 0; i < entries; i += 3 {
				waitFor(t, "notification of "+ref(i), func() bool { return len(rcv.notified(ref(i))) == 1 })
			}
			// Settled: a later single create's notification comes after
			// every one of the batch.
			one := w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/`+pid+`"}}`)
			waitFor(t, "the later notification", func() bool { return len(rcv.notified("Observation/"+one)) == 1 })
			for i := range entries {
				want := 0
				if i%3 == 0 {
					want = 1
				}
				if n := len(rcv.notified(ref(i))); n != want {
					t.Errorf("%s (entry %d): %d notifications, want %d", ref(i), i, n, want)
				}
			}
		})
	}
}
