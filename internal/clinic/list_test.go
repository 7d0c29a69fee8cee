package clinic_test

import (
	"bytes"
	"net/url"
	"slices"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/clinic"
	"github.com/wardhealth/ward/internal/config"
)

// TestPatientListBoundsAndCursor: the name-sorted list refuses more
// candidates than WARD_CLINIC_LIST_CAP with list-too-large; its cursor
// continues strictly after the last patient shown while patients are
// registered between pages; an upload over WARD_MAX_BODY_BYTES is 413.
func TestPatientListBoundsAndCursor(t *testing.T) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			w := apptest.Start(t, b, func(c *config.Config) { c.ClinicListCap = 5; c.MaxBodyBytes = 4096 })
			c := newContract(t, w)
			P := w.Tokens[authz.RolePhysician]
			add := func(last string) string {
				var p clinic.Patient
				r := c.json("POST", "/patients", P, clinic.Patient{FirstName: "X", LastName: last, DateOfBirth: "2000-01-01"})
				if r.Status != 201 {
					t.Fatalf("register: %d %s", r.Status, r.Body)
				}
				r.json(t, &p)
				return p.ID
			}
			for _, n := range []string{"Baker", "Dalton", "Fischer"} {
				add(n)
			}
			var page clinic.PatientList
			c.json("GET", "/patients?limit=2", P, nil).json(t, &page)
			if len(page.Items) != 2 || page.Items[1].LastName != "Dalton" || page.NextCursor == "" {
				t.Fatalf("first page: %+v", page)
			}
			// Registered between pages: before the cursor (not shown, as
			// in keyset paging) and after it (shown).
			add("Adams")
			add("Evans")
			var rest []string
			for cur := page.NextCursor; cur != ""; {
				var p clinic.PatientList
				c.json("GET", "/patients?limit=2&cursor="+url.QueryEscape(cur), P, nil).json(t, &p)
				for _, it := range p.Items {
					rest = append(rest, it.LastName)
				}
				cur = p.NextCursor
			}
			if !slices.Equal(rest, []string{"Evans", "Fischer"}) {
				t.Errorf("after the cursor: %v", rest)
			}
			add("Garcia") // six candidates, cap five
			r := c.json("GET", "/patients", P, nil)
			var pb problemBody
			r.json(t, &pb)
			if r.Status != 422 || pb.Type != clinic.ProblemBase+"list-too-large" {
				t.Errorf("over the cap: %d %s", r.Status, r.Body)
			}
			ct, form := multipartForm(t, map[string]string{"patient_id": "x"}, "application/pdf", bytes.Repeat([]byte("a"), 8192))
			r = c.do("POST", "/documents", P, ct, form)
			r.json(t, &pb)
			if r.Status != 413 || pb.Type != clinic.ProblemBase+"payload-too-large" {
				t.Errorf("upload over the body limit: %d %s", r.Status, r.Body)
			}
		})
	}
}
