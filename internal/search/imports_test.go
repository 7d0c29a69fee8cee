package search

import (
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
)

// Search is pure: it computes index rows and SQL text but never runs a
// query or opens a connection (the store does), and it knows nothing of
// HTTP, callers or access decisions.
func TestImports(t *testing.T) {
	deptest.Check(t, func(path string) string {
		switch {
		case strings.HasPrefix(path, "github.com/wardhealth/ward/internal/search/"):
			return ""
		case path == "github.com/wardhealth/ward/internal/store", // row and query types
			path == "github.com/wardhealth/ward/internal/seal", // keyed hashes
			path == "github.com/wardhealth/ward/internal/fhir":
			return ""
		case path == "database/sql" || strings.HasPrefix(path, "net"):
			return "search does no I/O"
		case deptest.IsStd(path):
			return ""
		}
		return "search imports only the standard library, its subpackages, store, seal and fhir"
	})
}
