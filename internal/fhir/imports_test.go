package fhir

import (
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
)

// The package is a leaf: standard library, the schema validator and the
// error classes only, so
// no storage, HTTP or audit code can creep into resource handling.
func TestImports(t *testing.T) {
	allowed := map[string]bool{
		"github.com/santhosh-tekuri/jsonschema/v6":      true,
		"github.com/santhosh-tekuri/jsonschema/v6/kind": true,
		// problem is itself a standard-library-only leaf; Issue lives there.
		"github.com/wardhealth/ward/internal/problem": true,
	}
	forbiddenStd := map[string]bool{"net/http": true, "database/sql": true, "os/exec": true, "log": true}
	deptest.Check(t, func(path string) string {
		switch {
		case forbiddenStd[path]:
			return "resource handling does no I/O and no logging"
		case !deptest.IsStd(path) && !allowed[path]:
			return "only the schema validator is allowed beyond the standard library"
		}
		return ""
	})
}
