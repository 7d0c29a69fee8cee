package api_test

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/records"
)

// Search pages link to the previous page and the last one, in the Bundle
// and in the Link header: paging forward to the end and back by previous
// links (followed from the percent-encoded header) gives the same pages,
// under each supported kind of order (rid, a sort key with ties, two
// keys descending); the first page has no previous, the last no next,
// and the last link is the last _count matches. Every page carries the
// total.
func TestSearchPagesBackAndForth(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		admin := w.Tokens[authz.RoleAdmin]
		pid := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient"}`)
		for i := range 8 {
			// Four distinct dates for eight Observations: ties.
			w.Create(t, authz.RoleAdmin, fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"effectiveDateTime":"2024-01-0%dT10:00:00Z","subject":{"reference":"Patient/%s"}}`, 1+i%4, pid))
		}
		// Another code: not a match.
		w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"9279-1"}]},"subject":{"reference":"Patient/`+pid+`"}}`)
		get := func(t *testing.T, path string) (*apptest.Response, []string) {
			t.Helper()
			r := w.Do(t, "GET", path, admin, nil)
			if r.Status != 200 {
				t.Fatalf("%s: %d %.300s", path, r.Status, r.Body)
			}
			ids, total := searchIDs(t, r)
			if total != 8 {
				t.Fatalf("%s: total %v, want 8", path, total)
			}
			return r, ids
		}
		// follow takes rel from the Link header as a naive parser would,
		// and checks it is the Bundle's link.
		follow := func(t *testing.T, r *apptest.Response, rel string) string {
			t.Helper()
			h := linkRel(r.Header.Get("Link"), rel)
			if b := bundleLink(t, r, rel); linkEscape(b) != h {
				t.Fatalf("%s: Link header %q, Bundle %q", rel, h, b)
			}
			if h == "" {
				return ""
			}
			u, err := url.Parse(h)
			if err != nil {
				t.Fatal(err)
			}
			return u.RequestURI()
		}
		for _, sort := range []string{"", "&_sort=date", "&_sort=-date,-_id", "&_sort=-_lastUpdated"} {
			t.Run(strings.TrimPrefix(sort, "&"), func(t *testing.T) {
				path := "/fhir/Observation?code=http://loinc.org|8867-4&_count=3" + sort
				var pages [][]string
				var rs []*apptest.Response
				for p := path; p != ""; {
					r, ids := get(t, p)
					pages, rs = append(pages, ids), append(rs, r)
					p = follow(t, r, "next")
					if len(pages) > 5 {
						t.Fatal("more pages than matches")
					}
				}
				if len(pages) != 3 || len(pages[2]) != 2 {
					t.Fatalf("forward pages %v", pages)
				}
				var all []string
				for _, p := range pages {
					all = append(all, p...)
				}
				if s := slices.Clone(all); len(slices.Compact(slices.Sorted(slices.Values(s)))) != 8 {
					t.Fatalf("forward pages repeat or miss a match: %v", pages)
				}
				if follow(t, rs[0], "previous") != "" {
					t.Errorf("the first page has a previous link")
				}
				if follow(t, rs[2], "last") != "" {
					t.Errorf("the last page has a last link")
				}
				// Back from the last page by previous links.
				r := rs[2]
				for i := 1; i >= 0; i-- {
					p := follow(t, r, "previous")
					if p == "" {
						t.Fatalf("page %d has no previous link", i+1)
					}
					var ids []string
					r, ids = get(t, p)
					if !slices.Equal(ids, pages[i]) {
						t.Fatalf("previous of page %d: %v, want %v", i+1, ids, pages[i])
					}
				}
				if follow(t, r, "previous") != "" {
					t.Errorf("back at the start, a previous link: %s", bundleLink(t, r, "previous"))
				}
				// And forward again from a page reached backward.
				if n := follow(t, r, "next"); n == "" {
					t.Errorf("a page reached backward has no next link")
				} else if _, ids := get(t, n); !slices.Equal(ids, pages[1]) {
					t.Errorf("next of a page reached backward: %v, want %v", ids, pages[1])
				}
				// last: the final three matches; its previous the three before.
				lr, ids := get(t, follow(t, rs[0], "last"))
				if !slices.Equal(ids, all[5:]) {
					t.Fatalf("last page %v, want %v", ids, all[5:])
				}
				if follow(t, lr, "next") != "" {
					t.Errorf("the last page has a next link")
				}
				if _, ids := get(t, follow(t, lr, "previous")); !slices.Equal(ids, all[2:5]) {
					t.Errorf("previous of last %v, want %v", ids, all[2:5])
				}
			})
		}
		// A cursor this server did not issue is a 400, also a backward one.
		for _, c := range []string{"W1siYiIsIiJdLFsiaSIsIngiXV0", "W1siYiIsIngiXV0"} {
			if r := w.Do(t, "GET", "/fhir/Observation?_count=2&_cursor="+c, admin, nil); r.Status != 400 {
				t.Errorf("cursor %s: %d", c, r.Status)
			}
		}
	})
}

// The total of a search that spans pages is counted on the first page
// and carried in the cursors, bound to the caller and the search: a
// later page shows the first page's count (a match added in between
// does not recount it), while a cursor whose carried total was altered,
// or one used by another caller, counts again.
func TestSearchTotalCarriedInCursor(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		admin := w.Tokens[authz.RoleAdmin]
		pid := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient"}`)
		obs := `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"2339-0"}]},"subject":{"reference":"Patient/` + pid + `"}}`
		for range 3 {
			w.Create(t, authz.RoleAdmin, obs)
		}
		path := "/fhir/Observation?code=http://loinc.org|2339-0&_count=2"
		first := w.Do(t, "GET", path, admin, nil)
		if _, total := searchIDs(t, first); total != 3 {
			t.Fatalf("first page total %v", total)
		}
		next := strings.TrimPrefix(bundleLink(t, first, "next"), w.Server.URL)
		w.Create(t, authz.RoleAdmin, obs)
		r := w.Do(t, "GET", next, admin, nil)
		if _, total := searchIDs(t, r); r.Status != 200 || total != 3 {
			t.Errorf("second page: %d, total %v, want the carried 3", r.Status, total)
		}
		if _, total := searchIDs(t, w.Do(t, "GET", path, admin, nil)); total != 4 {
			t.Errorf("a new first page counts again: total %v", total)
		}
		// Another caller with the same cursor: its own count.
		nurse := w.Tokens[authz.RoleNurse]
		_, own := searchIDs(t, w.Do(t, "GET", path, nurse, nil))
		if r := w.Do(t, "GET", next, nurse, nil); r.Status != 200 {
			t.Errorf("nurse: %d %.300s", r.Status, r.Body)
		} else if _, total := searchIDs(t, r); total != own {
			t.Errorf("another caller's page: total %v, want its own %v", total, own)
		}
		// An altered total does not check: counted again.
		u, _ := url.Parse(next)
		cur, err := records.DecodePageCursor(u.Query().Get("_cursor"))
		if err != nil || cur.Total == nil || *cur.Total != 3 {
			t.Fatalf("next cursor %+v, %v", cur, err)
		}
		forged := int64(1000)
		cur.Total = &forged
		enc, _ := records.EncodePageCursor(cur)
		q := u.Query()
		q.Set("_cursor", enc)
		if _, total := searchIDs(t, w.Do(t, "GET", u.Path+"?"+q.Encode(), admin, nil)); total != 4 {
			t.Errorf("forged total: %v, want a fresh count of 4", total)
		}
	})
}
