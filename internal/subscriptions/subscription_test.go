package subscriptions

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/fhir"
)

func doc(t testing.TB, s string) map[string]any {
	t.Helper()
	r, err := fhir.Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return r.Doc
}

const payloadExt = `"_payload":{"extension":[{"url":"` + ExtPayload + `","valueCode":"%s"}]}`

func TestParse(t *testing.T) {
	for _, c := range []struct {
		name, json string
		err        string // "" : valid
		content    string
		topic      bool
	}{
		{"classic empty", `{"resourceType":"Subscription","status":"requested","criteria":"Observation?code=http://loinc.org|8867-4","channel":{"type":"rest-hook","endpoint":"https://example.org/h"}}`, "", Empty, false},
		{"classic payload", `{"resourceType":"Subscription","status":"requested","criteria":"Observation","channel":{"type":"rest-hook","endpoint":"https://example.org/h","payload":"application/fhir+json"}}`, "", FullResource, false},
		{"id-only", `{"resourceType":"Subscription","status":"active","criteria":"Observation","channel":{"type":"rest-hook","endpoint":"http://127.0.0.1:9/h","payload":"application/fhir+json",` + strings.Replace(payloadExt, "%s", IDOnly, 1) + `}}`, "", IDOnly, false},
		{"topic", `{"resourceType":"Subscription","meta":{"profile":["` + ProfileTopic + `"]},"status":"requested","criteria":"http://wardhealth.org/fhir/SubscriptionTopic/resource-change","_criteria":{"extension":[{"url":"` + ExtFilter + `","valueString":"Observation?status=final"}]},"channel":{"type":"rest-hook","endpoint":"https://example.org/h","payload":"application/fhir+json"}}`, "", FullResource, true},
		{"unknown topic", `{"resourceType":"Subscription","meta":{"profile":["` + ProfileTopic + `"]},"status":"requested","criteria":"http://example.org/topic/obs","_criteria":{"extension":[{"url":"` + ExtFilter + `","valueString":"Observation?status=final"}]},"channel":{"type":"rest-hook","endpoint":"https://example.org/h"}}`, "SubscriptionTopic", "", true},
		{"websocket", `{"resourceType":"Subscription","status":"requested","criteria":"Observation","channel":{"type":"websocket"}}`, "", Empty, false},
		{"topic without filter", `{"resourceType":"Subscription","status":"requested","criteria":"http://wardhealth.org/fhir/SubscriptionTopic/resource-change","channel":{"type":"rest-hook","endpoint":"https://example.org/h"}}`, "backport-filter-criteria", "", true},
		{"unknown parameter", `{"resourceType":"Subscription","status":"requested","criteria":"Observation?nosuch=secretvalue","channel":{"type":"rest-hook","endpoint":"https://example.org/h"}}`, "criteria", "", false},
		{"not a type", `{"resourceType":"Subscription","status":"requested","criteria":"Nothing?code=1","channel":{"type":"rest-hook","endpoint":"https://example.org/h"}}`, "criteria", "", false},
		{"plain http remote", `{"resourceType":"Subscription","status":"requested","criteria":"Observation","channel":{"type":"rest-hook","endpoint":"http://example.org/secretpath"}}`, "endpoint", "", false},
		{"bad channel", `{"resourceType":"Subscription","status":"requested","criteria":"Observation","channel":{"type":"email","endpoint":"mailto:a@b"}}`, "channel.type", "", false},
		{"bad header", `{"resourceType":"Subscription","status":"requested","criteria":"Observation","channel":{"type":"rest-hook","endpoint":"https://example.org/h","header":["no colon"]}}`, "channel.header", "", false},
		{"bad content", `{"resourceType":"Subscription","status":"requested","criteria":"Observation","channel":{"type":"rest-hook","endpoint":"https://example.org/h","payload":"application/fhir+json",` + strings.Replace(payloadExt, "%s", "everything", 1) + `}}`, "payload content", "", false},
		{"bad payload type", `{"resourceType":"Subscription","status":"requested","criteria":"Observation","channel":{"type":"rest-hook","endpoint":"https://example.org/h","payload":"text/plain"}}`, "channel.payload", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := Parse("t1", "s1", 1, doc(t, c.json))
			if c.err != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("want an error naming %q, got %v", c.err, err)
				}
				for _, v := range []string{"secretvalue", "secretpath"} {
					if strings.Contains(err.Error(), v) {
						t.Fatalf("error echoes a value: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.content() != c.content || (s.Topic != "") != c.topic || s.Query == nil || s.Query.Type != "Observation" {
				t.Fatalf("parsed %+v (content %s)", s, s.content())
			}
		})
	}
}

// TestBundle: the Backport IG's notification shape: a history Bundle,
// SubscriptionStatus (Parameters) first, the focus after it with the
// resource only when given.
func TestBundle(t *testing.T) {
	s := &Sub{Tenant: "t", ID: "s1", Topic: "http://example.org/topic", Payload: "application/fhir+json", Content: IDOnly}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b, err := s.Bundle("event-notification", "https://ward.example/fhir", 3, 42, at, &Focus{Type: "Observation", ID: "o1", Version: 2, Action: "update"})
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Type  string `json:"type"`
		Entry []struct {
			FullURL  string         `json:"fullUrl"`
			Resource map[string]any `json:"resource"`
			Request  map[string]any `json:"request"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Type != "history" || len(m.Entry) != 2 {
		t.Fatalf("bundle: %s", b)
	}
	st := m.Entry[0].Resource
	if st["resourceType"] != "Parameters" || !strings.Contains(string(b), ProfileStatus) || !strings.Contains(string(b), `"valueCanonical":"http://example.org/topic"`) ||
		!strings.Contains(string(b), `"event-number","valueString":"42"`) || !strings.Contains(string(b), `"events-since-subscription-start","valueString":"3"`) {
		t.Fatalf("status entry: %s", b)
	}
	if m.Entry[1].FullURL != "https://ward.example/fhir/Observation/o1" || m.Entry[1].Resource != nil || m.Entry[1].Request["method"] != "PUT" {
		t.Fatalf("focus entry: %s", b)
	}
	// The resource goes in only when given; a handshake names no focus.
	b, _ = s.Bundle("event-notification", "", 1, 1, at, &Focus{Type: "Observation", ID: "o1", Action: "create", JSON: []byte(`{"resourceType":"Observation","id":"o1"}`)})
	if !strings.Contains(string(b), `"resource":{"resourceType":"Observation","id":"o1"}`) || !strings.Contains(string(b), `"method":"POST"`) {
		t.Fatalf("full bundle: %s", b)
	}
	b, _ = s.Bundle("handshake", "", 0, 0, at, nil)
	if strings.Contains(string(b), "notification-event") || !strings.Contains(string(b), `"valueCode":"handshake"`) || !strings.Contains(string(b), `"valueCode":"requested"`) {
		t.Fatalf("handshake: %s", b)
	}
}

// FuzzParse: a stored Subscription is untrusted input; Parse never
// panics and accepts only what it can deliver.
func FuzzParse(f *testing.F) {
	f.Add(`{"resourceType":"Subscription","status":"requested","criteria":"Observation?code=http://loinc.org|8867-4","channel":{"type":"rest-hook","endpoint":"https://example.org/h","header":["A: b"]}}`)
	f.Add(`{"resourceType":"Subscription","status":"active","criteria":"http://t","_criteria":{"extension":[{"url":"` + ExtFilter + `","valueString":"Patient?_id=1"}]},"channel":{"type":"websocket","_payload":{"extension":[{"url":"` + ExtPayload + `","valueCode":"id-only"}]}}}`)
	f.Add(`{"resourceType":"Subscription","criteria":"Observation?code:text=%zz","channel":{"type":"rest-hook","endpoint":"http://[::1]:1/x","extension":[{"url":"` + ExtHeartbeat + `","valueUnsignedInt":60}]}}`)
	f.Fuzz(func(t *testing.T, in string) {
		r, err := fhir.Parse([]byte(in))
		if err != nil || r.Type != "Subscription" {
			return
		}
		s, err := Parse("t", "id", 1, r.Doc)
		if err == nil {
			if s.Query == nil || (s.Channel != ChannelRestHook && s.Channel != ChannelWS) {
				t.Fatalf("accepted what it cannot deliver: %+v", s)
			}
			if s.Channel == ChannelRestHook && CheckEndpoint(s.Endpoint) != nil {
				t.Fatal("accepted a bad endpoint")
			}
		}
	})
}
