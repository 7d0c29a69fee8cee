package search

import (
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
)

// Extraction is pure: no database, network or HTTP here; storage and SQL
// build on this package, not the other way round.
func TestImports(t *testing.T) {
	deptest.Check(t, func(path string) string {
		switch {
		case strings.HasPrefix(path, "github.com/wardhealth/ward/internal/search/"):
			return ""
		case path == "database/sql" || strings.HasPrefix(path, "net"):
			return "extraction does no I/O"
		case deptest.IsStd(path):
			return ""
		}
		return "search imports only the standard library and its own subpackages"
	})
}
