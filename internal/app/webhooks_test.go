package app_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/events"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/store/storetest"
)

// TestWebhookReceivesSignedEventsWithoutPHI: a webhook registered through
// app receives the events of a write, signed per Standard Webhooks (the
// HMAC computed here, independently), with none of the planted PHI; the
// secret is not stored in clear.
func TestWebhookReceivesSignedEventsWithoutPHI(t *testing.T) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			w := apptest.Start(t, b, func(c *config.Config) { c.Events.WebhookSync = 50 * time.Millisecond })
			var mu sync.Mutex
			var bodies []string
			var secret string
			srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				id, ts, sig := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature")
				mu.Lock()
				key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
				mu.Unlock()
				m := hmac.New(sha256.New, key)
				m.Write([]byte(id + "." + ts + "." + string(body)))
				if sig != "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)) {
					t.Errorf("signature does not verify for %s", id)
				}
				if n, err := strconv.ParseInt(ts, 10, 64); err != nil || time.Since(time.Unix(n, 0)) > time.Minute {
					t.Errorf("bad webhook-timestamp %q", ts)
				}
				mu.Lock()
				bodies = append(bodies, string(body))
				mu.Unlock()
			}))
			defer srv.Close()
			ctx := context.Background()
			if _, _, err := w.App.AddWebhook(ctx, "test", w.Config.Tenant, "http://example.org/hook", nil); !errors.Is(err, problem.ErrInvalid) {
				t.Fatalf("plain http to a remote host: %v", err)
			}
			if _, _, err := w.App.AddWebhook(ctx, "test", w.Config.Tenant, srv.URL, []string{"no.such-type"}); !errors.Is(err, problem.ErrInvalid) {
				t.Fatalf("unknown type: %v", err)
			}
			id, sec, err := w.App.AddWebhook(ctx, "test", w.Config.Tenant, srv.URL, []string{events.PatientCreated, events.ResourceCreated})
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			secret = sec
			mu.Unlock()
			stored, err := w.App.Store.(storetest.Outboxer).Webhooks(ctx)
			if err != nil || len(stored) != 1 || strings.Contains(string(stored[0].Secret), strings.TrimPrefix(sec, "whsec_")) {
				t.Fatalf("stored webhook secret is not sealed (%v)", err)
			}
			hs, err := w.App.Webhooks(ctx, w.Config.Tenant)
			if err != nil || len(hs) != 1 || hs[0].ID != id {
				t.Fatalf("webhooks: %+v %v", hs, err)
			}
			// Let the dispatcher pick it up (a new hook starts at the head).
			time.Sleep(300 * time.Millisecond)
			pid := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"`+plantedName+`"}],"birthDate":"`+plantedBirth+`"}`)
			deadline := time.Now().Add(15 * time.Second)
			for {
				mu.Lock()
				n := len(bodies)
				mu.Unlock()
				if n >= 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("webhook got %d events", n)
				}
				time.Sleep(20 * time.Millisecond)
			}
			mu.Lock()
			defer mu.Unlock()
			types := map[string]bool{}
			for _, body := range bodies {
				for _, phi := range []string{plantedName, plantedBirth} {
					if strings.Contains(body, phi) {
						t.Fatalf("webhook body carries PHI: %s", body)
					}
				}
				e, err := events.Parse([]byte(body))
				if err != nil {
					t.Fatal(err)
				}
				if e.Subject != "Patient/"+pid {
					t.Fatalf("subject %s", e.Subject)
				}
				types[e.Type] = true
			}
			if !types[events.PatientCreated] || !types[events.ResourceCreated] || len(types) != 2 {
				t.Fatalf("types %v", types)
			}
			if err := w.App.RemoveWebhook(ctx, "test", id); err != nil {
				t.Fatal(err)
			}
			if err := w.App.RemoveWebhook(ctx, "test", id); !errors.Is(err, problem.ErrNotFound) {
				t.Fatalf("second remove: %v", err)
			}
		})
	}
}

// TestAdminWebhooksAPI: /admin/webhooks is for admins of the tenant; bad
// input is a 400 OperationOutcome that does not echo the URL.
func TestAdminWebhooksAPI(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	admin := w.Tokens[authz.RoleAdmin]
	if r := w.Do(t, http.MethodPost, "/admin/webhooks", w.Tokens[authz.RoleNurse], []byte(`{"url":"https://example.org/h"}`)); r.Status != 403 {
		t.Fatalf("nurse: %d", r.Status)
	}
	r := w.Do(t, http.MethodPost, "/admin/webhooks", admin, []byte(`{"url":"http://remote-host.example/secretpath"}`))
	if r.Status != 400 || strings.Contains(string(r.Body), "secretpath") || !strings.Contains(string(r.Body), "OperationOutcome") {
		t.Fatalf("plain http: %d %s", r.Status, r.Body)
	}
	r = w.Do(t, http.MethodPost, "/admin/webhooks", admin, []byte(`{"url":"https://example.org/h","types":["patient.created"]}`))
	if r.Status != 201 {
		t.Fatalf("add: %d %s", r.Status, r.Body)
	}
	m := r.JSON(t)
	id, _ := m["id"].(string)
	if sec, _ := m["secret"].(string); !strings.HasPrefix(sec, "whsec_") || id == "" || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("add answer: %s", r.Body)
	}
	r = w.Do(t, http.MethodGet, "/admin/webhooks", admin, nil)
	if r.Status != 200 || !strings.Contains(string(r.Body), id) || strings.Contains(string(r.Body), "whsec_") {
		t.Fatalf("list: %d %s", r.Status, r.Body)
	}
	if r := w.Do(t, http.MethodDelete, "/admin/webhooks/"+id, admin, nil); r.Status != 204 {
		t.Fatalf("remove: %d %s", r.Status, r.Body)
	}
	if r := w.Do(t, http.MethodDelete, "/admin/webhooks/"+id, admin, nil); r.Status != 404 {
		t.Fatalf("remove again: %d", r.Status)
	}
	actions := map[string]bool{}
	for _, rec := range w.Ledger(t) {
		actions[rec.Action] = true
	}
	for _, a := range []string{"webhook-add", "webhook-list", "webhook-remove"} {
		if !actions[a] {
			t.Errorf("no %s record in the ledger", a)
		}
	}
}
