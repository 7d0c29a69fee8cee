package storetest

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/store"
)

// MigrateDown runs the Down section of one migration file on db.
func MigrateDown(t *testing.T, db *sql.DB, file string) {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	_, down, ok := strings.Cut(string(src), "-- +goose Down")
	if !ok {
		t.Fatalf("%s: no Down section", file)
	}
	if _, err := db.ExecContext(context.Background(), down); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// upgradeBody is the body of a resource version written by
// WriteUpgradeData: large enough (2 KB) that the bytes of a copy show in
// the table's size.
func upgradeBody(id string, v int64) string {
	return strings.Repeat(id+"/"+string(rune('0'+v))+" ", 2048/(len(id)+3))
}

// WriteUpgradeData writes the resources an upgrade test migrates: n
// Patients p0..p(n-1) of one version, p0 updated to a second, p1 deleted.
func WriteUpgradeData(t *testing.T, st store.Store, n int) {
	t.Helper()
	ctx := context.Background()
	var ws []store.Write
	for i := range n {
		id := "p" + strconv.Itoa(i)
		ws = append(ws, write("up", "Patient", id, 1, upgradeBody(id, 1)))
	}
	must(t, st.Commit(ctx, &store.Unit{Writes: ws}))
	del := write("up", "Patient", "p1", 2, "")
	del.Deleted, del.Body = true, nil
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("up", "Patient", "p0", 2, upgradeBody("p0", 2)), del}}))
}

// CheckUpgradeData checks that every read of st returns the bodies that
// WriteUpgradeData wrote: the current version, a past version, history,
// lists, references, the resource scan and a search page.
func CheckUpgradeData(t *testing.T, st store.Store, n int) {
	t.Helper()
	ctx := context.Background()
	want := func(what string, id string, v int64, got []byte) {
		t.Helper()
		if string(got) != upgradeBody(id, v) {
			t.Fatalf("%s of %s: body %.20q..., want version %d's", what, id, got, v)
		}
	}
	cur, err := st.Current(ctx, "up", "Patient", "p0")
	must(t, err)
	want("current", "p0", 2, cur.Body)
	old, err := st.Version(ctx, "up", "Patient", "p0", 1)
	must(t, err)
	want("version 1", "p0", 1, old.Body)
	gone, err := st.Current(ctx, "up", "Patient", "p1")
	must(t, err)
	if !gone.Deleted || gone.Body != nil {
		t.Fatalf("deleted p1: deleted %v, %d bytes of body", gone.Deleted, len(gone.Body))
	}
	if _, err := st.Current(ctx, "up", "Patient", "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing resource: %v", err)
	}
	hist, err := st.History(ctx, store.HistoryQuery{Tenant: "up", Type: "Patient", ID: "p0"})
	must(t, err)
	if len(hist) != 2 {
		t.Fatalf("history of p0: %d versions", len(hist))
	}
	want("history", "p0", 2, hist[0].Body)
	want("history", "p0", 1, hist[1].Body)
	list, err := st.List(ctx, store.ListQuery{Tenant: "up", Type: "Patient"})
	must(t, err)
	if len(list) != n-1 {
		t.Fatalf("list: %d resources, want %d", len(list), n-1)
	}
	for _, v := range list {
		want("list", v.ID, v.Version, v.Body)
	}
	refs, err := st.Refs(ctx, "up", []store.Ref{{Type: "Patient", ID: "p0"}, {Type: "Patient", ID: "p2"}})
	must(t, err)
	if len(refs) != 2 {
		t.Fatalf("refs: %d resources", len(refs))
	}
	for _, v := range refs {
		want("refs", v.ID, v.Version, v.Body)
	}
	scan, err := st.Resources(ctx, 0, 10000)
	must(t, err)
	seen := 0
	for _, h := range scan {
		if h.Tenant == "up" {
			seen++
			want("scan", h.ID, h.Version.Version, h.Body)
		}
	}
	if seen != n-1 {
		t.Fatalf("scan: %d resources, want %d", seen, n-1)
	}
	hits, err := st.Search(ctx, store.SearchQuery{Tenant: "up", Types: []string{"Patient"}, Limit: 3})
	must(t, err)
	if len(hits) != 3 {
		t.Fatalf("search: %d hits", len(hits))
	}
	for _, h := range hits {
		want("search", h.ID, h.Version.Version, h.Body)
	}
}

// UpdateAfterUpgrade writes a new version of p2 to a store holding
// WriteUpgradeData's resources and checks that reads return it.
func UpdateAfterUpgrade(t *testing.T, st store.Store) {
	t.Helper()
	ctx := context.Background()
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("up", "Patient", "p2", 2, upgradeBody("p2", 2))}}))
	cur, err := st.Current(ctx, "up", "Patient", "p2")
	must(t, err)
	if cur.Version != 2 || string(cur.Body) != upgradeBody("p2", 2) {
		t.Fatalf("p2 after an update: version %d, body %.20q...", cur.Version, cur.Body)
	}
	old, err := st.Version(ctx, "up", "Patient", "p2", 1)
	must(t, err)
	if string(old.Body) != upgradeBody("p2", 1) {
		t.Fatalf("p2 version 1 after an update: body %.20q...", old.Body)
	}
}
