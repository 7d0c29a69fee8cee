package app_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wardhealth/ward/internal/alerts"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/events"
	"github.com/wardhealth/ward/internal/invalidation/natstest"
	"github.com/wardhealth/ward/internal/store/storetest"
)

// TestAlertsReachTheEventSystem: an alert's ledger record appends a
// security.alert event to the outbox in its own transaction (both
// databases), and the serving node's dispatcher publishes it to a real
// NATS JetStream: ids and codes only, never the patient's name.
func TestAlertsReachTheEventSystem(t *testing.T) {
	// The events prefix is one subject token: no dots.
	natsURL, prefix := natstest.URL(t), strings.ReplaceAll(natstest.Prefix(), ".", "")
	rules, err := alerts.Parse([]byte(`{"rules":[{"id":"vip-read","kind":"flagged-patient","labels":["VIP"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, backend := range apptest.Backends {
		t.Run(string(backend), func(t *testing.T) {
			w := apptest.Start(t, backend, func(c *config.Config) {
				c.Events.NATSURL, c.Events.NATSPrefix = natsURL, prefix+string(backend)
			})
			t.Cleanup(func() {
				if js, err := jetstream.New(nc); err == nil {
					js.DeleteStream(context.Background(), strings.ToUpper(prefix+string(backend))+"_EVENTS_"+w.Config.Tenant)
				}
			})
			sub, err := nc.SubscribeSync(prefix + string(backend) + "." + w.Config.Tenant + "." + events.SecurityAlert)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
			A, N := w.Tokens[authz.RoleAdmin], w.Tokens[authz.RoleNurse]
			if r := w.Do(t, "PUT", "/fhir/Practitioner/pract-nurse", A, []byte(`{"resourceType":"Practitioner","id":"pract-nurse"}`)); r.Status/100 != 2 {
				t.Fatalf("practitioner: %d %s", r.Status, r.Body)
			}
			if r := w.Do(t, "PUT", "/fhir/Patient/vip", A, []byte(`{"resourceType":"Patient","id":"vip","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"VIP"}]},"name":[{"family":"`+plantedName+`"}],"generalPractitioner":[{"reference":"Practitioner/pract-nurse"}]}`)); r.Status/100 != 2 {
				t.Fatalf("patient: %d %s", r.Status, r.Body)
			}
			if r := w.Do(t, "GET", "/fhir/Patient/vip", N, nil); r.Status != 200 {
				t.Fatalf("nurse reads: %d %s", r.Status, r.Body)
			}
			o := w.App.Store.(storetest.Outboxer)
			ctx := context.Background()
			before, err := o.OutboxStats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			runner := w.App.NewAlertRunner(rules)
			for {
				n, _, err := runner.Step(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					break
				}
			}
			var alertReq []string
			for _, r := range w.Ledger(t) {
				if r.Action == alerts.ActionAlert {
					alertReq = append(alertReq, r.RequestID)
				}
			}
			if len(alertReq) != 1 {
				t.Fatalf("%d alert records, want 1", len(alertReq))
			}
			// The outbox grew by the alert's event alone: the runner's
			// commit carried the record and its event together.
			all, err := o.OutboxAfter(ctx, before.Head, 100)
			if err != nil {
				t.Fatal(err)
			}
			// phi.disclosed is appended by its own emitter, from the
			// ledger, whenever it runs: not part of this commit.
			var evs = all[:0:0]
			for _, e := range all {
				if e.Type != events.PHIDisclosed {
					evs = append(evs, e)
				}
			}
			if len(evs) != 1 || evs[0].Type != events.SecurityAlert {
				t.Fatalf("outbox after the alert: %d events %v", len(evs), evs)
			}
			check := func(b []byte) {
				t.Helper()
				env, err := events.Parse(b)
				if err != nil {
					t.Fatal(err)
				}
				d := env.Data
				if env.Type != events.SecurityAlert || d.Reason != "vip-read" || d.Actor != w.UserIDs[authz.RoleNurse] ||
					len(d.Patients) != 1 || d.Patients[0] != "Patient/vip" || d.RequestID != alertReq[0] || env.Subject != "user/"+d.Actor {
					raw, _ := json.Marshal(env)
					t.Fatalf("security.alert event: %s", raw)
				}
				if strings.Contains(string(b), plantedName) {
					t.Fatalf("event carries PHI: %s", b)
				}
			}
			check(evs[0].JSON)
			msg, err := sub.NextMsg(20 * time.Second)
			if err != nil {
				t.Fatalf("no security.alert on NATS: %v", err)
			}
			if msg.Header.Get("Nats-Msg-Id") != evs[0].ID {
				t.Fatalf("NATS message id %q, want %q", msg.Header.Get("Nats-Msg-Id"), evs[0].ID)
			}
			check(msg.Data)
		})
	}
}
