package api

import (
	"context"
	"net/http"
	"time"

	"github.com/wardhealth/ward/internal/authn"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/problem"
)

// The webhook admin API (JSON, admin role only, the admin's tenant; see
// docs/events.md):
//
//	GET    /admin/webhooks        list (never secrets)
//	POST   /admin/webhooks        {"url"[,"types":[...]]} -> 201 {"id","url","types","secret"} (secret shown once)
//	DELETE /admin/webhooks/{id}
func (s *Server) routeWebhooks(mux *http.ServeMux) {
	mux.Handle("GET /admin/webhooks", s.admin("webhook-list", s.handleWebhooks))
	mux.Handle("POST /admin/webhooks", s.admin("webhook-add", s.handleAddWebhook))
	mux.Handle("DELETE /admin/webhooks/{id}", s.admin("webhook-remove", s.handleRemoveWebhook))
}

// Webhooks backs the webhook admin API.
type Webhooks interface {
	AddWebhook(ctx context.Context, a authn.Actor, tenant, url string, types []string) (id, secret string, err error)
	ListWebhooks(ctx context.Context, a authn.Actor, tenant string) ([]Webhook, error)
	RemoveWebhook(ctx context.Context, a authn.Actor, tenant, id string) error
}

// Webhook is a registered webhook as the admin API shows it.
type Webhook struct {
	ID      string    `json:"id"`
	URL     string    `json:"url"`
	Types   []string  `json:"types,omitempty"`
	Created time.Time `json:"created"`
	Secret  string    `json:"secret,omitempty"`
}

func (s *Server) webhooks() (Webhooks, error) {
	if s.opts.Webhooks == nil {
		return nil, problem.New(problem.ErrNotFound, "not-supported", "webhooks are not enabled")
	}
	return s.opts.Webhooks, nil
}

func (s *Server) handleWebhooks(w http.ResponseWriter, r *http.Request, subj authz.Subject, a authn.Actor) error {
	wh, err := s.webhooks()
	if err != nil {
		return err
	}
	hs, err := wh.ListWebhooks(r.Context(), a, subj.Tenant)
	if err != nil {
		return err
	}
	if hs == nil {
		hs = []Webhook{}
	}
	writeJSON(w, http.StatusOK, hs)
	return nil
}

func (s *Server) handleAddWebhook(w http.ResponseWriter, r *http.Request, subj authz.Subject, a authn.Actor) error {
	wh, err := s.webhooks()
	if err != nil {
		return err
	}
	var in struct {
		URL   string   `json:"url"`
		Types []string `json:"types"`
	}
	if err := decodeAdmin(r, &in); err != nil {
		return err
	}
	if in.URL == "" {
		return problem.At(problem.ErrInvalid, "required", "url", "url is required")
	}
	id, secret, err := wh.AddWebhook(r.Context(), a, subj.Tenant, in.URL, in.Types)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, Webhook{ID: id, URL: in.URL, Types: in.Types, Created: time.Now().UTC(), Secret: secret})
	return nil
}

func (s *Server) handleRemoveWebhook(w http.ResponseWriter, r *http.Request, subj authz.Subject, a authn.Actor) error {
	wh, err := s.webhooks()
	if err != nil {
		return err
	}
	if err := wh.RemoveWebhook(r.Context(), a, subj.Tenant, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
