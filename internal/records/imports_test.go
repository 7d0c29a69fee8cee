package records

import (
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
)

// TestImportsNoBus: records tells other nodes what changed through its own
// one-method interfaces; the transport (NATS, internal/invalidation) is
// wired in internal/app and stays out of here.
func TestImportsNoBus(t *testing.T) {
	deptest.Forbid(t, "the invalidation transport is wired in internal/app",
		"github.com/nats-io/", "github.com/wardhealth/ward/internal/invalidation")
}
