package subscriptions

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// TestClientReusesConnectionsPerHost: many Subscriptions posting at once
// to one receiving host (an integration engine behind one address) keep
// their connections between notifications. With Go's default transport
// (two idle connections per host) nearly every round opened a new
// connection per Subscription.
func TestClientReusesConnectionsPerHost(t *testing.T) {
	var opened atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	m := New(Options{})
	const subs, rounds = 50, 10
	for range rounds {
		var wg sync.WaitGroup
		// All at once, as a hundred receivers' loops take one Bundle's
		// events together; the round ends when every post is answered.
		start := make(chan struct{})
		errs := make(chan error, subs)
		for i := range subs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := &Sub{ID: "s", Endpoint: srv.URL + "/h" + string(rune('a'+i%26))}
				<-start
				errs <- m.post(context.Background(), s, []byte(`{}`))
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	// At most one connection per concurrent post, opened in the first
	// round; the default transport opens about subs-2 more every round.
	if n := opened.Load(); n > subs {
		t.Fatalf("%d connections opened for %d rounds of %d posts: at most %d expected", n, rounds, subs, subs)
	}
	t.Logf("%d connections for %d posts", opened.Load(), subs*rounds)
}
