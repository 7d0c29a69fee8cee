package postgres

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Ward's sessions reuse generic plans unless the URL says otherwise (see
// connConfig).
func TestGenericPlansByDefault(t *testing.T) {
	for url, want := range map[string]string{
		"postgres://ward@db.example/ward":                                   "force_generic_plan",
		"postgres://ward@db.example/ward?plan_cache_mode=force_custom_plan": "force_custom_plan",
		"postgres://ward@db.example/ward?plan_cache_mode=auto":              "auto",
	} {
		cfg, err := connConfig(url)
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.RuntimeParams["plan_cache_mode"]; got != want {
			t.Errorf("%s: plan_cache_mode %q, want %q", url, got, want)
		}
	}
}

// fakeConnector refuses the first len(errs) connections with errs in turn.
type fakeConnector struct {
	errs  []error
	tries int
}

func (f *fakeConnector) Connect(context.Context) (driver.Conn, error) {
	f.tries++
	if f.tries <= len(f.errs) {
		return nil, f.errs[f.tries-1]
	}
	return nil, nil
}

func (f *fakeConnector) Driver() driver.Driver { return nil }

// A connection the server refused for want of a slot, or while starting
// up, is tried again until the wait is over; any other failure is not.
func TestConnectWaitsForASlot(t *testing.T) {
	tooMany := fmt.Errorf("connect: %w", &pgconn.PgError{Code: "53300", Message: "sorry, too many clients already"})
	starting := &pgconn.PgError{Code: "57P03", Message: "the database system is starting up"}
	denied := &pgconn.PgError{Code: "28P01", Message: "password authentication failed"}
	cases := []struct {
		name      string
		errs      []error
		wait      time.Duration
		wantTries int
		wantErr   error
	}{
		{"too many clients, then a slot", []error{tooMany, tooMany}, time.Minute, 3, nil},
		{"starting up, then up", []error{starting}, time.Minute, 2, nil},
		{"refused: not retried", []error{denied, denied}, time.Minute, 1, denied},
		{"no wait: not retried", []error{tooMany}, 0, 1, tooMany},
	}
	for _, c := range cases {
		f := &fakeConnector{errs: c.errs}
		_, err := waitingConnector{f, c.wait}.Connect(context.Background())
		if f.tries != c.wantTries || !errors.Is(err, c.wantErr) {
			t.Errorf("%s: %d tries, %v; want %d, %v", c.name, f.tries, err, c.wantTries, c.wantErr)
		}
	}
	// The caller's context bounds the wait too.
	f := &fakeConnector{errs: []error{tooMany, tooMany, tooMany, tooMany}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := (waitingConnector{f, time.Minute}).Connect(ctx); f.tries != 1 || !Busy(err) {
		t.Errorf("cancelled: %d tries, %v; want 1 and the server's refusal", f.tries, err)
	}
}
