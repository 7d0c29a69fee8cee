package api_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/store"
)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func pad(b []byte, n int) []byte { return append(make([]byte, n-len(b)), b...) }

// A SMART Backend Services client signs its own assertion; Ward verifies it
// against the registered JWKS and grants the client's system/ scopes.
func TestBackendServicesClient(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	pid := w.Create(t, authz.RolePhysician, patient)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	jwks := fmt.Sprintf(`{"keys":[{"kty":"RSA","kid":"r1","n":%q,"e":%q},{"kty":"EC","kid":"e1","crv":"P-384","x":%q,"y":%q}]}`,
		b64(rsaKey.N.Bytes()), b64(big.NewInt(int64(rsaKey.E)).Bytes()), b64(pad(ecKey.X.Bytes(), 48)), b64(pad(ecKey.Y.Bytes(), 48)))
	if err := w.App.Store.Commit(context.Background(), &store.Unit{Parts: []store.Part{store.NewClient{Client: &store.Client{
		ID: "backend-1", Tenant: "default", JWKS: jwks, Scope: "system/Patient.rs system/Observation.rs", Created: time.Now()}}}}); err != nil {
		t.Fatal(err)
	}
	aud := w.Server.URL + "/oauth2/token"
	assertion := func(method jwt.SigningMethod, key any, kid, iss, aud string, exp time.Duration, jti string) string {
		tok := jwt.NewWithClaims(method, jwt.RegisteredClaims{Issuer: iss, Subject: iss, Audience: jwt.ClaimStrings{aud},
			ExpiresAt: jwt.NewNumericDate(time.Now().Add(exp)), ID: jti})
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	token := func(a, scope string) *apptest.Response {
		form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
		if scope != "" {
			form.Set("scope", scope)
		}
		return w.Do(t, "POST", "/oauth2/token", "", []byte(form.Encode()), "Content-Type: application/x-www-form-urlencoded")
	}
	good := assertion(jwt.SigningMethodRS384, rsaKey, "r1", "backend-1", aud, 4*time.Minute, "jti-1")
	r := token(good, "")
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		Scope       string
	}
	json.Unmarshal(r.Body, &tok)
	if r.Status != 200 || tok.Scope != "system/Patient.rs system/Observation.rs" || tok.ExpiresIn > 300 {
		t.Fatalf("RS384 client: %d %s", r.Status, r.Body)
	}
	for _, sc := range []scenario{
		{name: "client reads with system scope", method: "GET", path: "/fhir/Patient/" + pid, token: tok.AccessToken, status: 200, want: []string{"Quillfeather"}},
		{name: "client searches", method: "GET", path: "/fhir/Patient", token: tok.AccessToken, status: 200},
		{name: "client may not write", method: "POST", path: "/fhir/Patient", token: tok.AccessToken, body: patient, status: 403},
		{name: "client may not read other types", method: "GET", path: "/fhir/Condition", token: tok.AccessToken, status: 403},
	} {
		sc.run(t, w)
	}
	// The same assertion again is a replay.
	if r := token(good, ""); r.Status != 401 || !strings.Contains(string(r.Body), "invalid_client") {
		t.Fatalf("replay: %d %s", r.Status, r.Body)
	}
	// ES384 with a narrower scope.
	r = token(assertion(jwt.SigningMethodES384, ecKey, "e1", "backend-1", aud, time.Minute, "jti-2"), "system/Observation.rs")
	json.Unmarshal(r.Body, &tok)
	if r.Status != 200 || tok.Scope != "system/Observation.rs" {
		t.Fatalf("ES384 client: %d %s", r.Status, r.Body)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, c := range map[string]struct {
		a      string
		scope  string
		status int
	}{
		"wrong audience":        {assertion(jwt.SigningMethodRS384, rsaKey, "r1", "backend-1", "https://elsewhere/token", time.Minute, "j3"), "", 401},
		"expired":               {assertion(jwt.SigningMethodRS384, rsaKey, "r1", "backend-1", aud, -time.Minute, "j4"), "", 401},
		"lives too long":        {assertion(jwt.SigningMethodRS384, rsaKey, "r1", "backend-1", aud, time.Hour, "j5"), "", 401},
		"signed by another key": {assertion(jwt.SigningMethodRS384, other, "r1", "backend-1", aud, time.Minute, "j6"), "", 401},
		"unknown client":        {assertion(jwt.SigningMethodRS384, rsaKey, "r1", "nobody", aud, time.Minute, "j7"), "", 401},
		"no jti":                {assertion(jwt.SigningMethodRS384, rsaKey, "r1", "backend-1", aud, time.Minute, ""), "", 401},
		"HS256":                 {assertion(jwt.SigningMethodHS256, []byte("secret"), "r1", "backend-1", aud, time.Minute, "j8"), "", 401},
		"unregistered scope":    {assertion(jwt.SigningMethodRS384, rsaKey, "r1", "backend-1", aud, time.Minute, "j9"), "system/Condition.rs", 400},
		"garbage":               {"not-a-jwt", "", 401},
	} {
		if r := token(c.a, c.scope); r.Status != c.status {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
		}
	}
	var issued, refused int
	for _, rec := range w.Ledger(t) {
		if rec.Action == "client-token" {
			if rec.Outcome == 0 {
				issued++
			} else {
				refused++
			}
		}
	}
	if issued != 2 || refused != 10 {
		t.Fatalf("ledger: %d tokens issued, %d refused; want 2 and 10", issued, refused)
	}
}
