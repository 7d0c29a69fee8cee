package audit

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports keeps the chain pure (STYLE.md, convention 6): no I/O, no
// database, no network, no logging, standard library only.
func TestImports(t *testing.T) {
	allowed := map[string]bool{
		"crypto/sha256": true, "encoding/binary": true, "errors": true, "fmt": true,
		"iter": true, "math": true, "strconv": true, "time": true,
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if !allowed[path] {
				t.Errorf("%s imports %s; the audit core allows only %v", name, path, allowed)
			}
		}
	}
}
