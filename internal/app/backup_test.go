package app_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/store/postgres/pgtest"
)

// TestBackupRestore: a backup taken while the server writes restores into
// an empty data directory, its ledger verified against its checkpoint;
// it holds no key-encryption key; a backup whose ledger was tampered with
// is refused and leaves nothing behind.
func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	var cfg config.Config
	w := apptest.Start(t, apptest.SQLite, func(c *config.Config) { cfg = *c })
	token := w.Tokens[authz.RoleAdmin]
	var before []string
	for range 3 {
		before = append(before, w.Create(t, authz.RoleAdmin, kekPatient))
	}
	// Writes go on during the backup.
	stop, done := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var failures []int
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if r := w.Do(t, "POST", "/fhir/Patient", token, []byte(kekPatient)); r.Status != 201 {
				mu.Lock()
				failures = append(failures, r.Status)
				mu.Unlock()
			}
		}
	}()
	out := filepath.Join(t.TempDir(), "backup")
	m, err := app.Backup(ctx, cfg, out)
	close(stop)
	<-done
	if err != nil || m.CheckpointSize == 0 {
		t.Fatalf("backup: %+v %v", m, err)
	}
	if len(failures) > 0 {
		t.Fatalf("writes failed during the backup: %v", failures)
	}
	// No KEK in the backup, in any form.
	key, err := os.ReadFile(filepath.Join(cfg.DataDir, app.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(string(key)))
	files, _ := os.ReadDir(out)
	if len(files) != 3 {
		t.Fatalf("backup holds %d files", len(files))
	}
	for _, f := range files {
		if fi, _ := f.Info(); fi.Mode().Perm()&0o077 != 0 {
			t.Fatalf("%s has mode %v", f.Name(), fi.Mode())
		}
		b, _ := os.ReadFile(filepath.Join(out, f.Name()))
		if bytes.Contains(b, bytes.TrimSpace(key)) || bytes.Contains(b, raw) {
			t.Fatalf("%s holds the key-encryption key", f.Name())
		}
	}
	// Restore into an empty data directory: refused without the key,
	// accepted with it; the records written before the backup are read.
	restored := cfg
	restored.DataDir = filepath.Join(t.TempDir(), "restored")
	// The document store (and its shred list) stays where it was.
	restored.Documents.Dir = filepath.Join(cfg.DataDir, "documents")
	if _, err := app.Restore(ctx, restored, out, app.RestoreOptions{}); err == nil || !strings.Contains(err.Error(), "key-encryption key") {
		t.Fatalf("restore without the key: %v", err)
	}
	restored.KeyFile = filepath.Join(cfg.DataDir, app.KeyFileName)
	v, err := app.Restore(ctx, restored, out, app.RestoreOptions{})
	if err != nil || v.Checkpoint == nil || v.Count < m.CheckpointSize {
		t.Fatalf("restore: %+v %v", v, err)
	}
	if _, err := app.Restore(ctx, restored, out, app.RestoreOptions{}); err == nil {
		t.Fatal("a restore overwrote a database")
	}
	w.Server.Close()
	w.App.Close()
	a2 := restartApp(t, restored)
	for _, id := range before {
		if _, err := a2.Store.Current(ctx, cfg.Tenant, "Patient", id); err != nil {
			t.Fatalf("Patient/%s not in the restored database: %v", id, err)
		}
	}
	if _, _, err := app.VerifyLedger(ctx, a2.Store); err != nil {
		t.Fatal(err)
	}
	// A backup whose ledger lost records the checkpoint signs is refused
	// (losing only later ones is what a checkpoint cannot see).
	db, err := sql.Open("sqlite", filepath.Join(out, "ward.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM audit_log WHERE seq > ?`, m.CheckpointSize-2); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_head SET seq = (SELECT max(seq) FROM audit_log), hash = (SELECT hash FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log))`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	tampered := restored
	tampered.DataDir = filepath.Join(t.TempDir(), "tampered")
	if _, err := app.Restore(ctx, tampered, out, app.RestoreOptions{}); err == nil {
		t.Fatal("a backup whose ledger was cut short was restored")
	}
	if _, err := os.Stat(filepath.Join(tampered.DataDir, app.DatabaseFileName)); err == nil {
		t.Fatal("a refused restore left a database")
	}
}

// TestBackupRestorePostgres: the checkpoint first, then pg_dump while the
// server writes, pg_restore into a new database, and the restored ledger
// verified against the checkpoint; a restore missing records the
// checkpoint signs is refused.
func TestBackupRestorePostgres(t *testing.T) {
	if _, err := exec.LookPath("pg_dump"); err != nil {
		t.Skip("pg_dump not installed")
	}
	ctx := context.Background()
	var cfg config.Config
	w := apptest.Start(t, apptest.Postgres, func(c *config.Config) { cfg = *c })
	for range 3 {
		w.Create(t, authz.RoleAdmin, kekPatient)
	}
	out := filepath.Join(t.TempDir(), "backup")
	m, err := app.Backup(ctx, cfg, out)
	if err != nil || !m.Postgres || m.CheckpointSize == 0 {
		t.Fatalf("backup: %+v %v", m, err)
	}
	w.Create(t, authz.RoleAdmin, kekPatient) // after the checkpoint
	src, schema := pgSplit(t, cfg.DatabaseURL)
	dump := filepath.Join(out, "ward.dump")
	if b, err := exec.Command("pg_dump", "-Fc", "-n", schema, "-f", dump, src).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v %s", err, b)
	}
	restoreInto := func(name string) config.Config {
		admin := pgtest.DB(t, src, 1)
		if _, err := admin.Exec(`CREATE DATABASE ` + name); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { admin.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`) })
		u, _ := url.Parse(src)
		u.Path = "/" + name
		if b, err := exec.Command("pg_restore", "-d", u.String(), dump).CombinedOutput(); err != nil {
			t.Fatalf("pg_restore: %v %s", err, b)
		}
		c := cfg
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		c.DatabaseURL = u.String()
		return c
	}
	restored := restoreInto("ward_keys_restored")
	v, err := app.Restore(ctx, restored, out, app.RestoreOptions{})
	if err != nil || v.Count <= m.CheckpointSize {
		t.Fatalf("restore: %+v %v", v, err)
	}
	// Records the checkpoint signs, missing: refused.
	bad := restoreInto("ward_keys_cut")
	db := pgtest.DB(t, bad.DatabaseURL, 1)
	if _, err := db.Exec(`DELETE FROM audit_log WHERE seq > $1`, m.CheckpointSize-2); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_head SET seq = (SELECT max(seq) FROM audit_log), hash = (SELECT hash FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log))`); err != nil {
		t.Fatal(err)
	}
	if _, err := app.Restore(ctx, bad, out, app.RestoreOptions{}); err == nil {
		t.Fatal("a restored database missing checkpointed records was accepted")
	}
}

// pgSplit returns a test URL without its search_path, and the schema.
func pgSplit(t *testing.T, s string) (string, string) {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	schema := q.Get("search_path")
	q.Del("search_path")
	u.RawQuery = q.Encode()
	return u.String(), schema
}
