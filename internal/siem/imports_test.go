package siem

import (
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
)

// TestImports: the exporters know the ledger record and the network, not
// the store (the ledger and the cursor are interfaces the app fills).
func TestImports(t *testing.T) {
	deptest.Check(t, func(path string) string {
		switch {
		case path == "github.com/wardhealth/ward/internal/audit":
			return ""
		case strings.HasPrefix(path, "github.com/wardhealth/ward/"):
			return "siem imports only audit of Ward's packages"
		case !deptest.IsStd(path), strings.HasPrefix(path, "database/"), path == "os":
			return "siem reaches the ledger through its interfaces only"
		}
		return ""
	})
}
