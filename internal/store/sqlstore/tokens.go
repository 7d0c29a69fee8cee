package sqlstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/wardhealth/ward/internal/store"
)

// tokenChunk bounds the ids of one TokenHashes statement.
const tokenChunk = 500

// TokenHashes returns the keyed hashes of the search_token rows of
// parameter p of the current, not deleted resources of typ in tenant
// named by ids, by id (an id with no rows, or no such resource, is
// absent). It answers in one statement per 500 ids what would otherwise
// be one question per resource: the alert rules ask it of every patient
// and practitioner of a batch of ledger records at once. Hashes only: a
// caller compares them with hashes it computes under the tenant's key.
func (db *DB) TokenHashes(ctx context.Context, tenant, typ string, p int32, ids []string) (map[string][]int64, error) {
	out := map[string][]int64{}
	for len(ids) > 0 {
		n := min(len(ids), tokenChunk)
		args := make([]any, 0, 3+n)
		args = append(args, p, tenant, typ)
		for _, id := range ids[:n] {
			args = append(args, id)
		}
		ids = ids[n:]
		rows, err := db.read.QueryContext(ctx, db.d.Placeholders(`SELECT r.id, x.h FROM resources r JOIN search_token x ON x.rid = r.rid AND x.p = ?
			WHERE r.tenant = ? AND r.type = ? AND r.deleted = 0 AND r.id IN (`+strings.TrimSuffix(strings.Repeat("?, ", n), ", ")+`)`), args...)
		if err != nil {
			return nil, fmt.Errorf("%w: token hashes: %v", store.ErrUnavailable, err)
		}
		for rows.Next() {
			var id string
			var h int64
			if err := rows.Scan(&id, &h); err != nil {
				rows.Close()
				return nil, fmt.Errorf("%w: token hashes: %v", store.ErrUnavailable, err)
			}
			out[id] = append(out[id], h)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("%w: token hashes: %v", store.ErrUnavailable, err)
		}
	}
	return out, nil
}

// PrefixExact returns, by id, one number per search_prefix row of
// parameter p and part t of the current, not deleted resources of typ in
// tenant named by ids: the low 32 bits of the row's anchor hash joined to
// the first fpLen (at most 4) bytes of its fingerprints, the value's exact
// hash on a short row. Two values are equal (up to hash collisions) when
// their numbers are: the alert rules compare family names this way, in
// one statement per 500 ids, and never see a name.
func (db *DB) PrefixExact(ctx context.Context, tenant, typ string, p int32, t, fpLen int, ids []string) (map[string][]int64, error) {
	out := map[string][]int64{}
	for len(ids) > 0 {
		n := min(len(ids), tokenChunk)
		args := make([]any, 0, 4+n)
		args = append(args, p, t, tenant, typ)
		for _, id := range ids[:n] {
			args = append(args, id)
		}
		ids = ids[n:]
		rows, err := db.read.QueryContext(ctx, db.d.Placeholders(`SELECT r.id, x.h, x.f FROM resources r JOIN search_prefix x ON x.rid = r.rid AND x.p = ? AND x.t = ?
			WHERE r.tenant = ? AND r.type = ? AND r.deleted = 0 AND r.id IN (`+strings.TrimSuffix(strings.Repeat("?, ", n), ", ")+`)`), args...)
		if err != nil {
			return nil, fmt.Errorf("%w: prefix hashes: %v", store.ErrUnavailable, err)
		}
		for rows.Next() {
			var id string
			var h int64
			var f []byte
			if err := rows.Scan(&id, &h, &f); err != nil {
				rows.Close()
				return nil, fmt.Errorf("%w: prefix hashes: %v", store.ErrUnavailable, err)
			}
			v := h << 32
			for i := 0; i < min(fpLen, 4, len(f)); i++ {
				v |= int64(f[i]) << (8 * (3 - i))
			}
			out[id] = append(out[id], v)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("%w: prefix hashes: %v", store.ErrUnavailable, err)
		}
	}
	return out, nil
}
