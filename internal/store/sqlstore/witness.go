package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

var _ store.Witnessing = (*DB)(nil)

// WitnessLatest implements store.Witnessing.
func (db *DB) WitnessLatest(ctx context.Context, origin string) (int64, []byte, error) {
	var size int64
	var root []byte
	err := db.read.QueryRowContext(ctx, db.d.Placeholders(`SELECT size, root FROM witness_logs WHERE origin = ?`), origin).Scan(&size, &root)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("%w: read witnessed log: %v", store.ErrUnavailable, err)
	}
	return size, root, nil
}

// WitnessAdvance implements store.Witnessing: an insert from size 0, an
// update conditional on the size otherwise.
func (db *DB) WitnessAdvance(ctx context.Context, origin string, from, to int64, root, note []byte, at time.Time) error {
	var res sql.Result
	var err error
	if from == 0 {
		res, err = db.write.ExecContext(ctx, db.d.Placeholders(`INSERT INTO witness_logs (origin, size, root, note, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (origin) DO NOTHING`),
			origin, to, root, note, at.UnixMicro())
	} else {
		res, err = db.write.ExecContext(ctx, db.d.Placeholders(`UPDATE witness_logs SET size = ?, root = ?, note = ?, updated_at = ? WHERE origin = ? AND size = ?`),
			to, root, note, at.UnixMicro(), origin, from)
	}
	if err != nil {
		return fmt.Errorf("%w: advance witnessed log: %v", store.ErrUnavailable, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("%w: the witnessed log is no longer at size %d", store.ErrConflict, from)
	}
	return nil
}

// AddCosignature implements store.Witnessing.
func (db *DB) AddCosignature(ctx context.Context, size int64, witness string, note []byte, at time.Time) error {
	_, err := db.write.ExecContext(ctx, db.d.Placeholders(`INSERT INTO audit_cosignatures (size, witness, note, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (size, witness) DO UPDATE SET note = excluded.note, created_at = excluded.created_at`), size, witness, note, at.UnixMicro())
	if err != nil {
		return fmt.Errorf("%w: store cosignature: %v", store.ErrUnavailable, err)
	}
	return nil
}

// Cosignatures implements store.Witnessing.
func (db *DB) Cosignatures(ctx context.Context, size int64) (map[string][]byte, error) {
	rows, err := db.read.QueryContext(ctx, db.d.Placeholders(`SELECT witness, note FROM audit_cosignatures WHERE size = ?`), size)
	if err != nil {
		return nil, fmt.Errorf("%w: read cosignatures: %v", store.ErrUnavailable, err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var w string
		var n []byte
		if err := rows.Scan(&w, &n); err != nil {
			return nil, fmt.Errorf("%w: read cosignature: %v", store.ErrUnavailable, err)
		}
		out[w] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: read cosignatures: %v", store.ErrUnavailable, err)
	}
	return out, nil
}
