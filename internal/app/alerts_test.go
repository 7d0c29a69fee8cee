package app_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/alerts"
	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
)

// alertsOf returns the alert records of the ledger as "rule entity,...".
func alertsOf(t *testing.T, w *apptest.Ward) []string {
	t.Helper()
	var out []string
	for _, r := range w.Ledger(t) {
		if r.Action == alerts.ActionAlert {
			var pats []string
			for _, e := range r.Entities {
				if strings.HasPrefix(e, "Patient/") || strings.HasPrefix(e, "user/") {
					pats = append(pats, e)
				}
			}
			out = append(out, r.Detail+" "+strings.Join(pats, ","))
		}
	}
	return out
}

// TestAlertsOverTheLedger runs the rules that need facts from the
// database over a real ledger, on both databases: a nurse reading a VIP
// patient, a patient sharing her family name (blind indexes only) and a
// plain one, then logging in from a new address. Alerts are ledger
// records; a restarted runner neither repeats them nor forgets its
// state.
func TestAlertsOverTheLedger(t *testing.T) {
	rules, err := alerts.Parse([]byte(`{"rules":[
		{"id":"flagged-patient","kind":"flagged-patient","labels":["VIP","EMP"]},
		{"id":"same-family","kind":"same-family"},
		{"id":"new-address","kind":"new-address"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, backend := range apptest.Backends {
		t.Run(string(backend), func(t *testing.T) {
			w := apptest.Start(t, backend, func(c *config.Config) {
				c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")}
			})
			A, N := w.Tokens[authz.RoleAdmin], w.Tokens[authz.RoleNurse]
			nurse := w.UserIDs[authz.RoleNurse]
			put := func(path, body string) {
				t.Helper()
				if r := w.Do(t, "PUT", path, A, []byte(body)); r.Status/100 != 2 {
					t.Fatalf("PUT %s: %d %s", path, r.Status, r.Body)
				}
			}
			put("/fhir/Practitioner/pract-nurse", `{"resourceType":"Practitioner","id":"pract-nurse","name":[{"family":"Okonkwo","given":["Ada"]}]}`)
			gp := `"generalPractitioner":[{"reference":"Practitioner/pract-nurse"}]`
			put("/fhir/Patient/vip", `{"resourceType":"Patient","id":"vip","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"VIP"}]},"name":[{"family":"Adeyemi"}],`+gp+`}`)
			put("/fhir/Patient/cousin", `{"resourceType":"Patient","id":"cousin","name":[{"family":"Okonkwo","given":["Obi"]}],`+gp+`}`)
			put("/fhir/Patient/plain", `{"resourceType":"Patient","id":"plain","name":[{"family":"Adeyemi"}],`+gp+`}`)
			for _, id := range []string{"plain", "vip", "cousin"} {
				if r := w.Do(t, "GET", "/fhir/Patient/"+id, N, nil); r.Status != 200 {
					t.Fatalf("nurse reads %s: %d %s", id, r.Status, r.Body)
				}
			}
			login := func(from string) {
				t.Helper()
				req, _ := http.NewRequest("POST", w.Server.URL+"/oauth2/token", strings.NewReader(url.Values{"grant_type": {"password"},
					"username": {"nurse-user"}, "password": {apptest.Password}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("X-Forwarded-For", from)
				resp, err := http.DefaultClient.Do(req)
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("login: %v %v", resp, err)
				}
				resp.Body.Close()
			}
			// apptest.Start logged the nurse in from 127.0.0.1, her first
			// address (learnt silently); this one is new, then known.
			login("198.51.100.7")
			login("198.51.100.7")
			runner := w.App.NewAlertRunner(rules)
			step := func() int {
				t.Helper()
				total := 0
				for {
					n, raised, err := runner.Step(context.Background())
					if err != nil {
						t.Fatal(err)
					}
					total += raised
					if n == 0 {
						return total
					}
				}
			}
			if n := step(); n != 3 {
				t.Errorf("%d alerts, want 3: %v", n, alertsOf(t, w))
			}
			want := []string{"flagged-patient user/" + nurse + ",Patient/vip", "same-family user/" + nurse + ",Patient/cousin", "new-address user/" + nurse}
			if got := alertsOf(t, w); !slices.Equal(got, want) {
				t.Errorf("alerts = %q, want %q", got, want)
			}
			// Again within the hour, and after a restart of the runner:
			// no repeat; a login from elsewhere is new.
			w.Do(t, "GET", "/fhir/Patient/vip", N, nil)
			runner = w.App.NewAlertRunner(rules)
			w.Do(t, "GET", "/fhir/Patient/vip", N, nil)
			login("203.0.113.9")
			if n := step(); n != 1 {
				t.Errorf("%d alerts after the restart, want only the new address: %v", n, alertsOf(t, w))
			}
			if got := alertsOf(t, w); len(got) != 4 || got[3] != "new-address user/"+nurse {
				t.Errorf("alerts = %q", got)
			}
			if n := step(); n != 0 {
				t.Errorf("a caught-up runner raised %d alerts", n)
			}
		})
	}
}

// TestLoadAlertRules: the shipped defaults, a file, and a bad file.
func TestLoadAlertRules(t *testing.T) {
	cfg := config.Default()
	c, err := app.LoadAlertRules(cfg)
	if err != nil || len(c.Rules) != 9 {
		t.Fatalf("defaults: %v %v", c, err)
	}
	cfg.Ledger.AlertRules = t.TempDir() + "/missing.json"
	if _, err := app.LoadAlertRules(cfg); err == nil || !strings.Contains(err.Error(), "WARD_ALERT_RULES") {
		t.Errorf("missing file: %v", err)
	}
}

// TestServeLedgerWorkers: what `ward serve` starts (StartLedgerWorkers)
// raises the default rules' alerts in the background and streams the
// ledger, alerts included, to a real rsyslogd; Close stops both.
func TestServeLedgerWorkers(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	rs := startRsyslog(t, false)
	cfg := w.Config
	cfg.Ledger.AlertInterval = 50 * time.Millisecond
	cfg.Ledger.SIEMInterval = 50 * time.Millisecond
	cfg.Ledger.SyslogAddr = rs.Addr
	if err := w.App.StartLedgerWorkers(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	id := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","meta":{"security":[{"code":"EMP"}]}}`)
	if r := w.Do(t, "GET", "/fhir/Patient/"+id, w.Tokens[authz.RoleAdmin], nil); r.Status != 200 {
		t.Fatal(r.Status)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		lines, _ := rs.Lines()
		found := false
		for _, l := range lines {
			if strings.Contains(l, `|ward|alert|`) && strings.Contains(l, `detail="flagged-patient"`) {
				found = true
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no flagged-patient alert reached rsyslog; alerts in the ledger: %v", alertsOf(t, w))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
