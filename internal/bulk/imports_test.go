package bulk

import (
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
)

// TestImports keeps bulk below the HTTP layer and the wiring: api calls
// bulk, never the reverse.
func TestImports(t *testing.T) {
	deptest.Forbid(t, "bulk is below the HTTP layer and the wiring",
		"github.com/wardhealth/ward/internal/api", "github.com/wardhealth/ward/internal/api/",
		"github.com/wardhealth/ward/internal/app", "github.com/wardhealth/ward/internal/authn",
		"net/http/httptest")
}
