package sqlstore

// The audit ledger: appending records with their hash chain, and reading
// the head and the records back for verification.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/store"
)

// LedgerCommits counts the batches this process has committed: by the one
// statement that appends ledger records (reads and searches, see
// appendAudit) and by a transaction.
func (db *DB) LedgerCommits() (oneStatement, transactions int64) {
	return db.appends.Load(), db.transactions.Load()
}

// auditOnly says every unit of batch holds ledger records and nothing else.
func auditOnly(batch []*job) bool {
	for _, j := range batch {
		if !j.u.RecordsOnly() {
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
	if len(recs) == 0 {
		return false, nil
	}
	from, head := db.head, db.head
	for _, r := range recs {
		head.Seq++
		r.Seq = head.Seq
		db.hasher.Chain(head.Hash, r)
		head.Hash = r.Hash
	}
	// Records with patients also write their patient index rows, in the
	// same statement; counted once chained (Chain sorts and deduplicates
	// them). A batch too large for one statement goes through the
	// transaction, which chains the records again.
	patients := 0
	for _, r := range recs {
		patients += len(r.Patients)
	}
	if 3+auditCols*len(recs)+4*patients > db.d.MaxParams {
		return false, nil
	}
	args := make([]any, 0, 3+auditCols*len(recs)+4*patients)
	args = append(args, head.Seq, head.Hash[:], from.Seq)
	for _, r := range recs {
		args = auditArgs(args, r)
	}
	for _, r := range recs {
		for _, p := range r.Patients { // sorted and unique once chained
			args = append(args, r.Seq, p, r.Tenant, r.Time.UnixMicro())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), db.opts.CommitTimeout)
	defer cancel()
	db.headKnown = false
	res, err := db.write.ExecContext(ctx, db.d.AppendAudit(len(recs), patients), args...)
	if err != nil {
		return false, fmt.Errorf("append audit records: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("append audit records: %w", err)
	}
	want := int64(len(recs))
	if patients > 0 {
		want = int64(patients)
	}
	switch n {
	case 0:
		return false, nil
	case want:
		db.head, db.headKnown = head, true
		db.appends.Add(1)
		return true, nil
	}
	return false, fmt.Errorf("append audit records: %d rows for %d records and %d patient rows", n, len(recs), patients)
}

// advanceHead moves the stored ledger head in a batch's transaction.
const advanceHead = `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`

// AuditColumns are the ledger's columns in the order of auditArgs.
const AuditColumns = `seq, recorded_at, tenant, request_id, actor, role, action, resource_type, entities, outcome, detail, emergency, purpose, prev_hash, hash, address, patients`

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
const auditCols = 17

func auditArgs(a []any, r *audit.Record) []any {
	return append(a, r.Seq, r.Time.UnixMicro(), r.Tenant, r.RequestID, r.Actor, r.Role, r.Action, r.ResourceType,
		encodeEntities(r.Entities), int(r.Outcome), r.Detail, boolInt(r.Emergency), r.Purpose, r.PrevHash[:], r.Hash[:], r.Address,
		strings.Join(r.Patients, " ")) // sorted and unique once chained
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

// decodeEntities reads an entity list back. The lists encodeEntities
// wrote without encoding/json (every reference plainJSON) are split
// directly: json.Unmarshal was an eighth of the checkpointer's work per
// record (the profile of BenchmarkLedgerTreeExtend). Anything else, a list
// with escapes or one not written by Ward, goes through json.Unmarshal,
// so both give the same result (FuzzDecodeEntities).
func decodeEntities(s string) ([]string, error) {
	if s == "[]" {
		return nil, nil
	}
	if len(s) >= 4 && s[:2] == `["` && s[len(s)-2:] == `"]` {
		es := strings.Split(s[2:len(s)-2], `","`)
		plain := true
		for _, e := range es {
			if !plainJSON(e) {
				plain = false
				break
			}
		}
		if plain {
			return es, nil
		}
	}
	var es []string
	if err := json.Unmarshal([]byte(s), &es); err != nil {
		return nil, err
	}
	if len(es) == 0 {
		return nil, nil
	}
	return es, nil
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
	return db.auditScan(ctx, after, false, fn)
}

// AuditScanTree implements store.LedgerTree: AuditScan reading each
// record's patients from its row's copy where it has one (every record
// written since migration 00047), so that a page is one statement.
func (db *DB) AuditScanTree(ctx context.Context, after int64, fn func(audit.Head, iter.Seq2[*audit.Record, error]) error) error {
	return db.auditScan(ctx, after, true, fn)
}

func (db *DB) auditScan(ctx context.Context, after int64, rowCopy bool, fn func(audit.Head, iter.Seq2[*audit.Record, error]) error) error {
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
			recs, err := db.auditPage(ctx, tx, from, page, rowCopy)
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

func (db *DB) auditPage(ctx context.Context, tx *sql.Tx, after int64, n int, rowCopy bool) ([]*audit.Record, error) {
	rows, err := tx.QueryContext(ctx, db.d.Placeholders(`SELECT `+auditSelect+`, l.patients
		FROM audit_log l WHERE l.seq > ? ORDER BY l.seq LIMIT `+strconv.Itoa(n)), after)
	if err != nil {
		return nil, fmt.Errorf("%w: scan audit log: %v", store.ErrUnavailable, err)
	}
	out, copies, err := scanAuditWith(rows, true)
	rows.Close()
	if err != nil {
		return nil, err
	}
	if rowCopy {
		// The tree's scan: only records older than the row copy read
		// the index.
		var old []*audit.Record
		for i, r := range out {
			if !copies[i].Valid {
				old = append(old, r)
			}
		}
		if err := db.fillPatients(ctx, tx, old); err != nil {
			return nil, err
		}
		return out, nil
	}
	// The patient lists are hashed (canonical format version 2): read
	// them back from the index with the records so that Verify covers the
	// index too, and check the record's own copy (searches read that one)
	// against it: a copy that differs makes the record's hash fail.
	for _, r := range out {
		r.Patients = nil
	}
	if err := db.fillPatients(ctx, tx, out); err != nil {
		return nil, err
	}
	for i, r := range out {
		if c := copies[i]; c.Valid && c.String != strings.Join(slices.Sorted(slices.Values(r.Patients)), " ") {
			r.Patients = append(r.Patients, "\x00patients-copy-differs")
		}
	}
	return out, nil
}

// chainAudit chains the records of every unit of the batch after head, in
// batch order, inserts them and advances the head row; it returns the new
// head.
func (db *DB) chainAudit(ctx context.Context, tx *sql.Tx, head audit.Head, batch []*job) (audit.Head, error) {
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
		if err := db.insertAudit(ctx, tx, recs); err != nil {
			return head, err
		}
		if err := db.insertPatients(ctx, tx, recs); err != nil {
			return head, err
		}
		if _, err := db.txExec(ctx, tx, advanceHead, head.Seq, head.Hash[:]); err != nil {
			return head, fmt.Errorf("advance audit head: %w", err)
		}
	}
	return head, nil
}

// Cursor returns the saved position of a ledger consumer (store.Cursors).
func (db *DB) Cursor(ctx context.Context, name string) (int64, []byte, error) {
	var seq int64
	var state []byte
	err := db.read.QueryRowContext(ctx, db.d.Placeholders(`SELECT seq, state FROM ledger_cursors WHERE name = ?`), name).Scan(&seq, &state)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("%w: read ledger cursor: %v", store.ErrUnavailable, err)
	}
	return seq, state, nil
}

// nonNil stores an absent state as an empty one (the column is NOT NULL).
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
