package api_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
)

// testIssuer is an OpenID Connect provider on a local listener: discovery
// and a JWKS with one RSA key.
type testIssuer struct {
	srv        *httptest.Server
	key        *rsa.PrivateKey
	jwksFetchs atomic.Int32
}

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	ti := &testIssuer{}
	ti.key, _ = rsa.GenerateKey(rand.Reader, 2048)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": ti.srv.URL, "jwks_uri": ti.srv.URL + "/keys"})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		ti.jwksFetchs.Add(1)
		fmt.Fprintf(w, `{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"k1","n":%q,"e":%q},{"kty":"oct","kid":"sym","k":"c2VjcmV0"}]}`,
			b64(ti.key.N.Bytes()), b64(big.NewInt(int64(ti.key.E)).Bytes()))
	})
	ti.srv = httptest.NewServer(mux)
	t.Cleanup(ti.srv.Close)
	return ti
}

func (ti *testIssuer) token(t *testing.T, key *rsa.PrivateKey, kid string, claims jwt.MapClaims) string {
	t.Helper()
	base := jwt.MapClaims{"iss": ti.srv.URL, "aud": "ward-api", "sub": "alice@example.org", "groups": []string{"staff", "doctors"},
		"exp": time.Now().Add(5 * time.Minute).Unix(), "iat": time.Now().Unix()}
	for k, v := range claims {
		if v == nil {
			delete(base, k)
		} else {
			base[k] = v
		}
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, base)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Tokens of a trusted external issuer (JWKS found by discovery on a local
// listener) read data as the mapped role; wrong audience, expiry, unknown
// key, foreign signature and unmapped role get 401 with an
// OperationOutcome; every verification is in the ledger, without the
// external subject's sub.
func TestExternalIssuerTokens(t *testing.T) {
	ti := newTestIssuer(t)
	file := filepath.Join(t.TempDir(), "issuers.json")
	os.WriteFile(file, []byte(fmt.Sprintf(`[{"issuer":%q,"audience":"ward-api","tenant":"default","role_claim":"groups",
		"roles":{"doctors":"physician","nurses":"nurse"},"practitioner_claim":"practitioner"}]`, ti.srv.URL)), 0o600)
	forEachBackendWith(t, func(c *config.Config) { c.OIDCIssuers = file }, func(t *testing.T, w *apptest.Ward) {
		// The external clinician is Practitioner pract-physician (their
		// token's practitioner claim), whom the patient names as general
		// practitioner: a care relationship. Without the claim there is
		// none.
		pid := w.Create(t, authz.RoleAdmin, patient)
		other, _ := rsa.GenerateKey(rand.Reader, 2048)
		good := ti.token(t, ti.key, "k1", jwt.MapClaims{"practitioner": "Practitioner/pract-physician"})
		unlinked := ti.token(t, ti.key, "k1", nil)
		nurse := ti.token(t, ti.key, "k1", jwt.MapClaims{"groups": "nurses", "sub": "bob"})
		for _, sc := range []scenario{
			{name: "accepted as physician", method: "GET", path: "/fhir/Patient/" + pid, token: good, status: 200, want: []string{"Quillfeather"}},
			{name: "again, from the cache", method: "GET", path: "/fhir/Patient/" + pid, token: good, status: 200},
			{name: "a physician without the practitioner claim has no care relationship", method: "GET", path: "/fhir/Patient/" + pid, token: unlinked, status: 403, notWant: []string{"Quillfeather"}},
			{name: "a physician writes", method: "POST", path: "/fhir/Patient", token: good, body: patient, status: 201},
			{name: "a nurse may not write a Patient", method: "POST", path: "/fhir/Patient", token: nurse, body: patient, status: 403},
			{name: "wrong audience", method: "GET", path: "/fhir/Patient/" + pid, token: ti.token(t, ti.key, "k1", jwt.MapClaims{"aud": "other-api"}), status: 401, want: []string{"OperationOutcome"}, notWant: []string{"Quillfeather"}},
			{name: "expired", method: "GET", path: "/fhir/Patient/" + pid, token: ti.token(t, ti.key, "k1", jwt.MapClaims{"exp": time.Now().Add(-5 * time.Minute).Unix()}), status: 401, want: []string{"OperationOutcome"}},
			{name: "no expiry", method: "GET", path: "/fhir/Patient/" + pid, token: ti.token(t, ti.key, "k1", jwt.MapClaims{"exp": nil}), status: 401},
			{name: "not yet valid", method: "GET", path: "/fhir/Patient/" + pid, token: ti.token(t, ti.key, "k1", jwt.MapClaims{"nbf": time.Now().Add(time.Hour).Unix()}), status: 401},
			{name: "unknown kid", method: "GET", path: "/fhir/Patient/" + pid, token: ti.token(t, other, "k9", nil), status: 401, want: []string{"OperationOutcome"}},
			{name: "right kid, foreign key", method: "GET", path: "/fhir/Patient/" + pid, token: ti.token(t, other, "k1", nil), status: 401},
			{name: "unmapped role", method: "GET", path: "/fhir/Patient/" + pid, token: ti.token(t, ti.key, "k1", jwt.MapClaims{"groups": []string{"staff"}}), status: 401, want: []string{"OperationOutcome"}},
			{name: "no role claim", method: "GET", path: "/fhir/Patient/" + pid, token: ti.token(t, ti.key, "k1", jwt.MapClaims{"groups": nil}), status: 401},
			{name: "bad practitioner claim", method: "GET", path: "/fhir/Patient/" + pid, token: ti.token(t, ti.key, "k1", jwt.MapClaims{"practitioner": "../x y"}), status: 401},
			{name: "untrusted issuer", method: "GET", path: "/fhir/Patient/" + pid, token: ti.token(t, ti.key, "k1", jwt.MapClaims{"iss": "https://evil.example"}), status: 401},
			{name: "alg none", method: "GET", path: "/fhir/Patient/" + pid, token: algNone(t, good), status: 401},
		} {
			sc.run(t, w)
		}
		// The symmetric key in the issuer's JWKS is never used: an HS256
		// token "signed" with it is refused.
		hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": ti.srv.URL, "aud": "ward-api", "sub": "x", "groups": "doctors", "exp": time.Now().Add(time.Minute).Unix()})
		hs.Header["kid"] = "sym"
		hsTok, _ := hs.SignedString([]byte("secret"))
		if r := w.Do(t, "GET", "/fhir/Patient/"+pid, hsTok, nil); r.Status != 401 {
			t.Errorf("HS256 with the issuer's oct key: %d", r.Status)
		}
		want := map[string]bool{"accepted": false, "wrong-audience": false, "expired": false, "unknown-kid": false, "unmapped-role": false, "not-yet-valid": false, "bad-signature": false}
		var ext string
		for _, rec := range w.Ledger(t) {
			if rec.Action == "external-token" {
				if _, ok := want[rec.Detail]; ok {
					want[rec.Detail] = true
				}
				if rec.Detail == "accepted" && rec.Role == "physician" {
					ext = rec.Actor
				}
				if rec.Detail != "accepted" && rec.Outcome == audit.OutcomeSuccess {
					t.Errorf("refusal recorded as success: %+v", rec)
				}
			}
			if strings.Contains(rec.Actor+strings.Join(rec.Entities, " ")+rec.Detail, "alice") {
				t.Errorf("the external sub is in the ledger: %+v", rec)
			}
		}
		for k, seen := range want {
			if !seen {
				t.Errorf("ledger lacks external-token %s", k)
			}
		}
		if !strings.HasPrefix(ext, "ext/") {
			t.Fatalf("external subject id %q", ext)
		}
		var read bool
		for _, rec := range w.Ledger(t) {
			if rec.Actor == ext && rec.Action == "read" && rec.Outcome == audit.OutcomeSuccess {
				read = true
			}
		}
		if !read {
			t.Error("the external user's read is not in the ledger under its id")
		}
		// Unknown kids do not make Ward hammer the issuer.
		before := ti.jwksFetchs.Load()
		for i := 0; i < 10; i++ {
			w.Do(t, "GET", "/fhir/Patient/"+pid, ti.token(t, other, fmt.Sprintf("kx%d", i), nil), nil)
		}
		if n := ti.jwksFetchs.Load() - before; n > 1 {
			t.Errorf("10 unknown-kid tokens fetched the JWKS %d times", n)
		}
	})
}

func forEachBackendWith(t *testing.T, mutate func(*config.Config), f func(t *testing.T, w *apptest.Ward)) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			f(t, apptest.Start(t, b, mutate))
		})
	}
}
