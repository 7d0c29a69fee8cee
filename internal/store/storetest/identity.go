package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/store"
)

// Conformance cases of users, keys, clients, tenants, codes and tokens.

func testUsersAndKeys(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	u := &store.User{ID: "u1", Tenant: "a", Username: "alice", Role: "nurse", PasswordHash: "h", Created: t0}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewUser{User: u}}, Audit: []*audit.Record{rec("a", "user-add")}}))
	got, err := st.UserByName(ctx, "a", "alice")
	if err != nil || got.ID != "u1" || got.Role != "nurse" || !got.Created.Equal(t0) {
		t.Fatalf("%+v %v", got, err)
	}
	if byID, err := st.UserByID(ctx, "u1"); err != nil || byID.Username != "alice" {
		t.Fatalf("by id: %+v %v", byID, err)
	}
	if _, err := st.UserByID(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	// Links to FHIR resources and clearances round-trip (issue #6).
	linked := []*store.User{
		{ID: "u2", Tenant: "c", Username: "dr", Role: "physician", PasswordHash: "h", Created: t0, Practitioner: "pr-1", Clearances: []string{"R", "HIV"}},
		{ID: "u3", Tenant: "c", Username: "pat", Role: "user", PasswordHash: "h", Created: t0, Patient: "pa-1"},
	}
	for _, lu := range linked {
		must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewUser{User: lu}}, Audit: []*audit.Record{rec("c", "user-add")}}))
		got, err := st.UserByID(ctx, lu.ID)
		if err != nil || got.Practitioner != lu.Practitioner || got.Patient != lu.Patient || fmt.Sprint(got.Clearances) != fmt.Sprint(lu.Clearances) {
			t.Fatalf("links: %+v %v", got, err)
		}
	}
	if us, err := st.Users(ctx, "c"); err != nil || len(us) != 2 || us[0].Practitioner != "pr-1" || us[1].Patient != "pa-1" {
		t.Fatalf("users list links: %+v %v", us, err)
	}
	if _, err := st.UserByName(ctx, "b", "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("user visible in another tenant: %v", err)
	}
	until := t0.Add(time.Hour)
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{&store.LoginState{UserID: "u1", FailedLogins: 6, LockedUntil: until}}}))
	got, _ = st.UserByName(ctx, "a", "alice")
	if got.FailedLogins != 6 || !got.LockedUntil.Equal(until) {
		t.Fatalf("login state %+v", got)
	}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{&store.LoginState{UserID: "u1"}}}))
	got, _ = st.UserByName(ctx, "a", "alice")
	if got.FailedLogins != 0 || !got.LockedUntil.IsZero() {
		t.Fatalf("login state not reset %+v", got)
	}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{&store.TOTPEnrollment{UserID: "u1", Sealed: []byte{9, 9}}}}))
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{&store.LoginState{UserID: "u1", TOTPLastStep: 1234}}}))
	got, _ = st.UserByName(ctx, "a", "alice")
	if string(got.TOTPSecret) != "\x09\x09" || got.TOTPLastStep != 1234 {
		t.Fatalf("TOTP state %+v", got)
	}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{&store.TOTPEnrollment{UserID: "u1"}}}))
	if got, _ = st.UserByName(ctx, "a", "alice"); got.TOTPSecret != nil || got.TOTPLastStep != 0 {
		t.Fatalf("TOTP not removed %+v", got)
	}
	yes := true
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{&store.UserUpdate{UserID: "u1", Disabled: &yes, PasswordHash: "h2"}}}))
	if got, _ = st.UserByName(ctx, "a", "alice"); !got.Disabled || got.PasswordHash != "h2" {
		t.Fatalf("update %+v", got)
	}
	if err := st.Commit(ctx, &store.Unit{Parts: []store.Part{&store.UserUpdate{UserID: "nobody", Disabled: &yes}}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("update of an unknown user: %v", err)
	}
	list, err := st.Users(ctx, "a")
	if err != nil || len(list) != 1 || list[0].Username != "alice" || !list[0].Disabled {
		t.Fatalf("users %+v %v", list, err)
	}
	if other, _ := st.Users(ctx, "b"); len(other) != 0 {
		t.Fatal("users listed across tenants")
	}
	dup := *u
	dup.ID = "u2"
	if err := st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewUser{User: &dup}}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate username: %v", err)
	}
	// A part the store does not know (here a pointer to a value part) is
	// refused, and is not a conflict.
	if err := st.Commit(ctx, &store.Unit{Parts: []store.Part{&store.NewUser{User: &dup}}}); err == nil || errors.Is(err, store.ErrConflict) {
		t.Fatalf("unknown part: %v", err)
	}
	k := &store.Key{ID: "k1", Purpose: "dek", Tenant: "a", Wrapped: []byte{1, 2, 3}, Created: t0}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewKey{Key: k}}}))
	if err := st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewKey{Key: k}}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate key: %v", err)
	}
	ks, err := st.Keys(ctx, "dek")
	if err != nil || len(ks) != 1 || string(ks[0].Wrapped) != "\x01\x02\x03" || ks[0].Scope != "tenant" || ks[0].Version != 1 || ks[0].KEK != "" {
		t.Fatalf("%+v %v", ks, err)
	}
	testKeyVersions(t, st, t0)
	VerifyLedger(t, st)
}

// testKeyVersions: keys are named by (tenant, scope, version), record the
// KEK version that wrapped them, page in id order, and re-wrap by
// compare-and-swap.
func testKeyVersions(t *testing.T, st store.Store, t0 time.Time) {
	ctx := context.Background()
	k2 := &store.Key{ID: "k2", Purpose: "dek", Tenant: "a", Scope: "tenant", Version: 2, KEK: "kek-a", Wrapped: []byte{4}, Created: t0}
	k3 := &store.Key{ID: "k3", Purpose: "dek", Tenant: "a", Scope: "patient/p1", Version: 1, KEK: "kek-a", Wrapped: []byte{5}, Created: t0}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewKey{Key: k2}, store.NewKey{Key: k3}}}))
	// The same (tenant, scope, version) under another id is refused.
	dup := &store.Key{ID: "k4", Purpose: "dek", Tenant: "a", Scope: "tenant", Version: 2, Wrapped: []byte{6}, Created: t0}
	if err := st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewKey{Key: dup}}}); err == nil {
		t.Fatal("a second key with the same tenant, scope and version was stored")
	}
	page, err := st.KeysAfter(ctx, "dek", "k1", 1)
	if err != nil || len(page) != 1 || page[0].ID != "k2" || page[0].KEK != "kek-a" || page[0].Version != 2 {
		t.Fatalf("page after k1: %+v %v", page, err)
	}
	// A re-wrap whose old value is stale changes nothing; a current one
	// replaces the wrapped form and the KEK version.
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{
		store.RewrapKey{ID: "k2", Old: []byte{9}, New: []byte{7}, KEK: "kek-b"},
		store.RewrapKey{ID: "k3", Old: []byte{5}, New: []byte{8}, KEK: "kek-b"},
	}}))
	page, err = st.KeysAfter(ctx, "dek", "k1", 10)
	if err != nil || len(page) != 2 || page[0].Wrapped[0] != 4 || page[0].KEK != "kek-a" || page[1].Wrapped[0] != 8 || page[1].KEK != "kek-b" {
		t.Fatalf("after re-wrap: %+v %v", page, err)
	}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.DestroyKey{ID: "k3"}, store.DestroyKey{ID: "unknown"}}}))
	if page, err = st.KeysAfter(ctx, "dek", "k2", 10); err != nil || len(page) != 0 {
		t.Fatalf("after destroy: %+v %v", page, err)
	}
	// The narrow page of a re-wrap: the same keys, id, KEK and wrapped form.
	if page, err = st.WrappedAfter(ctx, "dek", "k1", 10); err != nil || len(page) != 1 || page[0].ID != "k2" || page[0].KEK != "kek-a" || page[0].Wrapped[0] != 4 {
		t.Fatalf("wrapped page after k1: %+v %v", page, err)
	}
	// Re-sealing a version replaces its body, and the current row's copy
	// when it is the current version, unless the body changed meanwhile.
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("rs", "Patient", "p1", 1, "old-1")}}))
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("rs", "Patient", "p1", 2, "old-2")}}))
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{
		store.ResealVersion{Tenant: "rs", Type: "Patient", ID: "p1", Version: 1, Old: []byte("old-1"), New: []byte("new-1")},
		store.ResealVersion{Tenant: "rs", Type: "Patient", ID: "p1", Version: 2, Old: []byte("stale"), New: []byte("lost")},
	}}))
	v1, _ := st.Version(ctx, "rs", "Patient", "p1", 1)
	cur, _ := st.Current(ctx, "rs", "Patient", "p1")
	if string(v1.Body) != "new-1" || string(cur.Body) != "old-2" {
		t.Fatalf("after re-seal: version 1 %q, current %q", v1.Body, cur.Body)
	}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{
		store.ResealVersion{Tenant: "rs", Type: "Patient", ID: "p1", Version: 2, Old: []byte("old-2"), New: []byte("new-2")}}}))
	cur, _ = st.Current(ctx, "rs", "Patient", "p1")
	hits, _ := st.Search(ctx, store.SearchQuery{Tenant: "rs", Types: []string{"Patient"}, Limit: 10})
	if string(cur.Body) != "new-2" || len(hits) != 1 || string(hits[0].Body) != "new-2" {
		t.Fatalf("current after re-seal: %q, %+v", cur.Body, hits)
	}
}

func testClientsAndAssertionReplay(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	c := &store.Client{ID: "backend-1", Tenant: "a", JWKS: `{"keys":[]}`, Scope: "system/Patient.rs", Created: t0}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewClient{Client: c}}}))
	if err := st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewClient{Client: c}}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate client: %v", err)
	}
	got, err := st.ClientByID(ctx, "backend-1")
	if err != nil || got.Scope != c.Scope || got.JWKS != c.JWKS || got.Tenant != "a" {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := st.ClientByID(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	jti := &store.JTI{ClientID: "backend-1", JTI: "j1", Expires: time.Now().Add(time.Minute)}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.UseJTI(*jti)}, Audit: []*audit.Record{rec("a", "client-token")}}))
	if err := st.Commit(ctx, &store.Unit{Parts: []store.Part{store.UseJTI(*jti)}, Audit: []*audit.Record{rec("a", "client-token")}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("replayed jti: %v", err)
	}
	// The same jti from another client is not a replay; an expired
	// one is purged and may be used again.
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.UseJTI{ClientID: "other", JTI: "j1", Expires: time.Now().Add(time.Minute)}}}))
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.UseJTI{ClientID: "backend-1", JTI: "old", Expires: time.Now().Add(-time.Minute)}}}))
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.UseJTI{ClientID: "backend-1", JTI: "j2", Expires: time.Now().Add(time.Minute)}}}))
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.UseJTI{ClientID: "backend-1", JTI: "old", Expires: time.Now().Add(time.Minute)}}}))
	VerifyLedger(t, st)
}

func testTenantsClientsAndCodes(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	ts, err := st.Tenants(ctx)
	if err != nil || len(ts) != 1 || ts[0].ID != "default" {
		t.Fatalf("a new database has tenants %+v (%v), want only default", ts, err)
	}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewTenant{Tenant: &store.Tenant{ID: "b", Created: t0}}}}))
	if err := st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewTenant{Tenant: &store.Tenant{ID: "b", Created: t0}}}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate tenant: %v", err)
	}
	if got, err := st.TenantByID(ctx, "b"); err != nil || got.ID != "b" || !got.Created.Equal(t0) {
		t.Fatalf("tenant b: %+v %v", got, err)
	}
	if _, err := st.TenantByID(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown tenant: %v", err)
	}
	app := &store.Client{ID: "app-1", Tenant: "b", Scope: "launch/patient openid", Created: t0, RedirectURIs: []string{"https://app.example/cb", "http://127.0.0.1:9/cb"}}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewClient{Client: app}}}))
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewClient{Client: &store.Client{ID: "app-0", Tenant: "b", Scope: "x", Created: t0}}}}))
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewClient{Client: &store.Client{ID: "other", Tenant: "default", Scope: "x", Created: t0}}}}))
	cs, err := st.Clients(ctx, "b")
	if err != nil || len(cs) != 2 || cs[0].ID != "app-0" || cs[1].ID != "app-1" || fmt.Sprint(cs[1].RedirectURIs) != fmt.Sprint(app.RedirectURIs) {
		t.Fatalf("clients of b: %+v %v", cs, err)
	}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{&store.ClientUpdate{ClientID: "app-1", Disabled: true}}}))
	if got, _ := st.ClientByID(ctx, "app-1"); !got.Disabled || len(got.RedirectURIs) != 2 {
		t.Fatalf("disabled client: %+v", got)
	}
	if err := st.Commit(ctx, &store.Unit{Parts: []store.Part{&store.ClientUpdate{ClientID: "nope", Disabled: true}}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("disable unknown client: %v", err)
	}
	exp := time.Now().Add(time.Minute).UTC().Truncate(time.Microsecond)
	code := &store.Code{ID: "c1", ClientID: "app-1", RedirectURI: "https://app.example/cb", CodeChallenge: "ch", UserID: "u1", Tenant: "b", Scope: "openid", Expires: exp}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewCode{Code: code}}}))
	got, err := st.CodeByID(ctx, "c1")
	if err != nil || got.Used || got.CodeChallenge != "ch" || got.RedirectURI != code.RedirectURI || !got.Expires.Equal(exp) {
		t.Fatalf("code: %+v %v", got, err)
	}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{&store.CodeUse{ID: "c1", TokenID: "j1", TokenExpires: exp, Family: "f1"}}, Audit: []*audit.Record{rec("b", "code")}}))
	if err := st.Commit(ctx, &store.Unit{Parts: []store.Part{&store.CodeUse{ID: "c1"}}, Audit: []*audit.Record{rec("b", "code")}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second use of a code: %v", err)
	}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewCode{Code: &store.Code{ID: "old", ClientID: "app-1", Expires: time.Now().Add(-time.Second)}}}}))
	if err := st.Commit(ctx, &store.Unit{Parts: []store.Part{&store.CodeUse{ID: "old"}}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("use of an expired code: %v", err)
	}
	if got, _ := st.CodeByID(ctx, "c1"); !got.Used || got.TokenID != "j1" || got.Family != "f1" || !got.TokenExpires.Equal(exp) {
		t.Fatalf("used code: %+v", got)
	}
	// A code and a refresh token carry an EHR launch's context; a
	// launch context is used once, and not when expired; a client
	// keeps its secret's hash.
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewCode{Code: &store.Code{ID: "c2", ClientID: "app-1", Tenant: "b", Expires: exp, Patient: "p1", Encounter: "e1", EHRLaunch: true}}}}))
	if got, err := st.CodeByID(ctx, "c2"); err != nil || got.Patient != "p1" || got.Encounter != "e1" || !got.EHRLaunch {
		t.Fatalf("code with a launch context: %+v %v", got, err)
	}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewRefresh{Refresh: &store.Refresh{ID: "r-launch", Family: "f2", UserID: "u1", Tenant: "b", Scope: "launch", Expires: exp, Patient: "p1", Encounter: "e1", ClientID: "app-1"}}}}))
	if got, err := st.RefreshByID(ctx, "r-launch"); err != nil || got.Patient != "p1" || got.Encounter != "e1" || got.ClientID != "app-1" {
		t.Fatalf("refresh with a launch context: %+v %v", got, err)
	}
	l := &store.Launch{ID: "l1", Tenant: "b", UserID: "u1", ClientID: "app-1", Patient: "p1", Encounter: "e1", Expires: exp}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewLaunch{Launch: l}}}))
	if got, err := st.LaunchByID(ctx, "l1"); err != nil || got.Used || *got != *l {
		t.Fatalf("launch: %+v %v", got, err)
	}
	if _, err := st.LaunchByID(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown launch: %v", err)
	}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.UseLaunch{ID: "l1"}}}))
	if err := st.Commit(ctx, &store.Unit{Parts: []store.Part{store.UseLaunch{ID: "l1"}}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second use of a launch: %v", err)
	}
	if got, _ := st.LaunchByID(ctx, "l1"); !got.Used {
		t.Fatalf("used launch: %+v", got)
	}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewLaunch{Launch: &store.Launch{ID: "l-old", Tenant: "b", Expires: time.Now().Add(-time.Second)}}}}))
	if err := st.Commit(ctx, &store.Unit{Parts: []store.Part{store.UseLaunch{ID: "l-old"}}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("use of an expired launch: %v", err)
	}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewClient{Client: &store.Client{ID: "conf-1", Tenant: "b", Scope: "openid", Created: t0, RedirectURIs: []string{"https://app.example/cb"}, SecretHash: "$argon2id$x"}}}}))
	if got, err := st.ClientByID(ctx, "conf-1"); err != nil || got.SecretHash != "$argon2id$x" {
		t.Fatalf("confidential client: %+v %v", got, err)
	}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewClient{Client: &store.Client{ID: "ehr-1", Tenant: "b", Scope: "launch", Created: t0, RedirectURIs: []string{"https://app.example/cb"}, LaunchURI: "https://app.example/launch"}}}}))
	if got, err := st.ClientByID(ctx, "ehr-1"); err != nil || got.LaunchURI != "https://app.example/launch" {
		t.Fatalf("client with a launch URI: %+v %v", got, err)
	}
	testGrants(t, st, t0)
	VerifyLedger(t, st)
}

// testGrants: a consent remembered per user and app, replaced by a new
// one, listed per tenant and user, and revoked once.
func testGrants(t *testing.T, st store.Store, t0 time.Time) {
	ctx := context.Background()
	if _, err := st.GrantOf(ctx, "u1", "app-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("no grant yet: %v", err)
	}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.PutGrant{Grant: &store.Grant{Tenant: "b", UserID: "u1", ClientID: "app-1", Scope: "patient/*.rs", Created: t0}}}}))
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.PutGrant{Grant: &store.Grant{Tenant: "b", UserID: "u1", ClientID: "app-1", Scope: "patient/*.rs openid", Created: t0}}}}))
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.PutGrant{Grant: &store.Grant{Tenant: "b", UserID: "u2", ClientID: "app-1", Scope: "openid", Created: t0}}}}))
	if g, err := st.GrantOf(ctx, "u1", "app-1"); err != nil || g.Scope != "patient/*.rs openid" || g.Tenant != "b" || !g.Created.Equal(t0) {
		t.Fatalf("grant: %+v %v", g, err)
	}
	if all, err := st.Grants(ctx, "b", ""); err != nil || len(all) != 2 {
		t.Fatalf("tenant grants: %+v %v", all, err)
	}
	if mine, err := st.Grants(ctx, "b", "u2"); err != nil || len(mine) != 1 || mine[0].UserID != "u2" {
		t.Fatalf("user grants: %+v %v", mine, err)
	}
	if other, err := st.Grants(ctx, "a", ""); err != nil || len(other) != 0 {
		t.Fatalf("another tenant's grants: %+v %v", other, err)
	}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.RevokeGrant{UserID: "u1", ClientID: "app-1"}}}))
	if err := st.Commit(ctx, &store.Unit{Parts: []store.Part{store.RevokeGrant{UserID: "u1", ClientID: "app-1"}}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second revocation: %v", err)
	}
	if _, err := st.GrantOf(ctx, "u1", "app-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoked grant: %v", err)
	}
}

func testRevokedTokens(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.RevokeToken{JTI: "t1", Expires: time.Now().Add(time.Hour)}}}))
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.RevokeToken{JTI: "t1", Expires: time.Now().Add(time.Hour)}}}))
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.RevokeToken{JTI: "old", Expires: time.Now().Add(-time.Hour)}}}))
	got, err := st.Revoked(ctx)
	if err != nil || fmt.Sprint(got) != "[t1]" {
		t.Fatalf("revoked %v %v", got, err)
	}
}

func testDisabledSubjects(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	for _, id := range []string{"u1", "u2"} {
		must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewUser{User: &store.User{ID: id, Tenant: "a", Username: id, Role: "nurse", PasswordHash: "h", Created: t0}}}}))
	}
	for _, id := range []string{"c1", "c2"} {
		must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewClient{Client: &store.Client{ID: id, Tenant: "a", Scope: "x", Created: t0}}}}))
	}
	list := func() string {
		got, err := st.DisabledSubjects(ctx)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		return fmt.Sprint(got)
	}
	if got := list(); got != "[]" {
		t.Fatalf("nothing disabled: %s", got)
	}
	yes, no := true, false
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{&store.UserUpdate{UserID: "u2", Disabled: &yes}}}))
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{&store.ClientUpdate{ClientID: "c1", Disabled: true}}}))
	if got := list(); got != "[client/c1 u2]" {
		t.Fatalf("disabled: %s", got)
	}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{&store.UserUpdate{UserID: "u2", Disabled: &no}}}))
	if got := list(); got != "[client/c1]" {
		t.Fatalf("after enabling u2: %s", got)
	}
}

func testRefreshTokens(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewRefresh{Refresh: &store.Refresh{ID: "h1", Family: "f", UserID: "u1", Tenant: "a", Scope: "offline_access", Expires: exp}}}}))
	got, err := st.RefreshByID(ctx, "h1")
	if err != nil || got.Family != "f" || got.Used || !got.Expires.Equal(exp) {
		t.Fatalf("%+v %v", got, err)
	}
	// Use and rotate in one unit; a second use conflicts.
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.UseRefresh{ID: "h1"}, store.NewRefresh{Refresh: &store.Refresh{ID: "h2", Family: "f", UserID: "u1", Tenant: "a", Expires: exp}}}}))
	if err := st.Commit(ctx, &store.Unit{Parts: []store.Part{store.UseRefresh{ID: "h1"}, store.NewRefresh{Refresh: &store.Refresh{ID: "h3", Family: "f", UserID: "u1", Tenant: "a", Expires: exp}}}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second use: %v", err)
	}
	if _, err := st.RefreshByID(ctx, "h3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("the refused rotation stored its new token")
	}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.RevokeFamily{Family: "f"}}}))
	if got, _ := st.RefreshByID(ctx, "h2"); !got.Revoked {
		t.Fatal("family not revoked")
	}
	if err := st.Commit(ctx, &store.Unit{Parts: []store.Part{store.UseRefresh{ID: "h2"}}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("use of a revoked token: %v", err)
	}
}

// testKeyFence: once a data key is retiring, a write whose body is sealed
// under it is refused with ErrKeyRetired (its audit record still
// commits); a destroyed key is a
// tombstone that is no longer listed, keeps its id taken and refuses
// writes the same way. Bodies that are not envelopes, or name a key the
// store does not hold, are not judged.
func testKeyFence(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	ring := seal.NewKeyring()
	for _, id := range []string{"f/1", "f/2", "f/x"} {
		if err := ring.Add(id, bytes.Repeat([]byte(id[2:]), seal.KeySize)); err != nil {
			t.Fatal(err)
		}
	}
	sealed := func(kid, id string) store.Write {
		body, err := ring.Seal(kid, []byte("{}"), seal.AAD("kf", "Patient", id, 1))
		if err != nil {
			t.Fatal(err)
		}
		return store.Write{Tenant: "kf", Type: "Patient", ID: id, Version: 1, LastUpdated: t0, Body: body}
	}
	for v, id := range []string{"f/1", "f/2"} {
		must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewKey{Key: &store.Key{ID: id, Purpose: "dek", Tenant: "kf", Version: int64(v + 1), Wrapped: []byte{1}, Created: t0}}}}))
	}
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{sealed("f/1", "before")}}))
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.RetireKey{ID: "f/1"}, store.RetireKey{ID: "unknown"}}}))
	ks, _ := st.Keys(ctx, "dek")
	states := map[string]string{}
	for _, k := range ks {
		states[k.ID] = k.State
	}
	if states["f/1"] != store.KeyRetiring || states["f/2"] != store.KeyActive {
		t.Fatalf("states %v", states)
	}
	r := rec("kf", "create")
	if err := st.Commit(ctx, &store.Unit{Writes: []store.Write{sealed("f/1", "late")}, Audit: []*audit.Record{r}}); !errors.Is(err, store.ErrKeyRetired) {
		t.Fatalf("a write under a retiring key: %v", err)
	}
	if _, err := st.Current(ctx, "kf", "Patient", "late"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused write was stored: %v", err)
	}
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{sealed("f/2", "new"), sealed("f/x", "unheld"), write("kf", "Patient", "plain", 1, "x")}}))
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.DestroyKey{ID: "f/1"}}}))
	if ks, _ = st.Keys(ctx, "dek"); slices.ContainsFunc(ks, func(k store.Key) bool { return k.ID == "f/1" }) {
		t.Fatal("a destroyed key is listed")
	}
	if err := st.Commit(ctx, &store.Unit{Writes: []store.Write{sealed("f/1", "after")}}); !errors.Is(err, store.ErrKeyRetired) {
		t.Fatalf("a write under a destroyed key: %v", err)
	}
	if err := st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewKey{Key: &store.Key{ID: "f/1", Purpose: "dek", Tenant: "kf", Version: 9, Wrapped: []byte{1}, Created: t0}}}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a destroyed key's id was taken again: %v", err)
	}
	VerifyLedger(t, st)
}
