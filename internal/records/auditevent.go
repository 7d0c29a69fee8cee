package records

// The ledger as FHIR: ledger records presented as R4 AuditEvents shaped
// after the IHE Basic Audit Log Patterns (BALP), read-only and never
// stored a second time, and the accounting of disclosures (HIPAA
// §164.528) built from the same records through the ledger's patient
// index. Reading them is itself a ledger record.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/store"
)

// Code systems of the AuditEvents Ward presents.
const (
	SystemAuditEventType   = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	SystemRestful          = "http://hl7.org/fhir/restful-interaction"
	SystemDICOM            = "http://dicom.nema.org/resources/ontology/DCM"
	SystemPurposeOfUse     = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	SystemParticipantType  = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	SystemEntityType       = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	SystemObjectRole       = "http://terminology.hl7.org/CodeSystem/object-role"
	SystemWardRole         = "urn:ward:role"
	SystemWardUser         = "urn:ward:user"
	SystemWardClient       = "urn:ward:client"
	SystemWardAction       = "urn:ward:audit-action"
	SystemSecuritySource   = "http://terminology.hl7.org/CodeSystem/security-source-type"
	breakGlassPurpose      = "BTG"
	withholdAction         = "withhold"
	withholdDetail         = "hipaa-164.528(a)(2)"
	auditEventResourceType = "AuditEvent"
)

// DefaultDisclosurePeriod is how far back an accounting of disclosures
// reaches without a start: six years (§164.528(a)(1)).
const DefaultDisclosurePeriod = 6 * 365 * 24 * time.Hour

// eventKind is how one ledger action is presented: AuditEvent.type,
// .subtype and .action.
type eventKind struct {
	typeSystem, typeCode, typeDisplay string
	subtype                           string // restful-interaction code, "" for none
	action                            string // C R U D E
}

var (
	restType  = eventKind{typeSystem: SystemAuditEventType, typeCode: "rest", typeDisplay: "RESTful Operation"}
	loginType = eventKind{typeSystem: SystemDICOM, typeCode: "110114", typeDisplay: "User Authentication", action: "E"}
	appType   = eventKind{typeSystem: SystemDICOM, typeCode: "110100", typeDisplay: "Application Activity", action: "E"}
	exportDL  = eventKind{typeSystem: SystemDICOM, typeCode: "110106", typeDisplay: "Export", action: "R"}
)

func rest(sub, action string) eventKind {
	k := restType
	k.subtype, k.action = sub, action
	return k
}

// kinds maps the ledger's actions; any other action is application
// activity (E).
var kinds = map[string]eventKind{
	"create": rest("create", "C"), "update": rest("update", "U"), "patch": rest("patch", "U"),
	"delete": rest("delete", "D"), "read": rest("read", "R"), "vread": rest("vread", "R"),
	"history-instance": rest("history-instance", "R"), "history-type": rest("history-type", "R"),
	"history-system": rest("history-system", "R"), "search-type": rest("search-type", "R"),
	"search-system": rest("search-system", "R"), "transaction": rest("transaction", "E"),
	"batch": rest("batch", "E"), "everything": rest("operation", "R"), "export": rest("operation", "E"),
	"export-read": rest("operation", "R"), "export-download": exportDL, "async-download": exportDL,
	"merge": rest("operation", "U"), "merge-preview": rest("operation", "R"),
	"erase": rest("operation", "D"),
	"login": loginType, "token-refresh": loginType, "client-token": loginType, "code-exchange": loginType,
	"external-token": loginType,
}

func kindOf(action string) eventKind {
	if k, ok := kinds[action]; ok {
		return k
	}
	return appType
}

// actionsWhere lists the ledger actions whose kind keep accepts.
func actionsWhere(keep func(string, eventKind) bool) []string {
	var out []string
	for a, k := range kinds {
		if keep(a, k) {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

// AuditEventJSON presents one ledger record as an R4 AuditEvent (BALP
// shape). The id is the record's sequence number. It is rendered from
// typed values whose fields are declared in the order of their JSON names:
// the bytes are those of the map the view first built (encoding/json
// sorts map keys), at a fraction of the cost, which counts in an
// accounting of hundreds of records (TestAuditEventJSONUnchanged).
func AuditEventJSON(r *audit.Record) ([]byte, error) {
	return json.Marshal(auditEventDoc(r))
}

type aeCoding struct {
	Code   string `json:"code"`
	System string `json:"system"`
}

type aeCodeable struct {
	Coding []aeCoding `json:"coding"`
	Text   string     `json:"text,omitempty"`
}

type aeIdentifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

type aeWhat struct {
	Identifier *aeIdentifier `json:"identifier,omitempty"`
	Reference  string        `json:"reference,omitempty"`
}

type aeNetwork struct {
	Address string `json:"address"`
	Type    string `json:"type"`
}

type aeAgent struct {
	Network      *aeNetwork   `json:"network,omitempty"`
	PurposeOfUse []aeCodeable `json:"purposeOfUse,omitempty"`
	Requestor    bool         `json:"requestor"`
	Role         []aeCodeable `json:"role,omitempty"`
	Type         aeCodeable   `json:"type"`
	Who          *aeWhat      `json:"who,omitempty"`
}

type aeEntity struct {
	Role *aeCoding `json:"role,omitempty"`
	Type aeCoding  `json:"type"`
	What aeWhat    `json:"what"`
}

type aeSource struct {
	Observer struct {
		Display string `json:"display"`
	} `json:"observer"`
	Site string     `json:"site"`
	Type []aeCoding `json:"type"`
}

type aeType struct {
	Code    string `json:"code"`
	Display string `json:"display"`
	System  string `json:"system"`
}

type auditEvent struct {
	Action string     `json:"action,omitempty"`
	Agent  []aeAgent  `json:"agent"`
	Entity []aeEntity `json:"entity,omitempty"`
	ID     string     `json:"id"`
	Meta   struct {
		LastUpdated string `json:"lastUpdated"`
	} `json:"meta"`
	Outcome        string       `json:"outcome"`
	OutcomeDesc    string       `json:"outcomeDesc,omitempty"`
	PurposeOfEvent []aeCodeable `json:"purposeOfEvent,omitempty"`
	Recorded       string       `json:"recorded"`
	ResourceType   string       `json:"resourceType"`
	Source         aeSource     `json:"source"`
	Subtype        []aeCoding   `json:"subtype"`
	Type           aeType       `json:"type"`
}

func coding(system, code string) aeCoding { return aeCoding{Code: code, System: system} }

func auditEventDoc(r *audit.Record) *auditEvent {
	k := kindOf(r.Action)
	at := r.Time.UTC().Format(time.RFC3339Nano)
	doc := &auditEvent{
		ResourceType: auditEventResourceType,
		ID:           strconv.FormatInt(r.Seq, 10),
		Type:         aeType{System: k.typeSystem, Code: k.typeCode, Display: k.typeDisplay},
		Recorded:     at,
		Outcome:      strconv.Itoa(int(r.Outcome)),
		Action:       k.action,
		OutcomeDesc:  r.Detail,
	}
	doc.Meta.LastUpdated = at
	if k.subtype != "" {
		doc.Subtype = append(doc.Subtype, coding(SystemRestful, k.subtype))
	}
	doc.Subtype = append(doc.Subtype, coding(SystemWardAction, r.Action))
	var purposes []aeCodeable
	if r.Purpose != "" {
		purposes = append(purposes, aeCodeable{Coding: []aeCoding{coding(SystemPurposeOfUse, r.Purpose)}})
	}
	if r.Emergency {
		// Break-the-glass (BALP): the purpose BTG beside the one decided.
		purposes = append(purposes, aeCodeable{Coding: []aeCoding{coding(SystemPurposeOfUse, breakGlassPurpose)}, Text: "emergency access (break-the-glass)"})
	}
	doc.PurposeOfEvent = purposes
	agent := aeAgent{Type: aeCodeable{Coding: []aeCoding{coding(SystemParticipantType, "IRCP")}}, Requestor: true, PurposeOfUse: purposes}
	if r.Actor != "" {
		who := &aeIdentifier{System: SystemWardUser, Value: r.Actor}
		if id, ok := strings.CutPrefix(r.Actor, "client/"); ok {
			who = &aeIdentifier{System: SystemWardClient, Value: id}
		}
		agent.Who = &aeWhat{Identifier: who}
	}
	if r.Role != "" {
		agent.Role = []aeCodeable{{Coding: []aeCoding{coding(SystemWardRole, r.Role)}}}
	}
	if r.Address != "" {
		// Type 2 is an IP address; a keyed hash stands in for it unless
		// the operator keeps addresses plain (docs/audit-events.md).
		agent.Network = &aeNetwork{Address: r.Address, Type: "2"}
	}
	doc.Agent = []aeAgent{agent}
	doc.Source.Site = r.Tenant
	doc.Source.Observer.Display = "ward"
	doc.Source.Type = []aeCoding{coding(SystemSecuritySource, "4")}
	entities := make([]aeEntity, 0, len(r.Patients)+len(r.Entities)+1)
	for _, p := range r.Patients {
		role := coding(SystemObjectRole, "1")
		entities = append(entities, aeEntity{What: aeWhat{Reference: "Patient/" + p}, Type: coding(SystemEntityType, "1"), Role: &role})
	}
	for _, e := range r.Entities {
		ent := aeEntity{Type: coding(SystemEntityType, "2")}
		if isReference(e) {
			ent.What.Reference = e
		} else {
			ent.What.Identifier = &aeIdentifier{System: "urn:ward:entity", Value: e}
		}
		entities = append(entities, ent)
	}
	if r.RequestID != "" {
		entities = append(entities, aeEntity{What: aeWhat{Identifier: &aeIdentifier{System: "urn:ward:request-id", Value: r.RequestID}}, Type: coding(SystemEntityType, "4")})
	}
	if len(entities) > 0 {
		doc.Entity = entities
	}
	return doc
}

// isReference says e is a FHIR relative reference (Type/id or
// Type/id/_history/v); other entities (user/x, tenant/x) are identifiers.
func isReference(e string) bool {
	typ, rest, ok := strings.Cut(e, "/")
	if !ok || !fhir.IsResourceType(typ) {
		return false
	}
	id, rest, _ := strings.Cut(rest, "/")
	return fhir.IsID(id) && (rest == "" || strings.HasPrefix(rest, "_history/"))
}

// AuditSearch is a parsed GET AuditEvent search.
type AuditSearch struct {
	Patient, Agent, Entity string
	Actions                []string // ledger actions (from action, type, subtype)
	actionsSet             bool
	Outcome                *audit.Outcome
	Since, Until           time.Time
	Count                  int
	After                  *store.AuditCursor
}

// AuditSearchParams are the parameters GET AuditEvent accepts.
var AuditSearchParams = []string{"patient", "agent", "entity", "date", "action", "outcome", "type", "subtype", "_count", "_cursor", "_format"}

// MaxAuditCount bounds _count.
const MaxAuditCount = 1000

func invalid(msg string) error { return problem.New(problem.ErrInvalid, "invalid", msg) }

// ParseAuditSearch parses the query of GET AuditEvent. Messages name the
// parameter, never the value.
func ParseAuditSearch(q url.Values) (*AuditSearch, error) {
	s := &AuditSearch{Count: 50}
	for name, vs := range q {
		if !slices.Contains(AuditSearchParams, name) {
			return nil, invalid("unsupported AuditEvent search parameter (supported: " + strings.Join(AuditSearchParams, ", ") + ")")
		}
		if name != "date" && len(vs) > 1 {
			return nil, invalid(name + ": give it once")
		}
	}
	one := func(name string) string { return q.Get(name) }
	var err error
	if v := one("patient"); v != "" {
		id := strings.TrimPrefix(v, "Patient/")
		if !fhir.IsID(id) {
			return nil, invalid("patient: not a Patient id or reference")
		}
		s.Patient = id
	}
	if v := one("agent"); v != "" {
		// A user id, or identifier system|value.
		if i := strings.IndexByte(v, '|'); i >= 0 {
			v = v[i+1:]
		}
		if v == "" || len(v) > 256 || strings.ContainsAny(v, "\x00\n\r") {
			return nil, invalid("agent: not a user or client id")
		}
		s.Agent = v
	}
	if v := one("entity"); v != "" {
		if !isReference(v) {
			return nil, invalid("entity: not a reference such as Observation/123")
		}
		s.Entity = v
	}
	keep := func(f func(string, eventKind) bool) {
		if !s.actionsSet {
			s.Actions, s.actionsSet = actionsWhere(f), true
			return
		}
		s.Actions = slices.DeleteFunc(s.Actions, func(a string) bool { return !f(a, kindOf(a)) })
	}
	if v := one("action"); v != "" {
		if !slices.Contains([]string{"C", "R", "U", "D", "E"}, v) {
			return nil, invalid("action: one of C, R, U, D, E")
		}
		keep(func(_ string, k eventKind) bool { return k.action == v })
	}
	if v := one("type"); v != "" {
		sys, code, hasSys := strings.Cut(v, "|")
		if !hasSys {
			sys, code = "", v
		}
		keep(func(_ string, k eventKind) bool {
			return k.typeCode == code && (sys == "" || sys == k.typeSystem)
		})
	}
	if v := one("subtype"); v != "" {
		sys, code, hasSys := strings.Cut(v, "|")
		if !hasSys {
			sys, code = "", v
		}
		switch {
		case sys == SystemWardAction:
			keep(func(a string, _ eventKind) bool { return a == code })
			if !slices.Contains(s.Actions, code) && len(s.Actions) == 0 && len(q["action"])+len(q["type"]) == 0 {
				s.Actions = []string{code} // an action outside the table
			}
		default:
			if sys != "" && sys != SystemRestful {
				return nil, invalid("subtype: system must be " + SystemRestful + " or " + SystemWardAction)
			}
			keep(func(_ string, k eventKind) bool { return k.subtype == code })
		}
	}
	if v := one("outcome"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || (n != 0 && n != 4 && n != 8 && n != 12) {
			return nil, invalid("outcome: one of 0, 4, 8, 12")
		}
		o := audit.Outcome(n)
		s.Outcome = &o
	}
	for _, v := range q["date"] {
		if err := s.addDate(v); err != nil {
			return nil, err
		}
	}
	if v := one("_count"); v != "" {
		if s.Count, err = strconv.Atoi(v); err != nil || s.Count < 1 {
			return nil, invalid("_count: a positive whole number")
		}
		s.Count = min(s.Count, MaxAuditCount)
	}
	if v := one("_cursor"); v != "" {
		c, err := parseAuditCursor(v)
		if err != nil {
			return nil, err
		}
		s.After = c
	}
	return s, nil
}

// addDate narrows the period by one date parameter: a prefix (eq, ge, gt,
// le, lt; none is eq) and a FHIR date or dateTime.
func (s *AuditSearch) addDate(v string) error {
	prefix := "eq"
	if len(v) > 2 && v[0] >= 'a' && v[0] <= 'z' {
		prefix, v = v[:2], v[2:]
	}
	lo, hi, ok := dateRange(v)
	if !ok {
		return invalid("date: a FHIR date or dateTime with an optional prefix eq, ge, gt, le or lt")
	}
	narrowSince := func(t time.Time) {
		if t.After(s.Since) {
			s.Since = t
		}
	}
	narrowUntil := func(t time.Time) {
		if s.Until.IsZero() || t.Before(s.Until) {
			s.Until = t
		}
	}
	switch prefix {
	case "eq":
		narrowSince(lo)
		narrowUntil(hi)
	case "ge":
		narrowSince(lo)
	case "gt":
		narrowSince(hi)
	case "le":
		narrowUntil(hi)
	case "lt":
		narrowUntil(lo)
	default:
		return invalid("date: prefix must be eq, ge, gt, le or lt")
	}
	return nil
}

// dateRange is the half-open period [lo, hi) a FHIR date or dateTime
// names: a year, a month, a day, or an instant (to the microsecond).
func dateRange(v string) (lo, hi time.Time, ok bool) {
	for _, f := range []struct {
		layout string
		next   func(time.Time) time.Time
	}{
		{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0) }},
		{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }},
		{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }},
	} {
		if len(v) == len(f.layout) {
			t, err := time.Parse(f.layout, v)
			if err != nil {
				return lo, hi, false
			}
			return t, f.next(t), true
		}
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return lo, hi, false
	}
	t = t.UTC().Truncate(time.Microsecond)
	return t, t.Add(time.Microsecond), true
}

func parseAuditCursor(v string) (*store.AuditCursor, error) {
	at, seq, ok := strings.Cut(v, ".")
	a, err1 := strconv.ParseInt(at, 10, 64)
	n, err2 := strconv.ParseInt(seq, 10, 64)
	if !ok || err1 != nil || err2 != nil || n < 1 {
		return nil, invalid("_cursor: not a cursor this server issued")
	}
	return &store.AuditCursor{Time: time.UnixMicro(a).UTC(), Seq: n}, nil
}

// AuditCursorOf is the _cursor value that continues after r.
func AuditCursorOf(r *audit.Record) string {
	return strconv.FormatInt(r.Time.UnixMicro(), 10) + "." + strconv.FormatInt(r.Seq, 10)
}

// AuditPage is one page of AuditEvents, newest first.
type AuditPage struct {
	Records []*audit.Record
	// Next is the _cursor of the next page; "" on the last.
	Next string
}

// LedgerView reads the ledger as AuditEvents for one subject. Who may:
// admins and privacy officers, every record of their tenant; a user
// linked to a Patient, only the records about that patient, without
// those a privacy officer withheld under §164.528(a)(2) and without the
// withholding marks themselves. Everyone else is refused (audited).
type LedgerView struct {
	st        store.Store
	subj      authz.Subject
	requestID string
	address   string
	now       func() time.Time
}

// NewLedgerView returns the ledger view of st for subj (for the CLI,
// which has no Service).
func NewLedgerView(st store.Store, subj authz.Subject, requestID string) *LedgerView {
	return &LedgerView{st: st, subj: subj, requestID: requestID, now: time.Now}
}

// Ledger is the ledger view for the repository's caller.
func (r *Repo) Ledger() *LedgerView {
	return &LedgerView{st: r.s.st, subj: r.subj, requestID: r.requestID, now: r.s.now, address: r.address}
}

func (l *LedgerView) record(action string) *audit.Record {
	return &audit.Record{Time: l.now().UTC(), Tenant: l.subj.Tenant, RequestID: l.requestID, Actor: l.subj.ID,
		Role: string(l.subj.Role), Action: action, ResourceType: auditEventResourceType, Address: l.address}
}

func (l *LedgerView) commit(rec *audit.Record) error {
	return store.NewRecorder(l.st).Record(context.Background(), rec)
}

func (l *LedgerView) refuse(rec *audit.Record, detail string, err error) error {
	rec.Outcome, rec.Detail = audit.OutcomeMinor, detail
	if aerr := l.commit(rec); aerr != nil {
		return aerr
	}
	return err
}

func (l *LedgerView) officer() bool {
	return l.subj.Role == authz.RoleAdmin || l.subj.Role == authz.RolePrivacyOfficer
}

var errAuditForbidden = problem.New(problem.ErrForbidden, "forbidden", "AuditEvents are read by privacy officers and admins, and by a patient for their own record")

// scope decides who may read which records: "" and true for all of the
// tenant, a patient id for one patient's, or a refusal (audited).
func (l *LedgerView) scope(rec *audit.Record, patient string) (string, error) {
	switch {
	case l.officer():
		return patient, nil
	case l.subj.Role == authz.RoleUser && l.subj.Patient != "":
		if patient != "" && patient != l.subj.Patient {
			return "", l.refuse(rec, "denied:not-own-record", errAuditForbidden)
		}
		return l.subj.Patient, nil
	}
	return "", l.refuse(rec, "denied:role", errAuditForbidden)
}

// Search runs an AuditEvent search and audits it (action search-type,
// the AuditEvents disclosed as entities).
func (l *LedgerView) Search(ctx context.Context, s *AuditSearch) (*AuditPage, error) {
	rec := l.record("search-type")
	patient, err := l.scope(rec, s.Patient)
	if err != nil {
		return nil, err
	}
	q := store.AuditQuery{Tenant: l.subj.Tenant, Patient: patient, Actor: s.Agent, Entity: s.Entity, Actions: s.Actions,
		Outcome: s.Outcome, Since: s.Since, Until: s.Until, After: s.After, Limit: s.Count}
	page := &AuditPage{}
	if s.actionsSet && len(s.Actions) == 0 {
		return page, l.commit(rec) // no action has that type and subtype
	}
	if !l.officer() {
		if page.Records, err = l.patientView(ctx, q); err != nil {
			return nil, err
		}
	} else if page.Records, err = l.st.AuditSearch(ctx, q); err != nil {
		return nil, err
	}
	if len(page.Records) == s.Count {
		page.Next = AuditCursorOf(page.Records[len(page.Records)-1])
	}
	for _, r := range page.Records {
		rec.Entities = append(rec.Entities, "AuditEvent/"+strconv.FormatInt(r.Seq, 10))
	}
	return page, l.commit(rec)
}

// patientView is q for a patient reading their own record: pages of the
// index with withheld records and the withholding marks left out, until
// q.Limit records are kept or the index ends.
func (l *LedgerView) patientView(ctx context.Context, q store.AuditQuery) ([]*audit.Record, error) {
	withheld, err := l.withheld(ctx, q.Tenant, q.Patient)
	if err != nil {
		return nil, err
	}
	limit := q.Limit
	var out []*audit.Record
	for len(out) < limit {
		got, err := l.st.AuditSearch(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, r := range got {
			if r.Action != withholdAction && !withheld[r.Seq] && len(out) < limit {
				out = append(out, r)
			}
		}
		if len(got) < q.Limit {
			break
		}
		last := got[len(got)-1]
		q.After = &store.AuditCursor{Time: last.Time, Seq: last.Seq}
	}
	return out, nil
}

// withheld are the seqs of the patient's records a privacy officer has
// withheld: the withhold marks in the patient's index name them.
func (l *LedgerView) withheld(ctx context.Context, tenant, patient string) (map[int64]bool, error) {
	out := map[int64]bool{}
	q := store.AuditQuery{Tenant: tenant, Patient: patient, Actions: []string{withholdAction}, Outcome: new(audit.OutcomeSuccess), Limit: MaxAuditCount}
	for {
		got, err := l.st.AuditSearch(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, r := range got {
			for _, e := range r.Entities {
				if s, ok := strings.CutPrefix(e, "AuditEvent/"); ok {
					if n, err := strconv.ParseInt(s, 10, 64); err == nil {
						out[n] = true
					}
				}
			}
		}
		if len(got) < q.Limit {
			return out, nil
		}
		last := got[len(got)-1]
		q.After = &store.AuditCursor{Time: last.Time, Seq: last.Seq}
	}
}

// parseSeq parses an AuditEvent id.
func parseSeq(id string) (int64, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n < 1 {
		return 0, problem.New(problem.ErrNotFound, "not-found", "AuditEvent not found")
	}
	return n, nil
}

// Read returns one AuditEvent, audited as a read.
func (l *LedgerView) Read(ctx context.Context, id string) (*audit.Record, error) {
	rec := l.record("read")
	rec.Entities = []string{"AuditEvent/" + id}
	patient, err := l.scope(rec, "")
	if err != nil {
		return nil, err
	}
	notFound := problem.New(problem.ErrNotFound, "not-found", "AuditEvent not found")
	seq, err := parseSeq(id)
	if err != nil {
		return nil, l.refuse(rec, "not-found", err)
	}
	r, err := l.st.AuditRecord(ctx, l.subj.Tenant, seq)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, l.refuse(rec, "not-found", notFound)
		}
		return nil, err
	}
	if patient != "" {
		withheld, err := l.withheld(ctx, l.subj.Tenant, patient)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(r.Patients, patient) || withheld[seq] || r.Action == withholdAction {
			// Not about the caller, or withheld: as if it did not exist.
			return nil, l.refuse(rec, "not-found", notFound)
		}
	}
	return r, l.commit(rec)
}

// Withhold marks the AuditEvent id as withheld from the patient's own
// view and accounting (§164.528(a)(2): a health oversight or law
// enforcement agency asked for the suspension). The mark is a ledger
// record itself (action withhold, entity AuditEvent/id, the record's
// patients, reason in Detail); only privacy officers and admins may set
// it.
func (l *LedgerView) Withhold(ctx context.Context, id string) error {
	rec := l.record(withholdAction)
	rec.Entities = []string{"AuditEvent/" + id}
	if !l.officer() {
		return l.refuse(rec, "denied:role", problem.New(problem.ErrForbidden, "forbidden", "only a privacy officer or an admin withholds an AuditEvent"))
	}
	seq, err := parseSeq(id)
	if err != nil {
		return l.refuse(rec, "not-found", err)
	}
	r, err := l.st.AuditRecord(ctx, l.subj.Tenant, seq)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return l.refuse(rec, "not-found", problem.New(problem.ErrNotFound, "not-found", "AuditEvent not found"))
		}
		return err
	}
	if len(r.Patients) == 0 {
		return l.refuse(rec, "no-patient", invalid("the AuditEvent names no patient: no accounting lists it, so there is nothing to withhold"))
	}
	rec.Patients = slices.Clone(r.Patients)
	rec.Detail = withholdDetail
	return l.commit(rec)
}

// Disclosure is one line of an accounting of disclosures.
type Disclosure struct {
	Record *audit.Record
	// Types counts the resources disclosed by type.
	Types map[string]int
}

// notDisclosure are actions that disclose nothing of the patient's record:
// the accounting's own bookkeeping.
func notDisclosure(r *audit.Record) bool {
	return r.Action == withholdAction || r.ResourceType == auditEventResourceType || r.Outcome != audit.OutcomeSuccess
}

// Disclosures is the accounting of disclosures of one patient's record
// in [start, end): every successful access to it, newest first, with what
// was disclosed counted by resource type. A zero end is now, a zero start
// six years before end. It is audited (action disclosures, the patient
// named). A patient sees their own without the withheld records.
func (l *LedgerView) Disclosures(ctx context.Context, patient string, start, end time.Time) ([]Disclosure, error) {
	rec := l.record("disclosures")
	rec.ResourceType = "Patient"
	rec.Entities = []string{"Patient/" + patient}
	if !fhir.IsID(patient) {
		return nil, invalid("patient: not a Patient id")
	}
	if end.IsZero() {
		end = l.now().UTC()
	}
	if start.IsZero() {
		start = end.Add(-DefaultDisclosurePeriod)
	}
	if !start.Before(end) {
		return nil, invalid("start must be before end")
	}
	scoped, err := l.scope(rec, patient)
	if err != nil {
		return nil, err
	}
	if scoped == "" {
		scoped = patient
	}
	q := store.AuditQuery{Tenant: l.subj.Tenant, Patient: scoped, Since: start, Until: end, Outcome: new(audit.OutcomeSuccess), Limit: MaxAuditCount}
	var withheld map[int64]bool
	if !l.officer() {
		if withheld, err = l.withheld(ctx, q.Tenant, scoped); err != nil {
			return nil, err
		}
	}
	var out []Disclosure
	for {
		got, err := l.st.AuditSearch(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, r := range got {
			if notDisclosure(r) || withheld[r.Seq] {
				continue
			}
			out = append(out, Disclosure{Record: r, Types: countTypes(r, scoped)})
		}
		if len(got) < q.Limit {
			break
		}
		last := got[len(got)-1]
		q.After = &store.AuditCursor{Time: last.Time, Seq: last.Seq}
	}
	return out, l.commit(rec)
}

// Access is one user's activity in [start, end) (information-system
// activity review, §164.308(a)(1)(ii)(D)), newest first; privacy officers
// and admins only. It is audited (action access-review).
func (l *LedgerView) Access(ctx context.Context, user string, start, end time.Time) ([]Disclosure, error) {
	rec := l.record("access-review")
	rec.Entities = []string{"user/" + user}
	if !l.officer() {
		return nil, l.refuse(rec, "denied:role", errAuditForbidden)
	}
	if end.IsZero() {
		end = l.now().UTC()
	}
	if start.IsZero() {
		start = end.Add(-DefaultDisclosurePeriod)
	}
	q := store.AuditQuery{Tenant: l.subj.Tenant, Actor: user, Since: start, Until: end, Limit: MaxAuditCount}
	var out []Disclosure
	for {
		got, err := l.st.AuditSearch(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, r := range got {
			out = append(out, Disclosure{Record: r, Types: countTypes(r, "")})
		}
		if len(got) < q.Limit {
			break
		}
		last := got[len(got)-1]
		q.After = &store.AuditCursor{Time: last.Time, Seq: last.Seq}
	}
	return out, l.commit(rec)
}

// countTypes counts the resources r names by type. For one patient's
// accounting, other Patients named with it (a search or an export file
// of many) are left out; other resources cannot be told apart by patient
// from the record alone and are all counted.
func countTypes(r *audit.Record, patient string) map[string]int {
	m := map[string]int{}
	for _, e := range r.Entities {
		typ, rest, ok := strings.Cut(e, "/")
		if !ok || !fhir.IsResourceType(typ) {
			continue
		}
		if id, _, _ := strings.Cut(rest, "/"); patient != "" && typ == "Patient" && id != patient {
			continue
		}
		m[typ]++
	}
	return m
}

// TypesText is the per-type count as "Observation:3 Patient:1", sorted.
func (d Disclosure) TypesText() string {
	keys := make([]string, 0, len(d.Types))
	for k := range d.Types {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s:%d", k, d.Types[k])
	}
	return strings.Join(parts, " ")
}
