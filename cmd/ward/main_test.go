package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	_ "modernc.org/sqlite"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authn"
	"github.com/wardhealth/ward/internal/config"
)

var wardBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ward-bin")
	if err != nil {
		panic(err)
	}
	wardBin = filepath.Join(dir, "ward")
	if out, err := exec.Command("go", "build", "-o", wardBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build ward: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// ward runs the binary with the environment cleared of WARD_ settings.
func ward(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return wardWith(t, nil, stdin, args...)
}

// wardWith is ward with extra environment variables (NAME=value).
func wardWith(t *testing.T, env []string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(wardBin, args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), 0
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WARD_") {
			env = append(env, kv)
		}
	}
	return env
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type server struct {
	cmd    *exec.Cmd
	addr   string
	stdout *apptest.SyncBuffer
	stderr *apptest.SyncBuffer
}

// serve runs ward serve on dataDir; env adds WARD_* settings.
func serve(t *testing.T, dataDir string, env ...string) *server {
	t.Helper()
	return serveWith(t, dataDir, env)
}

// serveWith is serve with extra environment variables (NAME=value).
func serveWith(t *testing.T, dataDir string, env []string) *server {
	t.Helper()
	addr := freePort(t)
	cmd := exec.Command(wardBin, "serve", "--addr", addr, "--data-dir", dataDir)
	cmd.Env = append(cleanEnv(), env...)
	s := &server{cmd: cmd, addr: addr, stdout: &apptest.SyncBuffer{}, stderr: &apptest.SyncBuffer{}}
	cmd.Stdout, cmd.Stderr = s.stdout, s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + addr + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("ward serve did not come up: %s", s.stderr)
	return nil
}

func (s *server) token(t *testing.T, user, pass string) string {
	resp, err := http.PostForm("http://"+s.addr+"/oauth2/token", url.Values{"grant_type": {"password"}, "username": {user}, "password": {pass}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != 200 || out.AccessToken == "" || out.TokenType != "Bearer" || out.ExpiresIn <= 0 {
		t.Fatalf("token: %d %s: %s (server log: %s)", resp.StatusCode, out.Error, out.Description, s.stderr)
	}
	return out.AccessToken
}

func (s *server) post(t *testing.T, tok, typ, body string) (int, string) {
	req, _ := http.NewRequest("POST", "http://"+s.addr+"/fhir/"+typ, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m struct{ ID string }
	json.Unmarshal(b, &m)
	return resp.StatusCode, m.ID
}

func (s *server) get(t *testing.T, tok, path string) (int, []byte) {
	req, _ := http.NewRequest("GET", "http://"+s.addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusTooManyRequests {
		// A test that reads this fast must say so (see
		// TestKill9DuringTransactions) instead of taking a 429 for an answer.
		t.Fatalf("GET %s: rate limited (429)", path)
	}
	return resp.StatusCode, b
}

const pass = "smoke test passphrase 12345"

func TestServeOnAFreshDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ward-data")
	s := serve(t, dir)
	st, err := os.Stat(filepath.Join(dir, "ward.key"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", st.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(dir, "ward.db")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.stderr.String(), "WARNING: generated a new key-encryption key") || !strings.Contains(s.stderr.String(), "DEVELOPMENT") {
		t.Fatalf("no loud warning about the generated key: %s", s.stderr)
	}
	if !strings.Contains(s.stdout.String(), "http://"+s.addr) || !strings.Contains(s.stdout.String(), "ward users add") {
		t.Fatalf("startup banner: %s", s.stdout)
	}

	// users add refuses weak passwords with a clear message.
	for _, c := range []struct{ pw, want string }{
		{"", "empty"}, {"short", "at least 12"}, {"smoke-user-is-me", "is the username"},
	} {
		_, stderr, code := ward(t, c.pw+"\n", "users", "add", "--data-dir", dir, "--username", "smoke-user-is-me", "--role", "physician", "--password-stdin")
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Fatalf("weak password %q: exit %d, %s", c.pw, code, stderr)
		}
	}
	if _, stderr, code := ward(t, pass+"\n", "users", "add", "--data-dir", dir, "--username", "smoke", "--role", "root", "--password-stdin"); code == 0 || !strings.Contains(stderr, "--role") {
		t.Fatalf("bad role: %d %s", code, stderr)
	}
	out, stderr, code := ward(t, pass+"\n", "users", "add", "--data-dir", dir, "--username", "smoke", "--role", "admin", "--password-stdin")
	if code != 0 || !strings.Contains(out, "created") {
		t.Fatalf("users add: %d %s %s", code, out, stderr)
	}
	if _, stderr, code := ward(t, pass+"\n", "users", "add", "--data-dir", dir, "--username", "smoke", "--role", "nurse", "--password-stdin"); code == 0 || !strings.Contains(stderr, "already exists") {
		t.Fatalf("duplicate user: %d %s", code, stderr)
	}

	// The user added by the CLI logs in to the running server.
	tok := s.token(t, "smoke", pass)
	status, id := s.post(t, tok, "Patient", `{"resourceType":"Patient","name":[{"family":"Zyxwvutsonian"}],"birthDate":"1937-02-03"}`)
	if status != 201 {
		t.Fatalf("create: %d", status)
	}
	if code, body := s.get(t, tok, "/fhir/Patient/"+id); code != 200 || !bytes.Contains(body, []byte("Zyxwvutsonian")) {
		t.Fatalf("read: %d", code)
	}
	// Nothing readable in the data directory or the log.
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte("Zyxwvutsonian")) || bytes.Contains(b, []byte("1937-02-03")) {
			t.Errorf("%s holds plaintext PHI", p)
		}
		return nil
	})
	if strings.Contains(s.stderr.String(), "Zyxwvutsonian") {
		t.Error("the log holds PHI")
	}
	// The log is JSON with request ids.
	sc := bufio.NewScanner(strings.NewReader(s.stderr.String()))
	var jsonLines int
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["request_id"] != nil {
			jsonLines++
		}
	}
	if jsonLines < 3 {
		t.Fatalf("%d JSON log lines with request ids", jsonLines)
	}
	// The ledger verifies while the server runs.
	out, stderr, code = ward(t, "", "audit", "verify", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "ledger intact") {
		t.Fatalf("audit verify: %d %s %s", code, out, stderr)
	}
}

// An acknowledged write survives kill -9 of the server.
func TestAcknowledgedWritesSurviveKill9(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ward-data")
	s := serve(t, dir)
	if _, stderr, code := ward(t, pass+"\n", "users", "add", "--data-dir", dir, "--username", "smoke", "--role", "admin", "--password-stdin"); code != 0 {
		t.Fatal(stderr)
	}
	tok := s.token(t, "smoke", pass)
	var ids []string
	for i := range 50 {
		status, id := s.post(t, tok, "Observation", fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"n%d"}}`, i))
		if status != 201 {
			t.Fatalf("create %d: %d", i, status)
		}
		ids = append(ids, id)
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Wait()
	s2 := serve(t, dir)
	tok = s2.token(t, "smoke", pass)
	for _, id := range ids {
		if code, _ := s2.get(t, tok, "/fhir/Observation/"+id); code != 200 {
			t.Fatalf("acknowledged Observation/%s lost after kill -9: %d", id, code)
		}
	}
	if _, stderr, code := ward(t, "", "audit", "verify", "--data-dir", dir); code != 0 {
		t.Fatalf("ledger broken after kill -9: %s", stderr)
	}
}

func TestAuditVerifyDetectsTampering(t *testing.T) {
	build := func(t *testing.T) string {
		dir := filepath.Join(t.TempDir(), "ward-data")
		s := serve(t, dir)
		if _, stderr, code := ward(t, pass+"\n", "users", "add", "--data-dir", dir, "--username", "smoke", "--role", "admin", "--password-stdin"); code != 0 {
			t.Fatal(stderr)
		}
		tok := s.token(t, "smoke", pass)
		for i := range 5 {
			s.post(t, tok, "Observation", fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"n%d"}}`, i))
		}
		s.cmd.Process.Signal(syscall.SIGTERM)
		s.cmd.Wait()
		if _, stderr, code := ward(t, "", "audit", "verify", "--data-dir", dir); code != 0 {
			t.Fatalf("fresh ledger does not verify: %s", stderr)
		}
		return dir
	}
	cases := []struct {
		name string
		sql  string
		seq  string
	}{
		{"altered actor", `UPDATE audit_log SET actor = 'someone-else' WHERE seq = 6`, "6"},
		{"altered outcome", `UPDATE audit_log SET outcome = outcome + 4 WHERE seq = 7`, "7"},
		{"altered entities", `UPDATE audit_log SET entities = '[]' WHERE seq = 8`, "8"},
		{"deleted record", `DELETE FROM audit_log WHERE seq = 5`, "5"},
		{"deleted tail", `DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)`, ""},
		{"reordered records", `UPDATE audit_log SET seq = CASE seq WHEN 4 THEN 1004 WHEN 5 THEN 4 END WHERE seq IN (4, 5); UPDATE audit_log SET seq = 5 WHERE seq = 1004`, "4"},
		{"recomputed hash without relinking", `UPDATE audit_log SET hash = zeroblob(32) WHERE seq = 3`, "3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := build(t)
			db, err := sql.Open("sqlite", filepath.Join(dir, "ward.db"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(c.sql); err != nil {
				t.Fatal(err)
			}
			db.Close()
			out, stderr, code := ward(t, "", "audit", "verify", "--data-dir", dir)
			if code == 0 {
				t.Fatalf("tampering not detected: %s", out)
			}
			if !strings.Contains(stderr, "LEDGER BROKEN") {
				t.Fatalf("exit %d without naming the break: %s", code, stderr)
			}
			if c.seq != "" && !regexp.MustCompile(`\b`+c.seq+`\b`).MatchString(stderr) {
				t.Fatalf("does not name sequence number %s: %s", c.seq, stderr)
			}
		})
	}
}

func TestMigrate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	for range 2 { // idempotent
		out, stderr, code := ward(t, "", "migrate", "--data-dir", dir)
		if code != 0 || !strings.Contains(out, "migrations applied") {
			t.Fatalf("migrate: %d %s %s", code, out, stderr)
		}
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, "ward.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('resource_versions', 'resources', 'audit_log', 'audit_head', 'keys', 'users')`).Scan(&n); err != nil || n != 6 {
		t.Fatalf("%d of 6 tables after migrate (%v)", n, err)
	}
}

func TestUsageAndConfig(t *testing.T) {
	if _, _, code := ward(t, ""); code != 2 {
		t.Fatalf("no command: exit %d", code)
	}
	if _, stderr, code := ward(t, "", "frobnicate"); code != 2 || !strings.Contains(stderr, "unknown command") {
		t.Fatalf("unknown command: %d %s", code, stderr)
	}
	cmd := exec.Command(wardBin, "config")
	cmd.Env = append(cleanEnv(), "WARD_KEY=c2VjcmV0LWtleS1tYXRlcmlhbC1zZWNyZXQta2V5LW0=")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Contains(string(out), "c2VjcmV0") || !strings.Contains(string(out), "WARD_ADDR") {
		t.Fatalf("config: %v %s", err, out)
	}
	cmd = exec.Command(wardBin, "config")
	cmd.Env = append(cleanEnv(), "WARD_ADRESS=x")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "unknown setting WARD_ADRESS") {
		t.Fatalf("unknown setting accepted: %s", out)
	}
	_ = context.Background()
}

func TestImport(t *testing.T) {
	src := t.TempDir()
	files, _ := filepath.Glob(filepath.Join("..", "..", "internal", "api", "testdata", "synthea", "*.json.gz"))
	if len(files) == 0 {
		t.Fatal("no Synthea test bundle")
	}
	f, err := os.Open(files[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "a-patient.json"), out, 0o600)
	var bundle struct{ Entry []any }
	json.Unmarshal(out, &bundle)
	ndjson := `{"resourceType":"Observation","id":"obs-nd-1","status":"final","code":{"text":"a"}}
{"resourceType":"Observation","id":"obs-nd-2","status":"final","code":{"text":"b"}}

{"resourceType":"Patient","gender":"female"}
`
	os.WriteFile(filepath.Join(src, "b-resources.ndjson"), []byte(ndjson), 0o600)
	os.WriteFile(filepath.Join(src, "c-broken.ndjson"), []byte(`{"resourceType":"Observation","id":"ok-1","status":"final","code":{"text":"a"}}
{"resourceType":"Observation","status":"final",
`), 0o600)
	dir := filepath.Join(t.TempDir(), "data")
	initData(t, dir) // only serve, init and migrate create a data directory
	stdout, stderr, code := ward(t, "", "import", "--quiet", "--data-dir", dir, src)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (one broken file): %s %s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "FAILED") || !strings.Contains(stderr, "c-broken.ndjson") || !strings.Contains(stderr, "line 2") {
		t.Fatalf("the broken file is not reported with its name and line: %s", stderr)
	}
	// The broken file's good line is stored too (records.ImportNDJSON).
	want := fmt.Sprintf("imported %d resources from 2 of 3 files", len(bundle.Entry)+4)
	if !strings.Contains(stdout, want) {
		t.Fatalf("summary %q, want %q", stdout, want)
	}
	if _, stderr, code := ward(t, "", "audit", "verify", "--data-dir", dir); code != 0 {
		t.Fatalf("ledger after import: %s", stderr)
	}
	// NDJSON ids are kept; the data is served.
	s := serve(t, dir)
	if _, stderr, code := ward(t, pass+"\n", "users", "add", "--data-dir", dir, "--username", "smoke", "--role", "admin", "--password-stdin"); code != 0 {
		t.Fatal(stderr)
	}
	tok := s.token(t, "smoke", pass)
	if code, body := s.get(t, tok, "/fhir/Observation/obs-nd-2"); code != 200 || !bytes.Contains(body, []byte(`"text":"b"`)) {
		t.Fatalf("NDJSON resource: %d %s", code, body)
	}
	// The broken file's good line was stored, whole.
	if code, body := s.get(t, tok, "/fhir/Observation/ok-1"); code != 200 || !bytes.Contains(body, []byte(`"text":"a"`)) {
		t.Fatalf("the good line of the broken file: %d %s", code, body)
	}
}

func TestKeysRotate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	if _, stderr, code := ward(t, "", "migrate", "--data-dir", dir); code != 0 {
		t.Fatal(stderr)
	}
	for range 2 {
		out, stderr, code := ward(t, "", "keys", "rotate", "--data-dir", dir)
		if code != 0 || !strings.Contains(out, "new signing key") {
			t.Fatalf("keys rotate: %d %s %s", code, out, stderr)
		}
	}
	s := serve(t, dir)
	resp, err := http.Get("http://" + s.addr + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var jwks struct{ Keys []map[string]string }
	json.NewDecoder(resp.Body).Decode(&jwks)
	// The first command to open the database created a key; each rotation
	// added one.
	if len(jwks.Keys) != 3 {
		t.Fatalf("%d keys in the JWKS, want 3", len(jwks.Keys))
	}
}

func TestEnrollTOTP(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ward-data")
	s := serve(t, dir)
	if _, stderr, code := ward(t, pass+"\n", "users", "add", "--data-dir", dir, "--username", "smoke", "--role", "admin", "--password-stdin"); code != 0 {
		t.Fatal(stderr)
	}
	out, stderr, code := ward(t, "", "users", "enroll-totp", "--data-dir", dir, "--username", "smoke")
	if code != 0 || !strings.HasPrefix(out, "otpauth://totp/") {
		t.Fatalf("enroll-totp: %d %s %s", code, out, stderr)
	}
	key, err := otp.NewKeyFromURL(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {"password"}, "username": {"smoke"}, "password": {pass}}
	resp, err := http.PostForm("http://"+s.addr+"/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("login without a code: %d", resp.StatusCode)
	}
	c, _ := totp.GenerateCode(key.Secret(), time.Now())
	form.Set("totp", c)
	resp, err = http.PostForm("http://"+s.addr+"/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("login with the code: %d", resp.StatusCode)
	}
	if _, stderr, code := ward(t, "", "users", "enroll-totp", "--data-dir", dir, "--username", "nobody"); code == 0 || !strings.Contains(stderr, "no such user") {
		t.Fatalf("unknown user: %d %s", code, stderr)
	}
}

func TestClientsAdd(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	initData(t, dir) // only serve, init and migrate create a data directory
	good := filepath.Join(t.TempDir(), "jwks.json")
	// The P-256 example key of RFC 7517, appendix A.1 (public, and in the
	// second file with its private member d).
	os.WriteFile(good, []byte(`{"keys":[{"kty":"EC","kid":"k1","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}]}`), 0o600)
	private := filepath.Join(t.TempDir(), "private.json")
	os.WriteFile(private, []byte(`{"keys":[{"kty":"EC","kid":"k1","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","d":"870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE"}]}`), 0o600)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--client-id", "b1", "--jwks-file", private, "--scope", "system/Patient.rs"}, "private"},
		{[]string{"--client-id", "b1", "--jwks-file", good, "--scope", "user/Patient.rs"}, "not a system/ scope"},
		{[]string{"--client-id", "b1", "--jwks-file", good, "--scope", "system/Patient.zz"}, "--scope"},
		{[]string{"--jwks-file", good, "--scope", "system/Patient.rs"}, "--client-id"},
	} {
		_, stderr, code := ward(t, "", append([]string{"clients", "add", "--data-dir", dir}, c.args...)...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d %s", c.args, code, stderr)
		}
	}
	out, stderr, code := ward(t, "", "clients", "add", "--data-dir", dir, "--client-id", "b1", "--jwks-file", good, "--scope", "system/Patient.rs system/Observation.rs")
	if code != 0 || !strings.Contains(out, "registered") {
		t.Fatalf("clients add: %d %s %s", code, out, stderr)
	}
	if _, stderr, code := ward(t, "", "clients", "add", "--data-dir", dir, "--client-id", "b1", "--jwks-file", good, "--scope", "system/Patient.rs"); code == 0 || !strings.Contains(stderr, "already registered") {
		t.Fatalf("duplicate: %d %s", code, stderr)
	}
}

func TestUsersManagement(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ward-data")
	s := serve(t, dir)
	if _, stderr, code := ward(t, pass+"\n", "users", "add", "--data-dir", dir, "--username", "smoke", "--role", "nurse", "--password-stdin"); code != 0 {
		t.Fatal(stderr)
	}
	out, _, code := ward(t, "", "users", "list", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "smoke") || !strings.Contains(out, "active") || strings.Contains(out, "argon2") {
		t.Fatalf("list: %s", out)
	}
	tryLogin := func(pw string) int {
		resp, err := http.PostForm("http://"+s.addr+"/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"smoke"}, "password": {pw}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if _, stderr, code := ward(t, "", "users", "disable", "--data-dir", dir, "--username", "smoke"); code != 0 {
		t.Fatal(stderr)
	}
	if out, _, _ := ward(t, "", "users", "list", "--data-dir", dir); !strings.Contains(out, "disabled") {
		t.Fatalf("list after disable: %s", out)
	}
	if c := tryLogin(pass); c != 400 {
		t.Fatalf("disabled user logged in: %d", c)
	}
	ward(t, "", "users", "enable", "--data-dir", dir, "--username", "smoke")
	newPass := "another long passphrase 678"
	if _, stderr, code := ward(t, newPass+"\n", "users", "reset-password", "--data-dir", dir, "--username", "smoke", "--password-stdin"); code != 0 {
		t.Fatal(stderr)
	}
	if c := tryLogin(pass); c != 400 {
		t.Fatalf("old password still works: %d", c)
	}
	if c := tryLogin(newPass); c != 200 {
		t.Fatalf("new password: %d", c)
	}
	if _, stderr, code := ward(t, "short\n", "users", "reset-password", "--data-dir", dir, "--username", "smoke", "--password-stdin"); code == 0 || !strings.Contains(stderr, "at least 12") {
		t.Fatalf("weak reset: %s", stderr)
	}
	if _, stderr, code := ward(t, "", "users", "disable", "--data-dir", dir, "--username", "ghost"); code == 0 || !strings.Contains(stderr, "no user") {
		t.Fatalf("unknown user: %s", stderr)
	}
	if _, stderr, code := ward(t, "", "audit", "verify", "--data-dir", dir); code != 0 {
		t.Fatal(stderr)
	}
}

// Transactions posted while the server is killed with SIGKILL: every Bundle
// that was acknowledged is there whole after restart, and no Bundle is
// there in part.
func TestKill9DuringTransactions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ward-data")
	s := serve(t, dir)
	if _, stderr, code := ward(t, pass+"\n", "users", "add", "--data-dir", dir, "--username", "smoke", "--role", "admin", "--password-stdin"); code != 0 {
		t.Fatal(stderr)
	}
	tok := s.token(t, "smoke", pass)
	const bundles, per = 60, 25
	bundle := func(k int) string {
		var b strings.Builder
		b.WriteString(`{"resourceType":"Bundle","type":"transaction","entry":[`)
		for i := range per {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"resource":{"resourceType":"Observation","id":"b%d-%d","status":"final","code":{"text":"n"}},"request":{"method":"PUT","url":"Observation/b%d-%d"}}`, k, i, k, i)
		}
		b.WriteString(`]}`)
		return b.String()
	}
	acked := make([]bool, bundles)
	var wg sync.WaitGroup
	next := make(chan int)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				req, _ := http.NewRequest("POST", "http://"+s.addr+"/fhir", strings.NewReader(bundle(k)))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/fhir+json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				acked[k] = resp.StatusCode == 200
			}
		}()
	}
	for k := range bundles {
		if k == bundles/2 {
			s.cmd.Process.Signal(syscall.SIGKILL)
		}
		next <- k
	}
	close(next)
	wg.Wait()
	s.cmd.Wait()

	// The check reads 1,500 Observations one by one with one token, more
	// than the per-subject limit allows (200/s after a burst of 400); what
	// is tested is durability, so this server has no API limit.
	s2 := serve(t, dir, "WARD_API_RATE_LIMIT=0")
	tok = s2.token(t, "smoke", pass)
	var whole, none, ackedN int
	for k := range bundles {
		present := 0
		for i := range per {
			if code, _ := s2.get(t, tok, fmt.Sprintf("/fhir/Observation/b%d-%d", k, i)); code == 200 {
				present++
			}
		}
		switch {
		case present == per:
			whole++
		case present == 0:
			none++
			if acked[k] {
				t.Errorf("bundle %d was acknowledged but is lost", k)
			}
		default:
			t.Errorf("bundle %d is there in part: %d of %d", k, present, per)
		}
		if acked[k] {
			ackedN++
		}
	}
	if ackedN == 0 || none == 0 {
		t.Fatalf("the kill did not land mid-run (%d acknowledged, %d absent): the test proved nothing", ackedN, none)
	}
	t.Logf("%d bundles whole (%d acknowledged), %d absent", whole, ackedN, none)
	if _, stderr, code := ward(t, "", "audit", "verify", "--data-dir", dir); code != 0 {
		t.Fatalf("ledger after kill -9: %s", stderr)
	}
}

// TestReindex: with the index rows gone, ward reindex rebuilds exactly the
// rows the writes had made, and audits it.
func TestReindex(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	initData(t, dir) // only serve, init and migrate create a data directory
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "r.ndjson"), []byte(`{"resourceType":"Patient","id":"p1","name":[{"family":"Quillfeather"}],"birthDate":"1961-07-14"}
{"resourceType":"Observation","id":"o1","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p1"},"effectiveDateTime":"2020-01-01","valueQuantity":{"value":72}}
`), 0o600)
	if _, stderr, code := ward(t, "", "import", "--quiet", "--data-dir", dir, src); code != 0 {
		t.Fatal(stderr)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, "ward.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dump := func() string {
		var out []string
		for _, q := range []string{`SELECT p, h, rid, s FROM search_token ORDER BY 1, 2, 3, 4`, `SELECT p, k, lo, hi, rid FROM search_date ORDER BY 1, 2, 3, 4, 5`,
			`SELECT p, k, lo, hi, rid, u FROM search_number ORDER BY 1, 2, 3, 4, 5`, `SELECT p, h, rid, t, n, hex(f) FROM search_prefix ORDER BY 1, 2, 3, 4, 5`,
			`SELECT refh FROM resources ORDER BY rid`} {
			rows, err := db.Query(q)
			if err != nil {
				t.Fatal(err)
			}
			cols, _ := rows.Columns()
			for rows.Next() {
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				rows.Scan(ptrs...)
				out = append(out, fmt.Sprint(vals...))
			}
			rows.Close()
		}
		return strings.Join(out, "\n")
	}
	before := dump()
	if strings.Count(before, "\n") < 10 {
		t.Fatalf("too few index rows after import:\n%s", before)
	}
	for _, q := range []string{`DELETE FROM search_token`, `DELETE FROM search_date`, `DELETE FROM search_number`, `DELETE FROM search_prefix`, `UPDATE resources SET refh = 0`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if dump() == before {
		t.Fatal("rows not deleted")
	}
	out, stderr, code := ward(t, "", "reindex", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "reindexed 2 resources") {
		t.Fatalf("reindex: %d %s %s", code, out, stderr)
	}
	if after := dump(); after != before {
		t.Fatalf("reindex rebuilt other rows:\nbefore\n%s\nafter\n%s", before, after)
	}
	if _, stderr, code := ward(t, "", "audit", "verify", "--data-dir", dir); code != 0 {
		t.Fatalf("ledger after reindex: %s", stderr)
	}
}

// Tenants are created with ward tenants add; users and clients can only be
// created in a tenant that exists; clients are listed and disabled.
func TestTenantsAndClients(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	initData(t, dir) // only serve, init and migrate create a data directory
	for _, c := range []struct {
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"", []string{"tenants", "list"}, 0, "default"},
		{"", []string{"tenants", "add", "--name", "Clinic B"}, 1, "lower-case"},
		{"", []string{"tenants", "add", "--name", "clinic-b"}, 0, "tenant clinic-b created"},
		{"", []string{"tenants", "add", "--name", "clinic-b"}, 1, "already exists"},
		{"", []string{"tenants", "list"}, 0, "clinic-b"},
		{pass + "\n", []string{"users", "add", "--username", "nb", "--role", "nurse", "--tenant", "nowhere", "--password-stdin"}, 1, "no tenant"},
		{pass + "\n", []string{"users", "add", "--username", "nb", "--role", "nurse", "--tenant", "clinic-b", "--password-stdin"}, 0, "created"},
		{"", []string{"users", "list", "--tenant", "clinic-b"}, 0, "nb"},
		{"", []string{"clients", "add", "--client-id", "app1", "--redirect-uri", "http://app.example/cb", "--scope", "openid launch/patient"}, 1, "--redirect-uri: a redirect URI must use https"},
		{"", []string{"clients", "add", "--client-id", "app1", "--redirect-uri", "https://app.example/cb", "--scope", "system/Patient.rs"}, 1, "--scope"},
		{"", []string{"clients", "add", "--client-id", "app1", "--redirect-uri", "https://app.example/cb", "--scope", "openid", "--tenant", "nowhere"}, 1, "no such tenant"},
		{"", []string{"clients", "add", "--client-id", "app1", "--redirect-uri", "https://app.example/cb", "--redirect-uri", "http://127.0.0.1:7777/cb", "--scope", "openid launch/patient user/*.rs", "--tenant", "clinic-b"}, 0, "public app app1 registered in tenant clinic-b"},
		{"", []string{"clients", "list", "--tenant", "clinic-b"}, 0, "app1"},
		{"", []string{"clients", "list"}, 0, "CLIENT"},
		{"", []string{"clients", "disable", "--client-id", "app1"}, 1, "no such client in this tenant"},
		{"", []string{"clients", "disable", "--client-id", "app1", "--tenant", "clinic-b"}, 0, "disable done"},
		{"", []string{"clients", "list", "--tenant", "clinic-b"}, 0, "disabled"},
		{"", []string{"audit", "verify"}, 0, "ledger intact"},
	} {
		args := append(append([]string{}, c.args[:2]...), append([]string{"--data-dir", dir}, c.args[2:]...)...)
		if c.args[1] == "list" && c.args[0] == "tenants" || c.args[0] == "audit" {
			args = append(append([]string{}, c.args...), "--data-dir", dir)
		}
		out, stderr, code := ward(t, c.stdin, args...)
		if code != c.code || !strings.Contains(out+stderr, c.want) {
			t.Errorf("ward %v: exit %d, want %d with %q:\n%s%s", c.args, code, c.code, c.want, out, stderr)
		}
	}
	// The app is not listed in the default tenant.
	if out, _, _ := ward(t, "", "clients", "list", "--data-dir", dir); strings.Contains(out, "app1") {
		t.Errorf("default tenant lists clinic-b's client:\n%s", out)
	}
}

// ward users add links a clinician to a Practitioner and a patient account
// to a Patient that exist in the tenant; the link reaches the token.
func TestUsersAddLinks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ward-data")
	s := serve(t, dir)
	if _, stderr, code := ward(t, pass+"\n", "users", "add", "--data-dir", dir, "--username", "boss", "--role", "admin", "--password-stdin"); code != 0 {
		t.Fatal(stderr)
	}
	admin := s.token(t, "boss", pass)
	_, prID := s.post(t, admin, "Practitioner", `{"resourceType":"Practitioner","active":true}`)
	_, paID := s.post(t, admin, "Patient", `{"resourceType":"Patient","gender":"female","generalPractitioner":[{"reference":"Practitioner/`+prID+`"}]}`)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--role", "physician", "--practitioner", "nope"}, "there is no Practitioner/nope"},
		{[]string{"--role", "physician", "--patient", paID}, "--patient: patient links a user-role account"},
		{[]string{"--role", "user"}, "--patient: a user-role account needs patient"},
		{[]string{"--role", "admin", "--practitioner", prID}, "--practitioner: practitioner links a physician or nurse"},
		{[]string{"--role", "nurse", "--practitioner", prID, "--patient", paID}, "not both"},
		{[]string{"--role", "nurse", "--practitioner", "a/b"}, "--practitioner: practitioner must be a FHIR id"},
		{[]string{"--role", "physician", "--practitioner", prID, "--clearance", "HIV,TOPSECRET"}, "--clearance: a listed code is not a security label"},
	} {
		args := append([]string{"users", "add", "--data-dir", dir, "--username", "linked", "--password-stdin"}, c.args...)
		if _, stderr, code := ward(t, pass+"\n", args...); code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, %s (want %q)", c.args, code, stderr, c.want)
		}
	}
	if _, stderr, code := ward(t, pass+"\n", "users", "add", "--data-dir", dir, "--username", "dr", "--role", "physician", "--practitioner", prID, "--clearance", "HIV", "--password-stdin"); code != 0 {
		t.Fatal(stderr)
	}
	if _, stderr, code := ward(t, pass+"\n", "users", "add", "--data-dir", dir, "--username", "pat", "--role", "user", "--patient", paID, "--password-stdin"); code != 0 {
		t.Fatal(stderr)
	}
	// The linked physician reads the patient naming them GP; the patient
	// account reads itself; an unlinked physician reads neither.
	if _, stderr, code := ward(t, pass+"\n", "users", "add", "--data-dir", dir, "--username", "locum", "--role", "physician", "--password-stdin"); code != 0 {
		t.Fatal(stderr)
	}
	for _, c := range []struct {
		user string
		want int
	}{{"dr", 200}, {"pat", 200}, {"locum", 403}} {
		if code, _ := s.get(t, s.token(t, c.user, pass), "/fhir/Patient/"+paID); code != c.want {
			t.Errorf("%s reads the patient: %d, want %d", c.user, code, c.want)
		}
	}
}

// ward audit break-glass lists the emergency accesses from the ledger with
// their reason codes, never the free-text reason.
func TestAuditBreakGlassReport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ward-data")
	s := serve(t, dir)
	for _, u := range [][]string{{"boss", "admin"}, {"locum", "physician"}} {
		if _, stderr, code := ward(t, pass+"\n", "users", "add", "--data-dir", dir, "--username", u[0], "--role", u[1], "--password-stdin"); code != 0 {
			t.Fatal(stderr)
		}
	}
	_, pid := s.post(t, s.token(t, "boss", pass), "Patient", `{"resourceType":"Patient","name":[{"family":"Glassbreaker"}]}`)
	locum := s.token(t, "locum", pass)
	read := func(reason string) int {
		req, _ := http.NewRequest("GET", "http://"+s.addr+"/fhir/Patient/"+pid, nil)
		req.Header.Set("Authorization", "Bearer "+locum)
		if reason != "" {
			req.Header.Set("X-Break-Glass", reason)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := read(""); got != 403 {
		t.Fatalf("without break-glass: %d", got)
	}
	if got := read("etreat"); got != 200 {
		t.Fatalf("break-glass ETREAT: %d", got)
	}
	if got := read("Glassbreaker collapsed in the lobby"); got != 200 {
		t.Fatalf("break-glass free text: %d", got)
	}
	out, stderr, code := ward(t, "", "audit", "break-glass", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "2 emergency accesses") || !strings.Contains(out, "ETREAT") || !strings.Contains(out, "text-") ||
		!strings.Contains(out, "Patient/"+pid) || !strings.Contains(out, "no-practitioner-link") || strings.Contains(out, "Glassbreaker") || strings.Contains(out, "lobby") {
		t.Fatalf("report: %d %s %s", code, out, stderr)
	}
	for _, c := range []struct {
		since, want string
		ok          bool
	}{
		{"2000-01-01", "2 emergency accesses", true},
		{"1h", "2 emergency accesses", true},
		{time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "0 emergency accesses", true},
		{"last tuesday", "--since", false},
	} {
		out, stderr, code := ward(t, "", "audit", "break-glass", "--data-dir", dir, "--since", c.since)
		if (code == 0) != c.ok || !strings.Contains(out+stderr, c.want) {
			t.Errorf("--since %s: %d %s %s", c.since, code, out, stderr)
		}
	}
}

func TestBreakGlassDetail(t *testing.T) {
	for _, c := range []struct{ in, code, over string }{
		{"break-glass:ETREAT:overrode:no-care-relationship", "ETREAT", "overrode no-care-relationship"},
		{"deleted;break-glass:text-0011223344556677:overrode:consent-deny:c1", "text-0011223344556677", "overrode consent-deny,c1"},
		{"break-glass:BTG", "BTG", ""},
		{"", "-", ""},
	} {
		if code, over := breakGlassDetail(c.in); code != c.code || over != c.over {
			t.Errorf("%q: %q %q", c.in, code, over)
		}
	}
}

// ward clients add registers confidential apps: --confidential prints a
// generated secret once (stored only hashed), --secret-stdin reads one,
// --jwks-file with --redirect-uri registers keys (private_key_jwt).
func TestClientsAddConfidential(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	initData(t, dir) // only serve, init and migrate create a data directory
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	os.WriteFile(jwks, []byte(`{"keys":[{"kty":"EC","kid":"k1","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}]}`), 0o600)
	appArgs := []string{"--redirect-uri", "https://app.example/cb", "--scope", "openid launch user/*.rs"}
	secret := strings.Repeat("k", 40)
	for _, c := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{"--client-id", "c0", "--confidential", "--scope", "system/*.rs", "--jwks-file", jwks}, "are for apps"},
		{"", append([]string{"--client-id", "c0", "--confidential", "--secret-stdin"}, appArgs...), "one of"},
		{"", append([]string{"--client-id", "c0", "--confidential", "--jwks-file", jwks}, appArgs...), "one of"},
		{"short\n", append([]string{"--client-id", "c0", "--secret-stdin"}, appArgs...), "--secret-stdin: a client secret has 32 to 512"},
	} {
		_, stderr, code := ward(t, c.stdin, append([]string{"clients", "add", "--data-dir", dir}, c.args...)...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d %s", c.args, code, stderr)
		}
	}
	out, stderr, code := ward(t, "", append([]string{"clients", "add", "--data-dir", dir, "--client-id", "c1", "--confidential"}, appArgs...)...)
	if code != 0 || !strings.Contains(out, "confidential app (client_secret_basic) c1 registered") || !strings.Contains(out, "client secret (shown once") {
		t.Fatalf("--confidential: %d %s %s", code, out, stderr)
	}
	generated := strings.TrimSpace(out[strings.LastIndex(out, ": ")+2:])
	out, stderr, code = ward(t, secret+"\n", append([]string{"clients", "add", "--data-dir", dir, "--client-id", "c2", "--secret-stdin"}, appArgs...)...)
	if code != 0 || !strings.Contains(out, "confidential app (client_secret_basic) c2") || strings.Contains(out, secret) {
		t.Fatalf("--secret-stdin: %d %s %s", code, out, stderr)
	}
	out, stderr, code = ward(t, "", append([]string{"clients", "add", "--data-dir", dir, "--client-id", "c3", "--jwks-file", jwks}, appArgs...)...)
	if code != 0 || !strings.Contains(out, "confidential app (private_key_jwt) c3") {
		t.Fatalf("--jwks-file with --redirect-uri: %d %s %s", code, out, stderr)
	}
	out, _, code = ward(t, "", "clients", "list", "--data-dir", dir)
	if code != 0 || !regexp.MustCompile(`c1 +app +client_secret_basic`).MatchString(out) || !regexp.MustCompile(`c3 +app +private_key_jwt`).MatchString(out) ||
		strings.Contains(out, generated) || strings.Contains(out, "argon2") {
		t.Errorf("clients list:\n%s", out)
	}
	// Only hashes are stored.
	cfg := config.Default()
	cfg.DataDir = dir
	st, err := app.OpenStore(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for id, plain := range map[string]string{"c1": generated, "c2": secret} {
		c, err := st.ClientByID(context.Background(), id)
		if err != nil || !strings.HasPrefix(c.SecretHash, "$argon2id$") || strings.Contains(c.SecretHash, plain) || !authn.VerifyPassword(c.SecretHash, plain) {
			t.Errorf("%s: stored %+v %v", id, c, err)
		}
	}
}

// initData creates the data directory dir with ward init.
func initData(t *testing.T, dir string) {
	t.Helper()
	if out, stderr, code := ward(t, "", "init", "--data-dir", dir); code != 0 {
		t.Fatalf("ward init: exit %d: %s %s", code, out, stderr)
	}
}
