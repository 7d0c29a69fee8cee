package records

import (
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/fhir"
)

// Reference rewriting, table-tested: what a transaction's fullUrl map
// rewrites, what it leaves alone, and which conditional references the
// walker reports (with element paths, never values).
func TestRewriteReferences(t *testing.T) {
	refs := map[string]string{
		"urn:uuid:0f0e0d0c-0000-4000-8000-000000000001": "Patient/p1",
		"urn:oid:1.2.3.4.5":                             "Organization/o1",
		"http://other.example/fhir/Practitioner/9":      "Practitioner/x9",
	}
	cases := []struct {
		name, in, want string
	}{
		{"urn:uuid", `{"resourceType":"Observation","subject":{"reference":"urn:uuid:0f0e0d0c-0000-4000-8000-000000000001"}}`,
			`{"resourceType":"Observation","subject":{"reference":"Patient/p1"}}`},
		{"urn:oid", `{"resourceType":"Patient","managingOrganization":{"reference":"urn:oid:1.2.3.4.5"}}`,
			`{"resourceType":"Patient","managingOrganization":{"reference":"Organization/o1"}}`},
		{"absolute fullUrl of an entry", `{"resourceType":"Observation","performer":[{"reference":"http://other.example/fhir/Practitioner/9"}]}`,
			`{"resourceType":"Observation","performer":[{"reference":"Practitioner/x9"}]}`},
		{"nested in arrays and extensions", `{"resourceType":"Observation","extension":[{"url":"http://x","valueReference":{"reference":"urn:uuid:0f0e0d0c-0000-4000-8000-000000000001"}}],"performer":[{"display":"d"},{"reference":"urn:oid:1.2.3.4.5"}]}`,
			`{"resourceType":"Observation","extension":[{"url":"http://x","valueReference":{"reference":"Patient/p1"}}],"performer":[{"display":"d"},{"reference":"Organization/o1"}]}`},
		{"unknown urn, contained and relative references untouched", `{"resourceType":"Claim","patient":{"reference":"urn:uuid:0f0e0d0c-0000-4000-8000-00000000ffff"},"insurance":[{"coverage":{"reference":"#coverage"}}],"provider":{"reference":"Practitioner/abc"}}`,
			`{"resourceType":"Claim","patient":{"reference":"urn:uuid:0f0e0d0c-0000-4000-8000-00000000ffff"},"insurance":[{"coverage":{"reference":"#coverage"}}],"provider":{"reference":"Practitioner/abc"}}`},
		{"a reference-named element that is not a string is walked, not rewritten", `{"resourceType":"Basic","extension":[{"url":"http://x","valueAttachment":{"title":"reference"}}]}`,
			`{"resourceType":"Basic","extension":[{"url":"http://x","valueAttachment":{"title":"reference"}}]}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := fhir.Parse([]byte(c.in))
			if err != nil {
				t.Fatal(err)
			}
			rewriteReferences(r.Doc, bundleResolver("urn:uuid:0f0e0d0c-0000-4000-8000-0000000000aa", refs))
			got, _ := fhir.Marshal(r.Doc)
			want, _ := fhir.Marshal(must(t, c.want))
			if string(got) != string(want) {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// A relative reference in an entry whose fullUrl is a RESTful URL resolves
// against that URL's base (bundle.html, "Resolving references in
// Bundles"); in an entry with a urn fullUrl, or against another base, it
// stays a reference to the server.
func TestRewriteRelativeToRESTfulFullURL(t *testing.T) {
	refs := map[string]string{
		"http://example.com/fhir/Patient/0":         "Patient/new-p",
		"http://example.com/fhir/Practitioner/7":    "Practitioner/new-pr",
		"https://elsewhere.org/base/Organization/1": "Organization/new-o",
	}
	in := `{"resourceType":"Observation","subject":{"reference":"Patient/0"},"performer":[{"reference":"Practitioner/7"},{"reference":"Organization/1"},{"reference":"https://elsewhere.org/base/Organization/1"},{"reference":"#c"},{"reference":"Patient/0/_history/2"}]}`
	cases := []struct{ fullURL, want string }{
		{"http://example.com/fhir/Observation/x1",
			`{"resourceType":"Observation","subject":{"reference":"Patient/new-p"},"performer":[{"reference":"Practitioner/new-pr"},{"reference":"Organization/1"},{"reference":"Organization/new-o"},{"reference":"#c"},{"reference":"Patient/0/_history/2"}]}`},
		{"https://elsewhere.org/base/Observation/x1",
			`{"resourceType":"Observation","subject":{"reference":"Patient/0"},"performer":[{"reference":"Practitioner/7"},{"reference":"Organization/new-o"},{"reference":"Organization/new-o"},{"reference":"#c"},{"reference":"Patient/0/_history/2"}]}`},
		{"urn:uuid:0f0e0d0c-0000-4000-8000-000000000009",
			`{"resourceType":"Observation","subject":{"reference":"Patient/0"},"performer":[{"reference":"Practitioner/7"},{"reference":"Organization/1"},{"reference":"Organization/new-o"},{"reference":"#c"},{"reference":"Patient/0/_history/2"}]}`},
		{"http://example.com/fhir/NotAType/x1",
			`{"resourceType":"Observation","subject":{"reference":"Patient/0"},"performer":[{"reference":"Practitioner/7"},{"reference":"Organization/1"},{"reference":"Organization/new-o"},{"reference":"#c"},{"reference":"Patient/0/_history/2"}]}`},
	}
	for _, c := range cases {
		t.Run(c.fullURL, func(t *testing.T) {
			doc := must(t, in)
			rewriteReferences(doc, bundleResolver(c.fullURL, refs))
			got, _ := fhir.Marshal(doc)
			want, _ := fhir.Marshal(must(t, c.want))
			if string(got) != string(want) {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		})
	}
}

func must(t *testing.T, s string) map[string]any {
	t.Helper()
	r, err := fhir.Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return r.Doc
}

func TestWalkReferencesFindsConditionalOnes(t *testing.T) {
	doc := must(t, `{"resourceType":"Claim",
		"provider":{"reference":"Organization?identifier=https://github.com/synthetichealth/synthea|secret-1"},
		"careTeam":[{"provider":{"reference":"Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|secret-2"}}],
		"contained":[{"resourceType":"ServiceRequest","requester":{"reference":"Practitioner?identifier=x|secret-3"}}],
		"patient":{"reference":"Patient/p1"},
		"facility":{"reference":"NotAType?x=1"}}`)
	var found []string
	walkReferences(doc, "Claim", func(path, s string) (string, bool) {
		if _, _, ok := SplitConditional(s); ok {
			found = append(found, path)
			return "Resolved/1", true
		}
		return "", false
	})
	got := strings.Join(sortStrings(found), " ")
	if got != "Claim.careTeam.provider.reference Claim.contained.ServiceRequest.requester.reference Claim.provider.reference" {
		t.Fatalf("paths %s", got)
	}
	out, _ := fhir.Marshal(doc)
	if strings.Contains(string(out), "secret-") || !strings.Contains(string(out), "NotAType?x=1") || !strings.Contains(string(out), "Patient/p1") {
		t.Fatalf("rewritten %s", out)
	}
}

func sortStrings(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}
