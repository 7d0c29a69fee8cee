// Package events is Ward's domain events: their types, the CloudEvents 1.0
// JSON envelope they travel in, and the rules that derive them from a
// committed change (a resource write) or from an audit record (a security
// event). It is pure: no I/O, no clock except the times it is given.
//
// Guarantees:
//   - An event carries ids and codes only, never PHI: the resource type
//     and id, its version, the ids of the patients whose compartment it is
//     in, the actor's id and role, an outcome and reason code. Nothing of a
//     resource's content is copied except the codes named per type below
//     (Patient.active, Consent.status), and those only as the event type.
//   - Every event has a unique id (a random UUID) that receivers use to
//     drop duplicates: delivery is at least once.
//   - Every event has an ordering key: the first patient of its
//     compartment ("Patient/<id>"), else its resource ("Type/id"), else
//     its tenant. The outbox keeps events in commit order, so events of
//     one key are delivered in the order they were committed.
//
// The events are appended to the store's outbox in the same transaction as
// the change they describe (store.Outbox); the dispatcher (internal/dispatch)
// delivers them.
package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Event types. Resource events are emitted for every resource type; the
// others in addition to them where they apply.
const (
	ResourceCreated = "resource.created"
	ResourceUpdated = "resource.updated"
	ResourceDeleted = "resource.deleted"

	PatientCreated     = "patient.created"
	PatientUpdated     = "patient.updated"
	PatientDeactivated = "patient.deactivated"
	// PatientMerged is a Patient/$merge: one per merge, besides the
	// resource events of every version it wrote (see Merged).
	PatientMerged = "patient.merged"

	ImmunizationRecorded = "immunization.recorded"
	ImmunizationUpdated  = "immunization.updated"

	ConsentProvided = "consent.provided"
	ConsentRevoked  = "consent.revoked"

	// DocumentUploaded is a Binary version whose content was stored
	// (a raw upload, or inline attachment data moved to a Binary).
	DocumentUploaded = "document.uploaded"

	AccessDenied    = "access.denied"
	AccessEmergency = "access.emergency"
	LoginFailed     = "auth.login-failed"
	KeysRotated     = "keys.rotated"
	// PHIDisclosed is a successful read of patients' records (read,
	// search, history, $everything, export), from its ledger record.
	PHIDisclosed = "phi.disclosed"
)

// Types lists every event type Ward emits today.
var Types = []string{
	ResourceCreated, ResourceUpdated, ResourceDeleted,
	PatientCreated, PatientUpdated, PatientDeactivated, PatientMerged,
	ImmunizationRecorded, ImmunizationUpdated,
	ConsentProvided, ConsentRevoked, DocumentUploaded,
	AccessDenied, AccessEmergency, LoginFailed, KeysRotated, PHIDisclosed,
}

// Event is one domain event as the outbox stores it: the columns the
// dispatcher orders and routes by, and JSON, the CloudEvents envelope
// delivered as is.
type Event struct {
	ID     string
	Tenant string
	Type   string
	// Key is the ordering key (see the package doc).
	Key  string
	Time time.Time
	// JSON is the CloudEvents 1.0 structured-mode encoding.
	JSON []byte
}

// Data is the data member of an event: ids and codes only.
type Data struct {
	ResourceType string   `json:"resourceType,omitempty"`
	ID           string   `json:"id,omitempty"`
	VersionID    string   `json:"versionId,omitempty"`
	Patients     []string `json:"patients,omitempty"`
	Actor        string   `json:"actor,omitempty"`
	Role         string   `json:"role,omitempty"`
	Action       string   `json:"action,omitempty"`
	Outcome      int      `json:"outcome,omitempty"`
	Reason       string   `json:"reason,omitempty"`
	RequestID    string   `json:"requestId,omitempty"`
	// Purpose is the purpose-of-use code of an access.
	Purpose string `json:"purpose,omitempty"`
	// Target is the surviving patient of a merge ("Patient/<id>"), Moved
	// the number of resources the merge moved to it.
	Target string `json:"target,omitempty"`
	Moved  int    `json:"moved,omitempty"`
}

// Envelope is the CloudEvents 1.0 JSON envelope (structured content mode)
// with Ward's tenant extension.
type Envelope struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Subject         string    `json:"subject,omitempty"`
	Time            time.Time `json:"time"`
	DataContentType string    `json:"datacontenttype"`
	Tenant          string    `json:"tenant"`
	Data            Data      `json:"data"`
}

// Source is the CloudEvents source of every event Ward emits.
const Source = "urn:ward"

// New builds an event with a fresh id. subject is the CloudEvents subject
// ("Patient/123", "user/u1"), key the ordering key.
func New(tenant, typ, subject, key string, at time.Time, d Data) Event {
	return newWithID(uuid.NewString(), tenant, typ, subject, key, at, d)
}

func newWithID(id, tenant, typ, subject, key string, at time.Time, d Data) Event {
	at = at.UTC().Truncate(time.Microsecond)
	if key == "" {
		key = "tenant/" + tenant
	}
	env := Envelope{
		SpecVersion: "1.0", ID: id, Source: Source, Type: typ, Subject: subject,
		Time: at, DataContentType: "application/json", Tenant: tenant, Data: d,
	}
	b, err := json.Marshal(env)
	if err != nil {
		// Every field is a string, an int or a time: Marshal cannot fail.
		panic(fmt.Sprintf("events: encode envelope: %v", err))
	}
	return Event{ID: id, Tenant: tenant, Type: typ, Key: key, Time: at, JSON: b}
}

// Parse decodes an envelope (for tail and tests).
func Parse(b []byte) (*Envelope, error) {
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("events: decode envelope: %w", err)
	}
	if e.SpecVersion != "1.0" || e.ID == "" || e.Type == "" || e.Source == "" {
		return nil, fmt.Errorf("events: not a CloudEvents 1.0 envelope")
	}
	return &e, nil
}

// Change is one committed resource write as the records layer knows it:
// old is the content replaced (nil: created), doc the content written
// (nil: deleted); patients are the compartments it is in.
type Change struct {
	Tenant, Type, ID string
	Version          int64
	Time             time.Time
	Old, Doc         map[string]any
	Patients         []string
	Actor, Role      string
	RequestID        string
	// Uploaded: the write stored new document content (a Binary version
	// with a content object).
	Uploaded bool
}

// ForChange returns the events of a committed write: the resource event,
// and the specific ones of its type.
func ForChange(c Change) []Event {
	subject := c.Type + "/" + c.ID
	key := subject
	var pats []string
	for _, p := range c.Patients {
		pats = append(pats, "Patient/"+p)
	}
	if len(pats) > 0 {
		key = pats[0]
	}
	d := Data{ResourceType: c.Type, ID: c.ID, VersionID: strconv.FormatInt(c.Version, 10), Patients: pats,
		Actor: c.Actor, Role: c.Role, RequestID: c.RequestID}
	ev := func(typ string) Event { return New(c.Tenant, typ, subject, key, c.Time, d) }

	var out []Event
	switch {
	case c.Doc == nil:
		d.Action = "delete"
		out = append(out, ev(ResourceDeleted))
	case c.Old == nil:
		d.Action = "create"
		out = append(out, ev(ResourceCreated))
	default:
		d.Action = "update"
		out = append(out, ev(ResourceUpdated))
	}
	switch c.Type {
	case "Patient":
		switch {
		case c.Doc == nil:
		case c.Old == nil:
			out = append(out, ev(PatientCreated))
		default:
			out = append(out, ev(PatientUpdated))
			if active(c.Old) && !active(c.Doc) {
				out = append(out, ev(PatientDeactivated))
			}
		}
	case "Immunization":
		switch {
		case c.Doc == nil:
		case c.Old == nil:
			out = append(out, ev(ImmunizationRecorded))
		default:
			out = append(out, ev(ImmunizationUpdated))
		}
	case "Binary":
		if c.Uploaded && c.Doc != nil {
			out = append(out, ev(DocumentUploaded))
		}
	case "Consent":
		was, is := consentActive(c.Old), consentActive(c.Doc)
		switch {
		case is && !was:
			out = append(out, ev(ConsentProvided))
		case was && !is:
			out = append(out, ev(ConsentRevoked))
		}
	}
	return out
}

// Merge is a committed Patient/$merge as the records layer knows it.
type Merge struct {
	Tenant         string
	Source, Target string // patient ids
	// SourceVersion is the version of the source the merge wrote.
	SourceVersion int64
	Moved         int
	Time          time.Time
	Actor, Role   string
	RequestID     string
}

// Merged is the patient.merged event of a merge: subject and ordering
// key the source patient (whose record ends there), data the two
// patients' references and the count of moved resources; ids and counts
// only.
func Merged(m Merge) Event {
	src := "Patient/" + m.Source
	return New(m.Tenant, PatientMerged, src, src, m.Time, Data{
		ResourceType: "Patient", ID: m.Source, VersionID: strconv.FormatInt(m.SourceVersion, 10),
		Patients: []string{src, "Patient/" + m.Target}, Target: "Patient/" + m.Target, Moved: m.Moved,
		Actor: m.Actor, Role: m.Role, Action: "merge", RequestID: m.RequestID,
	})
}

// active is Patient.active, which defaults to true when absent.
func active(doc map[string]any) bool {
	if doc == nil {
		return false
	}
	a, ok := doc["active"].(bool)
	return !ok || a
}

func consentActive(doc map[string]any) bool {
	if doc == nil {
		return false
	}
	s, _ := doc["status"].(string)
	return s == "active"
}
