package problem

import (
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
)

// TestImports keeps problem a leaf: every layer wraps its classes, so it
// may import only the standard library (not fhir, not store).
func TestImports(t *testing.T) {
	deptest.Check(t, func(path string) string {
		if !deptest.IsStd(path) {
			return "problem is a leaf of error classes: standard library only"
		}
		return ""
	})
}
