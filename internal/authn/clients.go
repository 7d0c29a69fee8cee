package authn

import (
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/store"
)

// ClientAssertionType is the only client authentication SMART Backend
// Services uses (RFC 7523).
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// ErrInvalidClient: the client is unknown or disabled, or its assertion
// does not verify, has expired, names the wrong audience, or was used
// before.
var ErrInvalidClient = errors.New("invalid client")

// clientTokenTTL bounds backend-service tokens (SMART: SHOULD NOT exceed
// five minutes).
const clientTokenTTL = 5 * time.Minute

// assertionAlgs are the client assertion algorithms accepted: SMART's
// required RS384 and ES384, and their SHA-256 siblings.
var assertionAlgs = []string{"RS384", "ES384", "RS256", "ES256"}

// ClientRequest is a client_credentials token request authenticated with a
// signed JWT (private_key_jwt).
type ClientRequest struct {
	RequestID     string
	AssertionType string
	Assertion     string
	Scope         string // empty: every scope the client is registered for
	// Audience is this server's token endpoint URL, which the assertion's
	// aud must name.
	Audience string
}

// ClientCredentialsGrant verifies a client assertion and issues a token
// for the client's system/ scopes. Every attempt is audited.
func (s *Service) ClientCredentialsGrant(ctx context.Context, cr ClientRequest) (Token, error) {
	now := s.o.Now().UTC()
	rec := &audit.Record{Time: now, RequestID: cr.RequestID, Action: "client-token", Role: string(authz.RoleClient)}
	fail := func(detail string, err error) (Token, error) {
		rec.Outcome, rec.Detail = audit.OutcomeMinor, detail
		if cerr := s.ledger().Record(ctx, rec); cerr != nil {
			return Token{}, cerr
		}
		return Token{}, err
	}
	if cr.AssertionType != ClientAssertionType || cr.Assertion == "" {
		return fail("bad-assertion-type", fmt.Errorf("%w: client_assertion_type must be %s", ErrInvalidClient, ClientAssertionType))
	}
	var unverified jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(cr.Assertion, &unverified); err != nil || unverified.Issuer == "" {
		return fail("malformed-assertion", fmt.Errorf("%w: client_assertion is not a JWT naming its issuer", ErrInvalidClient))
	}
	c, err := s.st.ClientByID(ctx, unverified.Issuer)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fail("unknown-client", ErrInvalidClient)
	case err != nil:
		return Token{}, err
	}
	rec.Tenant, rec.Actor = c.Tenant, "client/"+c.ID
	if c.Disabled {
		return fail("client-disabled", ErrInvalidClient)
	}
	if len(c.RedirectURIs) > 0 {
		// An app (authorization code flow) acts for users, never for itself.
		return fail("client-is-app", ErrInvalidClient)
	}
	claims, detail, err := s.verifyAssertion(c, cr.Assertion, cr.Audience)
	if err != nil {
		return fail(detail, err)
	}
	// The subset of the requested scopes the client is registered for
	// (system/*.rs grants system/Patient.rs); the token's scope says which.
	registered, _ := authz.ParseScopes(c.Scope)
	granted := registered
	if cr.Scope != "" {
		asked, err := authz.ParseScopes(cr.Scope)
		if err != nil {
			return fail("invalid-scope", fmt.Errorf("%w: %v", ErrInvalidScope, err))
		}
		if granted = authz.Negotiate(asked, registered); len(granted) == 0 {
			return fail("scope-not-registered", fmt.Errorf("%w: the client is registered for none of the requested scopes", ErrInvalidScope))
		}
	}
	rec.Detail = "token-issued"
	err = s.ledger().Commit(ctx, &store.Unit{Parts: []store.Part{store.UseJTI{ClientID: c.ID, JTI: claims.ID, Expires: claims.ExpiresAt.Time}}}, rec)
	if errors.Is(err, store.ErrConflict) {
		return Token{}, fmt.Errorf("%w: the assertion was used before", ErrInvalidClient)
	}
	if err != nil {
		return Token{}, err
	}
	return s.issue(authz.Subject{Tenant: c.Tenant, ID: "client/" + c.ID, Role: authz.RoleClient, Scopes: strings.Fields(authz.JoinScopes(granted))}, min(s.o.TTL, clientTokenTTL))
}

// ParseJWKS reads a JSON Web Key Set of public RSA (2048 bits or more) and
// EC (P-256, P-384) keys, by kid. Private members are refused: a client
// registers public keys only.
func ParseJWKS(b []byte) (map[string]crypto.PublicKey, error) {
	var set struct {
		Keys []struct {
			Kty, Kid, Crv, N, E, X, Y, D string
		}
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("JWKS is not JSON: %w", err)
	}
	out := map[string]crypto.PublicKey{}
	dec := base64.RawURLEncoding
	for i, k := range set.Keys {
		if k.D != "" {
			return nil, fmt.Errorf("key %d is a private key; register public keys only", i)
		}
		switch k.Kty {
		case "RSA":
			n, err1 := dec.DecodeString(k.N)
			e, err2 := dec.DecodeString(k.E)
			if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
				return nil, fmt.Errorf("key %d: bad RSA n or e", i)
			}
			pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
			if pub.N.BitLen() < 2048 || pub.E < 3 || pub.E%2 == 0 {
				return nil, fmt.Errorf("key %d: RSA keys need 2048 bits or more and an odd exponent", i)
			}
			out[k.Kid] = pub
		case "EC":
			var curve elliptic.Curve
			var ec ecdh.Curve
			switch k.Crv {
			case "P-256":
				curve, ec = elliptic.P256(), ecdh.P256()
			case "P-384":
				curve, ec = elliptic.P384(), ecdh.P384()
			default:
				return nil, fmt.Errorf("key %d: curve must be P-256 or P-384", i)
			}
			x, err1 := dec.DecodeString(k.X)
			y, err2 := dec.DecodeString(k.Y)
			size := (curve.Params().BitSize + 7) / 8
			if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
				return nil, fmt.Errorf("key %d: bad EC coordinates", i)
			}
			// Let crypto/ecdh check the point is on the curve.
			if _, err := ec.NewPublicKey(append(append([]byte{4}, x...), y...)); err != nil {
				return nil, fmt.Errorf("key %d: not a point on %s", i, k.Crv)
			}
			out[k.Kid] = &ecdsa.PublicKey{Curve: curve, X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
		default:
			return nil, fmt.Errorf("key %d: kty must be RSA or EC", i)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("JWKS has no keys")
	}
	return out, nil
}

// verifyAssertion checks a client's private_key_jwt assertion (RFC 7523)
// against its registered keys: algorithm, iss = sub = the client id, aud
// = this token endpoint, exp (at most 5 minutes ahead) and a jti. It does
// not record the jti: the caller commits it (store.Unit.UseJTI), which
// refuses a replay. detail names the failure for the ledger.
func (s *Service) verifyAssertion(c *store.Client, assertion, audience string) (*jwt.RegisteredClaims, string, error) {
	keys, err := ParseJWKS([]byte(c.JWKS))
	if err != nil {
		return nil, "client-jwks-unusable", ErrInvalidClient
	}
	now := s.o.Now()
	var claims jwt.RegisteredClaims
	parser := jwt.NewParser(
		jwt.WithValidMethods(assertionAlgs),
		jwt.WithIssuer(c.ID), jwt.WithSubject(c.ID), jwt.WithAudience(audience),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(s.o.Now),
	)
	_, err = parser.ParseWithClaims(assertion, &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if k, ok := keys[kid]; ok {
			return k, nil
		}
		if kid == "" && len(keys) == 1 {
			for _, k := range keys {
				return k, nil
			}
		}
		return nil, errors.New("no registered key with this kid")
	})
	if err != nil {
		return nil, "assertion-rejected", fmt.Errorf("%w: %v", ErrInvalidClient, err)
	}
	if claims.ExpiresAt.Time.After(now.Add(5*time.Minute + 30*time.Second)) {
		return nil, "assertion-lifetime", fmt.Errorf("%w: the assertion may live 5 minutes at most", ErrInvalidClient)
	}
	if claims.ID == "" || len(claims.ID) > 256 {
		return nil, "assertion-jti", fmt.Errorf("%w: the assertion needs a jti", ErrInvalidClient)
	}
	return &claims, "", nil
}
