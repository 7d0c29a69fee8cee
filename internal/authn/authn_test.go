package authn_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/wardhealth/ward/internal/authn"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/sqlite"
	"github.com/wardhealth/ward/internal/store/sqlstore"
	"github.com/wardhealth/ward/internal/store/storetest"
)

func TestCheckPassword(t *testing.T) {
	cases := []struct {
		user, pw string
		ok       bool
		why      string
	}{
		{"alice", "", false, "empty"},
		{"alice", "short", false, "at least 12"},
		{"alice", "elevenchars", false, "at least 12"},
		{"alicealicealice", "alicealicealice", false, "is the username"},
		{"alicealicealice", "ALICEALICEALICE", false, "is the username"},
		{"smoke", "smoke test passphrase 12345", true, ""},
		{"alice", "aaaaaaaaaaaaaaaa", false, "repeats"},
		{"alice", "password1234", false, "well-known"},
		{"alice", "\xff\xfe invalid utf8 xx", false, "UTF-8"},
		{"alice", strings.Repeat("ab", 600), false, "longer"},
		{"alice", "correct horse battery staple", true, ""},
		{"alice", "ünïcödé pässwörd", true, ""},
	}
	for _, c := range cases {
		err := authn.CheckPassword(c.user, c.pw)
		if c.ok != (err == nil) {
			t.Errorf("CheckPassword(%q, %q) = %v", c.user, c.pw, err)
			continue
		}
		if !c.ok && (!errors.Is(err, authn.ErrWeakPassword) || !strings.Contains(err.Error(), c.why)) {
			t.Errorf("CheckPassword(%q): %v, want mention of %q", c.pw, err, c.why)
		}
	}
}

func TestHashPassword(t *testing.T) {
	h, err := authn.HashPassword("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") || strings.Contains(h, "horse") {
		t.Fatalf("hash %q", h)
	}
	h2, _ := authn.HashPassword("correct horse battery staple")
	if h == h2 {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	if !authn.VerifyPassword(h, "correct horse battery staple") {
		t.Fatal("right password refused")
	}
	for _, bad := range []string{"correct horse battery stapl", "", "Correct horse battery staple"} {
		if authn.VerifyPassword(h, bad) {
			t.Fatalf("wrong password %q accepted", bad)
		}
	}
	for _, mangled := range []string{"", "$argon2id$", strings.Replace(h, "argon2id", "argon2i", 1), strings.Replace(h, "m=19456", "m=0", 1),
		strings.Replace(h, "t=2", "t=99", 1), h[:len(h)-5] + "!!!!!", "$bcrypt$whatever"} {
		if authn.VerifyPassword(mangled, "correct horse battery staple") {
			t.Fatalf("mangled hash %q accepted", mangled)
		}
	}
}

type env struct {
	st   store.Store
	keys *keys.Manager
	svc  *authn.Service
	now  *time.Time
}

// openKeyed opens a SQLite store at path with its key manager and the
// system data key id, closed when the test ends.
func openKeyed(t *testing.T, path string) (store.Store, *keys.Manager, string) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kek, _ := seal.NewKEK(bytes.Repeat([]byte{9}, 32))
	km, err := keys.New(ctx, st, kek, nil)
	if err != nil {
		t.Fatal(err)
	}
	sys, err := km.DataKey(ctx, keys.SystemTenant)
	if err != nil {
		t.Fatal(err)
	}
	return st, km, sys
}

func newEnv(t *testing.T, path string) *env {
	t.Helper()
	ctx := context.Background()
	st, km, sys := openKeyed(t, path)
	var err error
	now := time.Now()
	e := &env{st: st, keys: km, now: &now}
	e.svc, err = authn.New(ctx, st, km, authn.Options{Issuer: "https://ward.test", TTL: 15 * time.Minute, Tenant: "default", SealKeyID: sys, Now: func() time.Time { return *e.now }})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestIssueAndVerify(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "w.db"))
	ctx := context.Background()
	subj := authz.Subject{Tenant: "default", ID: "u1", Role: authz.RoleNurse}
	tok, err := e.svc.Issue(subj)
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.svc.Verify(ctx, tok.AccessToken)
	if err != nil || got.ID != "u1" || got.Role != authz.RoleNurse || got.Tenant != "default" {
		t.Fatalf("%+v %v", got, err)
	}
	// Cached, and still checked for expiry.
	if _, err := e.svc.Verify(ctx, tok.AccessToken); err != nil {
		t.Fatal(err)
	}
	*e.now = e.now.Add(16 * time.Minute)
	if _, err := e.svc.Verify(ctx, tok.AccessToken); !errors.Is(err, authn.ErrInvalidToken) {
		t.Fatalf("expired token accepted from cache: %v", err)
	}
	*e.now = time.Now()

	// Tokens signed by anyone else, or with another algorithm, issuer or
	// audience, are refused.
	other := newEnv(t, filepath.Join(t.TempDir(), "other.db"))
	foreign, _ := other.svc.Issue(subj)
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "u1", "tenant": "default", "role": "admin", "iss": "https://ward.test", "aud": "ward", "exp": time.Now().Add(time.Hour).Unix()})
	hsTok, _ := hs.SignedString([]byte("secret"))
	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "u1", "tenant": "default", "role": "admin", "iss": "https://ward.test", "aud": "ward", "exp": time.Now().Add(time.Hour).Unix()})
	noneTok, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	for name, bad := range map[string]string{
		"other server": foreign.AccessToken, "HS256": hsTok, "none": noneTok, "empty": "", "garbage": "a.b.c",
		"truncated": tok.AccessToken[:len(tok.AccessToken)-4],
	} {
		if _, err := e.svc.Verify(ctx, bad); !errors.Is(err, authn.ErrInvalidToken) {
			t.Errorf("%s: accepted (%v)", name, err)
		}
	}
}

// A key created by another node after this one started is found on first
// sight of its kid.
func TestKeyCreatedElsewhereIsLoaded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.db")
	a := newEnv(t, path)
	// Node b shares the database and KEK; give it a new key by deleting
	// nothing: it simply loads a's key. Then a rotates by creating a new
	// service after b started — simulate with a third handle creating a key.
	b := newEnv(t, path)
	tok, _ := a.svc.Issue(authz.Subject{Tenant: "default", ID: "u", Role: authz.RoleAdmin})
	if _, err := b.svc.Verify(context.Background(), tok.AccessToken); err != nil {
		t.Fatalf("node b refuses node a's token: %v", err)
	}
	if n := len(a.svc.JWKS()["keys"].([]map[string]string)); n != 1 {
		t.Fatalf("%d signing keys after two starts on one database, want 1", n)
	}
}

func TestPasswordGrantIsAudited(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "w.db"))
	ctx := context.Background()
	h, _ := authn.HashPassword("correct horse battery staple")
	must(t, e.st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewUser{User: &store.User{ID: "u1", Tenant: "default", Username: "nina", Role: "nurse", PasswordHash: h, Created: time.Now()}}}}))
	must(t, e.st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewUser{User: &store.User{ID: "u2", Tenant: "default", Username: "gone", Role: "nurse", PasswordHash: h, Created: time.Now(), Disabled: true}}}}))
	if _, err := e.svc.PasswordGrant(ctx, authn.PasswordRequest{RequestID: "r1", Username: "nina", Password: "wrong password here", Scope: ""}); !errors.Is(err, authn.ErrInvalidGrant) {
		t.Fatal(err)
	}
	if _, err := e.svc.PasswordGrant(ctx, authn.PasswordRequest{RequestID: "r2", Username: "nobody", Password: "wrong password here", Scope: ""}); !errors.Is(err, authn.ErrInvalidGrant) {
		t.Fatal(err)
	}
	if _, err := e.svc.PasswordGrant(ctx, authn.PasswordRequest{RequestID: "r3", Username: "gone", Password: "correct horse battery staple", Scope: ""}); !errors.Is(err, authn.ErrInvalidGrant) {
		t.Fatalf("disabled user logged in: %v", err)
	}
	tok, err := e.svc.PasswordGrant(ctx, authn.PasswordRequest{RequestID: "r4", Username: "nina", Password: "correct horse battery staple", Scope: ""})
	if err != nil {
		t.Fatal(err)
	}
	subj, err := e.svc.Verify(ctx, tok.AccessToken)
	if err != nil || subj.ID != "u1" || strings.Join(subj.Scopes, " ") != authn.DefaultScope {
		t.Fatalf("%+v %v", subj, err)
	}
	if _, err := e.svc.PasswordGrant(ctx, authn.PasswordRequest{RequestID: "r5", Username: "nina", Password: "correct horse battery staple", Scope: "user/*.frobnicate"}); !errors.Is(err, authn.ErrInvalidScope) {
		t.Fatalf("bad scope: %v", err)
	}
	tok, err = e.svc.PasswordGrant(ctx, authn.PasswordRequest{RequestID: "r6", Username: "nina", Password: "correct horse battery staple", Scope: "openid user/Observation.rs"})
	if err != nil {
		t.Fatal(err)
	}
	if subj, _ := e.svc.Verify(ctx, tok.AccessToken); strings.Join(subj.Scopes, " ") != "openid user/Observation.rs" {
		t.Fatalf("requested scopes not carried: %v", subj.Scopes)
	}
	var logins []string
	for _, r := range storetest.Records(t, e.st) {
		if r.Action == "login" {
			logins = append(logins, r.RequestID+":"+r.Actor+":"+r.Outcome.String())
			if strings.Contains(r.Detail+r.Actor, "nina") || strings.Contains(r.Detail+r.Actor, "wrong") {
				t.Errorf("login record carries a typed name or password: %+v", r)
			}
		}
	}
	if len(logins) != 5 || !strings.HasPrefix(logins[0], "r1:u1:") || !strings.HasPrefix(logins[1], "r2::") || !strings.HasPrefix(logins[3], "r4:u1:") {
		t.Fatalf("login records %v", logins)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func BenchmarkVerifyCached(b *testing.B) {
	e := newEnvB(b)
	tok, _ := e.svc.Issue(authz.Subject{Tenant: "default", ID: "u", Role: authz.RolePhysician})
	ctx := context.Background()
	for b.Loop() {
		if _, err := e.svc.Verify(ctx, tok.AccessToken); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyUncached measures the RSA path: each token is new to the
// cache (issuing it is excluded from the timing).
func BenchmarkVerifyUncached(b *testing.B) {
	e := newEnvB(b)
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		tok, _ := e.svc.Issue(authz.Subject{Tenant: "default", ID: "u", Role: authz.RolePhysician})
		b.StartTimer()
		if _, err := e.svc.Verify(ctx, tok.AccessToken); err != nil {
			b.Fatal(err)
		}
	}
}

func newEnvB(b *testing.B) *env {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "w.db"), sqlstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	kek, _ := seal.NewKEK(bytes.Repeat([]byte{9}, 32))
	km, _ := keys.New(ctx, st, kek, nil)
	sys, _ := km.DataKey(ctx, keys.SystemTenant)
	svc, err := authn.New(ctx, st, km, authn.Options{Issuer: "w", Tenant: "default", SealKeyID: sys})
	if err != nil {
		b.Fatal(err)
	}
	return &env{st: st, keys: km, svc: svc}
}

func TestRotate(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "w.db"))
	ctx := context.Background()
	subj := authz.Subject{Tenant: "default", ID: "u1", Role: authz.RoleNurse, Scopes: []string{authn.DefaultScope}}
	before, _ := e.svc.Issue(subj)
	kid, err := e.svc.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := e.svc.Issue(subj)
	if kidOf(t, before.AccessToken) == kidOf(t, after.AccessToken) || kidOf(t, after.AccessToken) != kid {
		t.Fatal("the new key does not sign")
	}
	for _, tok := range []string{before.AccessToken, after.AccessToken} {
		if _, err := e.svc.Verify(ctx, tok); err != nil {
			t.Fatalf("token no longer verifies after rotation: %v", err)
		}
	}
	if n := len(e.svc.JWKS()["keys"].([]map[string]string)); n != 2 {
		t.Fatalf("JWKS has %d keys, want 2", n)
	}
}

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := parsed.Header["kid"].(string)
	return kid
}

func TestLockout(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "w.db"))
	ctx := context.Background()
	h, _ := authn.HashPassword("correct horse battery staple")
	must(t, e.st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewUser{User: &store.User{ID: "u1", Tenant: "default", Username: "nina", Role: "nurse", PasswordHash: h, Created: time.Now()}}}}))
	right, wrong := "correct horse battery staple", "wrong password here"
	login := func(pw string) error {
		_, err := e.svc.PasswordGrant(ctx, authn.PasswordRequest{RequestID: "r", Username: "nina", Password: pw})
		return err
	}
	state := func() *store.User { u, _ := e.st.UserByName(ctx, "default", "nina"); return u }

	// Failures below the threshold do not lock, and a success resets.
	for range authn.LockoutThreshold - 1 {
		if err := login(wrong); !errors.Is(err, authn.ErrInvalidGrant) {
			t.Fatal(err)
		}
	}
	if u := state(); u.FailedLogins != authn.LockoutThreshold-1 || !u.LockedUntil.IsZero() {
		t.Fatalf("%+v", u)
	}
	if err := login(right); err != nil {
		t.Fatalf("login below the threshold: %v", err)
	}
	if u := state(); u.FailedLogins != 0 {
		t.Fatalf("success did not reset: %+v", u)
	}
	// The threshold locks; the right password is refused while locked.
	for range authn.LockoutThreshold {
		login(wrong)
	}
	u := state()
	if want := e.now.Add(authn.LockoutBase); !u.LockedUntil.Equal(want.UTC().Truncate(time.Microsecond)) {
		t.Fatalf("locked until %v, want %v", u.LockedUntil, want)
	}
	if err := login(right); !errors.Is(err, authn.ErrInvalidGrant) {
		t.Fatalf("locked account logged in: %v", err)
	}
	// Each further failure after the lock ends doubles it.
	*e.now = e.now.Add(authn.LockoutBase + time.Second)
	login(wrong)
	if u := state(); !u.LockedUntil.Equal(e.now.Add(2 * authn.LockoutBase).UTC().Truncate(time.Microsecond)) {
		t.Fatalf("second lock until %v", u.LockedUntil)
	}
	// Capped.
	for range 20 {
		*e.now = e.now.Add(2 * authn.LockoutMax)
		login(wrong)
	}
	// (Stored to the microsecond.)
	if d := state().LockedUntil.Sub(*e.now); d > authn.LockoutMax || d < authn.LockoutMax-time.Microsecond {
		t.Fatalf("lock not capped: %v", d)
	}
	// After the lock the right password works and resets everything.
	*e.now = e.now.Add(authn.LockoutMax + time.Second)
	if err := login(right); err != nil {
		t.Fatal(err)
	}
	if u := state(); u.FailedLogins != 0 || !u.LockedUntil.IsZero() {
		t.Fatalf("%+v", u)
	}
	var locked int
	for _, r := range storetest.Records(t, e.st) {
		if r.Action == "login" && r.Detail == "locked" {
			locked++
		}
	}
	if locked != 1 {
		t.Fatalf("%d refusals while locked audited, want 1", locked)
	}
}

func TestTOTP(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "w.db"))
	ctx := context.Background()
	h, _ := authn.HashPassword("correct horse battery staple")
	must(t, e.st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewUser{User: &store.User{ID: "u1", Tenant: "default", Username: "nina", Role: "nurse", PasswordHash: h, Created: time.Now()}}}}))
	if _, err := e.svc.EnrollTOTP(ctx, "nobody"); !errors.Is(err, authn.ErrUnknownUser) {
		t.Fatalf("enroll unknown user: %v", err)
	}
	uri, err := e.svc.EnrollTOTP(ctx, "nina")
	if err != nil {
		t.Fatal(err)
	}
	key, err := otp.NewKeyFromURL(uri)
	if err != nil || key.Issuer() != "Ward" || key.AccountName() != "nina" {
		t.Fatalf("uri %q: %v", uri, err)
	}
	// The secret is stored sealed.
	u, _ := e.st.UserByName(ctx, "default", "nina")
	if bytes.Contains(u.TOTPSecret, []byte(key.Secret())) {
		t.Fatal("TOTP secret stored in the clear")
	}
	*e.now = time.Unix(1_800_000_000, 0)
	code := func(at time.Time) string {
		c, err := totp.GenerateCode(key.Secret(), at)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	grant := func(c string) error {
		_, err := e.svc.PasswordGrant(ctx, authn.PasswordRequest{RequestID: "r", Username: "nina", Password: "correct horse battery staple", TOTP: c})
		return err
	}
	if err := grant(""); !errors.Is(err, authn.ErrInvalidGrant) {
		t.Fatalf("no code: %v", err)
	}
	if err := grant("000000"); !errors.Is(err, authn.ErrInvalidGrant) && code(*e.now) != "000000" {
		t.Fatalf("wrong code: %v", err)
	}
	if err := grant(code(e.now.Add(-90 * time.Second))); !errors.Is(err, authn.ErrInvalidGrant) {
		t.Fatalf("code three steps old accepted: %v", err)
	}
	if err := grant(code(e.now.Add(-30 * time.Second))); err != nil {
		t.Fatalf("code one step old (clock skew): %v", err)
	}
	if err := grant(code(*e.now)); err != nil {
		t.Fatalf("current code: %v", err)
	}
	if err := grant(code(*e.now)); !errors.Is(err, authn.ErrInvalidGrant) {
		t.Fatalf("replayed code accepted: %v", err)
	}
	// A wrong password with a right code is still refused.
	_, err = e.svc.PasswordGrant(ctx, authn.PasswordRequest{Username: "nina", Password: "wrong password here", TOTP: code(e.now.Add(30 * time.Second))})
	if !errors.Is(err, authn.ErrInvalidGrant) {
		t.Fatal(err)
	}
	var details []string
	for _, r := range storetest.Records(t, e.st) {
		if r.Action == "login" || r.Action == "totp-enroll" {
			details = append(details, r.Action+":"+r.Detail)
		}
	}
	want := "totp-enroll: login:totp-required login:totp-invalid login:totp-invalid login:token-issued login:token-issued login:totp-invalid login:invalid-credentials"
	if strings.Join(details, " ") != want {
		t.Fatalf("ledger %v", details)
	}
}

func TestParseJWKS(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	enc := base64.RawURLEncoding.EncodeToString
	pad := func(b []byte) []byte { return append(make([]byte, 32-len(b)), b...) }
	rsaJWK := func(k *rsa.PublicKey) string {
		return fmt.Sprintf(`{"kty":"RSA","kid":"r","n":%q,"e":"AQAB"}`, enc(k.N.Bytes()))
	}
	ecJWK := fmt.Sprintf(`{"kty":"EC","kid":"e","crv":"P-256","x":%q,"y":%q}`, enc(pad(ek.X.Bytes())), enc(pad(ek.Y.Bytes())))
	offCurve := fmt.Sprintf(`{"kty":"EC","kid":"e","crv":"P-256","x":%q,"y":%q}`, enc(pad(ek.X.Bytes())), enc(pad(big.NewInt(5).Bytes())))
	cases := []struct {
		name, jwks string
		keys       int
		bad        string
	}{
		{"rsa and ec", `{"keys":[` + rsaJWK(&rk.PublicKey) + `,` + ecJWK + `]}`, 2, ""},
		{"short rsa", `{"keys":[` + rsaJWK(&small.PublicKey) + `]}`, 0, "2048"},
		{"private member", `{"keys":[{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB","d":"AQAB"}]}`, 0, "private"},
		{"off the curve", `{"keys":[` + offCurve + `]}`, 0, "not a point"},
		{"unknown curve", `{"keys":[{"kty":"EC","crv":"P-521","x":"AA","y":"AA"}]}`, 0, "curve"},
		{"symmetric", `{"keys":[{"kty":"oct","k":"AAAA"}]}`, 0, "kty"},
		{"empty", `{"keys":[]}`, 0, "no keys"},
		{"not json", `keys`, 0, "not JSON"},
	}
	for _, c := range cases {
		keys, err := authn.ParseJWKS([]byte(c.jwks))
		if c.bad == "" {
			if err != nil || len(keys) != c.keys {
				t.Errorf("%s: %d keys, %v", c.name, len(keys), err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.bad) {
			t.Errorf("%s: %v, want error about %q", c.name, err, c.bad)
		}
	}
}

func TestRevocationReachesOtherNodes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.db")
	a := newEnv(t, path)
	ctx := context.Background()
	tok, _ := a.svc.Issue(authz.Subject{Tenant: "default", ID: "u1", Role: authz.RoleNurse, Scopes: []string{authn.DefaultScope}})
	if _, err := a.svc.Verify(ctx, tok.AccessToken); err != nil {
		t.Fatal(err)
	}
	if err := a.svc.Revoke(ctx, "r", tok.AccessToken); err != nil {
		t.Fatal(err)
	}
	if _, err := a.svc.Verify(ctx, tok.AccessToken); !errors.Is(err, authn.ErrInvalidToken) {
		t.Fatalf("revoked token accepted by the node that revoked it: %v", err)
	}
	// A second node on the same database (its revocation view is loaded
	// on first use, then refreshed every few seconds).
	b := newEnv(t, path)
	if _, err := b.svc.Verify(ctx, tok.AccessToken); !errors.Is(err, authn.ErrInvalidToken) {
		t.Fatalf("revoked token accepted by another node: %v", err)
	}
	if m := b.svc.Introspect(ctx, tok.AccessToken); m["active"] != false {
		t.Fatalf("introspection: %v", m)
	}
}

// The user's links and clearances travel in the token as SMART claims and
// come back as the Subject's fields.
func TestTokenCarriesLinks(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "w.db"))
	ctx := context.Background()
	cases := []struct {
		name string
		in   *store.User
		role authz.Role
		want authz.Subject
	}{
		{"physician", &store.User{ID: "u1", Tenant: "default", Practitioner: "pr-1", Patient: "ignored", Clearances: []string{"R", "HIV"}}, authz.RolePhysician,
			authz.Subject{Tenant: "default", ID: "u1", Role: authz.RolePhysician, Practitioner: "pr-1", Clearances: []string{"R", "HIV"}}},
		{"nurse", &store.User{ID: "u2", Tenant: "default", Practitioner: "pr-2"}, authz.RoleNurse,
			authz.Subject{Tenant: "default", ID: "u2", Role: authz.RoleNurse, Practitioner: "pr-2"}},
		{"patient", &store.User{ID: "u3", Tenant: "default", Patient: "pa-1", Practitioner: "ignored"}, authz.RoleUser,
			authz.Subject{Tenant: "default", ID: "u3", Role: authz.RoleUser, Patient: "pa-1"}},
		{"unlinked admin", &store.User{ID: "u4", Tenant: "default", Practitioner: "pr-9"}, authz.RoleAdmin,
			authz.Subject{Tenant: "default", ID: "u4", Role: authz.RoleAdmin}},
		{"researcher", &store.User{ID: "u5", Tenant: "default", Practitioner: "pr-5"}, authz.RolePhysician,
			authz.Subject{Tenant: "default", ID: "u5", Role: authz.RolePhysician, Practitioner: "pr-5", Purpose: "HRESCH"}},
	}
	for _, c := range cases {
		subj := authn.UserSubject(c.in, c.role, "openid user/*.rs")
		subj.Purpose = c.want.Purpose
		tok, err := e.svc.Issue(subj)
		must(t, err)
		got, err := e.svc.Verify(ctx, tok.AccessToken)
		must(t, err)
		c.want.Scopes = []string{"openid", "user/*.rs"}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
		var claims map[string]any
		parts := strings.Split(tok.AccessToken, ".")
		raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
		must(t, json.Unmarshal(raw, &claims))
		switch c.role {
		case authz.RolePhysician, authz.RoleNurse:
			if claims["fhirUser"] != "Practitioner/"+c.in.Practitioner || claims["patient"] != nil {
				t.Errorf("%s: claims %v", c.name, claims)
			}
		case authz.RoleUser:
			if claims["fhirUser"] != "Patient/"+c.in.Patient || claims["patient"] != c.in.Patient {
				t.Errorf("%s: claims %v", c.name, claims)
			}
		}
	}
}
