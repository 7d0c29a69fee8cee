package authn_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/authn"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/store"
)

// A launch context expires after LaunchTTL (on the service's clock), is
// stored only hashed, and is bound to its tenant; a launch created by a
// backend client or an external subject is refused.
func TestEHRLaunchLifetime(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "w.db"))
	ctx := context.Background()
	h, _ := authn.HashPassword("correct horse battery staple")
	must(t, e.st.Commit(ctx, &store.Unit{Parts: []store.Part{store.NewUser{User: &store.User{ID: "u1", Tenant: "default", Username: "doc", Role: "physician", PasswordHash: h, Created: time.Now(), Practitioner: "pr1"}}}}))
	must(t, authn.AddTenant(ctx, e.st, authn.Actor{ID: "t", Role: "system"}, "other"))
	for _, tenant := range []string{"default", "other"} {
		if _, err := authn.AddClient(ctx, e.st, authn.Actor{ID: "t", Role: "system"}, authn.NewClient{ID: "app-" + tenant, Tenant: tenant,
			Scope: "launch patient/*.rs", RedirectURIs: []string{"https://app.example/cb"}}); err != nil {
			t.Fatal(err)
		}
	}
	doc := authz.Subject{Tenant: "default", ID: "u1", Role: authz.RolePhysician, Practitioner: "pr1"}
	for name, c := range map[string]struct {
		subj   authz.Subject
		client string
	}{
		"backend client":      {authz.Subject{Tenant: "default", ID: "client/b", Role: authz.RoleClient}, "app-default"},
		"external subject":    {authz.Subject{Tenant: "default", ID: "ext/abc", Role: authz.RolePhysician}, "app-default"},
		"app of other tenant": {doc, "app-other"},
	} {
		if _, err := e.svc.CreateLaunch(ctx, c.subj, authn.NewLaunch{ClientID: c.client, Patient: "p1"}); err == nil {
			t.Errorf("%s: launch created", name)
		}
	}
	l, err := e.svc.CreateLaunch(ctx, doc, authn.NewLaunch{ClientID: "app-default", Patient: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.LaunchByID(ctx, l.Launch); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("the launch value is stored in the clear")
	}
	verifier := strings.Repeat("a", 50)
	sum := sha256.Sum256([]byte(verifier))
	start := func(client, launch string) error {
		_, err := e.svc.StartAuthorize(ctx, authn.AuthorizeRequest{ResponseType: "code", ClientID: client, RedirectURI: "https://app.example/cb",
			Scope: "launch patient/*.rs", State: "s", CodeChallenge: base64.RawURLEncoding.EncodeToString(sum[:]), CodeChallengeMethod: "S256",
			Aud: "https://ward.test/fhir", Audience: "https://ward.test/fhir", Binding: "b", Launch: launch})
		return err
	}
	// Another tenant's app cannot use it.
	var ae *authn.AuthorizeError
	if err := start("app-other", l.Launch); !errors.As(err, &ae) || ae.Code != "invalid_request" {
		t.Fatalf("other tenant: %v", err)
	}
	if err := start("app-default", l.Launch); err != nil {
		t.Fatalf("fresh launch: %v", err)
	}
	*e.now = e.now.Add(authn.LaunchTTL + time.Second)
	if err := start("app-default", l.Launch); !errors.As(err, &ae) || ae.Code != "invalid_request" || !strings.Contains(ae.Description, "expired") {
		t.Fatalf("expired launch: %v", err)
	}
	u, _ := url.Parse(ae.Redirect())
	if u.Query().Get("error") != "invalid_request" || u.Query().Get("state") != "s" {
		t.Fatalf("redirect %q", ae.Redirect())
	}
	// A launch that expires while the user is on the login page gives no
	// code: the app is sent access_denied.
	l2, err := e.svc.CreateLaunch(ctx, doc, authn.NewLaunch{ClientID: "app-default", Patient: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	page, err := e.svc.StartAuthorize(ctx, authn.AuthorizeRequest{ResponseType: "code", ClientID: "app-default", RedirectURI: "https://app.example/cb",
		Scope: "launch patient/*.rs", State: "s", CodeChallenge: base64.RawURLEncoding.EncodeToString(sum[:]), CodeChallengeMethod: "S256",
		Aud: "https://ward.test/fhir", Audience: "https://ward.test/fhir", Binding: "b", Launch: l2.Launch})
	if err != nil {
		t.Fatal(err)
	}
	*e.now = e.now.Add(authn.LaunchTTL + time.Second)
	st, err := e.svc.CompleteAuthorize(ctx, authn.LoginForm{Handle: page.Handle, Binding: "b", Username: "doc", Password: "correct horse battery staple"})
	if to := st.Redirect; err != nil || !strings.Contains(to, "error=access_denied") || strings.Contains(to, "code=") {
		t.Fatalf("launch expired at login: %+v %v", st, err)
	}
}
