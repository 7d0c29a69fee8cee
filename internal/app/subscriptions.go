package app

// FHIR Subscriptions (issue #27): the websocket channel's endpoint. The
// manager itself runs with the dispatcher (events.go).

import (
	"net/http"
	"sync/atomic"

	"github.com/google/uuid"

	"github.com/wardhealth/ward/internal/api"
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

func (s *subsWS) Mount(mux *http.ServeMux, _ api.Edge) {
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
