package records

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/problem"
)

// FuzzParseAuditSearch: any query string parses or is refused as invalid,
// never panics, and a refusal never repeats a submitted value.
func FuzzParseAuditSearch(f *testing.F) {
	for _, s := range []string{
		"patient=Patient/p1&date=ge2026-01-01&_count=10",
		"agent=urn:ward:user|u1&action=R&outcome=4",
		"type=http://dicom.nema.org/resources/ontology/DCM|110114&subtype=read",
		"subtype=urn:ward:audit-action|withhold&entity=Observation/o1/_history/2",
		"date=gt2026-01-02T03:04:05.123456Z&date=lt2027&_cursor=1700000000000000.42",
		"date=xx", "_count=0", "colour=red",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		s, err := ParseAuditSearch(q)
		if err != nil {
			if !errors.Is(err, problem.ErrInvalid) {
				t.Fatalf("not an invalid-input error: %v", err)
			}
			// The messages are fixed text without <, " or newlines: a value
			// with one of those found in a message was echoed.
			for _, vs := range q {
				for _, v := range vs {
					if strings.ContainsAny(v, "<\"\n") && strings.Contains(err.Error(), v) {
						t.Fatalf("error echoes the value %q: %v", v, err)
					}
				}
			}
			return
		}
		if s.Count < 1 || s.Count > MaxAuditCount {
			t.Fatalf("count %d", s.Count)
		}
	})
}
