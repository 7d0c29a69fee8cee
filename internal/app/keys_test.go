package app_test

import (
	"bytes"
	"context"
	"encoding/base64"
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

// Data sealed under one key-encryption key must not be served under
// another: Ward refuses to start, naming the problem, instead of failing on
// the first read.
func TestWrongKEKIsRefusedAtStart(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = filepath.Join(t.TempDir(), "d")
	cfg.Key = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	a, err := app.Open(context.Background(), cfg, log, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	// The same key opens again.
	a, err = app.Open(context.Background(), cfg, log, io.Discard)
	if err != nil {
		t.Fatalf("reopen with the same key: %v", err)
	}
	a.Close()
	cfg.Key = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	_, err = app.Open(context.Background(), cfg, log, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "key-encryption key") {
		t.Fatalf("wrong KEK: %v", err)
	}
	if strings.Contains(err.Error(), cfg.Key) {
		t.Fatal("the error prints the key")
	}
}

func TestPostgresNeedsAnExplicitKey(t *testing.T) {
	cfg := config.Default()
	cfg.DatabaseURL = "postgres://127.0.0.1:1/none"
	_, err := app.LoadKEK(cfg, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "WARD_KEY") {
		t.Fatalf("%v", err)
	}
}

// WARD_KEY_FILE supplies the KEK from a file; a file others can read is
// used but warned about.
func TestKeyFile(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{3}, 32))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir = filepath.Join(t.TempDir(), "d")
	cfg.KeyFile = keyFile
	var warn bytes.Buffer
	a, err := app.Open(context.Background(), cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)), &warn)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if warn.Len() != 0 {
		t.Fatalf("unexpected warning: %s", warn.String())
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, app.KeyFileName)); err == nil {
		t.Fatal("a development key was generated although WARD_KEY_FILE was set")
	}
	// A key file others can read is refused (issue #22), unless the
	// dangerous override is set: then it is used, with a warning.
	os.Chmod(keyFile, 0o644)
	if _, err = app.Open(context.Background(), cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)), &warn); !errors.Is(err, app.ErrInsecureKeyFile) ||
		!strings.Contains(err.Error(), keyFile) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a key file readable by others: %v", err)
	}
	cfg.AllowInsecureKeyFile = true
	a, err = app.Open(context.Background(), cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)), &warn)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if !strings.Contains(warn.String(), "chmod 600") {
		t.Fatalf("no warning about a readable key file: %q", warn.String())
	}
}
