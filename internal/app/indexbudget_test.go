package app_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/loadgen"
	"github.com/wardhealth/ward/internal/store"
)

// The index budget of issue #24, measured through the store as `ward
// stats` measures it: the realistic Patient that `ward bench` posts (two
// names, two identifiers, three telecoms, an address, a contact) costs at
// most 40 index rows, and on SQLite at most 2 KiB of index pages (each
// table's bytes per row times the Patient's rows in it, the resources
// table's search indexes included). Before the search_prefix layout it
// was 171 rows and 8.8 KB. PostgreSQL's rows carry a 24-byte tuple header
// and a line pointer each, so its budget here is what the layout reaches
// there (docs/benchmarks.md); it was 14 KB before.
func TestRealisticPatientIndexBudget(t *testing.T) {
	const patients = 400
	budget := map[apptest.Backend]float64{apptest.SQLite: 2048, apptest.Postgres: 4096}
	for _, backend := range apptest.Backends {
		t.Run(string(backend), func(t *testing.T) {
			w := apptest.Start(t, backend)
			rng := rand.New(rand.NewPCG(24, 24))
			for start := 0; start < patients; start += 100 {
				var entries []string
				for range 100 {
					entries = append(entries, fmt.Sprintf(`{"resource":%s,"request":{"method":"POST","url":"Patient"}}`, loadgen.RealisticPatient(rng)))
				}
				body := `{"resourceType":"Bundle","type":"transaction","entry":[` + strings.Join(entries, ",") + `]}`
				if r := w.Do(t, "POST", "/fhir", w.Tokens[authz.RoleAdmin], []byte(body)); r.Status != 200 {
					t.Fatalf("load: %d %.300s", r.Status, r.Body)
				}
			}
			tables, n, err := w.App.Store.(store.Sizer).IndexSize(context.Background(), "Patient")
			if err != nil {
				t.Fatal(err)
			}
			if n != patients {
				t.Fatalf("%d Patients", n)
			}
			var rows, bytes float64
			for _, ts := range tables {
				if strings.HasPrefix(ts.Name, "resources") || ts.Rows == 0 {
					if ts.Rows > 0 {
						bytes += float64(ts.Bytes) / float64(ts.Rows) * float64(ts.RowsFor) / float64(n)
					}
					continue
				}
				each := float64(ts.RowsFor) / float64(n)
				rows += each
				bytes += float64(ts.Bytes) / float64(ts.Rows) * each
				t.Logf("%s: %.2f rows, %.0f bytes per Patient", ts.Name, each, float64(ts.Bytes)/float64(ts.Rows)*each)
			}
			t.Logf("%.1f index rows and %.0f bytes per Patient", rows, bytes)
			if rows > 40 {
				t.Errorf("%.1f index rows per Patient, want at most 40", rows)
			}
			if bytes > budget[backend] {
				t.Errorf("%.0f index bytes per Patient, want at most %.0f", bytes, budget[backend])
			}
		})
	}
}
