package sqlstore

// MatchIndex: a search's conditions evaluated on given index rows rather
// than on the stored ones, for a version that no longer has any (the
// version before a deletion: a Subscription's criteria decide on it).

import (
	"context"
	"fmt"
	"strings"

	"github.com/wardhealth/ward/internal/store"
)

// MatchIndex says whether resource typ/id of q's tenant would be a hit of
// q if its index rows were ix. The statement is the search's own
// conditions over the resource's row, with each index table shadowed by
// a common table expression of the same name that holds only ix's rows
// (a WITH name hides a table of that name on both databases), so it is
// the same SQL a search runs, and it reads no other resource's rows from
// the index (a chained or reverse-chained condition, which would, does not
// match). Nothing is written.
func (db *DB) MatchIndex(ctx context.Context, q store.SearchQuery, typ, id string, ix *store.Index) (bool, error) {
	if q.Tenant == "" {
		return false, fmt.Errorf("%w: probe without tenant", store.ErrUnavailable)
	}
	var b strings.Builder
	var args []any
	rid := `(SELECT rid FROM resources WHERE tenant = ? AND type = ? AND id = ?)`
	ridArgs := []any{q.Tenant, typ, id}
	// Each table's rows, as literals cast to the table's column types.
	table := func(name, cols string, n int, row func(i int) (string, []any), empty string) {
		if b.Len() == 0 {
			b.WriteString(`WITH `)
		} else {
			b.WriteString(`, `)
		}
		b.WriteString(name + ` (` + cols + `) AS (`)
		if n == 0 {
			b.WriteString(empty + ` WHERE 1 = 0)`)
			return
		}
		for i := range n {
			if i > 0 {
				b.WriteString(` UNION ALL `)
			}
			s, a := row(i)
			b.WriteString(s)
			args = append(args, a...)
			args = append(args, ridArgs...)
		}
		b.WriteString(`)`)
	}
	const i64, f64, txt = `CAST(? AS BIGINT)`, `CAST(? AS DOUBLE PRECISION)`, `CAST(? AS TEXT)`
	// The rid is every table's last column here (a WITH list names its
	// own columns): its subquery's arguments follow each row's.
	table("search_token", "p, h, s, rid", len(ix.Tokens), func(i int) (string, []any) {
		r := ix.Tokens[i]
		return `SELECT ` + i64 + `, ` + i64 + `, ` + i64 + `, ` + rid, []any{int64(r.P), r.H, int64(r.S)}
	}, `SELECT CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT)`)
	table("search_date", "p, k, lo, hi, rid", len(ix.Dates), func(i int) (string, []any) {
		r := ix.Dates[i]
		return `SELECT ` + i64 + `, ` + i64 + `, ` + i64 + `, ` + i64 + `, ` + rid, []any{int64(r.P), r.K, r.Lo, r.Hi}
	}, `SELECT CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT)`)
	table("search_number", "p, k, lo, hi, u, rid", len(ix.Numbers), func(i int) (string, []any) {
		r := ix.Numbers[i]
		return `SELECT ` + i64 + `, ` + i64 + `, ` + f64 + `, ` + f64 + `, ` + i64 + `, ` + rid, []any{int64(r.P), r.K, r.Lo, r.Hi, int64(r.U)}
	}, `SELECT CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS DOUBLE PRECISION), CAST(0 AS DOUBLE PRECISION), CAST(0 AS BIGINT), CAST(0 AS BIGINT)`)
	table("search_string", "p, v, rid", len(ix.Strings), func(i int) (string, []any) {
		r := ix.Strings[i]
		return `SELECT ` + i64 + `, ` + txt + `, ` + rid, []any{int64(r.P), r.V}
	}, `SELECT CAST(0 AS BIGINT), CAST('' AS TEXT), CAST(0 AS BIGINT)`)
	b.WriteString(` SELECT 1 FROM resources r WHERE r.tenant = ? AND r.type = ? AND r.id = ?`)
	args = append(args, q.Tenant, typ, id)
	if d := q.Drive; d != nil {
		b.WriteString(` AND r.rid IN (SELECT ` + d.Alias + `.rid FROM ` + d.Table + ` ` + d.Alias + ` WHERE ` + d.Cond + `)`)
		args = append(args, d.Args...)
	}
	for _, w := range q.Where {
		b.WriteString(` AND (` + w + `)`)
	}
	args = append(args, q.Args...)
	b.WriteString(` LIMIT 1`)
	rows, err := db.read.QueryContext(ctx, db.d.Placeholders(b.String()), args...)
	if err != nil {
		return false, fmt.Errorf("%w: probe: %v", store.ErrUnavailable, err)
	}
	defer rows.Close()
	hit := rows.Next()
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("%w: probe: %v", store.ErrUnavailable, err)
	}
	return hit, nil
}
