package store

import (
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
)

// TestImports keeps the storage contract below the layers that use it
// (DESIGN.md, "one request, one direction"): store never reaches up into
// the HTTP edge, the caller-bound repository or authentication.
func TestImports(t *testing.T) {
	deptest.Forbid(t, "store is below api, records and authn: data moves down only",
		"github.com/wardhealth/ward/internal/api", "github.com/wardhealth/ward/internal/api/",
		"github.com/wardhealth/ward/internal/records", "github.com/wardhealth/ward/internal/records/",
		"github.com/wardhealth/ward/internal/authn", "github.com/wardhealth/ward/internal/authz",
		"github.com/wardhealth/ward/internal/app")
}
