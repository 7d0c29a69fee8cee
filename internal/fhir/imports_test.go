package fhir

import (
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
)

// The package is a leaf: standard library and the schema validator only, so
// no storage, HTTP or audit code can creep into resource handling.
func TestImports(t *testing.T) {
	allowed := map[string]bool{
		"github.com/santhosh-tekuri/jsonschema/v6":      true,
		"github.com/santhosh-tekuri/jsonschema/v6/kind": true,
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
