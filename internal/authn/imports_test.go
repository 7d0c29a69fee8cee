package authn

import (
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
)

// TestImportsNoBus: authn tells other nodes what changed through its own
// one-method interfaces; the transport (NATS, internal/invalidation) is
// wired in internal/app and stays out of here.
func TestImportsNoBus(t *testing.T) {
	deptest.Check(t, func(path string) string {
		if strings.HasPrefix(path, "github.com/nats-io/") || path == "github.com/wardhealth/ward/internal/invalidation" {
			return "the invalidation transport is wired in internal/app"
		}
		return ""
	})
}
