package records

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// sqlText matches what only SQL text would say: its keywords, the search
// tables and the columns of a resources row.
var sqlText = regexp.MustCompile(`(?i)\bSELECT\b|\bFROM\s|\bWHERE\b|\bEXISTS\s*\(|\bIN\s*\(|\bsearch_[a-z]+\b|\bFROM\s+resources\b|\b1 = [01]\b|\.(rid|refh|type|deleted)\b`)

// TestNoSQL: records decides what a caller may see and hands it down as
// values; the SQL that restricts a search is written by internal/search
// (or the store), never here.
func TestNoSQL(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		seen++
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if ok && lit.Kind == token.STRING && sqlText.MatchString(lit.Value) {
				t.Errorf("%s: SQL in records: %s (write it in internal/search)", fset.Position(lit.Pos()), lit.Value)
			}
			return true
		})
	}
	if seen == 0 {
		t.Fatal("no Go files found: the check would pass vacuously")
	}
}
