package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/sqlite"
	"github.com/wardhealth/ward/internal/store/sqlstore"
)

// A backup is a directory (docs/backup.md):
//
//	ward.db          a consistent snapshot of the database (VACUUM INTO)
//	checkpoint       the latest signed ledger checkpoint, taken before
//	                 the snapshot, so the snapshot's ledger extends it
//	manifest.json    what was taken when (ids and counts only)
//
// It never holds the key-encryption key: the snapshot's data keys are
// wrapped, useless without the KEK kept elsewhere.
const (
	backupDB         = "ward.db"
	backupCheckpoint = "checkpoint"
	backupManifest   = "manifest.json"
)

// BackupManifest describes a backup.
type BackupManifest struct {
	Format  int       `json:"format"`
	Version string    `json:"ward_version"`
	Created time.Time `json:"created"`
	// CheckpointSize is the ledger size the checkpoint signs (0: none).
	CheckpointSize int64 `json:"checkpoint_size"`
	// KEK names where the key-encryption key lives (never the key).
	KEK string `json:"kek_provider"`
	// Postgres says the database itself is in a pg_dump taken after.
	Postgres bool `json:"postgres,omitempty"`
}

// Backup writes a backup of the existing embedded database to the new
// directory out while servers keep writing: it signs a checkpoint of the
// ledger as it is now, then snapshots the database, which therefore holds
// at least the checkpoint's records. PostgreSQL is backed up with pg_dump
// (docs/backup.md).
//
// With PostgreSQL the directory gets the checkpoint and the manifest only:
// run pg_dump after it (docs/backup.md), so the dump extends the
// checkpoint.
func Backup(ctx context.Context, cfg config.Config, out string) (*BackupManifest, error) {
	if err := os.Mkdir(out, 0o700); err != nil {
		return nil, fmt.Errorf("backup directory: %w", err)
	}
	m, err := backupInto(ctx, cfg, out)
	if err != nil {
		os.RemoveAll(out)
		return nil, err
	}
	return m, nil
}

func backupInto(ctx context.Context, cfg config.Config, out string) (*BackupManifest, error) {
	if err := RequireDatabase(cfg); err != nil {
		return nil, err
	}
	a, err := Open(ctx, cfg, NewLogger(os.Stderr, "error"), os.Stderr)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	m := &BackupManifest{Format: 1, Version: Version, Created: time.Now().UTC(), KEK: cfg.KEK.Provider}
	cp, _, err := a.Proof.Checkpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("sign a checkpoint: %w", err)
	}
	if cp != nil {
		m.CheckpointSize = cp.Size
		if err := writeDurable(out, backupCheckpoint, cp.Note, 0o600); err != nil {
			return nil, err
		}
	}
	if cfg.DatabaseURL != "" {
		m.Postgres = true
		return m, writeManifest(out, m)
	}
	snap, ok := a.Store.(interface {
		SnapshotTo(ctx context.Context, path string) error
	})
	if !ok {
		return nil, errors.New("this store takes no snapshot")
	}
	if err := snap.SnapshotTo(ctx, filepath.Join(out, backupDB)); err != nil {
		return nil, err
	}
	// Sealed, but still the records: readable by the owner only.
	if err := os.Chmod(filepath.Join(out, backupDB), 0o600); err != nil {
		return nil, err
	}
	return m, writeManifest(out, m)
}

func writeManifest(out string, m *BackupManifest) error {
	b, _ := json.MarshalIndent(m, "", "  ")
	return writeDurable(out, backupManifest, append(b, '\n'), 0o600)
}

// RestoreOptions are the choices of `ward restore`.
type RestoreOptions struct {
	// Keys are the published checkpoint keys ("": those sealed in the
	// backup, unwrapped with the key-encryption key).
	Keys string
	// ShredList is a directory holding the shred list (a file document
	// store, e.g. the old data directory's documents); "": the
	// configured document store.
	ShredList string
	// NoShredList restores without the shred list: erasures after the
	// snapshot are NOT re-applied (the operator accepts that risk).
	NoShredList bool
	// Progress, if set, is told of each erasure re-applied.
	Progress io.Writer
}

// Restore checks a backup and installs it as the embedded database of
// cfg's data directory, which must hold none. The snapshot's ledger must
// verify, from its first record to its head, and against the backup's
// signed checkpoint; anything else refuses the backup and leaves the data
// directory as it was.
//
// With PostgreSQL the database was restored by pg_restore: Restore checks
// that database's ledger against the backup's checkpoint and re-applies
// the shred list's erasures to it.
func Restore(ctx context.Context, cfg config.Config, from string, o RestoreOptions) (LedgerVerification, error) {
	if cfg.DatabaseURL != "" {
		st, err := OpenExistingStore(ctx, cfg)
		if err != nil {
			return LedgerVerification{}, err
		}
		defer st.Close()
		return verifyBackup(ctx, cfg, from, st, o)
	}
	dst := filepath.Join(cfg.DataDir, DatabaseFileName)
	if _, err := os.Stat(dst); err == nil {
		return LedgerVerification{}, fmt.Errorf("%s already holds a database: restore into an empty data directory", cfg.DataDir)
	}
	if cfg.KEK.Provider == "file" && cfg.Key == "" && cfg.KeyFile == "" {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, KeyFileName)); err != nil {
			return LedgerVerification{}, fmt.Errorf("a backup holds no key-encryption key: give it (WARD_KEY_FILE, WARD_KEY) or put its file at %s first", filepath.Join(cfg.DataDir, KeyFileName))
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return LedgerVerification{}, err
	}
	tmp := dst + ".restoring"
	os.Remove(tmp)
	if err := copyFile(filepath.Join(from, backupDB), tmp); err != nil {
		return LedgerVerification{}, err
	}
	v, err := verifyRestored(ctx, cfg, from, tmp, o)
	if err != nil {
		os.Remove(tmp)
		return v, err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return v, err
	}
	d, err := os.Open(cfg.DataDir)
	if err != nil {
		return v, err
	}
	defer d.Close()
	return v, d.Sync()
}

func verifyRestored(ctx context.Context, cfg config.Config, from, path string, o RestoreOptions) (LedgerVerification, error) {
	st, err := sqlite.Open(ctx, path, sqlstore.Options{})
	if err != nil {
		return LedgerVerification{}, fmt.Errorf("the backup's database: %w", err)
	}
	defer st.Close()
	return verifyBackup(ctx, cfg, from, st, o)
}

// verifyBackup checks st's ledger against the backup's checkpoint, then
// re-applies the erasures of the shred list that st does not reflect
// (shredlist.go), each with its ledger record.
func verifyBackup(ctx context.Context, cfg config.Config, from string, st store.Store, o RestoreOptions) (LedgerVerification, error) {
	cp, err := os.ReadFile(filepath.Join(from, backupCheckpoint))
	if err != nil {
		return LedgerVerification{}, fmt.Errorf("the backup's checkpoint: %w", err)
	}
	keysText := o.Keys
	if keysText == "" {
		if keysText, err = CheckpointKeys(ctx, cfg, st); err != nil {
			return LedgerVerification{}, fmt.Errorf("the checkpoint keys (pass the published ones with --key): %w", err)
		}
	}
	vs, err := ledger.Verifiers(keysText)
	if err != nil {
		return LedgerVerification{}, err
	}
	v, err := VerifyLedgerFull(ctx, st, VerifyOptions{Checkpoint: cp, Keys: vs})
	if err != nil {
		return v, fmt.Errorf("the backup's ledger does not verify against its checkpoint: %w", err)
	}
	if v.Reapplied, err = reapplyErasures(ctx, cfg, st, o); err != nil {
		return v, err
	}
	return v, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("the backup's database: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := out.ReadFrom(in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
