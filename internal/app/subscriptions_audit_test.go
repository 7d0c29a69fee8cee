package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/subscriptions"
)

// TestSubscriptionBatchAuditedBeforeSend: the notifications of one
// delivery batch are decided together and the audit records of all
// their reads are committed (in one ledger transaction) before the first
// is sent: when the receiver gets the first notification of a
// transaction's changes, the owner's read of every one of them is
// already in the ledger. Before, each notification waited for its own
// ledger commit, so the first arrived with one record written.
func TestSubscriptionBatchAuditedBeforeSend(t *testing.T) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			w := apptest.Start(t, b, func(c *config.Config) { c.Events.WebhookSync = 50 * time.Millisecond })
			admin := w.Tokens[authz.RoleAdmin]
			pid := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","active":true}`)
			const entries = 30
			var (
				mu          sync.Mutex
				got         []string
				atFirst     = -1 // owner reads in the ledger when the first notification arrived
				activeSince time.Time
			)
			readsOf := func() int {
				n := 0
				for _, rec := range w.Ledger(t) {
					if rec.Action == "vread" && strings.HasPrefix(rec.RequestID, "subscription-") && rec.Time.After(activeSince) {
						n++
					}
				}
				return n
			}
			srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				if !strings.Contains(string(body), `"event-notification"`) {
					return // the handshake
				}
				mu.Lock()
				defer mu.Unlock()
				if atFirst < 0 {
					atFirst = readsOf()
				}
				got = append(got, string(body))
			}))
			defer srv.Close()
			r := w.Do(t, http.MethodPost, "/fhir/Subscription", admin, []byte(subscription(srv.URL, "Observation?code=http://loinc.org|8867-4", subscriptions.IDOnly)))
			if r.Status != 201 {
				t.Fatalf("create subscription: %d %s", r.Status, r.Body)
			}
			id, _ := r.JSON(t)["id"].(string)
			waitFor(t, "subscription active", func() bool { s, _ := subStatus(t, w, id); return s == "active" })
			mu.Lock()
			activeSince = time.Now().Add(-time.Millisecond)
			mu.Unlock()
			var es []string
			for range entries {
				es = append(es, `{"resource":{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/`+pid+`"}},"request":{"method":"POST","url":"Observation"}}`)
			}
			r = w.Do(t, http.MethodPost, "/fhir", admin, []byte(`{"resourceType":"Bundle","type":"transaction","entry":[`+strings.Join(es, ",")+`]}`))
			if r.Status != 200 {
				t.Fatalf("transaction: %d %s", r.Status, r.Body)
			}
			var resp struct{ Entry []json.RawMessage }
			if err := json.Unmarshal(r.Body, &resp); err != nil || len(resp.Entry) != entries {
				t.Fatalf("transaction answer: %v", err)
			}
			waitFor(t, "every notification", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == entries })
			mu.Lock()
			defer mu.Unlock()
			if atFirst != entries {
				t.Fatalf("%d of %d owner reads in the ledger when the first notification arrived, want all", atFirst, entries)
			}
			if n := readsOf(); n != entries {
				t.Fatalf("%d owner reads in the ledger after %d notifications, want one each", n, entries)
			}
		})
	}
}

// TestSubscriptionFailingAuditsOne: while a Subscription's endpoint
// fails, a retry decides and audits only the notification it tries, not
// the whole batch again: the first attempt audits the batch, each retry
// one read.
func TestSubscriptionFailingAuditsOne(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite, func(c *config.Config) { c.Events.WebhookSync = 50 * time.Millisecond })
	admin := w.Tokens[authz.RoleAdmin]
	pid := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","active":true}`)
	var mu sync.Mutex
	posts := 0
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), `"event-notification"`) {
			mu.Lock()
			posts++
			mu.Unlock()
			rw.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	r := w.Do(t, http.MethodPost, "/fhir/Subscription", admin, []byte(subscription(srv.URL, "Observation?code=http://loinc.org|8867-4", subscriptions.IDOnly)))
	if r.Status != 201 {
		t.Fatalf("create subscription: %d %s", r.Status, r.Body)
	}
	id, _ := r.JSON(t)["id"].(string)
	waitFor(t, "subscription active", func() bool { s, _ := subStatus(t, w, id); return s == "active" })
	since := time.Now().Add(-time.Millisecond)
	const entries = 10
	var es []string
	for range entries {
		es = append(es, `{"resource":{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/`+pid+`"}},"request":{"method":"POST","url":"Observation"}}`)
	}
	if r := w.Do(t, http.MethodPost, "/fhir", admin, []byte(`{"resourceType":"Bundle","type":"transaction","entry":[`+strings.Join(es, ",")+`]}`)); r.Status != 200 {
		t.Fatalf("transaction: %d %s", r.Status, r.Body)
	}
	// Three failures open the breaker for seconds: the count is then
	// still.
	waitFor(t, "three attempts", func() bool { mu.Lock(); defer mu.Unlock(); return posts >= 3 })
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	tried := posts
	mu.Unlock()
	reads := 0
	for _, rec := range w.Ledger(t) {
		if rec.Action == "vread" && strings.HasPrefix(rec.RequestID, "subscription-") && rec.Time.After(since) {
			reads++
		}
	}
	if want := entries + tried - 1; reads != want {
		t.Fatalf("%d owner reads audited for %d attempts, want %d (the batch once, then one per retry)", reads, tried, want)
	}
}
