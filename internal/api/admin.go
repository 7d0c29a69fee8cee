package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authn"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/problem"
)

// The admin API (JSON, admin role only, scoped to the admin's tenant):
//
//	GET  /admin/users                  list users (never password hashes or TOTP secrets)
//	POST /admin/users                  {"username","role","password"[,"practitioner"|"patient"][,"clearance":[...]]}
//	POST /admin/users/{id}/disable     also /enable
//	GET  /admin/clients                list clients (public keys and scopes; never secrets or their hashes)
//	POST /admin/clients                {"client_id","scope","jwks"} (backend service),
//	                                   {"client_id","scope","redirect_uris"[,"launch_uri"]} (public app),
//	                                   {...,"redirect_uris","confidential":true | "client_secret" | "jwks"} (confidential app)
//	POST /admin/clients/{id}/disable   also /enable
//
// Every change, listing and refusal is in the ledger.
func (s *Server) routeAdmin(mux *http.ServeMux) {
	mux.Handle("GET /admin/users", s.admin("user-list", s.handleAdminUsers))
	mux.Handle("POST /admin/users", s.admin("user-add", s.handleAdminAddUser))
	mux.Handle("POST /admin/users/{id}/{verb}", s.admin("user-update", s.handleAdminUserState))
	mux.Handle("GET /admin/clients", s.admin("client-list", s.handleAdminClients))
	mux.Handle("POST /admin/clients", s.admin("client-add", s.handleAdminAddClient))
	mux.Handle("POST /admin/clients/{id}/{verb}", s.admin("client-update", s.handleAdminClientState))
	s.routeWebhooks(mux)
	mux.HandleFunc("/admin/{rest...}", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, problem.New(problem.ErrNotFound, "not-found", "no such admin endpoint"))
	})
}

type adminHandler func(w http.ResponseWriter, r *http.Request, subj authz.Subject, a authn.Actor) error

// admin authenticates, requires the admin role (a refusal is audited) and
// maps errors at the edge.
func (s *Server) admin(action string, h adminHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Admin == nil {
			s.writeError(w, r, problem.New(problem.ErrNotFound, "not-supported", "the admin API is not enabled"))
			return
		}
		subj, err := s.authenticate(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		a := authn.Actor{ID: subj.ID, Role: string(subj.Role), RequestID: requestID(r.Context())}
		if subj.Role != authz.RoleAdmin {
			if err := s.opts.Admin.RecordAdmin(r.Context(), a, subj.Tenant, action, "denied:admin-role-required"); err != nil {
				s.writeError(w, r, err) // the recorder failed closed: ErrUnavailable
				return
			}
			s.writeError(w, r, problem.New(problem.ErrForbidden, "forbidden", "the admin API is for the admin role only"))
			return
		}
		if err := h(w, r, subj, a); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// decodeAdmin reads a strict JSON body into v.
func decodeAdmin(r *http.Request, v any) error {
	ct := r.Header.Get("Content-Type")
	if ct != "" && !strings.HasPrefix(ct, "application/json") && !strings.HasPrefix(ct, "application/fhir+json") {
		return problem.New(problem.ErrUnsupportedMedia, "not-supported", "the body must be application/json")
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return problem.New(problem.ErrTooLarge, "too-costly", "request body too large")
		}
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) && ute.Field != "" {
			return problem.At(problem.ErrInvalid, "structure", ute.Field, "wrong JSON type for "+ute.Field)
		}
		if strings.HasPrefix(err.Error(), "json: unknown field ") {
			return problem.New(problem.ErrInvalid, "structure", "unknown field "+strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return problem.New(problem.ErrInvalid, "structure", "the body is not a JSON object of the expected shape")
	}
	if dec.More() {
		return problem.New(problem.ErrInvalid, "structure", "the body has data after the JSON object")
	}
	return nil
}

type adminUser struct {
	ID       string `json:"id"`
	Tenant   string `json:"tenant"`
	Username string `json:"username"`
	Role     string `json:"role"`
	State    string `json:"state"`
	TOTP     bool   `json:"totp"`
	Created  string `json:"created"`
	// The user's links: the Practitioner a physician or nurse is, the
	// Patient a user-role account is or acts for, the clearances.
	Practitioner string   `json:"practitioner,omitempty"`
	Patient      string   `json:"patient,omitempty"`
	Clearance    []string `json:"clearance,omitempty"`
}

func (s *Server) handleAdminUsers(w http.ResponseWriter, r *http.Request, subj authz.Subject, a authn.Actor) error {
	users, err := s.opts.Admin.Users(r.Context(), subj.Tenant)
	if err != nil {
		return err
	}
	if err := s.opts.Admin.RecordAdmin(r.Context(), a, subj.Tenant, "user-list", ""); err != nil {
		return err // the recorder failed closed: ErrUnavailable
	}
	out := make([]adminUser, 0, len(users))
	now := time.Now()
	for _, u := range users {
		state := "active"
		switch {
		case u.Disabled:
			state = "disabled"
		case now.Before(u.LockedUntil):
			state = "locked"
		}
		out = append(out, adminUser{ID: u.ID, Tenant: u.Tenant, Username: u.Username, Role: u.Role, State: state, TOTP: u.TOTPSecret != nil, Created: u.Created.Format(time.RFC3339),
			Practitioner: u.Practitioner, Patient: u.Patient, Clearance: u.Clearances})
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out})
	return nil
}

func (s *Server) handleAdminAddUser(w http.ResponseWriter, r *http.Request, subj authz.Subject, a authn.Actor) error {
	var in struct {
		Username     string   `json:"username"`
		Role         string   `json:"role"`
		Password     string   `json:"password"`
		Practitioner string   `json:"practitioner"`
		Patient      string   `json:"patient"`
		Clearance    []string `json:"clearance"`
	}
	if err := decodeAdmin(r, &in); err != nil {
		return err
	}
	u, err := s.opts.Admin.AddUser(r.Context(), a, authn.NewUser{Tenant: subj.Tenant, Username: in.Username, Role: in.Role, Password: in.Password,
		Practitioner: in.Practitioner, Patient: in.Patient, Clearances: in.Clearance})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, adminUser{ID: u.ID, Tenant: u.Tenant, Username: u.Username, Role: u.Role, State: "active", Created: u.Created.Format(time.RFC3339),
		Practitioner: u.Practitioner, Patient: u.Patient, Clearance: u.Clearances})
	return nil
}

func stateVerb(r *http.Request) (bool, error) {
	switch r.PathValue("verb") {
	case "disable":
		return true, nil
	case "enable":
		return false, nil
	}
	return false, problem.New(problem.ErrNotFound, "not-found", "no such admin endpoint: use .../disable or .../enable")
}

func (s *Server) handleAdminUserState(w http.ResponseWriter, r *http.Request, subj authz.Subject, a authn.Actor) error {
	disabled, err := stateVerb(r)
	if err != nil {
		return err
	}
	if err := s.opts.Admin.SetUserDisabled(r.Context(), a, subj.Tenant, r.PathValue("id"), disabled); err != nil {
		return err
	}
	s.tokens.SubjectsChanged(r.Context(), subj.Tenant)
	writeJSON(w, http.StatusOK, map[string]any{"id": r.PathValue("id"), "disabled": disabled})
	return nil
}

type adminClient struct {
	ClientID     string          `json:"client_id"`
	Tenant       string          `json:"tenant"`
	Kind         string          `json:"kind"`
	Scope        string          `json:"scope"`
	RedirectURIs []string        `json:"redirect_uris,omitempty"`
	LaunchURI    string          `json:"launch_uri,omitempty"`
	JWKS         json.RawMessage `json:"jwks,omitempty"`
	Disabled     bool            `json:"disabled"`
	Created      string          `json:"created"`
	// AuthMethod is how an app authenticates at the token endpoint: none
	// (public), client_secret_basic (or _post) or private_key_jwt.
	AuthMethod string `json:"token_endpoint_auth_method,omitempty"`
	// ClientSecret is a generated secret, shown once in the answer to its
	// registration and never again (only its hash is stored).
	ClientSecret string `json:"client_secret,omitempty"`
}

func adminClientOf(c *authn.Client) adminClient {
	ac := adminClient{ClientID: c.ID, Tenant: c.Tenant, Kind: "backend", Scope: c.Scope, Disabled: c.Disabled, Created: c.Created.Format(time.RFC3339)}
	if len(c.RedirectURIs) > 0 {
		ac.Kind, ac.RedirectURIs, ac.AuthMethod, ac.LaunchURI = "app", c.RedirectURIs, authn.AppAuthMethod(c), c.LaunchURI
	}
	if c.JWKS != "" && json.Valid([]byte(c.JWKS)) {
		ac.JWKS = json.RawMessage(c.JWKS) // public keys only (private ones are refused at registration)
	}
	return ac
}

func (s *Server) handleAdminClients(w http.ResponseWriter, r *http.Request, subj authz.Subject, a authn.Actor) error {
	cs, err := s.opts.Admin.Clients(r.Context(), subj.Tenant)
	if err != nil {
		return err
	}
	if err := s.opts.Admin.RecordAdmin(r.Context(), a, subj.Tenant, "client-list", ""); err != nil {
		return err // the recorder failed closed: ErrUnavailable
	}
	out := make([]adminClient, 0, len(cs))
	for i := range cs {
		out = append(out, adminClientOf(&cs[i]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"clients": out})
	return nil
}

func (s *Server) handleAdminAddClient(w http.ResponseWriter, r *http.Request, subj authz.Subject, a authn.Actor) error {
	var in struct {
		ClientID     string          `json:"client_id"`
		Scope        string          `json:"scope"`
		JWKS         json.RawMessage `json:"jwks"`
		RedirectURIs []string        `json:"redirect_uris"`
		LaunchURI    string          `json:"launch_uri"`
		// Confidential asks Ward to generate a client secret (returned
		// once); ClientSecret registers one chosen by the operator.
		Confidential bool   `json:"confidential"`
		ClientSecret string `json:"client_secret"`
	}
	if err := decodeAdmin(r, &in); err != nil {
		return err
	}
	jwks := ""
	if len(in.JWKS) > 0 && string(in.JWKS) != "null" {
		jwks = string(in.JWKS)
	}
	secret, generated := in.ClientSecret, false
	if in.Confidential && secret == "" && jwks == "" {
		var err error
		if secret, err = authn.GenerateClientSecret(); err != nil {
			return err
		}
		generated = true
	}
	c, err := s.opts.Admin.AddClient(r.Context(), a, authn.NewClient{ID: in.ClientID, Tenant: subj.Tenant, JWKS: jwks, Scope: in.Scope, RedirectURIs: in.RedirectURIs, LaunchURI: in.LaunchURI, Secret: secret})
	if err != nil {
		return err
	}
	ac := adminClientOf(c)
	if generated {
		ac.ClientSecret = secret
		w.Header().Set("Cache-Control", "no-store")
	}
	writeJSON(w, http.StatusCreated, ac)
	return nil
}

func (s *Server) handleAdminClientState(w http.ResponseWriter, r *http.Request, subj authz.Subject, a authn.Actor) error {
	disabled, err := stateVerb(r)
	if err != nil {
		return err
	}
	if err := s.opts.Admin.SetClientDisabled(r.Context(), a, subj.Tenant, r.PathValue("id"), disabled); err != nil {
		return err
	}
	s.tokens.SubjectsChanged(r.Context(), subj.Tenant)
	writeJSON(w, http.StatusOK, map[string]any{"client_id": r.PathValue("id"), "disabled": disabled})
	return nil
}

// Admin is what the admin API needs: named, audited operations on users
// and clients (authn.Admin), never a raw storage write.
type Admin interface {
	Users(ctx context.Context, tenant string) ([]authn.User, error)
	Clients(ctx context.Context, tenant string) ([]authn.Client, error)
	AddUser(ctx context.Context, a authn.Actor, nu authn.NewUser) (*authn.User, error)
	SetUserDisabled(ctx context.Context, a authn.Actor, tenant, userID string, disabled bool) error
	AddClient(ctx context.Context, a authn.Actor, nc authn.NewClient) (*authn.Client, error)
	SetClientDisabled(ctx context.Context, a authn.Actor, tenant, clientID string, disabled bool) error
	RecordAdmin(ctx context.Context, a authn.Actor, tenant, action, refusal string) error
	// Record appends one record, detached from ctx, within a bound.
	Record(ctx context.Context, within time.Duration, rec *audit.Record) error
}

var _ Admin = (*authn.Admin)(nil)
