// Package deid de-identifies FHIR resources by the HIPAA Safe Harbor method
// (45 CFR 164.514(b)(2)): it builds each output resource from an allow-list
// of elements, so anything it does not know is dropped, never copied.
//
// What it guarantees for every resource it returns:
//   - names, addresses below the state, telephone and e-mail, identifiers
//     (MRN, SSN, ...), photos, contacts, URLs, narrative (text), notes and
//     every free-text element are absent;
//   - dates are reduced to the year (or, with date shifting, moved by one
//     per-patient offset that keeps intervals), and a patient older than 89
//     has no birth year but the age group "90+";
//   - a ZIP code keeps its first three digits, or "000" when the three-digit
//     area is one HHS lists as having 20,000 people or fewer;
//   - ids and references are keyed pseudonyms: HMAC-SHA256 under the
//     project's key, stable across the extracts of one project and
//     unlinkable across projects.
//
// It is pure: no I/O, no clock (the caller passes the extraction time).
package deid

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Method names, as recorded in the ledger disclosure.
const (
	MethodSafeHarbor = "safe-harbor"
	// MethodSafeHarborShift keeps full dates moved by a per-patient offset
	// instead of reducing them to the year. Date shifting is not part of
	// Safe Harbor itself (whose dates are years); an extract with it
	// relies on an expert determination that the shift is adequate.
	MethodSafeHarborShift = "safe-harbor+date-shift"
)

// AgeGroupURL is the extension that carries "90+" in place of the birth
// date of a patient older than 89.
const AgeGroupURL = "https://wardhealth.org/fhir/StructureDefinition/deid-age-group"

// MaxShiftDays bounds the date shift: offsets are in [-MaxShiftDays, +MaxShiftDays].
const MaxShiftDays = 365

// SparseZIP3 are the three-digit ZIP areas with 20,000 people or fewer
// (HHS guidance on Safe Harbor, 2010 Census): they become "000".
var SparseZIP3 = []string{"036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831", "878", "879", "884", "890", "893"}

// ErrUnsupported is returned for a resource type the allow-list does not
// cover: such a resource is left out of an extract, never passed through.
var ErrUnsupported = errors.New("deid: resource type not covered by the de-identification allow-list")

// Options configure a De-identifier.
type Options struct {
	// ProjectKey keys the pseudonyms and the date shifts (at least 16
	// bytes). One key per research project.
	ProjectKey []byte
	// ShiftDates moves every date of a patient by the patient's offset
	// and keeps full dates (MethodSafeHarborShift) instead of years.
	ShiftDates bool
	// Now is the extraction time, for ages.
	Now time.Time
}

// Deidentifier transforms resources. Safe for concurrent use.
type Deidentifier struct {
	key   []byte
	shift bool
	now   time.Time
}

// New returns a Deidentifier.
func New(o Options) (*Deidentifier, error) {
	if len(o.ProjectKey) < 16 {
		return nil, errors.New("deid: the project key must have at least 16 bytes")
	}
	if o.Now.IsZero() {
		return nil, errors.New("deid: the extraction time is required")
	}
	return &Deidentifier{key: slices.Clone(o.ProjectKey), shift: o.ShiftDates, now: o.Now.UTC()}, nil
}

// Method is the method name of this Deidentifier's output.
func (d *Deidentifier) Method() string {
	if d.shift {
		return MethodSafeHarborShift
	}
	return MethodSafeHarbor
}

func (d *Deidentifier) mac(domain, v string) []byte {
	m := hmac.New(sha256.New, d.key)
	m.Write([]byte(domain))
	m.Write([]byte{0})
	m.Write([]byte(v))
	return m.Sum(nil)
}

// Pseudonym is the project's pseudonymous id of the resource typ/id: 32
// hex characters (128 bits of HMAC-SHA256), a valid FHIR id.
func (d *Deidentifier) Pseudonym(typ, id string) string {
	return hex.EncodeToString(d.mac("id", typ+"/"+id)[:16])
}

// ShiftDays is the patient's date offset in days, in
// [-MaxShiftDays, MaxShiftDays] and never 0.
func (d *Deidentifier) ShiftDays(patient string) int {
	v := binary.BigEndian.Uint64(d.mac("shift", patient)[:8])
	n := int(v%uint64(2*MaxShiftDays)) - MaxShiftDays // [-365, 364]
	if n >= 0 {
		n++ // [1, 365]
	}
	return n
}

// ZIP3 generalizes a US ZIP code: its first three digits, "000" for the
// sparse areas, "" (drop) when it does not start with three digits.
func ZIP3(zip string) string {
	z := strings.TrimSpace(zip)
	if len(z) < 3 {
		return ""
	}
	p := z[:3]
	for _, c := range p {
		if c < '0' || c > '9' {
			return ""
		}
	}
	if slices.Contains(SparseZIP3, p) {
		return "000"
	}
	return p
}

// Resource de-identifies one resource (decoded FHIR JSON). patient is the
// id of the patient whose record it is (for the date shift). The input is
// not modified.
func (d *Deidentifier) Resource(doc map[string]any, patient string) (map[string]any, error) {
	typ, _ := doc["resourceType"].(string)
	id, _ := doc["id"].(string)
	if id == "" {
		return nil, fmt.Errorf("deid: %s without an id", typ)
	}
	t := &transform{d: d, patient: patient}
	switch typ {
	case "Patient":
		return t.patientRes(doc, id), nil
	case "Immunization":
		return t.immunization(doc, id), nil
	}
	return nil, ErrUnsupported
}

// transform is one resource's transformation.
type transform struct {
	d       *Deidentifier
	patient string
}

func (t *transform) patientRes(in map[string]any, id string) map[string]any {
	out := map[string]any{"resourceType": "Patient", "id": t.d.Pseudonym("Patient", id)}
	copyIf(out, in, "gender", isString)
	copyIf(out, in, "active", isBool)
	copyIf(out, in, "deceasedBoolean", isBool)
	if v, ok := in["deceasedDateTime"].(string); ok {
		if g := t.date(v); g != "" {
			out["deceasedDateTime"] = g
		}
	}
	if bd, ok := in["birthDate"].(string); ok {
		if t.over89(bd) {
			out["extension"] = []any{map[string]any{"url": AgeGroupURL, "valueString": "90+"}}
		} else if g := t.date(bd); g != "" {
			out["birthDate"] = g
		}
	}
	if ms := codeable(in["maritalStatus"]); ms != nil {
		out["maritalStatus"] = ms
	}
	var addrs []any
	for _, a := range list(in["address"]) {
		am, _ := a.(map[string]any)
		o := map[string]any{}
		if s, ok := am["state"].(string); ok && s != "" {
			// A state is the one geographic subdivision Safe Harbor keeps.
			o["state"] = s
		}
		if z, ok := am["postalCode"].(string); ok {
			if z3 := ZIP3(z); z3 != "" {
				o["postalCode"] = z3
			}
		}
		if c, ok := am["country"].(string); ok && c != "" {
			o["country"] = c
		}
		if len(o) > 0 {
			addrs = append(addrs, o)
		}
	}
	if len(addrs) > 0 {
		out["address"] = addrs
	}
	return out
}

func (t *transform) immunization(in map[string]any, id string) map[string]any {
	out := map[string]any{"resourceType": "Immunization", "id": t.d.Pseudonym("Immunization", id)}
	copyIf(out, in, "status", isString)
	copyIf(out, in, "primarySource", isBool)
	for _, k := range []string{"vaccineCode", "statusReason", "site", "route"} {
		if c := codeable(in[k]); c != nil {
			out[k] = c
		}
	}
	if p, ok := in["patient"].(map[string]any); ok {
		if r, _ := p["reference"].(string); strings.HasPrefix(r, "Patient/") {
			out["patient"] = map[string]any{"reference": "Patient/" + t.d.Pseudonym("Patient", strings.TrimPrefix(r, "Patient/"))}
		}
	}
	if v, ok := in["occurrenceDateTime"].(string); ok {
		if g := t.date(v); g != "" {
			out["occurrenceDateTime"] = g
		}
	}
	if dq, ok := in["doseQuantity"].(map[string]any); ok {
		q := map[string]any{}
		for _, k := range []string{"value", "unit", "system", "code"} {
			if v, ok := dq[k]; ok {
				q[k] = v
			}
		}
		out["doseQuantity"] = q
	}
	var reactions []any
	for _, r := range list(in["reaction"]) {
		rm, _ := r.(map[string]any)
		o := map[string]any{}
		if v, ok := rm["date"].(string); ok {
			if g := t.date(v); g != "" {
				o["date"] = g
			}
		}
		copyIf(o, rm, "reported", isBool)
		// detail references an Observation (outside the extract): dropped.
		if len(o) > 0 {
			reactions = append(reactions, o)
		}
	}
	if len(reactions) > 0 {
		out["reaction"] = reactions
	}
	return out
}

// date generalizes a FHIR date or dateTime: the year; with shifting, the
// date moved by the patient's offset (day precision, time dropped). A
// partial date (year or year-month) becomes its year either way.
func (t *transform) date(v string) string {
	if len(v) < 4 {
		return ""
	}
	if !t.d.shift || len(v) < 10 {
		y := v[:4]
		for _, c := range y {
			if c < '0' || c > '9' {
				return ""
			}
		}
		return y
	}
	d, err := time.Parse("2006-01-02", v[:10])
	if err != nil {
		return ""
	}
	return d.AddDate(0, 0, t.d.ShiftDays(t.patient)).Format("2006-01-02")
}

// over89 reports whether a patient born on bd is older than 89 at the
// extraction time (a partial date counts from its earliest day, which
// over-counts and so errs towards "90+").
func (t *transform) over89(bd string) bool {
	var born time.Time
	var err error
	switch {
	case len(bd) >= 10:
		born, err = time.Parse("2006-01-02", bd[:10])
	case len(bd) >= 7:
		born, err = time.Parse("2006-01", bd[:7])
	case len(bd) >= 4:
		born, err = time.Parse("2006", bd[:4])
	default:
		return true
	}
	if err != nil {
		return true // unreadable: treat as the protected group
	}
	return !born.AddDate(90, 0, 0).After(t.d.now)
}

// codeable keeps a CodeableConcept's codings as system and code only:
// text and display may be free text.
func codeable(v any) map[string]any {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	var cs []any
	for _, c := range list(m["coding"]) {
		cm, _ := c.(map[string]any)
		o := map[string]any{}
		copyIf(o, cm, "system", isString)
		copyIf(o, cm, "code", isString)
		if len(o) > 0 {
			cs = append(cs, o)
		}
	}
	if len(cs) == 0 {
		return nil
	}
	return map[string]any{"coding": cs}
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func isString(v any) bool { _, ok := v.(string); return ok }
func isBool(v any) bool   { _, ok := v.(bool); return ok }

func copyIf(out, in map[string]any, k string, ok func(any) bool) {
	if v, has := in[k]; has && ok(v) {
		out[k] = v
	}
}
