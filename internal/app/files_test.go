package app_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/config"
)

func openApp(t *testing.T, cfg config.Config, warn io.Writer) (*app.App, error) {
	t.Helper()
	a, err := app.Open(context.Background(), cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)), warn)
	if err == nil {
		t.Cleanup(func() { a.Close() })
	}
	return a, err
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// A fresh data directory is 0700; the database, its -wal and -shm and the
// generated key are 0600.
func TestDataDirFilesAreOwnerOnly(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = filepath.Join(t.TempDir(), "ward-data")
	a, err := openApp(t, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Store.AuditHead(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, cfg.DataDir); m != 0o700 {
		t.Errorf("data directory mode %#o, want 0700", m)
	}
	for _, f := range []string{app.DatabaseFileName, app.DatabaseFileName + "-wal", app.DatabaseFileName + "-shm", app.KeyFileName} {
		if m := mode(t, filepath.Join(cfg.DataDir, f)); m != 0o600 {
			t.Errorf("%s mode %#o, want 0600", f, m)
		}
	}
}

// Existing database files and a data directory that others may read are
// tightened, and the warning names each and why.
func TestLooseDataDirIsTightened(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = filepath.Join(t.TempDir(), "ward-data")
	a, err := openApp(t, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	db := filepath.Join(cfg.DataDir, app.DatabaseFileName)
	os.Chmod(cfg.DataDir, 0o755)
	os.Chmod(db, 0o644)
	var warn bytes.Buffer
	if _, err := openApp(t, cfg, &warn); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, cfg.DataDir); m != 0o700 {
		t.Errorf("data directory mode %#o, want 0700", m)
	}
	if m := mode(t, db); m != 0o600 {
		t.Errorf("database mode %#o, want 0600", m)
	}
	for _, want := range []string{cfg.DataDir + " had mode 0755; tightened to 0700", db + " had mode 0644; tightened to 0600"} {
		if !strings.Contains(warn.String(), want) {
			t.Errorf("warning %q does not say %q", warn.String(), want)
		}
	}
}

// The generated development key, once readable by others, is refused
// with the file and the fix named, unless the dangerous override is set.
func TestGeneratedKeyFileReadableByOthersIsRefused(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = filepath.Join(t.TempDir(), "ward-data")
	a, err := openApp(t, cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	key := filepath.Join(cfg.DataDir, app.KeyFileName)
	for _, m := range []os.FileMode{0o640, 0o604} {
		os.Chmod(key, m)
		_, err = openApp(t, cfg, io.Discard)
		if !errors.Is(err, app.ErrInsecureKeyFile) || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "chmod 600 "+key) {
			t.Fatalf("mode %#o: %v", m, err)
		}
	}
	cfg.AllowInsecureKeyFile = true
	var warn bytes.Buffer
	if _, err := openApp(t, cfg, &warn); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(warn.String(), "WARD_ALLOW_INSECURE_KEY_FILE") {
		t.Errorf("no warning naming the override: %q", warn.String())
	}
	if m := mode(t, key); m != 0o604 {
		t.Errorf("the override changed the key file's mode to %#o", m)
	}
}
