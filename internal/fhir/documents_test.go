package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// validateBytes parses and validates a document this package produced.
func validateBytes(t *testing.T, v *Validator, b []byte, wantType string) *Resource {
	t.Helper()
	r, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, b)
	}
	if r.Type != wantType {
		t.Fatalf("resourceType %s, want %s", r.Type, wantType)
	}
	if !bytes.HasPrefix(b, []byte(`{"resourceType":"`+wantType+`"`)) {
		t.Errorf("resourceType is not first: %.60s", b)
	}
	if issues := v.Validate(r); len(issues) != 0 {
		t.Fatalf("schema issues:\n%s\n%s", fmtIssues(issues), b)
	}
	return r
}

func TestOperationOutcome(t *testing.T) {
	v := newValidator(t)
	got := OperationOutcome(
		IssueFrom("value", "Patient.gender", "value is not one of the allowed codes: male, female, other, unknown"),
		Issue{Severity: SeverityWarning, Code: "informational", Diagnostics: `quote " and <tag>`},
		Issue{}, // defaults keep it valid
	)
	want := `{"resourceType":"OperationOutcome","issue":[` +
		`{"severity":"error","code":"value","diagnostics":"value is not one of the allowed codes: male, female, other, unknown","expression":["Patient.gender"]},` +
		`{"severity":"warning","code":"informational","diagnostics":"quote \" and <tag>"},` +
		`{"severity":"error","code":"processing"}]}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	validateBytes(t, v, got, "OperationOutcome")

	empty := OperationOutcome()
	if want := `{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational","diagnostics":"no issues"}]}`; string(empty) != want {
		t.Errorf("empty: %s", empty)
	}
	validateBytes(t, v, empty, "OperationOutcome")

	// Issues from the validator and from Parse make valid outcomes.
	r := mustParse(t, `{"resourceType":"Patient","gender":"x","foo":1,"name":"y"}`)
	validateBytes(t, v, OperationOutcome(v.Validate(r)...), "OperationOutcome")
	_, err := Parse([]byte(`{"resourceType":"Nope"}`))
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatal(err)
	}
	validateBytes(t, v, OperationOutcome(pe.Issue()), "OperationOutcome")
}

func TestBundleSearchset(t *testing.T) {
	v := newValidator(t)
	patient, err := Parse(readFixture(t, "patient.json"))
	if err != nil {
		t.Fatal(err)
	}
	praw, err := Marshal(patient.Doc)
	if err != nil {
		t.Fatal(err)
	}
	oo := OperationOutcome(Issue{Severity: SeverityWarning, Code: "informational", Diagnostics: "sorted by _id"})
	total := 1
	b := &Bundle{
		ID:        "b-1",
		Type:      "searchset",
		Timestamp: time.Date(2026, 11, 23, 12, 0, 0, 5000, time.UTC),
		Total:     &total,
		Links: []BundleLink{
			{Relation: "self", URL: "https://ward.example/fhir/Patient?gender=female"},
			{Relation: "next", URL: "https://ward.example/fhir/Patient?gender=female&_cursor=abc"},
		},
		Entries: []BundleEntry{
			{FullURL: "https://ward.example/fhir/Patient/pat-7f3a9c21", Resource: praw, Search: &BundleSearch{Mode: "match"}},
			{Resource: oo, Search: &BundleSearch{Mode: "outcome"}},
		},
	}
	out, err := b.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	r := validateBytes(t, v, out, "Bundle")
	if r.Doc["total"] != json.Number("1") || r.Doc["timestamp"] != "2026-11-23T12:00:00.000005Z" || r.ID != "b-1" {
		t.Errorf("bundle = %v", r.Doc)
	}
	// AppendJSON writes the same document after what dst holds, into a
	// reused buffer too small or big enough alike.
	for _, dst := range [][]byte{[]byte("prefix"), make([]byte, 3, 1<<16)} {
		prefix := string(dst)
		got, err := b.AppendJSON(dst)
		if err != nil || string(got) != prefix+string(out) {
			t.Fatalf("AppendJSON after %q: %v, %.80q", prefix, err, got)
		}
	}
	entries := r.Doc["entry"].([]any)
	if len(entries) != 2 || !bytes.Contains(out, praw) {
		t.Errorf("entries not written verbatim")
	}
	// json.Marshal goes through MarshalJSON; it HTML-escapes the result
	// (the narrative's <div> becomes \u003cdiv), but the JSON is the same.
	viaStd, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var a, c any
	if err := json.Unmarshal(viaStd, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, c) {
		t.Errorf("json.Marshal(bundle) is a different document")
	}
	// WriteTo writes the same bytes.
	var w bytes.Buffer
	if n, err := b.WriteTo(&w); err != nil || n != int64(len(out)) || !bytes.Equal(w.Bytes(), out) {
		t.Errorf("WriteTo: %d %v", n, err)
	}

	// An empty page.
	zero := 0
	empty, err := (&Bundle{Type: "searchset", Total: &zero}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if string(empty) != `{"resourceType":"Bundle","type":"searchset","total":0}` {
		t.Errorf("empty = %s", empty)
	}
	validateBytes(t, v, empty, "Bundle")
}

func TestBundleHistoryAndBatchResponse(t *testing.T) {
	v := newValidator(t)
	obs, err := Parse(readFixture(t, "synthea-observation.json"))
	if err != nil {
		t.Fatal(err)
	}
	SetMeta(obs.Doc, "2", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	raw, _ := Marshal(obs.Doc)
	mod := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	total := 3
	hist := &Bundle{
		Type:  "history",
		Total: &total,
		Links: []BundleLink{{Relation: "self", URL: "https://ward.example/fhir/Observation/x/_history"}},
		Entries: []BundleEntry{
			{
				FullURL:  "https://ward.example/fhir/Observation/x",
				Resource: raw,
				Request:  &BundleRequest{Method: "PUT", URL: "Observation/x"},
				Response: &BundleResponse{Status: "200", Etag: `W/"2"`, LastModified: mod},
			},
			{
				FullURL:  "https://ward.example/fhir/Observation/x",
				Request:  &BundleRequest{Method: "DELETE", URL: "Observation/x"},
				Response: &BundleResponse{Status: "204", Etag: `W/"3"`, LastModified: mod},
			},
			{
				FullURL:  "https://ward.example/fhir/Observation/x",
				Resource: raw,
				Request:  &BundleRequest{Method: "POST", URL: "Observation"},
				Response: &BundleResponse{Status: "201", Location: "Observation/x/_history/1", Etag: `W/"1"`, LastModified: mod},
			},
		},
	}
	out, err := hist.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	r := validateBytes(t, v, out, "Bundle")
	e1 := r.Doc["entry"].([]any)[1].(map[string]any)
	if _, ok := e1["resource"]; ok {
		t.Error("deleted entry has a resource")
	}
	if e1["response"].(map[string]any)["lastModified"] != "2026-01-02T03:04:05.000000Z" {
		t.Errorf("entry 1 = %v", e1)
	}

	batch := &Bundle{
		Type: "batch-response",
		Entries: []BundleEntry{
			{Response: &BundleResponse{Status: "201 Created", Location: "Patient/p1/_history/1"}},
			{Response: &BundleResponse{Status: "400 Bad Request", Outcome: OperationOutcome(IssueFrom("value", "Patient.gender", "bad"))}},
		},
	}
	out, err = batch.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	validateBytes(t, v, out, "Bundle")
}

func TestBundleRejectsBadResource(t *testing.T) {
	for name, raw := range map[string]json.RawMessage{
		"array":     json.RawMessage(`[1]`),
		"truncated": json.RawMessage(`{"resourceType":"Patient"`),
		"empty obj": json.RawMessage(` { `),
		"string":    json.RawMessage(`"x"`),
	} {
		b := &Bundle{Type: "collection", Entries: []BundleEntry{{}, {Resource: raw}}}
		_, err := b.MarshalJSON()
		if !errors.Is(err, ErrBundleResource) || !strings.Contains(err.Error(), "entry[1].resource") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if _, err := (&Bundle{}).MarshalJSON(); err == nil {
		t.Error("bundle without a type marshalled")
	}
	b := &Bundle{Type: "batch-response", Entries: []BundleEntry{{Response: &BundleResponse{Status: "500", Outcome: json.RawMessage(`nope`)}}}}
	if _, err := b.MarshalJSON(); !errors.Is(err, ErrBundleResource) {
		t.Errorf("outcome: err = %v", err)
	}
}

func TestCapabilityStatement(t *testing.T) {
	v := newValidator(t)
	o := CapabilityOptions{
		Software: "Ward",
		Version:  "0.1.0",
		BaseURL:  "https://ward.example/fhir",
		Time:     time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC),
		Interactions: []string{
			"read", "vread", "update", "delete", "history-instance", "history-type", "create", "search-type",
		},
		SystemInteractions: []string{"transaction", "batch"},
		SearchParams: []SearchParamCap{
			{Name: "_id", Type: "token", Doc: "Logical id"},
			{Name: "_lastUpdated", Type: "date"},
		},
		ResourceSearchParams: map[string][]SearchParamCap{
			"Patient": {{Name: "gender", Type: "token"}, {Name: "birthdate", Type: "date"}},
		},
		Formats:         []string{"application/fhir+json", "json"},
		SecurityService: "SMART-on-FHIR",
		TokenURL:        "https://ward.example/auth/token",
	}
	out, err := CapabilityStatement(o)
	if err != nil {
		t.Fatal(err)
	}
	r := validateBytes(t, v, out, "CapabilityStatement")

	d := r.Doc
	if d["fhirVersion"] != "4.0.1" || d["status"] != "active" || d["kind"] != "instance" || d["date"] != "2026-11-23T12:00:00Z" {
		t.Errorf("header = %v %v %v %v", d["fhirVersion"], d["status"], d["kind"], d["date"])
	}
	rest := d["rest"].([]any)[0].(map[string]any)
	resources := rest["resource"].([]any)
	types := ResourceTypes()
	if len(resources) != len(types) {
		t.Fatalf("%d resources, want %d", len(resources), len(types))
	}
	for i, x := range resources {
		res := x.(map[string]any)
		if res["type"] != types[i] {
			t.Fatalf("resource %d is %v, want %s", i, res["type"], types[i])
		}
		if res["versioning"] != "versioned" || res["readHistory"] != true || res["updateCreate"] != true ||
			res["conditionalCreate"] != true || res["conditionalUpdate"] != true || res["conditionalDelete"] != "multiple" {
			t.Errorf("%s: flags %v", types[i], res)
		}
		if _, has := res["operation"]; has != (types[i] == "Patient") {
			t.Errorf("%s: operation %v", types[i], res["operation"])
		}
		if n := len(res["interaction"].([]any)); n != 8 {
			t.Errorf("%s: %d interactions", types[i], n)
		}
		wantSP := 2
		if types[i] == "Patient" {
			wantSP = 4
		}
		if n := len(res["searchParam"].([]any)); n != wantSP {
			t.Errorf("%s: %d searchParams, want %d", types[i], n, wantSP)
		}
	}
	for _, s := range []string{`"code":"SMART-on-FHIR"`, `"valueUri":"https://ward.example/auth/token"`, `{"code":"transaction"}`, `"documentation":"Logical id"`} {
		if !bytes.Contains(out, []byte(s)) {
			t.Errorf("missing %s", s)
		}
	}

	// Minimal options still validate (format defaults).
	minimal, err := CapabilityStatement(CapabilityOptions{Software: "Ward", BaseURL: "http://localhost", Time: o.Time})
	if err != nil {
		t.Fatal(err)
	}
	validateBytes(t, v, minimal, "CapabilityStatement")
}

func TestCapabilityStatementRejectsBadOptions(t *testing.T) {
	ok := CapabilityOptions{Software: "Ward", BaseURL: "http://x", Time: time.Unix(1, 0)}
	for name, mod := range map[string]func(*CapabilityOptions){
		"no software":     func(o *CapabilityOptions) { o.Software = "" },
		"no base url":     func(o *CapabilityOptions) { o.BaseURL = "" },
		"no time":         func(o *CapabilityOptions) { o.Time = time.Time{} },
		"bad interaction": func(o *CapabilityOptions) { o.Interactions = []string{"read", "history-system"} },
		"bad system":      func(o *CapabilityOptions) { o.SystemInteractions = []string{"read"} },
		"bad param type":  func(o *CapabilityOptions) { o.SearchParams = []SearchParamCap{{Name: "x", Type: "text"}} },
		"unnamed param":   func(o *CapabilityOptions) { o.SearchParams = []SearchParamCap{{Type: "token"}} },
		"bad security":    func(o *CapabilityOptions) { o.SecurityService = "smart" },
		"unknown type":    func(o *CapabilityOptions) { o.ResourceSearchParams = map[string][]SearchParamCap{"Nope": nil} },
		"bad per-type param": func(o *CapabilityOptions) {
			o.ResourceSearchParams = map[string][]SearchParamCap{"Patient": {{Name: "x"}}}
		},
	} {
		o := ok
		mod(&o)
		if _, err := CapabilityStatement(o); !errors.Is(err, ErrCapabilityOptions) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if _, err := CapabilityStatement(ok); err != nil {
		t.Errorf("baseline: %v", err)
	}
}
