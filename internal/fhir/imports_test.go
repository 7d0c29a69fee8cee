package fhir

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The package is a leaf: standard library and the schema validator only, so
// no storage, HTTP or audit code can creep into resource handling.
func TestImports(t *testing.T) {
	allowed := map[string]bool{
		"github.com/santhosh-tekuri/jsonschema/v6":      true,
		"github.com/santhosh-tekuri/jsonschema/v6/kind": true,
	}
	forbiddenStd := []string{"net/http", "database/sql", "os/exec", "log"}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		ast, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range ast.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(path, "/")
			std := !strings.Contains(first, ".")
			for _, bad := range forbiddenStd {
				if path == bad {
					t.Errorf("%s imports %s", f, path)
				}
			}
			if !std && !allowed[path] {
				t.Errorf("%s imports %s", f, path)
			}
		}
	}
}
