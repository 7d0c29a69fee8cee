package facts

import (
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
)

// TestImports: facts reads through the small Store it declares and opens
// bodies through a function it is given; it knows nothing of HTTP, of a
// database driver, of keys, of the ledger or of the repository that uses
// it (records imports facts, never the reverse).
func TestImports(t *testing.T) {
	deptest.Check(t, func(path string) string {
		const w = "github.com/wardhealth/ward/internal/"
		switch {
		case path == "net/http" || path == "database/sql" || strings.HasPrefix(path, "database/"):
			return "facts does no HTTP and opens no database"
		case strings.HasPrefix(path, w+"store/"):
			return "facts reads through its Store interface, not a concrete store"
		case strings.HasPrefix(path, w):
			switch strings.TrimPrefix(path, w) {
			case "authz", "fhir", "fhir/compartment", "problem", "search", "search/params", "search/query", "store":
				return ""
			}
			return "facts imports only authz, fhir, problem, search and store of Ward's packages (never api, records, audit, seal)"
		case deptest.IsStd(path):
			return ""
		}
		return "facts imports only the standard library and Ward's packages"
	})
}
