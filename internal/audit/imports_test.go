package audit

import (
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
)

// TestImports keeps the chain pure (STYLE.md, convention 6): no I/O, no
// database, no network, no logging. The recorder adds context and the
// error classes (problem, itself standard library only); it writes through
// an interface, never a concrete store.
func TestImports(t *testing.T) {
	allowed := map[string]bool{
		"crypto/sha256": true, "encoding/binary": true, "errors": true, "fmt": true,
		"iter": true, "math": true, "slices": true, "strconv": true, "time": true,
		"context": true, "github.com/wardhealth/ward/internal/problem": true,
	}
	deptest.Check(t, func(path string) string {
		if !allowed[path] {
			return "the audit core allows only pure standard-library packages"
		}
		return ""
	})
}
