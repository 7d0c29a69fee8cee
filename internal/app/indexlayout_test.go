package app_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/store"
)

// TestEnsureIndexLayout: a resource indexed before the search_prefix
// layout (simulated by a resource with no index rows, as after migration
// 00045) is found by name once the serving node has rebuilt the index,
// and the rebuild runs once.
func TestEnsureIndexLayout(t *testing.T) {
	for _, backend := range apptest.Backends {
		t.Run(string(backend), func(t *testing.T) {
			w := apptest.Start(t, backend)
			ctx := context.Background()
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			id := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"Layoutfamily","given":["Uplift"]}]}`)
			unindex := func() {
				t.Helper()
				u := &store.Unit{Reindex: []store.Reindex{{Tenant: w.Config.Tenant, Type: "Patient", ID: id, Index: &store.Index{}}}}
				if err := w.App.Store.Commit(ctx, u); err != nil {
					t.Fatal(err)
				}
			}
			found := func() int {
				t.Helper()
				r := w.Do(t, "GET", "/fhir/Patient?family=Layoutf", w.Tokens[authz.RoleAdmin], nil)
				if r.Status != 200 {
					t.Fatalf("search: %d %s", r.Status, r.Body)
				}
				return int(r.JSON(t)["total"].(float64))
			}
			unindex()
			if n := found(); n != 0 {
				t.Fatalf("a resource without index rows is found (%d): the test shows nothing", n)
			}
			if err := w.App.EnsureIndexLayout(ctx, log); err != nil {
				t.Fatal(err)
			}
			if n := found(); n != 1 {
				t.Fatalf("after the startup rebuild, %d found, want 1", n)
			}
			if v, _, err := w.App.Store.Cursor(ctx, app.IndexLayoutCursor); err != nil || v < 2 {
				t.Fatalf("layout mark %d, %v", v, err)
			}
			// Marked: a second start does not rebuild again.
			unindex()
			if err := w.App.EnsureIndexLayout(ctx, log); err != nil {
				t.Fatal(err)
			}
			if n := found(); n != 0 {
				t.Fatalf("a second start rebuilt the index again (%d found)", n)
			}
		})
	}
}
