package ledger

import (
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
)

// TestImports keeps the proof code pure: the chain (audit), the Merkle
// library, signed notes and the standard library; no store, no database,
// no network, so that an offline verifier can use it as it is.
func TestImports(t *testing.T) {
	deptest.Check(t, func(path string) string {
		switch {
		case path == "github.com/wardhealth/ward/internal/audit",
			strings.HasPrefix(path, "github.com/transparency-dev/merkle"),
			path == "golang.org/x/mod/sumdb/note":
			return ""
		case !deptest.IsStd(path):
			return "ledger may import only audit, the Merkle library and signed notes"
		case path == "net" || strings.HasPrefix(path, "net/") || strings.HasPrefix(path, "database/") || path == "os" || path == "log" || path == "log/slog":
			return "ledger does no I/O of its own"
		}
		return ""
	})
}
