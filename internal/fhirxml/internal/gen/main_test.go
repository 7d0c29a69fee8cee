package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestEmbeddedTableUpToDate regenerates the table and compares it with the
// committed one. The source files are not part of the repository, so the
// test is skipped where they are absent.
func TestEmbeddedTableUpToDate(t *testing.T) {
	src := envOr("FHIR_R4_DIR", "/work/shared/fhir-r4")
	if _, err := os.Stat(filepath.Join(src, "profiles-resources.json")); err != nil {
		t.Skipf("FHIR R4 definitions not available in %s", src)
	}
	got, err := Generate(src)
	if err != nil {
		t.Fatal(err)
	}
	gz, err := os.ReadFile(filepath.Join("..", "..", "order.txt.gz"))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	want, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("order.txt.gz is stale: run go generate ./internal/fhirxml")
	}
}
