package subscriptions

import "sync"

// Hub holds the websocket connections bound to Subscriptions.
type Hub struct {
	mu    sync.Mutex
	binds map[string]map[chan string]bool
	// follow starts pinging a Subscription's local clients (on its first
	// bind); the stop it returns runs after its last unbind.
	follow func(tenant, id string) (stop func())
	stops  map[string]func()
}

func newHub() *Hub { return &Hub{binds: map[string]map[chan string]bool{}, stops: map[string]func(){}} }

func hubKey(tenant, id string) string { return tenant + "/" + id }

// ping tells every connection bound to a Subscription of an event; a
// connection that is not reading loses the ping rather than stall
// delivery (the R4 websocket channel is a nudge to query, not a log).
func (h *Hub) ping(tenant, id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.binds[hubKey(tenant, id)] {
		select {
		case c <- "ping " + id:
		default:
		}
	}
}

// bind registers c for the Subscription's pings; the returned func
// unbinds it.
func (h *Hub) bind(tenant, id string, c chan string) func() {
	k := hubKey(tenant, id)
	h.mu.Lock()
	if h.binds[k] == nil {
		h.binds[k] = map[chan string]bool{}
		if h.follow != nil {
			h.stops[k] = h.follow(tenant, id)
		}
	}
	h.binds[k][c] = true
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		delete(h.binds[k], c)
		var stop func()
		if len(h.binds[k]) == 0 {
			delete(h.binds, k)
			stop = h.stops[k]
			delete(h.stops, k)
		}
		h.mu.Unlock()
		if stop != nil {
			stop()
		}
	}
}
