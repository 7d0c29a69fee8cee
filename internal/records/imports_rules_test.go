package records

import (
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
)

// TestImportsNoEdgeNoDriver: records is the one path from a handler to
// data, below the HTTP layer and above the storage contract: it imports
// neither the layers above it (api, authn) nor a concrete store or a
// database driver; the SQL it needs is written by search.
func TestImportsNoEdgeNoDriver(t *testing.T) {
	deptest.Check(t, func(path string) string {
		const w = "github.com/wardhealth/ward/internal/"
		switch {
		case path == w+"api" || strings.HasPrefix(path, w+"api/"),
			path == w+"authn" || strings.HasPrefix(path, w+"authn/"),
			path == w+"app" || strings.HasPrefix(path, w+"app/"):
			return "records is below the HTTP layer and the wiring"
		case strings.HasPrefix(path, w+"store/"):
			return "records uses the storage contract (store), never an implementation"
		case strings.HasPrefix(path, "database/"),
			strings.HasPrefix(path, "github.com/jackc/"),
			strings.HasPrefix(path, "modernc.org/"),
			strings.HasPrefix(path, "github.com/mattn/"):
			return "records opens no database: the store does"
		case path == "net/http/httptest" || path == "net":
			return "records serves nothing"
		}
		return ""
	})
}
