package main

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The Blaze Synthea layout loads through ward import: the shared batches
// (conditional creates) of 00-shared/ first, then the patient transaction
// whose conditional references need them; with 4 workers, the patient
// would race the shared files if directories were not loaded in order.
func TestImportSyntheaLayout(t *testing.T) {
	src := t.TempDir()
	files, _ := filepath.Glob(filepath.Join("..", "..", "internal", "api", "testdata", "synthea-blaze", "*.json.gz"))
	if len(files) != 3 {
		t.Fatalf("%d files in testdata/synthea-blaze", len(files))
	}
	entries := 0
	for _, f := range files {
		in, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(in)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(zr)
		in.Close()
		if err != nil {
			t.Fatal(err)
		}
		var bundle struct{ Entry []any }
		json.Unmarshal(b, &bundle)
		entries += len(bundle.Entry)
		sub := "patients"
		if strings.HasPrefix(filepath.Base(f), "0-") {
			sub = "00-shared"
		}
		os.MkdirAll(filepath.Join(src, sub), 0o700)
		if err := os.WriteFile(filepath.Join(src, sub, strings.TrimSuffix(filepath.Base(f), ".gz")), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "data")
	initData(t, dir) // only serve, init and migrate create a data directory
	stdout, stderr, code := ward(t, "", "import", "--quiet", "--workers", "4", "--data-dir", dir, src)
	if code != 0 || !strings.Contains(stdout, fmt.Sprintf("imported %d resources from 3 of 3 files", entries)) {
		t.Fatalf("exit %d: %s %s", code, stdout, stderr)
	}
}
