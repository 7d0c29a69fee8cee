package app_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/config"
)

// serveTLS serves w's handler through app.NewHTTPServer with cfg on a real
// TLS listener and returns its address.
func serveTLS(t *testing.T, w *apptest.Ward, cfg config.Config, warn io.Writer) string {
	t.Helper()
	srv, err := app.NewHTTPServer(cfg, w.App.Handler, warn)
	if err != nil {
		t.Fatal(err)
	}
	if srv.TLSConfig == nil {
		t.Fatal("no TLS configuration")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func certPool(t *testing.T, certFile string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatal("certificate file holds no certificate")
	}
	return pool
}

// client speaks exactly TLS version v (and HTTP/2 when it can).
func client(pool *x509.CertPool, v uint16) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: v, MaxVersion: v}, ForceAttemptHTTP2: true}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetHTTP1(true)
	tr.Protocols.SetHTTP2(true)
	return &http.Client{Transport: tr}
}

// --tls-self-signed: TLS 1.2 and 1.3 only, HTTP/2 by ALPN, HSTS on every
// answer; the certificate is generated once (0600 key, ECDSA P-256, for
// localhost, the loopback addresses and the configured host) and reused.
func TestServeTLSSelfSigned(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	cfg := config.Default()
	cfg.DataDir = filepath.Join(t.TempDir(), "ward-data")
	cfg.BaseURL = "https://ward.example.test:8443"
	cfg.TLSSelfSigned = true
	var warn bytes.Buffer
	addr := serveTLS(t, w, cfg, &warn)
	if !strings.Contains(warn.String(), "SELF-SIGNED") || !strings.Contains(warn.String(), "DEVELOPMENT") || !strings.Contains(warn.String(), "generated") {
		t.Errorf("no loud development warning: %q", warn.String())
	}
	certFile := filepath.Join(cfg.DataDir, app.SelfSignedCertFile)
	keyFile := filepath.Join(cfg.DataDir, app.SelfSignedKeyFile)
	for _, f := range []string{certFile, keyFile} {
		if m := mode(t, f); m != 0o600 {
			t.Errorf("%s mode %#o, want 0600", f, m)
		}
	}
	pemBytes, _ := os.ReadFile(certFile)
	blk, _ := pem.Decode(pemBytes)
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if leaf.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("key algorithm %v, want ECDSA", leaf.PublicKeyAlgorithm)
	}
	for _, h := range []string{"localhost", "127.0.0.1", "::1", "ward.example.test"} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("certificate does not cover %s: %v", h, err)
		}
	}
	pool := certPool(t, certFile)

	// TLS 1.0 and 1.1 are refused in the handshake.
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		_, err := client(pool, v).Get("https://" + addr + "/health")
		if err == nil {
			t.Fatalf("TLS version %#x accepted", v)
		}
		c, derr := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: v, MaxVersion: v})
		if derr == nil {
			c.Close()
			t.Fatalf("TLS version %#x handshake succeeded", v)
		}
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		for _, path := range []string{"/health", "/fhir/metadata", "/no/such/path", "/fhir/Patient"} {
			resp, err := client(pool, v).Get("https://" + addr + path)
			if err != nil {
				t.Fatalf("TLS %#x %s: %v", v, path, err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(got, "max-age=") {
				t.Errorf("TLS %#x %s (%d): Strict-Transport-Security %q", v, path, resp.StatusCode, got)
			}
			if resp.ProtoMajor != 2 || resp.TLS == nil || resp.TLS.NegotiatedProtocol != "h2" || resp.TLS.Version != v {
				t.Errorf("TLS %#x %s: %s, ALPN %q", v, path, resp.Proto, resp.TLS.NegotiatedProtocol)
			}
		}
	}

	// A restart reuses the certificate and key.
	key1, _ := os.ReadFile(keyFile)
	warn.Reset()
	serveTLS(t, w, cfg, &warn)
	pem2, _ := os.ReadFile(certFile)
	key2, _ := os.ReadFile(keyFile)
	if !bytes.Equal(pemBytes, pem2) || !bytes.Equal(key1, key2) {
		t.Fatal("the self-signed certificate was generated again on restart")
	}
	if !strings.Contains(warn.String(), "reusing") {
		t.Errorf("restart warning: %q", warn.String())
	}
}

// --tls-cert and --tls-key serve the given certificate; the answer over
// plain HTTP (no TLS) carries no HSTS.
func TestServeTLSCertificateFiles(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	dir := t.TempDir()
	certFile, keyFile, err := app.EnsureSelfSigned(dir, []string{"localhost", "127.0.0.1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir = filepath.Join(t.TempDir(), "unused")
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	addr := serveTLS(t, w, cfg, io.Discard)
	resp, err := client(certPool(t, certFile), tls.VersionTLS13).Get("https://" + addr + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Strict-Transport-Security") == "" || resp.ProtoMajor != 2 {
		t.Fatalf("%d %s HSTS %q", resp.StatusCode, resp.Proto, resp.Header.Get("Strict-Transport-Security"))
	}
	if _, err := os.Stat(cfg.DataDir); !errors.Is(err, os.ErrNotExist) {
		t.Error("a self-signed certificate was made although certificate files were given")
	}
	if r := w.Do(t, "GET", "/health", "", nil); r.Header.Get("Strict-Transport-Security") != "" {
		t.Error("HSTS over plain HTTP")
	}

	// Contradictory settings are refused.
	for _, bad := range []config.Config{{TLSCert: certFile}, {TLSKey: keyFile}, {TLSCert: certFile, TLSKey: keyFile, TLSSelfSigned: true}} {
		if _, err := app.NewHTTPServer(bad, w.App.Handler, io.Discard); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// An over-large header block gets Ward's 431 OperationOutcome from the
// server NewHTTPServer builds (its own limit is higher).
func TestHeaderLimitAnswersOutcome(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	cfg := config.Default()
	srv, err := app.NewHTTPServer(cfg, w.App.Handler, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	for _, n := range []int{cfg.MaxHeaderBytes + 1, 512 << 10} {
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/fhir/metadata", nil)
		req.Header.Set("X-Filler", strings.Repeat("a", n))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 431 || !strings.Contains(string(b), `"OperationOutcome"`) || !strings.Contains(string(b), "WARD_MAX_HEADER_BYTES") {
			t.Fatalf("%d header bytes: %d %s", n, resp.StatusCode, b)
		}
	}
}
