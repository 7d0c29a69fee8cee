package app_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/subscriptions"
)

// TestSubscriptionDeleteWithCriteria: a deletion is notified to the
// Subscriptions whose criteria (with parameters: a token, a date) the
// version before the deletion matched, and to no other.
func TestSubscriptionDeleteWithCriteria(t *testing.T) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			w := apptest.Start(t, b, func(c *config.Config) { c.Events.WebhookSync = 50 * time.Millisecond })
			admin := w.Tokens[authz.RoleAdmin]
			pid := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"`+plantedName+`"}]}`)
			byCode, byDate := newReceiver(t, 200), newReceiver(t, 200)
			create := func(body string) string {
				r := w.Do(t, http.MethodPost, "/fhir/Subscription", admin, []byte(body))
				if r.Status != 201 {
					t.Fatalf("create subscription: %d %s", r.Status, r.Body)
				}
				id, _ := r.JSON(t)["id"].(string)
				return id
			}
			sCode := create(subscription(byCode.srv.URL, "Observation?code=http://loinc.org|8867-4", subscriptions.IDOnly))
			sDate := create(subscription(byDate.srv.URL, "Observation?date=lt2000-01-01", subscriptions.IDOnly))
			for _, id := range []string{sCode, sDate} {
				waitFor(t, "subscription active", func() bool { s, _ := subStatus(t, w, id); return s == "active" })
			}
			obs := func(code, when string) string {
				return w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"`+code+`"}]},"effectiveDateTime":"`+when+`","subject":{"reference":"Patient/`+pid+`"}}`)
			}
			hit := obs("8867-4", "2021-03-04")  // code matches, date does not
			old := obs("2708-6", "1999-12-31")  // date matches, code does not
			none := obs("2708-6", "2022-01-01") // neither
			for _, id := range []string{hit, old, none} {
				if r := w.Do(t, http.MethodDelete, "/fhir/Observation/"+id, admin, nil); r.Status != 200 && r.Status != 204 {
					t.Fatalf("delete: %d %s", r.Status, r.Body)
				}
			}
			deleted := func(r *receiver, id string) int {
				n := 0
				for _, b := range r.notified("Observation/" + id) {
					if strings.Contains(b, `"DELETE"`) {
						n++
					}
				}
				return n
			}
			waitFor(t, "deletion notified by code", func() bool { return deleted(byCode, hit) == 1 })
			waitFor(t, "deletion notified by date", func() bool { return deleted(byDate, old) == 1 })
			receiverAt(t, w, sCode, head(t, w))
			receiverAt(t, w, sDate, head(t, w))
			if n := deleted(byCode, old) + deleted(byCode, none); n != 0 {
				t.Fatalf("criteria by code notified %d deletions that do not match", n)
			}
			if n := deleted(byDate, hit) + deleted(byDate, none); n != 0 {
				t.Fatalf("criteria by date notified %d deletions that do not match", n)
			}
		})
	}
}
