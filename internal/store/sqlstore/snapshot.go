package sqlstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/wardhealth/ward/internal/store"
)

// ErrNoSnapshot is returned by SnapshotTo on a database that cannot write
// a snapshot of itself (PostgreSQL: use pg_dump, docs/backup.md).
var ErrNoSnapshot = errors.New("sqlstore: this database takes no snapshot (use its own backup tool)")

// SnapshotTo writes a consistent copy of the embedded database to a new
// file at path (SQLite's VACUUM INTO, in one read transaction: every
// commit is in it whole or not at all, while other processes' writers go
// on). It runs on this store's write connection (the readers are
// read-only), so this store's own writes wait for it: ward backup runs
// it in a process of its own.
func (db *DB) SnapshotTo(ctx context.Context, path string) error {
	if db.d.Name != "sqlite" {
		return ErrNoSnapshot
	}
	if _, err := db.write.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		return fmt.Errorf("%w: snapshot: %v", store.ErrUnavailable, err)
	}
	return nil
}
