package dispatch

import (
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
)

// TestImports: the dispatcher reads the outbox through its own interface;
// it never reaches the records layer, the HTTP edge or a concrete store.
func TestImports(t *testing.T) {
	deptest.Forbid(t, "dispatch sits beside the store, below app",
		"github.com/wardhealth/ward/internal/api", "github.com/wardhealth/ward/internal/records",
		"github.com/wardhealth/ward/internal/app", "github.com/wardhealth/ward/internal/store/sqlstore",
		"github.com/wardhealth/ward/internal/store/sqlite", "github.com/wardhealth/ward/internal/store/postgres",
		"database/sql")
}
