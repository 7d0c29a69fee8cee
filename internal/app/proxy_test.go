package app_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
)

// nginxMarker precedes the nginx example in docs/deployment.md.
const nginxMarker = "<!-- nginx-example:"

// The values in the nginx example a reader replaces; the test replaces
// exactly these.
const (
	nginxHost     = "ward.example.org"
	nginxCert     = "/etc/letsencrypt/live/ward.example.org/fullchain.pem"
	nginxKey      = "/etc/letsencrypt/live/ward.example.org/privkey.pem"
	nginxUpstream = "127.0.0.1:8080"
	nginxTLS      = "listen 443 ssl"
	nginxPlain    = "listen 80;"
	nginxHSTS     = "max-age=63072000; includeSubDomains"
)

// docBlock returns the ```lang block of docs/deployment.md that follows
// marker.
func docBlock(t *testing.T, marker, lang string) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/deployment.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, marker)
	if i < 0 {
		t.Fatalf("docs/deployment.md has no %q marker", marker)
	}
	s = s[i:]
	fence := "```" + lang + "\n"
	start := strings.Index(s, fence)
	if start < 0 {
		t.Fatalf("no %s block after the %q marker", fence, marker)
	}
	s = s[start+len(fence):]
	end := strings.Index(s, "\n```")
	if end < 0 {
		t.Fatalf("the %s block after %q is not closed", lang, marker)
	}
	return s[:end+1]
}

// nginxBinary finds nginx (Debian installs it in /usr/sbin, which a
// user's PATH may lack); the test skips without it unless
// WARD_TEST_REQUIRE_NGINX=1.
func nginxBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	if os.Getenv("WARD_TEST_REQUIRE_NGINX") == "1" {
		t.Fatal("nginx is not installed and WARD_TEST_REQUIRE_NGINX=1")
	}
	t.Skip("nginx is not installed (set WARD_TEST_REQUIRE_NGINX=1 to fail instead)")
	return ""
}

// selfSigned writes a certificate for 127.0.0.1 and its key into dir and
// returns their paths and a pool trusting the certificate.
func selfSigned(t *testing.T, dir string) (cert, key string, pool *x509.CertPool) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return cert, key, pool
}

// freeLoopbackPort returns a port nothing listens on at 127.0.0.1 (for a
// moment).
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// clientFrom is an HTTPS client (HTTP/2 when offered) trusting pool whose
// connections come from the loopback address src, so that nginx sees
// different clients; it does not follow redirects.
func clientFrom(src string, pool *x509.CertPool) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			DialContext:       d.DialContext,
			TLSClientConfig:   &tls.Config{RootCAs: pool},
			ForceAttemptHTTP2: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

type proxied struct {
	status int
	proto  string
	header http.Header
	body   []byte
}

func send(t *testing.T, c *http.Client, method, u, token, ctype string, body string, headers ...string) *proxied {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &proxied{status: resp.StatusCode, proto: resp.Proto, header: resp.Header, body: b}
}

// TestNginxExample runs docs/deployment.md's nginx example verbatim
// (only the values a reader replaces are replaced) in front of a running
// Ward configured as the doc says (WARD_BASE_URL the public https URL,
// WARD_TRUSTED_PROXIES nginx's address), and uses Ward through it.
func TestNginxExample(t *testing.T) {
	bin := nginxBinary(t)
	block := docBlock(t, nginxMarker, "nginx")
	for _, v := range []string{nginxHost, nginxCert, nginxKey, nginxUpstream, nginxTLS, nginxPlain, nginxHSTS} {
		if !strings.Contains(block, v) {
			t.Fatalf("the nginx example no longer contains %q (update the test's placeholders):\n%s", v, block)
		}
	}
	// The limits the example names match Ward's defaults.
	def := config.Default()
	if want := fmt.Sprintf("client_max_body_size %dm;", def.MaxBodyBytes>>20); !strings.Contains(block, want) {
		t.Errorf("the example does not say %q (WARD_MAX_BODY_BYTES default)", want)
	}
	if want := fmt.Sprintf("large_client_header_buffers 4 %dk;", def.MaxHeaderBytes>>10); !strings.Contains(block, want) {
		t.Errorf("the example does not say %q (WARD_MAX_HEADER_BYTES default)", want)
	}

	dir := t.TempDir()
	cert, key, pool := selfSigned(t, dir)
	httpsPort, httpPort := freeLoopbackPort(t), freeLoopbackPort(t)
	base := "https://127.0.0.1:" + strconv.Itoa(httpsPort)

	w := wardBehindProxy(t, base)
	upstream := strings.TrimPrefix(w.Server.URL, "http://")

	conf := block
	for _, r := range [][2]string{
		{nginxCert, cert},
		{nginxKey, key},
		{nginxHost, "127.0.0.1"},
		{nginxUpstream, upstream},
		{nginxTLS, "listen 127.0.0.1:" + strconv.Itoa(httpsPort) + " ssl"},
		{nginxPlain, "listen 127.0.0.1:" + strconv.Itoa(httpPort) + ";"},
	} {
		conf = strings.ReplaceAll(conf, r[0], r[1])
	}
	user := ""
	if os.Geteuid() == 0 {
		// As root, nginx would run its workers as nobody, who cannot
		// read the test's directories.
		user = "user root;\n"
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	wrapper := user + fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
    access_log %[1]s/access.log;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
%[3]s}
`, dir, tmp, conf)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(wrapper), 0o600); err != nil {
		t.Fatal(err)
	}
	errorLog := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return string(b)
	}
	if out, err := exec.Command(bin, "-t", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", confPath).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t refuses the example: %v\n%s\n%s", err, out, wrapper)
	}
	ng := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", confPath)
	out := &apptest.SyncBuffer{}
	ng.Stdout, ng.Stderr = out, out
	if err := ng.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- ng.Wait() }()
	t.Cleanup(func() {
		ng.Process.Signal(os.Interrupt) // fast shutdown (SIGINT), workers too
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			ng.Process.Kill()
			<-exited
		}
	})
	waitListening(t, "127.0.0.1:"+strconv.Itoa(httpsPort), exited, func() string { return out.String() + errorLog() })

	if !checkThroughProxy(t, w, base, pool) {
		t.Logf("nginx.conf:\n%s\nerror.log:\n%s", wrapper, errorLog())
	}
	// Port 80 redirects to https.
	plain := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := plain.Get("http://127.0.0.1:" + strconv.Itoa(httpPort) + "/fhir/metadata?x=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "https://127.0.0.1/fhir/metadata?x=1" {
		t.Errorf("port 80: %d Location %q, want 301 to https://127.0.0.1/fhir/metadata?x=1", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// checkThroughProxy uses Ward at base, behind a TLS-terminating proxy
// whose certificate pool trusts, and reports whether all went well:
// /health over HTTP/2 with the doc's HSTS (on errors too), the SMART
// configuration and a create's Location naming the public https base, a
// token request and a FHIR create and read, and Ward's rate limit keyed by
// the client address the proxy puts in X-Forwarded-For (w trusts only
// 127.0.0.1, the proxy; its AuthRate is too low to refill during the test).
func checkThroughProxy(t *testing.T, w *apptest.Ward, base string, pool *x509.CertPool) bool {
	t.Helper()
	c := clientFrom("127.0.0.4", pool)

	// /health through the proxy, over HTTP/2, with the doc's HSTS.
	r := send(t, c, "GET", base+"/health", "", "", "")
	if r.status != 200 {
		t.Fatalf("/health through the proxy: %d %s", r.status, r.body)
	}
	if r.proto != "HTTP/2.0" {
		t.Errorf("/health through the proxy over %s, want HTTP/2.0", r.proto)
	}
	if got := r.header.Get("Strict-Transport-Security"); got != nginxHSTS {
		t.Errorf("HSTS %q, want %q", got, nginxHSTS)
	}
	// HSTS on errors too ("always").
	r = send(t, c, "GET", base+"/fhir/Patient/does-not-exist", w.Tokens[authz.RoleAdmin], "", "")
	if r.status != 404 || r.header.Get("Strict-Transport-Security") != nginxHSTS {
		t.Errorf("a 404 through the proxy: %d, HSTS %q", r.status, r.header.Get("Strict-Transport-Security"))
	}

	// The SMART configuration names the public https base.
	r = send(t, c, "GET", base+"/.well-known/smart-configuration", "", "", "")
	if r.status != 200 {
		t.Fatalf("smart-configuration: %d %s", r.status, r.body)
	}
	var smart map[string]any
	if err := json.Unmarshal(r.body, &smart); err != nil {
		t.Fatal(err)
	}
	n := 0
	for k, v := range smart {
		s, ok := v.(string)
		if !ok || !(strings.HasSuffix(k, "_endpoint") || k == "issuer" || k == "jwks_uri") {
			continue
		}
		n++
		if !strings.HasPrefix(s, base+"/") && s != base && !strings.HasPrefix(s, base+"/fhir") {
			t.Errorf("smart-configuration %s = %q, want under %s", k, s, base)
		}
	}
	if n < 2 || smart["token_endpoint"] != base+"/oauth2/token" {
		t.Errorf("smart-configuration through the proxy: %s", r.body)
	}

	// A token request, then a FHIR create and read with it.
	r = send(t, c, "POST", base+"/oauth2/token", "", "application/x-www-form-urlencoded",
		url.Values{"grant_type": {"password"}, "username": {"physician-user"}, "password": {apptest.Password}}.Encode())
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &tok) != nil || tok.AccessToken == "" {
		t.Fatalf("token through the proxy: %d %s", r.status, r.body)
	}
	r = send(t, c, "POST", base+"/fhir/Patient", tok.AccessToken, "application/fhir+json",
		`{"resourceType":"Patient","name":[{"family":"Proxy"}],"generalPractitioner":[{"reference":"Practitioner/pract-physician"}]}`)
	if r.status != 201 {
		t.Fatalf("create through the proxy: %d %s", r.status, r.body)
	}
	loc := r.header.Get("Location")
	if !strings.HasPrefix(loc, base+"/fhir/Patient/") {
		t.Fatalf("Location %q, want under %s/fhir/Patient/", loc, base)
	}
	r = send(t, c, "GET", loc, tok.AccessToken, "", "")
	if r.status != 200 || !strings.Contains(string(r.body), `"Proxy"`) {
		t.Fatalf("read %s through the proxy: %d %s", loc, r.status, r.body)
	}

	// Ward limits each client by the address the proxy puts in
	// X-Forwarded-For: 127.0.0.2 uses up its burst of 20 (and a forged
	// X-Forwarded-For does not get it a fresh one), while 127.0.0.3,
	// behind the same proxy, is not limited.
	a, b := clientFrom("127.0.0.2", pool), clientFrom("127.0.0.3", pool)
	for i := range 20 {
		if r := send(t, a, "POST", base+"/oauth2/token", "", "application/x-www-form-urlencoded", "x=1"); r.status != 400 {
			t.Fatalf("token request %d from 127.0.0.2, within the burst: %d %s", i+1, r.status, r.body)
		}
	}
	if r := send(t, a, "POST", base+"/oauth2/token", "", "application/x-www-form-urlencoded", "x=1"); r.status != 429 {
		t.Fatalf("21st token request from 127.0.0.2: %d, want 429", r.status)
	}
	if r := send(t, a, "POST", base+"/oauth2/token", "", "application/x-www-form-urlencoded", "x=1", "X-Forwarded-For: 198.51.100.9"); r.status != 429 {
		t.Errorf("token request from 127.0.0.2 with a forged X-Forwarded-For: %d, want 429", r.status)
	}
	if r := send(t, b, "POST", base+"/oauth2/token", "", "application/x-www-form-urlencoded", "x=1"); r.status != 400 {
		t.Errorf("token request from 127.0.0.3 through the same proxy: %d, want 400 (its own limit)", r.status)
	}
	return !t.Failed()
}

// wardBehindProxy starts Ward as the doc says to run it behind a proxy on
// this machine: WARD_BASE_URL the public URL, WARD_TRUSTED_PROXIES
// 127.0.0.1/32.
func wardBehindProxy(t *testing.T, base string) *apptest.Ward {
	t.Helper()
	return apptest.Start(t, apptest.SQLite, func(c *config.Config) {
		c.BaseURL = base
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.AuthRate = 0.01 // burst 20 (default), then one per 100 s
	})
}

// waitListening waits until something accepts connections on addr, or
// the process reports on exited.
func waitListening(t *testing.T, addr string, exited chan error, logs func() string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("the proxy exited: %v\n%s", err, logs())
		default:
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
	}
	t.Fatalf("nothing listens on %s:\n%s", addr, logs())
}

// caddyMarker precedes the Caddy example in docs/deployment.md.
const caddyMarker = "<!-- caddy-example:"

// TestCaddyExample runs docs/deployment.md's Caddyfile verbatim, with
// ward.example.org and Ward's address replaced, in front of a running Ward,
// and uses Ward through it as TestNginxExample does. Global options put
// before it keep Caddy to the test's directory and free ports and have it
// issue the certificate from its own local CA instead of ACME (127.0.0.1
// gets no public certificate). It skips when caddy is not installed
// unless WARD_TEST_REQUIRE_CADDY=1.
func TestCaddyExample(t *testing.T) {
	bin, err := exec.LookPath("caddy")
	if err != nil {
		if os.Getenv("WARD_TEST_REQUIRE_CADDY") == "1" {
			t.Fatal("caddy is not installed and WARD_TEST_REQUIRE_CADDY=1")
		}
		t.Skip("caddy is not installed (set WARD_TEST_REQUIRE_CADDY=1 to fail instead)")
	}
	block := docBlock(t, caddyMarker, "caddyfile")
	for _, v := range []string{nginxHost, nginxUpstream, nginxHSTS} {
		if !strings.Contains(block, v) {
			t.Fatalf("the Caddy example no longer contains %q (update the test's placeholders):\n%s", v, block)
		}
	}
	dir := t.TempDir()
	httpsPort, httpPort := freeLoopbackPort(t), freeLoopbackPort(t)
	public := "127.0.0.1:" + strconv.Itoa(httpsPort)
	base := "https://" + public
	w := wardBehindProxy(t, base)
	conf := strings.ReplaceAll(block, nginxHost, public)
	conf = strings.ReplaceAll(conf, nginxUpstream, strings.TrimPrefix(w.Server.URL, "http://"))
	wrapper := fmt.Sprintf(`{
	admin off
	storage file_system %s
	http_port %d
	https_port %d
	local_certs
	skip_install_trust
}
%s`, filepath.Join(dir, "data"), httpPort, httpsPort, conf)
	confPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(confPath, []byte(wrapper), 0o600); err != nil {
		t.Fatal(err)
	}
	cd := exec.Command(bin, "run", "--config", confPath, "--adapter", "caddyfile")
	cd.Dir = dir
	cd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "xdg"), "XDG_CONFIG_HOME="+filepath.Join(dir, "xdg"))
	out := &apptest.SyncBuffer{}
	cd.Stdout, cd.Stderr = out, out
	if err := cd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cd.Wait() }()
	t.Cleanup(func() {
		cd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cd.Process.Kill()
			<-exited
		}
	})
	logs := func() string { return "Caddyfile:\n" + wrapper + "\nlog:\n" + out.String() }
	waitListening(t, public, exited, logs)
	root, err := os.ReadFile(filepath.Join(dir, "data", "pki", "authorities", "local", "root.crt"))
	if err != nil {
		t.Fatalf("Caddy's local CA: %v\n%s", err, logs())
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(root) {
		t.Fatalf("Caddy's root.crt is not PEM:\n%s", root)
	}
	// Caddy listens before its local CA has issued the site's certificate
	// (issuance runs in the background); until then a handshake fails with
	// "tls: internal error". Wait for a handshake that verifies.
	var hsErr error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var c *tls.Conn
		if c, hsErr = tls.Dial("tcp", public, &tls.Config{RootCAs: pool}); hsErr == nil {
			c.Close()
			break
		}
	}
	if hsErr != nil {
		t.Fatalf("no TLS handshake with Caddy: %v\n%s", hsErr, logs())
	}
	if !checkThroughProxy(t, w, base, pool) {
		t.Log(logs())
	}
	// Plain HTTP redirects to https.
	plain := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := plain.Get("http://127.0.0.1:" + strconv.Itoa(httpPort) + "/fhir/metadata?x=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != 308 || !strings.HasPrefix(loc, "https://127.0.0.1") || !strings.HasSuffix(loc, "/fhir/metadata?x=1") {
		t.Errorf("plain HTTP: %d Location %q, want 308 to https://127.0.0.1.../fhir/metadata?x=1", resp.StatusCode, loc)
	}
}
