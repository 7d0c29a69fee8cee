// Package redistest gives tests a real Redis: the server named by
// WARD_TEST_REDIS (default: the local one) with a key prefix of their own,
// or a redis-server of their own on a free port that a test may kill. When
// no server is reachable (or redis-server is not installed) the test is
// skipped, unless CI=true or WARD_TEST_REQUIRE_REDIS=1, where it fails: CI
// must never pass by skipping the shared half of rate limiting.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultURL is used when WARD_TEST_REDIS is not set.
const DefaultURL = "redis://127.0.0.1:6379/0"

// Required reports whether a missing server must fail the test.
func Required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("WARD_TEST_REQUIRE_REDIS") == "1"
}

func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("Redis is required here (WARD_TEST_REQUIRE_REDIS=1 or CI=true): %s", msg)
	}
	t.Skipf("%s; set WARD_TEST_REDIS to run these tests", msg)
}

// URL returns the test server's URL, skipping or failing t when it does
// not answer PING.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("WARD_TEST_REDIS")
	if u == "" {
		u = DefaultURL
	}
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("WARD_TEST_REDIS: %v", err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		unavailable(t, "Redis not reachable at %s (%v)", opt.Addr, err)
	}
	return u
}

// Prefix returns a key prefix no other test uses, and deletes its keys
// when t ends.
func Prefix(t testing.TB, url string) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	p := "ward-test:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		c := Client(t, url)
		ctx := context.Background()
		iter := c.Scan(ctx, 0, p+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
	return p
}

// Client returns a client of url, closed when t ends.
func Client(t testing.TB, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return c
}

// Keys returns every key under prefix.
func Keys(t testing.TB, c *redis.Client, prefix string) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		out = append(out, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Server is a redis-server started for one test.
type Server struct {
	URL  string
	Port int
	cmd  *exec.Cmd
}

// Start runs redis-server on a free loopback port without persistence;
// it is killed when t ends (or by Kill).
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		unavailable(t, "redis-server is not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &Server{URL: "redis://127.0.0.1:" + strconv.Itoa(port) + "/0", Port: port}
	s.start(t, bin)
	return s
}

func (s *Server) start(t testing.TB, bin string) {
	t.Helper()
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(s.Port),
		"--save", "", "--appendonly", "no", "--dir", t.TempDir(), "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	s.cmd = cmd
	t.Cleanup(s.Kill)
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(s.Port)})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on port %d did not answer: %v", s.Port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Restart starts the server again on the same port, after Kill.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal(err)
	}
	s.start(t, bin)
}

// Kill stops the server at once (SIGKILL) and waits for it to exit.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}
