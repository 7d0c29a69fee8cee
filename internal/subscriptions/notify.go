package subscriptions

// Notification bodies: the Backport IG's Bundle of type history whose
// first entry is the SubscriptionStatus (as R4 Parameters), for event
// notifications, handshakes and heartbeats.

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/wardhealth/ward/internal/fhir"
)

// Focus is the resource a notification is about; JSON is nil unless the
// notification carries it.
type Focus struct {
	Type, ID string
	Version  int64
	Action   string // create, update, delete
	JSON     []byte
}

// Bundle is a notification (type: event-notification, handshake or
// heartbeat). events is the Subscription's event count so far; number is
// this event's number (0: none). base is the FHIR base URL of fullUrls.
func (s *Sub) Bundle(typ, base string, events, number int64, at time.Time, f *Focus) ([]byte, error) {
	params := []any{
		map[string]any{"name": "subscription", "valueReference": map[string]any{"reference": under(base, "Subscription/"+s.ID)}},
		map[string]any{"name": "status", "valueCode": statusOf(typ)},
		map[string]any{"name": "type", "valueCode": typ},
		map[string]any{"name": "events-since-subscription-start", "valueString": strconv.FormatInt(events, 10)},
	}
	if s.Topic != "" {
		params = append(params[:1], append([]any{map[string]any{"name": "topic", "valueCanonical": s.Topic}}, params[1:]...)...)
	}
	if f != nil && number > 0 {
		ev := []any{
			map[string]any{"name": "event-number", "valueString": strconv.FormatInt(number, 10)},
			map[string]any{"name": "timestamp", "valueInstant": at.UTC().Format(time.RFC3339Nano)},
		}
		if s.content() != Empty {
			ev = append(ev, map[string]any{"name": "focus", "valueReference": map[string]any{"reference": under(base, f.Type+"/"+f.ID)}})
		}
		params = append(params, map[string]any{"name": "notification-event", "part": ev})
	}
	status := map[string]any{
		"resourceType": "Parameters",
		"id":           uuid.NewString(),
		"meta":         map[string]any{"profile": []any{ProfileStatus}},
		"parameter":    params,
	}
	entries := []any{map[string]any{
		"fullUrl":  "urn:uuid:" + status["id"].(string),
		"resource": status,
		"request":  map[string]any{"method": "GET", "url": under(base, "Subscription/"+s.ID+"/$status")},
		"response": map[string]any{"status": "200"},
	}}
	if f != nil && s.content() != Empty {
		e := map[string]any{"fullUrl": under(base, f.Type+"/"+f.ID)}
		if f.JSON != nil {
			e["resource"] = json.RawMessage(f.JSON)
		}
		method, code := "PUT", "200"
		switch f.Action {
		case "create":
			method, code = "POST", "201"
		case "delete":
			method, code = "DELETE", "204"
		}
		url := f.Type
		if method != "POST" {
			url += "/" + f.ID
		}
		e["request"] = map[string]any{"method": method, "url": url}
		e["response"] = map[string]any{"status": code}
		entries = append(entries, e)
	}
	return json.Marshal(map[string]any{
		"resourceType": "Bundle",
		"id":           uuid.NewString(),
		"type":         "history",
		"timestamp":    at.UTC().Format(time.RFC3339Nano),
		"entry":        entries,
	})
}

// statusOf is the Subscription's status as a notification of typ states
// it: a handshake is sent while it is requested, anything else once it
// is active.
func statusOf(typ string) string {
	if typ == "handshake" {
		return "requested"
	}
	return "active"
}

// at2 is path under the base URL (relative when the base is unknown).
func under(base, path string) string {
	if base == "" {
		return path
	}
	return base + "/" + path
}

func docOfJSON(b []byte) (map[string]any, error) {
	r, err := fhir.Parse(b)
	if err != nil {
		return nil, errors.New("stored Subscription does not parse")
	}
	return r.Doc, nil
}
