package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The commands answer help and mistakes clearly: help on standard output
// with exit 0; a bad flag in one line with a hint, exit 2; --version.
func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-version"}, {"version"}} {
		out, stderr, code := ward(t, "", args...)
		if code != 0 || !strings.HasPrefix(out, "ward ") || stderr != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, stderr)
		}
	}
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		out, stderr, code := ward(t, "", args...)
		if code != 0 || !strings.Contains(out, "commands:") || stderr != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, stderr)
		}
	}
	for _, args := range [][]string{{"serve", "--help"}, {"serve", "-h"}, {"help", "serve"}} {
		out, stderr, code := ward(t, "", args...)
		if code != 0 || stderr != "" || !strings.Contains(out, "-addr host:port") {
			t.Fatalf("%v: exit %d, stderr %q, stdout:\n%s", args, code, stderr, out)
		}
		// Real defaults and environment variables; no word of the doc
		// taken for the argument's type.
		for _, want := range []string{"(default 127.0.0.1:8080)", "env WARD_ADDR", "env WARD_SEARCH_LEAKY_INDEX", "(default ward-data)", "(default 15m0s)"} {
			if !strings.Contains(out, want) {
				t.Errorf("serve -h lacks %q", want)
			}
		}
		if strings.Contains(out, "-search-leaky-index ward") || strings.Contains(out, "`") {
			t.Errorf("serve -h misreads a quoted word as a type:\n%s", out)
		}
	}
	for _, args := range [][]string{{"help", "users"}, {"help", "keys"}, {"help", "audit"}, {"help", "audit", "verify"}, {"users", "add", "-h"}} {
		if out, stderr, code := ward(t, "", args...); code != 0 || out == "" || stderr != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, stderr)
		}
	}
	if out, _, _ := ward(t, "", "help", "users", "add"); !strings.Contains(out, "the tenant the user belongs to") || strings.Contains(out, "tenant of password logins\n") {
		t.Errorf("users add --tenant is described as: %s", out)
	}
	// A bad flag: one line and a hint, exit 2.
	out, stderr, code := ward(t, "", "serve", "--no-such-flag")
	if code != 2 || out != "" || strings.Count(stderr, "\n") != 2 || !strings.Contains(stderr, "-no-such-flag") || !strings.Contains(stderr, "ward serve -h") {
		t.Errorf("unknown flag: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if _, stderr, code := ward(t, "", "frobnicate"); code != 2 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "ward help") {
		t.Errorf("unknown command: exit %d: %q", code, stderr)
	}
	// ward audit (and audit list) lists the subcommands.
	for _, args := range [][]string{{"audit"}, {"audit", "list"}} {
		out, stderr, code := ward(t, "", args...)
		if code != 0 || stderr != "" || !strings.Contains(out, "verify") || !strings.Contains(out, "break-glass") || !strings.Contains(out, "governance") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, stderr)
		}
	}
}

// ward config is one aligned column of names and one of values.
func TestConfigAligned(t *testing.T) {
	out, _, code := ward(t, "", "config")
	if code != 0 {
		t.Fatal(code)
	}
	col := -1
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		name := strings.Fields(line)[0]
		rest := line[len(name):]
		c := len(name) + len(rest) - len(strings.TrimLeft(rest, " "))
		if strings.TrimSpace(rest) == "" {
			continue // an empty value
		}
		if col >= 0 && c != col {
			t.Fatalf("value of %s starts at column %d, not %d:\n%s", name, c, col, out)
		}
		col = c
	}
}

// Commands other than serve, init and migrate refuse a data directory
// that does not exist, and create nothing; configuration is validated
// before serve creates anything.
func TestMissingDataRefused(t *testing.T) {
	for _, args := range [][]string{
		{"users", "list"}, {"users", "add", "--username", "u", "--role", "admin", "--password-stdin"},
		{"tenants", "list"}, {"clients", "list"}, {"audit", "verify"}, {"audit", "break-glass"},
		{"audit", "governance"}, {"import", "/dev/null"}, {"reindex"}, {"stats"}, {"keys", "rotate"},
		{"explain", "Patient?name=x"},
	} {
		dir := filepath.Join(t.TempDir(), "mistyped")
		full := append(append([]string{}, args...), "--data-dir", dir)
		if args[0] == "import" || args[0] == "explain" {
			full = []string{args[0], "--data-dir", dir, args[1]}
		}
		out, stderr, code := ward(t, "long enough password 1\n", full...)
		if code != 1 || !strings.Contains(stderr, "no database") || !strings.Contains(stderr, "--data-dir") {
			t.Errorf("%v: exit %d: %s %s", args, code, out, stderr)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("%v created %s", args, dir)
		}
	}
	// serve with a bad address stops before creating the data directory
	// or a key.
	dir := filepath.Join(t.TempDir(), "d")
	for _, env := range [][]string{{"WARD_ADDR=notanaddr"}, {"WARD_ADDR=127.0.0.1:http"}, {"WARD_TOKEN_TTL=forever"}} {
		_, stderr, code := wardWith(t, env, "", "serve", "--data-dir", dir)
		if code != 1 || !strings.Contains(stderr, strings.SplitN(env[0], "=", 2)[0]) {
			t.Errorf("%v: exit %d: %s", env, code, stderr)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Fatalf("%v: serve created %s before failing", env, dir)
		}
	}
	if _, stderr, code := ward(t, "", "serve", "--data-dir", dir, "--addr", "nope"); code != 2 || !strings.Contains(stderr, "host:port") {
		t.Errorf("--addr nope: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatalf("serve --addr nope created %s", dir)
	}
	// init creates it; then the commands work.
	if out, stderr, code := ward(t, "", "init", "--data-dir", dir); code != 0 || !strings.Contains(out, "ready") {
		t.Fatalf("init: %d %s %s", code, out, stderr)
	}
	if _, stderr, code := ward(t, "", "users", "list", "--data-dir", dir); code != 0 {
		t.Fatalf("users list after init: %s", stderr)
	}
}

// users add warns that a physician or nurse without --practitioner sees
// no patients; serve prints the first-admin hint only while the tenant has
// no admin.
func TestUnlinkedClinicianAndAdminHint(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	initData(t, dir)
	s := serve(t, dir)
	if !strings.Contains(s.stdout.String(), "no admin yet") {
		t.Errorf("no admin: no hint: %s", s.stdout)
	}
	for _, role := range []string{"physician", "nurse"} {
		_, stderr, code := ward(t, pass+"\n", "users", "add", "--data-dir", dir, "--username", "u-"+role, "--role", role, "--password-stdin")
		if code != 0 || !strings.Contains(stderr, "sees no patients") || !strings.Contains(stderr, "--practitioner") {
			t.Errorf("%s without --practitioner: exit %d, stderr %q", role, code, stderr)
		}
	}
	if _, stderr, code := ward(t, pass+"\n", "users", "add", "--data-dir", dir, "--username", "boss", "--role", "admin", "--password-stdin"); code != 0 || strings.Contains(stderr, "warning") {
		t.Errorf("admin: exit %d, stderr %q", code, stderr)
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s2 := serve(t, dir)
	if strings.Contains(s2.stdout.String(), "admin") {
		t.Errorf("an admin exists, yet: %s", s2.stdout)
	}
}

// keys generate prints a key Ward accepts as WARD_KEY, or writes a 0600
// file; it never overwrites one.
func TestKeysGenerate(t *testing.T) {
	out, stderr, code := ward(t, "", "keys", "generate")
	key := strings.TrimSpace(out)
	if code != 0 || len(key) != 44 {
		t.Fatalf("keys generate: %d %q %s", code, out, stderr)
	}
	if _, stderr, code := wardWith(t, []string{"WARD_KEY=" + key}, "", "config"); code != 0 {
		t.Fatalf("the generated key is refused: %s", stderr)
	}
	f := filepath.Join(t.TempDir(), "k")
	if _, stderr, code := ward(t, "", "keys", "generate", "--out", f); code != 0 {
		t.Fatal(stderr)
	}
	if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st.Mode(), err)
	}
	if _, _, code := ward(t, "", "keys", "generate", "--out", f); code == 0 {
		t.Fatal("keys generate overwrote a key file")
	}
}

// import: shared files first, a progress line without a terminal, and a
// hint naming the shared files when conditional references find nothing.
func TestImportExplainsItself(t *testing.T) {
	files := []string{"fhir/Ann_1.json", "fhir/hospitalInformation1.json", "fhir/practitionerInformation1.json", "fhir/Bob_2.json"}
	src := t.TempDir()
	var paths []string
	for _, f := range files {
		p := filepath.Join(src, f)
		os.MkdirAll(filepath.Dir(p), 0o700)
		os.WriteFile(p, []byte("{}"), 0o600)
		paths = append(paths, p)
	}
	got, err := importFiles([]string{src})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || !isShared(got[0]) || !isShared(got[1]) || isShared(got[2]) || isShared(got[3]) {
		t.Fatalf("order: %v", got)
	}
	if g := groupByDir(got); len(g) != 2 || len(g[0]) != 2 {
		t.Fatalf("groups: %v", g)
	}
	if !isShared("/x/00-shared/a.json") || isShared("/x/patients/a.json") {
		t.Fatal("isShared")
	}

	// A patient Bundle whose conditional reference finds no Organization.
	dir := filepath.Join(t.TempDir(), "data")
	initData(t, dir)
	pat := t.TempDir()
	os.WriteFile(filepath.Join(pat, "Ann_1.json"), []byte(`{"resourceType":"Bundle","type":"transaction","entry":[
{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient","name":[{"family":"Zyxwvutsonian"}],"managingOrganization":{"reference":"Organization?identifier=https://github.com/synthetichealth/synthea|abc"}},"request":{"method":"POST","url":"Patient"}}]}`), 0o600)
	out, stderr, code := ward(t, "", "import", "--data-dir", dir, pat)
	if code != 1 || !strings.Contains(stderr, "hospitalInformation") || !strings.Contains(stderr, "00-shared") {
		t.Fatalf("exit %d: %s %s", code, out, stderr)
	}
	if strings.Contains(stderr, "Zyxwvutsonian") || strings.Contains(stderr, "\r") {
		t.Fatalf("import echoed PHI or a terminal line off a terminal: %q", stderr)
	}
}

// Without a terminal, import prints whole progress lines as it goes.
func TestImportProgressWithoutTerminal(t *testing.T) {
	defer func(d time.Duration) { progressEvery = d }(progressEvery)
	progressEvery = time.Millisecond
	dir := filepath.Join(t.TempDir(), "data")
	initData(t, dir)
	src := t.TempDir()
	for i := range 3 {
		var b strings.Builder
		for j := range 200 {
			fmt.Fprintf(&b, `{"resourceType":"Practitioner","id":"pr-%d-%d"}`+"\n", i, j)
		}
		os.WriteFile(filepath.Join(src, fmt.Sprintf("p%d.ndjson", i)), []byte(b.String()), 0o600)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"import", "--workers", "1", "--data-dir", dir, src}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s %s", code, out.String(), errb.String())
	}
	if !strings.Contains(errb.String(), "import: ") || strings.Contains(errb.String(), "\r") || !strings.HasSuffix(strings.Split(errb.String(), "import: ")[1], "\n") && !strings.Contains(strings.Split(errb.String(), "import: ")[1], "\n") {
		t.Fatalf("progress: %q", errb.String())
	}
}
