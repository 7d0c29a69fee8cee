package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
)

// A mistyped --data-dir is an error, not a new empty ledger that
// "verifies".
func TestAuditVerifyWithoutDatabase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mistyped")
	out, stderr, code := ward(t, "", "audit", "verify", "--data-dir", dir)
	if code == 0 || strings.Contains(out, "intact") || !strings.Contains(stderr, "no database") || !strings.Contains(stderr, dir) {
		t.Fatalf("exit %d: %s %s", code, out, stderr)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("audit verify created %s", dir)
	}
}

var lastRecord = regexp.MustCompile(`last record: +seq (\d+) at (\S+)`)

// audit verify reports the first and last sequence numbers and the head
// record's time, so that an operator can see what the chain alone cannot:
// records cut off its end together with a rewritten head.
func TestAuditVerifyReportsRange(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ward-data")
	s := serve(t, dir)
	if _, stderr, code := ward(t, pass+"\n", "users", "add", "--data-dir", dir, "--username", "smoke", "--role", "admin", "--password-stdin"); code != 0 {
		t.Fatal(stderr)
	}
	tok := s.token(t, "smoke", pass)
	for range 3 {
		s.post(t, tok, "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"n"}}`)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
	out, stderr, code := ward(t, "", "audit", "verify", "--data-dir", dir)
	m := lastRecord.FindStringSubmatch(out)
	if code != 0 || m == nil || !strings.Contains(out, "first record: seq 1 at ") {
		t.Fatalf("exit %d: %s %s", code, out, stderr)
	}
	last, _ := strconv.Atoi(m[1])
	if at, err := time.Parse(time.RFC3339Nano, m[2]); err != nil || time.Since(at) > time.Hour || last < 5 {
		t.Fatalf("last record %s at %s: %v", m[1], m[2], err)
	}
	if !strings.Contains(out, "head seq "+m[1]+" ") {
		t.Fatalf("the head is not the last record: %s", out)
	}

	// Cut the last two records and rewrite the head to the new end: the
	// chain still verifies (the documented limit), and the report shows
	// the lower sequence number for the operator to compare.
	db, err := sql.Open("sqlite", filepath.Join(dir, "ward.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM audit_log WHERE seq > ?; UPDATE audit_head SET seq = (SELECT seq FROM audit_log WHERE seq = ?), hash = (SELECT hash FROM audit_log WHERE seq = ?)`, last-2, last-2, last-2); err != nil {
		t.Fatal(err)
	}
	db.Close()
	out, stderr, code = ward(t, "", "audit", "verify", "--data-dir", dir)
	if m := lastRecord.FindStringSubmatch(out); code != 0 || m == nil || m[1] != strconv.Itoa(last-2) {
		t.Fatalf("after the cut, exit %d: %s %s", code, out, stderr)
	}

	// The help says so.
	// (Help is on standard output, exit 0; it names no issue number.)
	out, _, code = ward(t, "", "audit", "verify", "-h")
	for _, want := range []string{"rewritten head", "signed", "outside the database", "first and last sequence numbers"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("audit verify -h (exit %d) lacks %q: %s", code, want, out)
		}
	}
}

// ward serve --tls-self-signed: HTTPS only, HSTS, HTTP/2, the certificate
// generated once into the data directory and reused on restart.
func TestServeTLSSelfSignedCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ward-data")
	start := func() (*apptest.SyncBuffer, *apptest.SyncBuffer, string, func()) {
		addr := freePort(t)
		cmd := exec.Command(wardBin, "serve", "--addr", addr, "--data-dir", dir, "--tls-self-signed")
		cmd.Env = cleanEnv()
		o, e := &apptest.SyncBuffer{}, &apptest.SyncBuffer{}
		cmd.Stdout, cmd.Stderr = o, e
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		stop := func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }
		t.Cleanup(stop)
		return o, e, addr, stop
	}
	stdout, stderr, addr, stop := start()
	certFile := filepath.Join(dir, app.SelfSignedCertFile)
	var client *http.Client
	deadline := time.Now().Add(20 * time.Second)
	var resp *http.Response
	for time.Now().Before(deadline) {
		if pemBytes, err := os.ReadFile(certFile); err == nil && client == nil {
			pool := x509.NewCertPool()
			if pool.AppendCertsFromPEM(pemBytes) {
				client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
			}
		}
		if client != nil {
			var err error
			if resp, err = client.Get("https://" + addr + "/health"); err == nil {
				resp.Body.Close()
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if resp == nil {
		t.Fatalf("ward serve --tls-self-signed did not come up: %s", stderr)
	}
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 || !strings.HasPrefix(resp.Header.Get("Strict-Transport-Security"), "max-age=") {
		t.Fatalf("%d %s HSTS %q", resp.StatusCode, resp.Proto, resp.Header.Get("Strict-Transport-Security"))
	}
	if !strings.Contains(stdout.String(), "https://") || !strings.Contains(stderr.String(), "SELF-SIGNED") {
		t.Fatalf("stdout %q, stderr %q", stdout, stderr)
	}
	// Plain HTTP on the TLS port is not served.
	if r, err := http.Get("http://" + addr + "/health"); err == nil {
		r.Body.Close()
		if r.StatusCode == 200 {
			t.Fatal("plain HTTP served")
		}
	}
	first, _ := os.ReadFile(certFile)
	stop()
	_, stderr, addr, _ = start()
	deadline = time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(stderr.String(), "reusing") {
		time.Sleep(50 * time.Millisecond)
	}
	second, _ := os.ReadFile(certFile)
	if !strings.Contains(stderr.String(), "reusing") || !bytes.Equal(first, second) {
		t.Fatalf("the certificate was not reused: %s", stderr)
	}
}
