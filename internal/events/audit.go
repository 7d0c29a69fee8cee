package events

import (
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/wardhealth/ward/internal/audit"
)

// Outcome codes an audit record carries; duplicated from audit's so the
// rules below read as the table they are.
const (
	outcomeSuccess = audit.OutcomeSuccess
)

// disclosures are the ledger actions that disclose resources to the
// caller (the AuditEvent view's "R" kinds): a successful one naming
// patients is phi.disclosed.
var disclosures = map[string]bool{
	"read": true, "vread": true, "history-instance": true, "history-type": true, "history-system": true,
	"search-type": true, "search-system": true, "everything": true, "export-read": true, "export-download": true,
	"async-download": true,
	// A merge and its preview answer with the target Patient.
	"merge": true, "merge-preview": true,
}

// FromAudit returns the security events an audit record stands for (none
// for most records): a refusal by policy is access.denied, a break-glass
// access access.emergency, a failed login auth.login-failed, a new signing
// or data key keys.rotated, an alert security.alert (alert.go). The store
// appends them with the record, in the same transaction
// (store.Unit.AddAudit). phi.disclosed is not among them: reads are the
// hot path, so Disclosed derives it from the ledger afterwards.
func FromAudit(r *audit.Record) []Event {
	if r.Action == actionAlert {
		return forAlert(r)
	}
	var types []string
	switch {
	case r.Outcome != outcomeSuccess && strings.HasPrefix(r.Detail, "denied"):
		types = append(types, AccessDenied)
	case r.Emergency && r.Outcome == outcomeSuccess:
		types = append(types, AccessEmergency)
	case r.Action == "login" && r.Outcome != outcomeSuccess:
		types = append(types, LoginFailed)
	case (r.Action == "signing-key-create" || r.Action == "data-key-create") && r.Outcome == outcomeSuccess:
		types = append(types, KeysRotated)
	}
	if len(types) == 0 {
		return nil
	}
	d, subject, key := auditData(r)
	out := make([]Event, 0, len(types))
	for _, typ := range types {
		subj := subject
		if typ == LoginFailed {
			// A failed login's detail may name why; the attempted
			// username is never in a record (actor is empty or an id).
			subj = ""
		}
		out = append(out, New(r.Tenant, typ, subj, key, r.Time, d))
	}
	return out
}

// Disclosed returns the phi.disclosed event of a committed ledger record:
// a successful read, search, history, $everything or export download that
// named patients (with access.emergency from FromAudit when it was
// break-glass). Its id is derived from the tenant and the record's
// sequence number, so a record emitted twice (a consumer that crashed
// before saving its cursor) carries one id, which receivers deduplicate
// (Nats-Msg-Id, webhook-id).
func Disclosed(r *audit.Record) (Event, bool) {
	if r.Outcome != outcomeSuccess || len(r.Patients) == 0 || !disclosures[r.Action] {
		return Event{}, false
	}
	d, subject, key := auditData(r)
	id := uuid.NewSHA1(ledgerSpace, []byte(r.Tenant+"\x1f"+strconv.FormatInt(r.Seq, 10))).String()
	return newWithID(id, r.Tenant, PHIDisclosed, subject, key, r.Time, d), true
}

// ledgerSpace is the UUID namespace of events derived from ledger records.
var ledgerSpace = uuid.MustParse("5f0c2a8e-6d1b-4c3e-9a57-1b2f7e4d8c60")

// auditData is the data of an audit record's events: ids and codes.
func auditData(r *audit.Record) (d Data, subject, key string) {
	d = Data{ResourceType: r.ResourceType, Actor: r.Actor, Role: r.Role, Action: r.Action,
		Outcome: int(r.Outcome), Reason: r.Detail, RequestID: r.RequestID, Purpose: r.Purpose}
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
				d.Patients = appendNew(d.Patients, parts[0]+"/"+parts[1])
			}
		}
	}
	for _, p := range r.Patients {
		d.Patients = appendNew(d.Patients, "Patient/"+p)
	}
	if len(d.Patients) > 0 {
		key = d.Patients[0]
	} else {
		key = subject
	}
	return d, subject, key
}

func appendNew(xs []string, x string) []string {
	for _, y := range xs {
		if y == x {
			return xs
		}
	}
	return append(xs, x)
}
