package authn_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wardhealth/ward/internal/authn"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/invalidation"
	"github.com/wardhealth/ward/internal/invalidation/natstest"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/sqlite"
	"github.com/wardhealth/ward/internal/store/sqlstore"
)

// liveFlag is a Live whose answer the test sets.
type liveFlag struct{ down atomic.Bool }

func (l *liveFlag) Live() bool { return !l.down.Load() }

// changes records what a node publishes.
type changes struct{ got []authn.Change }

func (c *changes) TokensChanged(ch authn.Change) { c.got = append(c.got, ch) }

// node is one Ward node's token service on a database shared with others,
// with revocations refreshed only every hour: only an invalidation (or
// Live) can make it see another node's revocation sooner.
func node(t *testing.T, path string, tune func(*authn.Options)) *authn.Service {
	t.Helper()
	ctx := context.Background()
	st, km, sys := openKeyed(t, path)
	o := authn.Options{Issuer: "https://ward.test", Tenant: "default", SealKeyID: sys, RevocationRefresh: time.Hour}
	if tune != nil {
		tune(&o)
	}
	s, err := authn.New(ctx, st, km, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var nurse = authz.Subject{Tenant: "default", ID: "u1", Role: authz.RoleNurse, Scopes: []string{authn.DefaultScope}}

// A token revoked on node a is refused on node b as soon as b hears of it,
// and a publishes exactly the revoked id (and its tenant) after the commit.
func TestRevocationFromAnotherNode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.db")
	var pub changes
	a := node(t, path, func(o *authn.Options) { o.Peers = &pub })
	b := node(t, path, nil)
	ctx := context.Background()
	tok, _ := a.Issue(nurse)
	if _, err := b.Verify(ctx, tok.AccessToken); err != nil {
		t.Fatal(err)
	}
	if err := a.Revoke(ctx, "r1", tok.AccessToken); err != nil {
		t.Fatal(err)
	}
	if len(pub.got) != 1 || pub.got[0].Tenant != "default" || len(pub.got[0].JTI) != 32 || pub.got[0].Keys {
		t.Fatalf("published %+v, want one revocation with the token id", pub.got)
	}
	if _, err := b.Verify(ctx, tok.AccessToken); err != nil {
		t.Fatalf("without the invalidation b still trusts its list (the hour-long refresh): %v", err)
	}
	b.TokensChanged(pub.got[0])
	if _, err := b.Verify(ctx, tok.AccessToken); err == nil {
		t.Fatal("b accepts a token revoked on a after the invalidation")
	}
	// An invalidation without an id (an external issuer's token) reloads
	// every revocation from the store.
	tok2, _ := a.Issue(nurse)
	b.Verify(ctx, tok2.AccessToken)
	a.Revoke(ctx, "r2", tok2.AccessToken)
	b.TokensChanged(authn.Change{Tenant: "default"})
	if _, err := b.Verify(ctx, tok2.AccessToken); err == nil {
		t.Fatal("b accepts a revoked token after reloading the revocations")
	}
}

// While Live says invalidations may be missed, every Verify asks the store:
// a revocation committed elsewhere is refused at once.
func TestNotLiveChecksTheStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.db")
	var live liveFlag
	a := node(t, path, nil)
	b := node(t, path, func(o *authn.Options) { o.Live = &live })
	ctx := context.Background()
	tok, _ := a.Issue(nurse)
	if _, err := b.Verify(ctx, tok.AccessToken); err != nil {
		t.Fatal(err)
	}
	a.Revoke(ctx, "r1", tok.AccessToken)
	if _, err := b.Verify(ctx, tok.AccessToken); err != nil {
		t.Fatalf("live: the cached list is used (%v)", err)
	}
	live.down.Store(true)
	if _, err := b.Verify(ctx, tok.AccessToken); err == nil {
		t.Fatal("not live: b accepts a token revoked on a")
	}
	other, _ := a.Issue(nurse)
	if _, err := b.Verify(ctx, other.AccessToken); err != nil {
		t.Fatalf("not live: a good token is refused: %v", err)
	}
}

// A token signed by a key that another node created after this one loaded
// its keys verifies, even right after this node reloaded its keys for a
// token with a made-up kid (which used to block reloads for 10 s).
func TestKeyRotatedOnAnotherNode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.db")
	var pub changes
	a := node(t, path, func(o *authn.Options) { o.Peers = &pub })
	b := node(t, path, nil)
	ctx := context.Background()
	forged := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": "https://ward.test", "aud": "ward", "sub": "x",
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()})
	forged.Header["kid"] = "made-up"
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	bad, _ := forged.SignedString(k)
	if _, err := b.Verify(ctx, bad); err == nil {
		t.Fatal("a made-up kid verified")
	}
	if _, err := a.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if len(pub.got) != 1 || !pub.got[0].Keys {
		t.Fatalf("rotation published %+v, want a keys change", pub.got)
	}
	tok, _ := a.Issue(nurse)
	start := time.Now()
	if _, err := b.Verify(ctx, tok.AccessToken); err != nil {
		t.Fatalf("b refuses a token signed by the key a rotated to: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("verifying took %v", d)
	}
	// On the invalidation b also signs with the new key at once (not
	// within a minute).
	b.TokensChanged(pub.got[0])
	tb, _ := b.Issue(nurse)
	if kidOf(t, tb.AccessToken) != kidOf(t, tok.AccessToken) {
		t.Fatal("b still signs with the old key after the keys invalidation")
	}
}

// BenchmarkVerifyCachedOnBus is BenchmarkVerifyCached on a node whose
// revocation checks ask a connected invalidation bus whether it is live.
func BenchmarkVerifyCachedOnBus(b *testing.B) {
	bus, err := invalidation.Connect(invalidation.Options{URL: natstest.URL(b), Prefix: natstest.Prefix()})
	if err != nil {
		b.Fatal(err)
	}
	defer bus.Close()
	e := newEnvB(b)
	ctx := context.Background()
	svc, err := authn.New(ctx, e.st, e.keys, authn.Options{Issuer: "w", Tenant: "default", SealKeyID: mustSys(b, e.keys), Live: bus})
	if err != nil {
		b.Fatal(err)
	}
	if err := bus.Subscribe(nopHandler{}); err != nil {
		b.Fatal(err)
	}
	tok, _ := svc.Issue(authz.Subject{Tenant: "default", ID: "u", Role: authz.RolePhysician})
	for b.Loop() {
		if _, err := svc.Verify(ctx, tok.AccessToken); err != nil {
			b.Fatal(err)
		}
	}
}

type nopHandler struct{}

func (nopHandler) Invalidated(invalidation.Message) {}
func (nopHandler) Reset()                           {}

func mustSys(b *testing.B, km *keys.Manager) string {
	sys, err := km.DataKey(context.Background(), keys.SystemTenant)
	if err != nil {
		b.Fatal(err)
	}
	return sys
}

// A disabled user's and a disabled client's tokens are refused: by the
// node that disabled them at once (SubjectsChanged), on another node when
// the change arrives or, while that node is not live, from the store;
// enabling them again accepts their tokens again.
func TestDisabledSubjectsAcrossNodes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.db")
	var pub changes
	var live liveFlag
	a := node(t, path, func(o *authn.Options) { o.Peers = &pub })
	b := node(t, path, func(o *authn.Options) { o.Live = &live })
	st, err := sqlite.Open(context.Background(), path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	now := time.Now().UTC()
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewUser{User: &store.User{ID: "u1", Tenant: "default", Username: "nina", Role: "nurse", PasswordHash: "h", Created: now}}}}))
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewClient{Client: &store.Client{ID: "c1", Tenant: "default", Scope: "system/*.rs", Created: now}}}}))
	user, _ := a.Issue(nurse)
	client, _ := a.Issue(authz.Subject{Tenant: "default", ID: "client/c1", Role: authz.RoleClient, Scopes: []string{"system/*.rs"}})
	for _, tok := range []string{user.AccessToken, client.AccessToken} {
		if _, err := b.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	yes, no := true, false
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{&store.UserUpdate{UserID: "u1", Disabled: &yes}}}))
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{&store.ClientUpdate{ClientID: "c1", Disabled: true}}}))
	a.SubjectsChanged(ctx, "default")
	if len(pub.got) != 1 || pub.got[0] != (authn.Change{Tenant: "default"}) {
		t.Fatalf("published %+v, want a reload for the tenant", pub.got)
	}
	for name, tok := range map[string]string{"user": user.AccessToken, "client": client.AccessToken} {
		if _, err := a.Verify(ctx, tok); err == nil {
			t.Errorf("a accepts the disabled %s's token", name)
		}
		if _, err := b.Verify(ctx, tok); err != nil {
			t.Errorf("b, not told yet (hour-long refresh), refuses the %s's token: %v", name, err)
		}
		live.down.Store(true)
		if _, err := b.Verify(ctx, tok); err == nil {
			t.Errorf("b, not live, accepts the disabled %s's token", name)
		}
		live.down.Store(false)
	}
	b.TokensChanged(pub.got[0])
	for name, tok := range map[string]string{"user": user.AccessToken, "client": client.AccessToken} {
		if _, err := b.Verify(ctx, tok); err == nil {
			t.Errorf("b accepts the disabled %s's token after the change arrived", name)
		}
	}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{&store.UserUpdate{UserID: "u1", Disabled: &no}}}))
	a.SubjectsChanged(ctx, "default")
	b.TokensChanged(authn.Change{Tenant: "default"})
	if _, err := b.Verify(ctx, user.AccessToken); err != nil {
		t.Fatalf("enabled again, the user's token is refused: %v", err)
	}
	if _, err := b.Verify(ctx, client.AccessToken); err == nil {
		t.Fatal("the still disabled client's token is accepted")
	}
}
