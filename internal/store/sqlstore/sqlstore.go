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
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"strconv"
	"strings"
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
	// auditArgs. It must insert no row when the head has moved.
	AppendAudit func(n int) string
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
	if db.qCurrent, err = read.Prepare(d.Placeholders(`SELECT version, last_updated, deleted, body, seq
		FROM resources WHERE tenant = ? AND type = ? AND id = ?`)); err != nil {
		return nil, fmt.Errorf("prepare current: %w", err)
	}
	if db.qVersion, err = read.Prepare(d.Placeholders(`SELECT version, last_updated, deleted, body, seq
		FROM resource_versions WHERE tenant = ? AND type = ? AND id = ? AND version = ?`)); err != nil {
		return nil, fmt.Errorf("prepare version: %w", err)
	}
	if d.RowAtATime {
		// Prepared before the writer starts: inside a batch the write
		// pool's only connection belongs to the transaction.
		db.rowStmts = map[string]*sql.Stmt{}
		qs := []string{d.LockHead, advanceHead}
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

// Commit queues u for the next batch and waits until it is durable.
func (db *DB) Commit(ctx context.Context, u *store.Unit) error {
	j := &job{u: u, ok: make(chan struct{})}
	select {
	case db.queue <- j:
	case <-db.done:
		return store.ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("queue commit: %w", ctx.Err())
	}
	// Once queued, the unit will be committed or failed by the writer; wait
	// for it whatever the caller's context says, so that the caller never
	// reports a failure for a write that then commits.
	<-j.ok
	return j.err
}

func (db *DB) run() {
	defer close(db.closed)
	batch := make([]*job, 0, db.opts.MaxBatch)
	// A unit with guards always opens its batch, so that its guards see
	// exactly what was committed before it (the units ahead of it in a
	// batch are not yet written when the batch's checks run). pending is
	// such a unit, taken from the queue while a batch was being filled.
	var pending *job
	for {
		var first *job
		if pending != nil {
			first, pending = pending, nil
		} else {
			select {
			case first = <-db.queue:
			case <-db.done:
				// Drain what is queued, then stop.
				for {
					select {
					case j := <-db.queue:
						db.commitIsolated([]*job{j})
					default:
						return
					}
				}
			}
		}
		batch = append(batch[:0], first)
	drain:
		for len(batch) < db.opts.MaxBatch {
			select {
			case j := <-db.queue:
				if len(j.u.Guards) > 0 {
					pending = j
					break drain
				}
				batch = append(batch, j)
			default:
				break drain
			}
		}
		db.commitIsolated(batch)
	}
}

// commitIsolated commits a batch; if the transaction fails, each unit is
// retried alone so that one bad unit cannot fail the others.
func (db *DB) commitIsolated(batch []*job) {
	err := db.commitBatch(batch)
	if err == nil {
		n := 0
		for _, j := range batch {
			n += len(j.u.Writes)
		}
		db.maybeAnalyze(n)
	}
	if err != nil && len(batch) > 1 {
		for _, j := range batch {
			db.commitIsolated([]*job{j})
		}
		return
	}
	for _, j := range batch {
		if err != nil {
			j.err = fmt.Errorf("%w: commit: %v", store.ErrUnavailable, err)
		}
		close(j.ok)
	}
}

type rkey struct{ tenant, typ, id string }

// LedgerCommits counts the batches this process has committed: by the one
// statement that appends ledger records (reads and searches, see
// appendAudit) and by a transaction.
func (db *DB) LedgerCommits() (oneStatement, transactions int64) {
	return db.appends.Load(), db.transactions.Load()
}

// auditOnly says every unit of batch holds ledger records and nothing else.
func auditOnly(batch []*job) bool {
	for _, j := range batch {
		u := *j.u
		u.Audit = nil
		if !reflect.ValueOf(u).IsZero() {
			return false
		}
	}
	return true
}

// appendAudit commits a batch of ledger records alone (what every read and
// search writes) in one statement instead of a transaction of five: no
// BEGIN, no head lock, no separate head update, no COMMIT round trip. The
// records are chained from the head this writer committed last, and the
// statement advances the stored head only from that seq, inserting nothing
// otherwise; a head moved by another process since (or a head not known
// yet) is a miss, reported as false, and the batch then goes through
// commitBatch, which reads the head under its lock. The head and the
// records move in one statement, so the chain stays one chain in commit
// order either way: a concurrent writer that commits first makes this
// statement's condition false when it re-reads the row.
func (db *DB) appendAudit(batch []*job) (bool, error) {
	if db.d.AppendAudit == nil || !db.headKnown || !auditOnly(batch) {
		return false, nil
	}
	var recs []*audit.Record
	for _, j := range batch {
		recs = append(recs, j.u.Audit...)
	}
	if len(recs) == 0 || 3+auditCols*len(recs) > db.d.MaxParams {
		return false, nil
	}
	from, head := db.head, db.head
	for _, r := range recs {
		head.Seq++
		r.Seq = head.Seq
		db.hasher.Chain(head.Hash, r)
		head.Hash = r.Hash
	}
	args := make([]any, 0, 3+auditCols*len(recs))
	args = append(args, head.Seq, head.Hash[:], from.Seq)
	for _, r := range recs {
		args = auditArgs(args, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), db.opts.CommitTimeout)
	defer cancel()
	db.headKnown = false
	res, err := db.write.ExecContext(ctx, db.d.AppendAudit(len(recs)), args...)
	if err != nil {
		return false, fmt.Errorf("append audit records: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("append audit records: %w", err)
	}
	switch n {
	case 0:
		return false, nil
	case int64(len(recs)):
		db.head, db.headKnown = head, true
		db.appends.Add(1)
		return true, nil
	}
	return false, fmt.Errorf("append audit records: %d rows for %d records", n, len(recs))
}

// advanceHead moves the stored ledger head in a batch's transaction.
const advanceHead = `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`

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

func (db *DB) commitBatch(batch []*job) (err error) {
	if ok, err := db.appendAudit(batch); ok || err != nil {
		return err
	}
	db.headKnown = false
	ctx, cancel := context.WithTimeout(context.Background(), db.opts.CommitTimeout)
	defer cancel()
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	q := db.d.Placeholders

	head, err := readHead(db.txQueryRow(ctx, tx, db.d.LockHead))
	if err != nil {
		return err
	}

	// Current versions of every resource the batch writes.
	var keys []rkey
	for _, j := range batch {
		for _, w := range j.u.Writes {
			keys = append(keys, rkey{w.Tenant, w.Type, w.ID})
		}
	}
	for _, j := range batch {
		for _, r := range j.u.Reindex {
			keys = append(keys, rkey{r.Tenant, r.Type, r.ID})
		}
	}
	current, rids, err := db.currentVersions(ctx, tx, keys)
	if err != nil {
		return err
	}

	var nextSeq int64
	if len(keys) > 0 {
		// Writers serialise on the head row locked above, so the next
		// commit order number is simply one past the largest.
		if err = tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM resource_versions`).Scan(&nextSeq); err != nil {
			return fmt.Errorf("read version sequence: %w", err)
		}
	}
	var (
		writes  []seqWrite
		final   = map[rkey]seqWrite{}
		order   []rkey
		reindex []store.Reindex
	)
	for i, j := range batch {
		j.err = db.check(ctx, tx, j.u, current)
		if j.err == nil && len(j.u.Guards) > 0 {
			if i > 0 {
				// run never puts a guarded unit after another; refuse
				// rather than check against a half-written state.
				j.err = fmt.Errorf("%w: guarded unit not first in its batch", store.ErrConflict)
			} else {
				j.err = db.checkGuards(ctx, tx, j.u.Guards)
			}
			if j.err != nil && !errors.Is(j.err, store.ErrConflict) {
				return j.err
			}
		}
		if j.err != nil {
			for _, r := range j.u.Audit {
				if r.Outcome < audit.OutcomeMinor {
					r.Outcome = audit.OutcomeMinor
				}
				if r.Detail == "" {
					r.Detail = "conflict"
				}
			}
			continue
		}
		for _, w := range j.u.Writes {
			k := rkey{w.Tenant, w.Type, w.ID}
			current[k] = w.Version
			if _, seen := final[k]; !seen {
				order = append(order, k)
			}
			nextSeq++
			if rids[k] == 0 {
				rids[k] = nextSeq // a new resource's rid is its first seq
			}
			sw := seqWrite{Write: w, seq: nextSeq, rid: rids[k]}
			final[k] = sw
			writes = append(writes, sw)
		}
		reindex = append(reindex, j.u.Reindex...)
		if u := j.u.NewUser; u != nil {
			if _, err = tx.ExecContext(ctx, q(`INSERT INTO users (id, tenant, username, role, password_hash, created, disabled, practitioner, patient, clearances) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
				u.ID, u.Tenant, u.Username, u.Role, u.PasswordHash, u.Created.UnixMicro(), boolInt(u.Disabled), u.Practitioner, u.Patient, strings.Join(u.Clearances, ",")); err != nil {
				return fmt.Errorf("insert user: %w", err)
			}
		}
		if l := j.u.Login; l != nil {
			var until int64
			if !l.LockedUntil.IsZero() {
				until = l.LockedUntil.UnixMicro()
			}
			if _, err = tx.ExecContext(ctx, q(`UPDATE users SET failed_logins = ?, locked_until = ? WHERE id = ?`), l.FailedLogins, until, l.UserID); err != nil {
				return fmt.Errorf("update login state: %w", err)
			}
			if l.TOTPLastStep != 0 {
				if _, err = tx.ExecContext(ctx, q(`UPDATE users SET totp_last_step = ? WHERE id = ?`), l.TOTPLastStep, l.UserID); err != nil {
					return fmt.Errorf("update login state: %w", err)
				}
			}
		}
		if e := j.u.TOTP; e != nil {
			var secret any
			if e.Sealed != nil {
				secret = e.Sealed
			}
			if _, err = tx.ExecContext(ctx, q(`UPDATE users SET totp_secret = ?, totp_last_step = 0 WHERE id = ?`), secret, e.UserID); err != nil {
				return fmt.Errorf("enroll TOTP: %w", err)
			}
		}
		if up := j.u.UpdateUser; up != nil {
			if up.Disabled != nil {
				if _, err = tx.ExecContext(ctx, q(`UPDATE users SET disabled = ? WHERE id = ?`), boolInt(*up.Disabled), up.UserID); err != nil {
					return fmt.Errorf("update user: %w", err)
				}
			}
			if up.PasswordHash != "" {
				if _, err = tx.ExecContext(ctx, q(`UPDATE users SET password_hash = ?, failed_logins = 0, locked_until = 0 WHERE id = ?`), up.PasswordHash, up.UserID); err != nil {
					return fmt.Errorf("update user: %w", err)
				}
			}
		}
		if id := j.u.UseRefresh; id != "" {
			if _, err = tx.ExecContext(ctx, q(`UPDATE refresh_tokens SET used = 1 WHERE id = ?`), id); err != nil {
				return fmt.Errorf("use refresh token: %w", err)
			}
		}
		if f := j.u.RevokeFamily; f != "" {
			if _, err = tx.ExecContext(ctx, q(`UPDATE refresh_tokens SET revoked = 1 WHERE family = ?`), f); err != nil {
				return fmt.Errorf("revoke refresh family: %w", err)
			}
		}
		if rt := j.u.NewRefresh; rt != nil {
			if _, err = tx.ExecContext(ctx, q(`DELETE FROM refresh_tokens WHERE expires < ?`), time.Now().UnixMicro()); err != nil {
				return fmt.Errorf("purge refresh tokens: %w", err)
			}
			if _, err = tx.ExecContext(ctx, q(`INSERT INTO refresh_tokens (id, family, user_id, tenant, scope, expires, patient, encounter, client_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
				rt.ID, rt.Family, rt.UserID, rt.Tenant, rt.Scope, rt.Expires.UnixMicro(), rt.Patient, rt.Encounter, rt.ClientID); err != nil {
				return fmt.Errorf("store refresh token: %w", err)
			}
		}
		if rv := j.u.Revoke; rv != nil {
			if _, err = tx.ExecContext(ctx, q(`DELETE FROM revoked_tokens WHERE expires < ?`), time.Now().UnixMicro()); err != nil {
				return fmt.Errorf("purge revocations: %w", err)
			}
			if _, err = tx.ExecContext(ctx, q(`INSERT INTO revoked_tokens (jti, expires) VALUES (?, ?) ON CONFLICT (jti) DO NOTHING`), rv.JTI, rv.Expires.UnixMicro()); err != nil {
				return fmt.Errorf("revoke token: %w", err)
			}
		}
		if c := j.u.NewClient; c != nil {
			if _, err = tx.ExecContext(ctx, q(`INSERT INTO clients (id, tenant, jwks, scope, created, disabled, redirect_uris, secret_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
				c.ID, c.Tenant, c.JWKS, c.Scope, c.Created.UnixMicro(), boolInt(c.Disabled), strings.Join(c.RedirectURIs, " "), c.SecretHash); err != nil {
				return fmt.Errorf("insert client: %w", err)
			}
		}
		if jt := j.u.UseJTI; jt != nil {
			if _, err = tx.ExecContext(ctx, q(`DELETE FROM client_jtis WHERE expires < ?`), time.Now().UnixMicro()); err != nil {
				return fmt.Errorf("purge jtis: %w", err)
			}
			if _, err = tx.ExecContext(ctx, q(`INSERT INTO client_jtis (client_id, jti, expires) VALUES (?, ?, ?)`), jt.ClientID, jt.JTI, jt.Expires.UnixMicro()); err != nil {
				return fmt.Errorf("insert jti: %w", err)
			}
		}
		if err = db.applyIdentity(ctx, tx, &j.u.IdentityChange); err != nil {
			return err
		}
		if k := j.u.NewKey; k != nil {
			if _, err = tx.ExecContext(ctx, q(`INSERT INTO keys (id, purpose, tenant, wrapped, created) VALUES (?, ?, ?, ?, ?)`),
				k.ID, k.Purpose, k.Tenant, k.Wrapped, k.Created.UnixMicro()); err != nil {
				return fmt.Errorf("insert key: %w", err)
			}
		}
	}

	if err = db.insertVersions(ctx, tx, writes); err != nil {
		return err
	}
	if err = db.upsertCurrent(ctx, tx, order, final); err != nil {
		return err
	}
	if err = db.writeIndex(ctx, tx, order, final, reindex, rids); err != nil {
		return err
	}

	// Chain the audit records in batch order. Records of failed units are
	// chained too: a refusal or conflict is part of the ledger.
	var recs []*audit.Record
	for _, j := range batch {
		recs = append(recs, j.u.Audit...)
	}
	if len(recs) > 0 {
		for _, r := range recs {
			head.Seq++
			r.Seq = head.Seq
			db.hasher.Chain(head.Hash, r)
			head.Hash = r.Hash
		}
		if err = db.insertAudit(ctx, tx, recs); err != nil {
			return err
		}
		if _, err = db.txExec(ctx, tx, advanceHead, head.Seq, head.Hash[:]); err != nil {
			return fmt.Errorf("advance audit head: %w", err)
		}
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	db.head, db.headKnown = head, true
	db.transactions.Add(1)
	return nil
}

// check verifies a unit's preconditions against the state as of the units
// before it in the batch.
func (db *DB) check(ctx context.Context, tx *sql.Tx, u *store.Unit, current map[rkey]int64) error {
	seen := map[rkey]int64{}
	for _, w := range u.Writes {
		k := rkey{w.Tenant, w.Type, w.ID}
		cur, ok := seen[k]
		if !ok {
			cur = current[k]
		}
		if w.Version != cur+1 {
			return fmt.Errorf("%w: %s/%s is at version %d, not %d", store.ErrConflict, w.Type, w.ID, cur, w.Version-1)
		}
		seen[k] = w.Version
	}
	q := db.d.Placeholders
	if u.NewUser != nil {
		var one int
		err := tx.QueryRowContext(ctx, q(`SELECT 1 FROM users WHERE tenant = ? AND username = ?`), u.NewUser.Tenant, u.NewUser.Username).Scan(&one)
		if err == nil {
			return fmt.Errorf("%w: username already exists", store.ErrConflict)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("check user: %w", err)
		}
	}
	if c := u.NewClient; c != nil {
		var one int
		err := tx.QueryRowContext(ctx, q(`SELECT 1 FROM clients WHERE id = ?`), c.ID).Scan(&one)
		if err == nil {
			return fmt.Errorf("%w: client id already registered", store.ErrConflict)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("check client: %w", err)
		}
	}
	if up := u.UpdateUser; up != nil {
		var one int
		err := tx.QueryRowContext(ctx, q(`SELECT 1 FROM users WHERE id = ?`), up.UserID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: no such user", store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("check user: %w", err)
		}
	}
	if u.UseRefresh != "" {
		var used, revoked int
		err := tx.QueryRowContext(ctx, q(`SELECT used, revoked FROM refresh_tokens WHERE id = ?`), u.UseRefresh).Scan(&used, &revoked)
		if errors.Is(err, sql.ErrNoRows) || err == nil && (used != 0 || revoked != 0) {
			return fmt.Errorf("%w: refresh token unknown, used or revoked", store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("check refresh token: %w", err)
		}
	}
	if j := u.UseJTI; j != nil {
		var exp int64
		err := tx.QueryRowContext(ctx, q(`SELECT expires FROM client_jtis WHERE client_id = ? AND jti = ?`), j.ClientID, j.JTI).Scan(&exp)
		if err == nil {
			return fmt.Errorf("%w: client assertion id already used", store.ErrConflict)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("check jti: %w", err)
		}
	}
	if err := db.checkIdentity(ctx, tx, &u.IdentityChange); err != nil {
		return err
	}
	if u.NewKey != nil {
		var one int
		err := tx.QueryRowContext(ctx, q(`SELECT 1 FROM keys WHERE id = ?`), u.NewKey.ID).Scan(&one)
		if err == nil {
			return fmt.Errorf("%w: key %s already exists", store.ErrConflict, u.NewKey.ID)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("check key: %w", err)
		}
	}
	return nil
}

// checkGuards runs each guard's search inside the write transaction (after
// the head lock, so after every earlier commit) and compares its matches
// with the expected set.
func (db *DB) checkGuards(ctx context.Context, tx *sql.Tx, guards []store.Guard) error {
	for gi, g := range guards {
		base, args, err := searchBase(g.Query)
		if err != nil {
			return err
		}
		want := make(map[store.Ref]bool, len(g.Match))
		for _, m := range g.Match {
			want[m] = true
		}
		rows, err := tx.QueryContext(ctx, db.d.Placeholders(`SELECT r.type, r.id`+base+` LIMIT `+strconv.Itoa(len(want)+1)), args...)
		if err != nil {
			return fmt.Errorf("check guard: %w", err)
		}
		n, extra := 0, false
		for rows.Next() {
			var ref store.Ref
			if err := rows.Scan(&ref.Type, &ref.ID); err != nil {
				rows.Close()
				return fmt.Errorf("check guard: %w", err)
			}
			n++
			if !want[ref] {
				extra = true
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("check guard: %w", err)
		}
		if extra || n != len(want) {
			return fmt.Errorf("%w: condition %d no longer matches what it matched when read", store.ErrConflict, gi)
		}
	}
	return nil
}

func (db *DB) currentVersions(ctx context.Context, tx *sql.Tx, keys []rkey) (map[rkey]int64, map[rkey]int64, error) {
	out := make(map[rkey]int64, len(keys))
	rids := make(map[rkey]int64, len(keys))
	const cols = 3
	for len(keys) > 0 {
		n := min(len(keys), db.d.MaxParams/cols)
		chunk := keys[:n]
		keys = keys[n:]
		var b strings.Builder
		b.WriteString(`SELECT tenant, type, id, version, rid FROM resources WHERE (tenant, type, id) IN (VALUES `)
		args := make([]any, 0, n*cols)
		for i, k := range chunk {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?)")
			args = append(args, k.tenant, k.typ, k.id)
		}
		b.WriteString(")")
		rows, err := tx.QueryContext(ctx, db.d.Placeholders(b.String()), args...)
		if err != nil {
			return nil, nil, fmt.Errorf("read current versions: %w", err)
		}
		for rows.Next() {
			var k rkey
			var v, rid int64
			if err := rows.Scan(&k.tenant, &k.typ, &k.id, &v, &rid); err != nil {
				rows.Close()
				return nil, nil, fmt.Errorf("scan current version: %w", err)
			}
			out[k] = v
			rids[k] = rid
		}
		if err := rows.Close(); err != nil {
			return nil, nil, fmt.Errorf("read current versions: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, nil, fmt.Errorf("read current versions: %w", err)
		}
	}
	return out, rids, nil
}

// insertRows writes rows with multi-row INSERT statements, chunked to the
// dialect's parameter limit.
func (db *DB) insertRows(ctx context.Context, tx *sql.Tx, spec insertSpec, n int, row func(i int, args []any) []any) error {
	prefix, suffix, cols := spec.prefix, spec.suffix, spec.cols
	per := max(1, db.d.MaxParams/cols)
	tuple := tupleOf(cols)
	if db.d.RowAtATime {
		st, ok := db.rowStmts[prefix+tuple+suffix]
		if !ok {
			return fmt.Errorf("no prepared statement for %.40s", prefix)
		}
		txst := tx.StmtContext(ctx, st)
		defer txst.Close()
		args := make([]any, 0, cols)
		for i := range n {
			if _, err := txst.ExecContext(ctx, row(i, args[:0])...); err != nil {
				return err
			}
		}
		return nil
	}
	for start := 0; start < n; start += per {
		end := min(n, start+per)
		var b strings.Builder
		b.WriteString(prefix)
		args := make([]any, 0, (end-start)*cols)
		for i := start; i < end; i++ {
			if i > start {
				b.WriteString(", ")
			}
			b.WriteString(tuple)
			args = row(i, args)
		}
		b.WriteString(suffix)
		if _, err := tx.ExecContext(ctx, db.d.Placeholders(b.String()), args...); err != nil {
			return err
		}
	}
	return nil
}

// AuditColumns are the ledger's columns in the order of auditArgs.
const AuditColumns = `seq, recorded_at, tenant, request_id, actor, role, action, resource_type, entities, outcome, detail, emergency, purpose, prev_hash, hash`

// The current row's columns, and what a new version replaces in it.
const (
	currentCols     = `tenant, type, id, version, last_updated, deleted, seq, rid, refh`
	currentConflict = ` ON CONFLICT (tenant, type, id) DO UPDATE SET version = excluded.version, last_updated = excluded.last_updated, deleted = excluded.deleted, seq = excluded.seq,
		refh = CASE WHEN excluded.refh <> 0 THEN excluded.refh ELSE resources.refh END`
)

// The writer's inserts: prefix, suffix and column count.
type insertSpec struct {
	prefix, suffix string
	cols           int
}

var (
	insertVersion = insertSpec{`INSERT INTO resource_versions (seq, tenant, type, id, version, last_updated, deleted, body) VALUES `, ``, 8}
	// The current version with a copy of its body (NULL once deleted), so
	// that a read, a search page, a list, a read of references and the
	// export take their bodies from the resources row they find instead
	// of probing resource_versions for each.
	upsertCurrent  = insertSpec{`INSERT INTO resources (` + currentCols + `, body) VALUES `, currentConflict + `, body = excluded.body`, 10}
	insertAuditRec = insertSpec{`INSERT INTO audit_log (` + AuditColumns + `) VALUES `, ``, auditCols}
	insertToken    = insertSpec{`INSERT INTO search_token (p, h, rid, s) VALUES `, ` ON CONFLICT DO NOTHING`, 4}
	insertDate     = insertSpec{`INSERT INTO search_date (p, k, lo, hi, rid) VALUES `, ` ON CONFLICT DO NOTHING`, 5}
	insertNumber   = insertSpec{`INSERT INTO search_number (p, k, lo, hi, rid, u) VALUES `, ` ON CONFLICT DO NOTHING`, 6}
	insertString   = insertSpec{`INSERT INTO search_string (p, v, rid) VALUES `, ` ON CONFLICT DO NOTHING`, 3}
	insertSpecs    = []insertSpec{insertVersion, upsertCurrent, insertAuditRec, insertToken, insertDate, insertNumber, insertString}
)

func tupleOf(cols int) string {
	return "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
}

// seqWrite is a write with its commit order number.
type seqWrite struct {
	store.Write
	seq, rid int64
}

func (db *DB) insertVersions(ctx context.Context, tx *sql.Tx, ws []seqWrite) error {
	err := db.insertRows(ctx, tx, insertVersion, len(ws), func(i int, a []any) []any {
		w := ws[i]
		return append(a, w.seq, w.Tenant, w.Type, w.ID, w.Version, w.LastUpdated.UnixMicro(), boolInt(w.Deleted), storedBody(w))
	})
	if err != nil {
		return fmt.Errorf("insert versions: %w", err)
	}
	return nil
}

// storedBody is the body column of w: NULL for a delete.
func storedBody(w seqWrite) any {
	if w.Deleted {
		return nil
	}
	return w.Body
}

func (db *DB) upsertCurrent(ctx context.Context, tx *sql.Tx, order []rkey, final map[rkey]seqWrite) error {
	err := db.insertRows(ctx, tx, upsertCurrent, len(order), func(i int, a []any) []any {
		w := final[order[i]]
		var refh int64
		if w.Index != nil {
			refh = w.Index.RefHash
		}
		return append(a, w.Tenant, w.Type, w.ID, w.Version, w.LastUpdated.UnixMicro(), boolInt(w.Deleted), w.seq, w.rid, refh, storedBody(w))
	})
	if err != nil {
		return fmt.Errorf("upsert current versions: %w", err)
	}
	return nil
}

// searchTables are the index tables, each with an index on rid.
var searchTables = []string{"search_token", "search_date", "search_number", "search_string"}

// writeIndex replaces the index rows of every resource the batch wrote or
// reindexed: the rows of resources that existed before are deleted, and
// the rows of each resource's final version in the batch inserted.
func (db *DB) writeIndex(ctx context.Context, tx *sql.Tx, order []rkey, final map[rkey]seqWrite, reindex []store.Reindex, rids map[rkey]int64) error {
	type entry struct {
		rid int64
		ix  *store.Index
	}
	var (
		stale   []int64
		entries []entry
		seen    = map[int64]int{}
	)
	add := func(rid int64, ix *store.Index, existed bool) {
		if i, ok := seen[rid]; ok {
			entries[i].ix = ix
			return
		}
		if existed {
			stale = append(stale, rid)
		}
		seen[rid] = len(entries)
		entries = append(entries, entry{rid, ix})
	}
	for _, k := range order {
		w := final[k]
		ix := w.Index
		if w.Deleted {
			ix = nil
		}
		add(w.rid, ix, w.rid != w.seq || w.Version > 1)
	}
	q := db.d.Placeholders
	for _, r := range reindex {
		rid := rids[rkey{r.Tenant, r.Type, r.ID}]
		if rid == 0 {
			continue
		}
		if _, ok := seen[rid]; ok {
			continue // written in this batch: its new rows win
		}
		var refh int64
		if r.Index != nil {
			refh = r.Index.RefHash
		}
		if _, err := tx.ExecContext(ctx, q(`UPDATE resources SET refh = ? WHERE rid = ? AND deleted = 0`), refh, rid); err != nil {
			return fmt.Errorf("reindex: %w", err)
		}
		add(rid, r.Index, true)
	}
	for start := 0; start < len(stale); start += 500 {
		chunk := stale[start:min(len(stale), start+500)]
		args := make([]any, len(chunk))
		for i, r := range chunk {
			args[i] = r
		}
		in := strings.TrimSuffix(strings.Repeat("?, ", len(chunk)), ", ")
		for _, t := range searchTables {
			if _, err := tx.ExecContext(ctx, q(`DELETE FROM `+t+` WHERE rid IN (`+in+`)`), args...); err != nil {
				return fmt.Errorf("delete index rows: %w", err)
			}
		}
	}
	type tok struct {
		rid int64
		r   store.TokenRow
	}
	var (
		toks []tok
		dats []struct {
			rid int64
			r   store.DateRow
		}
		nums []struct {
			rid int64
			r   store.NumberRow
		}
		strs []struct {
			rid int64
			r   store.StringRow
		}
	)
	for _, e := range entries {
		if e.ix == nil {
			continue
		}
		for _, r := range e.ix.Tokens {
			toks = append(toks, tok{e.rid, r})
		}
		for _, r := range e.ix.Dates {
			dats = append(dats, struct {
				rid int64
				r   store.DateRow
			}{e.rid, r})
		}
		for _, r := range e.ix.Numbers {
			nums = append(nums, struct {
				rid int64
				r   store.NumberRow
			}{e.rid, r})
		}
		for _, r := range e.ix.Strings {
			strs = append(strs, struct {
				rid int64
				r   store.StringRow
			}{e.rid, r})
		}
	}
	if err := db.insertRows(ctx, tx, insertToken, len(toks), func(i int, a []any) []any {
		return append(a, toks[i].r.P, toks[i].r.H, toks[i].rid, toks[i].r.S)
	}); err != nil {
		return fmt.Errorf("insert token index: %w", err)
	}
	if err := db.insertRows(ctx, tx, insertDate, len(dats), func(i int, a []any) []any {
		r := dats[i].r
		return append(a, r.P, r.K, r.Lo, r.Hi, dats[i].rid)
	}); err != nil {
		return fmt.Errorf("insert date index: %w", err)
	}
	if err := db.insertRows(ctx, tx, insertNumber, len(nums), func(i int, a []any) []any {
		r := nums[i].r
		return append(a, r.P, r.K, r.Lo, r.Hi, nums[i].rid, r.U)
	}); err != nil {
		return fmt.Errorf("insert number index: %w", err)
	}
	if err := db.insertRows(ctx, tx, insertString, len(strs), func(i int, a []any) []any {
		return append(a, strs[i].r.P, strs[i].r.V, strs[i].rid)
	}); err != nil {
		return fmt.Errorf("insert string index: %w", err)
	}
	return nil
}

func (db *DB) insertAudit(ctx context.Context, tx *sql.Tx, recs []*audit.Record) error {
	err := db.insertRows(ctx, tx, insertAuditRec, len(recs), func(i int, a []any) []any {
		return auditArgs(a, recs[i])
	})
	if err != nil {
		return fmt.Errorf("append audit records: %w", err)
	}
	return nil
}

// auditCols is how many values auditArgs appends: the columns of
// insertAuditRec, in its order.
const auditCols = 15

func auditArgs(a []any, r *audit.Record) []any {
	return append(a, r.Seq, r.Time.UnixMicro(), r.Tenant, r.RequestID, r.Actor, r.Role, r.Action, r.ResourceType,
		encodeEntities(r.Entities), int(r.Outcome), r.Detail, boolInt(r.Emergency), r.Purpose, r.PrevHash[:], r.Hash[:])
}

// encodeEntities stores the entity list as a JSON array: unambiguous for
// any string, and readable by a privacy officer with plain SQL.
func encodeEntities(es []string) string {
	if len(es) == 0 {
		return "[]"
	}
	// Entity references are plain ASCII: write them directly, exactly as
	// json.Marshal would, and leave anything else to it.
	n := 1
	for _, e := range es {
		if !plainJSON(e) {
			b, _ := json.Marshal(es)
			return string(b)
		}
		n += len(e) + 3
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, e := range es {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, e...)
		b = append(b, '"')
	}
	return string(append(b, ']'))
}

// plainJSON says json.Marshal writes s unchanged between its quotes: no
// byte it escapes (quote, backslash, control characters, and <, >, & for
// HTML) and nothing outside ASCII.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

func decodeEntities(s string) ([]string, error) {
	var es []string
	if err := json.Unmarshal([]byte(s), &es); err != nil {
		return nil, err
	}
	if len(es) == 0 {
		return nil, nil
	}
	return es, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ---- reads ----

func (db *DB) scanVersion(row *sql.Row, tenant, typ, id string) (*store.Version, error) {
	v := &store.Version{Tenant: tenant, Type: typ, ID: id}
	var lu int64
	var del int
	if err := row.Scan(&v.Version, &lu, &del, &v.Body, &v.Seq); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, store.ErrNotFound
		}
		return nil, fmt.Errorf("%w: read version: %v", store.ErrUnavailable, err)
	}
	v.LastUpdated = time.UnixMicro(lu).UTC()
	v.Deleted = del != 0
	return v, nil
}

// Current returns the current version, which may be a deletion.
func (db *DB) Current(ctx context.Context, tenant, typ, id string) (*store.Version, error) {
	return db.scanVersion(db.qCurrent.QueryRowContext(ctx, tenant, typ, id), tenant, typ, id)
}

// Version returns one version.
func (db *DB) Version(ctx context.Context, tenant, typ, id string, version int64) (*store.Version, error) {
	return db.scanVersion(db.qVersion.QueryRowContext(ctx, tenant, typ, id, version), tenant, typ, id)
}

// History returns versions newest first.
func (db *DB) History(ctx context.Context, hq store.HistoryQuery) ([]store.Version, error) {
	var b strings.Builder
	args := []any{hq.Tenant}
	b.WriteString(`SELECT v.type, v.id, v.version, v.last_updated, v.deleted, v.body, v.seq FROM resource_versions v`)
	if len(hq.Where) > 0 {
		// The conditions are over the resource's current row.
		b.WriteString(` JOIN resources r ON r.tenant = v.tenant AND r.type = v.type AND r.id = v.id`)
	}
	b.WriteString(` WHERE v.tenant = ?`)
	if hq.Type != "" {
		b.WriteString(` AND v.type = ?`)
		args = append(args, hq.Type)
	}
	if hq.ID != "" {
		b.WriteString(` AND v.id = ?`)
		args = append(args, hq.ID)
	}
	if !hq.Since.IsZero() {
		b.WriteString(` AND v.last_updated >= ?`)
		args = append(args, hq.Since.UnixMicro())
	}
	if hq.Before > 0 {
		b.WriteString(` AND v.seq < ?`)
		args = append(args, hq.Before)
	}
	for _, w := range hq.Where {
		b.WriteString(` AND (` + w + `)`)
	}
	args = append(args, hq.Args...)
	b.WriteString(` ORDER BY v.seq DESC LIMIT ` + strconv.Itoa(limit(hq.Limit)))
	return db.queryVersions(ctx, hq.Tenant, b.String(), args)
}

// List returns current, not deleted versions in id order.
func (db *DB) List(ctx context.Context, lq store.ListQuery) ([]store.Version, error) {
	var b strings.Builder
	args := []any{lq.Tenant, lq.Type}
	b.WriteString(`SELECT r.type, r.id, r.version, r.last_updated, r.deleted, r.body, r.seq
		FROM resources r WHERE r.tenant = ? AND r.type = ? AND r.deleted = 0`)
	if len(lq.IDs) > 0 {
		b.WriteString(` AND r.id IN (` + strings.TrimSuffix(strings.Repeat("?, ", len(lq.IDs)), ", ") + `)`)
		for _, id := range lq.IDs {
			args = append(args, id)
		}
	}
	if lq.After != "" {
		b.WriteString(` AND r.id > ?`)
		args = append(args, lq.After)
	}
	b.WriteString(` ORDER BY r.id LIMIT ` + strconv.Itoa(limit(lq.Limit)))
	return db.queryVersions(ctx, lq.Tenant, b.String(), args)
}

func limit(n int) int {
	if n <= 0 || n > 10000 {
		return 10000
	}
	return n
}

func (db *DB) queryVersions(ctx context.Context, tenant, query string, args []any) ([]store.Version, error) {
	rows, err := db.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%w: query versions: %v", store.ErrUnavailable, err)
	}
	defer rows.Close()
	var out []store.Version
	var bodies arena
	for rows.Next() {
		v := store.Version{Tenant: tenant}
		var lu int64
		var del int
		var body sql.RawBytes
		if err := rows.Scan(&v.Type, &v.ID, &v.Version, &lu, &del, &body, &v.Seq); err != nil {
			return nil, fmt.Errorf("%w: scan version: %v", store.ErrUnavailable, err)
		}
		v.Body = bodies.copy(body)
		v.LastUpdated = time.UnixMicro(lu).UTC()
		v.Deleted = del != 0
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: query versions: %v", store.ErrUnavailable, err)
	}
	return out, nil
}

// UserByName finds a user of a tenant.
func (db *DB) UserByName(ctx context.Context, tenant, username string) (*store.User, error) {
	return db.user(ctx, `tenant = ? AND username = ?`, tenant, username)
}

// UserByID finds a user by id.
func (db *DB) UserByID(ctx context.Context, id string) (*store.User, error) {
	return db.user(ctx, `id = ?`, id)
}

func (db *DB) user(ctx context.Context, where string, args ...any) (*store.User, error) {
	u := &store.User{}
	var created, lockedUntil int64
	var disabled int
	var clearances string
	err := db.read.QueryRowContext(ctx, db.d.Placeholders(`SELECT id, tenant, username, role, password_hash, created, disabled, failed_logins, locked_until, totp_secret, totp_last_step, practitioner, patient, clearances FROM users WHERE `+where), args...).
		Scan(&u.ID, &u.Tenant, &u.Username, &u.Role, &u.PasswordHash, &created, &disabled, &u.FailedLogins, &lockedUntil, &u.TOTPSecret, &u.TOTPLastStep, &u.Practitioner, &u.Patient, &clearances)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read user: %v", store.ErrUnavailable, err)
	}
	u.Created = time.UnixMicro(created).UTC()
	u.Disabled = disabled != 0
	if clearances != "" {
		u.Clearances = strings.Split(clearances, ",")
	}
	if lockedUntil != 0 {
		u.LockedUntil = time.UnixMicro(lockedUntil).UTC()
	}
	return u, nil
}

// Users lists a tenant's users by username (password hashes included: the
// caller decides what to show).
func (db *DB) Users(ctx context.Context, tenant string) ([]store.User, error) {
	rows, err := db.read.QueryContext(ctx, db.d.Placeholders(`SELECT id, tenant, username, role, created, disabled, failed_logins, locked_until, totp_secret IS NOT NULL, practitioner, patient, clearances FROM users WHERE tenant = ? ORDER BY username`), tenant)
	if err != nil {
		return nil, fmt.Errorf("%w: list users: %v", store.ErrUnavailable, err)
	}
	defer rows.Close()
	var out []store.User
	for rows.Next() {
		var u store.User
		var created, locked int64
		var disabled int
		var totp bool
		var clearances string
		if err := rows.Scan(&u.ID, &u.Tenant, &u.Username, &u.Role, &created, &disabled, &u.FailedLogins, &locked, &totp, &u.Practitioner, &u.Patient, &clearances); err != nil {
			return nil, fmt.Errorf("%w: scan user: %v", store.ErrUnavailable, err)
		}
		if clearances != "" {
			u.Clearances = strings.Split(clearances, ",")
		}
		u.Created = time.UnixMicro(created).UTC()
		u.Disabled = disabled != 0
		if locked != 0 {
			u.LockedUntil = time.UnixMicro(locked).UTC()
		}
		if totp {
			u.TOTPSecret = []byte{} // enrolled; the secret itself is not read here
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// RefreshByID finds a refresh token by the hash of its value.
func (db *DB) RefreshByID(ctx context.Context, id string) (*store.Refresh, error) {
	r := &store.Refresh{}
	var exp int64
	var used, revoked int
	err := db.read.QueryRowContext(ctx, db.d.Placeholders(`SELECT id, family, user_id, tenant, scope, expires, used, revoked, patient, encounter, client_id FROM refresh_tokens WHERE id = ?`), id).
		Scan(&r.ID, &r.Family, &r.UserID, &r.Tenant, &r.Scope, &exp, &used, &revoked, &r.Patient, &r.Encounter, &r.ClientID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read refresh token: %v", store.ErrUnavailable, err)
	}
	r.Expires = time.UnixMicro(exp).UTC()
	r.Used, r.Revoked = used != 0, revoked != 0
	return r, nil
}

// Revoked lists unexpired revoked token ids.
func (db *DB) Revoked(ctx context.Context) ([]string, error) {
	rows, err := db.read.QueryContext(ctx, db.d.Placeholders(`SELECT jti FROM revoked_tokens WHERE expires >= ?`), time.Now().UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("%w: list revocations: %v", store.ErrUnavailable, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var j string
		if err := rows.Scan(&j); err != nil {
			return nil, fmt.Errorf("%w: scan revocation: %v", store.ErrUnavailable, err)
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// DisabledSubjects lists disabled users' ids and "client/"+id of disabled
// clients (the subjects of their tokens).
func (db *DB) DisabledSubjects(ctx context.Context) ([]string, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT id FROM users WHERE disabled <> 0 UNION ALL SELECT 'client/' || id FROM clients WHERE disabled <> 0`)
	if err != nil {
		return nil, fmt.Errorf("%w: list disabled subjects: %v", store.ErrUnavailable, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("%w: scan disabled subject: %v", store.ErrUnavailable, err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// ClientByID finds a registered client.
func (db *DB) ClientByID(ctx context.Context, id string) (*store.Client, error) {
	c := &store.Client{}
	var created int64
	var disabled int
	var redirects string
	err := db.read.QueryRowContext(ctx, db.d.Placeholders(`SELECT id, tenant, jwks, scope, created, disabled, redirect_uris, secret_hash FROM clients WHERE id = ?`), id).
		Scan(&c.ID, &c.Tenant, &c.JWKS, &c.Scope, &created, &disabled, &redirects, &c.SecretHash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read client: %v", store.ErrUnavailable, err)
	}
	c.Created = time.UnixMicro(created).UTC()
	c.Disabled = disabled != 0
	c.RedirectURIs = strings.Fields(redirects)
	return c, nil
}

// Keys returns the keys with a purpose, oldest first.
func (db *DB) Keys(ctx context.Context, purpose string) ([]store.Key, error) {
	rows, err := db.read.QueryContext(ctx, db.d.Placeholders(`SELECT id, purpose, tenant, wrapped, created FROM keys WHERE purpose = ? ORDER BY created, id`), purpose)
	if err != nil {
		return nil, fmt.Errorf("%w: read keys: %v", store.ErrUnavailable, err)
	}
	defer rows.Close()
	var out []store.Key
	for rows.Next() {
		var k store.Key
		var created int64
		if err := rows.Scan(&k.ID, &k.Purpose, &k.Tenant, &k.Wrapped, &created); err != nil {
			return nil, fmt.Errorf("%w: scan key: %v", store.ErrUnavailable, err)
		}
		k.Created = time.UnixMicro(created).UTC()
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: read keys: %v", store.ErrUnavailable, err)
	}
	return out, nil
}

// AuditHead returns the stored ledger head.
func (db *DB) AuditHead(ctx context.Context) (audit.Head, error) {
	return readHead(db.read.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`))
}

func readHead(row *sql.Row) (audit.Head, error) {
	var h audit.Head
	var hash []byte
	if err := row.Scan(&h.Seq, &hash); err != nil {
		return h, fmt.Errorf("%w: read audit head: %v", store.ErrUnavailable, err)
	}
	if h.Seq == 0 {
		h.Hash = audit.Genesis
	} else if copy(h.Hash[:], hash) != len(h.Hash) {
		return h, fmt.Errorf("%w: audit head hash has %d bytes", store.ErrUnavailable, len(hash))
	}
	return h, nil
}

// AuditScan streams ledger records in seq order from one read snapshot.
func (db *DB) AuditScan(ctx context.Context, after int64, fn func(audit.Head, iter.Seq2[*audit.Record, error]) error) error {
	var opts *sql.TxOptions
	if db.d.Name == "postgres" {
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	tx, err := db.read.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("%w: begin audit scan: %v", store.ErrUnavailable, err)
	}
	defer tx.Rollback()
	head, err := readHead(tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`))
	if err != nil {
		return err
	}
	records := func(yield func(*audit.Record, error) bool) {
		const page = 1000
		from := after
		for {
			recs, err := db.auditPage(ctx, tx, from, page)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, r := range recs {
				if !yield(r, nil) {
					return
				}
				from = r.Seq
			}
			if len(recs) < page {
				return
			}
		}
	}
	return fn(head, records)
}

func (db *DB) auditPage(ctx context.Context, tx *sql.Tx, after int64, n int) ([]*audit.Record, error) {
	rows, err := tx.QueryContext(ctx, db.d.Placeholders(`SELECT seq, recorded_at, tenant, request_id, actor, role, action, resource_type, entities, outcome, detail, emergency, purpose, prev_hash, hash
		FROM audit_log WHERE seq > ? ORDER BY seq LIMIT `+strconv.Itoa(n)), after)
	if err != nil {
		return nil, fmt.Errorf("%w: scan audit log: %v", store.ErrUnavailable, err)
	}
	defer rows.Close()
	var out []*audit.Record
	for rows.Next() {
		r := &audit.Record{}
		var at int64
		var ents string
		var outcome, emergency int
		var prev, hash []byte
		if err := rows.Scan(&r.Seq, &at, &r.Tenant, &r.RequestID, &r.Actor, &r.Role, &r.Action, &r.ResourceType, &ents, &outcome, &r.Detail, &emergency, &r.Purpose, &prev, &hash); err != nil {
			return nil, fmt.Errorf("%w: scan audit record: %v", store.ErrUnavailable, err)
		}
		r.Time = time.UnixMicro(at).UTC()
		r.Outcome = audit.Outcome(outcome)
		r.Emergency = emergency != 0
		copy(r.PrevHash[:], prev)
		copy(r.Hash[:], hash)
		if r.Entities, err = decodeEntities(ents); err != nil {
			// A mangled entity list is tampering too: hand the record on
			// with a marker entity so that its hash cannot match.
			r.Entities = []string{"\x00undecodable:" + ents}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: scan audit log: %v", store.ErrUnavailable, err)
	}
	return out, nil
}

// searchBase is the FROM and WHERE shared by Search and Count: the
// tenant, type and not-deleted conditions come first and are always there.
func searchBase(q store.SearchQuery) (string, []any, error) {
	return searchFrom(q, false)
}

// searchFrom is the FROM and WHERE of a search; join makes q.Drive the
// first table of the FROM instead of a condition.
func searchFrom(q store.SearchQuery, join bool) (string, []any, error) {
	if q.Tenant == "" || len(q.Types) == 0 {
		return "", nil, fmt.Errorf("%w: search without tenant or type", store.ErrUnavailable)
	}
	var b strings.Builder
	var args []any
	d := q.Drive
	if join {
		b.WriteString(` FROM ` + d.Table + ` ` + d.Alias + ` JOIN resources r ON r.rid = ` + d.Alias + `.rid WHERE (` + d.Cond + `) AND`)
		args = append(args, d.Args...)
	} else {
		b.WriteString(` FROM resources r WHERE`)
	}
	args = append(args, q.Tenant)
	b.WriteString(` r.tenant = ? AND r.deleted = 0 AND r.type`)
	if len(q.Types) == 1 {
		b.WriteString(` = ?`)
	} else {
		b.WriteString(` IN (` + strings.TrimSuffix(strings.Repeat("?, ", len(q.Types)), ", ") + `)`)
	}
	for _, t := range q.Types {
		args = append(args, t)
	}
	if d != nil && !join {
		b.WriteString(` AND r.rid IN (SELECT ` + d.Alias + `.rid FROM ` + d.Table + ` ` + d.Alias + ` WHERE ` + d.Cond + `)`)
		args = append(args, d.Args...)
	}
	for _, w := range q.Where {
		b.WriteString(` AND (` + w + `)`)
	}
	return b.String(), append(args, q.Args...), nil
}

// searchSQL is the statement of one page of a search with its bodies:
// each row is the rid, the version the resources row holds (its body
// included), then the sort keys. One statement, not a page and then its
// bodies: on PostgreSQL a round trip fewer; on both databases no index
// probe and heap or B-tree page per hit in resource_versions (measured on
// the family-name page of docs/benchmarks.md: on SQLite the second
// statement cost more than the page itself). The keyset
// condition compares the sort keys and the rid with the cursor's, so that a
// page starts exactly after the previous one whatever was written in
// between. joinDrive lets a page in rid order (no sort keys) join its
// driving index rows: they come in rid order, so the page stops at its
// limit instead of listing every candidate first.
func searchSQL(q store.SearchQuery, d Dialect) (string, []any, error) {
	join := d.JoinDrive && q.Drive != nil && len(q.Order) == 0
	base, args, err := searchFrom(q, join)
	if err != nil {
		return "", nil, err
	}
	rid := `r.rid`
	if join {
		// The index's own rid column, so that the cursor seeks in it.
		rid = q.Drive.Alias + `.rid`
	}
	var sel, ord strings.Builder
	var selArgs, keyArgs []any
	sel.WriteString(`SELECT `)
	if join && d.DistinctOn {
		sel.WriteString(`DISTINCT ON (` + rid + `) `)
	}
	sel.WriteString(`r.rid, r.seq, r.tenant, r.type, r.id, r.version, r.last_updated, r.deleted, r.body`)
	for i, o := range q.Order {
		sel.WriteString(`, ` + o.Expr + ` AS k` + strconv.Itoa(i))
		selArgs = append(selArgs, o.Args...)
		if ord.Len() > 0 {
			ord.WriteString(`, `)
		}
		// By the selected column's name: the expression (a subquery per
		// candidate) is then evaluated once per row, not again to sort.
		ord.WriteString(`k` + strconv.Itoa(i))
		if o.Desc {
			ord.WriteString(` DESC`)
		}
	}
	if ord.Len() > 0 {
		ord.WriteString(`, `)
	}
	ord.WriteString(rid)
	keyset := ""
	if q.After != nil {
		if len(q.After) != len(q.Order)+1 {
			return "", nil, fmt.Errorf("%w: cursor does not fit the sort", store.ErrUnavailable)
		}
		// (k1 > a1) OR (k1 = a1 AND k2 > a2) OR ... OR (all equal AND rid > c)
		var ors []string
		for i := 0; i <= len(q.Order); i++ {
			var ands []string
			for j := 0; j < i; j++ {
				ands = append(ands, q.Order[j].Expr+` = ?`)
				keyArgs = append(keyArgs, q.Order[j].Args...)
				keyArgs = append(keyArgs, q.After[j])
			}
			if i < len(q.Order) {
				op := ` > ?`
				if q.Order[i].Desc {
					op = ` < ?`
				}
				ands = append(ands, q.Order[i].Expr+op)
				keyArgs = append(keyArgs, q.Order[i].Args...)
			} else {
				ands = append(ands, rid+` > ?`)
			}
			keyArgs = append(keyArgs, q.After[i])
			ors = append(ors, `(`+strings.Join(ands, ` AND `)+`)`)
		}
		keyset = ` AND (` + strings.Join(ors, ` OR `) + `)`
	}
	group := ""
	if join && !d.DistinctOn {
		// An index row per matching value: one resource may have several
		// (the same code in two systems).
		group = ` GROUP BY ` + rid
	}
	inner := sel.String() + base + keyset + group + ` ORDER BY ` + ord.String() + ` LIMIT ` + strconv.Itoa(limit(q.Limit))
	return inner, append(append(selArgs, args...), keyArgs...), nil
}

// Search runs a translated search: one statement (searchSQL) for the page
// and its bodies.
func (db *DB) Search(ctx context.Context, q store.SearchQuery) ([]store.Hit, error) {
	stmt, args, err := searchSQL(q, db.d)
	if err != nil {
		return nil, err
	}
	rows, err := db.query(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("%w: search: %v", store.ErrUnavailable, err)
	}
	defer rows.Close()
	// Sized for the page (up to a bound): a Hit is large, and growing the
	// slice row by row copied a page of them five times.
	hits := make([]store.Hit, 0, min(limit(q.Limit), 128))
	var bodies arena
	for rows.Next() {
		h := store.Hit{Keys: make([]any, len(q.Order)), Version: store.Version{Tenant: q.Tenant}}
		var lu int64
		var del int
		var tenant string
		var body sql.RawBytes
		// searchSQL's column order: the rid, the version, the sort keys.
		dst := append(make([]any, 0, 9+len(h.Keys)), &h.RID, &h.Seq, &tenant, &h.Type, &h.ID, &h.Version.Version, &lu, &del, &body)
		for i := range h.Keys {
			dst = append(dst, &h.Keys[i])
		}
		if err := rows.Scan(dst...); err != nil {
			return nil, fmt.Errorf("%w: scan search: %v", store.ErrUnavailable, err)
		}
		h.Body = bodies.copy(body)
		if tenant != q.Tenant {
			return nil, fmt.Errorf("%w: search: version %d is not in the tenant searched", store.ErrUnavailable, h.Seq)
		}
		h.LastUpdated = time.UnixMicro(lu).UTC()
		h.Deleted = del != 0
		hits = append(hits, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: search: %v", store.ErrUnavailable, err)
	}
	return hits, nil
}

// arena holds the sealed bodies that one read returns. database/sql copies
// a []byte it scans, one allocation per row on top of the driver's own;
// scanning a sql.RawBytes (valid only until the next row) and copying it
// here makes a page of twenty bodies a few allocations (8 KB, then each
// twice the last). Each body is capped at its length, so that appending to
// one can never write into the next.
type arena struct{ buf []byte }

// copy returns a copy of b (nil for a NULL body) in the arena.
func (a *arena) copy(b sql.RawBytes) []byte {
	if b == nil {
		return nil
	}
	if cap(a.buf)-len(a.buf) < len(b) {
		a.buf = make([]byte, 0, max(2*cap(a.buf), 8<<10, len(b)))
	}
	start := len(a.buf)
	a.buf = append(a.buf, b...)
	return a.buf[start:len(a.buf):len(a.buf)]
}

// Explain returns the database's plan for the page query of q (or for its
// count), one line per plan node, so
// that tests and operators can check that a search uses the index.
func (db *DB) Explain(ctx context.Context, q store.SearchQuery, o store.ExplainOptions) ([]string, error) {
	var stmt string
	var args []any
	var err error
	if o.Count {
		var base string
		base, args, err = searchBase(q)
		stmt = `SELECT COUNT(*)` + base
	} else {
		stmt, args, err = searchSQL(q, db.d)
	}
	if err != nil {
		return nil, err
	}
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("%w: explain: %v", store.ErrUnavailable, err)
	}
	defer tx.Rollback()
	if o.NoSeqScan && db.d.NoSeqScan != "" {
		if _, err := tx.ExecContext(ctx, db.d.NoSeqScan); err != nil {
			return nil, fmt.Errorf("%w: explain: %v", store.ErrUnavailable, err)
		}
	}
	explain, explainArgs := db.d.Explain+db.d.Placeholders(stmt), args
	if o.Generic && db.d.GenericPlan != "" {
		// PostgreSQL 15 has no EXPLAIN (GENERIC_PLAN): prepare the
		// statement, force its generic plan, and explain an EXECUTE of
		// it with the values written as literals.
		// A prepared statement outlives the transaction: a name of its
		// own, deallocated on the same connection before the rollback.
		name := "ward_explain_" + strconv.FormatInt(explains.Add(1), 10)
		if _, err := tx.ExecContext(ctx, `PREPARE `+name+` AS `+db.d.Placeholders(stmt)); err != nil {
			return nil, fmt.Errorf("%w: explain: %v", store.ErrUnavailable, err)
		}
		defer tx.ExecContext(context.WithoutCancel(ctx), `DEALLOCATE `+name) //nolint:errcheck // best effort; it holds no lock
		if _, err := tx.ExecContext(ctx, db.d.GenericPlan); err != nil {
			return nil, fmt.Errorf("%w: explain: %v", store.ErrUnavailable, err)
		}
		lits := make([]string, len(args))
		for i, a := range args {
			l, err := sqlLiteral(a)
			if err != nil {
				return nil, fmt.Errorf("%w: explain: %v", store.ErrUnavailable, err)
			}
			lits[i] = l
		}
		explain, explainArgs = db.d.Explain+`EXECUTE `+name, nil
		if len(lits) > 0 {
			explain += `(` + strings.Join(lits, `, `) + `)`
		}
	}
	rows, err := tx.QueryContext(ctx, explain, explainArgs...)
	if err != nil {
		return nil, fmt.Errorf("%w: explain: %v", store.ErrUnavailable, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("%w: explain: %v", store.ErrUnavailable, err)
		}
		// SQLite: id, parent, notused, detail; PostgreSQL: one text column.
		last := vals[len(vals)-1]
		if b, ok := last.([]byte); ok {
			out = append(out, string(b))
		} else {
			out = append(out, fmt.Sprint(last))
		}
	}
	return out, rows.Err()
}

// explains names the statements Explain prepares.
var explains atomic.Int64

// sqlLiteral writes a search argument as an SQL literal (Explain with
// Generic only: the statement is never run with it).
func sqlLiteral(a any) (string, error) {
	switch v := a.(type) {
	case int:
		return strconv.Itoa(v), nil
	case int32:
		return strconv.FormatInt(int64(v), 10), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), nil
	case string:
		return `'` + strings.ReplaceAll(v, `'`, `''`) + `'`, nil
	}
	return "", fmt.Errorf("no literal for an argument of type %T", a)
}

// Count counts the matches of a translated search.
func (db *DB) Count(ctx context.Context, q store.SearchQuery) (int64, error) {
	base, args, err := searchBase(q)
	if err != nil {
		return 0, err
	}
	var n int64
	if err := db.queryRow(ctx, `SELECT COUNT(*)`+base, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("%w: count: %v", store.ErrUnavailable, err)
	}
	return n, nil
}

// Exists answers every group in one statement, one column a group, so
// that several questions cost one round trip; each EXISTS stops at its
// first row.
func (db *DB) Exists(ctx context.Context, groups ...[]store.SearchQuery) ([]bool, error) {
	out := make([]bool, len(groups))
	var b strings.Builder
	var args []any
	b.WriteString(`SELECT `)
	for g, qs := range groups {
		if g > 0 {
			b.WriteString(`, `)
		}
		b.WriteString(`CASE WHEN `)
		if len(qs) == 0 {
			b.WriteString(`1 = 0`)
		}
		for i, q := range qs {
			base, a, err := searchBase(q)
			if err != nil {
				return nil, err
			}
			if i > 0 {
				b.WriteString(` OR `)
			}
			b.WriteString(`EXISTS (SELECT 1` + base + `)`)
			args = append(args, a...)
		}
		b.WriteString(` THEN 1 ELSE 0 END`)
	}
	if len(groups) == 0 {
		return out, nil
	}
	ns := make([]int64, len(groups))
	dest := make([]any, len(groups))
	for i := range ns {
		dest[i] = &ns[i]
	}
	if err := db.queryRow(ctx, b.String(), args...).Scan(dest...); err != nil {
		return nil, fmt.Errorf("%w: exists: %v", store.ErrUnavailable, err)
	}
	for i, n := range ns {
		out[i] = n == 1
	}
	return out, nil
}

// Refs reads the current versions of named resources.
func (db *DB) Refs(ctx context.Context, tenant string, refs []store.Ref) ([]store.Version, error) {
	var out []store.Version
	for start := 0; start < len(refs); start += 300 {
		chunk := refs[start:min(len(refs), start+300)]
		var b strings.Builder
		args := []any{tenant}
		b.WriteString(`SELECT r.type, r.id, r.version, r.last_updated, r.deleted, r.body, r.seq
			FROM resources r WHERE r.tenant = ? AND r.deleted = 0 AND (r.type, r.id) IN (VALUES `)
		for i, r := range chunk {
			if i > 0 {
				b.WriteString(`, `)
			}
			b.WriteString(`(?, ?)`)
			args = append(args, r.Type, r.ID)
		}
		b.WriteString(`)`)
		vs, err := db.queryVersions(ctx, tenant, b.String(), args)
		if err != nil {
			return nil, err
		}
		out = append(out, vs...)
	}
	return out, nil
}

// Resources lists current resources of every tenant in rid order.
func (db *DB) Resources(ctx context.Context, afterRID int64, n int) ([]store.Hit, error) {
	rows, err := db.read.QueryContext(ctx, db.d.Placeholders(`SELECT r.rid, r.tenant, r.type, r.id, r.version, r.last_updated, r.deleted, r.body, r.seq
		FROM resources r WHERE r.rid > ? AND r.deleted = 0 ORDER BY r.rid LIMIT `+strconv.Itoa(limit(n))), afterRID)
	if err != nil {
		return nil, fmt.Errorf("%w: list resources: %v", store.ErrUnavailable, err)
	}
	defer rows.Close()
	var out []store.Hit
	for rows.Next() {
		var h store.Hit
		var lu int64
		var del int
		if err := rows.Scan(&h.RID, &h.Tenant, &h.Type, &h.ID, &h.Version.Version, &lu, &del, &h.Body, &h.Seq); err != nil {
			return nil, fmt.Errorf("%w: scan resources: %v", store.ErrUnavailable, err)
		}
		h.LastUpdated = time.UnixMicro(lu).UTC()
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: list resources: %v", store.ErrUnavailable, err)
	}
	return out, nil
}

// IndexSize measures the search index (see store.Sizer). On SQLite the
// bytes come from the dbstat table (pages in use, including their slack);
// on PostgreSQL from pg_total_relation_size (heap, indexes and TOAST).
func (db *DB) IndexSize(ctx context.Context, typ string) ([]store.TableSize, int64, error) {
	var out []store.TableSize
	for _, t := range searchTables {
		ts := store.TableSize{Name: t}
		var q string
		if db.d.Name == "postgres" {
			q = `SELECT pg_total_relation_size('` + t + `')`
		} else {
			q = `SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name IN (SELECT name FROM sqlite_master WHERE tbl_name = '` + t + `')`
		}
		if err := db.read.QueryRowContext(ctx, q).Scan(&ts.Bytes); err != nil {
			return nil, 0, fmt.Errorf("%w: size of %s: %v", store.ErrUnavailable, t, err)
		}
		if err := db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+t).Scan(&ts.Rows); err != nil {
			return nil, 0, fmt.Errorf("%w: rows of %s: %v", store.ErrUnavailable, t, err)
		}
		if err := db.read.QueryRowContext(ctx, db.d.Placeholders(`SELECT COUNT(*) FROM `+t+` x JOIN resources r ON r.rid = x.rid WHERE r.type = ? AND r.deleted = 0`), typ).Scan(&ts.RowsFor); err != nil {
			return nil, 0, fmt.Errorf("%w: rows of %s: %v", store.ErrUnavailable, t, err)
		}
		out = append(out, ts)
	}
	var n int64
	if err := db.read.QueryRowContext(ctx, db.d.Placeholders(`SELECT COUNT(*) FROM resources WHERE type = ? AND deleted = 0`), typ).Scan(&n); err != nil {
		return nil, 0, fmt.Errorf("%w: count %s: %v", store.ErrUnavailable, typ, err)
	}
	// The indexes that search added to the resources table: one entry per
	// resource of any type.
	ri := store.TableSize{Name: "resources (search indexes)", RowsFor: n}
	var q string
	if db.d.Name == "postgres" {
		q = `SELECT COALESCE(SUM(pg_relation_size(indexrelid)), 0) FROM pg_index WHERE indexrelid::regclass::text IN ('resources_type', 'resources_updated', 'resources_refh', 'resources_rid')`
	} else {
		q = `SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name IN ('resources_type', 'resources_updated', 'resources_refh')`
	}
	if err := db.read.QueryRowContext(ctx, q).Scan(&ri.Bytes); err != nil {
		return nil, 0, fmt.Errorf("%w: size of resources indexes: %v", store.ErrUnavailable, err)
	}
	if err := db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM resources`).Scan(&ri.Rows); err != nil {
		return nil, 0, fmt.Errorf("%w: count resources: %v", store.ErrUnavailable, err)
	}
	return append(out, ri), n, nil
}
