package sqlstore

// Resource versions, the current-version rows and the search index rows:
// how a batch writes them, and the reads of versions and history.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

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
	// The current version: its row in resource_versions (seq), never its
	// body, which is stored once, there (migration 00058). Reads join the
	// version by seq for the rows they return.
	upsertCurrent  = insertSpec{`INSERT INTO resources (` + currentCols + `) VALUES `, currentConflict, 9}
	insertAuditRec = insertSpec{`INSERT INTO audit_log (` + AuditColumns + `) VALUES `, ``, auditCols}
	insertToken    = insertSpec{`INSERT INTO search_token (p, h, rid, s) VALUES `, ` ON CONFLICT DO NOTHING`, 4}
	insertDate     = insertSpec{`INSERT INTO search_date (p, k, lo, hi, rid) VALUES `, ` ON CONFLICT DO NOTHING`, 5}
	insertNumber   = insertSpec{`INSERT INTO search_number (p, k, lo, hi, rid, u) VALUES `, ` ON CONFLICT DO NOTHING`, 6}
	insertString   = insertSpec{`INSERT INTO search_string (p, v, rid) VALUES `, ` ON CONFLICT DO NOTHING`, 3}
	insertPrefix   = insertSpec{`INSERT INTO search_prefix (p, h, rid, t, n, f) VALUES `, ` ON CONFLICT DO NOTHING`, 6}
	insertOutbox   = insertSpec{`INSERT INTO outbox (id, tenant, type, okey, at, body) VALUES `, ``, 6}
	insertSpecs    = []insertSpec{insertVersion, upsertCurrent, insertAuditRec, insertAuditPatient, insertToken, insertDate, insertNumber, insertString, insertPrefix, insertOutbox}
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
		return append(a, w.Tenant, w.Type, w.ID, w.Version, w.LastUpdated.UnixMicro(), boolInt(w.Deleted), w.seq, w.rid, refh)
	})
	if err != nil {
		return fmt.Errorf("upsert current versions: %w", err)
	}
	return nil
}

// searchTables are the index tables, each with an index on rid.
var searchTables = []string{"search_token", "search_date", "search_number", "search_string", "search_prefix"}

// indexEntry is the index of one resource, by rid (nil: no rows).
type indexEntry struct {
	rid int64
	ix  *store.Index
}

// writeIndex replaces the index rows of every resource the batch wrote or
// reindexed: the rows of resources that existed before are deleted, and
// the rows of each resource's final version in the batch inserted.
func (db *DB) writeIndex(ctx context.Context, tx *sql.Tx, order []rkey, final map[rkey]seqWrite, reindex []store.Reindex, rids map[rkey]int64) error {
	var (
		stale   []int64
		entries []indexEntry
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
		entries = append(entries, indexEntry{rid, ix})
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
	if err := db.deleteIndexRows(ctx, tx, stale); err != nil {
		return err
	}
	return db.insertIndexRows(ctx, tx, entries)
}

// scanVersion scans a version read by qCurrent or qVersion, which began
// no earlier than began, with its seal key's state where the dialect
// reads it (SealKeyJoin).
func (db *DB) scanVersion(row *sql.Row, began time.Time, tenant, typ, id string) (*store.Version, error) {
	v := &store.Version{Tenant: tenant, Type: typ, ID: id}
	var lu int64
	var del int
	var kid, kstate sql.NullString
	dest := []any{&v.Version, &lu, &del, &v.Body, &v.Seq}
	if db.d.SealKeyJoin != "" {
		dest = append(dest, &kid, &kstate)
	}
	if err := row.Scan(dest...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, store.ErrNotFound
		}
		return nil, fmt.Errorf("%w: read version: %v", store.ErrUnavailable, err)
	}
	v.LastUpdated = time.UnixMicro(lu).UTC()
	v.Deleted = del != 0
	if kid.Valid && kstate.Valid {
		v.SealKey = &store.SealKeyState{ID: kid.String, State: kstate.String, Began: began}
	}
	return v, nil
}

// Current returns the current version, which may be a deletion.
func (db *DB) Current(ctx context.Context, tenant, typ, id string) (*store.Version, error) {
	began := time.Now()
	return db.scanVersion(db.qCurrent.QueryRowContext(ctx, tenant, typ, id), began, tenant, typ, id)
}

// Version returns one version.
func (db *DB) Version(ctx context.Context, tenant, typ, id string, version int64) (*store.Version, error) {
	began := time.Now()
	return db.scanVersion(db.qVersion.QueryRowContext(ctx, tenant, typ, id, version), began, tenant, typ, id)
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
	b.WriteString(`SELECT r.type, r.id, r.version, r.last_updated, r.deleted, v.body, r.seq
		FROM resources r JOIN resource_versions v ON v.seq = r.seq WHERE r.tenant = ? AND r.type = ? AND r.deleted = 0`)
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

// Refs reads the current versions of named resources.
func (db *DB) Refs(ctx context.Context, tenant string, refs []store.Ref) ([]store.Version, error) {
	var out []store.Version
	for start := 0; start < len(refs); start += 300 {
		chunk := refs[start:min(len(refs), start+300)]
		var b strings.Builder
		args := []any{tenant}
		b.WriteString(`SELECT r.type, r.id, r.version, r.last_updated, r.deleted, v.body, r.seq
			FROM resources r JOIN resource_versions v ON v.seq = r.seq WHERE r.tenant = ? AND r.deleted = 0 AND (r.type, r.id) IN (VALUES `)
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
	rows, err := db.read.QueryContext(ctx, db.d.Placeholders(`SELECT r.rid, r.tenant, r.type, r.id, r.version, r.last_updated, r.deleted, v.body, r.seq
		FROM resources r JOIN resource_versions v ON v.seq = r.seq WHERE r.rid > ? AND r.deleted = 0 ORDER BY r.rid LIMIT `+strconv.Itoa(limit(n))), afterRID)
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

// deleteIndexRows deletes the index rows of the resources whose rids are
// given, in chunks.
func (db *DB) deleteIndexRows(ctx context.Context, tx *sql.Tx, stale []int64) error {
	q := db.d.Placeholders
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
	return nil
}

// insertIndexRows inserts the index rows of every entry, one multi-row
// statement per table and chunk.
func (db *DB) insertIndexRows(ctx context.Context, tx *sql.Tx, entries []indexEntry) error {
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
		pfxs []struct {
			rid int64
			n   int
			r   store.PrefixRow
		}
		// n numbers the rows of one resource that share p, h and t (the
		// key of search_prefix without its last column).
		same = map[store.PrefixRow]int{}
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
		clear(same)
		for _, r := range e.ix.Prefixes {
			k := store.PrefixRow{P: r.P, T: r.T, H: r.H}
			n := same[k]
			same[k] = n + 1
			pfxs = append(pfxs, struct {
				rid int64
				n   int
				r   store.PrefixRow
			}{e.rid, n, r})
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
	if err := db.insertRows(ctx, tx, insertPrefix, len(pfxs), func(i int, a []any) []any {
		r := pfxs[i].r
		// As a BLOB: the search compares byte ranges of it.
		return append(a, r.P, r.H, pfxs[i].rid, r.T, pfxs[i].n, []byte(r.F))
	}); err != nil {
		return fmt.Errorf("insert prefix index: %w", err)
	}
	return nil
}
