// Package pgtest gives tests a PostgreSQL database of their own: a fresh
// schema per test on the server named by WARD_TEST_POSTGRES (default: the
// local server, user postgres). When no server is reachable the test is
// skipped, unless CI=true or WARD_TEST_REQUIRE_POSTGRES=1, where it fails:
// CI must never pass by skipping the PostgreSQL half of the suite.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the pgx database/sql driver
)

// DefaultURL is used when WARD_TEST_POSTGRES is not set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Required reports whether a missing server must fail the test.
func Required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("WARD_TEST_REQUIRE_POSTGRES") == "1"
}

// BaseURL returns the server URL, skipping or failing t when unreachable.
func BaseURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("WARD_TEST_POSTGRES")
	if u == "" {
		u = DefaultURL
	}
	db, err := sql.Open("pgx", u)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err = db.PingContext(ctx)
		cancel()
		db.Close()
	}
	if err != nil {
		if Required() {
			t.Fatalf("PostgreSQL is required here but unreachable at %s: %v", redact(u), err)
		}
		t.Skipf("PostgreSQL not reachable (%v); set WARD_TEST_POSTGRES to run these tests", err)
	}
	return u
}

// URL returns a URL whose connections use a new, empty schema that is
// dropped when t ends.
func URL(t testing.TB) string {
	t.Helper()
	base := BaseURL(t)
	b := make([]byte, 6)
	rand.Read(b)
	schema := "ward_test_" + hex.EncodeToString(b)
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE SCHEMA ` + schema); err != nil {
		db.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		db.Exec(`DROP SCHEMA ` + schema + ` CASCADE`)
		db.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
