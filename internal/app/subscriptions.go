package app

// FHIR Subscriptions (issue #27): the websocket channel's endpoint. The
// manager itself runs with the dispatcher (events.go).

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/wardhealth/ward/internal/api"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/subscriptions"
	"github.com/wardhealth/ward/internal/topics"
)

// WebsocketPath is where websocket Subscriptions' clients connect.
const WebsocketPath = "/fhir/$subscription-websocket"

// subsWS mounts the websocket channel; the manager is set once the
// dispatcher runs (StartWorkers), and the endpoint answers 503 until then.
type subsWS struct {
	app *App
	m   atomic.Pointer[subscriptions.Manager]
}

func (s *subsWS) Mount(mux *http.ServeMux, e api.Edge) {
	s.mountOps(mux, e)
	mux.HandleFunc("GET "+WebsocketPath, func(w http.ResponseWriter, r *http.Request) {
		m := s.m.Load()
		if m == nil || s.app == nil {
			w.Header().Set("Content-Type", "application/fhir+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient","diagnostics":"Subscriptions are not delivered by this node (WARD_EVENTS_DISPATCH)"}]}`))
			return
		}
		m.ServeWS(w, r, s.app.Tokens.Verify, "ws-"+uuid.NewString())
	})
}

// subsOps mounts the Backport IG's $status and $events.
func (s *subsWS) mountOps(mux *http.ServeMux, e api.Edge) {
	serve := func(op func(r *http.Request, m *subscriptions.Manager, repo *records.Repo) ([]byte, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			m := s.m.Load()
			if m == nil {
				e.WriteOutcome(w, r, problem.New(problem.ErrUnavailable, "transient", "Subscriptions are not delivered by this node (WARD_EVENTS_DISPATCH)"))
				return
			}
			subj, err := e.Subject(r)
			if err != nil {
				e.WriteOutcome(w, r, err)
				return
			}
			b, err := op(r, m, e.Repo(r, subj))
			if err != nil {
				e.WriteOutcome(w, r, err)
				return
			}
			w.Header().Set("Content-Type", "application/fhir+json")
			w.Write(b)
		}
	}
	s.mountTopics(mux, e)
	bind := serve(func(r *http.Request, m *subscriptions.Manager, repo *records.Repo) ([]byte, error) {
		issue := func(subj authz.Subject, ttl time.Duration) (string, error) {
			t, err := s.app.Tokens.IssueShort(subj, ttl)
			return t.AccessToken, err
		}
		return m.BindingToken(r.Context(), repo, r.PathValue("id"), issue, wsURL(r))
	})
	mux.HandleFunc("GET /fhir/Subscription/{id}/$get-ws-binding-token", bind)
	mux.HandleFunc("POST /fhir/Subscription/{id}/$get-ws-binding-token", bind)
	mux.HandleFunc("GET /fhir/Subscription/{id}/$status", serve(func(r *http.Request, m *subscriptions.Manager, repo *records.Repo) ([]byte, error) {
		return m.StatusOf(r.Context(), repo, r.PathValue("id"))
	}))
	mux.HandleFunc("GET /fhir/Subscription/{id}/$events", serve(func(r *http.Request, m *subscriptions.Manager, repo *records.Repo) ([]byte, error) {
		q, err := eventsQuery(r.URL.Query())
		if err != nil {
			return nil, err
		}
		return m.EventsOf(r.Context(), repo, r.PathValue("id"), q)
	}))
}

// eventsQuery parses $events' parameters.
func eventsQuery(v url.Values) (subscriptions.EventsQuery, error) {
	var q subscriptions.EventsQuery
	for name, dst := range map[string]*int64{"eventsSinceNumber": &q.Since, "eventsUntilNumber": &q.Until} {
		if s := v.Get(name); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				return q, problem.New(problem.ErrInvalid, "invalid", name+" must be a non-negative integer")
			}
			*dst = n
		}
	}
	q.Content = v.Get("content")
	return q, nil
}

// mountTopics serves the SubscriptionTopic registry (internal/topics):
// Subscription/$topic-list and the topics as R4 Basic resources under
// SubscriptionTopic. They are the server's configuration, not patient
// data: any authenticated caller may read them.
func (s *subsWS) mountTopics(mux *http.ServeMux, e api.Edge) {
	serve := func(answer func(r *http.Request) (any, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if _, err := e.Subject(r); err != nil {
				e.WriteOutcome(w, r, err)
				return
			}
			v, err := answer(r)
			if err != nil {
				e.WriteOutcome(w, r, err)
				return
			}
			b, _ := json.Marshal(v)
			w.Header().Set("Content-Type", "application/fhir+json")
			w.Write(b)
		}
	}
	mux.HandleFunc("GET /fhir/Subscription/$topic-list", serve(func(r *http.Request) (any, error) {
		return topics.List(r.URL.Query()["urls"]), nil
	}))
	mux.HandleFunc("GET /fhir/SubscriptionTopic", serve(func(r *http.Request) (any, error) {
		return topics.Searchset(s.base()), nil
	}))
	// One literal path per topic: a {id} wildcard would overlap the
	// generic /fhir/{type}/_history route. Any other id is the generic
	// route's (an unknown type: an OperationOutcome).
	for _, t := range topics.All() {
		mux.HandleFunc("GET /fhir/SubscriptionTopic/"+t.ID, serve(func(r *http.Request) (any, error) {
			return t.Basic(), nil
		}))
	}
}

// base is the FHIR base URL notifications use (relative until the
// manager runs).
func (s *subsWS) base() string {
	if m := s.m.Load(); m != nil {
		return m.Base()
	}
	return ""
}

// wsURL is the websocket endpoint as the caller reached this server.
func wsURL(r *http.Request) string {
	scheme := "ws"
	if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
		scheme = "wss"
	}
	return scheme + "://" + r.Host + WebsocketPath
}
