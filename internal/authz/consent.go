package authz

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Consent is the access-relevant part of a FHIR Consent resource: whose
// it is, whether it is in force, and its provisions. ParseConsent builds it
// from the resource; Decide applies it.
type Consent struct {
	ID      string
	Patient string // the patient's id
	Active  bool   // status active
	// Research says the consent is about research (scope or category
	// "research"); only such a consent can permit purpose HRESCH.
	Research bool
	// Privacy says the scope is patient-privacy (or research): other
	// consents (treatment, adr) do not govern access.
	Privacy   bool
	Provision *Provision
}

// Provision is a Consent.provision: a permit or deny rule with criteria,
// and nested exceptions.
type Provision struct {
	Type       string // "permit" or "deny"; "" inherits nothing
	Start, End time.Time
	Actors     []string // references: Practitioner/x, Organization/y, Patient/z, ...
	Purposes   []string // PurposeOfUse codes
	Classes    []string // resource types
	Labels     []string // security label codes
	Data       []string // resource references Type/id
	Provisions []*Provision
}

// ErrConsent is returned for a Consent that cannot be applied.
var ErrConsent = errors.New("consent")

// maxProvisionDepth bounds nesting (FHIR sets no limit; a deeper consent
// is refused rather than half applied).
const maxProvisionDepth = 8

// ParseConsent reads a Consent resource (decoded JSON).
func ParseConsent(doc map[string]any) (Consent, error) {
	var c Consent
	if rt, _ := doc["resourceType"].(string); rt != "Consent" {
		return c, fmt.Errorf("%w: not a Consent", ErrConsent)
	}
	c.ID, _ = doc["id"].(string)
	c.Active = doc["status"] == "active"
	if p, ok := doc["patient"].(map[string]any); ok {
		ref, _ := p["reference"].(string)
		if typ, id, ok := localRef(ref); ok && typ == "Patient" {
			c.Patient = id
		}
	}
	for _, code := range codes(doc["scope"]) {
		switch code {
		case "research":
			c.Research, c.Privacy = true, true
		case "patient-privacy":
			c.Privacy = true
		}
	}
	for _, cat := range list(doc["category"]) {
		if slices.Contains(codes(cat), "research") {
			c.Research = true
		}
	}
	if p, ok := doc["provision"].(map[string]any); ok {
		pr, err := parseProvision(p, 0)
		if err != nil {
			return c, err
		}
		c.Provision = pr
	}
	return c, nil
}

func parseProvision(p map[string]any, depth int) (*Provision, error) {
	if depth >= maxProvisionDepth {
		return nil, fmt.Errorf("%w: provisions nested deeper than %d", ErrConsent, maxProvisionDepth)
	}
	out := &Provision{}
	out.Type, _ = p["type"].(string)
	if out.Type != "" && out.Type != "permit" && out.Type != "deny" {
		return nil, fmt.Errorf("%w: provision type must be permit or deny", ErrConsent)
	}
	if per, ok := p["period"].(map[string]any); ok {
		var err error
		if out.Start, err = instant(per["start"], false); err != nil {
			return nil, err
		}
		if out.End, err = instant(per["end"], true); err != nil {
			return nil, err
		}
	}
	for _, a := range list(p["actor"]) {
		am, _ := a.(map[string]any)
		r, _ := am["reference"].(map[string]any)
		ref, _ := r["reference"].(string)
		if typ, id, ok := localRef(ref); ok {
			out.Actors = append(out.Actors, typ+"/"+id)
		} else {
			// An actor Ward cannot resolve matches nobody: for a deny
			// that would silently permit, so keep it unmatched but
			// present (the provision then applies to no one).
			out.Actors = append(out.Actors, "unresolved")
		}
	}
	for _, c := range list(p["purpose"]) {
		if cm, ok := c.(map[string]any); ok {
			if code, _ := cm["code"].(string); code != "" {
				out.Purposes = append(out.Purposes, code)
			}
		}
	}
	for _, c := range list(p["class"]) {
		if cm, ok := c.(map[string]any); ok {
			if code, _ := cm["code"].(string); code != "" {
				out.Classes = append(out.Classes, code)
			}
		}
	}
	for _, c := range list(p["securityLabel"]) {
		if cm, ok := c.(map[string]any); ok {
			if code, _ := cm["code"].(string); code != "" {
				out.Labels = append(out.Labels, code)
			}
		}
	}
	for _, d := range list(p["data"]) {
		dm, _ := d.(map[string]any)
		r, _ := dm["reference"].(map[string]any)
		ref, _ := r["reference"].(string)
		if typ, id, ok := localRef(ref); ok {
			out.Data = append(out.Data, typ+"/"+id)
		} else {
			out.Data = append(out.Data, "unresolved")
		}
	}
	for _, n := range list(p["provision"]) {
		nm, ok := n.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: a nested provision is not an object", ErrConsent)
		}
		np, err := parseProvision(nm, depth+1)
		if err != nil {
			return nil, err
		}
		out.Provisions = append(out.Provisions, np)
	}
	return out, nil
}

// instant reads a FHIR dateTime; a partial date is widened to its start
// (or, for an end, its last instant).
func instant(v any, end bool) (time.Time, error) {
	s, ok := v.(string)
	if !ok || s == "" {
		return time.Time{}, nil
	}
	for _, l := range []struct {
		layout string
		next   func(time.Time) time.Time
	}{
		{time.RFC3339Nano, func(t time.Time) time.Time { return t }},
		{"2006-01-02", func(t time.Time) time.Time { return t.AddDate(0, 0, 1).Add(-time.Nanosecond) }},
		{"2006-01", func(t time.Time) time.Time { return t.AddDate(0, 1, 0).Add(-time.Nanosecond) }},
		{"2006", func(t time.Time) time.Time { return t.AddDate(1, 0, 0).Add(-time.Nanosecond) }},
	} {
		if t, err := time.Parse(l.layout, s); err == nil {
			if end {
				t = l.next(t)
			}
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: provision period is not a FHIR dateTime", ErrConsent)
}

// localRef splits a relative or absolute reference ending in Type/id.
func localRef(ref string) (typ, id string, ok bool) {
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	parts := strings.Split(ref, "/")
	n := len(parts)
	if n < 2 || parts[n-1] == "" || !validTypeName(parts[n-2]) {
		return "", "", false
	}
	return parts[n-2], parts[n-1], true
}

func list(v any) []any {
	switch x := v.(type) {
	case []any:
		return x
	case nil:
		return nil
	default:
		return []any{x}
	}
}

// codes returns the codes of a CodeableConcept (or a list of them).
func codes(v any) []string {
	var out []string
	for _, cc := range list(v) {
		m, _ := cc.(map[string]any)
		for _, c := range list(m["coding"]) {
			cm, _ := c.(map[string]any)
			if code, _ := cm["code"].(string); code != "" {
				out = append(out, code)
			}
		}
	}
	return out
}

// consentResult gathers what the consents say about one request.
type consentResult struct {
	deny, permit []string
	research     []string
}

// evalConsents applies the active privacy consents of the target's
// patients. A consent whose deepest applicable provision is deny denies
// (any deny wins); one whose is permit permits.
func evalConsents(s Subject, a Action, t Target, f Facts, purpose string) consentResult {
	var out consentResult
	if t.Type == "Consent" {
		// Consents do not govern consents: otherwise a deny-all would
		// keep everyone, its author included, from withdrawing it.
		return out
	}
	actors := subjectRefs(s, f)
	for i := range f.Consents {
		c := &f.Consents[i]
		if !c.Active || !c.Privacy || c.Provision == nil || !slices.Contains(t.Patients, c.Patient) {
			continue
		}
		switch c.Provision.decide(actors, purpose, t, f.Now) {
		case "deny":
			out.deny = append(out.deny, ReasonConsentDeny+":"+c.ID)
		case "permit":
			out.permit = append(out.permit, ReasonConsentPermit+":"+c.ID)
			if c.Research {
				out.research = append(out.research, c.ID)
			}
		}
	}
	return out
}

func subjectRefs(s Subject, f Facts) []string {
	var out []string
	if s.Practitioner != "" {
		out = append(out, "Practitioner/"+s.Practitioner)
	}
	if s.Patient != "" && s.Role == RoleUser {
		// A clinician's patient context (EHR launch) is who they act on,
		// not who they are.
		out = append(out, "Patient/"+s.Patient)
	}
	for _, o := range f.Organizations {
		out = append(out, "Organization/"+o)
	}
	return out
}

// decide returns the type of the deepest provision that applies to the
// request ("" when the root does not apply).
func (p *Provision) decide(actors []string, purpose string, t Target, now time.Time) string {
	if !p.applies(actors, purpose, t, now) {
		return ""
	}
	out := p.Type
	for _, n := range p.Provisions {
		if r := n.decide(actors, purpose, t, now); r != "" {
			if r == "deny" {
				return "deny" // any deny wins among siblings
			}
			out = r
		}
	}
	return out
}

func (p *Provision) applies(actors []string, purpose string, t Target, now time.Time) bool {
	if !p.Start.IsZero() && now.Before(p.Start) || !p.End.IsZero() && now.After(p.End) {
		return false
	}
	if len(p.Actors) > 0 && !intersects(p.Actors, actors) {
		return false
	}
	if len(p.Purposes) > 0 && !slices.Contains(p.Purposes, purpose) {
		return false
	}
	if len(p.Classes) > 0 && !slices.Contains(p.Classes, t.Type) {
		return false
	}
	if len(p.Labels) > 0 && !intersects(p.Labels, t.Labels) {
		return false
	}
	if len(p.Data) > 0 && !slices.Contains(p.Data, t.Type+"/"+t.ID) {
		return false
	}
	return true
}
