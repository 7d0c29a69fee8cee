package subscriptions

// Notification bodies: the Backport IG's Bundle whose first entry is the
// SubscriptionStatus (as R4 Parameters), for event notifications,
// handshakes, heartbeats, $status and $events.

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

// Event is one notification event: its number (the outbox position),
// when it happened and its focus.
type Event struct {
	Number int64
	At     time.Time
	Focus  *Focus
}

// Bundle is a notification (type: event-notification, handshake or
// heartbeat) of at most one event. events is the Subscription's event
// count so far; base the FHIR base URL of fullUrls.
func (s *Sub) Bundle(typ, base string, events, number int64, at time.Time, f *Focus) ([]byte, error) {
	var evs []Event
	if f != nil && number > 0 {
		evs = []Event{{Number: number, At: at, Focus: f}}
	}
	return s.bundle("history", typ, statusOf(typ), base, events, at, evs)
}

// bundle builds a Bundle of bundleType: the SubscriptionStatus of
// notification type typ, then each event's focus.
func (s *Sub) bundle(bundleType, typ, status, base string, events int64, at time.Time, evs []Event) ([]byte, error) {
	params := []any{map[string]any{"name": "subscription", "valueReference": map[string]any{"reference": under(base, "Subscription/"+s.ID)}}}
	if s.Topic != "" {
		params = append(params, map[string]any{"name": "topic", "valueCanonical": s.Topic})
	}
	params = append(params,
		map[string]any{"name": "status", "valueCode": status},
		map[string]any{"name": "type", "valueCode": typ},
		map[string]any{"name": "events-since-subscription-start", "valueString": strconv.FormatInt(events, 10)})
	for _, e := range evs {
		ev := []any{
			map[string]any{"name": "event-number", "valueString": strconv.FormatInt(e.Number, 10)},
			map[string]any{"name": "timestamp", "valueInstant": e.At.UTC().Format(time.RFC3339Nano)},
		}
		if s.content() != Empty {
			ev = append(ev, map[string]any{"name": "focus", "valueReference": map[string]any{"reference": under(base, e.Focus.Type+"/"+e.Focus.ID)}})
		}
		params = append(params, map[string]any{"name": "notification-event", "part": ev})
	}
	st := map[string]any{
		"resourceType": "Parameters",
		"id":           uuid.NewString(),
		"meta":         map[string]any{"profile": []any{ProfileStatus}},
		"parameter":    params,
	}
	entries := []any{map[string]any{
		"fullUrl":  "urn:uuid:" + st["id"].(string),
		"resource": st,
		"request":  map[string]any{"method": "GET", "url": under(base, "Subscription/"+s.ID+"/$status")},
		"response": map[string]any{"status": "200"},
	}}
	if s.content() != Empty {
		for _, e := range evs {
			entries = append(entries, focusEntry(base, e.Focus))
		}
	}
	return json.Marshal(map[string]any{
		"resourceType": "Bundle",
		"id":           uuid.NewString(),
		"type":         bundleType,
		"timestamp":    at.UTC().Format(time.RFC3339Nano),
		"entry":        entries,
	})
}

func focusEntry(base string, f *Focus) map[string]any {
	e := map[string]any{"fullUrl": under(base, f.Type+"/"+f.ID)}
	if f.JSON != nil {
		e["resource"] = json.RawMessage(f.JSON)
	}
	method, code, url := "PUT", "200", f.Type+"/"+f.ID
	switch f.Action {
	case "create":
		method, code, url = "POST", "201", f.Type
	case "delete":
		method, code = "DELETE", "204"
	}
	e["request"] = map[string]any{"method": method, "url": url}
	e["response"] = map[string]any{"status": code}
	return e
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

// under is path under the base URL (relative when the base is unknown).
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
