// Package sqlstore is the part of the storage contract that SQLite and
// PostgreSQL share: the SQL for reads and the group-committing writer.
//
// Every write goes through one writer goroutine per process. It drains the
// units queued while the previous transaction was committing and writes them
// as one transaction: resource versions, users, keys and the audit records
// with their hash chain. The audit head row is read (and on PostgreSQL
// locked) first in every batch transaction, so writers in several processes
// serialise on it and the ledger stays one chain in commit order. A batch
// of ledger records alone (reads, searches) may instead be one statement
// that advances the head only from the seq this writer last committed
// (Dialect.AppendAudit, DB.appendAudit); a head moved by another process
// sends the batch through the transaction.
package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/store"
)

// Dialect holds what differs between the databases.
type Dialect struct {
	Name string
	// Placeholders rewrites '?' placeholders for the driver.
	Placeholders func(q string) string
	// LockHead reads the ledger head and, where the database needs it,
	// locks the row until the transaction ends.
	LockHead string
	// Analyze refreshes the planner's statistics of the growing tables
	// ("" where the planner needs none). See DB.maybeAnalyze.
	Analyze string
	// Explain is the prefix that makes a statement return its plan.
	Explain string
	// NoSeqScan, run in a transaction, makes the planner avoid sequential
	// scans for the rest of it ("" where the planner has no such switch).
	NoSeqScan string
	// GenericPlan, run in a transaction, makes the planner plan prepared
	// statements without their values ("" where plans do not depend on
	// the values).
	GenericPlan string
	// SealKeyJoin, where set, makes reads of one version also read the
	// state of the patient key its body (an envelope, alias v) names, in
	// the same statement: a LEFT JOIN of keys as k, whose k.id and
	// k.state are selected (NULL where the body names no patient key).
	// Where a statement costs a round trip, this spares the erasure
	// fence one (store.Version.SealKey). "" reads no key state.
	SealKeyJoin string
	// MaxParams bounds the parameters of one statement.
	MaxParams int
	// RowAtATime inserts rows with one prepared statement executed per
	// row instead of multi-row statements. Right for an embedded database,
	// where a statement costs no round trip but parsing a long one does.
	RowAtATime bool
	// DistinctOn lists a joined driver's resources once with DISTINCT ON
	// (rid) rather than GROUP BY rid, which PostgreSQL allows only over
	// the selected columns; it streams a page from an index in rid order.
	DistinctOn bool
	// JoinDrive joins a search's driving index rows (store.Drive) for a
	// page in rid order, where the index lists them in rid order.
	JoinDrive bool
	// StmtCache is how many read statements to keep prepared by text (0:
	// none, for a driver that caches its own).
	StmtCache int
	// AppendAudit, where set, is one statement that appends n ledger
	// records only if the head is still where this writer left it, and
	// advances the head with them (see DB.appendAudit). Its parameters are
	// the new head seq and hash, the expected head seq, then each record's
	// auditArgs, then (patients > 0) each patient index row's seq,
	// patient, tenant and time. It must insert no row when the head has
	// moved; it reports the patient rows as affected when there are any,
	// else the records.
	AppendAudit func(n, patients int) string
}

// Options tune the writer.
type Options struct {
	// MaxBatch bounds the units in one transaction.
	MaxBatch int
	// CommitTimeout bounds one batch transaction. The writer uses its own
	// context so that a client that goes away cannot cancel an audit write
	// that other requests are waiting on.
	CommitTimeout time.Duration
}

// DB implements store.Store over database/sql.
type DB struct {
	d      Dialect
	write  *sql.DB
	read   *sql.DB
	opts   Options
	queue  chan *job
	done   chan struct{}
	closed chan struct{}
	once   sync.Once
	hasher audit.Hasher

	qCurrent, qVersion *sql.Stmt
	stmts              *stmtCache
	onClose            []func()
	// rowStmts are the writer's prepared statements (RowAtATime): its
	// single-row inserts and the ledger head's read and update, by text;
	// only the writer goroutine touches them.
	rowStmts map[string]*sql.Stmt

	// written counts versions committed by this process; nextAnalyze is
	// the count at which statistics are refreshed next; analyzing is set
	// while a refresh runs. Only the writer goroutine touches the first
	// two.
	written, nextAnalyze int64
	analyzing            atomic.Bool
	analyses             sync.WaitGroup

	// head is the ledger head as this writer's last commit left it, when
	// headKnown; only the writer goroutine touches them. Another process
	// may have moved the stored head since: appendAudit checks.
	head      audit.Head
	headKnown bool
	// appends counts batches committed by appendAudit's one statement,
	// transactions those committed by commitBatch's transaction.
	appends, transactions atomic.Int64
	// outboxSignal wakes this process's dispatcher on commits that
	// append events (outbox.go).
	outboxSignal signal
}

// firstAnalyze is how many versions a process writes before it first
// refreshes the planner's statistics; each refresh doubles the next
// threshold.
const firstAnalyze = 1000

// maybeAnalyze refreshes the planner's statistics (PostgreSQL) when this
// process has written enough since the last refresh. A cost-based planner
// whose statistics say a table is empty picks any index that matches a
// prefix of the condition: with the statistics of an empty database a
// current-version lookup by (tenant, type, id) walked every resource of the
// type through (tenant, type, last_updated), making a bulk load quadratic.
// Autovacuum does the same refresh, but it may be off, and a bulk load
// outruns it; doubling thresholds keep the cost logarithmic in the writes.
func (db *DB) maybeAnalyze(n int) {
	if db.d.Analyze == "" {
		return
	}
	db.written += int64(n)
	if db.written < db.nextAnalyze || !db.analyzing.CompareAndSwap(false, true) {
		return
	}
	db.nextAnalyze = 2 * db.written
	db.analyses.Add(1)
	go func() {
		defer db.analyses.Done()
		defer db.analyzing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		// Best effort: stale statistics make queries slower, never wrong.
		_, _ = db.write.ExecContext(ctx, db.d.Analyze)
	}()
}

type job struct {
	u   *store.Unit
	err error
	ok  chan struct{}
}

// New starts the writer. write is used by the writer goroutine, the
// statistics refresh and export bookkeeping; read serves every read (on
// PostgreSQL a pool of its own, so that slow reads never keep the writer
// waiting for a connection).
func New(d Dialect, write, read *sql.DB, o Options) (*DB, error) {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 512
	}
	if o.CommitTimeout <= 0 {
		o.CommitTimeout = 15 * time.Second
	}
	db := &DB{d: d, write: write, read: read, opts: o, nextAnalyze: firstAnalyze,
		queue: make(chan *job, 4*o.MaxBatch), done: make(chan struct{}), closed: make(chan struct{})}
	var err error
	keyCols, keyJoin := "", ""
	if d.SealKeyJoin != "" {
		keyCols, keyJoin = ", k.id, k.state", " "+d.SealKeyJoin
	}
	if db.qCurrent, err = read.Prepare(d.Placeholders(`SELECT r.version, r.last_updated, r.deleted, v.body, r.seq` + keyCols + `
		FROM resources r JOIN resource_versions v ON v.seq = r.seq` + keyJoin + ` WHERE r.tenant = ? AND r.type = ? AND r.id = ?`)); err != nil {
		return nil, fmt.Errorf("prepare current: %w", err)
	}
	if db.qVersion, err = read.Prepare(d.Placeholders(`SELECT v.version, v.last_updated, v.deleted, v.body, v.seq` + keyCols + `
		FROM resource_versions v` + keyJoin + ` WHERE v.tenant = ? AND v.type = ? AND v.id = ? AND v.version = ?`)); err != nil {
		return nil, fmt.Errorf("prepare version: %w", err)
	}
	if d.RowAtATime {
		// Prepared before the writer starts: inside a batch the write
		// pool's only connection belongs to the transaction.
		db.rowStmts = map[string]*sql.Stmt{}
		qs := append([]string{d.LockHead, advanceHead}, writerQueries...)
		for _, spec := range insertSpecs {
			qs = append(qs, spec.prefix+tupleOf(spec.cols)+spec.suffix)
		}
		for _, q := range qs {
			st, err := write.Prepare(d.Placeholders(q))
			if err != nil {
				return nil, fmt.Errorf("prepare writer statement: %w", err)
			}
			db.rowStmts[q] = st
		}
	}
	go db.run()
	if d.StmtCache > 0 {
		db.stmts = newStmtCache(read, d.StmtCache)
	}
	return db, nil
}

var _ store.Store = (*DB)(nil)

// Close stops the writer after the queued units are committed.
func (db *DB) Close() error {
	db.once.Do(func() {
		close(db.done)
		<-db.closed
		db.analyses.Wait()
		db.qCurrent.Close()
		db.qVersion.Close()
		if db.stmts != nil {
			db.stmts.close()
		}
		for _, st := range db.rowStmts {
			st.Close()
		}
		for _, f := range db.onClose {
			f()
		}
	})
	return nil
}

// OnClose registers f to run after the writer has stopped on Close; the
// backends close their connection pools there.
func (db *DB) OnClose(f func()) { db.onClose = append(db.onClose, f) }

// Dialect names the database behind db.
func (db *DB) Dialect() string { return db.d.Name }

// txQueryRow and txExec run one of the writer's fixed statements in tx:
// prepared once where the writer prepares its statements (RowAtATime:
// parsing them again was a twentieth of a ledger commit on SQLite), by
// text otherwise. A transaction's statements close with it.
func (db *DB) txQueryRow(ctx context.Context, tx *sql.Tx, q string, args ...any) *sql.Row {
	if st, ok := db.rowStmts[q]; ok {
		return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, db.d.Placeholders(q), args...)
}

func (db *DB) txExec(ctx context.Context, tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	if st, ok := db.rowStmts[q]; ok {
		return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, db.d.Placeholders(q), args...)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
