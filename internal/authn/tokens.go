// Package authn turns credentials into signed access tokens and bearer
// tokens back into an authz.Subject.
//
// Guarantees: passwords are stored only as argon2id hashes and compared in
// constant time; access tokens are RS256 JWTs signed by a key whose private
// half is stored only sealed (seal.Keyring) in the database; Verify accepts
// only RS256 tokens with Ward's issuer and audience, a known key id and an
// unexpired lifetime, or tokens of a configured trusted OpenID Connect
// issuer checked the same way against that issuer's keys, audience and
// allowed algorithms. Verified tokens are cached until they expire, so the
// signature check runs once per token rather than once per request. A
// revoked token is refused by the node that revoked it at once; on a node
// given Options.Peers and Live (the invalidation bus) it is refused by every
// node as soon as the revocation arrives, and while Live is false every
// Verify checks the store; without them other nodes reload revocations
// every RevocationRefresh.
// Authorization codes are stored only hashed, used once, and bound to the
// client, redirect URI and PKCE S256 challenge they were issued for. EHR
// launch values are stored only hashed, used once, and bound to the tenant,
// the user who created them and one app. Client secrets of confidential
// apps are stored only as argon2id hashes and compared in constant time.
package authn

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/store"
)

// Sentinel errors.
var (
	// ErrInvalidToken: the bearer token is missing, malformed, expired, or
	// not signed by a key of this server.
	ErrInvalidToken = errors.New("invalid token")
	// ErrInvalidGrant: the username or password is wrong, or the user is
	// disabled. The message never says which.
	ErrInvalidGrant = errors.New("invalid username or password")
	// ErrInvalidScope: the requested scope does not parse.
	ErrInvalidScope = errors.New("invalid scope")
)

// DefaultScope is granted to a password login that asks for none: every
// permission, so that the role alone decides.
const DefaultScope = "user/*.cruds"

// SigningKeyPurpose is the store.Key purpose of sealed signing keys.
const SigningKeyPurpose = "jwt-signing"

// Store is what authn needs from storage.
type Store interface {
	UserByName(ctx context.Context, tenant, username string) (*store.User, error)
	UserByID(ctx context.Context, id string) (*store.User, error)
	RefreshByID(ctx context.Context, id string) (*store.Refresh, error)
	ClientByID(ctx context.Context, id string) (*store.Client, error)
	CodeByID(ctx context.Context, id string) (*store.Code, error)
	LaunchByID(ctx context.Context, id string) (*store.Launch, error)
	GrantOf(ctx context.Context, userID, clientID string) (*store.Grant, error)
	Grants(ctx context.Context, tenant, userID string) ([]store.Grant, error)
	TenantByID(ctx context.Context, id string) (*store.Tenant, error)
	Revoked(ctx context.Context) ([]string, error)
	DisabledSubjects(ctx context.Context) ([]string, error)
	Keys(ctx context.Context, purpose string) ([]store.Key, error)
	Commit(ctx context.Context, u *store.Unit) error
}

// Change is what a commit on one node changed in what every node caches:
// a revoked access token, a disabled or enabled user or client, or the
// signing keys.
type Change struct {
	// Tenant and JTI name a revoked access token; an empty JTI asks the
	// receiver to reload every revocation and disabled subject from the
	// store.
	Tenant, JTI string
	// Keys: the signing keys changed (a rotation).
	Keys bool
}

// Publisher tells the other nodes of a cluster what this node changed,
// after the commit.
type Publisher interface {
	TokensChanged(Change)
}

// Live reports whether the revocations this node holds are complete: false
// while it may have missed another node's revocation.
type Live interface {
	Live() bool
}

// Sealer seals the signing keys at rest.
type Sealer interface {
	Seal(keyID string, plaintext, aad []byte) ([]byte, error)
	Open(envelope, aad []byte) ([]byte, error)
}

// Options configure a Service.
type Options struct {
	Issuer   string        // the iss claim; the server's public base URL
	Audience string        // the aud claim
	TTL      time.Duration // access token lifetime
	Tenant   string        // the tenant of password logins (one for now)
	// SealKeyID is the keyring key that seals signing keys.
	SealKeyID string
	Now       func() time.Time
	// External are the trusted external OpenID Connect issuers.
	External []IssuerConfig
	// HTTPClient fetches external issuers' keys (default: 5 s timeout).
	HTTPClient *http.Client
	// RevocationRefresh is how often the revocations are reloaded from
	// the store (0: 5 s): the safety net under Peers.
	RevocationRefresh time.Duration
	// Peers, when set, is told of every revocation and rotation, for the
	// other nodes; Live, when set, makes every Verify check the store
	// while revocations may be missed. Both nil: a single node.
	Peers Publisher
	Live  Live
	// StyleURL is the smart_style_url of token responses with launch
	// context ("" : none).
	StyleURL string
}

type signingKey struct {
	kid     string
	priv    *rsa.PrivateKey
	created time.Time
}

// Service issues and verifies tokens.
type Service struct {
	o      Options
	st     Store
	sealer Sealer

	mu     sync.RWMutex
	signer *signingKey
	public map[string]*rsa.PublicKey

	cache tokenCache
	// reloadMu guards the signer refresh of Issue.
	reloadMu   sync.Mutex
	lastSigner time.Time
	// kidMu coalesces reloading keys for an unknown kid (a key that
	// another node created after this one loaded its keys).
	kidMu      sync.Mutex
	lastReload time.Time

	revMu      sync.RWMutex
	revokedSet map[string]struct{}
	// disabledSet holds the subjects (user ids, "client/"+id) whose
	// tokens are refused because the user or client is disabled.
	disabledSet map[string]struct{}
	revokedAt   time.Time
	revLoading  atomic.Bool
	// revSeq numbers reloads as they start; a reload replaces the sets
	// only if none that started after it has done so already.
	revSeq, revApplied uint64
	// marked collects revocations marked while a reload runs (reloads >
	// 0), so that replacing the set with what the store said before
	// their commit cannot drop them.
	marked  map[string]struct{}
	reloads int

	external []*external
}

// New loads the signing keys, creating the first one if there is none.
func New(ctx context.Context, st Store, sealer Sealer, o Options) (*Service, error) {
	if o.TTL <= 0 {
		o.TTL = 15 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Audience == "" {
		o.Audience = "ward"
	}
	if o.RevocationRefresh <= 0 {
		o.RevocationRefresh = defaultRevocationRefresh
	}
	s := &Service{o: o, st: st, sealer: sealer, public: map[string]*rsa.PublicKey{}, lastSigner: time.Now(),
		revokedSet: map[string]struct{}{}, disabledSet: map[string]struct{}{}}
	s.cache.entries = map[string]cached{}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	for _, c := range o.External {
		s.external = append(s.external, newExternal(c, o.HTTPClient))
	}
	if err := s.loadKeys(ctx); err != nil {
		return nil, err
	}
	// Loaded before the first request, so that concurrent first requests
	// (which do not wait for a reload in progress) see them.
	s.reloadRevoked(ctx)
	if s.signer == nil {
		if err := s.createKey(ctx); err != nil {
			return nil, err
		}
		if err := s.loadKeys(ctx); err != nil {
			return nil, err
		}
		if s.signer == nil {
			return nil, errors.New("signing key was created but cannot be loaded")
		}
	}
	return s, nil
}

func keyAAD(kid string) []byte { return []byte("ward/signing-key/v1/" + kid) }

// ledger is the audit recorder: every record the service writes goes
// through it, and fails closed.
func (s *Service) ledger() *store.Recorder { return store.NewRecorder(s.st) }

func (s *Service) loadKeys(ctx context.Context) error {
	keys, err := s.st.Keys(ctx, SigningKeyPurpose)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	public := map[string]*rsa.PublicKey{}
	var newest *signingKey
	for _, k := range keys {
		der, err := s.sealer.Open(k.Wrapped, keyAAD(k.ID))
		if err != nil {
			return fmt.Errorf("open signing key %s: %w", k.ID, err)
		}
		pk, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return fmt.Errorf("parse signing key %s: %w", k.ID, err)
		}
		rk, ok := pk.(*rsa.PrivateKey)
		if !ok {
			return fmt.Errorf("signing key %s is not RSA", k.ID)
		}
		public[k.ID] = &rk.PublicKey
		newest = &signingKey{kid: k.ID, priv: rk, created: k.Created} // keys come oldest first
	}
	s.mu.Lock()
	s.public = public
	s.signer = newest
	s.mu.Unlock()
	return nil
}

func (s *Service) createKey(ctx context.Context) error {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(pub)
	kid := base64.RawURLEncoding.EncodeToString(sum[:12])
	sealed, err := s.sealer.Seal(s.o.SealKeyID, der, keyAAD(kid))
	if err != nil {
		return fmt.Errorf("seal signing key: %w", err)
	}
	// The newest key signs: keep creation times strictly increasing, at
	// the store's microsecond precision, even under a coarse or fixed clock.
	now := s.o.Now().UTC().Truncate(time.Microsecond)
	s.mu.RLock()
	if s.signer != nil && !now.After(s.signer.created) {
		now = s.signer.created.Add(time.Microsecond)
	}
	s.mu.RUnlock()
	return s.ledger().Commit(ctx, &store.Unit{Parts: []store.Part{store.NewKey{Key: &store.Key{ID: kid, Purpose: SigningKeyPurpose, Tenant: "", Wrapped: sealed, Created: now}}}}, &audit.Record{Time: now, Actor: "system", Role: "system", Action: "signing-key-create",
		Entities: []string{"signing-key/" + kid}})
}

// Rotate creates a new signing key: it signs every token from now on (on
// other nodes within signerRefresh), while the previous keys keep verifying
// the tokens they signed.
func (s *Service) Rotate(ctx context.Context) (kid string, err error) {
	if err := s.createKey(ctx); err != nil {
		return "", err
	}
	if err := s.loadKeys(ctx); err != nil {
		return "", err
	}
	if s.o.Peers != nil {
		s.o.Peers.TokensChanged(Change{Keys: true})
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.signer.kid, nil
}

// TokensChanged applies another node's change: a revoked token is refused
// from now on, a change without a token id reloads the revocations and the
// disabled subjects; new signing keys are loaded and the newest signs.
func (s *Service) TokensChanged(c Change) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c.Keys {
		s.reloadMu.Lock()
		if err := s.loadKeys(ctx); err == nil {
			s.lastSigner = time.Now()
		}
		s.reloadMu.Unlock()
	}
	if c.Tenant == "" {
		return
	}
	if c.JTI != "" {
		s.markRevoked(c.JTI)
		return
	}
	s.reloadRevoked(ctx)
}

// ResetCaches reloads what other nodes could have changed unnoticed (the
// revocations and the signing keys): their messages may have been lost.
func (s *Service) ResetCaches() {
	s.TokensChanged(Change{Keys: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.reloadRevoked(ctx)
}

func (s *Service) markRevoked(jti string) {
	s.revMu.Lock()
	s.revokedSet[jti] = struct{}{}
	if s.marked != nil {
		s.marked[jti] = struct{}{}
	}
	s.revMu.Unlock()
}

// SubjectsChanged is called after a user or client of tenant was disabled
// or enabled: this node reloads the disabled subjects at once, and the
// other nodes (through Peers) too.
func (s *Service) SubjectsChanged(ctx context.Context, tenant string) {
	s.reloadRevoked(ctx)
	if s.o.Peers != nil {
		s.o.Peers.TokensChanged(Change{Tenant: tenant})
	}
}

// reloadRevoked replaces the revocation set and the disabled subjects from
// the store; if that fails they are marked stale, so the next Verify
// loads them (and refuses the token if it cannot).
func (s *Service) reloadRevoked(ctx context.Context) error {
	s.revMu.Lock()
	if s.reloads++; s.marked == nil {
		s.marked = map[string]struct{}{}
	}
	s.revSeq++
	seq := s.revSeq
	s.revMu.Unlock()
	ids, err := s.st.Revoked(ctx)
	var subjects []string
	if err == nil {
		subjects, err = s.st.DisabledSubjects(ctx)
	}
	s.revMu.Lock()
	defer s.revMu.Unlock()
	set := make(map[string]struct{}, len(ids)+len(s.marked))
	for id := range s.marked {
		set[id] = struct{}{}
	}
	if s.reloads--; s.reloads == 0 {
		s.marked = nil
	}
	if err != nil {
		s.revokedAt = time.Time{}
		return err
	}
	if seq < s.revApplied {
		return nil // a reload that started later has applied fresher sets
	}
	for _, id := range ids {
		set[id] = struct{}{}
	}
	disabled := make(map[string]struct{}, len(subjects))
	for _, id := range subjects {
		disabled[id] = struct{}{}
	}
	s.revokedSet, s.disabledSet, s.revokedAt, s.revApplied = set, disabled, time.Now(), seq
	return nil
}

// signerRefresh is how often Issue looks for a newer signing key.
const signerRefresh = time.Minute

// Claims are the access token's claims.
type Claims struct {
	jwt.RegisteredClaims
	Tenant string `json:"tenant"`
	Role   string `json:"role"`
	Scope  string `json:"scope,omitempty"`
	// FHIRUser is the SMART fhirUser claim: Practitioner/<id> for a
	// linked physician or nurse, Patient/<id> for a linked user.
	FHIRUser string `json:"fhirUser,omitempty"`
	// Patient is the SMART patient context: the linked patient of a
	// user-role account, or the launch's or picker's patient.
	Patient string `json:"patient,omitempty"`
	// Encounter is the SMART encounter context of an EHR launch.
	Encounter string `json:"encounter,omitempty"`
	// ClientID is the app the token was issued to ("" : none).
	ClientID string `json:"client_id,omitempty"`
	// Clearance lists the security label codes the user may see,
	// space-separated.
	Clearance string `json:"clearance,omitempty"`
	// PurposeOfUse is the v3 PurposeOfUse code the token was granted for
	// (as in IHE IUA); the X-Purpose-Of-Use header may not contradict it.
	PurposeOfUse string `json:"purpose_of_use,omitempty"`
}

// Token is an issued access token, with a refresh token when the grant
// asked for one (offline_access or online_access).
type Token struct {
	AccessToken  string
	ExpiresIn    time.Duration
	Scope        string
	RefreshToken string
	// IDToken is an OpenID Connect id_token, for an authorization code
	// grant whose scope has openid.
	IDToken string
	// Patient and Encounter are the launch context (EHR launch, picker
	// or the user's own record), for the token response.
	Patient, Encounter string
	// LaunchContext: the token response carries SMART launch context
	// (need_patient_banner, smart_style_url); NeedPatientBanner is false
	// after an EHR launch (the EHR shows the banner).
	LaunchContext, NeedPatientBanner bool
	// StyleURL is smart_style_url (Options.StyleURL).
	StyleURL string

	jti     string    // the access token's id
	expires time.Time // and expiry
}

// Issue signs an access token for subject.
func (s *Service) Issue(subj authz.Subject) (Token, error) { return s.issue(subj, s.o.TTL) }

// IssueShort signs an access token for subject that lives ttl (at most
// the configured TTL): a websocket binding token
// ($get-ws-binding-token), no broader than the caller it is issued to.
func (s *Service) IssueShort(subj authz.Subject, ttl time.Duration) (Token, error) {
	return s.issue(subj, min(ttl, s.o.TTL))
}

func (s *Service) issue(subj authz.Subject, ttl time.Duration) (Token, error) {
	return s.issueFor(subj, ttl, appContext{})
}

// appContext is what a token issued to an app adds to its claims.
type appContext struct{ ClientID, Encounter string }

func (s *Service) issueFor(subj authz.Subject, ttl time.Duration, ac appContext) (Token, error) {
	s.reloadMu.Lock()
	if time.Since(s.lastSigner) > signerRefresh {
		s.lastSigner = time.Now()
		if err := s.loadKeys(context.Background()); err != nil {
			s.reloadMu.Unlock()
			return Token{}, err
		}
	}
	s.reloadMu.Unlock()
	s.mu.RLock()
	k := s.signer
	s.mu.RUnlock()
	now := s.o.Now()
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return Token{}, err
	}
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.o.Issuer,
			Subject:   subj.ID,
			Audience:  jwt.ClaimStrings{s.o.Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Second)),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			ID:        hex.EncodeToString(jti),
		},
		Tenant:    subj.Tenant,
		Role:      string(subj.Role),
		Scope:     strings.Join(subj.Scopes, " "),
		Patient:   subj.Patient,
		Clearance: strings.Join(subj.Clearances, " "),
		Encounter: ac.Encounter,
		ClientID:  ac.ClientID,

		PurposeOfUse: subj.Purpose,
	}
	c.FHIRUser = fhirUserOf(subj)
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	t.Header["kid"] = k.kid
	signed, err := t.SignedString(k.priv)
	if err != nil {
		return Token{}, fmt.Errorf("sign token: %w", err)
	}
	return Token{AccessToken: signed, ExpiresIn: ttl, Scope: c.Scope, jti: c.ID, expires: c.ExpiresAt.Time}, nil
}

// idToken signs an OpenID Connect id_token for a user and the app it was
// issued to. It names the user by id; with scope fhirUser it also names
// the FHIR resource the user is (SMART fhirUser: the absolute URL of the
// linked Practitioner, or of the Patient of a user-role account) under
// fhirBase.
func (s *Service) idToken(u *store.User, clientID, scope, fhirBase string) (string, error) {
	s.mu.RLock()
	k := s.signer
	s.mu.RUnlock()
	now := s.o.Now()
	claims := jwt.MapClaims{"iss": s.o.Issuer, "sub": u.ID, "aud": clientID, "iat": now.Unix(), "exp": now.Add(s.o.TTL).Unix()}
	if slices.Contains(strings.Fields(scope), "fhirUser") && fhirBase != "" {
		if ref := fhirUserOf(subjectOf(u, "")); ref != "" {
			claims["fhirUser"] = strings.TrimSuffix(fhirBase, "/") + "/" + ref
		}
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = k.kid
	return t.SignedString(k.priv)
}

// fhirUserOf is the relative reference of the FHIR resource a subject is
// ("" : none).
func fhirUserOf(subj authz.Subject) string {
	switch {
	case subj.Practitioner != "":
		return "Practitioner/" + subj.Practitioner
	case subj.Role == authz.RoleUser && subj.Patient != "":
		return "Patient/" + subj.Patient
	}
	return ""
}

// Verify checks a bearer token and returns its subject. A revoked token is
// refused: on this node at once; on other nodes at once when they share an
// invalidation bus (Options.Peers and Live), else within RevocationRefresh.
func (s *Service) Verify(ctx context.Context, token string) (authz.Subject, error) {
	e, err := s.verify(ctx, token)
	if err != nil {
		return authz.Subject{}, err
	}
	return e.subj, nil
}

func (s *Service) verify(ctx context.Context, token string) (cached, error) {
	now := s.o.Now()
	e, ok := s.cache.get(token, now)
	if !ok {
		var err error
		if e, err = s.parse(ctx, token); err != nil {
			return cached{}, err
		}
		s.cache.put(token, e, now)
	}
	if s.revoked(ctx, e.jti, e.subj.ID) {
		return cached{}, fmt.Errorf("%w: revoked", ErrInvalidToken)
	}
	return e, nil
}

func (s *Service) parse(ctx context.Context, token string) (cached, error) {
	if x := s.externalIssuer(token); x != nil {
		return s.parseExternal(ctx, x, token)
	}
	var c Claims
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithIssuer(s.o.Issuer),
		jwt.WithAudience(s.o.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(s.o.Now),
	)
	_, err := parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if pk := s.publicKey(ctx, kid); pk != nil {
			return pk, nil
		}
		return nil, errors.New("unknown key id")
	})
	if err != nil {
		return cached{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	role, ok := authz.ParseRole(c.Role)
	if !ok && authz.Role(c.Role) == authz.RoleClient {
		role, ok = authz.RoleClient, true
	}
	if !ok || c.Subject == "" || c.Tenant == "" || c.ID == "" {
		return cached{}, fmt.Errorf("%w: missing subject, tenant, role or id", ErrInvalidToken)
	}
	subj := authz.Subject{Tenant: c.Tenant, ID: c.Subject, Role: role}
	if c.Scope != "" {
		subj.Scopes = strings.Fields(c.Scope)
	}
	if typ, id, ok := strings.Cut(c.FHIRUser, "/"); ok && typ == "Practitioner" && fhirID.MatchString(id) {
		subj.Practitioner = id
	}
	if fhirID.MatchString(c.Patient) {
		subj.Patient = c.Patient
	}
	subj.Clearances = strings.Fields(c.Clearance)
	subj.Purpose = c.PurposeOfUse // an unknown code is refused by authz.Decide
	e := cached{subj: subj, exp: c.ExpiresAt.Time, jti: c.ID, iat: c.IssuedAt.Time, clientID: c.ClientID, fhirUser: c.FHIRUser}
	if fhirID.MatchString(c.Encounter) {
		e.encounter = c.Encounter
	}
	return e, nil
}

// defaultRevocationRefresh is how stale a node's view of revocations made
// on other nodes may be without an invalidation bus.
const defaultRevocationRefresh = 5 * time.Second

// revoked reports whether token jti was revoked or its subject (a user id
// or "client/"+id) is disabled, reloading both lists from the store when
// they are older than RevocationRefresh, and asking the store every time
// while Live says changes may have been missed. If the store cannot answer
// the token is refused: a revocation must not be missed.
func (s *Service) revoked(ctx context.Context, jti, subject string) bool {
	s.revMu.RLock()
	gone := s.refusedLocked(jti, subject)
	stale := time.Since(s.revokedAt) > s.o.RevocationRefresh
	s.revMu.RUnlock()
	if gone {
		return true
	}
	if s.o.Live != nil && !s.o.Live.Live() {
		ids, err := s.st.Revoked(ctx)
		if err != nil || slices.Contains(ids, jti) {
			return true
		}
		subjects, err := s.st.DisabledSubjects(ctx)
		return err != nil || slices.Contains(subjects, subject)
	}
	if !stale || !s.revLoading.CompareAndSwap(false, true) {
		return false
	}
	defer s.revLoading.Store(false)
	if err := s.reloadRevoked(ctx); err != nil {
		return true
	}
	s.revMu.RLock()
	defer s.revMu.RUnlock()
	return s.refusedLocked(jti, subject)
}

func (s *Service) refusedLocked(jti, subject string) bool {
	_, gone := s.revokedSet[jti]
	_, disabled := s.disabledSet[subject]
	return gone || disabled
}

// Revoke revokes an access token (RFC 7009): presenting it is the proof of
// possession. An invalid or unknown token is not an error (RFC 7009 2.2).
func (s *Service) Revoke(ctx context.Context, requestID, token string) error {
	e, err := s.verify(ctx, token)
	if err != nil {
		return nil
	}
	now := s.o.Now().UTC()
	err = s.ledger().Commit(ctx, &store.Unit{Parts: []store.Part{store.RevokeToken{JTI: e.jti, Expires: e.exp}}}, &audit.Record{Time: now, Tenant: e.subj.Tenant, RequestID: requestID, Actor: e.subj.ID, Role: string(e.subj.Role),
		Action: "token-revoke", Entities: []string{"token/" + e.jti}})
	if err != nil {
		return err
	}
	s.markRevoked(e.jti)
	if s.o.Peers != nil {
		s.o.Peers.TokensChanged(Change{Tenant: e.subj.Tenant, JTI: e.jti})
	}
	return nil
}

// Introspect describes a token (RFC 7662): active with its claims, or
// inactive (expired, revoked, malformed, or not Ward's) with nothing else.
func (s *Service) Introspect(ctx context.Context, token string) map[string]any {
	e, err := s.verify(ctx, token)
	if err != nil {
		return map[string]any{"active": false}
	}
	out := map[string]any{
		"active": true, "sub": e.subj.ID, "scope": strings.Join(e.subj.Scopes, " "), "exp": e.exp.Unix(), "iat": e.iat.Unix(),
		"iss": s.o.Issuer, "aud": s.o.Audience, "token_type": "Bearer", "jti": e.jti, "tenant": e.subj.Tenant, "role": string(e.subj.Role),
	}
	// The SMART context the token carries (RFC 7662 allows more members).
	for k, v := range map[string]string{"patient": e.subj.Patient, "encounter": e.encounter, "client_id": e.clientID, "fhirUser": e.fhirUser} {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

// keyReloadInterval is the least time between two reloads of the signing
// keys for unknown kids, so that tokens with made-up kids cost the store at
// most one read per interval.
const keyReloadInterval = time.Second

func (s *Service) publicKey(ctx context.Context, kid string) *rsa.PublicKey {
	s.mu.RLock()
	pk := s.public[kid]
	s.mu.RUnlock()
	if pk != nil || kid == "" {
		return pk
	}
	// Another node may have created a key after this one loaded its keys.
	// A token signed by it was issued after its commit, so a reload that
	// starts after the token arrived finds it: wait for one (they are
	// coalesced and spaced by keyReloadInterval) rather than refuse a good
	// token because a reload ran a moment ago.
	arrived := time.Now()
	s.kidMu.Lock()
	defer s.kidMu.Unlock()
	if s.lastReload.Before(arrived) {
		if wait := keyReloadInterval - time.Since(s.lastReload); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil
			}
		}
		s.lastReload = time.Now()
		if err := s.loadKeys(ctx); err != nil {
			return nil
		}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.public[kid]
}

// JWKS returns the public signing keys as a JSON Web Key Set.
func (s *Service) JWKS() map[string]any {
	s.mu.RLock()
	defer s.mu.RUnlock()
	kids := make([]string, 0, len(s.public))
	for kid := range s.public {
		kids = append(kids, kid)
	}
	sort.Strings(kids)
	keys := make([]map[string]string, 0, len(kids))
	for _, kid := range kids {
		pk := s.public[kid]
		keys = append(keys, map[string]string{
			"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
			"n": base64.RawURLEncoding.EncodeToString(pk.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pk.E)).Bytes()),
		})
	}
	return map[string]any{"keys": keys}
}

// PasswordRequest is an OAuth2 password grant.
type PasswordRequest struct {
	RequestID string
	Username  string
	Password  string
	Scope     string // empty: DefaultScope
	TOTP      string // the current code, for users enrolled in TOTP
	Tenant    string // empty: the configured tenant of password logins
	// Address is the client address as a keyed tag (never the address):
	// the login's ledger record names it, for the new-address alert.
	Address string
}

// PasswordGrant checks a username and password and issues a token. Every
// attempt, success or failure, is recorded in the ledger before the answer.
func (s *Service) PasswordGrant(ctx context.Context, pr PasswordRequest) (Token, error) {
	scope := pr.Scope
	if scope == "" {
		scope = DefaultScope
	}
	if _, err := authz.ParseScopes(scope); err != nil {
		return Token{}, fmt.Errorf("%w: %v", ErrInvalidScope, err)
	}
	u, unit, rec, err := s.checkLogin(ctx, loginAttempt{RequestID: pr.RequestID, Tenant: pr.Tenant, Username: pr.Username, Password: pr.Password, TOTP: pr.TOTP, Address: pr.Address})
	if err != nil {
		return Token{}, err
	}
	tok, err := s.Issue(subjectOf(u, scope))
	if err != nil {
		return Token{}, err
	}
	rec.Detail = "token-issued"
	var nr *store.Refresh
	if tok.RefreshToken, nr, err = newRefresh(u, scope, "", s.o.Now().UTC()); err != nil {
		return Token{}, err
	}
	if nr != nil {
		unit.Parts = append(unit.Parts, store.NewRefresh{Refresh: nr})
	}
	if err := s.ledger().Commit(ctx, unit, rec); err != nil {
		return Token{}, err
	}
	return tok, nil
}

// subjectOf is the subject of a token issued to a user: every grant that
// issues a user token (password, authorization code, refresh) builds it
// here, so that whatever a user carries into its tokens is added once.
func subjectOf(u *store.User, scope string) authz.Subject {
	// An unknown stored role parses as "", which every decision refuses.
	role, _ := authz.ParseRole(u.Role)
	return UserSubject(u, role, scope)
}

// loginAttempt is a username, password and TOTP code typed into the
// password grant or the login page.
type loginAttempt struct {
	RequestID, Tenant, Username, Password, TOTP string
	Address                                     string // keyed tag of the client address
}

// checkLogin checks a login attempt: tenant, password, account state,
// lockout and TOTP. A failure is committed to the ledger (and the lockout
// counter) here and returns ErrInvalidGrant. A success returns the user and
// a unit holding the ledger record (action login, detail to be set by the
// caller) and the reset of the lockout state, for the caller to commit
// together with what it issues.
// checkLogin checks a login attempt and returns the user with the unit
// and record a success commits (the caller adds to both); a refusal is
// recorded here.
func (s *Service) checkLogin(ctx context.Context, la loginAttempt) (*store.User, *store.Unit, *audit.Record, error) {
	tenant := la.Tenant
	if tenant == "" {
		tenant = s.o.Tenant
	}
	now := s.o.Now().UTC()
	var u *store.User
	var err error
	if TenantPattern.MatchString(tenant) {
		u, err = s.st.UserByName(ctx, tenant, la.Username)
	} else {
		tenant, err = "", store.ErrNotFound
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		VerifyPassword(dummyHash, la.Password)
		u = nil
	case err != nil:
		return nil, nil, nil, err
	}
	rec := &audit.Record{Time: now, Tenant: tenant, RequestID: la.RequestID, Action: "login"}
	if la.Address != "" {
		rec.Entities = []string{"client-address/" + la.Address}
	}
	locked := u != nil && now.Before(u.LockedUntil)
	_, validRole := authz.ParseRole(roleOf(u))
	ok := u != nil && !u.Disabled && !locked && validRole && VerifyPassword(u.PasswordHash, la.Password)
	if locked {
		VerifyPassword(dummyHash, la.Password) // same time as any other refusal
	}
	detail := "invalid-credentials"
	var totpStep int64
	if ok && u.TOTPSecret != nil {
		var why string
		totpStep, why = s.checkTOTP(u, la.TOTP, now)
		if why != "" {
			ok, detail = false, why
		}
	}
	if !ok {
		rec.Outcome = audit.OutcomeMinor
		rec.Detail = detail
		unit := &store.Unit{}
		if u != nil {
			// The attempt is attributed to the account by id, never by the
			// typed username (which may be a mistyped password).
			rec.Actor, rec.Role = u.ID, u.Role
			if locked {
				rec.Detail = "locked"
			} else {
				st := lockout(u.FailedLogins+1, now)
				st.UserID = u.ID
				unit.Parts = append(unit.Parts, &st)
				if !st.LockedUntil.IsZero() {
					rec.Detail += ";locked"
				}
			}
		}
		if err := s.ledger().Commit(ctx, unit, rec); err != nil {
			return nil, nil, nil, err
		}
		return nil, nil, nil, ErrInvalidGrant
	}
	rec.Actor, rec.Role = u.ID, u.Role
	unit := &store.Unit{}
	if u.FailedLogins > 0 || !u.LockedUntil.IsZero() || totpStep != 0 {
		unit.Parts = append(unit.Parts, &store.LoginState{UserID: u.ID, TOTPLastStep: totpStep})
	}
	return u, unit, rec, nil
}

func roleOf(u *store.User) string {
	if u == nil {
		return ""
	}
	return u.Role
}

// Lockout policy: after LockoutThreshold consecutive failures an account
// refuses logins for LockoutBase, doubling with each further failure up to
// LockoutMax. A success resets it.
const (
	LockoutThreshold = 5
	LockoutBase      = 30 * time.Second
	LockoutMax       = time.Hour
)

func lockout(failed int, now time.Time) store.LoginState {
	st := store.LoginState{FailedLogins: failed}
	if failed >= LockoutThreshold {
		d := LockoutBase
		for i := LockoutThreshold; i < failed && d < LockoutMax; i++ {
			d *= 2
		}
		st.LockedUntil = now.Add(min(d, LockoutMax))
	}
	return st
}

// tokenCache maps verified tokens to their subject until they expire.
type tokenCache struct {
	mu      sync.RWMutex
	entries map[string]cached
}

type cached struct {
	subj     authz.Subject
	exp, iat time.Time
	jti      string
	// What introspection shows besides the subject.
	encounter, clientID, fhirUser string
}

const maxCachedTokens = 100_000

func (c *tokenCache) get(tok string, now time.Time) (cached, bool) {
	c.mu.RLock()
	e, ok := c.entries[tok]
	c.mu.RUnlock()
	if !ok || !now.Before(e.exp) {
		return cached{}, false
	}
	return e, true
}

func (c *tokenCache) put(tok string, e cached, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCachedTokens {
		for k, e := range c.entries {
			if !now.Before(e.exp) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxCachedTokens {
			clear(c.entries)
		}
	}
	c.entries[tok] = e
}

// UserSubject is the subject a token issued to user u carries: its role,
// the granted scopes, and its links (the Practitioner it is, the Patient it
// is or acts for) and clearances.
func UserSubject(u *store.User, role authz.Role, scope string) authz.Subject {
	s := authz.Subject{Tenant: u.Tenant, ID: u.ID, Role: role, Scopes: strings.Fields(scope), Clearances: u.Clearances}
	switch role {
	case authz.RolePhysician, authz.RoleNurse:
		s.Practitioner = u.Practitioner
	case authz.RoleUser:
		s.Patient = u.Patient
	}
	return s
}
