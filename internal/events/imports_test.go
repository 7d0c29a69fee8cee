package events

import (
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
)

// TestImports: events is pure (no I/O, no store): the store imports it.
func TestImports(t *testing.T) {
	deptest.Check(t, func(p string) string {
		switch {
		case p == "github.com/google/uuid" || p == "github.com/wardhealth/ward/internal/audit":
			return ""
		case deptest.IsStd(p):
			if p == "net" || strings.HasPrefix(p, "net/") || strings.HasPrefix(p, "database/") || p == "os" {
				return "events is pure: no I/O"
			}
			return ""
		}
		return "events imports only the standard library, uuid and audit"
	})
}
