package app_test

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/store"
)

// TestPatientKeys: every version of a resource in one patient's
// compartment (the Patient, an Observation about them, a Binary whose
// securityContext is them, and its content) is sealed under that
// patient's own data key, stored wrapped with the first write; a
// resource of no patient stays under the tenant's key; a restarted node
// (which holds no patient key in memory) reads everything.
func TestPatientKeys(t *testing.T) {
	for _, backend := range apptest.Backends {
		t.Run(string(backend), func(t *testing.T) {
			var cfg config.Config
			w := apptest.Start(t, backend, func(c *config.Config) { cfg = *c })
			ctx := context.Background()
			token := w.Tokens[authz.RoleAdmin]
			p1 := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"Keyfamily"}]}`)
			p2 := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"Otherfamily"}]}`)
			obs := w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+p1+`"}}`)
			org := w.Create(t, authz.RoleAdmin, `{"resourceType":"Organization","name":"Clinic"}`)
			// An update keeps the patient's key.
			if r := w.Do(t, "PUT", "/fhir/Patient/"+p1, token, []byte(`{"resourceType":"Patient","id":"`+p1+`","name":[{"family":"Keyfamily","given":["Two"]}]}`)); r.Status != 200 {
				t.Fatalf("update: %d %s", r.Status, r.Body)
			}
			bin := uploadFor(t, w, p1, bytes.Repeat([]byte("patient content "), 1000))

			k1, k2 := keys.PatientKeyID(cfg.Tenant, p1), keys.PatientKeyID(cfg.Tenant, p2)
			want := map[string]string{"Patient/" + p1: k1, "Observation/" + obs: k1, "Binary/" + bin: k1, "Patient/" + p2: k2}
			for ref, kid := range want {
				typ, id, _ := strings.Cut(ref, "/")
				vs, err := w.App.Store.History(ctx, store.HistoryQuery{Tenant: cfg.Tenant, Type: typ, ID: id, Limit: 10})
				if err != nil || len(vs) == 0 {
					t.Fatalf("%s: %v", ref, err)
				}
				for _, v := range vs {
					if got, _ := seal.EnvelopeKeyID(v.Body); got != kid {
						t.Fatalf("%s version %d sealed under %s, want %s", ref, v.Version, got, kid)
					}
				}
			}
			if v, _ := w.App.Store.Current(ctx, cfg.Tenant, "Organization", org); v == nil || strings.HasPrefix(mustKeyID(t, v.Body), "p/") {
				t.Fatal("a resource of no patient was sealed under a patient's key")
			}
			for _, kid := range []string{k1, k2} {
				k, err := w.App.Store.Key(ctx, kid)
				if err != nil || k.State != store.KeyActive || k.Scope != "patient/"+strings.Split(kid, "/")[2] || len(k.Wrapped) == 0 {
					t.Fatalf("stored key %s: %+v %v", kid, k, err)
				}
			}
			// The content's key is the patient's too.
			r := w.Do(t, "GET", "/fhir/Binary/"+bin, token, nil, "Accept: application/fhir+json")
			if r.Status != 200 || !strings.Contains(string(r.Body), k1) {
				t.Fatalf("Binary metadata: %d %s", r.Status, r.Body)
			}

			w.Server.Close()
			w.App.Close()
			a2 := restartApp(t, cfg)
			s2 := httptest.NewServer(a2.Handler)
			defer s2.Close()
			w.Server, w.URL = s2, s2.URL+"/fhir"
			for _, ref := range []string{"Patient/" + p1, "Patient/" + p2, "Observation/" + obs, "Organization/" + org} {
				if r := w.Do(t, "GET", "/fhir/"+ref, token, nil); r.Status != 200 {
					t.Fatalf("read %s after restart: %d %s", ref, r.Status, r.Body)
				}
			}
			if r := w.Do(t, "GET", "/fhir/Binary/"+bin, token, nil, "Accept: application/octet-stream"); r.Status != 200 || !bytes.Equal(r.Body, bytes.Repeat([]byte("patient content "), 1000)) {
				t.Fatalf("content after restart: %d", r.Status)
			}
			if r := w.Do(t, "GET", "/fhir/Patient?family=Keyfamily", token, nil); r.Status != 200 || !strings.Contains(string(r.Body), p1) {
				t.Fatalf("search after restart: %d %s", r.Status, r.Body)
			}
		})
	}
}

func mustKeyID(t *testing.T, body []byte) string {
	t.Helper()
	kid, err := seal.EnvelopeKeyID(body)
	if err != nil {
		t.Fatal(err)
	}
	return kid
}

// TestMigratePatientKeysOnline: records written under the tenant's key
// (a server of before per-patient keys) move to their patients' keys
// with `ward keys migrate` while the server runs; the server still reads
// them, and a resource of no patient stays under the tenant's key.
func TestMigratePatientKeysOnline(t *testing.T) {
	var cfg config.Config
	w := apptest.StartWith(t, apptest.SQLite, []app.Option{app.WithTenantKeysOnly()}, func(c *config.Config) { cfg = *c })
	ctx := context.Background()
	token := w.Tokens[authz.RoleAdmin]
	p := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"Movefamily"}]}`)
	obs := w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+p+`"}}`)
	org := w.Create(t, authz.RoleAdmin, `{"resourceType":"Organization","name":"Clinic"}`)
	for _, ref := range [][2]string{{"Patient", p}, {"Observation", obs}} {
		if v, _ := w.App.Store.Current(ctx, cfg.Tenant, ref[0], ref[1]); keys.IsPatientKey(mustKeyID(t, v.Body)) {
			t.Fatal("tenant keys only, yet a patient key sealed")
		}
	}
	var moved []int64
	rep, err := app.MigratePatientKeys(ctx, cfg, app.MigrateOptions{Tenant: cfg.Tenant, Batch: 1, Progress: func(n int64) { moved = append(moved, n) }})
	if err != nil || rep.Moved != 2 || len(moved) < 2 {
		t.Fatalf("migrate: %+v %v %v", rep, err, moved)
	}
	for _, ref := range [][2]string{{"Patient", p}, {"Observation", obs}} {
		v, _ := w.App.Store.Current(ctx, cfg.Tenant, ref[0], ref[1])
		if kid := mustKeyID(t, v.Body); kid != keys.PatientKeyID(cfg.Tenant, p) {
			t.Fatalf("%s under %s after migrate", ref[0], kid)
		}
		if r := w.Do(t, "GET", "/fhir/"+ref[0]+"/"+ref[1], token, nil); r.Status != 200 {
			t.Fatalf("read %s after migrate: %d", ref[0], r.Status)
		}
	}
	if v, _ := w.App.Store.Current(ctx, cfg.Tenant, "Organization", org); keys.IsPatientKey(mustKeyID(t, v.Body)) {
		t.Fatal("a resource of no patient moved to a patient key")
	}
}
