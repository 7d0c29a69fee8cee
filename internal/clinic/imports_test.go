package clinic

import (
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
)

// TestImports keeps the clinic API a facade: it reaches data only through
// records (never the store or a database), and is wired by app, not the
// other way round.
func TestImports(t *testing.T) {
	deptest.Check(t, func(path string) string {
		const w = "github.com/wardhealth/ward/internal/"
		switch {
		case path == w+"store" || strings.HasPrefix(path, w+"store/"):
			return "the facade reaches data only through records"
		case path == w+"app" || strings.HasPrefix(path, w+"app/"):
			return "the wiring is above the facade"
		case path == w+"authn" || path == w+"facts" || path == w+"seal" || path == w+"keys" || path == w+"audit":
			return "the facade authenticates through api.Edge and reaches decisions, keys and the ledger only through records"
		case strings.HasPrefix(path, "database/"),
			strings.HasPrefix(path, "github.com/jackc/"),
			strings.HasPrefix(path, "modernc.org/"),
			strings.HasPrefix(path, "github.com/mattn/"):
			return "the facade opens no database"
		}
		return ""
	})
}
