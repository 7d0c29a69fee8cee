package sqlstore

// Search: the translated query as SQL, its count, existence checks, plans
// and the size of the index.

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

// searchBase is the FROM and WHERE shared by Search and Count: the
// tenant, type and not-deleted conditions come first and are always there.
func searchBase(q store.SearchQuery) (string, []any, error) {
	return searchFrom(q, false, false)
}

// searchFrom is the FROM and WHERE of a search; join makes q.Drive the
// first table of the FROM instead of a condition, and bodies joins each
// resources row to its version (rv), whose body a page returns.
func searchFrom(q store.SearchQuery, join, bodies bool) (string, []any, error) {
	if q.Tenant == "" || len(q.Types) == 0 {
		return "", nil, fmt.Errorf("%w: search without tenant or type", store.ErrUnavailable)
	}
	var b strings.Builder
	var args []any
	d := q.Drive
	versions := ``
	if bodies {
		versions = ` JOIN resource_versions rv ON rv.seq = r.seq`
	}
	if join {
		b.WriteString(` FROM ` + d.Table + ` ` + d.Alias + ` JOIN resources r ON r.rid = ` + d.Alias + `.rid` + versions + ` WHERE (` + d.Cond + `) AND`)
		args = append(args, d.Args...)
	} else {
		b.WriteString(` FROM resources r` + versions + ` WHERE`)
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
// each row is the rid, the version the resources row names with its body
// (from resource_versions), then the sort keys. One statement, not a page
// and then its bodies: on PostgreSQL a round trip fewer, and on SQLite a
// second statement cost more than the page itself (the family-name page of
// docs/benchmarks.md). The bodies are joined to the page's rows only: one
// probe of resource_versions by seq per row returned. The keyset
// condition compares the sort keys and the rid with the cursor's, so that a
// page starts exactly after the previous one whatever was written in
// between. joinDrive lets a page in rid order (no sort keys) join its
// driving index rows: they come in rid order, so the page stops at its
// limit instead of listing every candidate first.
func searchSQL(q store.SearchQuery, d Dialect) (string, []any, error) {
	join := d.JoinDrive && q.Drive != nil && len(q.Order) == 0
	// A page in rid order streams from an index and stops at its limit:
	// joined there, each row returned probes its version by seq once. A
	// sorted page joins its bodies after its LIMIT (below).
	sorted := len(q.Order) > 0
	base, args, err := searchFrom(q, join, !sorted)
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
	sel.WriteString(`r.rid, r.seq, r.tenant, r.type, r.id, r.version, r.last_updated, r.deleted`)
	if !sorted {
		sel.WriteString(`, rv.body`)
	}
	for i, o := range q.Order {
		sel.WriteString(`, ` + o.Expr + ` AS k` + strconv.Itoa(i))
		selArgs = append(selArgs, o.Args...)
		if ord.Len() > 0 {
			ord.WriteString(`, `)
		}
		// By the selected column's name: the expression (a subquery per
		// candidate) is then evaluated once per row, not again to sort.
		ord.WriteString(`k` + strconv.Itoa(i))
		if o.Desc != q.Backward {
			ord.WriteString(` DESC`)
		}
	}
	if ord.Len() > 0 {
		ord.WriteString(`, `)
	}
	ord.WriteString(rid)
	if q.Backward {
		// Read in the reverse order from the cursor; Search turns the
		// rows back into q's order.
		ord.WriteString(` DESC`)
	}
	keyset := ""
	if q.After != nil {
		if len(q.After) != len(q.Order)+1 {
			return "", nil, fmt.Errorf("%w: cursor does not fit the sort", store.ErrUnavailable)
		}
		// (k1 > a1) OR (k1 = a1 AND k2 > a2) OR ... OR (all equal AND rid > c),
		// each comparison turned around when reading backward.
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
				if q.Order[i].Desc != q.Backward {
					op = ` < ?`
				}
				ands = append(ands, q.Order[i].Expr+op)
				keyArgs = append(keyArgs, q.Order[i].Args...)
			} else if q.Backward {
				ands = append(ands, rid+` < ?`)
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
	if !sorted {
		return inner, append(append(selArgs, args...), keyArgs...), nil
	}
	// A sorted page's bodies: joined by seq to the page only, outside its
	// LIMIT, so that it probes resource_versions once per row returned,
	// not once per candidate it sorts. Neither database flattens a
	// subquery with a LIMIT into a join, and the order is given again
	// because a join need not keep it.
	var outer, outerOrd strings.Builder
	outer.WriteString(`SELECT p.rid, p.seq, p.tenant, p.type, p.id, p.version, p.last_updated, p.deleted, rv.body`)
	for i, o := range q.Order {
		k := `p.k` + strconv.Itoa(i)
		outer.WriteString(`, ` + k)
		outerOrd.WriteString(k)
		if o.Desc != q.Backward {
			outerOrd.WriteString(` DESC`)
		}
		outerOrd.WriteString(`, `)
	}
	outerOrd.WriteString(`p.rid`)
	if q.Backward {
		outerOrd.WriteString(` DESC`)
	}
	stmt := outer.String() + ` FROM (` + inner + `) p JOIN resource_versions rv ON rv.seq = p.seq ORDER BY ` + outerOrd.String()
	return stmt, append(append(selArgs, args...), keyArgs...), nil
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
	if q.Backward {
		slices.Reverse(hits)
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
	case []byte: // blinded prefix bytes (PostgreSQL: Generic is its option)
		return `'\x` + hex.EncodeToString(v) + `'::bytea`, nil
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

// DiskUsage measures every table and index (see store.DiskSizer). On
// SQLite dbstat reads the pages through the pager, so committed pages
// still in the WAL count; on PostgreSQL each table counts with its TOAST
// table and maps, and each index alone.
func (db *DB) DiskUsage(ctx context.Context) ([]store.Relation, error) {
	q := `SELECT m.tbl_name, d.name, SUM(d.pgsize) FROM dbstat d JOIN sqlite_master m ON m.name = d.name GROUP BY d.name ORDER BY d.name`
	if db.d.Name == "postgres" {
		q = `SELECT t.relname, c.relname, CASE WHEN c.relkind = 'i' THEN pg_relation_size(c.oid) ELSE pg_table_size(c.oid) END
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			LEFT JOIN pg_index i ON i.indexrelid = c.oid
			JOIN pg_class t ON t.oid = COALESCE(i.indrelid, c.oid)
			WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i') ORDER BY c.relname`
	}
	rows, err := db.read.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("%w: disk usage: %v", store.ErrUnavailable, err)
	}
	defer rows.Close()
	var out []store.Relation
	for rows.Next() {
		var r store.Relation
		if err := rows.Scan(&r.Table, &r.Name, &r.Bytes); err != nil {
			return nil, fmt.Errorf("%w: disk usage: %v", store.ErrUnavailable, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: disk usage: %v", store.ErrUnavailable, err)
	}
	return out, nil
}
