package api

import (
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
)

// TestImports keeps the HTTP layer thin: it reaches data only through
// records, authn and bulk, never through the store or a database driver.
func TestImports(t *testing.T) {
	deptest.Check(t, func(path string) string {
		const w = "github.com/wardhealth/ward/internal/"
		switch {
		case path == w+"store" || strings.HasPrefix(path, w+"store/"):
			return "handlers reach data only through records, authn and bulk"
		case path == w+"app" || strings.HasPrefix(path, w+"app/"):
			return "the wiring is above the HTTP layer"
		case strings.HasPrefix(path, "database/"),
			strings.HasPrefix(path, "github.com/jackc/"),
			strings.HasPrefix(path, "modernc.org/"),
			strings.HasPrefix(path, "github.com/mattn/"):
			return "the HTTP layer opens no database"
		}
		return ""
	})
}
