package loadgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
)

// Synthetic data. Every name, street and city is made by joining invented
// syllables; numbers come from ranges that are reserved or never issued:
//
//   - SSN-style identifiers use area 900-999 with group 01-49: never issued
//     as SSNs and outside the ITIN group ranges (50-65, 70-88, 90-92, 94-99);
//   - phone numbers are 555-0100..555-0199, reserved for fiction;
//   - e-mail addresses are at example.com (RFC 2606).
//
// The generated resource sticks to standard FHIR R4 Patient elements and
// core extensions (patient-mothersMaidenName, patient-birthPlace); it has no
// id and no meta, so it is a valid body for a create.

var (
	syllables = []string{
		"ka", "lo", "mi", "ren", "dar", "vel", "tho", "sa", "nia", "bre",
		"quin", "zo", "fa", "lin", "mor", "ta", "ris", "el", "an", "jo",
		"ve", "nu", "sel", "dra", "cor", "pe", "wyn", "ba", "gi", "ost",
		"ha", "lu", "rim", "tes", "vo", "mar", "ilo", "ka", "pra", "shen",
	}
	streetKinds = []string{"Street", "Avenue", "Road", "Lane", "Way", "Court", "Drive", "Place"}
	citySuffix  = []string{"ton", "ville", "ford", "burg", " Falls", " Springs", "field", " Harbor"}
	states      = []string{"AK", "AZ", "CA", "CO", "GA", "IL", "MA", "MI", "MN", "NC", "NM", "NY", "OH", "OR", "PA", "TX", "VA", "WA", "WI"}
	genders     = []string{"male", "female", "other", "unknown"}
	prefixes    = map[string][]string{"male": {"Mr."}, "female": {"Ms.", "Mrs."}, "other": {"Mx."}, "unknown": {"Mx."}}
	marital     = []coding{
		{"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "M", "Married"},
		{"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "S", "Never Married"},
		{"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "D", "Divorced"},
		{"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "W", "Widowed"},
		{"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "T", "Domestic partner"},
		{"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "U", "unmarried"},
	}
	languages = []coding{
		{"urn:ietf:bcp:47", "en-US", "English (United States)"},
		{"urn:ietf:bcp:47", "es", "Spanish"},
		{"urn:ietf:bcp:47", "fr", "French"},
		{"urn:ietf:bcp:47", "de", "German"},
		{"urn:ietf:bcp:47", "vi", "Vietnamese"},
		{"urn:ietf:bcp:47", "zh", "Chinese"},
	}
	contactRel = []coding{
		{"http://terminology.hl7.org/CodeSystem/v2-0131", "N", "Next-of-Kin"},
		{"http://terminology.hl7.org/CodeSystem/v2-0131", "C", "Emergency Contact"},
	}
)

const (
	identifierTypeSystem = "http://terminology.hl7.org/CodeSystem/v2-0203"
	ssnSystem            = "http://hl7.org/fhir/sid/us-ssn"
	mrnSystem            = "http://example.org/fhir/sid/mrn"
	xhtmlOpen            = `<div xmlns="http://www.w3.org/1999/xhtml">`
	xhtmlClose           = `</div>`

	// Target body size: synthTargetMin + [0, synthTargetJitter). The
	// resource without the padding note is ~1,800-1,950 bytes.
	synthTargetMin    = 2040
	synthTargetJitter = 160
)

type coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

type codeableConcept struct {
	Coding []coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

type identifier struct {
	Use    string           `json:"use,omitempty"`
	Type   *codeableConcept `json:"type,omitempty"`
	System string           `json:"system,omitempty"`
	Value  string           `json:"value,omitempty"`
}

type humanName struct {
	Use    string   `json:"use,omitempty"`
	Family string   `json:"family,omitempty"`
	Given  []string `json:"given,omitempty"`
	Prefix []string `json:"prefix,omitempty"`
}

type contactPoint struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value,omitempty"`
	Use    string `json:"use,omitempty"`
	Rank   int    `json:"rank,omitempty"`
}

type address struct {
	Use        string   `json:"use,omitempty"`
	Type       string   `json:"type,omitempty"`
	Line       []string `json:"line,omitempty"`
	City       string   `json:"city,omitempty"`
	State      string   `json:"state,omitempty"`
	PostalCode string   `json:"postalCode,omitempty"`
	Country    string   `json:"country,omitempty"`
}

type extension struct {
	URL          string   `json:"url"`
	ValueString  string   `json:"valueString,omitempty"`
	ValueAddress *address `json:"valueAddress,omitempty"`
}

type narrative struct {
	Status string `json:"status"`
	Div    string `json:"div"`
}

type patientContact struct {
	Relationship []codeableConcept `json:"relationship,omitempty"`
	Name         *humanName        `json:"name,omitempty"`
	Telecom      []contactPoint    `json:"telecom,omitempty"`
	Gender       string            `json:"gender,omitempty"`
}

type patientCommunication struct {
	Language  codeableConcept `json:"language"`
	Preferred bool            `json:"preferred"`
}

type patient struct {
	ResourceType  string                 `json:"resourceType"`
	Text          narrative              `json:"text"`
	Extension     []extension            `json:"extension,omitempty"`
	Identifier    []identifier           `json:"identifier,omitempty"`
	Active        bool                   `json:"active"`
	Name          []humanName            `json:"name,omitempty"`
	Telecom       []contactPoint         `json:"telecom,omitempty"`
	Gender        string                 `json:"gender,omitempty"`
	BirthDate     string                 `json:"birthDate,omitempty"`
	Address       []address              `json:"address,omitempty"`
	MaritalStatus *codeableConcept       `json:"maritalStatus,omitempty"`
	Contact       []patientContact       `json:"contact,omitempty"`
	Communication []patientCommunication `json:"communication,omitempty"`
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// word returns an invented, capitalized word of n syllables.
func word(r *rand.Rand, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(pick(r, syllables))
	}
	s := b.String()
	return strings.ToUpper(s[:1]) + s[1:]
}

func name(r *rand.Rand) string { return word(r, 2+r.IntN(2)) }

func digits(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + r.IntN(10))
	}
	return string(b)
}

func phone(r *rand.Rand) string {
	return fmt.Sprintf("+1-%d-555-01%02d", 201+r.IntN(789), r.IntN(100))
}

func date(r *rand.Rand, fromYear, years int) string {
	return fmt.Sprintf("%04d-%02d-%02d", fromYear+r.IntN(years), 1+r.IntN(12), 1+r.IntN(28))
}

func invAddress(r *rand.Rand) address {
	a := address{
		Use:        "home",
		Type:       "both",
		Line:       []string{fmt.Sprintf("%d %s %s", 1+r.IntN(9899), word(r, 2), pick(r, streetKinds))},
		City:       word(r, 2) + pick(r, citySuffix),
		State:      pick(r, states),
		PostalCode: digits(r, 5),
		Country:    "US",
	}
	if r.IntN(3) == 0 {
		a.Line = append(a.Line, fmt.Sprintf("Apt %d", 1+r.IntN(400)))
	}
	return a
}

// SyntheticPatient returns a FHIR R4 Patient resource (JSON, no id, no meta)
// of 2,040..2,199 bytes, made entirely of invented data drawn from r. The
// same sequence of r yields the same bytes. r is used and advanced; it must
// not be shared between goroutines.
func SyntheticPatient(r *rand.Rand) []byte { return buildPatient(r, false) }

// RealisticPatient returns the create body of issue #24, the shape real
// registration systems send: a Patient of 2,040..2,199 bytes with two names
// (official and maiden or nickname), two identifiers (MRN and SSN-style),
// three telecoms (mobile and home phone, e-mail), an address and a contact,
// all invented and drawn from r like SyntheticPatient. ward bench posts it.
func RealisticPatient(r *rand.Rand) []byte { return buildPatient(r, true) }

func buildPatient(r *rand.Rand, realistic bool) []byte {
	gender := pick(r, genders)
	given, middle, family := name(r), name(r), name(r)
	maiden := name(r)
	mrn := "MRN" + digits(r, 9)
	ssn := fmt.Sprintf("%03d-%02d-%s", 900+r.IntN(100), 1+r.IntN(49), digits(r, 4))
	birth := date(r, 1930, 90)
	home := invAddress(r)
	ms := pick(r, marital)
	lang := pick(r, languages)
	contactGiven, contactFamily := name(r), name(r)
	birthCity := word(r, 2) + pick(r, citySuffix)
	birthState := pick(r, states)
	emailUser := strings.ToLower(given + "." + family)

	p := patient{
		ResourceType: "Patient",
		Extension: []extension{
			{URL: "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName", ValueString: maiden},
			{URL: "http://hl7.org/fhir/StructureDefinition/patient-birthPlace", ValueAddress: &address{City: birthCity, State: birthState, Country: "US"}},
		},
		Identifier: []identifier{
			{
				Type:   &codeableConcept{Coding: []coding{{identifierTypeSystem, "MR", "Medical Record Number"}}},
				System: mrnSystem,
				Value:  mrn,
			},
			{
				Type:   &codeableConcept{Coding: []coding{{identifierTypeSystem, "SS", "Social Security number"}}},
				System: ssnSystem,
				Value:  ssn,
			},
		},
		Active: true,
		Name: []humanName{
			{Use: "official", Family: family, Given: []string{given, middle}, Prefix: []string{pick(r, prefixes[gender])}},
		},
		Telecom: []contactPoint{
			{System: "phone", Value: phone(r), Use: "mobile", Rank: 1},
			{System: "email", Value: fmt.Sprintf("%s%d@example.com", emailUser, r.IntN(100)), Use: "home", Rank: 2},
		},
		Gender:        gender,
		BirthDate:     birth,
		Address:       []address{home},
		MaritalStatus: &codeableConcept{Coding: []coding{ms}, Text: ms.Display},
		Contact: []patientContact{{
			Relationship: []codeableConcept{{Coding: []coding{pick(r, contactRel)}}},
			Name:         &humanName{Family: contactFamily, Given: []string{contactGiven}},
			Telecom:      []contactPoint{{System: "phone", Value: phone(r), Use: "home"}},
			Gender:       pick(r, genders[:2]),
		}},
		Communication: []patientCommunication{{
			Language:  codeableConcept{Coding: []coding{lang}, Text: lang.Display},
			Preferred: true,
		}},
	}

	summary := fmt.Sprintf(`<p><b>%s %s %s</b> (synthetic), %s, born %s, %s. %s, %s %s.</p>`,
		given, middle, family, gender, birth, mrn, home.City, home.State, home.PostalCode)
	if realistic {
		second := humanName{Use: "maiden", Family: maiden, Given: []string{given}}
		if gender == "male" {
			second = humanName{Use: "nickname", Family: family, Given: []string{name(r)}}
		}
		p.Name = append(p.Name, second)
		p.Telecom = []contactPoint{p.Telecom[0], {System: "phone", Value: phone(r), Use: "home", Rank: 2}, p.Telecom[1]}
		p.Telecom[2].Rank = 3
	}
	p.Text = narrative{Status: "generated", Div: xhtmlOpen + summary + xhtmlClose}
	target := synthTargetMin + r.IntN(synthTargetJitter)

	base := encode(&p)
	// Pad the narrative with an invented note (ASCII letters, spaces and
	// periods only, so it needs no escaping) to hit the target size exactly.
	const noteOpen, noteClose = "<p>", "</p>"
	if pad := target - len(base) - len(noteOpen) - len(noteClose); pad > 0 {
		p.Text.Div = xhtmlOpen + summary + noteOpen + filler(r, pad) + noteClose + xhtmlClose
		return encode(&p)
	}
	return base
}

// filler returns exactly n bytes of invented prose.
func filler(r *rand.Rand, n int) string {
	var b strings.Builder
	b.Grow(n + 16)
	b.WriteString("Note.")
	for b.Len() < n {
		b.WriteByte(' ')
		b.WriteString(strings.ToLower(word(r, 1+r.IntN(3))))
		if r.IntN(8) == 0 {
			b.WriteByte('.')
		}
	}
	s := b.String()[:n]
	if strings.HasSuffix(s, " ") {
		s = s[:n-1] + "."
	}
	return s
}

func encode(p *patient) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		panic("loadgen: encoding synthetic patient: " + err.Error()) // cannot happen: plain structs
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// SyntheticTransaction returns a transaction Bundle of n entries (n a
// multiple of 4): each group of four is a SyntheticPatient posted with a
// urn:uuid fullUrl and three heart-rate Observations that refer to it by
// that urn, so the server must resolve and rewrite the references.
func SyntheticTransaction(r *rand.Rand, n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"resourceType":"Bundle","type":"transaction","entry":[`)
	var urn string
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		if i%4 == 0 {
			urn = "urn:uuid:" + uuidFrom(r)
			fmt.Fprintf(&b, `{"fullUrl":%q,"resource":%s,"request":{"method":"POST","url":"Patient"}}`, urn, SyntheticPatient(r))
			continue
		}
		fmt.Fprintf(&b, `{"resource":{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},"subject":{"reference":%q},"effectiveDateTime":%q,"valueQuantity":{"value":%d,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}},"request":{"method":"POST","url":"Observation"}}`,
			urn, date(r, 2016, 10), 45+r.IntN(90))
	}
	b.WriteString(`]}`)
	return b.Bytes()
}
