package app_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// rsyslog is a real rsyslogd (Debian's rsyslog) receiving RFC 5424 over
// TCP on a loopback port, with octet-counted framing, writing each message
// it parsed to a file as "protocol-version|app-name|msgid|raw message".
type rsyslog struct {
	t         *testing.T
	dir, conf string
	Addr      string
	Out       string
	CA        string // PEM of the CA of its TLS certificate ("" : plain TCP)
	cmd       *exec.Cmd
}

// startRsyslog starts rsyslogd, skipping the test when it is not
// installed (failing instead when WARD_TEST_REQUIRE_RSYSLOG=1, as in CI).
func startRsyslog(t *testing.T, tls bool) *rsyslog {
	t.Helper()
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		for _, p := range []string{"/usr/sbin/rsyslogd", "/sbin/rsyslogd"} {
			if _, serr := os.Stat(p); serr == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		if os.Getenv("WARD_TEST_REQUIRE_RSYSLOG") == "1" {
			t.Fatal("rsyslogd not found and WARD_TEST_REQUIRE_RSYSLOG=1 (apt-get install rsyslog rsyslog-gnutls)")
		}
		t.Skip("rsyslogd not installed (apt-get install rsyslog rsyslog-gnutls)")
	}
	dir := t.TempDir()
	r := &rsyslog{t: t, dir: dir, conf: filepath.Join(dir, "rsyslog.conf"), Out: filepath.Join(dir, "out.log")}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.Addr = ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(r.Addr)
	conf := fmt.Sprintf("global(workDirectory=%q maxMessageSize=\"64k\")\n", dir)
	if tls {
		ca, cert, key := tlsFiles(t, dir)
		r.CA = ca
		conf += fmt.Sprintf("global(defaultNetstreamDriver=\"gtls\" defaultNetstreamDriverCAFile=%q defaultNetstreamDriverCertFile=%q defaultNetstreamDriverKeyFile=%q)\n", ca, cert, key)
		conf += "module(load=\"imtcp\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\")\n"
	} else {
		conf += "module(load=\"imtcp\")\n"
	}
	conf += fmt.Sprintf("input(type=\"imtcp\" address=\"127.0.0.1\" port=%q)\n", port)
	conf += "template(name=\"ward\" type=\"string\" string=\"%protocol-version%|%app-name%|%msgid%|%rawmsg%\\n\")\n"
	conf += fmt.Sprintf("action(type=\"omfile\" file=%q template=\"ward\")\n", r.Out)
	if err := os.WriteFile(r.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	r.start(bin)
	t.Cleanup(r.Stop)
	return r
}

func (r *rsyslog) start(bin string) {
	r.t.Helper()
	r.cmd = exec.Command(bin, "-n", "-f", r.conf, "-i", filepath.Join(r.dir, "rsyslogd.pid"))
	// Its own messages (such as the readiness probe's aborted TLS
	// handshake) go to a file, shown if the test fails.
	logf, err := os.OpenFile(filepath.Join(r.dir, "rsyslogd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		r.t.Fatal(err)
	}
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	r.t.Cleanup(func() {
		logf.Close()
		if r.t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			r.t.Logf("rsyslogd said:\n%s", b)
		}
	})
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", r.Addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("rsyslogd does not listen on %s: %v", r.Addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops rsyslogd gracefully (it writes what it received first).
func (r *rsyslog) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		r.cmd.Process.Kill()
		<-done
	}
	r.cmd = nil
}

// Restart stops rsyslogd and starts it again on the same port and file.
func (r *rsyslog) Restart() {
	r.t.Helper()
	bin := r.cmd.Path
	r.Stop()
	os.Remove(filepath.Join(r.dir, "rsyslogd.pid"))
	r.start(bin)
}

var seqParam = regexp.MustCompile(` seq="(\d+)"`)

// Lines returns what rsyslog wrote, and the seqs of its messages.
func (r *rsyslog) Lines() (lines []string, seqs []int64) {
	f, err := os.Open(r.Out)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if m := seqParam.FindStringSubmatch(sc.Text()); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			seqs = append(seqs, n)
		}
	}
	return lines, seqs
}

// WaitFor waits until rsyslog has written n messages.
func (r *rsyslog) WaitFor(n int) []int64 {
	r.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, seqs := r.Lines()
		if len(seqs) >= n {
			return seqs
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("rsyslog wrote %d messages, want %d", len(seqs), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tlsFiles writes a CA and a server certificate for 127.0.0.1 signed by
// it; it returns the PEM file names.
func tlsFiles(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ward test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("cert.pem", "CERTIFICATE", srvDER), write("key.pem", "EC PRIVATE KEY", keyDER)
}
