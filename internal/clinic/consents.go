package clinic

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/wardhealth/ward/internal/records"
)

// Systems of the facade's Consents.
const (
	systemScope       = "http://terminology.hl7.org/CodeSystem/consentscope"
	systemActReason   = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	SystemConsentType = "https://wardhealth.org/fhir/CodeSystem/consent-type"
	SystemLegalBasis  = "https://wardhealth.org/fhir/CodeSystem/legal-basis"
	// RevocationURL is the extension recording a revocation (revokedAt,
	// reason): R4 Consent has no element for it.
	RevocationURL = "https://wardhealth.org/fhir/StructureDefinition/consent-revocation"
)

// consentUse is how each consent type is written so that Ward's access
// decision reads it: research is a research-scoped consent permitting
// purpose HRESCH (what the decision requires for research access);
// marketing a privacy consent permitting purpose HMARKT (no request of
// another purpose matches it); treatment is scope treatment, which
// records the agreement and, as in Ward's decision, does not govern access.
var consentUse = map[string]struct{ scope, purpose string }{
	"treatment": {"treatment", "TREAT"},
	"research":  {"research", "HRESCH"},
	"marketing": {"patient-privacy", "HMARKT"},
}

var consentFields = map[string]string{
	"Consent.patient": "patient_id", "Consent.provision.period": "start", "Consent.policyRule": "legal_basis",
	"Consent.verification": "witness", "Consent.sourceAttachment": "signed_form",
}

func consentToFHIR(m *Consent, now time.Time) (map[string]any, error) {
	use := consentUse[m.Type]
	period := map[string]any{}
	start := m.Start
	if start == "" {
		start = now.UTC().Format("2006-01-02")
	}
	period["start"] = start
	if m.End != "" {
		if m.End < start {
			return nil, invalidField("end", "must not be before start")
		}
		period["end"] = m.End
	}
	doc := map[string]any{"resourceType": "Consent", "status": "active",
		"scope": concept(systemScope, use.scope, ""),
		"category": []any{concept("http://loinc.org", "59284-0", ""),
			concept(SystemConsentType, m.Type, "")},
		"patient":    map[string]any{"reference": "Patient/" + m.PatientID},
		"dateTime":   now.UTC().Format(time.RFC3339),
		"policyRule": concept(SystemLegalBasis, m.LegalBasis, ""),
		"provision": map[string]any{"type": "permit", "period": period,
			"purpose": []any{map[string]any{"system": systemActReason, "code": use.purpose}}},
	}
	if m.Witness != "" {
		doc["verification"] = []any{map[string]any{"verified": true, "verifiedWith": map[string]any{"display": m.Witness}}}
	}
	if f := m.SignedForm; f != nil {
		if f.Data == "" {
			return nil, invalidField("signed_form.data", "is required")
		}
		raw, err := base64.StdEncoding.DecodeString(f.Data)
		if err != nil || len(raw) == 0 {
			return nil, invalidField("signed_form.data", "must be base64")
		}
		att := map[string]any{"contentType": f.ContentType, "data": f.Data, "size": len(raw)}
		if f.Title != "" {
			att["title"] = f.Title
		}
		doc["sourceAttachment"] = att
	}
	return doc, nil
}

func consentFromFHIR(res *records.Resource) (Consent, error) {
	doc, err := decodeDoc(res)
	if err != nil {
		return Consent{}, err
	}
	m := Consent{ID: res.ID, PatientID: refID(doc["patient"], "Patient"), Status: str(doc, "status"), DateTime: str(doc, "dateTime")}
	for _, cat := range list(doc["category"]) {
		if code, _ := firstCode(cat, SystemConsentType); code != "" {
			m.Type = code
		}
	}
	m.LegalBasis, _ = firstCode(doc["policyRule"], SystemLegalBasis)
	per := obj(obj(doc["provision"])["period"])
	m.Start, m.End = str(per, "start"), str(per, "end")
	if vs := list(doc["verification"]); len(vs) > 0 {
		m.Witness = str(obj(obj(vs[0])["verifiedWith"]), "display")
	}
	if att := obj(doc["sourceAttachment"]); att != nil {
		size, _ := att["size"].(float64)
		m.SignedForm = &Attachment{ContentType: str(att, "contentType"), Title: str(att, "title"), Size: int(size)}
		if n, ok := att["size"].(interface{ Int64() (int64, error) }); ok {
			v, _ := n.Int64()
			m.SignedForm.Size = int(v)
		}
	}
	for _, e := range list(doc["extension"]) {
		em := obj(e)
		if str(em, "url") != RevocationURL {
			continue
		}
		for _, x := range list(em["extension"]) {
			xm := obj(x)
			switch str(xm, "url") {
			case "revokedAt":
				m.RevokedAt = str(xm, "valueDateTime")
			case "reason":
				m.RevocationReason = str(xm, "valueString")
			}
		}
	}
	return m, nil
}

func (a *API) grantConsent(c *call) error {
	var m Consent
	if err := c.decode(&m); err != nil {
		return err
	}
	doc, err := consentToFHIR(&m, a.o.Now())
	if err != nil {
		return err
	}
	return createFrom(c, doc, "/consents/", consentFromFHIR)
}

// revokeConsent sets status inactive (R4: the consent is no longer in
// force) and records when and why; the commit invalidates the cached
// consents of the patient on every node, so access decisions see it at
// once.
func (a *API) revokeConsent(c *call) error {
	id, err := c.pathID()
	if err != nil {
		return err
	}
	var rv Revocation
	if err := c.decode(&rv); err != nil {
		return err
	}
	cur, err := c.repo.Read(c.r.Context(), "Consent", id)
	if err != nil {
		return err
	}
	doc, err := decodeDoc(cur)
	if err != nil {
		return err
	}
	if str(doc, "status") != "active" {
		return newProblem("conflict", "the consent is not active")
	}
	doc["status"] = "inactive"
	doc["extension"] = append(list(doc["extension"]), map[string]any{"url": RevocationURL, "extension": []any{
		map[string]any{"url": "revokedAt", "valueDateTime": a.o.Now().UTC().Format(time.RFC3339)},
		map[string]any{"url": "reason", "valueString": rv.Reason},
	}})
	res, err := c.resource(doc)
	if err != nil {
		return err
	}
	out, _, err := c.repo.Update(c.r.Context(), res, &cur.Version)
	if err != nil {
		return err
	}
	return writeFrom(c, http.StatusOK, "", out, consentFromFHIR)
}

func (a *API) listConsents(c *call) error {
	pid := c.r.URL.Query().Get("patient_id")
	if pid == "" {
		return newProblem("invalid-query", "patient_id: required", FieldError{"patient_id", "is required"})
	}
	limit, err := c.limit()
	if err != nil {
		return err
	}
	pg, err := c.searchPage(c.r.Context(), "consents", "Consent", url.Values{"patient": {"Patient/" + pid}}, limit)
	if err != nil {
		return err
	}
	out := ConsentList{Items: []Consent{}, NextCursor: pg.next}
	for i := range pg.res {
		m, err := consentFromFHIR(&pg.res[i])
		if err != nil {
			return err
		}
		out.Items = append(out.Items, m)
	}
	return c.writeJSON(http.StatusOK, out)
}

// consentStatus answers, in one call, which uses the patient's active
// consents permit today and until when. The patient is read first, so the
// caller gets what a read of the Patient would get (403/404) otherwise.
func (a *API) consentStatus(c *call) error {
	id, err := c.pathID()
	if err != nil {
		return err
	}
	if _, err := c.repo.Read(c.r.Context(), "Patient", id); err != nil {
		return err
	}
	now := a.o.Now().UTC()
	today := now.Format("2006-01-02")
	st := ConsentStatus{PatientID: id, AsOf: now.Format(time.RFC3339), Uses: map[string]UseStatus{}}
	for use := range consentUse {
		st.Uses[use] = UseStatus{}
	}
	open := map[string]bool{}
	vals := url.Values{"patient": {"Patient/" + id}, "status": {"active"}}
	var next []any
	for {
		pg, err := c.search(c.r.Context(), "Consent", vals, 1000, next)
		if err != nil {
			return err
		}
		for i := range pg.Resources {
			m, err := consentFromFHIR(&pg.Resources[i])
			if err != nil {
				return err
			}
			u, ok := st.Uses[m.Type]
			if !ok || m.Start > today || m.End != "" && m.End < today {
				continue
			}
			u.Permitted = true
			u.ConsentIDs = append(u.ConsentIDs, m.ID)
			if m.End == "" {
				open[m.Type] = true
			} else if m.End > u.Until {
				u.Until = m.End
			}
			st.Uses[m.Type] = u
		}
		if pg.NextKeys == nil {
			break
		}
		next = pg.NextKeys
	}
	for use, u := range st.Uses {
		if open[use] {
			u.Until = ""
		}
		slices.Sort(u.ConsentIDs)
		st.Uses[use] = u
	}
	return c.writeJSON(http.StatusOK, st)
}
