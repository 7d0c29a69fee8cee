package clinic_test

import (
	"encoding/json"
	"net/url"
	"sync"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/clinic"
)

// TestCursorsStableUnderConcurrentWrites pages /immunizations and
// /patients one or two items at a time while other requests create and
// update records concurrently: every record that existed before the first
// page is listed exactly once, and no record is listed twice.
func TestCursorsStableUnderConcurrentWrites(t *testing.T) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			w := apptest.Start(t, b)
			A := w.Tokens[authz.RoleAdmin]
			post := func(path string, v any) string {
				body, _ := json.Marshal(v)
				r := w.Do(t, "POST", path, A, body, "Content-Type: application/json")
				if r.Status != 201 {
					t.Errorf("%s: %d %s", path, r.Status, r.Body)
					return ""
				}
				id, _ := r.JSON(t)["id"].(string)
				return id
			}
			pat := post("/patients", clinic.Patient{FirstName: "Page", LastName: "Mmiddle", DateOfBirth: "1970-01-01"})
			before := map[string]bool{}
			var doses []string
			for range 7 {
				id := post("/immunizations", clinic.Immunization{PatientID: pat, VaccineCode: "03", OccurredOn: "2020-01-01"})
				before[id] = true
				doses = append(doses, id)
			}
			patientsBefore := map[string]bool{pat: true}
			for _, n := range []string{"Baker", "Nolan", "Young"} {
				patientsBefore[post("/patients", clinic.Patient{FirstName: "X", LastName: n, DateOfBirth: "1980-01-01"})] = true
			}

			// Writers: new doses and patients, updates of existing doses.
			var wg sync.WaitGroup
			stop := make(chan struct{})
			// Each writer round is signalled; the pager waits for one
			// between pages, so writes land between (and during) pages.
			round := make(chan struct{}, 1000)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					post("/immunizations", clinic.Immunization{PatientID: pat, VaccineCode: "08", OccurredOn: "2021-01-01"})
					post("/patients", clinic.Patient{FirstName: "X", LastName: []string{"Aardvark", "Mzzz", "Zulu"}[i%3], DateOfBirth: "1990-01-01"})
					body, _ := json.Marshal(clinic.Immunization{PatientID: pat, VaccineCode: "03", OccurredOn: "2020-01-02", LotNumber: "L" + string(rune('A'+i%26))})
					if r := w.Do(t, "PUT", "/immunizations/"+doses[i%len(doses)], A, body, "Content-Type: application/json"); r.Status != 200 {
						t.Errorf("update: %d %s", r.Status, r.Body)
					}
					round <- struct{}{}
				}
			}()

			pageAll := func(first string, next func(cursor string) string) map[string]int {
				seen := map[string]int{}
				cur := ""
				for n := 0; n < 200; n++ {
					path := first
					if cur != "" {
						path = next(cur)
					}
					r := w.Do(t, "GET", path, A, nil)
					if r.Status != 200 {
						t.Fatalf("%s: %d %s", path, r.Status, r.Body)
					}
					var l struct {
						Items      []struct{ ID string }
						NextCursor string `json:"next_cursor"`
					}
					json.Unmarshal(r.Body, &l)
					for _, it := range l.Items {
						seen[it.ID]++
					}
					if cur = l.NextCursor; cur == "" {
						return seen
					}
					<-round
				}
				t.Fatal("paging did not end")
				return nil
			}
			doseSeen := pageAll("/immunizations?patient_id="+pat+"&limit=2", func(c string) string {
				return "/immunizations?patient_id=" + pat + "&limit=2&cursor=" + url.QueryEscape(c)
			})
			patSeen := pageAll("/patients?limit=1", func(c string) string { return "/patients?limit=1&cursor=" + url.QueryEscape(c) })
			close(stop)
			wg.Wait()

			for name, c := range map[string]struct{ before, seen map[string]int }{
				"immunizations": {counts(before), doseSeen}, "patients": {counts(patientsBefore), patSeen},
			} {
				for id := range c.before {
					if c.seen[id] != 1 {
						t.Errorf("%s: %s listed %d times, want once", name, id, c.seen[id])
					}
				}
				for id, n := range c.seen {
					if n > 1 {
						t.Errorf("%s: %s listed %d times", name, id, n)
					}
				}
			}
		})
	}
}

func counts(m map[string]bool) map[string]int {
	out := map[string]int{}
	for k := range m {
		out[k] = 1
	}
	return out
}
