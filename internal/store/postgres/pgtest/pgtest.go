// Package pgtest gives tests a PostgreSQL database of their own: a fresh
// schema per test on the server named by WARD_TEST_POSTGRES (default: the
// local server, user postgres). When no server is reachable the test is
// skipped, unless CI=true or WARD_TEST_REQUIRE_POSTGRES=1, where it fails:
// CI must never pass by skipping the PostgreSQL half of the suite.
//
// The suite must pass on a busy server, beside another run of itself. A
// test binary that imports pgtest therefore opens small pools
// (postgres.Pool is set to TestPool) whose connections wait up to a
// minute for a free slot when the server has none (SQLSTATE 53300), and
// the schemas are created and dropped through one shared connection per
// binary, released when idle.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/store/postgres"
)

// DefaultURL is used when WARD_TEST_POSTGRES is not set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// TestPool is postgres.Pool in every test binary that imports pgtest. A
// store holds at most 1+4 connections, and a connection refused for want
// of a slot is tried again for a minute. One write connection, as on
// SQLite: the writer, the statistics refresh and export bookkeeping take
// turns on it, and the one Open dialled serves the whole test, so a
// request never waits for the server to free a slot for the writer. The
// read pool stays above one so that reads that overlap, as the server's
// do, are still tested.
var TestPool = postgres.PoolOptions{Write: 1, Read: 4, ConnectWait: time.Minute}

func init() { postgres.Pool = TestPool }

// Required reports whether a missing server must fail the test.
func Required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("WARD_TEST_REQUIRE_POSTGRES") == "1"
}

// The shared admin pool: one connection on the base URL, opened on first
// use, closed after a few idle seconds, for CREATE and DROP SCHEMA.
var (
	adminOnce sync.Once
	adminURL  string
	adminDB   *sql.DB
	adminErr  error
)

func admin() (string, *sql.DB, error) {
	adminOnce.Do(func() {
		adminURL = os.Getenv("WARD_TEST_POSTGRES")
		if adminURL == "" {
			adminURL = DefaultURL
		}
		db, err := postgres.OpenDB(adminURL, 1)
		if err != nil {
			adminErr = err
			return
		}
		db.SetConnMaxIdleTime(2 * time.Second)
		// An unreachable server fails within seconds; a full one is
		// waited for (postgres.OpenDB) for up to TestPool.ConnectWait.
		ctx, cancel := context.WithTimeout(context.Background(), TestPool.ConnectWait+5*time.Second)
		defer cancel()
		if err := db.PingContext(ctx); err != nil {
			db.Close()
			adminErr = err
			return
		}
		adminDB = db
	})
	return adminURL, adminDB, adminErr
}

// BaseURL returns the server URL, skipping or failing t when unreachable.
func BaseURL(t testing.TB) string {
	t.Helper()
	u, _, err := admin()
	if err != nil {
		if Required() {
			t.Fatalf("PostgreSQL is required here but unreachable at %s: %v", redact(u), err)
		}
		t.Skipf("PostgreSQL not reachable (%v); set WARD_TEST_POSTGRES to run these tests", err)
	}
	return u
}

// URL returns a URL whose connections use a new, empty schema that is
// dropped when t ends. Its sessions are named after the schema
// (application_name), so that a test can find its own in pg_stat_activity
// beside other tests and other runs on the same server.
func URL(t testing.TB) string {
	t.Helper()
	base := BaseURL(t)
	_, db, _ := admin()
	b := make([]byte, 6)
	rand.Read(b)
	schema := "ward_test_" + hex.EncodeToString(b)
	if _, err := db.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := db.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			t.Logf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("application_name", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// DB opens a pool of at most n connections to u (a URL from URL), closed
// when t ends, for a test that looks at a store's tables beside it. Its
// connections wait for a free slot like a store's.
func DB(t testing.TB, u string, n int) *sql.DB {
	t.Helper()
	db, err := postgres.OpenDB(u, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Schema is the schema of a URL from URL.
func Schema(t testing.TB, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.Query().Get("search_path")
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// Dump is pg_dump --data-only of the schema of u (a URL from URL). While
// the server refuses it for want of a slot, it is tried again, for up to
// TestPool.ConnectWait.
func Dump(t testing.TB, u string) []byte {
	t.Helper()
	if _, err := exec.LookPath("pg_dump"); err != nil {
		t.Fatalf("pg_dump is needed for this test: %v", err)
	}
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	q := p.Query()
	schema := q.Get("search_path")
	q.Del("search_path")
	p.RawQuery = q.Encode()
	deadline := time.Now().Add(TestPool.ConnectWait)
	for backoff := 20 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		out, err := exec.Command("pg_dump", "--data-only", "--schema="+schema, p.String()).CombinedOutput()
		if err == nil {
			return out
		}
		if !busyText(out) || time.Now().After(deadline) {
			t.Fatalf("pg_dump: %v: %s", err, out)
		}
		time.Sleep(backoff)
	}
}

// busyText reports whether a libpq client's output is the server refusing
// a connection for want of a slot or while starting up (postgres.Busy).
func busyText(out []byte) bool {
	s := string(out)
	return strings.Contains(s, "too many clients") || strings.Contains(s, "remaining connection slots are reserved") || strings.Contains(s, "the database system is starting up")
}
