package app_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
)

// TestSubscriptionWebsocketTwoNodes: two nodes on one database, a
// websocket client bound on each: both are pinged for a match, whichever
// node holds the Subscription's receiver lease.
func TestSubscriptionWebsocketTwoNodes(t *testing.T) {
	fast := func(c *config.Config) { c.Events.WebhookSync = 50 * time.Millisecond }
	a := apptest.Start(t, apptest.Postgres, fast)
	b := apptest.Join(t, a, nil, fast)
	phys := a.Tokens[authz.RolePhysician]
	pid := a.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","generalPractitioner":[{"reference":"Practitioner/`+apptest.Links[authz.RolePhysician].Practitioner+`"}]}`)
	r := a.Do(t, http.MethodPost, "/fhir/Subscription", phys, []byte(`{"resourceType":"Subscription","status":"requested","reason":"ws","criteria":"Observation?code=http://loinc.org|8867-4","channel":{"type":"websocket"}}`))
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	id, _ := r.JSON(t)["id"].(string)
	waitFor(t, "websocket subscription active", func() bool { s, _ := subStatus(t, a, id); return s == "active" })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var conns []*websocket.Conn
	for _, w := range []*apptest.Ward{a, b} {
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(w.Server.URL, "http")+app.WebsocketPath, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		if err := c.Write(ctx, websocket.MessageText, []byte("bind "+id+" "+w.Tokens[authz.RolePhysician])); err != nil {
			t.Fatal(err)
		}
		if _, m, err := c.Read(ctx); err != nil || string(m) != "bound "+id {
			t.Fatalf("bind: %q %v", m, err)
		}
		conns = append(conns, c)
	}
	obs := func(code string) {
		a.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"`+code+`"}]},"subject":{"reference":"Patient/`+pid+`"}}`)
	}
	obs("2708-6") // no match: no ping
	obs("8867-4")
	for i, c := range conns {
		if _, m, err := c.Read(ctx); err != nil || string(m) != "ping "+id {
			t.Fatalf("node %d: ping: %q %v", i, m, err)
		}
	}
	for i, c := range conns {
		rctx, rcancel := context.WithTimeout(ctx, 300*time.Millisecond)
		if _, m, err := c.Read(rctx); err == nil {
			t.Fatalf("node %d: one match, a second message: %q", i, m)
		}
		rcancel()
	}
}
