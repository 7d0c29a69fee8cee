package authn

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/store"
)

// Confidential apps: an app of the authorization code flow registered
// with a client secret (stored only as its argon2id hash) or with a JWKS
// authenticates at the token endpoint; PKCE is required all the same.

// Token endpoint authentication methods of apps (RFC 7591 names).
const (
	AuthNone            = "none"
	AuthSecretBasic     = "client_secret_basic"
	AuthSecretPost      = "client_secret_post"
	AuthPrivateKeyJWT   = "private_key_jwt"
	minClientSecretLen  = 32
	maxClientSecretLen  = 512
	generatedSecretSize = 32
)

// AppAuthMethod is how app c authenticates at the token endpoint: none
// (public), client_secret_basic (also accepted as client_secret_post) or
// private_key_jwt.
func AppAuthMethod(c *store.Client) string {
	switch {
	case c.SecretHash != "":
		return AuthSecretBasic
	case c.JWKS != "":
		return AuthPrivateKeyJWT
	}
	return AuthNone
}

// GenerateClientSecret returns a new random client secret (256 bits,
// base64url).
func GenerateClientSecret() (string, error) {
	b := make([]byte, generatedSecretSize)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// CheckClientSecret is the rule for a client secret an operator chooses:
// 32 to 512 bytes of valid UTF-8.
func CheckClientSecret(secret string) error {
	if len(secret) < minClientSecretLen || len(secret) > maxClientSecretLen || !utf8.ValidString(secret) {
		return fmt.Errorf("a client secret has %d to %d characters (use a generated one)", minClientSecretLen, maxClientSecretLen)
	}
	return nil
}

// ClientAuth is the client authentication of a token request.
type ClientAuth struct {
	RequestID string
	// ClientID is the app's id (from the form or HTTP Basic).
	ClientID string
	// ClientSecret is the secret of client_secret_basic or
	// client_secret_post ("" : none sent).
	ClientSecret string
	// AssertionType and Assertion are private_key_jwt's.
	AssertionType, Assertion string
	// Audience is this server's token endpoint URL (an assertion's aud).
	Audience string
}

func (cr CodeRequest) clientAuth() ClientAuth {
	return ClientAuth{RequestID: cr.RequestID, ClientID: cr.ClientID, ClientSecret: cr.ClientSecret, AssertionType: cr.AssertionType, Assertion: cr.Assertion, Audience: cr.Audience}
}

// sent reports whether any credentials were sent.
func (cr ClientAuth) sent() bool {
	return cr.ClientSecret != "" || cr.Assertion != "" || cr.AssertionType != ""
}

// authenticateApp authenticates an app at the token endpoint as its
// registration requires: a public app sends no credentials; an app with a
// secret must send it; an app with keys must send a private_key_jwt
// assertion, whose jti is recorded (a replay is refused). It returns a
// ledger detail and ErrInvalidClient on failure (detail "" : a storage
// error to pass on). rec gets the client's tenant for the ledger.
func (s *Service) authenticateApp(ctx context.Context, cr ClientAuth, rec *audit.Record) (string, error) {
	if cr.AssertionType != "" || cr.Assertion != "" {
		if cr.AssertionType != ClientAssertionType || cr.Assertion == "" {
			return "client-auth-bad-assertion-type", fmt.Errorf("%w: client_assertion_type must be %s", ErrInvalidClient, ClientAssertionType)
		}
		if cr.ClientSecret != "" {
			return "client-auth-two-methods", fmt.Errorf("%w: use one client authentication method", ErrInvalidClient)
		}
	}
	c, err := s.st.ClientByID(ctx, cr.ClientID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// The code check says invalid_grant for an unknown client; only
		// credentials sent for a client that does not exist are refused
		// here.
		if cr.ClientSecret != "" || cr.Assertion != "" {
			return "client-auth-unknown-client", ErrInvalidClient
		}
		return "", nil
	case err != nil:
		return "", err
	}
	rec.Tenant = c.Tenant
	method := AppAuthMethod(c)
	switch {
	case method == AuthNone && (cr.ClientSecret != "" || cr.Assertion != ""):
		return "client-auth-public-app-sent-credentials", fmt.Errorf("%w: the app is public: it has no credentials to send", ErrInvalidClient)
	case method == AuthNone:
		return "", nil
	case method == AuthSecretBasic && cr.ClientSecret == "":
		return "client-auth-missing", fmt.Errorf("%w: the app is confidential: authenticate with its client secret", ErrInvalidClient)
	case method == AuthSecretBasic:
		// argon2id, compared in constant time.
		if len(cr.ClientSecret) > maxClientSecretLen || !VerifyPassword(c.SecretHash, cr.ClientSecret) {
			return "client-auth-bad-secret", ErrInvalidClient
		}
		return "", nil
	case cr.Assertion == "":
		return "client-auth-missing", fmt.Errorf("%w: the app is confidential: authenticate with a private_key_jwt assertion", ErrInvalidClient)
	}
	var unverified jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(cr.Assertion, &unverified); err != nil || unverified.Issuer != c.ID {
		return "client-auth-assertion-issuer", fmt.Errorf("%w: the assertion's iss must be the client_id", ErrInvalidClient)
	}
	claims, detail, err := s.verifyAssertion(c, cr.Assertion, cr.Audience)
	if err != nil {
		return "client-auth-" + detail, err
	}
	// The jti is recorded at once (with its own ledger record), so that a
	// replayed assertion is refused whatever happens to the code.
	now := s.o.Now().UTC()
	err = s.ledger().Commit(ctx, &store.Unit{Parts: []store.Part{store.UseJTI{ClientID: c.ID, JTI: claims.ID, Expires: claims.ExpiresAt.Time}}}, &audit.Record{Time: now, Tenant: c.Tenant, RequestID: cr.RequestID, Actor: "client/" + c.ID, Role: "client",
		Action: "client-auth", Detail: AuthPrivateKeyJWT, Entities: []string{"client/" + c.ID}})
	if errors.Is(err, store.ErrConflict) {
		return "client-auth-assertion-replay", fmt.Errorf("%w: the assertion was used before", ErrInvalidClient)
	}
	if err != nil {
		return "", err
	}
	return "", nil
}
