package clinic

import (
	"cmp"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/records"
)

// The systems the facade writes.
const (
	SystemMRN = "https://wardhealth.org/fhir/sid/mrn"
	systemV2  = "http://terminology.hl7.org/CodeSystem/v2-0203"
)

// patientFields maps the FHIR paths of a Patient to the facade's fields.
var patientFields = map[string]string{
	"Patient.name": "last_name", "Patient.name[0].family": "last_name", "Patient.name[0].given": "first_name",
	"Patient.birthDate": "date_of_birth", "Patient.gender": "sex", "Patient.identifier": "mrn",
	"Patient.telecom": "phone", "Patient.address": "address",
}

func patientToFHIR(p *Patient, id string, active bool) map[string]any {
	given := []any{p.FirstName}
	if p.MiddleName != "" {
		given = append(given, p.MiddleName)
	}
	doc := map[string]any{"resourceType": "Patient", "active": active,
		"name":      []any{map[string]any{"use": "official", "family": p.LastName, "given": given}},
		"birthDate": p.DateOfBirth}
	if id != "" {
		doc["id"] = id
	}
	if p.Sex != "" {
		doc["gender"] = p.Sex
	}
	if p.MRN != "" {
		doc["identifier"] = []any{map[string]any{"type": concept(systemV2, "MR", ""), "system": SystemMRN, "value": p.MRN}}
	}
	var tel []any
	if p.Phone != "" {
		tel = append(tel, map[string]any{"system": "phone", "value": p.Phone})
	}
	if p.Email != "" {
		tel = append(tel, map[string]any{"system": "email", "value": p.Email})
	}
	if len(tel) > 0 {
		doc["telecom"] = tel
	}
	if a := p.Address; a != nil {
		ad := map[string]any{"use": "home"}
		var lines []any
		for _, l := range []string{a.Line1, a.Line2} {
			if l != "" {
				lines = append(lines, l)
			}
		}
		if len(lines) > 0 {
			ad["line"] = lines
		}
		for k, v := range map[string]string{"city": a.City, "state": a.State, "postalCode": a.PostalCode, "country": a.Country} {
			if v != "" {
				ad[k] = v
			}
		}
		if len(ad) > 1 {
			doc["address"] = []any{ad}
		}
	}
	return doc
}

func patientFromFHIR(res *records.Resource) (Patient, error) {
	doc, err := decodeDoc(res)
	if err != nil {
		return Patient{}, err
	}
	p := Patient{ID: res.ID, DateOfBirth: str(doc, "birthDate"), Sex: str(doc, "gender"), Version: version(res),
		UpdatedAt: res.LastUpdated.UTC().Format(time.RFC3339)}
	active := true
	if b, ok := doc["active"].(bool); ok {
		active = b
	}
	p.Active = &active
	if names := list(doc["name"]); len(names) > 0 {
		n := obj(names[0])
		p.LastName = str(n, "family")
		given := list(n["given"])
		if len(given) > 0 {
			p.FirstName, _ = given[0].(string)
		}
		var mid []string
		for _, g := range given[min(1, len(given)):] {
			if s, ok := g.(string); ok {
				mid = append(mid, s)
			}
		}
		p.MiddleName = strings.Join(mid, " ")
	}
	for _, i := range list(doc["identifier"]) {
		if im := obj(i); str(im, "system") == SystemMRN {
			p.MRN = str(im, "value")
		}
	}
	for _, t := range list(doc["telecom"]) {
		tm := obj(t)
		switch str(tm, "system") {
		case "phone":
			if p.Phone == "" {
				p.Phone = str(tm, "value")
			}
		case "email":
			if p.Email == "" {
				p.Email = str(tm, "value")
			}
		}
	}
	if addrs := list(doc["address"]); len(addrs) > 0 {
		am := obj(addrs[0])
		a := &Address{City: str(am, "city"), State: str(am, "state"), PostalCode: str(am, "postalCode"), Country: str(am, "country")}
		lines := list(am["line"])
		if len(lines) > 0 {
			a.Line1, _ = lines[0].(string)
		}
		if len(lines) > 1 {
			a.Line2, _ = lines[1].(string)
		}
		p.Address = a
	}
	return p, nil
}

func (a *API) createPatient(c *call) error {
	var p Patient
	if err := c.decode(&p); err != nil {
		return err
	}
	return createFrom(c, patientToFHIR(&p, "", true), "/patients/", patientFromFHIR)
}

func (a *API) getPatient(c *call) error { return readAs(c, "Patient", patientFromFHIR) }

func (a *API) updatePatient(c *call) error {
	id, err := c.pathID()
	if err != nil {
		return err
	}
	match, err := c.ifMatch()
	if err != nil {
		return err
	}
	var p Patient
	if err := c.decode(&p); err != nil {
		return err
	}
	// The facade keeps the patient's active flag: deactivation is DELETE.
	cur, err := c.repo.Read(c.r.Context(), "Patient", id)
	if err != nil {
		return err
	}
	old, err := patientFromFHIR(cur)
	if err != nil {
		return err
	}
	if match == nil {
		match = &cur.Version
	}
	res, err := c.resource(patientToFHIR(&p, id, *old.Active))
	if err != nil {
		return err
	}
	out, _, err := c.repo.Update(c.r.Context(), res, match)
	if err != nil {
		return err
	}
	return writeFrom(c, http.StatusOK, "", out, patientFromFHIR)
}

// deactivatePatient is DELETE /patients/{id}: a new version with
// active=false; the record and its history stay (a FHIR delete would hide
// the patient from every read).
func (a *API) deactivatePatient(c *call) error {
	id, err := c.pathID()
	if err != nil {
		return err
	}
	cur, err := c.repo.Read(c.r.Context(), "Patient", id)
	if err != nil {
		return err
	}
	doc, err := decodeDoc(cur)
	if err != nil {
		return err
	}
	doc["active"] = false
	res, err := c.resource(doc)
	if err != nil {
		return err
	}
	out, _, err := c.repo.Update(c.r.Context(), res, &cur.Version)
	if err != nil {
		return err
	}
	return writeFrom(c, http.StatusOK, "", out, patientFromFHIR)
}

// searchPatients maps the facade's search to Ward's FHIR search over the
// blind indexes: name and last_name are starts-with (2 to 32 characters
// compared), the others exact. GET takes the query string; POST a JSON
// PatientQuery, which keeps names and numbers out of URLs (and so out of
// proxy and browser logs).
func (a *API) searchPatients(c *call) error {
	var pq PatientQuery
	if c.r.Method == http.MethodPost {
		if err := c.decode(&pq); err != nil {
			return err
		}
		if pq.Limit < 0 {
			return invalidField("limit", "must be a positive integer")
		}
		if pq.Limit == 0 {
			pq.Limit = defaultLimit
		}
		pq.Limit = min(pq.Limit, a.o.MaxLimit)
	} else {
		q := c.r.URL.Query()
		pq = PatientQuery{Name: q.Get("name"), LastName: q.Get("last_name"), DateOfBirth: q.Get("date_of_birth"), MRN: q.Get("mrn"),
			Phone: q.Get("phone"), Cursor: q.Get("cursor")}
		var err error
		if pq.Limit, err = c.limit(); err != nil {
			return err
		}
		if pq.DateOfBirth != "" && checkFormat("date", pq.DateOfBirth) != "" {
			return newProblem("invalid-query", "date_of_birth: must be a date (YYYY-MM-DD)", FieldError{"date_of_birth", "must be a date (YYYY-MM-DD)"})
		}
	}
	vals := url.Values{}
	for _, f := range []struct{ facade, fhir, v string }{
		{"name", "name", pq.Name}, {"last_name", "family", pq.LastName}, {"date_of_birth", "birthdate", pq.DateOfBirth}, {"phone", "phone", pq.Phone},
	} {
		if f.v == "" {
			continue
		}
		if (f.facade == "name" || f.facade == "last_name") && len([]rune(f.v)) < 2 {
			return newProblem("invalid-query", f.facade+": a prefix needs at least 2 characters", FieldError{f.facade, "a prefix needs at least 2 characters"})
		}
		vals.Set(f.fhir, f.v)
	}
	if pq.MRN != "" {
		vals.Set("identifier", SystemMRN+"|"+pq.MRN)
	}
	if len(vals) == 0 {
		return newProblem("invalid-query", "give at least one of name, last_name, date_of_birth, mrn, phone", FieldError{"name", "at least one search field is required"})
	}
	pg, err := c.searchPageAt(c.r.Context(), "patients-search", "Patient", vals, pq.Limit, pq.Cursor)
	if err != nil {
		return err
	}
	out := PatientList{Items: []Patient{}, NextCursor: pg.next}
	for i := range pg.res {
		p, err := patientFromFHIR(&pg.res[i])
		if err != nil {
			return err
		}
		out.Items = append(out.Items, p)
	}
	return c.writeJSON(http.StatusOK, out)
}

// sortKey is a patient's place in GET /patients.
type sortKey struct {
	Last, First, ID string
}

func keyOf(p *Patient) sortKey {
	return sortKey{strings.ToLower(p.LastName), strings.ToLower(p.FirstName), p.ID}
}

func compareKeys(a, b sortKey) int {
	return cmp.Or(strings.Compare(a.Last, b.Last), strings.Compare(a.First, b.First), strings.Compare(a.ID, b.ID))
}

// listPatients is GET /patients, sorted by last name, first name and id.
// Names are stored sealed and blind-indexed, so SQL cannot sort them: the
// candidates the caller may see (at most ListCap) are read, decrypted and
// sorted here; more candidates are refused with list-too-large (narrow the
// list with /patients/search). The cursor is the last item's sort key,
// sealed, so a page starts after it whatever was written meanwhile.
func (a *API) listPatients(c *call) error {
	limit, err := c.limit()
	if err != nil {
		return err
	}
	vals := url.Values{}
	switch act := c.r.URL.Query().Get("active"); act {
	case "", "true":
		vals.Set("active", "true")
	case "false":
		vals.Set("active", "false")
	case "any":
	default:
		return newProblem("invalid-query", "active: must be true, false or any", FieldError{"active", "must be true, false or any"})
	}
	var after *sortKey
	if cur := c.r.URL.Query().Get("cursor"); cur != "" {
		var k sortKey
		if err := a.openCursor("patients", cur, &k); err != nil {
			return newProblem("invalid-cursor", "cursor: not a cursor of this list", FieldError{"cursor", "not a cursor of this list"})
		}
		after = &k
	}
	var all []Patient
	var next []any
	for {
		vals.Set("_count", strconv.Itoa(min(a.o.ListCap+1, 1000)))
		pg, err := c.search(c.r.Context(), "Patient", vals, min(a.o.ListCap+1, 1000), next)
		if err != nil {
			return err
		}
		for i := range pg.Resources {
			p, err := patientFromFHIR(&pg.Resources[i])
			if err != nil {
				return err
			}
			all = append(all, p)
		}
		if len(all) > a.o.ListCap {
			return newProblem("list-too-large", "more than "+strconv.Itoa(a.o.ListCap)+" patients match: names are sealed, so the list is sorted from a bounded candidate set (WARD_CLINIC_LIST_CAP); narrow it with /patients/search")
		}
		if pg.NextKeys == nil {
			break
		}
		next = pg.NextKeys
	}
	slices.SortFunc(all, func(x, y Patient) int { return compareKeys(keyOf(&x), keyOf(&y)) })
	start := 0
	if after != nil {
		start, _ = slices.BinarySearchFunc(all, *after, func(p Patient, k sortKey) int {
			if compareKeys(keyOf(&p), k) <= 0 {
				return -1
			}
			return 1
		})
	}
	end := min(start+limit, len(all))
	out := PatientList{Items: all[start:end]}
	if out.Items == nil {
		out.Items = []Patient{}
	}
	if end < len(all) {
		if out.NextCursor, err = a.sealCursor("patients", keyOf(&all[end-1])); err != nil {
			return err
		}
	}
	return c.writeJSON(http.StatusOK, out)
}

// writeFrom answers with a stored resource mapped to the facade's type,
// with its ETag (and Location under prefix for a 201).
func writeFrom[T any](c *call, status int, prefix string, res *records.Resource, m func(*records.Resource) (T, error)) error {
	v, err := m(res)
	if err != nil {
		return err
	}
	c.w.Header().Set("ETag", `W/"`+version(res)+`"`)
	if prefix != "" {
		c.w.Header().Set("Location", prefix+res.ID)
	}
	return c.writeJSON(status, v)
}

var _ = fhir.IsID
