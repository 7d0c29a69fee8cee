package events

import (
	"strings"

	"github.com/wardhealth/ward/internal/audit"
)

// Outcome codes an audit record carries; duplicated from audit's so the
// rules below read as the table they are.
const (
	outcomeSuccess = audit.OutcomeSuccess
)

// FromAudit returns the security events an audit record stands for (none
// for most records): a refusal by policy is access.denied, a break-glass
// access access.emergency, a failed login auth.login-failed, a new signing
// or data key keys.rotated, an alert security.alert (alert.go). The
// store appends them with the record, in the
// same transaction (store.Unit.AddAudit).
func FromAudit(r *audit.Record) []Event {
	if r.Action == actionAlert {
		return forAlert(r)
	}
	var typ string
	switch {
	case r.Outcome != outcomeSuccess && strings.HasPrefix(r.Detail, "denied"):
		typ = AccessDenied
	case r.Emergency && r.Outcome == outcomeSuccess:
		typ = AccessEmergency
	case r.Action == "login" && r.Outcome != outcomeSuccess:
		typ = LoginFailed
	case (r.Action == "signing-key-create" || r.Action == "data-key-create") && r.Outcome == outcomeSuccess:
		typ = KeysRotated
	default:
		return nil
	}
	d := Data{ResourceType: r.ResourceType, Actor: r.Actor, Role: r.Role, Action: r.Action,
		Outcome: int(r.Outcome), Reason: r.Detail, RequestID: r.RequestID}
	subject, key := "", ""
	for _, e := range r.Entities {
		// Entities are references ("Patient/abc/_history/2", "user/u1"):
		// ids only.
		parts := strings.SplitN(e, "/", 3)
		if len(parts) >= 2 {
			if subject == "" {
				subject = parts[0] + "/" + parts[1]
				d.ResourceType, d.ID = parts[0], parts[1]
			}
			if parts[0] == "Patient" {
				d.Patients = append(d.Patients, parts[0]+"/"+parts[1])
			}
		}
	}
	if len(d.Patients) > 0 {
		key = d.Patients[0]
	} else {
		key = subject
	}
	if typ == LoginFailed {
		// A failed login's detail may name why; the attempted username is
		// never in a record (actor is empty or an id).
		subject = ""
	}
	return []Event{New(r.Tenant, typ, subject, key, r.Time, d)}
}
