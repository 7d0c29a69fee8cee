package authn_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wardhealth/ward/internal/authn"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/store"
)

func TestParseIssuers(t *testing.T) {
	ok := `{"issuer":"https://idp.example","audience":"ward","tenant":"default","role_claim":"groups","roles":{"doctors":"physician"}}`
	for _, c := range []struct {
		name, json, want string
	}{
		{"good", `[` + ok + `]`, ""},
		{"not an array", ok, "cannot unmarshal"},
		{"unknown key", `[{"issuer":"https://idp.example","audiance":"ward"}]`, "unknown field"},
		{"http issuer", `[` + strings.Replace(ok, "https://idp", "http://idp", 1) + `]`, "https URL"},
		{"loopback http", `[` + strings.Replace(ok, "https://idp.example", "http://127.0.0.1:9", 1) + `]`, ""},
		{"twice", `[` + ok + `,` + ok + `]`, "listed twice"},
		{"no audience", `[` + strings.Replace(ok, `"audience":"ward",`, "", 1) + `]`, "audience is required"},
		{"alg none", `[` + strings.Replace(ok, `"tenant"`, `"algorithms":["none"],"tenant"`, 1) + `]`, "algorithm"},
		{"HS256", `[` + strings.Replace(ok, `"tenant"`, `"algorithms":["HS256"],"tenant"`, 1) + `]`, "algorithm"},
		{"both tenants", `[` + strings.Replace(ok, `"tenant":"default"`, `"tenant":"default","tenant_claim":"t"`, 1) + `]`, "one of them"},
		{"no tenant", `[` + strings.Replace(ok, `"tenant":"default",`, "", 1) + `]`, "one of them"},
		{"bad tenant", `[` + strings.Replace(ok, `"tenant":"default"`, `"tenant":"Default!"`, 1) + `]`, "not a tenant id"},
		{"no roles", `[` + strings.Replace(ok, `"roles":{"doctors":"physician"}`, `"roles":{}`, 1) + `]`, "roles are required"},
		{"unknown role", `[` + strings.Replace(ok, `"physician"}`, `"root"}`, 1) + `]`, "is not admin"},
		{"bad scope", `[` + strings.Replace(ok, `"tenant"`, `"scope":"user/x.zz","tenant"`, 1) + `]`, "scope"},
		{"bad jwks_url", `[` + strings.Replace(ok, `"tenant"`, `"jwks_url":"ftp://x","tenant"`, 1) + `]`, "jwks_url"},
	} {
		got, err := authn.ParseIssuers([]byte(c.json))
		if c.want == "" {
			if err != nil || len(got) != 1 || got[0].Scope != authn.DefaultScope || got[0].Algorithms[0] != "RS256" {
				t.Errorf("%s: %+v %v", c.name, got, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// A key the issuer adds later is fetched when a token names it (here with
// the rate limit lifted), through a configured jwks_url.
func TestExternalIssuerKeyRotation(t *testing.T) {
	defer authn.SetJWKSMinRefresh(0)()
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	var mu sync.Mutex
	published := map[string]*rsa.PrivateKey{"k1": k1}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		var keys []string
		for kid, k := range published {
			keys = append(keys, fmt.Sprintf(`{"kty":"RSA","kid":%q,"n":%q,"e":%q}`, kid,
				base64.RawURLEncoding.EncodeToString(k.N.Bytes()), base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes())))
		}
		fmt.Fprintf(w, `{"keys":[%s]}`, strings.Join(keys, ","))
	}))
	defer srv.Close()
	e := newEnvWith(t, authn.IssuerConfig{Issuer: "https://idp.example", Audience: "ward", JWKSURL: srv.URL + "/jwks",
		Algorithms: []string{"RS256"}, Tenant: "default", RoleClaim: "role", Roles: map[string]string{"nurse": "nurse"}, Scope: "user/*.rs"})
	sign := func(k *rsa.PrivateKey, kid string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": "https://idp.example", "aud": "ward", "sub": "n1", "role": "nurse", "exp": time.Now().Add(time.Minute).Unix()})
		tok.Header["kid"] = kid
		s, _ := tok.SignedString(k)
		return s
	}
	ctx := context.Background()
	subj, err := e.svc.Verify(ctx, sign(k1, "k1"))
	if err != nil || subj.Role != authz.RoleNurse || subj.Tenant != "default" || !strings.HasPrefix(subj.ID, "ext/") || strings.Join(subj.Scopes, " ") != "user/*.rs" {
		t.Fatalf("k1: %+v %v", subj, err)
	}
	if _, err := e.svc.Verify(ctx, sign(k2, "k2")); !errors.Is(err, authn.ErrInvalidToken) {
		t.Fatalf("k2 before it is published: %v", err)
	}
	mu.Lock()
	published["k2"] = k2
	mu.Unlock()
	if _, err := e.svc.Verify(ctx, sign(k2, "k2")); err != nil {
		t.Fatalf("k2 after it is published: %v", err)
	}
	// The same sub always maps to the same id; another sub to another.
	a, _ := e.svc.Verify(ctx, sign(k1, "k1"))
	if a.ID != subj.ID {
		t.Fatalf("ids differ: %s %s", a.ID, subj.ID)
	}
	// Revocation works for external tokens too.
	tok := sign(k1, "k1")
	must(t, e.svc.Revoke(ctx, "r", tok))
	if _, err := e.svc.Verify(ctx, tok); !errors.Is(err, authn.ErrInvalidToken) {
		t.Fatalf("revoked external token: %v", err)
	}
}

func newEnvWith(t *testing.T, ext ...authn.IssuerConfig) *env {
	t.Helper()
	e := newEnv(t, filepath.Join(t.TempDir(), "w.db"))
	sys, err := e.keys.DataKey(context.Background(), keys.SystemTenant)
	if err != nil {
		t.Fatal(err)
	}
	e.svc, err = authn.New(context.Background(), e.st, e.keys, authn.Options{Issuer: "https://ward.test", TTL: 15 * time.Minute, Tenant: "default",
		SealKeyID: sys, Now: func() time.Time { return *e.now }, External: ext})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Codes expire after a minute and login forms after ten; a form only
// works with the browser binding it was issued for.
func TestAuthorizationCodeLifetimes(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "w.db"))
	ctx := context.Background()
	h, _ := authn.HashPassword("correct horse battery staple")
	must(t, e.st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewUser{User: &store.User{ID: "u1", Tenant: "default", Username: "nina", Role: "nurse", PasswordHash: h, Created: time.Now()}}}}))
	if _, err := authn.AddClient(ctx, e.st, authn.Actor{ID: "t", Role: "system"}, authn.NewClient{ID: "app", Tenant: "default",
		Scope: "openid user/*.rs patient/Observation.rs", RedirectURIs: []string{"https://app.example/cb"}}); err != nil {
		t.Fatal(err)
	}
	verifier := strings.Repeat("a", 50)
	sum := sha256.Sum256([]byte(verifier))
	start := func(scope string) (authn.LoginPage, error) {
		return e.svc.StartAuthorize(ctx, authn.AuthorizeRequest{ResponseType: "code", ClientID: "app", RedirectURI: "https://app.example/cb",
			Scope: scope, State: "s", CodeChallenge: base64.RawURLEncoding.EncodeToString(sum[:]), CodeChallengeMethod: "S256",
			Aud: "https://ward.test/fhir", Audience: "https://ward.test/fhir", Binding: "browser-1"})
	}
	for _, c := range []struct {
		scope string
		ok    bool
	}{
		{"", true}, {"openid", true}, {"user/Patient.rs", true}, {"user/Patient.r", true}, {"user/Patient.read", true},
		{"patient/Observation.s", true}, {"user/Patient.cruds", true}, {"patient/Patient.rs", false}, {"offline_access", false},
		{"launch", false}, {"user/Patient.rs?x=y", true},
	} {
		_, err := start(c.scope)
		var ae *authn.AuthorizeError
		if c.ok != (err == nil) || !c.ok && (!errors.As(err, &ae) || ae.Code != "invalid_scope") {
			t.Errorf("scope %q: %v", c.scope, err)
		}
	}
	// Negotiated: narrowed to what the app is registered for, unknown to
	// it dropped.
	if page, err := start("user/Patient.cruds offline_access openid"); err != nil || strings.Join(page.Scopes, " ") != "user/Patient.rs openid" {
		t.Fatalf("negotiated scopes %v %v", page.Scopes, err)
	}
	page, err := start("openid user/*.rs")
	if err != nil {
		t.Fatal(err)
	}
	login := func(binding string) (authn.Step, error) {
		return e.svc.CompleteAuthorize(ctx, authn.LoginForm{RequestID: "r", Handle: page.Handle, Binding: binding, Username: "nina", Password: "correct horse battery staple"})
	}
	if _, err := login("browser-2"); !errors.Is(err, authn.ErrLoginForm) {
		t.Fatalf("other browser: %v", err)
	}
	if _, err := e.svc.CompleteAuthorize(ctx, authn.LoginForm{Handle: page.Handle[:len(page.Handle)-2] + "AA", Binding: "browser-1", Username: "nina", Password: "x"}); !errors.Is(err, authn.ErrLoginForm) {
		t.Fatalf("tampered handle: %v", err)
	}
	step, err := login("browser-1")
	if err != nil || step.Consent == nil || step.Redirect != "" || step.Picker != nil {
		t.Fatalf("first login: consent screen expected, got %+v %v", step, err)
	}
	// The consent page's handle is bound to the browser too.
	if _, err := e.svc.Decide(ctx, authn.Interaction{Handle: step.Consent.Handle, Binding: "browser-2"}, true); !errors.Is(err, authn.ErrLoginForm) {
		t.Fatalf("consent from another browser: %v", err)
	}
	// The login page's handle is no consent handle.
	if _, err := e.svc.Decide(ctx, authn.Interaction{Handle: page.Handle, Binding: "browser-1"}, true); !errors.Is(err, authn.ErrLoginForm) {
		t.Fatalf("consent with the login handle: %v", err)
	}
	to, err := e.svc.Decide(ctx, authn.Interaction{RequestID: "r", Handle: step.Consent.Handle, Binding: "browser-1"}, true)
	if err != nil {
		t.Fatal(err)
	}
	// Remembered: the next login goes straight to the app.
	if again, err := login("browser-1"); err != nil || again.Redirect == "" || !strings.Contains(again.Redirect, "code=") {
		t.Fatalf("second login: %+v %v", again, err)
	}
	u, _ := url.Parse(to)
	code := u.Query().Get("code")
	if u.Query().Get("state") != "s" || code == "" || !strings.HasPrefix(to, "https://app.example/cb?") {
		t.Fatalf("redirect %q", to)
	}
	// The code is stored only hashed.
	if _, err := e.st.CodeByID(ctx, code); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("the code is stored in the clear")
	}
	*e.now = e.now.Add(authn.CodeTTL + time.Second)
	if _, err := e.svc.AuthorizationCodeGrant(ctx, authn.CodeRequest{Code: code, ClientID: "app", RedirectURI: "https://app.example/cb", CodeVerifier: verifier}); !errors.Is(err, authn.ErrInvalidGrant) {
		t.Fatalf("expired code: %v", err)
	}
	*e.now = e.now.Add(authn.LoginFormTTL)
	if _, err := login("browser-1"); !errors.Is(err, authn.ErrLoginForm) {
		t.Fatalf("expired form: %v", err)
	}
}

// BenchmarkVerify measures bearer-token verification as a request sees
// it: a Ward token already verified (the cache, the common case), and a
// Ward token seen for the first time (RS256 signature, claims, revocation
// check). Run with a fixed count, e.g. -benchtime 2000x, so that the
// first-use tokens are issued once, outside the timing.
func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	b.Run("ward-cached", func(b *testing.B) {
		e := newEnvB(b)
		tok, _ := e.svc.Issue(authz.Subject{Tenant: "default", ID: "u", Role: authz.RolePhysician})
		cpu := startCPU()
		for b.Loop() {
			if _, err := e.svc.Verify(ctx, tok.AccessToken); err != nil {
				b.Fatal(err)
			}
		}
		cpu.report(b)
	})
	b.Run("ward-first-use", func(b *testing.B) {
		e := newEnvB(b)
		toks := make([]string, 0, 4096)
		for range cap(toks) {
			tok, _ := e.svc.Issue(authz.Subject{Tenant: "default", ID: "u", Role: authz.RolePhysician, Scopes: []string{"user/*.cruds"}})
			toks = append(toks, tok.AccessToken)
		}
		i := 0
		cpu := startCPU()
		for b.Loop() {
			if i == len(toks) {
				b.StopTimer()
				e = newEnvB(b) // a fresh cache: every token is new again
				toks = toks[:0]
				for range cap(toks) {
					tok, _ := e.svc.Issue(authz.Subject{Tenant: "default", ID: "u", Role: authz.RolePhysician, Scopes: []string{"user/*.cruds"}})
					toks = append(toks, tok.AccessToken)
				}
				i = 0
				b.StartTimer()
			}
			if _, err := e.svc.Verify(ctx, toks[i]); err != nil {
				b.Fatal(err)
			}
			i++
		}
		cpu.report(b)
	})
}

// cpuMeter reports the process CPU time per operation besides the wall
// time: on a machine shared with other work, wall time per op grows with
// the load, CPU time much less. (With regeneration inside the loop the
// CPU figure includes it; run with -benchtime 2000x to avoid that.)
type cpuMeter struct{ start time.Duration }

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuMeter { return cpuMeter{cpuTime()} }

func (c cpuMeter) report(b *testing.B) {
	b.ReportMetric(float64(cpuTime()-c.start)/float64(b.N), "cpu-ns/op")
}

// With tenant_claim the tenant comes from the token and must exist; the
// most privileged mapped role wins.
func TestExternalIssuerTenantClaim(t *testing.T) {
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"keys":[{"kty":"RSA","kid":"k","n":%q,"e":%q}]}`,
			base64.RawURLEncoding.EncodeToString(k.N.Bytes()), base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()))
	}))
	defer srv.Close()
	e := newEnvWith(t, authn.IssuerConfig{Issuer: "https://idp.example", Audience: "ward", JWKSURL: srv.URL, Algorithms: []string{"RS256"},
		TenantClaim: "org", RoleClaim: "roles", Roles: map[string]string{"n": "nurse", "a": "admin", "d": "physician"}, Scope: authn.DefaultScope})
	ctx := context.Background()
	if err := authn.AddTenant(ctx, e.st, authn.Actor{ID: "t", Role: "system"}, "clinic-b"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		org   any
		roles any
		want  authz.Role
		wantT string
	}{
		{"clinic-b", []string{"n", "d"}, authz.RolePhysician, "clinic-b"},
		{"default", []string{"x", "n", "a"}, authz.RoleAdmin, "default"},
		{"nowhere", "n", "", ""},
		{"Clinic B", "n", "", ""},
		{nil, "n", "", ""},
		{42, "n", "", ""},
		{"clinic-b", []any{7, "x"}, "", ""},
	} {
		claims := jwt.MapClaims{"iss": "https://idp.example", "aud": "ward", "sub": "s", "roles": c.roles, "exp": time.Now().Add(time.Minute).Unix()}
		if c.org != nil {
			claims["org"] = c.org
		}
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
		tok.Header["kid"] = "k"
		s, _ := tok.SignedString(k)
		subj, err := e.svc.Verify(ctx, s)
		if c.want == "" {
			if !errors.Is(err, authn.ErrInvalidToken) {
				t.Errorf("org %v roles %v: %+v %v", c.org, c.roles, subj, err)
			}
			continue
		}
		if err != nil || subj.Role != c.want || subj.Tenant != c.wantT {
			t.Errorf("org %v roles %v: %+v %v", c.org, c.roles, subj, err)
		}
	}
}
