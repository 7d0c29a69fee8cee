package app

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/wardhealth/ward/internal/config"
)

// The self-signed development certificate and its key, in the data
// directory.
const (
	SelfSignedCertFile = "tls-cert.pem"
	SelfSignedKeyFile  = "tls-key.pem"
)

// NewHTTPServer returns the http.Server that serves h: its timeouts, a
// header limit above the one the handler enforces (so that the handler,
// not net/http, answers an over-large header block, with an
// OperationOutcome), and with TLS configured (cfg.TLS()) a TLS 1.2+
// configuration with HTTP/2. Serve it with ServeTLS(ln, "", "") when
// TLSConfig is set, Serve otherwise.
func NewHTTPServer(cfg config.Config, h http.Handler, warn io.Writer) (*http.Server, error) {
	if err := cfg.CheckTLS(); err != nil {
		return nil, err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    ServerMaxHeaderBytes(cfg),
	}
	if !cfg.TLS() {
		return srv, nil
	}
	certFile, keyFile := cfg.TLSCert, cfg.TLSKey
	if cfg.TLSSelfSigned {
		var err error
		if certFile, keyFile, err = EnsureSelfSigned(cfg.DataDir, SelfSignedHosts(cfg), warn); err != nil {
			return nil, err
		}
	} else if fi, err := os.Stat(keyFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(warn, "WARNING: the TLS key %s has mode %#o: group or others may read it (chmod 600)\n", keyFile, fi.Mode().Perm())
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate (WARD_TLS_CERT, WARD_TLS_KEY): %w", err)
	}
	srv.TLSConfig = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		// ServeTLS adds h2 (HTTP/2) before http/1.1.
		NextProtos: []string{"h2", "http/1.1"},
	}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(true)
	return srv, nil
}

// ServerMaxHeaderBytes is net/http's own header limit: well above
// WARD_MAX_HEADER_BYTES, which the handler enforces with an
// OperationOutcome; only a header block beyond this gets net/http's plain
// text 431.
func ServerMaxHeaderBytes(cfg config.Config) int {
	return max(1<<20, 4*cfg.MaxHeaderBytes)
}

// SelfSignedHosts are the names the development certificate covers:
// localhost, the loopback addresses, and the hosts of WARD_BASE_URL and
// WARD_ADDR.
func SelfSignedHosts(cfg config.Config) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	add := func(h string) {
		if h != "" && h != "0.0.0.0" && h != "::" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	if u, err := url.Parse(cfg.BaseURL); err == nil && cfg.BaseURL != "" {
		add(u.Hostname())
	}
	if h, _, err := net.SplitHostPort(cfg.Addr); err == nil {
		add(h)
	}
	return hosts
}

// EnsureSelfSigned returns the development certificate and key in dir,
// generating them (ECDSA P-256, one year, 0600) when they are missing,
// unreadable, expiring within a day or not covering hosts; otherwise the
// same ones are reused, so a browser exception survives a restart. It
// warns on every start that this is for development.
func EnsureSelfSigned(dir string, hosts []string, warn io.Writer) (certFile, keyFile string, err error) {
	if err := secureDataDir(dir, warn); err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, SelfSignedCertFile), filepath.Join(dir, SelfSignedKeyFile)
	state := "reusing"
	if !selfSignedUsable(certFile, keyFile, hosts) {
		if err := generateSelfSigned(certFile, keyFile, hosts); err != nil {
			return "", "", fmt.Errorf("generate the self-signed certificate: %w", err)
		}
		state = "generated"
	}
	fmt.Fprintf(warn, `
################################################################################
#  WARNING: serving HTTPS with a SELF-SIGNED certificate (%s %s)
#  for %v. This is for DEVELOPMENT: browsers and clients will not trust it
#  unless told to. In production use --tls-cert/--tls-key with a certificate
#  from a CA, or TLS at a reverse proxy (docs/deployment.md).
################################################################################

`, state, certFile, hosts)
	return certFile, keyFile, nil
}

func selfSignedUsable(certFile, keyFile string, hosts []string) bool {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil || pair.Leaf == nil {
		return false
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm()&0o077 != 0 {
		return false
	}
	if time.Until(pair.Leaf.NotAfter) < 24*time.Hour {
		return false
	}
	for _, h := range hosts {
		if pair.Leaf.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

func generateSelfSigned(certFile, keyFile string, hosts []string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Ward development (self-signed)", Organization: []string{"Ward development"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	// The key first: a certificate without its key is never left behind
	// as "usable".
	if err := writeFileAtomic(keyFile, keyPEM); err != nil {
		return err
	}
	return writeFileAtomic(certFile, certPEM)
}

// writeFileAtomic writes b to path (0600) through a temporary file and a
// rename, so a crash leaves the old file or the new one.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err = io.Copy(f, bytes.NewReader(b)); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return err
}
