package app_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
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
