package app_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/keys/pkcs11/pkcs11test"
	"github.com/wardhealth/ward/internal/keys/transittest"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/store"
)

const kekPatient = `{"resourceType":"Patient","name":[{"family":"Kekfamily","given":["Wrapped"]}],"birthDate":"1961-02-03"}`

// kekProviders configure Ward for each KEK home outside Ward.
func kekProviders(t *testing.T) map[string]func(*config.Config) {
	return map[string]func(*config.Config){
		"pkcs11": func() func(*config.Config) {
			return func(c *config.Config) {
				p := pkcs11test.Config(t)
				c.KEK.Provider, c.KEK.PKCS11Module, c.KEK.PKCS11Token, c.KEK.PKCS11PIN, c.KEK.PKCS11KeyLabel = "pkcs11", p.Module, p.TokenLabel, p.Pin, p.KeyLabel
			}
		}(),
		"transit": func(c *config.Config) {
			srv := transittest.Start()
			t.Cleanup(srv.Close)
			c.KEK.Provider, c.KEK.TransitAddr, c.KEK.TransitToken = "transit", srv.URL, srv.Token
		},
	}
}

// TestServerRoundTripWithExternalKEK: create, read, restart, read, with
// the KEK in a PKCS#11 token (SoftHSM) and in a transit engine; the
// wrapped keys name the external KEK version, never the file's.
func TestServerRoundTripWithExternalKEK(t *testing.T) {
	for name, mutate := range kekProviders(t) {
		t.Run(name, func(t *testing.T) {
			var cfg config.Config
			w := apptest.Start(t, apptest.SQLite, mutate, func(c *config.Config) { cfg = *c })
			id := w.Create(t, authz.RoleAdmin, kekPatient)
			token := w.Tokens[authz.RoleAdmin]
			if r := w.Do(t, "GET", "/fhir/Patient/"+id, token, nil); r.Status != 200 || !strings.Contains(string(r.Body), "Kekfamily") {
				t.Fatalf("read: %d %s", r.Status, r.Body)
			}
			ks, err := w.App.Store.Keys(context.Background(), keys.DataKeyPurpose)
			if err != nil || len(ks) == 0 {
				t.Fatalf("keys: %v", err)
			}
			for _, k := range ks {
				if !strings.HasPrefix(k.KEK, name+":") {
					t.Fatalf("key %s wrapped by %q", k.ID, k.KEK)
				}
			}
			// Restart: the first process is gone, a new one unwraps the
			// keys through the same KEK and serves the same record.
			w.Server.Close()
			w.App.Close()
			a2 := restartApp(t, cfg)
			srv := httptest.NewServer(a2.Handler)
			defer srv.Close()
			w.Server, w.URL = srv, srv.URL+"/fhir"
			if r := w.Do(t, "GET", "/fhir/Patient/"+id, token, nil); r.Status != 200 || !strings.Contains(string(r.Body), "Kekfamily") {
				t.Fatalf("read after restart: %d %s", r.Status, r.Body)
			}
		})
	}
}

func restartApp(t *testing.T, cfg config.Config) *app.App {
	t.Helper()
	a, err := app.Open(context.Background(), cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)), io.Discard)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	a.StartWorkers()
	t.Cleanup(func() { a.Close() })
	return a
}

// TestExternalKEKFailsClosed: Ward does not start without its KEK (the
// transit server down, a wrong PIN); a running node whose transit server
// stops keeps serving for WARD_KEK_CACHE_TTL, then answers 503 and
// discloses nothing, and serves again when the server is back.
func TestExternalKEKFailsClosed(t *testing.T) {
	srv := transittest.Start()
	defer srv.Close()
	kek := func(c *config.Config) {
		c.KEK.Provider, c.KEK.TransitAddr, c.KEK.TransitToken = "transit", srv.URL, srv.Token
		c.KEK.CacheTTL, c.KEK.ProbeInterval = 2*time.Second, 100*time.Millisecond
	}
	w := apptest.Start(t, apptest.SQLite, kek)
	id := w.Create(t, authz.RoleAdmin, kekPatient)
	token := w.Tokens[authz.RoleAdmin]
	srv.Stop()
	stopped := time.Now()
	if r := w.Do(t, "GET", "/fhir/Patient/"+id, token, nil); r.Status != 200 {
		t.Fatalf("read within the cache lifetime: %d %s", r.Status, r.Body)
	}
	var r *apptest.Response
	for time.Since(stopped) < 10*time.Second {
		if r = w.Do(t, "GET", "/fhir/Patient/"+id, token, nil); r.Status != 200 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r.Status != 503 || strings.Contains(string(r.Body), "Kekfamily") || time.Since(stopped) < 1500*time.Millisecond {
		t.Fatalf("after %s without the KEK: %d %s", time.Since(stopped), r.Status, r.Body)
	}
	if c := w.Do(t, "POST", "/fhir/Patient", token, []byte(kekPatient)); c.Status != 503 {
		t.Fatalf("create without the KEK: %d %s", c.Status, c.Body)
	}
	// A node cannot start meanwhile.
	if _, err := app.Open(context.Background(), w.Config, slog.New(slog.NewJSONHandler(io.Discard, nil)), io.Discard); !errors.Is(err, keys.ErrKEKUnavailable) {
		t.Fatalf("start with the transit server down: %v", err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r = w.Do(t, "GET", "/fhir/Patient/"+id, token, nil); r.Status != 200 && time.Now().Before(deadline); r = w.Do(t, "GET", "/fhir/Patient/"+id, token, nil) {
		time.Sleep(50 * time.Millisecond)
	}
	if r.Status != 200 {
		t.Fatalf("after the KEK came back: %d %s", r.Status, r.Body)
	}
	// A wrong PIN: no start.
	cfg := w.Config
	p := pkcs11test.Config(t)
	cfg.DataDir = t.TempDir()
	cfg.KEK.Provider, cfg.KEK.PKCS11Module, cfg.KEK.PKCS11Token, cfg.KEK.PKCS11PIN = "pkcs11", p.Module, p.TokenLabel, "wrong-pin"
	if _, err := app.Open(context.Background(), cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)), io.Discard); !errors.Is(err, keys.ErrKEKUnavailable) {
		t.Fatalf("start with a wrong PIN: %v", err)
	}
}

// TestRotateKEKOnline: rotate-kek while the server creates and reads
// fails no request; afterwards every key is under the new version, the
// old one is retired in the engine, and a restarted node serves every
// record. The same with a key file moved to a new file.
func TestRotateKEKOnline(t *testing.T) {
	srv := transittest.Start()
	defer srv.Close()
	keyFile := filepath.Join(t.TempDir(), "old.key")
	if _, err := seal.GenerateKEKFile(keyFile); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		mutate func(*config.Config)
		opts   app.RotateKEKOptions
		after  func(*config.Config)
	}{
		"transit": {mutate: func(c *config.Config) {
			c.KEK.Provider, c.KEK.TransitAddr, c.KEK.TransitToken = "transit", srv.URL, srv.Token
		}, opts: app.RotateKEKOptions{Retire: true, Batch: 1}},
		// A key file: the node is restarted on the new file with the old
		// one as a previous file, then rotate-kek moves the keys while it
		// serves, and a last restart drops the old file.
		"file": {mutate: func(c *config.Config) { c.KeyFile = keyFile },
			opts:  app.RotateKEKOptions{Batch: 1},
			after: func(c *config.Config) { c.KEK.PreviousFiles = nil }},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var cfg config.Config
			w := apptest.Start(t, apptest.SQLite, tc.mutate, func(c *config.Config) { cfg = *c })
			token := w.Tokens[authz.RoleAdmin]
			var ids []string
			for range 3 {
				ids = append(ids, w.Create(t, authz.RoleAdmin, kekPatient))
			}
			if name == "file" {
				newFile := filepath.Join(t.TempDir(), "new.key")
				if _, err := seal.GenerateKEKFile(newFile); err != nil {
					t.Fatal(err)
				}
				cfg.KeyFile, cfg.KEK.PreviousFiles = newFile, []string{keyFile}
				restartOn(t, w, cfg)
			}
			// Load while rotating: every request must succeed.
			stop := make(chan struct{})
			failures := make(chan string, 100)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if r := w.Do(t, "GET", "/fhir/Patient/"+ids[i%len(ids)], token, nil); r.Status != 200 {
						failures <- fmt.Sprintf("read %d", r.Status)
					}
					// A new Patient makes a new patient key, wrapped under
					// the node's current KEK: the new transit version, or
					// the new key file the node was restarted on.
					if r := w.Do(t, "POST", "/fhir/Patient", token, []byte(kekPatient)); r.Status != 201 {
						failures <- fmt.Sprintf("create %d", r.Status)
					}
				}
			}()
			time.Sleep(100 * time.Millisecond)
			rep, err := app.RotateKEK(context.Background(), cfg, tc.opts)
			close(stop)
			<-done
			close(failures)
			for f := range failures {
				t.Errorf("failed during rotation: %s", f)
			}
			if err != nil || rep.Rewrapped == 0 {
				t.Fatalf("rotate: %+v %v", rep, err)
			}
			if name == "transit" && (!rep.Retired || srv.LatestVersion("ward") != 2) {
				t.Fatalf("retired %v, transit key at version %d", rep.Retired, srv.LatestVersion("ward"))
			}
			ks, _ := w.App.Store.Keys(context.Background(), keys.DataKeyPurpose)
			for _, k := range ks {
				if k.KEK != rep.To {
					t.Fatalf("key %s under %q after rotation to %q", k.ID, k.KEK, rep.To)
				}
			}
			w.Server.Close()
			w.App.Close()
			if tc.after != nil {
				tc.after(&cfg)
			}
			a2 := restartApp(t, cfg)
			s2 := httptest.NewServer(a2.Handler)
			defer s2.Close()
			w.Server, w.URL = s2, s2.URL+"/fhir"
			for _, id := range ids {
				if r := w.Do(t, "GET", "/fhir/Patient/"+id, token, nil); r.Status != 200 {
					t.Fatalf("read after rotation and restart: %d %s", r.Status, r.Body)
				}
			}
			// The shred list's key lives outside the database; the
			// rotation moved it too, so an erasure still gets its entry
			// once the old version is gone (503 otherwise).
			reason := []byte(`{"resourceType":"Parameters","parameter":[{"name":"reason","valueString":"request"}]}`)
			if r := w.Do(t, "POST", "/fhir/Patient/"+ids[0]+"/$erase", w.Tokens[authz.RolePrivacyOfficer], reason); r.Status != 200 {
				t.Fatalf("erase after the rotation: %d %s", r.Status, r.Body)
			}
		})
	}
}

// restartOn stops w's node and starts one on cfg in its place.
func restartOn(t *testing.T, w *apptest.Ward, cfg config.Config) {
	t.Helper()
	w.Server.Close()
	w.App.Close()
	a := restartApp(t, cfg)
	srv := httptest.NewServer(a.Handler)
	t.Cleanup(srv.Close)
	w.App, w.Server, w.URL, w.Config = a, srv, srv.URL+"/fhir", cfg
}

// TestKeyFileRestartOnNewFile: a node restarted on a new key file, with
// the old one in WARD_KEK_PREVIOUS_FILES, reads the records whose keys
// are still wrapped under the old file and wraps new keys under the new
// one; rotate-kek then moves the rest without --new-key-file, after which
// a node on the new file alone reads everything. Without the previous
// file the restarted node could not open the old keys.
func TestKeyFileRestartOnNewFile(t *testing.T) {
	dir := t.TempDir()
	oldFile, newFile := filepath.Join(dir, "old.key"), filepath.Join(dir, "new.key")
	oldKEK, err := seal.GenerateKEKFile(oldFile)
	if err != nil {
		t.Fatal(err)
	}
	newKEK, err := seal.GenerateKEKFile(newFile)
	if err != nil {
		t.Fatal(err)
	}
	w := apptest.Start(t, apptest.SQLite, func(c *config.Config) { c.KeyFile = oldFile })
	token := w.Tokens[authz.RoleAdmin]
	before := w.Create(t, authz.RoleAdmin, kekPatient)
	cfg := w.Config
	cfg.KeyFile, cfg.KEK.PreviousFiles = newFile, []string{oldFile}
	restartOn(t, w, cfg)
	if r := w.Do(t, "GET", "/fhir/Patient/"+before, token, nil); r.Status != 200 || !strings.Contains(string(r.Body), "Kekfamily") {
		t.Fatalf("read of a patient whose key is under the previous file: %d %s", r.Status, r.Body)
	}
	after := w.Create(t, authz.RoleAdmin, kekPatient)
	k, err := w.App.Store.Key(context.Background(), keys.PatientKeyID(w.Config.Tenant, after))
	if err != nil || k.KEK != newKEK.ID() {
		t.Fatalf("a new patient's key: %+v %v (new file %s)", k, err, newKEK.ID())
	}
	if _, err := app.RotateKEK(context.Background(), cfg, app.RotateKEKOptions{Retire: true}); err == nil {
		t.Fatal("--retire accepted for a key file")
	}
	rep, err := app.RotateKEK(context.Background(), cfg, app.RotateKEKOptions{})
	if err != nil || rep.Rewrapped == 0 || rep.To != newKEK.ID() || len(rep.From) != 1 || rep.From[0] != oldKEK.ID() {
		t.Fatalf("rotate to the current file: %+v %v", rep, err)
	}
	cfg.KEK.PreviousFiles = nil
	restartOn(t, w, cfg)
	for _, id := range []string{before, after} {
		if r := w.Do(t, "GET", "/fhir/Patient/"+id, token, nil); r.Status != 200 || !strings.Contains(string(r.Body), "Kekfamily") {
			t.Fatalf("read on the new file alone: %d %s", r.Status, r.Body)
		}
	}
	// A previous file that is the current key is refused at start.
	bad := cfg
	bad.KEK.PreviousFiles = []string{newFile}
	if _, err := app.Open(context.Background(), bad, slog.New(slog.NewJSONHandler(io.Discard, nil)), io.Discard); err == nil {
		t.Fatal("started with the current key as a previous file")
	}
}

// TestRotateDataOnline: rotate-data while the server creates and reads
// fails no request; the server seals new writes under the new version
// once it has learnt it, every stored version is re-sealed, the old key
// is destroyed, and a restarted node serves every record.
func TestRotateDataOnline(t *testing.T) {
	var cfg config.Config
	// Tenant keys only: with per-patient keys, Patients are not under the
	// tenant's key that this test rotates.
	w := apptest.StartWith(t, apptest.SQLite, []app.Option{app.WithTenantKeysOnly()}, func(c *config.Config) { c.KEK.ProbeInterval = 100 * time.Millisecond }, func(c *config.Config) { cfg = *c })
	token := w.Tokens[authz.RoleAdmin]
	var ids []string
	for range 5 {
		ids = append(ids, w.Create(t, authz.RoleAdmin, kekPatient))
	}
	stop, done := make(chan struct{}), make(chan struct{})
	var failures []string
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if r := w.Do(t, "GET", "/fhir/Patient/"+ids[i%len(ids)], token, nil); r.Status != 200 {
				failures = append(failures, fmt.Sprintf("read %d", r.Status))
			}
			if r := w.Do(t, "POST", "/fhir/Patient", token, []byte(kekPatient)); r.Status != 201 {
				failures = append(failures, fmt.Sprintf("create %d", r.Status))
			} else {
				ids = append(ids, r.JSON(t)["id"].(string))
			}
		}
	}()
	rep, err := app.RotateData(context.Background(), cfg, app.RotateDataOptions{Tenant: cfg.Tenant, Batch: 3})
	close(stop)
	<-done
	if err != nil || !rep.Destroyed || rep.Resealed == 0 {
		t.Fatalf("rotate-data: %+v %v", rep, err)
	}
	for _, f := range failures {
		t.Errorf("failed during rotate-data: %s", f)
	}
	ctx := context.Background()
	if kid, _ := w.App.Keys.DataKey(ctx, cfg.Tenant); kid != rep.To {
		t.Fatalf("the server seals new writes under %s, not %s", kid, rep.To)
	}
	// Every stored version of the tenant is under the new version.
	vs, err := w.App.Store.History(ctx, store.HistoryQuery{Tenant: cfg.Tenant, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if kid, _ := seal.EnvelopeKeyID(v.Body); v.Body != nil && kid != rep.To {
			t.Fatalf("%s/%s version %d still under %s", v.Type, v.ID, v.Version, kid)
		}
	}
	w.Server.Close()
	w.App.Close()
	a2 := restartApp(t, cfg)
	s2 := httptest.NewServer(a2.Handler)
	defer s2.Close()
	w.Server, w.URL = s2, s2.URL+"/fhir"
	for _, id := range ids {
		if r := w.Do(t, "GET", "/fhir/Patient/"+id, token, nil); r.Status != 200 {
			t.Fatalf("read after rotate-data and restart: %d %s", r.Status, r.Body)
		}
	}
	// Search by name still finds them: the blind index key survived the
	// destruction of the first data key.
	if r := w.Do(t, "GET", "/fhir/Patient?family=Kekfamily&_total=accurate", token, nil); r.Status != 200 || int(r.JSON(t)["total"].(float64)) != len(ids) {
		t.Fatalf("search after rotate-data: %d %s", r.Status, r.Body)
	}
}

// Binary content is sealed under keys derived from the data key, and
// rotate-data re-seals resource versions only: while a tenant has content,
// the old data key is kept, and the content still opens after a restart.
func TestRotateDataKeepsTheKeysOfContent(t *testing.T) {
	var cfg config.Config
	w := apptest.Start(t, apptest.SQLite, func(c *config.Config) { c.KEK.ProbeInterval = 100 * time.Millisecond }, func(c *config.Config) { cfg = *c })
	token := w.Tokens[authz.RoleAdmin]
	content := bytes.Repeat([]byte("%PDF-1.7 rotate-data content "), 4096)
	req, _ := http.NewRequest("POST", w.URL+"/Binary", bytes.NewReader(content))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/pdf")
	resp, err := w.Server.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	id := (&apptest.Response{Body: b}).JSON(t)["id"].(string)
	rep, err := app.RotateData(context.Background(), cfg, app.RotateDataOptions{Tenant: cfg.Tenant, Batch: 3})
	if err != nil || rep.Destroyed {
		t.Fatalf("rotate-data with content: %+v %v (the old key must be kept)", rep, err)
	}
	w.Server.Close()
	w.App.Close()
	a2 := restartApp(t, cfg)
	s2 := httptest.NewServer(a2.Handler)
	defer s2.Close()
	req, _ = http.NewRequest("GET", s2.URL+"/fhir/Binary/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/pdf")
	resp, err = s2.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || err != nil || !bytes.Equal(got, content) {
		t.Fatalf("content after rotate-data and restart: %d, %d bytes, %v", resp.StatusCode, len(got), err)
	}
}
