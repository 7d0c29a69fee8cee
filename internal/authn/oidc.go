package authn

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/store"
)

// Trusted external OpenID Connect issuers: their signed JWTs are accepted
// as bearer tokens, checked like Ward's own (signature by a key of the
// issuer's JWKS, an allowed algorithm, iss, aud, exp and nbf), and mapped
// to a Subject by the issuer's configured claim mapping.

// IssuerConfig is one trusted issuer, as listed in the WARD_OIDC_ISSUERS
// file (a JSON array of these objects; unknown keys are refused).
type IssuerConfig struct {
	// Issuer is the exact iss of the issuer's tokens.
	Issuer string `json:"issuer"`
	// Audience is the aud the tokens must carry (Ward's client id or API
	// identifier at the issuer).
	Audience string `json:"audience"`
	// JWKSURL is where the issuer's public keys are; empty: found by
	// OpenID discovery at Issuer + "/.well-known/openid-configuration".
	JWKSURL string `json:"jwks_url,omitempty"`
	// Algorithms are the accepted signature algorithms (default RS256).
	Algorithms []string `json:"algorithms,omitempty"`
	// Tenant is the tenant of every token of this issuer, unless
	// TenantClaim names a claim holding it (the tenant must exist).
	Tenant      string `json:"tenant,omitempty"`
	TenantClaim string `json:"tenant_claim,omitempty"`
	// RoleClaim names the claim (a string or an array of strings) whose
	// values Roles maps to Ward roles; the most privileged mapped role
	// wins. A token with no mapped value is refused.
	RoleClaim string            `json:"role_claim"`
	Roles     map[string]string `json:"roles"`
	// PractitionerClaim names the claim holding the user's Practitioner
	// id. It is checked to be a FHIR id when present.
	PractitionerClaim string `json:"practitioner_claim,omitempty"`
	// Scope is what tokens of this issuer are granted (default
	// user/*.cruds: the mapped role alone decides).
	Scope string `json:"scope,omitempty"`
}

var externalAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"}

var fhirID = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// ParseIssuers reads the trusted issuers file: a JSON array, strictly.
func ParseIssuers(b []byte) ([]IssuerConfig, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var out []IssuerConfig
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("trusted issuers: %w", err)
	}
	seen := map[string]bool{}
	for i := range out {
		c := &out[i]
		where := fmt.Sprintf("trusted issuer %d", i)
		if err := checkFetchURL(c.Issuer); err != nil {
			return nil, fmt.Errorf("%s: issuer: %w", where, err)
		}
		if seen[c.Issuer] {
			return nil, fmt.Errorf("%s: issuer %s is listed twice", where, c.Issuer)
		}
		seen[c.Issuer] = true
		if c.JWKSURL != "" {
			if err := checkFetchURL(c.JWKSURL); err != nil {
				return nil, fmt.Errorf("%s: jwks_url: %w", where, err)
			}
		}
		if c.Audience == "" {
			return nil, fmt.Errorf("%s: audience is required", where)
		}
		if len(c.Algorithms) == 0 {
			c.Algorithms = []string{"RS256"}
		}
		for _, a := range c.Algorithms {
			if !slices.Contains(externalAlgs, a) {
				return nil, fmt.Errorf("%s: algorithm %q is not one of %s", where, a, strings.Join(externalAlgs, ", "))
			}
		}
		if (c.Tenant == "") == (c.TenantClaim == "") {
			return nil, fmt.Errorf("%s: give tenant or tenant_claim (one of them)", where)
		}
		if c.Tenant != "" && !TenantPattern.MatchString(c.Tenant) {
			return nil, fmt.Errorf("%s: tenant is not a tenant id", where)
		}
		if c.RoleClaim == "" || len(c.Roles) == 0 {
			return nil, fmt.Errorf("%s: role_claim and roles are required", where)
		}
		for v, r := range c.Roles {
			if _, ok := authz.ParseRole(r); !ok {
				return nil, fmt.Errorf("%s: roles[%q] = %q is not admin, privacy-officer, physician, nurse or user", where, v, r)
			}
		}
		if c.Scope == "" {
			c.Scope = DefaultScope
		}
		if _, err := authz.ParseScopes(c.Scope); err != nil {
			return nil, fmt.Errorf("%s: scope: %w", where, err)
		}
	}
	return out, nil
}

// checkFetchURL accepts https URLs, and http on a loopback host.
func checkFetchURL(s string) error {
	if s == "" {
		return errors.New("is required")
	}
	if err := CheckRedirectURI(s); err != nil {
		return errors.New("must be an https URL (http only on a loopback host) without a fragment")
	}
	return nil
}

// JWKS refresh policy: keys are fetched on first use, again when a token
// names an unknown kid (at most once per jwksMinRefresh), and when older
// than jwksMaxAge.
const (
	jwksMaxAge   = time.Hour
	jwksMaxBytes = 1 << 20
)

var jwksMinRefresh = 30 * time.Second

// external is one trusted issuer and its cached keys.
type external struct {
	cfg    IssuerConfig
	client *http.Client

	mu        sync.Mutex
	keys      map[string]crypto.PublicKey
	fetched   time.Time
	attempted time.Time
}

func newExternal(cfg IssuerConfig, client *http.Client) *external {
	return &external{cfg: cfg, client: client}
}

func (x *external) get(ctx context.Context, u string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := x.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBytes))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// refresh fetches the issuer's JWKS (through discovery when no URL is
// configured). Keys that Ward cannot use (other key types, short RSA) are
// skipped; private members make the whole set unusable.
func (x *external) refresh(ctx context.Context) error {
	u := x.cfg.JWKSURL
	if u == "" {
		var disc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := x.get(ctx, strings.TrimSuffix(x.cfg.Issuer, "/")+"/.well-known/openid-configuration", &disc); err != nil {
			return fmt.Errorf("discovery: %w", err)
		}
		if disc.Issuer != x.cfg.Issuer || checkFetchURL(disc.JWKSURI) != nil {
			return errors.New("discovery: issuer mismatch or unusable jwks_uri")
		}
		u = disc.JWKSURI
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := x.get(ctx, u, &set); err != nil {
		return fmt.Errorf("jwks: %w", err)
	}
	keys := map[string]crypto.PublicKey{}
	for _, k := range set.Keys {
		var probe struct {
			D   string `json:"d"`
			Use string `json:"use"`
		}
		json.Unmarshal(k, &probe)
		if probe.D != "" {
			return errors.New("jwks: the issuer publishes a private key")
		}
		if probe.Use != "" && probe.Use != "sig" {
			continue
		}
		one, err := ParseJWKS([]byte(`{"keys":[` + string(k) + `]}`))
		if err != nil {
			continue
		}
		for kid, pk := range one {
			keys[kid] = pk
		}
	}
	if len(keys) == 0 {
		return errors.New("jwks: no usable signing keys")
	}
	x.keys, x.fetched = keys, time.Now()
	return nil
}

// key finds the public key for kid, refreshing the JWKS when it is unknown
// or stale (rate limited).
func (x *external) key(ctx context.Context, kid string) (crypto.PublicKey, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	k, ok := x.keys[kid]
	if !ok && kid == "" && len(x.keys) == 1 {
		for _, only := range x.keys {
			k, ok = only, true
		}
	}
	stale := time.Since(x.fetched) > jwksMaxAge
	if (ok && !stale) || time.Since(x.attempted) < jwksMinRefresh {
		if ok {
			return k, nil
		}
		return nil, errUnknownKid
	}
	x.attempted = time.Now()
	if err := x.refresh(ctx); err != nil {
		if ok {
			return k, nil // keep using a stale key rather than fail while the issuer is down
		}
		return nil, fmt.Errorf("%w (%v)", errUnknownKid, err)
	}
	if k, ok = x.keys[kid]; !ok && kid == "" && len(x.keys) == 1 {
		for _, only := range x.keys {
			k, ok = only, true
		}
	}
	if !ok {
		return nil, errUnknownKid
	}
	return k, nil
}

var errUnknownKid = errors.New("no key of the issuer has this kid")

// externalIssuer returns the trusted issuer a token claims to come from,
// or nil (then it is Ward's own, or nobody's).
func (s *Service) externalIssuer(token string) *external {
	if len(s.external) == 0 {
		return nil
	}
	var c jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil || c.Issuer == s.o.Issuer {
		return nil
	}
	for _, x := range s.external {
		if x.cfg.Issuer == c.Issuer {
			return x
		}
	}
	return nil
}

// externalID names an external user in Ward (tokens, ledger) without its
// sub, which may be an e-mail address: a hash of issuer and sub.
func externalID(iss, sub string) string {
	sum := sha256.Sum256([]byte("ward/external-subject/v1\x00" + iss + "\x00" + sub))
	return "ext/" + base64.RawURLEncoding.EncodeToString(sum[:16])
}

// parseExternal verifies a token of a trusted issuer and maps it to a
// Subject. Every verification (a token is verified once, then cached) is
// in the ledger: accepted with the subject, refused with the reason.
func (s *Service) parseExternal(ctx context.Context, x *external, token string) (cached, error) {
	now := s.o.Now().UTC()
	sum := sha256.Sum256([]byte(token))
	rec := &audit.Record{Time: now, Tenant: x.cfg.Tenant, Action: "external-token", Role: "", Entities: []string{"issuer/" + issuerTag(x.cfg.Issuer)}}
	refuse := func(reason string, err error) (cached, error) {
		rec.Outcome, rec.Detail = audit.OutcomeMinor, reason
		if cerr := s.ledger().Record(ctx, rec); cerr != nil {
			return cached{}, fmt.Errorf("%w: %v (ledger: %v)", ErrInvalidToken, err, cerr)
		}
		return cached{}, fmt.Errorf("%w: %s: %v", ErrInvalidToken, reason, err)
	}
	claims := jwt.MapClaims{}
	parser := jwt.NewParser(
		jwt.WithValidMethods(x.cfg.Algorithms),
		jwt.WithIssuer(x.cfg.Issuer),
		jwt.WithAudience(x.cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(s.o.Now),
		jwt.WithLeeway(30*time.Second),
	)
	_, err := parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return x.key(ctx, kid)
	})
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return refuse("expired", err)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return refuse("not-yet-valid", err)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return refuse("wrong-audience", err)
	case errors.Is(err, errUnknownKid):
		return refuse("unknown-kid", err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return refuse("bad-signature", err)
	case err != nil:
		return refuse("rejected", err)
	}
	sub, _ := claims["sub"].(string)
	if sub == "" {
		return refuse("no-subject", errors.New("the token has no sub"))
	}
	rec.Actor = externalID(x.cfg.Issuer, sub)
	role, ok := x.role(claims)
	if !ok {
		return refuse("unmapped-role", errors.New("no value of the role claim maps to a Ward role"))
	}
	rec.Role = string(role)
	tenant := x.cfg.Tenant
	if x.cfg.TenantClaim != "" {
		tenant, _ = claims[x.cfg.TenantClaim].(string)
		rec.Tenant = ""
		if !TenantPattern.MatchString(tenant) {
			return refuse("unmapped-tenant", errors.New("the tenant claim is missing or not a tenant id"))
		}
	}
	if _, err := s.st.TenantByID(ctx, tenant); errors.Is(err, store.ErrNotFound) {
		return refuse("unknown-tenant", errors.New("the tenant does not exist"))
	} else if err != nil {
		return cached{}, err
	}
	rec.Tenant = tenant
	var practitioner string
	if x.cfg.PractitionerClaim != "" {
		if p, present := claims[x.cfg.PractitionerClaim]; present {
			ps, _ := p.(string)
			practitioner = strings.TrimPrefix(ps, "Practitioner/")
			if !fhirID.MatchString(practitioner) {
				return refuse("bad-practitioner-claim", errors.New("the practitioner claim is not a FHIR id"))
			}
		}
	}
	exp, _ := claims.GetExpirationTime()
	iat, _ := claims.GetIssuedAt()
	e := cached{subj: authz.Subject{Tenant: tenant, ID: rec.Actor, Role: role, Scopes: strings.Fields(x.cfg.Scope)},
		exp: exp.Time, jti: "ext-" + hex.EncodeToString(sum[:16])}
	if role == authz.RolePhysician || role == authz.RoleNurse {
		// The care relationship rules need to know which Practitioner
		// the clinician is.
		e.subj.Practitioner = practitioner
	}
	if iat != nil {
		e.iat = iat.Time
	}
	rec.Detail = "accepted"
	if err := s.ledger().Record(ctx, rec); err != nil {
		return cached{}, err
	}
	return e, nil
}

// role maps the role claim (a string or an array of strings) to the most
// privileged Ward role any of its values maps to.
func (x *external) role(claims jwt.MapClaims) (authz.Role, bool) {
	var values []string
	switch v := claims[x.cfg.RoleClaim].(type) {
	case string:
		values = []string{v}
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok {
				values = append(values, s)
			}
		}
	}
	best := -1
	for _, v := range values {
		if r, ok := x.cfg.Roles[v]; ok {
			if i := slices.Index(authz.Roles, authz.Role(r)); i >= 0 && (best < 0 || i < best) {
				best = i
			}
		}
	}
	if best < 0 {
		return "", false
	}
	return authz.Roles[best], true
}

// issuerTag names an issuer in the ledger: a short hash of its URL.
func issuerTag(iss string) string {
	sum := sha256.Sum256([]byte(iss))
	return hex.EncodeToString(sum[:6])
}
