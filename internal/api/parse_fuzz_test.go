package api

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/problem"
)

// FuzzRequestHeaders feeds hostile header and query values to the request
// parsers of the edge. They must never panic, and every refusal must be one
// of the classified 4xx problems (never an internal error).
func FuzzRequestHeaders(f *testing.F) {
	// Seeds: the well-formed, and the classic malformed.
	f.Add(`W/"3"`, "application/fhir+json", "return=minimal", "application/fhir+json; charset=utf-8", "json")
	f.Add(`"12"`, "application/fhir+xml;q=0.9, */*;q=0.1", "handling=strict, return=OperationOutcome", "", "")
	f.Add(`W/"-1"`, ";;;,,,", `return="representation"`, "text/plain", "xml")
	f.Add(`W/"99999999999999999999"`, "application/json;q=0", "return", "application/x-www-form-urlencoded", "application/fhir+xml")
	f.Add("", "\x00\xff", "=;=,", "multipart/form-data; boundary=", "%zz")
	f.Fuzz(func(t *testing.T, etagH, accept, prefer, ctype, format string) {
		r := httptest.NewRequest("GET", "/fhir/Patient", nil)
		r.Header.Set("Accept", accept)
		r.Header.Set("Prefer", prefer)
		r.Header.Set("Content-Type", ctype)
		r.URL.RawQuery = "_format=" + url.QueryEscape(format)
		classified := func(err error) {
			if err == nil {
				return
			}
			var pe *problem.Error
			if !errors.As(err, &pe) || len(pe.Issues) == 0 {
				t.Fatalf("unclassified error %v", err)
			}
		}
		classified(negotiate(r))
		classified(checkContentType(r))
		switch p := preferReturn(r); p {
		case "minimal", "representation", "OperationOutcome":
		default:
			t.Fatalf("preferReturn = %q", p)
		}
		preferStrict(r)
		// The access headers: refused with a classified 4xx, and never
		// echoed (the break-glass reason may be PHI).
		r.Header.Set(headerPurpose, prefer)
		r.Header.Set(headerBreakGlass, accept)
		subj, err := accessHeaders(r, authz.Subject{ID: "u"})
		classified(err)
		if err != nil {
			var pe *problem.Error
			errors.As(err, &pe)
			if accept != "" && len(accept) > 3 && strings.Contains(pe.Issues[0].Diagnostics, accept) {
				t.Fatalf("break-glass reason echoed in %q", pe.Issues[0].Diagnostics)
			}
		} else if subj.Purpose != "" && !authz.KnownPurpose(subj.Purpose) {
			t.Fatalf("unknown purpose %q accepted", subj.Purpose)
		}
		v, err := parseETag(etagH)
		classified(err)
		if err == nil {
			// Round trip: what we write is what we read.
			if back, err := parseETag(etag(v)); err != nil || back != v {
				t.Fatalf("etag round trip %d -> %q -> %d, %v", v, etag(v), back, err)
			}
		}
		q, err := queryParams(r, historyParams)
		classified(err)
		if err == nil {
			for k := range q {
				if !historyParams[k] {
					t.Fatalf("unknown parameter %q passed through", k)
				}
			}
		}
	})
}

func TestParseETag(t *testing.T) {
	for in, want := range map[string]int64{`W/"3"`: 3, `"3"`: 3, `3`: 3, ` W/"0" `: 0} {
		if got, err := parseETag(in); err != nil || got != want {
			t.Errorf("parseETag(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", `W/""`, `W/"x"`, `W/"-2"`, `W/"` + strconv.Itoa(1) + `0000000000000000000000"`} {
		if _, err := parseETag(in); err == nil {
			t.Errorf("parseETag(%q) accepted", in)
		}
	}
	_ = http.MethodGet
}
