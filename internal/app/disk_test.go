package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/loadgen"
	"github.com/wardhealth/ward/internal/store"
)

// The disk cost of a created resource (issue #24): a realistic Patient
// (loadgen.RealisticPatient, what `ward bench` posts) created through the
// API, everything included: its sealed body, its current row, its index
// rows and their indexes, its ledger record with the record's patient row
// and Merkle tree nodes, its outbox events and its patient data key. The
// bytes are the growth of every table and index between before and after
// the creates, divided by their number, and printed by part.
//
// The bounds hold what storing each body once reached (SQLite 12.5 KB ->
// 8.5 KB, PostgreSQL 12.2 KB -> 9.5 KB); the copy in resources would break
// both. The target, 6 KB on SQLite, is not met: with 4 KiB pages
// a 2.3 KB sealed Patient fills a page on its own (4.1 KB), and the two
// outbox events cost 1.4 KB (docs/benchmarks.md, "Disk per created
// resource").
//
// WARD_DISK_PATIENTS sets how many Patients (default 1,000); the creates
// run from 8 clients at once, so that the writer commits them in groups
// as it does under load.
func TestDiskPerPatient(t *testing.T) {
	n := 1000
	if s := os.Getenv("WARD_DISK_PATIENTS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			t.Fatalf("WARD_DISK_PATIENTS=%q", s)
		}
	}
	budget := map[apptest.Backend]float64{apptest.SQLite: 9000, apptest.Postgres: 10500} // bytes per Patient
	for _, backend := range apptest.Backends {
		t.Run(string(backend), func(t *testing.T) {
			w := apptest.Start(t, backend, func(c *config.Config) { c.APIRate = 0 })
			ds, ok := w.App.Store.(store.DiskSizer)
			if !ok {
				t.Fatal("store does not measure its disk usage")
			}
			before := diskUsage(t, ds)
			createRealisticPatients(t, w, n, 8)
			after := diskUsage(t, ds)
			per := map[string]float64{} // table -> bytes per Patient
			var total float64
			var lines []string
			for name, a := range after {
				d := float64(a.Bytes-before[name].Bytes) / float64(n)
				if d == 0 {
					continue
				}
				per[a.Table] += d
				total += d
				lines = append(lines, fmt.Sprintf("  %-34s %-26s %8.0f", a.Table, name, d))
			}
			sort.Strings(lines)
			t.Logf("bytes per realistic Patient, %d created on %s, by table and index:\n%s", n, backend, strings.Join(lines, "\n"))
			var parts []string
			for _, p := range diskParts {
				var b float64
				for _, tb := range p.tables {
					b += per[tb]
					delete(per, tb)
				}
				parts = append(parts, fmt.Sprintf("  %-40s %8.0f", p.name, b))
			}
			for tb, b := range per {
				parts = append(parts, fmt.Sprintf("  %-40s %8.0f", tb, b))
			}
			t.Logf("by part:\n%s\n  %-40s %8.0f", strings.Join(parts, "\n"), "total", total)
			if total > budget[backend] {
				t.Errorf("%.0f bytes on disk per realistic Patient, want at most %.0f", total, budget[backend])
			}
		})
	}
}

// diskParts names the parts of a created resource's footprint.
var diskParts = []struct {
	name   string
	tables []string
}{
	{"versions (sealed body) + indexes", []string{"resource_versions"}},
	{"current rows + indexes", []string{"resources"}},
	{"search index rows + indexes", []string{"search_token", "search_date", "search_number", "search_string", "search_prefix"}},
	{"ledger record + patient rows", []string{"audit_log", "audit_patients"}},
	{"ledger Merkle tree nodes and tiles", []string{"audit_tree", "audit_tree_tiles"}},
	{"outbox event", []string{"outbox"}},
}

func diskUsage(t *testing.T, ds store.DiskSizer) map[string]store.Relation {
	t.Helper()
	rs, err := ds.DiskUsage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.Relation{}
	for _, r := range rs {
		out[r.Name] = r
	}
	return out
}

// createRealisticPatients posts n realistic Patients from clients
// goroutines, each Patient one create.
func createRealisticPatients(t testing.TB, w *apptest.Ward, n, clients int) {
	t.Helper()
	bodies := make([][]byte, n)
	rng := rand.New(rand.NewPCG(24, 6))
	for i := range bodies {
		bodies[i] = loadgen.RealisticPatient(rng)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		fail string
		next = make(chan []byte)
	)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range next {
				if err := postCreate(w, "/fhir/Patient", w.Tokens[authz.RoleAdmin], b); err != nil {
					mu.Lock()
					fail = err.Error()
					mu.Unlock()
				}
			}
		}()
	}
	for _, b := range bodies {
		next <- b
	}
	close(next)
	wg.Wait()
	if fail != "" {
		t.Fatal(fail)
	}
}

// postCreate posts body and expects 201; safe to call from any goroutine.
func postCreate(w *apptest.Ward, path, token string, body []byte) error {
	req, err := http.NewRequest("POST", w.Server.URL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := w.Server.Client().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 {
		return fmt.Errorf("create: %d %.300s", resp.StatusCode, b)
	}
	return nil
}
