package clinic

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/wardhealth/ward/internal/records"
)

// Code systems of Immunization.
const (
	SystemCVX         = "http://hl7.org/fhir/sid/cvx"
	systemActSite     = "http://terminology.hl7.org/CodeSystem/v3-ActSite"
	systemRoute       = "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration"
	systemErrorReason = "https://wardhealth.org/fhir/CodeSystem/entered-in-error-reason"
	systemUCUM        = "http://unitsofmeasure.org"
)

var immunizationFields = map[string]string{
	"Immunization.patient": "patient_id", "Immunization.vaccineCode": "vaccine_code", "Immunization.occurrence": "occurred_on",
	"Immunization.lotNumber": "lot_number", "Immunization.site": "site", "Immunization.route": "route",
	"Immunization.performer": "performer", "Immunization.reaction": "reactions", "Immunization.expirationDate": "expiration_date",
}

func immunizationToFHIR(m *Immunization, id string) map[string]any {
	doc := map[string]any{"resourceType": "Immunization", "status": "completed",
		"vaccineCode":        concept(SystemCVX, m.VaccineCode, m.VaccineName),
		"patient":            map[string]any{"reference": "Patient/" + m.PatientID},
		"occurrenceDateTime": m.OccurredOn, "primarySource": true}
	if id != "" {
		doc["id"] = id
	}
	if m.LotNumber != "" {
		doc["lotNumber"] = m.LotNumber
	}
	if m.ExpirationDate != "" {
		doc["expirationDate"] = m.ExpirationDate
	}
	if m.Site != "" {
		doc["site"] = concept(systemActSite, m.Site, "")
	}
	if m.Route != "" {
		doc["route"] = concept(systemRoute, m.Route, "")
	}
	if m.DoseML > 0 {
		doc["doseQuantity"] = map[string]any{"value": m.DoseML, "unit": "mL", "system": systemUCUM, "code": "mL"}
	}
	if m.Performer != "" {
		doc["performer"] = []any{map[string]any{"actor": map[string]any{"reference": "Practitioner/" + m.Performer}}}
	}
	var rs []any
	for _, r := range m.Reactions {
		// R4 keeps a reaction's finding in an Observation; the facade's
		// description is the reference's display, so one dose stays one
		// resource.
		x := map[string]any{"detail": map[string]any{"display": r.Description}}
		if r.Date != "" {
			x["date"] = r.Date
		}
		if r.Reported {
			x["reported"] = true
		}
		rs = append(rs, x)
	}
	if len(rs) > 0 {
		doc["reaction"] = rs
	}
	return doc
}

func immunizationFromFHIR(res *records.Resource) (Immunization, error) {
	doc, err := decodeDoc(res)
	if err != nil {
		return Immunization{}, err
	}
	m := Immunization{ID: res.ID, PatientID: refID(doc["patient"], "Patient"), Status: str(doc, "status"),
		LotNumber: str(doc, "lotNumber"), ExpirationDate: str(doc, "expirationDate"), Performer: "",
		Version: version(res), UpdatedAt: res.LastUpdated.UTC().Format(time.RFC3339)}
	m.VaccineCode, m.VaccineName = firstCode(doc["vaccineCode"], SystemCVX)
	if occ := str(doc, "occurrenceDateTime"); len(occ) >= 10 {
		m.OccurredOn = occ[:10]
	}
	m.Site, _ = firstCode(doc["site"], systemActSite)
	m.Route, _ = firstCode(doc["route"], systemRoute)
	if m.Status == "entered-in-error" {
		m.ErrorReason, _ = firstCode(doc["statusReason"], systemErrorReason)
	}
	if dq := obj(doc["doseQuantity"]); dq != nil {
		switch v := dq["value"].(type) {
		case float64:
			m.DoseML = v
		case interface{ String() string }:
			m.DoseML, _ = strconv.ParseFloat(v.String(), 64)
		}
	}
	if ps := list(doc["performer"]); len(ps) > 0 {
		m.Performer = refID(obj(ps[0])["actor"], "Practitioner")
	}
	for _, r := range list(doc["reaction"]) {
		rm := obj(r)
		x := Reaction{Description: str(obj(rm["detail"]), "display")}
		if d := str(rm, "date"); len(d) >= 10 {
			x.Date = d[:10]
		}
		x.Reported, _ = rm["reported"].(bool)
		m.Reactions = append(m.Reactions, x)
	}
	return m, nil
}

func (a *API) createImmunization(c *call) error {
	var m Immunization
	if err := c.decode(&m); err != nil {
		return err
	}
	return createFrom(c, immunizationToFHIR(&m, ""), "/immunizations/", immunizationFromFHIR)
}

func (a *API) getImmunization(c *call) error { return readAs(c, "Immunization", immunizationFromFHIR) }

func (a *API) updateImmunization(c *call) error {
	id, err := c.pathID()
	if err != nil {
		return err
	}
	match, err := c.ifMatch()
	if err != nil {
		return err
	}
	var m Immunization
	if err := c.decode(&m); err != nil {
		return err
	}
	res, err := c.resource(immunizationToFHIR(&m, id))
	if err != nil {
		return err
	}
	if match == nil {
		// Updating an id that does not exist is not a way to create.
		cur, err := c.repo.Read(c.r.Context(), "Immunization", id)
		if err != nil {
			return err
		}
		match = &cur.Version
	}
	out, _, err := c.repo.Update(c.r.Context(), res, match)
	if err != nil {
		return err
	}
	return writeFrom(c, http.StatusOK, "", out, immunizationFromFHIR)
}

// retractImmunization is DELETE /immunizations/{id}: status
// entered-in-error with the reason as statusReason; the dose stays in
// history.
func (a *API) retractImmunization(c *call) error {
	id, err := c.pathID()
	if err != nil {
		return err
	}
	reason := c.r.URL.Query().Get("reason")
	allowed := []string{"wrong-patient", "duplicate", "wrong-vaccine", "data-entry-error", "other"}
	if !contains(allowed, reason) {
		return newProblem("invalid-query", "reason: required, one of wrong-patient, duplicate, wrong-vaccine, data-entry-error, other", FieldError{"reason", "required, one of the documented codes"})
	}
	cur, err := c.repo.Read(c.r.Context(), "Immunization", id)
	if err != nil {
		return err
	}
	doc, err := decodeDoc(cur)
	if err != nil {
		return err
	}
	doc["status"] = "entered-in-error"
	doc["statusReason"] = concept(systemErrorReason, reason, "")
	res, err := c.resource(doc)
	if err != nil {
		return err
	}
	out, _, err := c.repo.Update(c.r.Context(), res, &cur.Version)
	if err != nil {
		return err
	}
	return writeFrom(c, http.StatusOK, "", out, immunizationFromFHIR)
}

// listImmunizations is a FHIR search of Immunization in Ward's keyset
// order, paged by Ward's cursor (sealed).
func (a *API) listImmunizations(c *call) error {
	q := c.r.URL.Query()
	vals := url.Values{}
	if v := q.Get("patient_id"); v != "" {
		vals.Set("patient", "Patient/"+v)
	}
	if v := q.Get("vaccine_code"); v != "" {
		vals.Set("vaccine-code", SystemCVX+"|"+v)
	}
	for k, prefix := range map[string]string{"from": "ge", "to": "le"} {
		if v := q.Get(k); v != "" {
			if checkFormat("date", v) != "" {
				return newProblem("invalid-query", k+": must be a date (YYYY-MM-DD)", FieldError{k, "must be a date (YYYY-MM-DD)"})
			}
			vals.Add("date", prefix+v)
		}
	}
	limit, err := c.limit()
	if err != nil {
		return err
	}
	pg, err := c.searchPage(c.r.Context(), "immunizations", "Immunization", vals, limit)
	if err != nil {
		return err
	}
	out := ImmunizationList{Items: []Immunization{}, NextCursor: pg.next}
	for i := range pg.res {
		m, err := immunizationFromFHIR(&pg.res[i])
		if err != nil {
			return err
		}
		out.Items = append(out.Items, m)
	}
	return c.writeJSON(http.StatusOK, out)
}
