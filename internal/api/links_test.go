package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
)

// linkRel returns the URL of relation rel in a Link header, parsed as
// common Link parsers do: link-values split at ',' and parameters at ';'.
func linkRel(header, rel string) string {
	for _, v := range strings.Split(header, ",") {
		parts := strings.Split(v, ";")
		u := strings.Trim(strings.TrimSpace(parts[0]), "<>")
		for _, p := range parts[1:] {
			if strings.TrimSpace(p) == `rel="`+rel+`"` {
				return u
			}
		}
	}
	return ""
}

func linkEscape(u string) string {
	return strings.NewReplacer(",", "%2C", ";", "%3B", "|", "%7C", " ", "%20").Replace(u)
}

func bundleLink(t *testing.T, r *apptest.Response, rel string) string {
	t.Helper()
	links, _ := r.JSON(t)["link"].([]any)
	for _, l := range links {
		if m := l.(map[string]any); m["relation"] == rel {
			return m["url"].(string)
		}
	}
	return ""
}

// Pages carry total by default (search, history, $everything), and
// _total=none leaves it out; every page has self and first links, in
// the Bundle and in a Link header whose URLs a naive parser splits
// correctly (',' ';' '|' percent-encoded), and following the header's
// next link with a plain HTTP client gives the same next page.
func TestTotalsAndLinks(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		admin := w.Tokens[authz.RoleAdmin]
		pid := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","gender":"female"}`)
		for range 3 {
			w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/`+pid+`"}}`)
		}
		search := "/fhir/Observation?code=http://loinc.org|8867-4,http://loinc.org|9279-1&status=final&_count=2"
		for _, c := range []struct {
			path  string
			total float64
		}{
			{search, 3},
			{"/fhir/Observation/_history?_count=2", 3},
			{"/fhir/Patient/" + pid + "/$everything?_count=2", 4},
		} {
			r := w.Do(t, "GET", c.path, admin, nil)
			if r.Status != 200 {
				t.Fatalf("%s: %d %.300s", c.path, r.Status, r.Body)
			}
			if got, _ := r.JSON(t)["total"].(float64); got != c.total {
				t.Errorf("%s: total %v, want %v", c.path, r.JSON(t)["total"], c.total)
			}
			next := bundleLink(t, r, "next")
			if next == "" || bundleLink(t, r, "first") == "" || bundleLink(t, r, "self") == "" {
				t.Errorf("%s: links %v", c.path, r.JSON(t)["link"])
			}
			h := r.Header.Get("Link")
			if strings.Contains(h, "|") {
				t.Errorf("%s: Link header has an unencoded '|': %s", c.path, h)
			}
			hn := linkRel(h, "next")
			if hn != linkEscape(next) || linkRel(h, "self") == "" || linkRel(h, "first") == "" {
				t.Errorf("%s: Link header %q, Bundle next %q", c.path, h, next)
			}
			// The encoded next URL pages exactly as the Bundle's.
			u, err := url.Parse(hn)
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest("GET", w.Server.URL+u.RequestURI(), nil)
			req.Header.Set("Authorization", "Bearer "+admin)
			resp, err := w.Server.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			plain := w.Do(t, "GET", strings.TrimPrefix(next, w.Server.URL), admin, nil)
			if resp.StatusCode != 200 || plain.Status != 200 {
				t.Errorf("%s: next by header %d, by Bundle %d", c.path, resp.StatusCode, plain.Status)
			}
			if got, _ := plain.JSON(t)["total"].(float64); got != c.total {
				t.Errorf("%s: second page total %v, want %v", c.path, plain.JSON(t)["total"], c.total)
			}
		}
		none := w.Do(t, "GET", search+"&_total=none", admin, nil).JSON(t)
		if _, has := none["total"]; has {
			t.Errorf("_total=none: total %v", none["total"])
		}
		single := w.Do(t, "GET", "/fhir/Patient?_id="+pid, admin, nil)
		if linkRel(single.Header.Get("Link"), "self") == "" || single.JSON(t)["total"] != float64(1) {
			t.Errorf("single page: Link %q, total %v", single.Header.Get("Link"), single.JSON(t)["total"])
		}
	})
}
