package app

// Webhooks (issue #27): registered by an admin, delivered by the
// dispatcher, signed with a per-hook secret kept sealed by the system data
// key.

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/wardhealth/ward/internal/api"
	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authn"
	"github.com/wardhealth/ward/internal/dispatch"
	"github.com/wardhealth/ward/internal/events"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/store"
)

func webhookAAD(id string) []byte { return []byte("ward/webhook/v1/" + id) }

type webhookLister interface {
	Webhooks(ctx context.Context) ([]store.Webhook, error)
}

// WebhookInfo is a registered webhook as listed (never its secret).
type WebhookInfo struct {
	ID, Tenant, URL string
	Types           []string
	Created         time.Time
}

// AddWebhook registers a webhook of tenant at rawURL (https, or http to a
// loopback address) for the event types given (none: all) and returns its
// id and its secret (whsec_...), shown once.
func (a *App) AddWebhook(ctx context.Context, actor, tenant, rawURL string, types []string) (id, secret string, err error) {
	return a.addWebhook(ctx, authn.Actor{ID: actor, Role: "system"}, tenant, rawURL, types)
}

func (a *App) addWebhook(ctx context.Context, actor authn.Actor, tenant, rawURL string, types []string) (id, secret string, err error) {
	if err := dispatch.CheckURL(rawURL); err != nil {
		return "", "", problem.New(problem.ErrInvalid, "value", err.Error())
	}
	for _, t := range types {
		if !slices.Contains(events.Types, t) {
			return "", "", problem.New(problem.ErrInvalid, "value", "unknown event type (see docs/events.md)")
		}
	}
	id, secret = uuid.NewString(), dispatch.NewSecret()
	kid, err := a.Keys.DataKey(ctx, keys.SystemTenant)
	if err != nil {
		return "", "", err
	}
	sealed, err := a.Keys.Seal(kid, []byte(secret), webhookAAD(id))
	if err != nil {
		return "", "", err
	}
	now := time.Now().UTC()
	h := &store.Webhook{ID: id, Tenant: tenant, URL: rawURL, Secret: sealed, Types: types, Created: now}
	err = store.NewRecorder(a.Store).Commit(ctx, &store.Unit{Parts: []store.Part{store.NewWebhook{Hook: h}}},
		&audit.Record{Time: now, Tenant: tenant, RequestID: actor.RequestID, Actor: actor.ID, Role: actor.Role, Action: "webhook-add", Entities: []string{"webhook/" + id}})
	if err != nil {
		return "", "", err
	}
	return id, secret, nil
}

// Webhooks lists the webhooks of tenant ("" : all).
func (a *App) Webhooks(ctx context.Context, tenant string) ([]WebhookInfo, error) {
	l, ok := a.Store.(webhookLister)
	if !ok {
		return nil, errors.New("this store has no webhooks")
	}
	hs, err := l.Webhooks(ctx)
	if err != nil {
		return nil, err
	}
	var out []WebhookInfo
	for _, h := range hs {
		if tenant == "" || h.Tenant == tenant {
			out = append(out, WebhookInfo{ID: h.ID, Tenant: h.Tenant, URL: h.URL, Types: h.Types, Created: h.Created})
		}
	}
	return out, nil
}

// RemoveWebhook deletes a webhook (its dead letters stay until dropped).
func (a *App) RemoveWebhook(ctx context.Context, actor, id string) error {
	return a.removeWebhook(ctx, authn.Actor{ID: actor, Role: "system"}, "", id)
}

func (a *App) removeWebhook(ctx context.Context, actor authn.Actor, tenant, id string) error {
	err := store.NewRecorder(a.Store).Commit(ctx, &store.Unit{Parts: []store.Part{store.RemoveWebhook{ID: id}}},
		&audit.Record{Time: time.Now().UTC(), Tenant: tenant, RequestID: actor.RequestID, Actor: actor.ID, Role: actor.Role, Action: "webhook-remove", Entities: []string{"webhook/" + id}})
	if errors.Is(err, store.ErrConflict) {
		return problem.New(problem.ErrNotFound, "not-found", "no such webhook")
	}
	return err
}

// syncWebhooks makes the dispatcher's webhook sinks those registered,
// every interval until ctx ends.
func syncWebhooks(ctx context.Context, d *dispatch.Dispatcher, l webhookLister, km *keys.Manager, every time.Duration, log func(msg string, args ...any)) {
	running := map[string]bool{}
	for {
		hs, err := l.Webhooks(ctx)
		if err == nil {
			seen := map[string]bool{}
			for _, h := range hs {
				seen[h.ID] = true
				if running[h.ID] {
					continue
				}
				secret, err := km.Open(h.Secret, webhookAAD(h.ID))
				if err != nil {
					log("webhook secret does not open", "webhook", h.ID)
					continue
				}
				s, err := dispatch.NewWebhook(h.ID, h.URL, string(secret), h.Types)
				if err != nil {
					log("webhook not started", "webhook", h.ID, "error", err.Error())
					continue
				}
				d.Add(s)
				running[h.ID] = true
			}
			for id := range running {
				if !seen[id] {
					d.Remove("webhook:" + id)
					delete(running, id)
				}
			}
		} else if ctx.Err() == nil {
			log("list webhooks", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// webhookAdmin is /admin/webhooks over the app, scoped to the admin's
// tenant. app is set once the App is built (the handler is built first).
type webhookAdmin struct{ app *App }

func (w *webhookAdmin) AddWebhook(ctx context.Context, a authn.Actor, tenant, rawURL string, types []string) (string, string, error) {
	return w.app.addWebhook(ctx, a, tenant, rawURL, types)
}

func (w *webhookAdmin) ListWebhooks(ctx context.Context, a authn.Actor, tenant string) ([]api.Webhook, error) {
	hs, err := w.app.Webhooks(ctx, tenant)
	if err != nil {
		return nil, err
	}
	err = store.NewRecorder(w.app.Store).Record(ctx, &audit.Record{Time: time.Now().UTC(), Tenant: tenant, RequestID: a.RequestID, Actor: a.ID, Role: a.Role, Action: "webhook-list"})
	if err != nil {
		return nil, err
	}
	out := make([]api.Webhook, 0, len(hs))
	for _, h := range hs {
		out = append(out, api.Webhook{ID: h.ID, URL: h.URL, Types: h.Types, Created: h.Created})
	}
	return out, nil
}

func (w *webhookAdmin) RemoveWebhook(ctx context.Context, a authn.Actor, tenant, id string) error {
	hs, err := w.app.Webhooks(ctx, tenant)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(hs, func(h WebhookInfo) bool { return h.ID == id }) {
		return problem.New(problem.ErrNotFound, "not-found", "no such webhook")
	}
	return w.app.removeWebhook(ctx, a, tenant, id)
}
