package app_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/subscriptions"
	"github.com/wardhealth/ward/internal/topics"
)

func topicSub(endpoint, topic, filter string) string {
	crit := ""
	if filter != "" {
		crit = `"_criteria":{"extension":[{"url":"` + subscriptions.ExtFilter + `","valueString":"` + filter + `"}]},`
	}
	return `{"resourceType":"Subscription","meta":{"profile":["` + subscriptions.ProfileTopic + `"]},"status":"requested","reason":"topic","criteria":"` + topic + `",` + crit +
		`"channel":{"type":"rest-hook","endpoint":"` + endpoint + `","payload":"application/fhir+json","_payload":{"extension":[{"url":"` + subscriptions.ExtPayload + `","valueCode":"id-only"}]}}}`
}

// TestSubscriptionTopics: the registry is readable ($topic-list, the
// topics as Basic resources), a Subscription naming a topic Ward does
// not support is refused with an OperationOutcome, and a supported
// topic's own criteria decide with the filter's.
func TestSubscriptionTopics(t *testing.T) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			w := apptest.Start(t, b, func(c *config.Config) { c.Events.WebhookSync = 50 * time.Millisecond })
			admin := w.Tokens[authz.RoleAdmin]
			r := w.Do(t, http.MethodGet, "/fhir/Subscription/$topic-list", admin, nil)
			final := topics.Base + "observation-final"
			if r.Status != 200 || !strings.Contains(string(r.Body), `"subscription-topic-canonical"`) || !strings.Contains(string(r.Body), final) {
				t.Fatalf("$topic-list: %d %s", r.Status, r.Body)
			}
			r = w.Do(t, http.MethodGet, "/fhir/SubscriptionTopic/observation-final", admin, nil)
			if r.Status != 200 || r.JSON(t)["resourceType"] != "Basic" || !strings.Contains(string(r.Body), final) {
				t.Fatalf("topic as Basic: %d %s", r.Status, r.Body)
			}
			if r := w.Do(t, http.MethodGet, "/fhir/SubscriptionTopic", admin, nil); r.Status != 200 || r.JSON(t)["total"] != float64(len(topics.All())) {
				t.Fatalf("topics: %d %s", r.Status, r.Body)
			}
			if r := w.Do(t, http.MethodGet, "/fhir/SubscriptionTopic/nosuch", admin, nil); (r.Status != 404 && r.Status != 400) || !strings.Contains(string(r.Body), "OperationOutcome") {
				t.Fatalf("unknown topic: %d %s", r.Status, r.Body)
			}
			if r := w.Do(t, http.MethodGet, "/fhir/Subscription/$topic-list", "", nil); r.Status != 401 {
				t.Fatalf("$topic-list without a token: %d", r.Status)
			}

			rcv := newReceiver(t, 200)
			for _, bad := range []string{
				topicSub(rcv.srv.URL, "http://example.org/SubscriptionTopic/nosuch", "Observation"),
				topicSub(rcv.srv.URL, final, "Patient?gender=female"),
			} {
				r := w.Do(t, http.MethodPost, "/fhir/Subscription", admin, []byte(bad))
				if r.Status < 400 || r.Status >= 500 || !strings.Contains(string(r.Body), "OperationOutcome") || !strings.Contains(string(r.Body), "Subscription.criteria") {
					t.Fatalf("unsupported topic accepted or badly refused: %d %s", r.Status, r.Body)
				}
			}
			r = w.Do(t, http.MethodPost, "/fhir/Subscription", admin, []byte(topicSub(rcv.srv.URL, final, "Observation?code=http://loinc.org|8867-4")))
			if r.Status != 201 {
				t.Fatalf("create: %d %s", r.Status, r.Body)
			}
			id, _ := r.JSON(t)["id"].(string)
			waitFor(t, "topic subscription active", func() bool { s, _ := subStatus(t, w, id); return s == "active" })
			pid := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"`+plantedName+`"}]}`)
			obs := func(status, code string) string {
				return w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"`+status+`","code":{"coding":[{"system":"http://loinc.org","code":"`+code+`"}]},"subject":{"reference":"Patient/`+pid+`"}}`)
			}
			prelim := obs("preliminary", "8867-4") // the topic's criteria fail
			other := obs("final", "2708-6")        // the filter fails
			hit := obs("final", "8867-4")
			waitFor(t, "topic notification", func() bool { return len(rcv.notified("Observation/"+hit)) == 1 })
			receiverAt(t, w, id, head(t, w))
			if n := len(rcv.notified("Observation/"+prelim)) + len(rcv.notified("Observation/"+other)); n != 0 {
				t.Fatalf("%d notifications for changes the topic or filter exclude", n)
			}
			if !strings.Contains(rcv.notified("Observation/" + hit)[0], final) {
				t.Fatal("notification does not name its topic")
			}
		})
	}
}

// TestWSBindingToken: $get-ws-binding-token gives the caller of a
// websocket Subscription a short-lived token that binds it; a rest-hook
// Subscription gets a 400 OperationOutcome.
func TestWSBindingToken(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite, func(c *config.Config) { c.Events.WebhookSync = 50 * time.Millisecond })
	phys := w.Tokens[authz.RolePhysician]
	r := w.Do(t, http.MethodPost, "/fhir/Subscription", phys, []byte(`{"resourceType":"Subscription","status":"requested","reason":"ws","criteria":"Observation","channel":{"type":"websocket"}}`))
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	id, _ := r.JSON(t)["id"].(string)
	waitFor(t, "websocket subscription active", func() bool { s, _ := subStatus(t, w, id); return s == "active" })
	r = w.Do(t, http.MethodPost, "/fhir/Subscription/"+id+"/$get-ws-binding-token", phys, nil)
	if r.Status != 200 {
		t.Fatalf("$get-ws-binding-token: %d %s", r.Status, r.Body)
	}
	var token, expiration, wsURL string
	for _, p := range r.JSON(t)["parameter"].([]any) {
		m := p.(map[string]any)
		switch m["name"] {
		case "token":
			token, _ = m["valueString"].(string)
		case "expiration":
			expiration, _ = m["valueDateTime"].(string)
		case "websocket-url":
			wsURL, _ = m["valueUrl"].(string)
		}
	}
	exp, err := time.Parse(time.RFC3339, expiration)
	if token == "" || token == phys || err != nil || time.Until(exp) > 2*time.Minute || !strings.HasPrefix(wsURL, "ws://") {
		t.Fatalf("binding token answer: %s", r.Body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte("bind "+id+" "+token)); err != nil {
		t.Fatal(err)
	}
	if _, b, err := c.Read(ctx); err != nil || string(b) != "bound "+id {
		t.Fatalf("bind with the binding token: %q %v", b, err)
	}
	rest := newReceiver(t, 200)
	r = w.Do(t, http.MethodPost, "/fhir/Subscription", phys, []byte(subscription(rest.srv.URL, "Observation", "")))
	rid, _ := r.JSON(t)["id"].(string)
	if r := w.Do(t, http.MethodGet, "/fhir/Subscription/"+rid+"/$get-ws-binding-token", phys, nil); r.Status != 400 || !strings.Contains(string(r.Body), "OperationOutcome") {
		t.Fatalf("binding token for a rest-hook: %d %s", r.Status, r.Body)
	}
	if r := w.Do(t, http.MethodGet, "/fhir/Subscription/"+id+"/$get-ws-binding-token", w.Tokens[authz.RoleUser], nil); r.Status != 403 && r.Status != 404 {
		t.Fatalf("binding token for a caller who may not read the Subscription: %d", r.Status)
	}
}
