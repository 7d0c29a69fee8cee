package seal

import (
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
)

// TestImports keeps the barrier small: production files import only the
// standard library (STYLE.md, convention 5), and nothing that logs.
func TestImports(t *testing.T) {
	deptest.Check(t, func(path string) string {
		switch {
		case !deptest.IsStd(path):
			return "the barrier imports only the standard library"
		case path == "log" || strings.HasPrefix(path, "log/"):
			return "the barrier must not log"
		case path == "unsafe":
			return "no unsafe in the barrier"
		}
		return ""
	})
}
