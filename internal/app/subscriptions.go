package app

// FHIR Subscriptions (issue #27): the websocket channel's endpoint. The
// manager itself runs with the dispatcher (events.go).

import (
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"

	"github.com/google/uuid"

	"github.com/wardhealth/ward/internal/api"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/subscriptions"
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
