package audit

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestOnlyTheRecorderCommitsRecords fails when a package other than the
// recorder's (and the stores that implement the commit) puts audit records
// into a unit of work itself: a Unit's Audit field, in a literal or through
// a selector, or a call of AddAudit. Everything else goes through
// Recorder.Record or Recorder.Commit, so that every ledger write has the
// recorder's one failure rule.
func TestOnlyTheRecorderCommitsRecords(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
	allowed := []string{
		filepath.Join(root, "internal", "audit"),
		filepath.Join(root, "internal", "store"), // the contract, the stores and their conformance suite
	}
	seen := 0
	for _, dir := range []string{"internal", "cmd"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				for _, a := range allowed {
					if path == a {
						return filepath.SkipDir
					}
				}
				return nil
			}
			if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			seen++
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			at := func(p token.Pos) string { return rel + ":" + strconv.Itoa(fset.Position(p).Line) }
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.KeyValueExpr:
					if id, ok := n.Key.(*ast.Ident); ok && id.Name == "Audit" {
						t.Errorf("%s: a unit literal carries audit records; use the audit recorder", at(n.Pos()))
					}
				case *ast.SelectorExpr:
					if n.Sel.Name == "Audit" || n.Sel.Name == "AddAudit" {
						t.Errorf("%s: .%s reaches a unit's audit records; use the audit recorder", at(n.Pos()), n.Sel.Name)
					}
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if seen < 50 {
		t.Fatalf("only %d files checked: the rule would pass vacuously", seen)
	}
}
