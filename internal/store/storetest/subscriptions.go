package storetest

import (
	"bytes"
	"context"
	"testing"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/store"
)

func init() {
	cases = append(cases, struct {
		name string
		run  func(t *testing.T, open Opener)
	}{"SubscriptionOwners", testSubscriptionOwners})
}

// testSubscriptionOwners: the owner of a Subscription is recorded with
// its unit, replaced by a later one, kept per tenant, and a failed unit
// records none.
func testSubscriptionOwners(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	l, ok := st.(interface {
		SubscriptionOwners(ctx context.Context) ([]store.SubscriptionRow, error)
	})
	if !ok {
		t.Fatalf("%T lists no subscription owners", st)
	}
	commit := func(tenant, id, owner string, version int64) error {
		return st.Commit(ctx, &store.Unit{Writes: []store.Write{write(tenant, "Subscription", id, version, "x")},
			Parts: []store.Part{store.SubscriptionOwner{Tenant: tenant, ID: id, Owner: []byte(owner), At: t0}}, Audit: []*audit.Record{rec(tenant, "create")}})
	}
	must(t, commit("t1", "s1", `{"id":"u1"}`, 1))
	must(t, commit("t2", "s1", `{"id":"u9"}`, 1))
	must(t, commit("t1", "s1", `{"id":"u2"}`, 2))
	if err := commit("t1", "s2", `{"id":"u3"}`, 5); err == nil { // not a first version: a conflict
		t.Fatal("a unit whose write conflicts committed")
	}
	rows, err := l.SubscriptionOwners(ctx)
	must(t, err)
	if len(rows) != 2 || rows[0].Tenant != "t1" || rows[0].ID != "s1" || !bytes.Equal(rows[0].Owner, []byte(`{"id":"u2"}`)) ||
		rows[1].Tenant != "t2" || !bytes.Equal(rows[1].Owner, []byte(`{"id":"u9"}`)) || !rows[0].Updated.Equal(t0) {
		t.Fatalf("owners: %+v", rows)
	}
}
