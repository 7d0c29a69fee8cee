// Package deptest checks a package's imports from its own tests, so that
// import rules (the decision engine imports no I/O, the crypto barrier only
// the standard library, ...) fail the build of the test suite when broken.
package deptest

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// IsStd reports whether path is a standard library package.
func IsStd(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// Check parses the non-test Go files of the test's working directory (the
// package under test) and reports every import for which reject returns a
// reason.
func Check(t testing.TB, reject func(path string) (reason string)) {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		seen++
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if why := reject(path); why != "" {
				t.Errorf("%s imports %s: %s", name, path, why)
			}
		}
	}
	if seen == 0 {
		t.Fatal("no Go files found: the check would pass vacuously")
	}
}

// Forbid fails the test for every import of the package under test that
// is one of paths or lies below one ending in "/", giving reason.
func Forbid(t testing.TB, reason string, paths ...string) {
	t.Helper()
	Check(t, func(path string) string {
		for _, p := range paths {
			if path == p || strings.HasSuffix(p, "/") && strings.HasPrefix(path, p) {
				return reason
			}
		}
		return ""
	})
}
