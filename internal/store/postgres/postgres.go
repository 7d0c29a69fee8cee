// Package postgres is the production storage backend on PostgreSQL through
// pgx. Many Ward processes may share one database: their write batches
// serialise on the audit head row, so the ledger stays one chain.
package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/wardhealth/ward/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Dialect is PostgreSQL's flavour of the shared SQL.
var Dialect = sqlstore.Dialect{
	Name:         "postgres",
	Placeholders: Rebind,
	LockHead:     `SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE`,
	MaxParams:    65535,
	Explain:      `EXPLAIN `,
	NoSeqScan:    `SET LOCAL enable_seqscan = off`,
	GenericPlan:  `SET LOCAL plan_cache_mode = force_generic_plan`,
	// A page in rid order joins its driving index rows, so that a name
	// prefix shared by thousands streams from search_prefix_key (rid in
	// its key) and stops at the page's limit, whatever the plan's
	// estimate: a generic plan estimates any keyed hash at a row or two
	// and would list and sort every match of an IN (...) instead.
	JoinDrive:   true,
	DistinctOn:  true,
	Analyze:     `ANALYZE resources, resource_versions, search_token, search_date, search_number, search_string, search_prefix`,
	AppendAudit: appendAuditSQL,
	// A read of one version reads its patient key's state in the same
	// statement (and snapshot): the erasure fence then needs no second
	// round trip. The key id is the envelope's (seal: version byte,
	// id length byte, id); only ids starting "p/" are looked up, by the
	// primary key. encode(..., 'escape') never fails on odd bytes; the
	// id it yields is selected with the state, so a body that is not an
	// envelope can only name the key whose state is then reported.
	SealKeyJoin: `LEFT JOIN keys k ON k.id = CASE WHEN substring(v.body FROM 3 FOR 2) = '\x702f'::bytea
		THEN encode(substring(v.body FROM 3 FOR get_byte(v.body, 1)), 'escape') END`,
}

// auditTypes are the SQL types of sqlstore.AuditColumns. appendAuditSQL
// selects its rows from VALUES, where a parameter's type is not taken
// from the target column as in INSERT ... VALUES, so each is cast.
var auditTypes = [...]string{"bigint", "bigint", "text", "text", "text", "text", "text", "text", "text", "smallint", "text", "smallint", "text", "bytea", "bytea", "text", "text"}

// appendStatements memoizes appendAuditSQL by record and patient count.
var appendStatements sync.Map

// appendAuditSQL is the writer's one-statement ledger append
// (sqlstore.Dialect.AppendAudit). The UPDATE of the head row takes the
// row's lock and matches only while the head is at the expected seq ($3);
// the records are inserted joined to its RETURNING row, so when the head
// has moved none is inserted. Under READ COMMITTED a concurrent writer's
// update makes PostgreSQL re-check the condition against the row that
// writer committed, so two writers that expected the same seq cannot both
// append. With patients > 0 the records' patient index rows (seq,
// patient, tenant, recorded_at) follow the records' parameters and are
// inserted by the same statement, joined to the same head row: the
// statement then reports those rows, not the records, as affected.
func appendAuditSQL(n, patients int) string {
	key := [2]int{n, patients}
	if q, ok := appendStatements.Load(key); ok {
		return q.(string)
	}
	var b strings.Builder
	b.WriteString(`WITH head AS (UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1 AND seq = $3 RETURNING id)`)
	if patients > 0 {
		b.WriteString(`, logged AS (`)
	} else {
		b.WriteByte(' ')
	}
	b.WriteString(`INSERT INTO audit_log (`)
	b.WriteString(sqlstore.AuditColumns)
	b.WriteString(`) SELECT v.* FROM head, (VALUES `)
	p := 4
	values := func(rows int, types []string) {
		for i := range rows {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('(')
			for c, typ := range types {
				if c > 0 {
					b.WriteString(", ")
				}
				b.WriteByte('$')
				b.WriteString(strconv.Itoa(p))
				b.WriteString("::")
				b.WriteString(typ)
				p++
			}
			b.WriteByte(')')
		}
	}
	values(n, auditTypes[:])
	b.WriteString(`) AS v`)
	if patients > 0 {
		b.WriteString(`) INSERT INTO audit_patients (seq, patient, tenant, recorded_at) SELECT p.* FROM head, (VALUES `)
		values(patients, []string{"bigint", "text", "text", "bigint"})
		b.WriteString(`) AS p`)
	}
	q := b.String()
	appendStatements.Store(key, q)
	return q
}

// Rebind turns '?' placeholders into $1, $2, ... The shared SQL has no '?'
// inside string literals.
func Rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// Open connects to url, applies the embedded migrations (under an advisory
// lock, so nodes starting together do not race) and starts the writer.
//
// The writer has connections of its own (Pool.Write), apart from the pool
// every read draws from (Pool.Read). Every request commits a ledger record
// before it answers, so a writer that waited for a pool connection behind
// slow reads (counts, exports) would stall every request with them.
func Open(ctx context.Context, url string, o sqlstore.Options) (*sqlstore.DB, error) {
	cfg, err := connConfig(url)
	if err != nil {
		return nil, err
	}
	p := Pool
	if p.Tracer != nil {
		cfg.Tracer = p.Tracer
	}
	w := openDB(cfg, p.Write, p.ConnectWait)
	r := openDB(cfg, p.Read, p.ConnectWait)
	closeAll := func() { r.Close(); w.Close() }
	if err := w.PingContext(ctx); err != nil {
		closeAll()
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	if err := Migrate(ctx, w); err != nil {
		closeAll()
		return nil, err
	}
	s, err := sqlstore.New(Dialect, w, r, o)
	if err != nil {
		closeAll()
		return nil, err
	}
	s.OnClose(closeAll)
	return s, nil
}

// PoolOptions size a process's connections to PostgreSQL.
type PoolOptions struct {
	// Write is the writer's pool. Its batches take one connection at a
	// time; the others serve the statistics refresh (sqlstore's
	// maybeAnalyze) and export bookkeeping, which also go through it.
	Write int
	// Read is the pool every read draws from.
	Read int
	// ConnectWait is how long opening a connection keeps trying while the
	// server refuses it for want of a slot (SQLSTATE 53300, too many
	// clients) or because it is starting up (57P03), bounded also by the
	// caller's context: a node started with its database, or beside a
	// burst of other clients, waits for a slot instead of failing.
	ConnectWait time.Duration
	// Tracer, if set, observes every statement of the stores opened
	// afterwards (tests count the statements, hence round trips, that
	// an interaction makes).
	Tracer pgx.QueryTracer
}

// Pool sizes every store Open opens afterwards: a store holds at most
// Write+Read connections. Test binaries make it small (pgtest does, for
// every package that imports it), so that a whole test run fits beside
// the server's other clients.
var Pool = PoolOptions{Write: 4, Read: 16, ConnectWait: 10 * time.Second}

// OpenDB opens a pool of at most n connections to url with Ward's session
// settings, whose new connections wait for a server slot as a store's do
// (PoolOptions.ConnectWait): for tests and tools that look at a store's
// tables beside it.
func OpenDB(url string, n int) (*sql.DB, error) {
	cfg, err := connConfig(url)
	if err != nil {
		return nil, err
	}
	return openDB(cfg, n, Pool.ConnectWait), nil
}

func openDB(cfg *pgx.ConnConfig, n int, wait time.Duration) *sql.DB {
	db := sql.OpenDB(waitingConnector{stdlib.GetConnector(*cfg), wait})
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	return db
}

// waitingConnector retries, with backoff and for up to wait, a connection
// the server refused for want of a slot or while starting up (Busy).
type waitingConnector struct {
	driver.Connector
	wait time.Duration
}

func (c waitingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	deadline := time.Now().Add(c.wait)
	backoff := 20 * time.Millisecond
	for {
		conn, err := c.Connector.Connect(ctx)
		if err == nil || !Busy(err) || time.Now().Add(backoff).After(deadline) {
			return conn, err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		backoff = min(2*backoff, time.Second)
	}
}

// Busy reports whether err is the server refusing a connection that a
// later attempt may get: too many clients (SQLSTATE 53300) or the
// database starting up (57P03).
func Busy(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "53300" || pe.Code == "57P03")
}

// connConfig is the pgx configuration of url, with Ward's session settings.
//
// pgx prepares and caches every statement. Ward asks PostgreSQL to plan
// each once, without its values, and reuse that generic plan
// (plan_cache_mode = force_generic_plan). Planning was most of the
// database's work per search: 0.84 ms to plan an identifier search that
// ran in 0.08 ms, and with the server's default (auto) PostgreSQL kept
// re-planning the family, birthdate and patient-obs searches, whose custom
// plans it estimated cheaper. Ward's search SQL is written to plan well
// without the values (parameter numbers are literals, probes read by rid,
// pages in rid order join their driver: search.Options.ProbeByRID,
// sqlstore.Dialect.JoinDrive), and TestBenchmarkedSearchesUseIndexes checks
// the generic plans. Until 2026-12 Ward forced the opposite (a custom plan
// every time), when probes were EXISTS joins that a generic plan reordered.
// A plan_cache_mode given in the URL wins.
func connConfig(url string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if _, set := cfg.RuntimeParams["plan_cache_mode"]; !set {
		cfg.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	}
	return cfg, nil
}

// Migrate applies the embedded migrations.
func Migrate(ctx context.Context, db *sql.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	// Migrations are independent and additive, and were numbered on
	// parallel branches: a database made by a build that had a later one
	// still takes an earlier one that arrives afterwards.
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub, goose.WithSessionLocker(locker), goose.WithAllowOutofOrder(true))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}
