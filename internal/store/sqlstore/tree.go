package sqlstore

// The ledger's Merkle tree nodes, its signed checkpoints and the removal
// of archived records (store.LedgerTree).

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

var _ store.LedgerTree = (*DB)(nil)

// AuditTreeSize implements store.LedgerTree.
func (db *DB) AuditTreeSize(ctx context.Context) (int64, error) {
	var n int64
	if err := db.read.QueryRowContext(ctx, `SELECT size FROM audit_tree_head WHERE id = 1`).Scan(&n); err != nil {
		return 0, fmt.Errorf("%w: read audit tree size: %v", store.ErrUnavailable, err)
	}
	return n, nil
}

// treeChunk bounds the rows of one node insert (3 parameters each): few
// round trips per extension, under either database's parameter limit.
// nodeReadChunk bounds the nodes of one read, an OR of pairs that SQLite
// parses as a tree no deeper than its limit of 1000.
const (
	treeChunk     = 2000
	nodeReadChunk = 400
)

// insertNode stores one tree node. A node is a function of the records
// below it: one left by an extension that was cut short is the same node.
const insertNode = `INSERT INTO audit_tree (level, idx, hash) VALUES (?, ?, ?) ON CONFLICT (level, idx) DO NOTHING`

// AuditTreeExtend implements store.LedgerTree. The size moves first, under
// the condition that it is still from, so that of two nodes extending
// together one wins and the other writes nothing.
func (db *DB) AuditTreeExtend(ctx context.Context, from, to int64, nodes []store.TreeNode, tiles []store.TreeTile) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%w: begin tree extend: %v", store.ErrUnavailable, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, db.d.Placeholders(`UPDATE audit_tree_head SET size = ? WHERE id = 1 AND size = ?`), to, from)
	if err != nil {
		return fmt.Errorf("%w: move audit tree size: %v", store.ErrUnavailable, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("%w: the audit tree is no longer at size %d", store.ErrConflict, from)
	}
	if err := db.putTiles(ctx, tx, tiles); err != nil {
		return err
	}
	switch {
	case db.d.Name == "postgres":
		if err := insertNodesUnnest(ctx, tx, nodes); err != nil {
			return err
		}
		nodes = nil
	case db.d.RowAtATime && len(nodes) > 0:
		// Embedded: one prepared row statement executed per node costs
		// no round trip, and parsing a 2,000-row VALUES list cost more
		// than the inserts (the profile of BenchmarkLedgerTreeExtend).
		st, err := tx.PrepareContext(ctx, insertNode)
		if err != nil {
			return fmt.Errorf("%w: store audit tree nodes: %v", store.ErrUnavailable, err)
		}
		defer st.Close()
		for _, n := range nodes {
			if _, err := st.ExecContext(ctx, int(n.Level), int64(n.Index), n.Hash); err != nil {
				return fmt.Errorf("%w: store audit tree nodes: %v", store.ErrUnavailable, err)
			}
		}
		nodes = nil
	}
	chunk := min(treeChunk, db.d.MaxParams/3)
	for len(nodes) > 0 {
		k := min(len(nodes), chunk)
		var b strings.Builder
		b.WriteString(`INSERT INTO audit_tree (level, idx, hash) VALUES `)
		args := make([]any, 0, 3*k)
		for i, n := range nodes[:k] {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString("(?, ?, ?)")
			args = append(args, int(n.Level), int64(n.Index), n.Hash)
		}
		// A node is a function of the records below it: one left by an
		// extension that was cut short is the same node.
		b.WriteString(` ON CONFLICT (level, idx) DO NOTHING`)
		if _, err := tx.ExecContext(ctx, db.d.Placeholders(b.String()), args...); err != nil {
			return fmt.Errorf("%w: store audit tree nodes: %v", store.ErrUnavailable, err)
		}
		nodes = nodes[k:]
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%w: commit tree extend: %v", store.ErrUnavailable, err)
	}
	return nil
}

// putTile stores a tile, replacing a shorter one of the same block: the
// partial last block is written again, longer, by each extension.
const putTile = `INSERT INTO audit_tree_tiles (idx, leaves) VALUES (?, ?)
	ON CONFLICT (idx) DO UPDATE SET leaves = excluded.leaves WHERE length(excluded.leaves) > length(audit_tree_tiles.leaves)`

func (db *DB) putTiles(ctx context.Context, tx *sql.Tx, tiles []store.TreeTile) error {
	if len(tiles) == 0 {
		return nil
	}
	if db.d.Name == "postgres" && len(tiles) > 1 {
		// One statement of two array parameters: one round trip.
		idx := make([]int64, len(tiles))
		leaves := make([][]byte, len(tiles))
		for i, t := range tiles {
			idx[i], leaves[i] = int64(t.Index), t.Leaves
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO audit_tree_tiles (idx, leaves)
			SELECT * FROM unnest($1::bigint[], $2::bytea[])
			ON CONFLICT (idx) DO UPDATE SET leaves = excluded.leaves WHERE length(excluded.leaves) > length(audit_tree_tiles.leaves)`, idx, leaves)
		if err != nil {
			return fmt.Errorf("%w: store audit tree tiles: %v", store.ErrUnavailable, err)
		}
		return nil
	}
	st, err := tx.PrepareContext(ctx, db.d.Placeholders(putTile))
	if err != nil {
		return fmt.Errorf("%w: store audit tree tiles: %v", store.ErrUnavailable, err)
	}
	defer st.Close()
	for _, t := range tiles {
		if _, err := st.ExecContext(ctx, int64(t.Index), t.Leaves); err != nil {
			return fmt.Errorf("%w: store audit tree tiles: %v", store.ErrUnavailable, err)
		}
	}
	return nil
}

// AuditTreeTiles implements store.LedgerTree.
func (db *DB) AuditTreeTiles(ctx context.Context, idx []uint64) ([][]byte, error) {
	out := make([][]byte, len(idx))
	pos := make(map[uint64][]int, len(idx))
	for i, b := range idx {
		pos[b] = append(pos[b], i)
	}
	for start := 0; start < len(idx); start += nodeReadChunk {
		part := idx[start:min(len(idx), start+nodeReadChunk)]
		var b strings.Builder
		b.WriteString(`SELECT idx, leaves FROM audit_tree_tiles WHERE idx IN (`)
		args := make([]any, len(part))
		for i, x := range part {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('?')
			args[i] = int64(x)
		}
		b.WriteByte(')')
		rows, err := db.read.QueryContext(ctx, db.d.Placeholders(b.String()), args...)
		if err != nil {
			return nil, fmt.Errorf("%w: read audit tree tiles: %v", store.ErrUnavailable, err)
		}
		for rows.Next() {
			var x int64
			var l []byte
			if err := rows.Scan(&x, &l); err != nil {
				rows.Close()
				return nil, fmt.Errorf("%w: read audit tree tile: %v", store.ErrUnavailable, err)
			}
			for _, i := range pos[uint64(x)] {
				out[i] = l
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("%w: read audit tree tiles: %v", store.ErrUnavailable, err)
		}
	}
	return out, nil
}

// AuditTreeNodes implements store.LedgerTree.
func (db *DB) AuditTreeNodes(ctx context.Context, ids []store.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	pos := make(map[store.NodeID][]int, len(ids))
	for i, id := range ids {
		pos[id] = append(pos[id], i)
	}
	for start := 0; start < len(ids); start += nodeReadChunk {
		part := ids[start:min(len(ids), start+nodeReadChunk)]
		var b strings.Builder
		b.WriteString(`SELECT level, idx, hash FROM audit_tree WHERE `)
		args := make([]any, 0, 2*len(part))
		for i, id := range part {
			if i > 0 {
				b.WriteString(" OR ")
			}
			b.WriteString("(level = ? AND idx = ?)")
			args = append(args, int(id.Level), int64(id.Index))
		}
		rows, err := db.read.QueryContext(ctx, db.d.Placeholders(b.String()), args...)
		if err != nil {
			return nil, fmt.Errorf("%w: read audit tree nodes: %v", store.ErrUnavailable, err)
		}
		for rows.Next() {
			var level int
			var idx int64
			var h []byte
			if err := rows.Scan(&level, &idx, &h); err != nil {
				rows.Close()
				return nil, fmt.Errorf("%w: read audit tree node: %v", store.ErrUnavailable, err)
			}
			for _, i := range pos[store.NodeID{Level: uint8(level), Index: uint64(idx)}] {
				out[i] = h
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("%w: read audit tree nodes: %v", store.ErrUnavailable, err)
		}
	}
	for i, h := range out {
		if h == nil {
			return nil, fmt.Errorf("%w: audit tree node (%d, %d)", store.ErrNotFound, ids[i].Level, ids[i].Index)
		}
	}
	return out, nil
}

// insertNodesUnnest stores nodes on PostgreSQL in one statement of three
// array parameters: a 2,000-row VALUES list costs the server more to
// parse and plan than to insert, and the checkpointer's node writes
// compete with requests for the same cores.
func insertNodesUnnest(ctx context.Context, tx *sql.Tx, nodes []store.TreeNode) error {
	if len(nodes) == 0 {
		return nil
	}
	levels := make([]int16, len(nodes))
	idx := make([]int64, len(nodes))
	hashes := make([][]byte, len(nodes))
	for i, n := range nodes {
		levels[i], idx[i], hashes[i] = int16(n.Level), int64(n.Index), n.Hash
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO audit_tree (level, idx, hash)
		SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[]) ON CONFLICT (level, idx) DO NOTHING`, levels, idx, hashes)
	if err != nil {
		return fmt.Errorf("%w: store audit tree nodes: %v", store.ErrUnavailable, err)
	}
	return nil
}

// AddCheckpoint implements store.LedgerTree.
func (db *DB) AddCheckpoint(ctx context.Context, c store.Checkpoint) error {
	_, err := db.write.ExecContext(ctx, db.d.Placeholders(`INSERT INTO audit_checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (size) DO NOTHING`),
		c.Size, c.Root, c.Note, c.Created.UnixMicro())
	if err != nil {
		return fmt.Errorf("%w: store checkpoint: %v", store.ErrUnavailable, err)
	}
	return nil
}

// LatestCheckpoint implements store.LedgerTree.
func (db *DB) LatestCheckpoint(ctx context.Context) (*store.Checkpoint, error) {
	var c store.Checkpoint
	var at int64
	err := db.read.QueryRowContext(ctx, `SELECT size, root, note, created_at FROM audit_checkpoints ORDER BY size DESC LIMIT 1`).Scan(&c.Size, &c.Root, &c.Note, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: no checkpoint yet", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read checkpoint: %v", store.ErrUnavailable, err)
	}
	c.Created = time.UnixMicro(at).UTC()
	return &c, nil
}

// AuditSeqBefore implements store.LedgerTree.
func (db *DB) AuditSeqBefore(ctx context.Context, t time.Time) (int64, error) {
	var first, head sql.NullInt64
	err := db.read.QueryRowContext(ctx, db.d.Placeholders(`SELECT (SELECT MIN(seq) FROM audit_log WHERE recorded_at >= ?), (SELECT MAX(seq) FROM audit_log)`), t.UnixMicro()).Scan(&first, &head)
	if err != nil {
		return 0, fmt.Errorf("%w: find the archive boundary: %v", store.ErrUnavailable, err)
	}
	if first.Valid {
		return first.Int64 - 1, nil
	}
	return head.Int64, nil
}

// AuditRemoveThrough implements store.LedgerTree: the records and their
// patient index rows go together.
func (db *DB) AuditRemoveThrough(ctx context.Context, through int64) (int64, error) {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("%w: remove archived records: %v", store.ErrUnavailable, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, db.d.Placeholders(`DELETE FROM audit_patients WHERE seq <= ?`), through); err != nil {
		return 0, fmt.Errorf("%w: remove archived records' patient index: %v", store.ErrUnavailable, err)
	}
	res, err := tx.ExecContext(ctx, db.d.Placeholders(`DELETE FROM audit_log WHERE seq <= ?`), through)
	if err != nil {
		return 0, fmt.Errorf("%w: remove archived records: %v", store.ErrUnavailable, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("%w: remove archived records: %v", store.ErrUnavailable, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("%w: remove archived records: %v", store.ErrUnavailable, err)
	}
	return n, nil
}
