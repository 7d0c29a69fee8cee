package deid

import (
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
)

// TestImports keeps de-identification pure: the standard library and the
// embedded R4 element table only, so it can neither read data it was not
// given nor write anywhere.
func TestImports(t *testing.T) {
	deptest.Check(t, func(path string) string {
		if path == "github.com/wardhealth/ward/internal/fhir/shape" {
			return ""
		}
		if !deptest.IsStd(path) || path == "net/http" || path == "os" || path == "database/sql" {
			return "deid is a pure transformation: standard library and the R4 element table only, no I/O"
		}
		return ""
	})
}
