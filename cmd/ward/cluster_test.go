package main

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wardhealth/ward/internal/invalidation/natstest"
)

// `ward keys rotate` and `ward users disable` run with WARD_NATS_URL tell
// the running servers. After a rotation the next token a server issues is
// signed by the new key at once (without the bus a server looks for a newer
// key once a minute), and a server told nothing (off the bus) still
// verifies tokens of the new key.
func TestCLIChangesReachRunningServers(t *testing.T) {
	env := []string{"WARD_NATS_URL=" + natstest.URL(t), "WARD_NATS_PREFIX=" + natstest.Prefix()}
	dir := t.TempDir() + "/d"
	initData(t, dir) // only serve, init and migrate create a data directory
	if _, stderr, code := ward(t, pass+"\n", "users", "add", "--data-dir", dir, "--username", "smoke", "--role", "admin", "--password-stdin"); code != 0 {
		t.Fatal(stderr)
	}
	onBus := serveWith(t, dir, env)
	offBus := serve(t, dir)
	before := kid(t, onBus.token(t, "smoke", pass))
	out, stderr, code := wardWith(t, env, "", "keys", "rotate", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "at once") {
		t.Fatalf("keys rotate: %d %s %s", code, out, stderr)
	}
	var tok string
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if tok = onBus.token(t, "smoke", pass); kid(t, tok) != before { // the message may still be on its way
			break
		}
	}
	if kid(t, tok) == before {
		t.Fatal("the server on the bus still signs with the old key")
	}
	if s, _ := offBus.get(t, tok, "/fhir/Practitioner"); s != 200 {
		t.Fatalf("a server that never heard of the new key refuses its token: %d", s)
	}

	// `ward users disable` on the bus: the running server refuses the
	// user's token on the next requests (its own refresh is 5 s).
	if out, stderr, code := wardWith(t, env, "", "users", "disable", "--data-dir", dir, "--username", "smoke"); code != 0 {
		t.Fatalf("users disable: %d %s %s", code, out, stderr)
	}
	s := 0
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if s, _ = onBus.get(t, tok, "/fhir/Practitioner"); s == 401 {
			break
		}
	}
	if s != 401 {
		t.Fatalf("the server on the bus still accepts a disabled user's token: %d", s)
	}
}

func kid(t *testing.T, tok string) string {
	t.Helper()
	p, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := p.Header["kid"].(string)
	return k
}
