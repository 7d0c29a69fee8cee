package alerts

import (
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
)

// TestImports keeps the engine pure: the standard library without I/O,
// and the ledger record type.
func TestImports(t *testing.T) {
	deptest.Check(t, func(path string) string {
		switch {
		case path == "github.com/wardhealth/ward/internal/audit":
			return ""
		case !deptest.IsStd(path):
			return "the alert engine imports only the standard library and audit"
		case path == "net" || path == "net/http" || path == "os" || path == "log" || path == "log/slog" ||
			path == "database/sql" || path == "io/fs":
			return "the alert engine does no I/O"
		}
		return ""
	})
}
