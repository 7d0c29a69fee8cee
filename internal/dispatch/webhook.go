package dispatch

// The webhook sink: each event POSTed as its CloudEvents JSON, signed as
// in the Standard Webhooks convention (webhook-id, webhook-timestamp,
// webhook-signature "v1,<base64 HMAC-SHA256(id.timestamp.body)>" with the
// hook's whsec_ secret). Only https, except to a loopback address.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

// SecretPrefix starts every webhook secret.
const SecretPrefix = "whsec_"

// NewSecret returns a fresh webhook secret: whsec_ and 32 random bytes in
// base64.
func NewSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// CheckURL accepts https URLs, and http only to a loopback host.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return errors.New("webhook URL must be an absolute http(s) URL without credentials")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if host == "localhost" {
			return nil
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return nil
		}
		return errors.New("webhook URL must be https (http only to a loopback address)")
	}
	return errors.New("webhook URL must be https (http only to a loopback address)")
}

// Webhook delivers to one registered hook.
type Webhook struct {
	ID     string
	URL    string
	key    []byte
	Types  map[string]bool // nil: every type
	Client *http.Client
	now    func() time.Time
}

// NewWebhook returns the sink of hook id at rawURL with its secret;
// types, when not empty, selects the event types it receives.
func NewWebhook(id, rawURL, secret string, types []string) (*Webhook, error) {
	if err := CheckURL(rawURL); err != nil {
		return nil, err
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil || !strings.HasPrefix(secret, SecretPrefix) || len(key) < 16 {
		return nil, errors.New("webhook secret must be whsec_ and base64 of at least 16 bytes")
	}
	w := &Webhook{ID: id, URL: rawURL, key: key, Client: &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, now: time.Now}
	if len(types) > 0 {
		w.Types = map[string]bool{}
		for _, t := range types {
			w.Types[t] = true
		}
	}
	return w, nil
}

// Name is the receiver name of the hook.
func (w *Webhook) Name() string { return "webhook:" + w.ID }

// Sign returns the webhook-signature header value of a message.
func Sign(key []byte, id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + strconv.FormatInt(ts, 10) + "."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Deliver POSTs each event in order; a 2xx answer acknowledges it.
func (w *Webhook) Deliver(ctx context.Context, evs []store.OutboxEvent) (int, error) {
	for i, e := range evs {
		if w.Types != nil && !w.Types[e.Type] {
			continue
		}
		ts := w.now().Unix()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(e.JSON))
		if err != nil {
			return i, fmt.Errorf("webhook request: %w", err)
		}
		req.Header.Set("Content-Type", "application/cloudevents+json")
		req.Header.Set("webhook-id", e.ID)
		req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
		req.Header.Set("webhook-signature", Sign(w.key, e.ID, ts, e.JSON))
		resp, err := w.Client.Do(req)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // the URL is the operator's, but keep errors short
			}
			return i, fmt.Errorf("webhook: %w", err)
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return i, fmt.Errorf("webhook answered %d", resp.StatusCode)
		}
	}
	return len(evs), nil
}
