// Package sqlite is the embedded storage backend: one SQLite database file
// in WAL mode, one write connection owned by the group-committing writer and
// a pool of read-only connections. Commits are durable (synchronous=FULL)
// before Commit returns.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"runtime"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/wardhealth/ward/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Dialect is SQLite's flavour of the shared SQL.
var Dialect = sqlstore.Dialect{
	Name:         "sqlite",
	Placeholders: func(q string) string { return q },
	LockHead:     `SELECT seq, hash FROM audit_head WHERE id = 1`,
	MaxParams:    32766,
	Explain:      `EXPLAIN QUERY PLAN `,
	RowAtATime:   true,
	StmtCache:    256,
	JoinDrive:    true,
}

func dsn(path string, readOnly bool) string {
	v := url.Values{}
	v.Add("_pragma", "busy_timeout(10000)")
	v.Add("_pragma", "journal_mode(WAL)")
	v.Add("_pragma", "synchronous(FULL)")
	v.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		v.Add("_pragma", "query_only(1)")
		// No mmap: in WAL mode every commit (and every read commits its
		// audit record) resets the readers' page caches, which unmaps and
		// remaps the file each time; measured slower than pread.
	} else {
		// The writer takes the write lock at BEGIN, so a second process
		// (a CLI command) waits on busy_timeout instead of deadlocking on a
		// lock upgrade.
		v.Set("_txlock", "immediate")
		// The writer's page cache: 64 MiB instead of SQLite's 2 MB. Every
		// create inserts ~30 index rows at random places in the search
		// B-trees; with 2 MB their interior and leaf pages fell out of
		// the cache between commits and were read back (issue #24: 48% of
		// the writer's time in system calls). The memory is used only as
		// the database grows into it (docs/operations.md).
		v.Add("_pragma", "cache_size(-65536)")
	}
	return "file:" + path + "?" + v.Encode()
}

// Open opens (creating if needed) the database at path and applies the
// embedded migrations.
func Open(ctx context.Context, path string, o sqlstore.Options) (*sqlstore.DB, error) {
	// SQLite creates the -wal and -shm files with the database file's
	// mode: a new database is created here, owner-only, before SQLite
	// would create it with the umask's 0644.
	if f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("create sqlite %s: %w", path, err)
	}
	w, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := Migrate(ctx, w); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open sqlite readers %s: %w", path, err)
	}
	n := max(4, 2*runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxLifetime(0)
	db, err := sqlstore.New(Dialect, w, r, o)
	if err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	db.OnClose(func() { r.Close(); w.Close() })
	return db, nil
}

// Migrate applies the embedded migrations.
func Migrate(ctx context.Context, db *sql.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	// Migrations are independent and additive, and were numbered on
	// parallel branches: a database made by a build that had a later one
	// still takes an earlier one that arrives afterwards.
	p, err := goose.NewProvider(goose.DialectSQLite3, db, sub, goose.WithAllowOutofOrder(true))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}
