package events

import (
	"strings"

	"github.com/wardhealth/ward/internal/audit"
)

// SecurityAlert is the event of an alert raised by the alert engine
// (internal/alerts): its ledger record (action "alert") appends it, so it
// commits with that record and reaches NATS and webhooks like any event.
const SecurityAlert = "security.alert"

// actionAlert is alerts.ActionAlert; events may not import alerts.
const actionAlert = "alert"

func init() { Types = append(Types, SecurityAlert) }

// forAlert is the security.alert event of an alert record: the rule id as
// the reason, the user whose activity fired it as the actor, the patients
// as references, the triggering ledger record as the request id
// ("alert-<seq>"). The record holds ids only, and so does the event.
func forAlert(r *audit.Record) []Event {
	d := Data{Action: actionAlert, Reason: r.Detail, Role: r.Role, RequestID: r.RequestID, Outcome: int(r.Outcome)}
	subject := ""
	for _, e := range r.Entities {
		switch {
		case strings.HasPrefix(e, "user/"):
			if d.Actor == "" {
				d.Actor, subject = strings.TrimPrefix(e, "user/"), e
			}
		case strings.HasPrefix(e, "Patient/"):
			d.Patients = append(d.Patients, e)
		}
	}
	key := subject
	if len(d.Patients) > 0 {
		key = d.Patients[0]
	}
	return []Event{New(r.Tenant, SecurityAlert, subject, key, r.Time, d)}
}
