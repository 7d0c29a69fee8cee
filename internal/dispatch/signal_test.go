package dispatch_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/dispatch"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/postgres/pgtest"
	"github.com/wardhealth/ward/internal/store/sqlstore"
)

// arrivals is a receiver that notes when each event reached it.
type arrivals struct{ at chan time.Time }

func (a *arrivals) Name() string { return "arrivals" }

func (a *arrivals) Deliver(_ context.Context, evs []store.OutboxEvent) (int, error) {
	for range evs {
		a.at <- time.Now()
	}
	return len(evs), nil
}

// TestCommitWakesDispatcher: with polls far apart (5 s), an event
// committed by this process reaches an idle receiver within a fraction of
// that, because the store signals the commit (dispatch.Signaler). The
// lag of a lightly loaded server was the poll, not the delivery.
func TestCommitWakesDispatcher(t *testing.T) {
	for _, c := range []struct {
		name string
		open func(t *testing.T) *sqlstore.DB
	}{
		{"sqlite", func(t *testing.T) *sqlstore.DB { return openSQLite(t) }},
		{"postgres", func(t *testing.T) *sqlstore.DB {
			if os.Getenv("WARD_TEST_POSTGRES") == "" {
				t.Skip("no PostgreSQL")
			}
			return openPG(t, pgtest.URL(t))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := c.open(t)
			a := &arrivals{at: make(chan time.Time, 16)}
			d := dispatch.New(st, dispatch.Options{Owner: "n1", Poll: 5 * time.Second})
			d.Add(a)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { d.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			// Let the receiver claim its lease and go idle at the head.
			deadline := time.Now().Add(20 * time.Second)
			for !d.Holds("arrivals") {
				if time.Now().After(deadline) {
					t.Fatal("no lease")
				}
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(200 * time.Millisecond)
			for i := range 3 {
				start := time.Now()
				emit(t, st, "t1", 1, 1)
				select {
				case at := <-a.at:
					if lag := at.Sub(start); lag > time.Second {
						t.Fatalf("event %d arrived after %v (poll 5s): the commit did not wake the dispatcher", i, lag)
					}
				case <-time.After(15 * time.Second):
					t.Fatalf("event %d never arrived", i)
				}
			}
		})
	}
}
