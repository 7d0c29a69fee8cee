// Package natstest gives tests a real NATS server: the shared one named by
// WARD_TEST_NATS (default nats://127.0.0.1:4222), or a dedicated
// nats-server process of their own that they may stop and restart. When
// neither can be had the test is skipped, unless CI=true or
// WARD_TEST_REQUIRE_NATS=1, where it fails: CI must never pass by skipping
// the cluster half of the suite.
package natstest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// DefaultURL is used when WARD_TEST_NATS is not set.
const DefaultURL = "nats://127.0.0.1:4222"

// Required reports whether a missing server must fail the test.
func Required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("WARD_TEST_REQUIRE_NATS") == "1"
}

func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("NATS is required here: %s", msg)
	}
	t.Skipf("%s; set WARD_TEST_NATS (or install nats-server) to run these tests", msg)
}

// URL returns the shared server's URL, skipping or failing t when it is
// unreachable.
func URL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("WARD_TEST_NATS")
	if u == "" {
		u = DefaultURL
	}
	p, err := url.Parse(u)
	if err != nil {
		t.Fatalf("WARD_TEST_NATS: %v", err)
	}
	c, err := net.DialTimeout("tcp", p.Host, 2*time.Second)
	if err != nil {
		unavailable(t, "NATS not reachable at %s (%v)", p.Host, err)
	}
	c.Close()
	return u
}

// Prefix returns a subject prefix of its own, so that tests sharing one
// server (and other engineers' runs) never hear each other.
func Prefix() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "wardtest." + hex.EncodeToString(b)
}

// Server is a dedicated nats-server process.
type Server struct {
	t    testing.TB
	Port int
	URL  string
	cmd  *exec.Cmd
}

// Start runs nats-server on a free loopback port until t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath("nats-server"); err != nil {
		unavailable(t, "nats-server is not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &Server{t: t, Port: port, URL: "nats://127.0.0.1:" + strconv.Itoa(port)}
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

// Restart starts the server again on the same port (after Stop).
func (s *Server) Restart() {
	s.t.Helper()
	s.cmd = exec.Command("nats-server", "-a", "127.0.0.1", "-p", strconv.Itoa(s.Port))
	var out strings.Builder
	s.cmd.Stdout, s.cmd.Stderr = &out, &out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start nats-server: %v", err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(s.Port)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
	}
	s.Stop()
	s.t.Fatalf("nats-server did not listen on %s: %s", addr, out.String())
}

// Stop kills the server (as a crash would: clients see the connection
// drop) and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}
