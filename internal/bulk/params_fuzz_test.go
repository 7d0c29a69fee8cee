package bulk

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
)

// FuzzParseKickoff: any query string, kind and group id either parses to a
// request whose types are R4 types (each once) and whose Query() parses
// back to the same request, or is refused with a 400 problem that echoes
// no unprintable or long input.
func FuzzParseKickoff(f *testing.F) {
	for _, s := range []struct {
		kind, group, query string
		strict             bool
	}{
		{records.ExportSystem, "", "_type=Patient,Observation&_since=2024-01-31T12:00:00Z&_outputFormat=application/fhir+ndjson", false}, // everything valid
		{records.ExportPatient, "", "_type=Patient&_type=Patient,Encounter", true},                                                       // repeated _type, duplicates
		{records.ExportGroup, "g-1", "_since=2024-01-31T12:00:00+02:00", false},                                                          // '+' decoded to a space
		{records.ExportGroup, "bad id!", "", false},                                                                                      // bad group id
		{records.ExportSystem, "", "_typeFilter=Patient%3Factive%3Dtrue", true},                                                          // unsupported, strict
		{records.ExportSystem, "", "_typeFilter=x&patient=Patient/1", false},                                                             // unsupported, lenient
		{records.ExportSystem, "", "_type=,Patient", false},                                                                              // empty item
		{records.ExportSystem, "", "_since=2024-13-01", false},                                                                           // bad date, no zone
		{records.ExportSystem, "", "_outputFormat=text%2Fcsv&_outputFormat=ndjson", false},                                               // repeated, bad
		{records.ExportSystem, "", "%ff%fe=1&_type=%00Patient", true},                                                                    // unprintable
		{records.ExportPatient, "", "_deidentify=safe-harbor&_deidentifyProject=flu-study", true},                                        // de-identified
		{records.ExportSystem, "", "_deidentify=safe-harbor+date-shift&_deidentifyProject=a", false},                                     // '+' as a space
		{records.ExportSystem, "", "_deidentify=safe-harbor&_deidentifyProject=%E2%9C%93", false},                                        // bad project
		{records.ExportSystem, "", "_deidentifyProject=x", false},                                                                        // project alone
	} {
		f.Add(s.kind, s.group, s.query, s.strict)
	}
	f.Fuzz(func(t *testing.T, kind, group, raw string, strict bool) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		req, err := ParseKickoff(kind, group, q, strict)
		if err != nil {
			var pe *problem.Error
			if !errors.As(err, &pe) || !errors.Is(err, problem.ErrInvalid) {
				t.Fatalf("unclassified error %v", err)
			}
			for _, is := range pe.Issues {
				for _, c := range is.Diagnostics {
					if c < 0x20 || c > 0x7e {
						t.Fatalf("unprintable echo in %q", is.Diagnostics)
					}
				}
				if len(is.Diagnostics) > 200 {
					t.Fatalf("long diagnostics: %q", is.Diagnostics)
				}
			}
			return
		}
		if (req.Deidentify == "") != (req.Project == "") {
			t.Fatalf("method %q without project %q, or the reverse", req.Deidentify, req.Project)
		}
		seen := map[string]bool{}
		for _, typ := range req.Types {
			if !fhir.IsResourceType(typ) || seen[typ] {
				t.Fatalf("types %v", req.Types)
			}
			seen[typ] = true
		}
		if strict && len(req.Ignored) > 0 {
			t.Fatalf("strict parse ignored %v", req.Ignored)
		}
		// Round trip through the manifest's request.
		path, query, _ := strings.Cut(req.Query(), "?")
		q2, err := url.ParseQuery(query)
		if err != nil {
			t.Fatalf("Query() %q: %v", req.Query(), err)
		}
		req2, err := ParseKickoff(kind, group, q2, true)
		if err != nil {
			t.Fatalf("Query() %q does not parse back: %v", req.Query(), err)
		}
		if strings.Join(req2.Types, ",") != strings.Join(req.Types, ",") || !req2.Since.Equal(req.Since) || !strings.HasSuffix(path, "$export") ||
			req2.Deidentify != req.Deidentify || req2.Project != req.Project {
			t.Fatalf("round trip %q: %+v != %+v", req.Query(), req2, req)
		}
	})
}
