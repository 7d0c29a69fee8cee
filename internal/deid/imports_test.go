package deid

import (
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
)

// TestImports keeps de-identification pure: standard library only, so it
// can neither read data it was not given nor write anywhere.
func TestImports(t *testing.T) {
	deptest.Check(t, func(path string) string {
		if !deptest.IsStd(path) || path == "net/http" || path == "os" || path == "database/sql" {
			return "deid is a pure transformation: standard library only, no I/O"
		}
		return ""
	})
}
