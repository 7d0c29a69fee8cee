package fhirxml

import (
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
)

// The converter is a leaf beside fhir: the standard library and fhir (for
// its limits and resource types) only, no I/O.
func TestImports(t *testing.T) {
	deptest.Check(t, func(path string) string {
		switch {
		case path == "net/http" || path == "database/sql" || path == "os/exec" || path == "log":
			return "format conversion does no I/O and no logging"
		case !deptest.IsStd(path) && path != "github.com/wardhealth/ward/internal/fhir" && path != "github.com/wardhealth/ward/internal/problem":
			return "only fhir is allowed beyond the standard library"
		}
		return ""
	})
}
