package app_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/store"
)

// Ledger speed: WARD_AUDIT_SPEED_ROWS=10000000 go test ./internal/app/
// -run TestAuditEventSpeed -v -timeout 3h builds a ledger of that many
// records per backend with generateLedger and measures, through the HTTP
// API as a privacy officer, the p50 of AuditEvent?patient=&date=ge (the
// last year of one patient) and of Patient/[id]/$disclosures (six years).
// It fails when a p50 reaches 20 ms. Unset, it is skipped: the data takes
// minutes to build.

const (
	speedPatients = 100_000             // one record names one of these
	speedSpan     = 6 * 365 * 24 * 3600 // seconds of history the records spread over
	speedSeqBase  = 1_000_000_000_000   // generated seqs, far above the live chain's
)

// generateLedger inserts n ledger records of tenant with their patient
// index rows, inside the database (PostgreSQL generate_series, SQLite a
// recursive CTE): record g is at time end - span + g*span/n, names patient
// "bp<g mod 100000>" and one Observation, by one of 5,000 users. The rows
// are valid index rows over records with a zero hash chain: they are for
// the read path alone (`ward audit verify` reports them broken), and their
// seqs start at speedSeqBase so that the server's own chain goes on
// unaffected below them.
func generateLedger(ctx context.Context, db *sql.DB, dialect, tenant string, n int64, end time.Time) error {
	startUS := end.Add(-speedSpan * time.Second).UnixMicro()
	stepUS := speedSpan * 1_000_000 / n
	gen := `SELECT g FROM generate_series(1, $1::bigint) AS g`
	// SQLite's || binds tighter than %: parenthesize.
	cast := func(s string) string { return "(" + s + ")" }
	if dialect == "sqlite" {
		gen = `WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < ?1) SELECT g FROM s`
	} else {
		cast = func(s string) string { return "(" + s + ")::text" }
	}
	p := func(i int) string {
		if dialect == "sqlite" {
			return "?" + strconv.Itoa(i)
		}
		return "$" + strconv.Itoa(i)
	}
	zero := `x'00'`
	if dialect != "sqlite" {
		zero = `'\x00'::bytea`
	}
	const batch = 1_000_000
	for from := int64(0); from < n; from += batch {
		cnt := min(batch, n-from)
		args := []any{cnt, speedSeqBase + from, startUS + from*stepUS, stepUS, tenant}
		log := `INSERT INTO audit_log (seq, recorded_at, tenant, request_id, actor, role, action, resource_type, entities, outcome, detail, emergency, purpose, prev_hash, hash, patients)
			SELECT ` + p(2) + ` + g, ` + p(3) + ` + g * ` + p(4) + `, ` + p(5) + `, 'bench', 'bu' || ` + cast("g % 5000") + `,
				CASE WHEN g % 3 = 0 THEN 'nurse' ELSE 'physician' END, CASE WHEN g % 4 = 0 THEN 'search-type' ELSE 'read' END, 'Observation',
				'["Observation/o' || ` + cast("g") + ` || '/_history/1"]', 0, '', CASE WHEN g % 1000 = 0 THEN 1 ELSE 0 END, 'TREAT', ` + zero + `, ` + zero + `,
				'bp' || ` + cast("g % "+strconv.Itoa(speedPatients)) + `
			FROM (` + gen + `) AS x`
		pats := `INSERT INTO audit_patients (seq, patient, tenant, recorded_at)
			SELECT ` + p(2) + ` + g, 'bp' || ` + cast("g % "+strconv.Itoa(speedPatients)) + `, ` + p(5) + `, ` + p(3) + ` + g * ` + p(4) + `
			FROM (` + gen + `) AS x`
		for _, q := range []string{log, pats} {
			if _, err := db.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("generate ledger rows %d..: %w", from, err)
			}
		}
	}
	// VACUUM as autovacuum does to an insert-only table (PostgreSQL 13+
	// vacuums after autovacuum_vacuum_insert_threshold inserts): it sets
	// the visibility map that makes the audit_patients reads index-only.
	// Without it the measurement would be of a state a production ledger
	// is in only for the minutes after a bulk load.
	an := `VACUUM (ANALYZE) audit_log, audit_patients`
	if dialect == "sqlite" {
		an = `ANALYZE`
	}
	_, err := db.ExecContext(ctx, an)
	return err
}

func TestAuditEventSpeed(t *testing.T) {
	rows, _ := strconv.ParseInt(os.Getenv("WARD_AUDIT_SPEED_ROWS"), 10, 64)
	if rows <= 0 {
		t.Skip("set WARD_AUDIT_SPEED_ROWS (e.g. 10000000) to build a ledger that large and measure")
	}
	for _, backend := range apptest.Backends {
		t.Run(string(backend), func(t *testing.T) {
			w := apptest.Start(t, backend)
			ctx := context.Background()
			db := openRaw(t, w)
			end := time.Now().UTC()
			skipGenerated(t, w, rows)
			began := time.Now()
			if err := generateLedger(ctx, db, string(backend), w.Config.Tenant, rows, end); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: generated %d ledger records and their index rows in %s", backend, rows, time.Since(began).Round(time.Second))
			logPlans(t, db, string(backend), w.Config.Tenant, "bp4242", end)
			// A fresh token: the one from the start may have expired while
			// the data was built.
			po := w.Login(t, string(authz.RolePrivacyOfficer)+"-user", apptest.Password)
			yearAgo := end.AddDate(-1, 0, 0).Format("2006-01-02")
			measure := func(name string, path func(i int) string, minEvents int) {
				const n = 200
				var d []time.Duration
				events := 0
				for i := range n {
					t0 := time.Now()
					r := w.Do(t, "GET", path(i), po, nil)
					d = append(d, time.Since(t0))
					if r.Status != 200 {
						t.Fatalf("%s: %d %.300s", name, r.Status, r.Body)
					}
					if i == 0 {
						events = len(auditEvents(t, r.Body))
					}
				}
				slices.Sort(d)
				p50, p95, p99 := d[n/2], d[n*95/100], d[n*99/100]
				t.Logf("%s on %s, %d ledger records: p50 %s p95 %s p99 %s (%d AuditEvents in the first answer)", name, backend, rows, p50.Round(10*time.Microsecond), p95.Round(10*time.Microsecond), p99.Round(10*time.Microsecond), events)
				if events < minEvents {
					t.Errorf("%s: %d AuditEvents, want at least %d: the data is not what was generated", name, events, minEvents)
				}
				if p50 >= 20*time.Millisecond {
					t.Errorf("%s: p50 %s, want < 20ms", name, p50)
				}
			}
			// The store's part alone (the index walk and the join), without
			// HTTP, the audit write of each read, or rendering.
			storeP50 := func(name string, q func(i int) store.AuditQuery) {
				var d []time.Duration
				for i := range 200 {
					t0 := time.Now()
					if _, err := w.App.Store.AuditSearch(ctx, q(i)); err != nil {
						t.Fatal(err)
					}
					d = append(d, time.Since(t0))
				}
				slices.Sort(d)
				t.Logf("%s store query alone on %s: p50 %s p95 %s p99 %s", name, backend, d[100].Round(10*time.Microsecond), d[190].Round(10*time.Microsecond), d[198].Round(10*time.Microsecond))
			}
			storeP50("AuditEvent?patient=&date=ge", func(i int) store.AuditQuery {
				return store.AuditQuery{Tenant: w.Config.Tenant, Patient: "bp" + strconv.Itoa((i*7919)%speedPatients), Since: end.AddDate(-1, 0, 0), Limit: 100}
			})
			storeP50("$disclosures", func(i int) store.AuditQuery {
				return store.AuditQuery{Tenant: w.Config.Tenant, Patient: "bp" + strconv.Itoa((i*7919)%speedPatients), Since: end.AddDate(-6, 0, 0), Limit: 1000}
			})
			perPatient := int(rows / speedPatients) // records per patient over six years
			patient := func(i int) string { return "bp" + strconv.Itoa((i*7919)%speedPatients) }
			measure("AuditEvent?patient=&date=ge", func(i int) string {
				return "/fhir/AuditEvent?patient=" + patient(i) + "&date=ge" + yearAgo + "&_count=100"
			}, min(100, perPatient/6)*2/3)
			measure("$disclosures", func(i int) string {
				return "/fhir/Patient/" + patient(i) + "/$disclosures"
			}, perPatient*9/10)
		})
	}
}

// openRaw opens w's database directly, one connection, for the
// generator: on SQLite without fsync and with a 1 GiB page cache (the
// patient index is filled in random key order).
func openRaw(t testing.TB, w *apptest.Ward) *sql.DB {
	t.Helper()
	var db *sql.DB
	var err error
	if w.Backend == apptest.Postgres {
		db, err = sql.Open("pgx", w.Config.DatabaseURL)
	} else {
		db, err = sql.Open("sqlite", "file:"+filepath.Join(w.Config.DataDir, app.DatabaseFileName)+"?_pragma=busy_timeout(60000)&_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)&_pragma=cache_size(-1048576)")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	return db
}

// skipGenerated moves the phi.disclosed emitter's cursor (the one ledger
// consumer apptest.Start runs) past the n generated records. A ledger of
// that size in production was read by it as it grew; left behind, it would
// spend the measurement turning millions of generated records into outbox
// events beside the requests timed.
func skipGenerated(t testing.TB, w *apptest.Ward, n int64) {
	t.Helper()
	err := w.App.Store.Commit(context.Background(), &store.Unit{Parts: []store.Part{store.SaveCursor{Name: app.DisclosedCursor, Seq: speedSeqBase + n}}})
	if err != nil {
		t.Fatal(err)
	}
}

// logPlans logs the database's plan of the $disclosures search as the
// store runs it (sqlstore.AuditSearch: the patient index walked backwards,
// each row joined to its record and to the record's patients, one
// statement): on PostgreSQL EXPLAIN (ANALYZE, BUFFERS), on SQLite EXPLAIN
// QUERY PLAN. It is what to look at when a p50 moves.
func logPlans(t *testing.T, db *sql.DB, dialect, tenant, patient string, end time.Time) {
	t.Helper()
	cols := `l.seq, l.recorded_at, l.tenant, l.request_id, l.actor, l.role, l.action, l.resource_type, l.entities, l.outcome, l.detail, l.emergency, l.purpose, l.prev_hash, l.hash, l.address`
	agg, explain, ph := `string_agg(pp.patient, ' ')`, `EXPLAIN (ANALYZE, BUFFERS) `, "$"
	if dialect == "sqlite" {
		agg, explain, ph = `group_concat(pp.patient, ' ')`, `EXPLAIN QUERY PLAN `, "?"
	}
	search := `SELECT ` + cols + `, COALESCE(l.patients, (SELECT ` + agg + ` FROM audit_patients pp WHERE pp.seq = l.seq)) FROM audit_patients p JOIN audit_log l ON l.seq = p.seq
		WHERE p.tenant = $1 AND p.patient = $2 AND l.outcome = 0 AND p.recorded_at >= $3 AND p.recorded_at < $4 ORDER BY p.recorded_at DESC, p.seq DESC LIMIT 1000`
	search = strings.ReplaceAll(search, "$", ph)
	rows, err := db.Query(explain+search, tenant, patient, end.AddDate(-6, 0, 0).UnixMicro(), end.UnixMicro())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan strings.Builder
	n, _ := rows.Columns()
	for rows.Next() {
		vals := make([]any, len(n))
		ptrs := make([]any, len(n))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(fmt.Sprint(vals[len(vals)-1]) + "\n")
	}
	t.Logf("plan of the $disclosures search on %s:\n%s", dialect, plan.String())
}
