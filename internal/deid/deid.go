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
// Every R4 resource type is covered, driven by the element table generated
// from the official StructureDefinitions (internal/fhir/shape): see walk.go
// for the rules by type.
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

	"github.com/wardhealth/ward/internal/fhir/shape"
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

// Resource de-identifies one resource (decoded FHIR JSON) of any R4 type.
// patient is the id of the patient whose record it is (for the date
// shift; "" for a resource of no patient, whose dates become years). The
// input is not modified.
func (d *Deidentifier) Resource(doc map[string]any, patient string) (map[string]any, error) {
	typ, _ := doc["resourceType"].(string)
	if !shape.IsResource(typ) {
		return nil, ErrUnsupported
	}
	id, _ := doc["id"].(string)
	if id == "" {
		return nil, fmt.Errorf("deid: %s without an id", typ)
	}
	t := &transform{d: d, patient: patient}
	return t.resource(doc), nil
}
