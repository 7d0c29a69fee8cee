package api_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"reflect"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/fhirxml"
)

// The XML-speaking client of these tests writes its bodies by hand and
// reads the answers with encoding/xml into a plain tree: it shares no code
// with Ward's converter.

type node struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Nodes   []node     `xml:",any"`
	Inner   string     `xml:",innerxml"`
}

func parseXML(t *testing.T, b []byte) node {
	t.Helper()
	var n node
	if err := xml.Unmarshal(b, &n); err != nil {
		t.Fatalf("answer is not XML (%v): %.400s", err, b)
	}
	return n
}

func (n node) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// all returns the descendants along path (element names).
func (n node) all(path ...string) []node {
	cur := []node{n}
	for _, p := range path {
		var next []node
		for _, c := range cur {
			for _, k := range c.Nodes {
				if k.XMLName.Local == p {
					next = append(next, k)
				}
			}
		}
		cur = next
	}
	return cur
}

func (n node) value(t *testing.T, path ...string) string {
	t.Helper()
	ns := n.all(path...)
	if len(ns) == 0 {
		t.Fatalf("no %s in <%s>", strings.Join(path, "/"), n.XMLName.Local)
	}
	return ns[0].attr("value")
}

func (n node) names() []string {
	var out []string
	for _, c := range n.Nodes {
		out = append(out, c.XMLName.Local)
	}
	return out
}

const (
	xmlCT     = "Content-Type: application/fhir+xml"
	xmlAccept = "Accept: application/fhir+xml"
)

const xmlPatient = `<?xml version="1.0" encoding="UTF-8"?>
<Patient xmlns="http://hl7.org/fhir">
  <!-- an XML client's Patient: a primitive with an id and an extension -->
  <active value="true"/>
  <name>
    <family value="Quillfeather"/>
    <given value="Oriel"/>
    <given value="Marbeck"/>
  </name>
  <gender value="female"/>
  <birthDate id="bd" value="1961-07-14">
    <extension url="http://hl7.org/fhir/StructureDefinition/patient-birthTime">
      <valueDateTime value="1961-07-14T14:35:45-05:00"/>
    </extension>
  </birthDate>
  <multipleBirthInteger value="2"/>
  <generalPractitioner><reference value="Practitioner/pract-physician"/></generalPractitioner>
</Patient>`

const xmlObservation = `<Observation xmlns="http://hl7.org/fhir">
  <text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>Weight <b>72.50</b> kg</p></div></text>
  <status value="final"/>
  <code><coding><system value="http://loinc.org"/><code value="29463-7"/></coding></code>
  <subject><reference value="Patient/PID"/></subject>
  <effectiveDateTime value="2024-01-02T10:00:00Z"/>
  <valueQuantity><value value="72.50"/><unit value="kg"/><system value="http://unitsofmeasure.org"/><code value="kg"/></valueQuantity>
</Observation>`

const xmlTransaction = `<Bundle xmlns="http://hl7.org/fhir">
  <type value="transaction"/>
  <entry>
    <fullUrl value="urn:uuid:7f3c5a90-1d2e-4b8a-9c61-0a1b2c3d4e5f"/>
    <resource>
      <Patient>
        <name><family value="Brightwater"/><given value="Isolde"/></name>
        <gender value="female"/>
        <generalPractitioner><reference value="Practitioner/pract-physician"/></generalPractitioner>
      </Patient>
    </resource>
    <request><method value="POST"/><url value="Patient"/></request>
  </entry>
  <entry>
    <fullUrl value="urn:uuid:0c9e8d7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f"/>
    <resource>
      <Observation>
        <status value="final"/>
        <code><text value="heart rate"/></code>
        <subject><reference value="urn:uuid:7f3c5a90-1d2e-4b8a-9c61-0a1b2c3d4e5f"/></subject>
        <valueQuantity><value value="61.0"/><unit value="/min"/></valueQuantity>
      </Observation>
    </resource>
    <request><method value="POST"/><url value="Observation"/></request>
  </entry>
</Bundle>`

func isXMLAnswer(t *testing.T, r *apptest.Response) {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+xml") {
		t.Fatalf("Content-Type %q, want application/fhir+xml; body %.300s", ct, r.Body)
	}
	if !bytes.HasPrefix(r.Body, []byte(`<?xml version="1.0" encoding="UTF-8"?>`)) {
		t.Fatalf("no XML declaration: %.200s", r.Body)
	}
}

// TestXMLClient is the XML-speaking client of issue #25: it round-trips a
// Patient, an Observation and a transaction Bundle, searches, reads
// history and the CapabilityStatement, and gets its errors in XML.
func TestXMLClient(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		admin := w.Tokens[authz.RoleAdmin]

		// Create a Patient in XML, answered in XML.
		r := w.Do(t, "POST", "/fhir/Patient", admin, []byte(xmlPatient), xmlCT, xmlAccept)
		if r.Status != 201 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		isXMLAnswer(t, r)
		p := parseXML(t, r.Body)
		if p.XMLName.Space != "http://hl7.org/fhir" || p.XMLName.Local != "Patient" {
			t.Fatalf("root %v", p.XMLName)
		}
		id := p.value(t, "id")
		if id == "" || !strings.Contains(r.Header.Get("Location"), "/Patient/"+id+"/_history/1") {
			t.Fatalf("id %q, Location %q", id, r.Header.Get("Location"))
		}
		// Element order is the StructureDefinition's: id, meta first,
		// then active, name, gender, birthDate, multipleBirth, GP.
		want := []string{"id", "meta", "active", "name", "gender", "birthDate", "multipleBirthInteger", "generalPractitioner"}
		if got := p.names(); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("element order %v, want %v", got, want)
		}
		given := p.all("name", "given")
		bd := p.all("birthDate")
		if len(given) != 2 || given[0].attr("value") != "Oriel" || given[1].attr("value") != "Marbeck" ||
			len(bd) != 1 || bd[0].attr("id") != "bd" || bd[0].attr("value") != "1961-07-14" ||
			bd[0].all("extension", "valueDateTime")[0].attr("value") != "1961-07-14T14:35:45-05:00" {
			t.Fatalf("given %+v, birthDate %+v", given, bd)
		}

		// Read it back in XML (by Accept and by _format) and in JSON.
		rx := w.Do(t, "GET", "/fhir/Patient/"+id, admin, nil, xmlAccept)
		rf := w.Do(t, "GET", "/fhir/Patient/"+id+"?_format=application/fhir+xml", admin, nil)
		if rx.Status != 200 || rf.Status != 200 {
			t.Fatalf("read: %d %d", rx.Status, rf.Status)
		}
		isXMLAnswer(t, rx)
		isXMLAnswer(t, rf)
		if !bytes.Equal(rx.Body, rf.Body) || !bytes.Equal(rx.Body, r.Body) {
			t.Fatalf("reads differ:\n%s\n%s\n%s", r.Body, rx.Body, rf.Body)
		}
		if rx.Header.Get("ETag") != `W/"1"` {
			t.Fatalf("ETag %q", rx.Header.Get("ETag"))
		}
		rj := w.Do(t, "GET", "/fhir/Patient/"+id, admin, nil, "Accept: application/fhir+json")
		var pj struct {
			Active               any
			MultipleBirthInteger any
			Name                 []struct{ Given []any }
			BirthDate            any
			BirthDate_           map[string]any `json:"_birthDate"`
		}
		dec := json.NewDecoder(bytes.NewReader(rj.Body))
		dec.UseNumber()
		if err := dec.Decode(&pj); err != nil {
			t.Fatal(err)
		}
		if pj.Active != true || pj.MultipleBirthInteger != json.Number("2") {
			t.Fatalf("JSON types lost: active %#v, multipleBirthInteger %#v", pj.Active, pj.MultipleBirthInteger)
		}
		if len(pj.Name) != 1 || len(pj.Name[0].Given) != 2 || pj.Name[0].Given[1] != "Marbeck" ||
			pj.BirthDate != "1961-07-14" || pj.BirthDate_["id"] != "bd" || len(pj.BirthDate_["extension"].([]any)) != 1 {
			t.Fatalf("primitive extension lost in JSON: %s", rj.Body)
		}

		// Update in XML: version 2.
		upd := strings.Replace(xmlPatient, `<active value="true"/>`, `<id value="`+id+`"/><active value="false"/>`, 1)
		r = w.Do(t, "PUT", "/fhir/Patient/"+id, admin, []byte(upd), xmlCT, xmlAccept)
		if r.Status != 200 {
			t.Fatalf("update: %d %s", r.Status, r.Body)
		}
		isXMLAnswer(t, r)
		if v := parseXML(t, r.Body).value(t, "active"); v != "false" {
			t.Fatalf("active = %q after update", v)
		}

		// A FHIRPath Patch (Parameters) sent in XML.
		patch := `<Parameters xmlns="http://hl7.org/fhir"><parameter><name value="operation"/>` +
			`<part><name value="type"/><valueCode value="replace"/></part>` +
			`<part><name value="path"/><valueString value="Patient.active"/></part>` +
			`<part><name value="value"/><valueBoolean value="true"/></part></parameter></Parameters>`
		r = w.Do(t, "PATCH", "/fhir/Patient/"+id, admin, []byte(patch), xmlCT, xmlAccept)
		if r.Status != 200 {
			t.Fatalf("patch: %d %s", r.Status, r.Body)
		}
		isXMLAnswer(t, r)
		if v := parseXML(t, r.Body).value(t, "active"); v != "true" {
			t.Fatalf("active = %q after patch", v)
		}

		// Search and history in XML.
		r = w.Do(t, "GET", "/fhir/Patient?_id="+id, admin, nil, xmlAccept)
		if r.Status != 200 {
			t.Fatalf("search: %d %s", r.Status, r.Body)
		}
		isXMLAnswer(t, r)
		b := parseXML(t, r.Body)
		if b.XMLName.Local != "Bundle" || b.value(t, "type") != "searchset" || b.value(t, "total") != "1" ||
			b.value(t, "entry", "resource", "Patient", "id") != id || b.value(t, "entry", "search", "mode") != "match" {
			t.Fatalf("searchset: %s", r.Body)
		}
		r = w.Do(t, "GET", "/fhir/Patient/"+id+"/_history?_format=xml", admin, nil)
		isXMLAnswer(t, r)
		if h := parseXML(t, r.Body); h.value(t, "type") != "history" || len(h.all("entry")) != 3 {
			t.Fatalf("history: %s", r.Body)
		}

		// An Observation: the decimal keeps its digits, the narrative
		// its markup, both ways.
		obs := strings.Replace(xmlObservation, "PID", id, 1)
		r = w.Do(t, "POST", "/fhir/Observation", admin, []byte(obs), xmlCT, xmlAccept)
		if r.Status != 201 {
			t.Fatalf("create observation: %d %s", r.Status, r.Body)
		}
		isXMLAnswer(t, r)
		o := parseXML(t, r.Body)
		if v := o.value(t, "valueQuantity", "value"); v != "72.50" {
			t.Fatalf("decimal %q", v)
		}
		div := o.all("text", "div")
		if len(div) != 1 || div[0].XMLName.Space != "http://www.w3.org/1999/xhtml" || div[0].Inner != `<p>Weight <b>72.50</b> kg</p>` {
			t.Fatalf("narrative: %+v", div)
		}
		oid := o.value(t, "id")
		rj = w.Do(t, "GET", "/fhir/Observation/"+oid, admin, nil)
		if !bytes.Contains(rj.Body, []byte(`"value":72.50`)) ||
			!bytes.Contains(rj.Body, []byte(`<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Weight <b>72.50</b> kg</p></div>`)) {
			t.Fatalf("JSON of the XML Observation: %s", rj.Body)
		}

		// A transaction Bundle in XML, answered in XML; the urn:uuid
		// reference resolves to the new Patient.
		r = w.Do(t, "POST", "/fhir", admin, []byte(xmlTransaction), xmlCT, xmlAccept)
		if r.Status != 200 {
			t.Fatalf("transaction: %d %s", r.Status, r.Body)
		}
		isXMLAnswer(t, r)
		tr := parseXML(t, r.Body)
		if tr.value(t, "type") != "transaction-response" || len(tr.all("entry")) != 2 {
			t.Fatalf("transaction-response: %s", r.Body)
		}
		var locs []string
		for _, e := range tr.all("entry") {
			if s := e.value(t, "response", "status"); !strings.HasPrefix(s, "201") {
				t.Fatalf("entry status %q", s)
			}
			locs = append(locs, e.value(t, "response", "location"))
		}
		newPatient := strings.Split(locs[0], "/_history")[0]
		r = w.Do(t, "GET", "/fhir/"+strings.Split(locs[1], "/_history")[0], admin, nil, xmlAccept)
		isXMLAnswer(t, r)
		if ref := parseXML(t, r.Body).value(t, "subject", "reference"); ref != newPatient {
			t.Fatalf("subject %q, want %q", ref, newPatient)
		}
		if v := parseXML(t, r.Body).value(t, "valueQuantity", "value"); v != "61.0" {
			t.Fatalf("decimal %q", v)
		}

		// A batch answers in XML too, entry by entry.
		batch := `<Bundle xmlns="http://hl7.org/fhir"><type value="batch"/><entry><request><method value="GET"/><url value="Patient/` + id + `"/></request></entry></Bundle>`
		r = w.Do(t, "POST", "/fhir", admin, []byte(batch), xmlCT, xmlAccept)
		isXMLAnswer(t, r)
		if r.Status != 200 || parseXML(t, r.Body).value(t, "type") != "batch-response" {
			t.Fatalf("batch: %d %s", r.Status, r.Body)
		}

		// JSON may hold a narrative XML cannot carry (an HTML entity):
		// the XML answer is a 406 that says so, the JSON one works.
		nb := `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">a&nbsp;b</div>"},` +
			`"generalPractitioner":[{"reference":"Practitioner/pract-physician"}]}`
		r = w.Do(t, "POST", "/fhir/Patient", admin, []byte(nb))
		if r.Status != 201 {
			t.Fatalf("create with an HTML entity in the narrative: %d %s", r.Status, r.Body)
		}
		nid := r.JSON(t)["id"].(string)
		r = w.Do(t, "GET", "/fhir/Patient/"+nid, admin, nil, xmlAccept)
		isXMLAnswer(t, r)
		if r.Status != 406 || parseXML(t, r.Body).XMLName.Local != "OperationOutcome" || r.Header.Get("ETag") != "" {
			t.Fatalf("narrative XML cannot carry: %d %s", r.Status, r.Body)
		}
		if r = w.Do(t, "GET", "/fhir/Patient/"+nid, admin, nil); r.Status != 200 {
			t.Fatalf("JSON read: %d", r.Status)
		}

		// The CapabilityStatement, in XML, lists XML.
		r = w.Do(t, "GET", "/fhir/metadata", "", nil, "Accept: application/xml")
		isXMLAnswer(t, r)
		cs := parseXML(t, r.Body)
		var formats []string
		for _, f := range cs.all("format") {
			formats = append(formats, f.attr("value"))
		}
		if cs.XMLName.Local != "CapabilityStatement" || !strings.Contains(strings.Join(formats, " "), "application/fhir+xml") {
			t.Fatalf("formats %v", formats)
		}
	})
}

// Errors are OperationOutcomes in XML when XML is asked for, with the same
// status and message as in JSON; bad XML never writes anything.
func TestXMLErrors(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		admin := w.Tokens[authz.RoleAdmin]
		count := func() int {
			r := w.Do(t, "GET", "/fhir/Patient/_history", admin, nil)
			var b struct{ Entry []any }
			json.Unmarshal(r.Body, &b)
			return len(b.Entry)
		}
		before := count()
		const p = `<Patient xmlns="http://hl7.org/fhir">`
		for _, sc := range []struct {
			name, method, path, token, body string
			headers                         []string
			status                          int
			want                            []string
			notWant                         []string
		}{
			{name: "not found", method: "GET", path: "/fhir/Patient/nope", token: admin, headers: []string{xmlAccept}, status: 404},
			{name: "no token", method: "GET", path: "/fhir/Patient", headers: []string{"Accept: text/xml"}, status: 401},
			{name: "xxe", method: "POST", path: "/fhir/Patient", token: admin, headers: []string{xmlCT, xmlAccept}, status: 400,
				body: `<?xml version="1.0"?><!DOCTYPE Patient [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>` + p + `<gender value="&xxe;"/></Patient>`,
				want: []string{"DTD"}, notWant: []string{"root:", "passwd"}},
			{name: "billion laughs", method: "POST", path: "/fhir/Patient", token: admin, headers: []string{xmlCT, xmlAccept}, status: 400,
				body: `<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>` + p + `<gender value="&b;"/></Patient>`},
			{name: "external entity without DTD", method: "POST", path: "/fhir/Patient", token: admin, headers: []string{xmlCT, xmlAccept}, status: 400,
				body: p + `<gender value="&xxe;"/></Patient>`},
			{name: "processing instruction", method: "POST", path: "/fhir/Patient", token: admin, headers: []string{xmlCT, xmlAccept}, status: 400,
				body: `<?xml-stylesheet href="http://example.org/x.xsl"?>` + p + `</Patient>`},
			{name: "unknown element", method: "POST", path: "/fhir/Patient", token: admin, headers: []string{xmlCT, xmlAccept}, status: 400,
				body: p + `<favouriteColour value="blue"/></Patient>`, want: []string{"favouriteColour"}, notWant: []string{"blue"}},
			{name: "bad code, validated like JSON", method: "POST", path: "/fhir/Patient", token: admin, headers: []string{xmlCT, xmlAccept}, status: 400,
				body: p + `<gender value="banana"/></Patient>`, want: []string{"Patient.gender"}, notWant: []string{"banana"}},
			{name: "bad boolean", method: "POST", path: "/fhir/Patient", token: admin, headers: []string{xmlCT}, status: 400,
				body: p + `<active value="yes"/></Patient>`, want: []string{"Patient.active"}, notWant: []string{"yes"}},
			{name: "wrong type for URL", method: "POST", path: "/fhir/Patient", token: admin, headers: []string{xmlCT, xmlAccept}, status: 400,
				body: `<Observation xmlns="http://hl7.org/fhir"><status value="final"/><code><text value="x"/></code></Observation>`},
			{name: "not well-formed", method: "POST", path: "/fhir/Patient", token: admin, headers: []string{xmlCT, xmlAccept}, status: 400,
				body: p + `<gender value="female">`},
		} {
			r := w.Do(t, sc.method, sc.path, sc.token, []byte(sc.body), sc.headers...)
			if sc.body == "" {
				r = w.Do(t, sc.method, sc.path, sc.token, nil, sc.headers...)
			}
			if r.Status != sc.status {
				t.Errorf("%s: status %d, want %d: %s", sc.name, r.Status, sc.status, r.Body)
				continue
			}
			wantsXML := false
			for _, h := range sc.headers {
				wantsXML = wantsXML || strings.HasPrefix(h, "Accept:")
			}
			if wantsXML {
				isXMLAnswer(t, r)
				oo := parseXML(t, r.Body)
				if oo.XMLName.Local != "OperationOutcome" || oo.value(t, "issue", "severity") != "error" || oo.value(t, "issue", "diagnostics") == "" {
					t.Errorf("%s: %s", sc.name, r.Body)
				}
			} else if !bytes.Contains(r.Body, []byte(`"OperationOutcome"`)) {
				t.Errorf("%s: %s", sc.name, r.Body)
			}
			for _, s := range sc.want {
				if !bytes.Contains(r.Body, []byte(s)) {
					t.Errorf("%s: lacks %q: %s", sc.name, s, r.Body)
				}
			}
			for _, s := range sc.notWant {
				if bytes.Contains(r.Body, []byte(s)) {
					t.Errorf("%s: contains %q: %s", sc.name, s, r.Body)
				}
			}
		}
		if n := count(); n != before {
			t.Fatalf("%d versions after bad XML, want %d", n, before)
		}
	})
}

// An XML body over the element limit is 413 naming the setting, like
// JSON; one within it is accepted.
func TestXMLLimits(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite, func(c *config.Config) { c.Limits.Elements = 40 })
	admin := w.Tokens[authz.RoleAdmin]
	many := `<Patient xmlns="http://hl7.org/fhir"><name>` + strings.Repeat(`<given value="a"/>`, 50) + `</name></Patient>`
	r := w.Do(t, "POST", "/fhir/Patient", admin, []byte(many), xmlCT, xmlAccept)
	if r.Status != 413 || !bytes.Contains(r.Body, []byte("WARD_RESOURCE_MAX_ELEMENTS")) {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	isXMLAnswer(t, r)
	deep := `<Patient xmlns="http://hl7.org/fhir">` + strings.Repeat(`<extension url="u">`, 30) + strings.Repeat(`</extension>`, 30) + `</Patient>`
	if r := w.Do(t, "POST", "/fhir/Patient", admin, []byte(deep), xmlCT); r.Status != 400 && r.Status != 413 {
		t.Fatalf("deep: %d %s", r.Status, r.Body)
	}
	few := `<Patient xmlns="http://hl7.org/fhir"><name>` + strings.Repeat(`<given value="a"/>`, 5) + `</name></Patient>`
	if r := w.Do(t, "POST", "/fhir/Patient", admin, []byte(few), xmlCT); r.Status != 201 {
		t.Fatalf("few: %d %s", r.Status, r.Body)
	}
}

// A Synthea transaction Bundle sent in XML loads like its JSON: every entry
// created, and the Patient stored is the one sent (compared as JSON).
func TestXMLSyntheaTransaction(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		admin := w.Tokens[authz.RoleAdmin]
		body := syntheaBundle(t)
		x, err := fhirxml.FromJSON(body)
		if err != nil {
			t.Fatal(err)
		}
		r := w.Do(t, "POST", "/fhir", admin, x, xmlCT, xmlAccept)
		if r.Status != 200 {
			t.Fatalf("transaction: %d %.500s", r.Status, r.Body)
		}
		isXMLAnswer(t, r)
		var in struct {
			Entry []struct{ Resource map[string]any }
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&in); err != nil {
			t.Fatal(err)
		}
		out := parseXML(t, r.Body)
		entries := out.all("entry")
		if out.value(t, "type") != "transaction-response" || len(entries) != len(in.Entry) {
			t.Fatalf("%d entries for %d", len(entries), len(in.Entry))
		}
		compared := 0
		for i, e := range entries {
			if !strings.HasPrefix(e.value(t, "response", "status"), "201") {
				t.Fatalf("entry %d: %s", i, e.value(t, "response", "status"))
			}
			if in.Entry[i].Resource["resourceType"] != "Patient" {
				continue
			}
			loc := strings.Split(e.value(t, "response", "location"), "/_history")[0]
			got := w.Do(t, "GET", "/fhir/"+loc, admin, nil)
			var stored map[string]any
			dec := json.NewDecoder(bytes.NewReader(got.Body))
			dec.UseNumber()
			if err := dec.Decode(&stored); err != nil {
				t.Fatal(err)
			}
			sent := in.Entry[i].Resource
			for _, k := range []string{"id", "meta"} {
				delete(stored, k)
				delete(sent, k)
			}
			if !reflect.DeepEqual(stored, sent) {
				a, _ := json.Marshal(sent)
				b, _ := json.Marshal(stored)
				t.Fatalf("the Patient sent in XML is not the one stored:\nsent   %s\nstored %s", a, b)
			}
			compared++
		}
		if compared != 1 {
			t.Fatalf("%d Patients compared, want 1", compared)
		}
	})
}
