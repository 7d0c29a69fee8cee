package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/search"
	"github.com/wardhealth/ward/internal/search/params"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/postgres"
	"github.com/wardhealth/ward/internal/store/postgres/pgtest"
	"github.com/wardhealth/ward/internal/store/sqlstore"
	"github.com/wardhealth/ward/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, pgtest.URL(t)) })
}

// open opens a store on the database at u, closed when t ends.
func open(t *testing.T, u string) *sqlstore.DB {
	t.Helper()
	st, err := postgres.Open(context.Background(), u, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// storeAndSQL opens a store on a fresh database, and a plain connection
// pool to look at its tables; both closed when t ends.
func storeAndSQL(t *testing.T) (string, *sqlstore.DB, *sql.DB) {
	t.Helper()
	u := pgtest.URL(t)
	st := open(t, u)
	return u, st, pgtest.DB(t, u, 2)
}

// twoNodes opens two stores (two Ward processes) on one fresh database.
func twoNodes(t *testing.T) (a, b *sqlstore.DB) {
	t.Helper()
	u := pgtest.URL(t)
	return open(t, u), open(t, u)
}

// Two nodes on one database keep one chain: their batches serialise on the
// audit head row.
func TestTwoNodesOneDatabase(t *testing.T) {
	a, b := twoNodes(t)
	storetest.InterleavedWriters(t, a, b)
	storetest.GuardsAcrossWriters(t, a, b)
	storetest.OutboxAcrossWriters(t, a, b)
	storetest.InterleavedLedgerAppends(t, a, b)
}

// A batch of ledger records alone (what reads and searches commit) is one
// statement once the writer knows the head; anything else, a head moved by
// another node, or a head not known yet, goes through the transaction, and
// the chain stays whole either way.
func TestLedgerAppendPaths(t *testing.T) {
	ctx := context.Background()
	a, b := twoNodes(t)
	read := func(st store.Store) {
		t.Helper()
		r := &audit.Record{Time: time.Now(), Tenant: "a", RequestID: "req", Actor: "u1", Role: "physician", Action: "read", ResourceType: "Patient", Entities: []string{"Patient/p1"}}
		if err := st.Commit(ctx, &store.Unit{Audit: []*audit.Record{r}}); err != nil {
			t.Fatal(err)
		}
	}
	counts := func(db *sqlstore.DB) [2]int64 {
		one, tx := db.LedgerCommits()
		return [2]int64{one, tx}
	}
	steps := []struct {
		name string
		run  func()
		node *sqlstore.DB
		want [2]int64 // one-statement and transaction commits the step adds
	}{
		{"first read: head not known", func() { read(a) }, a, [2]int64{0, 1}},
		{"reads after it", func() {
			for range 20 {
				read(a)
			}
		}, a, [2]int64{20, 0}},
		{"a revocation with its record", func() {
			r := &audit.Record{Time: time.Now(), Tenant: "a", RequestID: "req", Actor: "u1", Role: "admin", Action: "revoke"}
			if err := a.Commit(ctx, &store.Unit{Parts: []store.Part{store.RevokeToken{JTI: "j1", Expires: time.Now().Add(time.Hour)}}, Audit: []*audit.Record{r}}); err != nil {
				t.Fatal(err)
			}
		}, a, [2]int64{0, 1}},
		{"the other node reads (its first)", func() { read(b) }, b, [2]int64{0, 1}},
		{"a read after the other node moved the head", func() { read(a) }, a, [2]int64{0, 1}},
		{"and one after that", func() { read(a) }, a, [2]int64{1, 0}},
		{"a write", func() {
			if err := a.Commit(ctx, &store.Unit{Writes: []store.Write{{Tenant: "a", Type: "Patient", ID: "p1", Version: 1, LastUpdated: time.Now(), Body: []byte("x")}},
				Audit: []*audit.Record{{Time: time.Now(), Tenant: "a", RequestID: "req", Actor: "u1", Role: "physician", Action: "create"}}}); err != nil {
				t.Fatal(err)
			}
		}, a, [2]int64{0, 1}},
		{"a read after the write", func() { read(a) }, a, [2]int64{1, 0}},
		// Records naming patients write their patient index rows in the
		// same one statement (verified below: the rows are hashed), once
		// per patient even when a search named one twice.
		{"reads naming patients", func() {
			for i := range 5 {
				r := &audit.Record{Time: time.Now(), Tenant: "a", RequestID: "req", Actor: "u1", Role: "physician", Action: "read", ResourceType: "Observation",
					Entities: []string{"Observation/o1", "Observation/o2"}, Patients: []string{"p-shared", fmt.Sprintf("p%d", i), "p-shared"}}
				if err := a.Commit(ctx, &store.Unit{Audit: []*audit.Record{r}}); err != nil {
					t.Fatal(err)
				}
			}
		}, a, [2]int64{5, 0}},
	}
	for _, s := range steps {
		before := counts(s.node)
		s.run()
		after := counts(s.node)
		if got := [2]int64{after[0] - before[0], after[1] - before[1]}; got != s.want {
			t.Errorf("%s: committed %d by one statement and %d by transaction, want %v", s.name, got[0], got[1], s.want)
		}
	}
	if n := storetest.VerifyLedger(t, a); n != 32 {
		t.Fatalf("ledger holds %d records, want 32", n)
	}
	recs, err := a.AuditSearch(ctx, store.AuditQuery{Tenant: "a", Patient: "p-shared"})
	if err != nil || len(recs) != 5 {
		t.Fatalf("patient index: %d records naming p-shared (%v), want 5", len(recs), err)
	}
}

func TestRebind(t *testing.T) {
	cases := map[string]string{
		"SELECT 1":                     "SELECT 1",
		"a = ? AND b = ?":              "a = $1 AND b = $2",
		"VALUES (?, ?), (?, ?)":        "VALUES ($1, $2), ($3, $4)",
		"x IN (?,?,?,?,?,?,?,?,?,?,?)": "x IN ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)",
	}
	for in, want := range cases {
		if got := postgres.Rebind(in); got != want {
			t.Errorf("Rebind(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkLedgerAppend(b *testing.B) {
	st, err := postgres.Open(context.Background(), pgtest.URL(b), sqlstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	storetest.BenchmarkLedgerAppend(b, st)
}

// A bulk load refreshes the planner's statistics itself (here the test
// database may run without autovacuum): after the first few thousand writes
// the tables have been analyzed, and the current-version lookup by
// (tenant, type, id) uses the primary key instead of walking the type.
func TestStatisticsFollowBulkLoads(t *testing.T) {
	u := pgtest.URL(t)
	ctx := context.Background()
	st := open(t, u)
	now := time.Now().UTC()
	for b := 0; b < 12; b++ {
		var ws []store.Write
		for i := range 500 {
			ws = append(ws, store.Write{Tenant: "t", Type: "Observation", ID: fmt.Sprintf("o%d-%d", b, i), Version: 1, LastUpdated: now, Body: []byte("sealed")})
		}
		if err := st.Commit(ctx, &store.Unit{Writes: ws}); err != nil {
			t.Fatal(err)
		}
	}
	db := pgtest.DB(t, u, 2)
	var analyzed bool
	for range 100 {
		if err := db.QueryRowContext(ctx, `SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'resources' AND schemaname = current_schema()`).Scan(&analyzed); err != nil {
			t.Fatal(err)
		}
		if analyzed {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !analyzed {
		t.Fatal("resources was never analyzed after 6,000 writes")
	}
	var plan []string
	rows, err := db.QueryContext(ctx, `EXPLAIN SELECT v.version FROM resources r JOIN resource_versions v ON v.seq = r.seq WHERE r.tenant = 't' AND r.type = 'Observation' AND r.id = 'o3-7'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var l string
		rows.Scan(&l)
		plan = append(plan, l)
	}
	rows.Close()
	if p := strings.Join(plan, "\n"); !strings.Contains(p, "resources_pkey") {
		t.Errorf("the current-version lookup does not use the primary key:\n%s", p)
	}
}

// TestNameIndexParameters: the partial index of migration 00014 covers
// exactly the name parameters of the people types, by the parameter
// numbers search computes (a renumbering would silently drop the index).
func TestNameIndexParameters(t *testing.T) {
	b, err := os.ReadFile("migrations/00014_name_search_index.sql")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`WHERE p IN \(([0-9, ]+)\)`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatal("no WHERE p IN (...) in the migration")
	}
	var got, want []string
	for _, f := range strings.Split(m[1], ",") {
		got = append(got, strings.TrimSpace(f))
	}
	for _, typ := range []string{"Patient", "Practitioner", "RelatedPerson", "Person"} {
		for _, code := range []string{"family", "given", "name"} {
			if _, ok := params.Lookup(typ, code); ok {
				want = append(want, strconv.Itoa(int(search.PID(typ, code))))
			}
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("migration lists %v, the name parameters are %v", got, want)
	}
}

// TestBodiesStayInline: a sealed body of a few KB (a Patient) is kept in
// its row, not moved to TOAST (migration 00015); a body too large for a
// page still goes out of line, and both read back intact.
func TestBodiesStayInline(t *testing.T) {
	_, st, db := storeAndSQL(t)
	ctx := context.Background()
	// The one table that holds bodies (resources held a copy from 00016
	// to 00058).
	var toasts []string
	for _, table := range []string{"resource_versions"} {
		var toast string
		if err := db.QueryRowContext(ctx, `SELECT reltoastrelid::regclass::text FROM pg_class WHERE oid = $1::regclass`, table).Scan(&toast); err != nil {
			t.Fatal(err)
		}
		toasts = append(toasts, toast)
	}
	chunks := func() int {
		var n int
		for _, toast := range toasts {
			var c int
			if err := db.QueryRowContext(ctx, `SELECT count(*) FROM `+toast).Scan(&c); err != nil {
				t.Fatal(err)
			}
			n += c
		}
		return n
	}
	rng := rand.NewChaCha8([32]byte{1})
	body := func(n int) []byte {
		b := make([]byte, n) // random bytes: as incompressible as ciphertext
		rng.Read(b)
		return b
	}
	now := time.Now().UTC()
	small, large := body(3000), body(20000)
	write := func(id string, b []byte) {
		if err := st.Commit(ctx, &store.Unit{Writes: []store.Write{{Tenant: "t", Type: "Patient", ID: id, Version: 1, LastUpdated: now, Body: b}}}); err != nil {
			t.Fatal(err)
		}
	}
	write("small", small)
	if n := chunks(); n != 0 {
		t.Errorf("a 3,000-byte body went to TOAST (%d chunks)", n)
	}
	write("large", large)
	// 20,000 bytes are 10 chunks of TOAST's 1,996 (for an 8 KB page).
	if n := chunks(); n < 10 {
		t.Errorf("a 20,000-byte body stayed in the row, or in one of its tables (%d chunks)", n)
	}
	for id, want := range map[string][]byte{"small": small, "large": large} {
		v, err := st.Current(ctx, "t", "Patient", id)
		if err != nil || string(v.Body) != string(want) {
			t.Errorf("%s: read back %d bytes, %v", id, len(v.Body), err)
		}
	}
}

// TestLedgerCommitsWhileReadsHoldEveryConnection: slow reads that hold
// every read connection (and queue for more) do not hold up the ledger,
// on which every request waits before it answers.
//
// The reads block on an advisory lock the test holds until the ledger
// record has committed, so the record commits while every read
// connection is busy or it never does: no wall-clock bound, however
// loaded the machine or the server.
func TestLedgerCommitsWhileReadsHoldEveryConnection(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	st := open(t, u)
	mon := pgtest.DB(t, u, 2)
	gate, err := mon.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Close()
	key := rand.Int64()
	if _, err := gate.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
		t.Fatal(err)
	}
	released := false
	release := func() {
		if !released {
			released = true
			if _, err := gate.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, key); err != nil {
				t.Error(err)
			}
		}
	}
	defer release()
	pool := postgres.Pool.Read
	readers := pool + 8 // more than the read pool holds
	errs := make(chan error, readers)
	for range readers {
		go func() {
			_, err := st.Search(ctx, store.SearchQuery{Tenant: "a", Types: []string{"Patient"}, Limit: 1,
				Where: []string{fmt.Sprintf("(SELECT pg_advisory_xact_lock_shared(%d)) IS NOT NULL", key)}})
			errs <- err
		}()
	}
	// Every read connection is waiting on the lock (the sessions of this
	// test's schema only, whatever else runs on the server).
	waiting := func() int {
		var n int
		if err := mon.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE application_name = $1 AND wait_event_type = 'Lock' AND query LIKE '%pg_advisory_xact_lock_shared%'`,
			pgtest.Schema(t, u)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	deadline := time.Now().Add(time.Minute)
	for n := waiting(); n < pool; n = waiting() {
		if time.Now().After(deadline) {
			t.Fatalf("after a minute only %d of the %d read connections hold a slow read", n, pool)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Generous: on a stalled writer this fails, on a slow machine it waits.
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	r := &audit.Record{Time: time.Now(), Tenant: "a", RequestID: "req", Actor: "u1", Role: "physician", Action: "read", ResourceType: "Patient", Entities: []string{"Patient/p1"}}
	if err := st.Commit(cctx, &store.Unit{Audit: []*audit.Record{r}}); err != nil {
		t.Fatalf("the ledger record did not commit while the reads held every read connection: %v", err)
	}
	if n := waiting(); n < pool {
		t.Fatalf("%d read connections waiting when the record committed, want %d: the reads were not holding them all", n, pool)
	}
	release()
	for range readers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestBodiesOnceMigration: migration 00058 drops the copy of the current
// body from resources on a populated database (the schema before it made
// by its Down section, which fills the copy as 00016 did), gives its bytes
// back (CLUSTER rewrites the rows without them), and every read still
// returns the right bodies, also after later writes.
func TestBodiesOnceMigration(t *testing.T) {
	u, st, db := storeAndSQL(t)
	ctx := context.Background()
	const n = 200
	storetest.WriteUpgradeData(t, st, n)
	size := func() (bytes int64, copies int) {
		t.Helper()
		if err := db.QueryRowContext(ctx, `SELECT pg_table_size('resources')`).Scan(&bytes); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = 'resources' AND column_name = 'body'`).Scan(&copies); err != nil {
			t.Fatal(err)
		}
		return bytes, copies
	}
	// The schema as it was before 00058, with these rows and their copies.
	storetest.MigrateDown(t, db, "migrations/00058_bodies_once.sql")
	before, col := size()
	if col != 1 || before < n*2048 {
		t.Fatalf("before the migration: body column %d, resources %d bytes", col, before)
	}
	storetest.MigrateUp(t, db, "migrations/00058_bodies_once.sql")
	after, col := size()
	t.Logf("resources: %d bytes before, %d after", before, after)
	if col != 0 || after > before/4 {
		t.Fatalf("after the migration: body column %d, resources %d bytes (was %d)", col, after, before)
	}
	st = open(t, u)
	storetest.CheckUpgradeData(t, st, n)
	storetest.UpdateAfterUpgrade(t, st)
}

func BenchmarkCreateOutbox(b *testing.B) {
	u := pgtest.URL(b)
	st, err := postgres.Open(context.Background(), u, sqlstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	// The server's share: the CPU of this database's other client
	// backends (the store's pool), read from /proc when PostgreSQL runs
	// on this machine.
	mon, err := sql.Open("pgx", u)
	if err != nil {
		b.Fatal(err)
	}
	defer mon.Close()
	storetest.BenchmarkCreateOutbox(b, st, func() time.Duration { return backendCPU(b, mon) })
}

// backendCPU sums the CPU of the client backends of db's test schema
// (pgtest names their application after it) but its own connection
// (nothing for a backend not on this machine or gone).
func backendCPU(b *testing.B, db *sql.DB) time.Duration {
	rows, err := db.Query(`SELECT pid FROM pg_stat_activity WHERE application_name = current_setting('application_name') AND pid <> pg_backend_pid()`)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var total time.Duration
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			b.Fatal(err)
		}
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		// utime and stime: the 14th and 15th fields, in 100 Hz ticks,
		// counted after the parenthesised command.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(ut+st) * 10 * time.Millisecond
	}
	return total
}

// BenchmarkReads: see storetest.BenchmarkReads.
func BenchmarkReads(b *testing.B) {
	st, err := postgres.Open(context.Background(), pgtest.URL(b), sqlstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	storetest.BenchmarkReads(b, st)
}
