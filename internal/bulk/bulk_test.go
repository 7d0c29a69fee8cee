package bulk_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authn"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/bulk"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
)

func admin(w *apptest.Ward) *records.Repo {
	return w.App.Records.For(authz.Subject{Tenant: w.Config.Tenant, ID: w.UserIDs[authz.RoleAdmin], Role: authz.RoleAdmin,
		Scopes: []string{authn.DefaultScope}}, "bulk-test")
}

// load imports n Patients and n Observations through the records layer.
func load(t testing.TB, w *apptest.Ward, n int) {
	t.Helper()
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"resourceType":"Patient","id":"p%d","name":[{"family":"Family%d","given":["Given"]}],"birthDate":"1980-02-03"}`+"\n", i, i)
		fmt.Fprintf(&b, `{"resourceType":"Observation","id":"o%d","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p%d"},"valueQuantity":{"value":%d,"unit":"/min"}}`+"\n", i, i, 60+i%40)
	}
	rep, err := admin(w).ImportNDJSON(context.Background(), strings.NewReader(b.String()), nil)
	if err != nil || rep.Stored != 2*n {
		t.Fatalf("load: %+v %v", rep, err)
	}
}

// TestPartsAndChunksAreBounded: a type's output is cut into files of at
// most MaxLines lines, each stored as sealed chunks of about ChunkBytes,
// and reads back whole and in order.
func TestPartsAndChunksAreBounded(t *testing.T) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			w := apptest.Start(t, b)
			load(t, w, 5)
			w.App.Bulk.Stop()
			ctx := context.Background()
			js := w.App.Store.(bulk.Store)
			small := bulk.New(js, w.App.Records, w.App.Keys, bulk.Options{MaxLines: 2, ChunkBytes: 100})
			job, err := small.Kickoff(ctx, admin(w), bulk.Request{Kind: records.ExportSystem, Types: []string{"Patient", "Observation"}})
			if err != nil {
				t.Fatal(err)
			}
			if ran, err := small.RunOnce(ctx); !ran || err != nil {
				t.Fatalf("run: %v %v", ran, err)
			}
			subj := admin(w).Subject()
			j, parts, err := small.Job(ctx, subj, job.ID)
			if err != nil || j.Status != store.ExportCompleted {
				t.Fatalf("job: %+v %v", j, err)
			}
			var shape []string
			for _, p := range parts {
				shape = append(shape, fmt.Sprintf("%s:%d", p.Type, p.Lines))
			}
			if got := strings.Join(shape, " "); got != "Patient:2 Patient:2 Patient:1 Observation:2 Observation:2 Observation:1" {
				t.Fatalf("parts %s", got)
			}
			// Each line is over 100 bytes: one chunk per line.
			if _, err := js.ExportChunk(ctx, job.ID, 0, 1); err != nil {
				t.Fatalf("second chunk of part 0: %v", err)
			}
			if _, err := js.ExportChunk(ctx, job.ID, 0, 2); err != store.ErrNotFound {
				t.Fatalf("third chunk of a 2-line part: %v", err)
			}
			var ids []string
			for _, p := range parts {
				var sb strings.Builder
				if _, err := small.Download(ctx, admin(w), job.ID, p.Part, &sb, func(int) {}); err != nil {
					t.Fatal(err)
				}
				for _, line := range strings.Split(strings.TrimSuffix(sb.String(), "\n"), "\n") {
					var r struct{ ID string }
					if err := json.Unmarshal([]byte(line), &r); err != nil {
						t.Fatalf("part %d: %v", p.Part, err)
					}
					ids = append(ids, r.ID)
				}
			}
			if got := strings.Join(ids, " "); got != "p0 p1 p2 p3 p4 o0 o1 o2 o3 o4" {
				t.Fatalf("ids in output order: %s", got)
			}
		})
	}
}

// BenchmarkExport measures a whole export job (read, open, write NDJSON,
// seal, store) of Patients and Observations on SQLite, in resources/s.
func BenchmarkExport(b *testing.B) {
	const n = 2000 // of each type
	w := apptest.Start(b, apptest.SQLite)
	load(b, w, n)
	w.App.Bulk.Stop()
	ctx := context.Background()
	svc := w.App.Bulk
	repo := admin(w)
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		if _, err := svc.Kickoff(ctx, repo, bulk.Request{Kind: records.ExportSystem, Types: []string{"Patient", "Observation"}}); err != nil {
			b.Fatal(err)
		}
		if ran, err := svc.RunOnce(ctx); !ran || err != nil {
			b.Fatalf("run: %v %v", ran, err)
		}
	}
	b.ReportMetric(float64(2*n*b.N)/time.Since(start).Seconds(), "resources/s")
}

// TestOneNodeClaimsAJob: nodes racing for a queued job (as several ward
// serve processes on one database do) never both get it.
func TestOneNodeClaimsAJob(t *testing.T) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			w := apptest.Start(t, b)
			w.App.Bulk.Stop()
			ctx := context.Background()
			js := w.App.Store.(bulk.Store)
			for round := range 5 {
				if _, err := w.App.Bulk.Kickoff(ctx, admin(w), bulk.Request{Kind: records.ExportSystem, Types: []string{"Patient"}}); err != nil {
					t.Fatal(err)
				}
				const nodes = 4
				got := make(chan string, nodes)
				for n := range nodes {
					go func() {
						now := time.Now()
						j, err := js.ClaimExportJob(ctx, fmt.Sprintf("node-%d", n), now, now.Add(time.Minute))
						switch {
						case err != nil:
							got <- "error: " + err.Error()
						case j != nil:
							got <- j.Owner
						default:
							got <- ""
						}
					}()
				}
				var owners []string
				for range nodes {
					if o := <-got; o != "" {
						owners = append(owners, o)
					}
				}
				if len(owners) != 1 || !strings.HasPrefix(owners[0], "node-") {
					t.Fatalf("round %d: claims %q, want exactly one owner", round, owners)
				}
			}
		})
	}
}
