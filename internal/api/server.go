// Package api is Ward's HTTP edge: the FHIR REST API under /fhir, the
// OAuth token endpoint, JWKS and /health.
//
// Handlers are thin: they parse the HTTP request into a typed interaction,
// call the caller-bound repository (records.Repo) and write FHIR JSON. They
// never read storage themselves. Every error is mapped to a status and an
// OperationOutcome in one place (errors.go); no PHI goes into headers,
// errors or logs.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/authn"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/bulk"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
)

// Options configure the server.
type Options struct {
	// RequestContext, if set, derives each FHIR interaction's context
	// (the keys' erasure fence marks when the interaction began).
	RequestContext func(context.Context) context.Context
	// BaseURL is the public base of the server (no trailing slash), e.g.
	// https://ward.example.org. Empty: taken from each request's Host.
	BaseURL string
	// ReferentialIntegrity is declared in the CapabilityStatement
	// (referencePolicy enforced); records enforces it.
	ReferentialIntegrity bool
	MaxBodyBytes         int64
	Version              string
	// MaxCount caps _count.
	MaxCount int
	// LeakyIndex says identifying values are also indexed in clear (the
	// CapabilityStatement then lists no blind-index limits).
	LeakyIndex bool
	// Admin backs the admin API (users, clients) and records throttled
	// requests; nil disables both.
	Admin Admin
	// Webhooks backs /admin/webhooks (nil: not enabled).
	Webhooks Webhooks
	// Bulk runs Bulk Data exports; nil: no $export or $import routes.
	Bulk *bulk.Service
	// AuthLimit limits the OAuth endpoints (token, login form,
	// introspect, revoke) per client address; nil: no limit.
	AuthLimit Limiter
	// APILimit limits requests with a bearer token per subject (tenant
	// and user or client id); nil: no limit.
	APILimit Limiter
	// TrustedProxies are the proxies whose X-Forwarded-For names the
	// client address; empty: the connection's address is the client's.
	TrustedProxies []netip.Prefix
	// AddressTag names a client address in the ledger by a keyed hash
	// (the address itself is never recorded); nil: not named.
	AddressTag func(addr string) string
	// Limits bound the work of one request (issue #22).
	Limits Limits
	// CORSOrigins are the exact origins whose browser pages may call the
	// FHIR API, the token, revoke and introspect endpoints and
	// /.well-known; empty: no CORS headers.
	CORSOrigins []string
	// MaxHeaderBytes bounds a request's header block; larger is a 431
	// OperationOutcome (the http.Server's own limit must be higher, see
	// app.NewHTTPServer).
	MaxHeaderBytes int
	// Mounts add APIs outside /fhir behind the same edge (the clinic
	// JSON API).
	Mounts []Mounter
	// Ledger serves signed checkpoints and proofs (ledger.go); nil: no
	// /audit routes.
	Ledger Ledger
	// SMARTStyleURL is the smart_style_url token responses with launch
	// context carry ("" : none; discovery then lists no context-style).
	SMARTStyleURL string
}

// Limits bound the work of one request; a zero field is no bound.
type Limits struct {
	// Parse bounds every resource and Bundle body (array items,
	// elements, Bundle entries); Parse.BundleEntries also bounds the
	// resource lines of one $import.
	Parse fhir.Limits
	// PatchOps caps the operations of one JSON Patch or FHIRPath Patch.
	PatchOps int
	// SearchParams and SearchValues bound one search's parameters and
	// each parameter's values.
	SearchParams, SearchValues int
	// RequestTimeout bounds the time one FHIR interaction may work;
	// Bulk Data file downloads are not bounded by it.
	RequestTimeout time.Duration
}

// Tokens is what the API needs from authn.
type Tokens interface {
	Verify(ctx context.Context, token string) (authz.Subject, error)
	PasswordGrant(ctx context.Context, pr authn.PasswordRequest) (authn.Token, error)
	ClientCredentialsGrant(ctx context.Context, cr authn.ClientRequest) (authn.Token, error)
	RefreshGrant(ctx context.Context, rr authn.RefreshRequest) (authn.Token, error)
	Revoke(ctx context.Context, requestID, token string) error
	// SubjectsChanged is called after a user or client of tenant was
	// disabled or enabled, so that its tokens are refused (or accepted
	// again) at once, here and on the other nodes.
	SubjectsChanged(ctx context.Context, tenant string)
	Introspect(ctx context.Context, token string) map[string]any
	JWKS() map[string]any
}

// Health reports whether the server can serve.
type Health func(ctx context.Context) error

// Server is the HTTP handler.
type Server struct {
	opts    Options
	log     *slog.Logger
	records *records.Service
	tokens  Tokens
	health  Health
	handler http.Handler
	// mux routes requests after the edge: GET entries of a batch or
	// transaction are dispatched to it as the interactions they name.
	mux *http.ServeMux
	// capParams are the CapabilityStatement's search parameters, computed
	// once from the planner's tables.
	capParams map[string][]fhir.SearchParamCap
	// throttleAudit keeps the ledger records of throttled authentication
	// attempts to one per address per minute, and a few per second in all.
	throttleAudit throttleAudit
	// started is the CapabilityStatement's date: it changes when the
	// server (and so what it can do) does, which keeps its ETag stable.
	started time.Time
}

// New builds the handler chain.
func New(o Options, log *slog.Logger, rec *records.Service, tokens Tokens, health Health) *Server {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 16 << 20
	}
	if o.MaxCount <= 0 {
		o.MaxCount = 1000
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 64 << 10
	}
	s := &Server{opts: o, log: log, records: rec, tokens: tokens, health: health, capParams: capSearchParams(o.LeakyIndex), throttleAudit: newThrottleAudit(), started: time.Now().UTC().Truncate(time.Second)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", s.handleHealth)
	s.routeLedger(mux)
	mux.HandleFunc("GET /.well-known/jwks.json", s.handleJWKS)
	mux.HandleFunc("POST /oauth2/token", s.limitAuth(true, s.handleToken))
	mux.HandleFunc("POST /oauth2/revoke", s.limitAuth(true, s.handleRevoke))
	mux.HandleFunc("POST /oauth2/introspect", s.limitAuth(true, s.handleIntrospect))
	mux.HandleFunc("GET /.well-known/smart-configuration", s.handleSMARTConfig)
	mux.HandleFunc("GET /fhir/.well-known/smart-configuration", s.handleSMARTConfig)
	s.routeIdentity(mux)

	mux.HandleFunc("GET /fhir/metadata", s.handleMetadata)
	mux.HandleFunc("GET /fhir/$versions", s.handleVersions)
	mux.Handle("GET /fhir/_history", s.fhir(s.handleHistory))
	mux.Handle("POST /fhir", s.fhir(s.handleBundle))
	mux.Handle("GET /fhir", s.fhir(s.handleSearch))
	mux.Handle("POST /fhir/_search", s.fhir(s.handleSearch))
	mux.Handle("GET /fhir/{type}", s.fhir(s.handleSearch))
	mux.Handle("POST /fhir/{type}/_search", s.fhir(s.handleSearch))
	mux.Handle("POST /fhir/{type}", s.fhir(s.handleCreate))
	mux.Handle("GET /fhir/{type}/_history", s.fhir(s.handleHistory))
	mux.Handle("GET /fhir/{type}/{id}", s.fhir(s.handleRead))
	mux.Handle("PUT /fhir/{type}/{id}", s.fhir(s.handleUpdate))
	mux.Handle("DELETE /fhir/{type}/{id}", s.fhir(s.handleDelete))
	mux.Handle("PATCH /fhir/{type}/{id}", s.fhir(s.handlePatch))
	// Conditional update and delete (Type?search), and $everything.
	mux.Handle("PUT /fhir/{type}", s.fhir(s.handleConditionalUpdate))
	mux.Handle("DELETE /fhir/{type}", s.fhir(s.handleConditionalDelete))
	mux.Handle("PATCH /fhir/{type}", s.fhir(s.handleConditionalPatch))
	mux.Handle("GET /fhir/Patient/{id}/$everything", s.fhir(s.handleEverything))
	mux.Handle("GET /fhir/Patient/$everything", s.fhir(s.handleEverything))
	mux.Handle("GET /fhir/Patient/{id}/$disclosures", s.fhir(s.handleDisclosures))
	mux.Handle("POST /fhir/Patient/$merge", s.fhir(s.handleMerge))
	mux.Handle("POST /fhir/Patient/{id}/$erase", s.fhir(s.handleErase))
	mux.Handle("POST /fhir/AuditEvent/{id}/$withhold", s.fhir(s.handleWithhold))
	mux.Handle("GET /fhir/{type}/{id}/_history", s.fhir(s.handleHistory))
	mux.Handle("GET /fhir/{type}/{id}/{ctype}", s.fhir(s.handleCompartmentSearch))
	mux.Handle("GET /fhir/{type}/{id}/_history/{vid}", s.fhir(s.handleVRead))
	mux.Handle("POST /fhir/{type}/$validate", s.fhir(s.handleValidate))
	mux.Handle("POST /fhir/{type}/{id}/$validate", s.fhir(s.handleValidate))
	s.routeBulk(mux)
	for _, m := range o.Mounts {
		m.Mount(mux, Edge{s})
	}
	mux.HandleFunc("/fhir/{rest...}", s.handleUnrouted)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeOutcome(w, http.StatusNotFound, fhir.Issue{Severity: "error", Code: "not-found", Diagnostics: "no such endpoint; the FHIR API is under /fhir"})
	})
	s.mux = mux
	s.handler = s.edge(mux)
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// fhirHandler is a FHIR interaction handler: it gets the caller's
// repository and returns an error for the edge to map.
type fhirHandler func(w http.ResponseWriter, r *http.Request, repo *records.Repo) error

// fhir authenticates, negotiates the format and checks the resource type
// before the interaction runs.
func (s *Server) fhir(h fhirHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		subj, err := s.authenticate(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if subj, err = accessHeaders(r, subj); err != nil {
			s.writeError(w, r, err)
			return
		}
		rawBinary := r.PathValue("type") == "Binary" && (isRawBinaryWrite(r) || r.Method == http.MethodGet && wantsRawContent(r))
		if err := negotiate(r); err != nil && !strings.HasSuffix(r.URL.Path, "/$disclosures") && !rawBinary {
			s.writeError(w, r, err)
			return
		}
		if isXMLBody(r) {
			if err := s.xmlBody(r); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		if t := r.PathValue("type"); t != "" && !fhir.IsResourceType(t) {
			s.writeError(w, r, problem.New(problem.ErrNotFound, "not-supported", "unknown resource type in the URL: not an R4 resource type"))
			return
		}
		ctx := r.Context()
		if s.opts.RequestContext != nil {
			ctx = s.opts.RequestContext(ctx)
		}
		if d := s.opts.Limits.RequestTimeout; d > 0 && !rawBinary {
			// Raw Binary content is bounded by its size limit instead: a
			// large document takes as long as the network does.
			// The interaction's work stops when the request times out
			// (or the client goes away); the audit write has a context
			// of its own.
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		if ctx != r.Context() {
			r = r.WithContext(ctx)
		}
		handle := h
		if s.wantsAsync(r) {
			handle = s.handleAsyncKickoff
		}
		if r.PathValue("type") == "AuditEvent" {
			handle = s.handleAuditEvent // the ledger, not stored resources
		}
		if err := handle(w, r, s.repoFor(r, subj)); err != nil {
			s.writeError(w, r, err)
		}
	})
}

func (s *Server) authenticate(r *http.Request) (authz.Subject, error) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return authz.Subject{}, problem.New(problem.ErrUnauthorized, "login", "a bearer token is required (Authorization: Bearer <token>)")
	}
	subj, err := s.tokens.Verify(r.Context(), strings.TrimSpace(tok))
	if err != nil {
		return authz.Subject{}, problem.New(problem.ErrUnauthorized, "login", "the bearer token is invalid or expired")
	}
	if err := s.limitSubject(r, subj); err != nil {
		return authz.Subject{}, err
	}
	return subj, nil
}

func (s *Server) handleUnrouted(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.PathValue("rest"), "/"), "/")
	if len(parts) >= 1 && fhir.IsResourceType(parts[0]) && len(parts) <= 4 {
		writeOutcome(w, http.StatusMethodNotAllowed, fhir.Issue{Severity: "error", Code: "not-supported",
			Diagnostics: "method " + sanitizeMethod(r.Method) + " is not supported on this FHIR endpoint"})
		return
	}
	writeOutcome(w, http.StatusNotFound, fhir.Issue{Severity: "error", Code: "not-found", Diagnostics: "no such FHIR endpoint or resource type"})
}

// sanitizeMethod names a request's method for a message or the log only
// when it is one HTTP defines: any other word is the client's text.
func sanitizeMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "(unknown)"
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if err := s.health(r.Context()); err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelError, "health check failed", slog.String("error", err.Error()))
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"status":"unavailable"}`))
		return
	}
	w.Write([]byte(`{"status":"ok"}`))
}

func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	json.NewEncoder(w).Encode(s.tokens.JWKS())
}

// handleToken is the OAuth2 token endpoint (RFC 6749 section 5).
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	oauthError := func(status int, code, desc string) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Pragma", "no-cache")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
	}
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			oauthError(http.StatusRequestEntityTooLarge, "invalid_request", "request body too large")
			return
		}
		oauthError(http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return
	}
	var tok authn.Token
	var err error
	switch r.PostForm.Get("grant_type") {
	case "password":
	case "refresh_token":
		ca, basic, ok := s.clientAuth(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="ward", charset="UTF-8"`)
			oauthError(http.StatusUnauthorized, "invalid_client", "use one client authentication method: HTTP Basic with the form-urlencoded client_id and secret")
			return
		}
		tok, err = s.tokens.RefreshGrant(r.Context(), authn.RefreshRequest{
			RequestID: requestID(r.Context()), RefreshToken: r.PostForm.Get("refresh_token"), Scope: r.PostForm.Get("scope"), Client: ca,
		})
		switch {
		case errors.Is(err, authn.ErrInvalidClient):
			if basic {
				w.Header().Set("WWW-Authenticate", `Basic realm="ward", charset="UTF-8"`)
			}
			oauthError(http.StatusUnauthorized, "invalid_client", "client authentication failed")
		case errors.Is(err, authn.ErrInvalidScope):
			oauthError(http.StatusBadRequest, "invalid_scope", "the requested scope was not granted to this refresh token")
		case errors.Is(err, authn.ErrInvalidGrant):
			oauthError(http.StatusBadRequest, "invalid_grant", "the refresh token is invalid, expired, used or revoked")
		case err != nil:
			s.log.LogAttrs(r.Context(), slog.LevelError, "token endpoint", slog.String("request_id", requestID(r.Context())), slog.String("error", err.Error()))
			oauthError(http.StatusServiceUnavailable, "temporarily_unavailable", "try again later")
		default:
			writeToken(w, tok)
		}
		return
	case "client_credentials":
		tok, err = s.tokens.ClientCredentialsGrant(r.Context(), authn.ClientRequest{
			RequestID:     requestID(r.Context()),
			AssertionType: r.PostForm.Get("client_assertion_type"),
			Assertion:     r.PostForm.Get("client_assertion"),
			Scope:         r.PostForm.Get("scope"),
			Audience:      strings.TrimSuffix(s.base(r), "/fhir") + "/oauth2/token",
		})
		switch {
		case errors.Is(err, authn.ErrInvalidScope):
			oauthError(http.StatusBadRequest, "invalid_scope", "scope must be system/ scopes the client is registered for")
		case errors.Is(err, authn.ErrInvalidClient):
			oauthError(http.StatusUnauthorized, "invalid_client", "client authentication failed")
		case err != nil:
			s.log.LogAttrs(r.Context(), slog.LevelError, "token endpoint", slog.String("request_id", requestID(r.Context())), slog.String("error", err.Error()))
			oauthError(http.StatusServiceUnavailable, "temporarily_unavailable", "try again later")
		default:
			writeToken(w, tok)
		}
		return
	case "authorization_code":
		az := s.authorizer()
		if az == nil {
			oauthError(http.StatusBadRequest, "unsupported_grant_type", "supported grant types: password, client_credentials, refresh_token")
			return
		}
		f := r.PostForm
		ca, basic, ok := s.clientAuth(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="ward", charset="UTF-8"`)
			oauthError(http.StatusUnauthorized, "invalid_client", "use one client authentication method: HTTP Basic with the form-urlencoded client_id and secret")
			return
		}
		cr := authn.CodeRequest{RequestID: ca.RequestID, Code: f.Get("code"), ClientID: ca.ClientID, RedirectURI: f.Get("redirect_uri"),
			CodeVerifier: f.Get("code_verifier"), ClientSecret: ca.ClientSecret, AssertionType: ca.AssertionType, Assertion: ca.Assertion, Audience: ca.Audience,
			FHIRBase: s.base(r)}
		if cr.Code == "" || cr.ClientID == "" && cr.Assertion == "" || cr.RedirectURI == "" || cr.CodeVerifier == "" {
			oauthError(http.StatusBadRequest, "invalid_request", "code, client_id, redirect_uri and code_verifier are required")
			return
		}
		tok, err = az.AuthorizationCodeGrant(r.Context(), cr)
		switch {
		case errors.Is(err, authn.ErrInvalidClient):
			if basic {
				w.Header().Set("WWW-Authenticate", `Basic realm="ward", charset="UTF-8"`)
			}
			oauthError(http.StatusUnauthorized, "invalid_client", "client authentication failed")
		case errors.Is(err, authn.ErrInvalidGrant):
			oauthError(http.StatusBadRequest, "invalid_grant", "the code is invalid, expired or used, or does not match the client, redirect_uri or code_verifier")
		case err != nil:
			s.log.LogAttrs(r.Context(), slog.LevelError, "token endpoint", slog.String("request_id", requestID(r.Context())), slog.String("error", err.Error()))
			oauthError(http.StatusServiceUnavailable, "temporarily_unavailable", "try again later")
		default:
			writeToken(w, tok)
		}
		return
	case "":
		oauthError(http.StatusBadRequest, "invalid_request", "grant_type is required")
		return
	default:
		oauthError(http.StatusBadRequest, "unsupported_grant_type", "supported grant types: authorization_code, password, client_credentials, refresh_token")
		return
	}
	user, pass := r.PostForm.Get("username"), r.PostForm.Get("password")
	if user == "" || pass == "" {
		oauthError(http.StatusBadRequest, "invalid_request", "username and password are required")
		return
	}
	tok, err = s.tokens.PasswordGrant(r.Context(), authn.PasswordRequest{
		RequestID: requestID(r.Context()), Username: user, Password: pass,
		Scope: r.PostForm.Get("scope"), TOTP: r.PostForm.Get("totp"), Tenant: r.PostForm.Get("tenant"),
		Address: s.addressTag(r),
	})
	switch {
	case errors.Is(err, authn.ErrInvalidScope):
		oauthError(http.StatusBadRequest, "invalid_scope", "scope must be SMART scopes such as user/*.rs or user/Observation.read")
		return
	case errors.Is(err, authn.ErrInvalidGrant):
		oauthError(http.StatusBadRequest, "invalid_grant", "invalid username or password")
		return
	case err != nil:
		s.log.LogAttrs(r.Context(), slog.LevelError, "token endpoint", slog.String("request_id", requestID(r.Context())), slog.String("error", err.Error()))
		oauthError(http.StatusServiceUnavailable, "temporarily_unavailable", "try again later")
		return
	}
	writeToken(w, tok)
}

// handleRevoke is RFC 7009 token revocation: the token itself is the
// credential, and the answer is 200 whether or not it was valid.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("token") == "" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":"invalid_request","error_description":"token is required"}`))
		return
	}
	if err := s.tokens.Revoke(r.Context(), requestID(r.Context()), r.PostForm.Get("token")); err != nil {
		s.log.LogAttrs(r.Context(), slog.LevelError, "revoke", slog.String("request_id", requestID(r.Context())), slog.String("error", err.Error()))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"error":"temporarily_unavailable"}`))
		return
	}
	w.WriteHeader(http.StatusOK)
}

// handleIntrospect is RFC 7662 token introspection, for admins and backend
// clients (resource servers) only.
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	subj, err := s.authenticate(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if subj.Role != authz.RoleAdmin && subj.Role != authz.RoleClient {
		s.writeError(w, r, problem.New(problem.ErrForbidden, "forbidden", "introspection is for admins and backend clients"))
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("token") == "" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":"invalid_request","error_description":"token is required"}`))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(s.tokens.Introspect(r.Context(), r.PostForm.Get("token")))
}

// handleSMARTConfig is SMART App Launch 2.x discovery. It lists exactly
// what Ward implements: standalone launch (with the patient picker) and
// EHR launch (patient and encounter context) of public and confidential
// apps (client secret or private_key_jwt) by authorization code with PKCE
// S256, a consent screen remembered per user and app and managed at
// /oauth2/grants, backend services (client_credentials + private_key_jwt),
// the password grant, refresh tokens, OpenID Connect id_tokens with
// fhirUser, v1 and v2 scopes negotiated as subsets.
func (s *Server) handleSMARTConfig(w http.ResponseWriter, r *http.Request) {
	root := strings.TrimSuffix(s.base(r), "/fhir")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	caps := []string{"launch-standalone", "launch-ehr", "client-public", "client-confidential-symmetric", "client-confidential-asymmetric",
		"context-standalone-patient", "context-ehr-patient", "context-ehr-encounter", "context-banner",
		"sso-openid-connect", "permission-offline", "permission-online", "permission-patient", "permission-user", "permission-v1", "permission-v2"}
	if s.opts.SMARTStyleURL != "" {
		caps = append(caps, "context-style")
	}
	json.NewEncoder(w).Encode(map[string]any{
		"issuer":                                root,
		"jwks_uri":                              root + "/.well-known/jwks.json",
		"authorization_endpoint":                root + "/oauth2/authorize",
		"token_endpoint":                        root + "/oauth2/token",
		"revocation_endpoint":                   root + "/oauth2/revoke",
		"introspection_endpoint":                root + "/oauth2/introspect",
		"management_endpoint":                   root + "/oauth2/grants",
		"grant_types_supported":                 []string{"authorization_code", "client_credentials", "password", "refresh_token"},
		"token_endpoint_auth_methods_supported": authMethodsSupported,
		"token_endpoint_auth_signing_alg_values_supported": []string{"RS384", "ES384", "RS256", "ES256"},
		"scopes_supported":                 scopesSupported,
		"response_types_supported":         []string{"code"},
		"code_challenge_methods_supported": []string{"S256"},
		"capabilities":                     caps,
	})
}

// authMethodsSupported are the token endpoint's client authentication
// methods: public apps (none), confidential apps with a secret (Basic or
// in the form) or keys, backend services (keys).
var authMethodsSupported = []string{"none", "client_secret_basic", "client_secret_post", "private_key_jwt"}

// scopesSupported are examples of each kind of scope Ward grants: any
// resource type may replace *, any subset of cruds the permissions, and a
// ?category= constraint narrows a clinical scope.
var scopesSupported = []string{"openid", "fhirUser", "launch", "launch/patient", "offline_access", "online_access",
	"patient/*.cruds", "patient/*.rs", "patient/*.read", "patient/*.write", "user/*.cruds", "user/*.rs", "user/*.read", "user/*.write",
	"system/*.cruds", "system/*.rs", "system/*.read"}

// handleOpenIDConfig is OpenID Connect discovery for the authorization
// code flow: an id_token (RS256) is issued when the scope has openid.
func (s *Server) handleOpenIDConfig(w http.ResponseWriter, r *http.Request) {
	root := strings.TrimSuffix(s.base(r), "/fhir")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	json.NewEncoder(w).Encode(map[string]any{
		"issuer":                                root,
		"authorization_endpoint":                root + "/oauth2/authorize",
		"token_endpoint":                        root + "/oauth2/token",
		"jwks_uri":                              root + "/.well-known/jwks.json",
		"revocation_endpoint":                   root + "/oauth2/revoke",
		"introspection_endpoint":                root + "/oauth2/introspect",
		"response_types_supported":              []string{"code"},
		"response_modes_supported":              []string{"query"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token", "client_credentials", "password"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"token_endpoint_auth_methods_supported": authMethodsSupported,
		"code_challenge_methods_supported":      []string{"S256"},
		"scopes_supported":                      scopesSupported,
		"claims_supported":                      []string{"iss", "sub", "aud", "exp", "iat"},
	})
}

// clientAuth reads a token request's client authentication: HTTP Basic
// (client_secret_basic), client_id and client_secret in the form
// (client_secret_post), or a client assertion (private_key_jwt). basic
// says an Authorization header was sent; ok is false when it is not valid
// HTTP Basic or is combined with credentials in the form, or names
// another client_id than the form's.
func (s *Server) clientAuth(r *http.Request) (ca authn.ClientAuth, basic, ok bool) {
	f := r.PostForm
	ca = authn.ClientAuth{RequestID: requestID(r.Context()), ClientID: f.Get("client_id"), ClientSecret: f.Get("client_secret"),
		AssertionType: f.Get("client_assertion_type"), Assertion: f.Get("client_assertion"),
		Audience: strings.TrimSuffix(s.base(r), "/fhir") + "/oauth2/token"}
	if r.Header.Get("Authorization") == "" {
		return ca, false, true
	}
	id, secret, ok := basicCredentials(r)
	if !ok || ca.ClientSecret != "" || ca.Assertion != "" || ca.ClientID != "" && ca.ClientID != id {
		return ca, true, false
	}
	ca.ClientID, ca.ClientSecret = id, secret
	return ca, true, true
}

// basicCredentials reads HTTP Basic client credentials, whose parts are
// form-urlencoded (RFC 6749 2.3.1).
func basicCredentials(r *http.Request) (id, secret string, ok bool) {
	rawID, rawSecret, ok := r.BasicAuth()
	if !ok || len(rawID) > 512 || len(rawSecret) > 2048 {
		return "", "", false
	}
	id, err1 := url.QueryUnescape(rawID)
	secret, err2 := url.QueryUnescape(rawSecret)
	if err1 != nil || err2 != nil || id == "" || secret == "" {
		return "", "", false
	}
	return id, secret, true
}

func writeToken(w http.ResponseWriter, tok authn.Token) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Pragma", "no-cache")
	resp := map[string]any{"access_token": tok.AccessToken, "token_type": "Bearer", "expires_in": int(tok.ExpiresIn.Seconds())}
	if tok.Scope != "" {
		resp["scope"] = tok.Scope
	}
	if tok.RefreshToken != "" {
		resp["refresh_token"] = tok.RefreshToken
	}
	if tok.IDToken != "" {
		resp["id_token"] = tok.IDToken
	}
	// SMART launch context (App Launch 2.x, "Launch context arrives with
	// your access_token").
	if tok.Patient != "" {
		resp["patient"] = tok.Patient
	}
	if tok.Encounter != "" {
		resp["encounter"] = tok.Encounter
		resp["fhirContext"] = []map[string]string{{"reference": "Encounter/" + tok.Encounter}}
	}
	if tok.LaunchContext {
		resp["need_patient_banner"] = tok.NeedPatientBanner
		if tok.StyleURL != "" {
			resp["smart_style_url"] = tok.StyleURL
		}
	}
	json.NewEncoder(w).Encode(resp)
}
