// Package storetest is the conformance suite of the storage contract. Every
// store.Store implementation runs it (SQLite always, PostgreSQL whenever a
// server is reachable and always in CI).
package storetest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/events"
	"github.com/wardhealth/ward/internal/store"
)

// Opener opens a fresh, empty, migrated store for one test.
type Opener func(t *testing.T) store.Store

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)

func write(tenant, typ, id string, v int64, body string) store.Write {
	return store.Write{Tenant: tenant, Type: typ, ID: id, Version: v, LastUpdated: t0.Add(time.Duration(v) * time.Second), Body: []byte(body)}
}

func rec(tenant, action string, entities ...string) *audit.Record {
	return &audit.Record{Time: t0, Tenant: tenant, RequestID: "req", Actor: "u1", Role: "physician", Action: action, Entities: entities}
}

// VerifyLedger walks the whole ledger and checks the chain against the head.
func VerifyLedger(t *testing.T, st store.Store) int {
	t.Helper()
	ctx := context.Background()
	n := 0
	err := st.AuditScan(ctx, 0, func(head audit.Head, recs iter.Seq2[*audit.Record, error]) error {
		counted := func(yield func(*audit.Record, error) bool) {
			for r, err := range recs {
				n++
				if !yield(r, err) {
					return
				}
			}
		}
		return audit.Verify(counted, &head)
	})
	if err != nil {
		t.Fatalf("ledger does not verify: %v", err)
	}
	return n
}

// Run runs the suite: the guard cases, then every case of the table, each
// a subtest of its own (go test -run 'TestConformance/<name>').
func Run(t *testing.T, open Opener) {
	runGuards(t, open)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, open) })
	}
}

// cases are the conformance cases in the order they run.
var cases = []struct {
	name string
	run  func(t *testing.T, open Opener)
}{
	{"CreateReadVersions", testCreateReadVersions},
	{"TenantsAreIsolated", testTenantsAreIsolated},
	{"VersionConflictIsAuditedAndWritesNothing", testVersionConflictIsAuditedAndWritesNothing},
	{"ConcurrentCommitsFormOneChain", testConcurrentCommitsFormOneChain},
	{"ConcurrentUpdatesOneWinnerPerVersion", testConcurrentUpdatesOneWinnerPerVersion},
	{"SameResourceTwiceInOneBatch", testSameResourceTwiceInOneBatch},
	{"DeleteKeepsHistory", testDeleteKeepsHistory},
	{"HistoryPagingAndSince", testHistoryPagingAndSince},
	{"HistoryWhereOnCurrentRow", testHistoryWhereOnCurrentRow},
	{"ExistsAnswersAlternativesInOneCall", testExistsAnswersAlternativesInOneCall},
	{"ListByIDAndCursor", testListByIDAndCursor},
	{"BodiesOfOneReadAreIndependent", testBodiesOfOneReadAreIndependent},
	{"ReadsReturnTheCurrentBody", testReadsReturnTheCurrentBody},
	{"SearchPagesBackward", testSearchPagesBackward},
	{"UsersAndKeys", testUsersAndKeys},
	{"KeyFence", testKeyFence},
	{"ClientsAndAssertionReplay", testClientsAndAssertionReplay},
	{"TenantsClientsAndCodes", testTenantsClientsAndCodes},
	{"RevokedTokens", testRevokedTokens},
	{"DisabledSubjects", testDisabledSubjects},
	{"RefreshTokens", testRefreshTokens},
	{"OneBadUnitDoesNotFailTheBatch", testOneBadUnitDoesNotFailTheBatch},
	{"AuditRecordsRoundTrip", testAuditRecordsRoundTrip},
	{"LedgerCursors", testLedgerCursors},
	{"LedgerTree", testLedgerTree},
	{"LedgerScanTree", testLedgerScanTree},
	{"Witnessing", testWitnessing},
	{"LedgerArchiveBoundary", testLedgerArchiveBoundary},
	{"LedgerPatientIndex", testLedgerPatientIndex},
}

func testOneBadUnitDoesNotFailTheBatch(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	// A user whose id is taken passes the username check but fails at
	// insert, aborting its transaction. Units batched with it must
	// still commit.
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewUser{User: &store.User{ID: "same", Tenant: "a", Username: "x", Role: "user", PasswordHash: "h", Created: t0}}}}))
	var wg sync.WaitGroup
	results := make([]error, 40)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 20 {
				results[i] = st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewUser{User: &store.User{ID: "same", Tenant: "a", Username: "y", Role: "user", PasswordHash: "h", Created: t0}}}, Audit: []*audit.Record{rec("a", "user-add")}})
				return
			}
			results[i] = st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Patient", fmt.Sprint("p", i), 1, "x")}, Audit: []*audit.Record{rec("a", "create")}})
		}()
	}
	wg.Wait()
	for i, err := range results {
		if i == 20 {
			if !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("bad unit: %v, want ErrUnavailable", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("unit %d failed with the bad one: %v", i, err)
		}
	}
	if n := VerifyLedger(t, st); n != 39 {
		t.Fatalf("%d audit records, want 39 (the failed unit's record is not written)", n)
	}
}

func testAuditRecordsRoundTrip(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	r := &audit.Record{Time: t0, Tenant: "a", RequestID: "r1", Actor: "u1", Role: "nurse", Action: "search-type", ResourceType: "Patient",
		Entities: []string{"Patient/x/_history/1", "Patient/y/_history/4"}, Outcome: audit.OutcomeSuccess, Detail: "d", Purpose: "TREAT", Emergency: true}
	must(t, st.Commit(ctx, &store.Unit{Audit: []*audit.Record{r}}))
	var got []*audit.Record
	got = Records(t, st)
	if len(got) != 1 {
		t.Fatalf("%d records", len(got))
	}
	g := got[0]
	if g.Seq != 1 || !g.Time.Equal(t0) || g.Actor != "u1" || fmt.Sprint(g.Entities) != fmt.Sprint(r.Entities) || !g.Emergency || g.Purpose != "TREAT" || g.Hash != r.Hash || g.PrevHash != audit.Genesis {
		t.Fatalf("round trip: %+v", g)
	}
	VerifyLedger(t, st)
}

// Records returns the whole ledger.
func Records(t testing.TB, st store.Store) []*audit.Record {
	t.Helper()
	var out []*audit.Record
	err := st.AuditScan(context.Background(), 0, func(_ audit.Head, recs iter.Seq2[*audit.Record, error]) error {
		for r, err := range recs {
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func ids(vs []store.Version) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.ID)
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// InterleavedWriters commits concurrently through two stores on the same
// database (two processes, or two nodes) and checks the ledger is one
// unbroken chain with every record in it.
func InterleavedWriters(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		for j, st := range []store.Store{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("p%d-%d", j, i)
				errs <- st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Patient", id, 1, "x")}, Audit: []*audit.Record{rec("a", "create")}})
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := VerifyLedger(t, a); got != 2*n {
		t.Fatalf("%d records, want %d", got, 2*n)
	}
}

// InterleavedLedgerAppends has two stores on one database (two nodes)
// append ledger records alone, as reads do, concurrently and interleaved
// with the other's, then checks the ledger is one unbroken chain holding
// every record once: a node whose idea of the head is stale must not append
// after it.
func InterleavedLedgerAppends(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	before := VerifyLedger(t, a)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for j, st := range []store.Store{a, b} {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range n / 4 {
					errs <- st.Commit(ctx, &store.Unit{Audit: []*audit.Record{rec("a", "read", fmt.Sprintf("Patient/p%d-%d", j, i))}})
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := VerifyLedger(t, a); got != before+2*n {
		t.Fatalf("%d records, want %d", got, before+2*n)
	}
}

// BenchmarkLedgerAppend measures one audit record made durable through
// Commit: sequentially (one record per transaction, the latency a lone
// request sees) and from 32 goroutines (group commit at work).
func BenchmarkLedgerAppend(b *testing.B, st store.Store) {
	ctx := context.Background()
	newRec := func() *audit.Record {
		return &audit.Record{Time: time.Now(), Tenant: "default", RequestID: "0123456789abcdef01234567", Actor: "4f9c3a1e-7d2b-4c55-9e0f-1a2b3c4d5e6f",
			Role: "physician", Action: "read", ResourceType: "Patient", Entities: []string{"Patient/6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9/_history/3"}}
	}
	b.Run("sequential", func(b *testing.B) {
		for b.Loop() {
			if err := st.Commit(ctx, &store.Unit{Audit: []*audit.Record{newRec()}}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel32", func(b *testing.B) {
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := st.Commit(ctx, &store.Unit{Audit: []*audit.Record{newRec()}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// BenchmarkCreateOutbox measures what the outbox costs a create's
// transaction: the same unit (a new ~2 KiB sealed version, 40 index rows,
// its audit record) committed from 8 goroutines with the two events a
// Patient create emits (built as records builds them) and without any.
// The store commit is the whole of the outbox's cost to a create and only
// a part of a create's (validation, sealing, HTTP come on top), so the
// share measured here bounds the share of a create through the API.
//
// "outbox" and "none" time each kind alone (ns/op, for benchstat).
// "paired" is the stable measure on a loaded machine: rounds of both
// kinds, alternating which goes first, each timed by the CPU it used
// (this process, plus cpu when not nil: the database server's), and
// reported as the median over rounds of outbox/none - 1 (outbox-cpu-%,
// and outbox-wall-% by the clock).
func BenchmarkCreateOutbox(b *testing.B, st store.Store, cpu func() time.Duration) {
	ctx := context.Background()
	body := make([]byte, 2048)
	var n atomic.Int64
	unit := func(outbox bool) *store.Unit {
		id := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), n.Add(1))
		ix := &store.Index{RefHash: n.Load()}
		for i := range 40 {
			ix.Tokens = append(ix.Tokens, store.TokenRow{P: int32(i % 12), S: 7, H: n.Load()*64 + int64(i)})
		}
		now := time.Now()
		u := &store.Unit{Writes: []store.Write{{Tenant: "default", Type: "Patient", ID: id, Version: 1, LastUpdated: now, Body: body, Index: ix}}}
		u.AddAudit(&audit.Record{Time: now, Tenant: "default", RequestID: "0123456789abcdef01234567", Actor: "4f9c3a1e-7d2b-4c55-9e0f-1a2b3c4d5e6f",
			Role: "physician", Action: "create", ResourceType: "Patient", Entities: []string{"Patient/" + id + "/_history/1"}})
		if outbox {
			ref := "Patient/" + id
			d := events.Data{ResourceType: "Patient", ID: id, VersionID: "1", Patients: []string{ref}, Actor: "4f9c3a1e-7d2b-4c55-9e0f-1a2b3c4d5e6f", Role: "physician", Action: "create", RequestID: "0123456789abcdef01234567"}
			u.Parts = append(u.Parts, store.Outbox{Events: []events.Event{
				events.New("default", events.ResourceCreated, ref, ref, now, d),
				events.New("default", events.PatientCreated, ref, ref, now, d),
			}})
		}
		return u
	}
	for _, c := range []struct {
		name   string
		outbox bool
	}{{"outbox", true}, {"none", false}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := st.Commit(ctx, unit(c.outbox)); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
	b.Run("paired", func(b *testing.B) {
		usage := func() time.Duration {
			var ru syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
			d := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			if cpu != nil {
				d += cpu()
			}
			return d
		}
		// phase commits k units of one kind from 8 goroutines.
		phase := func(outbox bool, k int) (cpu, wall time.Duration) {
			c0, t0 := usage(), time.Now()
			var next atomic.Int64
			var wg sync.WaitGroup
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(k) {
						if err := st.Commit(ctx, unit(outbox)); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			return usage() - c0, time.Since(t0)
		}
		// Many short rounds: the load of a shared machine drifts within
		// seconds, and a round's two phases see about the same of it.
		const rounds = 16
		per := max(b.N/(2*rounds), 1)
		var cpuOv, wallOv, cpuNone, cpuOut []float64
		for r := range rounds {
			var out, none [2]time.Duration
			if r%2 == 0 {
				none[0], none[1] = phase(false, per)
				out[0], out[1] = phase(true, per)
			} else {
				out[0], out[1] = phase(true, per)
				none[0], none[1] = phase(false, per)
			}
			cpuOv = append(cpuOv, float64(out[0])/float64(none[0])-1)
			wallOv = append(wallOv, float64(out[1])/float64(none[1])-1)
			cpuNone = append(cpuNone, float64(none[0].Microseconds())/float64(per))
			cpuOut = append(cpuOut, float64(out[0].Microseconds())/float64(per))
		}
		b.Logf("rounds: outbox-cpu %v, outbox-wall %v", percents(cpuOv), percents(wallOv))
		b.ReportMetric(100*median(cpuOv), "outbox-cpu-%")
		b.ReportMetric(100*median(wallOv), "outbox-wall-%")
		b.ReportMetric(median(cpuNone), "cpu-us/create-none")
		b.ReportMetric(median(cpuOut), "cpu-us/create-outbox")
	})
}

// median of v (v is reordered).
func median(v []float64) float64 {
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func percents(v []float64) string {
	var b strings.Builder
	for i, x := range v {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%+.1f%%", 100*x)
	}
	return b.String()
}

// MigrateUp runs the Up section of a goose SQL migration file (a path
// relative to the calling test's package) on db, as goose would: for
// tests that write rows under the schema before a migration and check
// what the migration makes of them.
func MigrateUp(t *testing.T, db *sql.DB, file string) {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	up, _, ok := strings.Cut(string(src), "-- +goose Down")
	if !ok {
		t.Fatalf("%s: no Down section", file)
	}
	if _, err := db.ExecContext(context.Background(), up); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}
