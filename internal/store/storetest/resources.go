package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/store"
)

// Conformance cases of resource versions, history, search and reads.

func testCreateReadVersions(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	if err := st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Patient", "p1", 1, "v1")}, Audit: []*audit.Record{rec("a", "create")}}); err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Patient", "p1", 2, "v2")}}); err != nil {
		t.Fatal(err)
	}
	cur, err := st.Current(ctx, "a", "Patient", "p1")
	if err != nil || cur.Version != 2 || string(cur.Body) != "v2" || cur.Deleted || !cur.LastUpdated.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("current = %+v, %v", cur, err)
	}
	v1, err := st.Version(ctx, "a", "Patient", "p1", 1)
	if err != nil || string(v1.Body) != "v1" {
		t.Fatalf("version 1 = %+v, %v", v1, err)
	}
	if _, err := st.Version(ctx, "a", "Patient", "p1", 3); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("version 3: %v, want ErrNotFound", err)
	}
	if _, err := st.Current(ctx, "a", "Patient", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
}

func testTenantsAreIsolated(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Patient", "p1", 1, "secret-a")}}))
	if _, err := st.Current(ctx, "b", "Patient", "p1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("tenant b reads tenant a's resource: %v", err)
	}
	if _, err := st.Version(ctx, "b", "Patient", "p1", 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("tenant b vreads tenant a's resource: %v", err)
	}
	for _, q := range []store.HistoryQuery{{Tenant: "b"}, {Tenant: "b", Type: "Patient"}, {Tenant: "b", Type: "Patient", ID: "p1"}} {
		vs, err := st.History(ctx, q)
		if err != nil || len(vs) != 0 {
			t.Fatalf("history %+v: %d versions, %v", q, len(vs), err)
		}
	}
	vs, err := st.List(ctx, store.ListQuery{Tenant: "b", Type: "Patient"})
	if err != nil || len(vs) != 0 {
		t.Fatalf("list: %d, %v", len(vs), err)
	}
	// The same id in another tenant is another resource.
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("b", "Patient", "p1", 1, "secret-b")}}))
	cur, err := st.Current(ctx, "b", "Patient", "p1")
	if err != nil || string(cur.Body) != "secret-b" {
		t.Fatalf("%+v %v", cur, err)
	}
}

func testVersionConflictIsAuditedAndWritesNothing(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Patient", "p1", 1, "v1")}}))
	r := rec("a", "update")
	// Two writes in one unit; the second's precondition fails, so the
	// first must not land either.
	err := st.Commit(ctx, &store.Unit{
		Writes: []store.Write{write("a", "Patient", "p2", 1, "x"), write("a", "Patient", "p1", 3, "bad")},
		Audit:  []*audit.Record{r},
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("err = %v, want ErrConflict", err)
	}
	if _, err := st.Current(ctx, "a", "Patient", "p2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("first write of a failed unit landed: %v", err)
	}
	cur, _ := st.Current(ctx, "a", "Patient", "p1")
	if cur.Version != 1 {
		t.Fatalf("p1 at version %d", cur.Version)
	}
	var got []*audit.Record
	got = Records(t, st)
	if len(got) != 1 || got[0].Outcome != audit.OutcomeMinor || got[0].Detail != "conflict" {
		t.Fatalf("conflict not audited as a failure: %+v", got)
	}
	// Create of an existing resource conflicts too.
	if err := st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Patient", "p1", 1, "again")}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("re-create: %v", err)
	}
	VerifyLedger(t, st)
}

func testConcurrentCommitsFormOneChain(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	const n = 300
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("p%d", i)
			errs <- st.Commit(ctx, &store.Unit{
				Writes: []store.Write{write("a", "Patient", id, 1, "body")},
				Audit:  []*audit.Record{rec("a", "create", "Patient/"+id+"/_history/1"), rec("a", "read")},
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := VerifyLedger(t, st); got != 2*n {
		t.Fatalf("%d audit records, want %d", got, 2*n)
	}
	head, _ := st.AuditHead(ctx)
	if head.Seq != 2*n {
		t.Fatalf("head seq %d", head.Seq)
	}
}

func testConcurrentUpdatesOneWinnerPerVersion(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Patient", "p", 1, "v1")}}))
	const n = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Patient", "p", 2, "v2")}})
			if err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			} else if !errors.Is(err, store.ErrConflict) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d writers created version 2, want exactly 1", wins)
	}
}

func testSameResourceTwiceInOneBatch(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Patient", "p", 1, "v1"), write("a", "Patient", "p", 2, "v2"), write("a", "Patient", "p", 3, "v3")}}))
	cur, err := st.Current(ctx, "a", "Patient", "p")
	if err != nil || cur.Version != 3 || string(cur.Body) != "v3" {
		t.Fatalf("%+v %v", cur, err)
	}
}

func testDeleteKeepsHistory(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Patient", "p", 1, "v1")}}))
	del := write("a", "Patient", "p", 2, "")
	del.Deleted, del.Body = true, nil
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{del}}))
	cur, err := st.Current(ctx, "a", "Patient", "p")
	if err != nil || !cur.Deleted || cur.Version != 2 || cur.Body != nil {
		t.Fatalf("%+v %v", cur, err)
	}
	vs, err := st.List(ctx, store.ListQuery{Tenant: "a", Type: "Patient"})
	if err != nil || len(vs) != 0 {
		t.Fatalf("deleted resource listed: %d %v", len(vs), err)
	}
	hs, err := st.History(ctx, store.HistoryQuery{Tenant: "a", Type: "Patient", ID: "p"})
	if err != nil || len(hs) != 2 || !hs[0].Deleted || hs[1].Version != 1 || string(hs[1].Body) != "v1" {
		t.Fatalf("history %+v %v", hs, err)
	}
}

func testHistoryPagingAndSince(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	for i := range 5 {
		must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Observation", fmt.Sprintf("o%d", i), 1, "x")}}))
	}
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Patient", "p", 1, "x")}}))
	page1, err := st.History(ctx, store.HistoryQuery{Tenant: "a", Type: "Observation", Limit: 3})
	if err != nil || len(page1) != 3 || page1[0].ID != "o4" || page1[2].ID != "o2" {
		t.Fatalf("page 1: %v %v", ids(page1), err)
	}
	page2, err := st.History(ctx, store.HistoryQuery{Tenant: "a", Type: "Observation", Limit: 3, Before: page1[2].Seq})
	if err != nil || len(page2) != 2 || page2[0].ID != "o1" || page2[1].ID != "o0" {
		t.Fatalf("page 2: %v %v", ids(page2), err)
	}
	all, _ := st.History(ctx, store.HistoryQuery{Tenant: "a"})
	if len(all) != 6 || all[0].Type != "Patient" {
		t.Fatalf("system history: %v", ids(all))
	}
	since, _ := st.History(ctx, store.HistoryQuery{Tenant: "a", Since: t0.Add(2 * time.Second)})
	if len(since) != 0 {
		t.Fatalf("_since after every write: %v", ids(since))
	}
}

func testHistoryWhereOnCurrentRow(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Observation", "o1", 1, "x"), write("a", "Observation", "o2", 1, "x"), write("b", "Observation", "o1", 1, "x")}}))
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Observation", "o1", 2, "x")}}))
	// Every version of the resources whose current row satisfies the
	// conditions, newest first, in the tenant only; paging still works.
	q := store.HistoryQuery{Tenant: "a", Where: []string{"r.id = ?", "r.version >= ?"}, Args: []any{"o1", 1}}
	vs, err := st.History(ctx, q)
	if err != nil || len(vs) != 2 || vs[0].ID != "o1" || vs[0].Version != 2 || vs[1].Version != 1 {
		t.Fatalf("where: %v %v", ids(vs), err)
	}
	q.Type, q.Before, q.Limit = "Observation", vs[0].Seq, 5
	if vs, err := st.History(ctx, q); err != nil || len(vs) != 1 || vs[0].Version != 1 {
		t.Fatalf("where with type and cursor: %v %v", ids(vs), err)
	}
	// The condition is on the current row: o1's version 1 is listed by
	// its current version 2.
	q = store.HistoryQuery{Tenant: "a", Type: "Observation", Where: []string{"r.version = ?"}, Args: []any{2}}
	if vs, err := st.History(ctx, q); err != nil || len(vs) != 2 || vs[0].ID != "o1" || vs[1].ID != "o1" {
		t.Fatalf("current row: %v %v", ids(vs), err)
	}
}

func testExistsAnswersAlternativesInOneCall(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	tok := func(tenant, typ, id string, p int32, h int64) store.Write {
		w := write(tenant, typ, id, 1, "x")
		w.Index = &store.Index{Tokens: []store.TokenRow{{P: p, H: h}}}
		return w
	}
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{
		tok("a", "CareTeam", "ct", 7, 70), tok("b", "Encounter", "e", 9, 90),
	}}))
	has := func(tenant, typ string, p int32, h int64) store.SearchQuery {
		return store.SearchQuery{Tenant: tenant, Types: []string{typ},
			Where: []string{"EXISTS (SELECT 1 FROM search_token t WHERE t.rid = r.rid AND t.p = ? AND t.h = ?)"}, Args: []any{p, h}}
	}
	for _, c := range []struct {
		name string
		qs   []store.SearchQuery
		want bool
	}{
		{"none asked", nil, false},
		{"one that matches", []store.SearchQuery{has("a", "CareTeam", 7, 70)}, true},
		{"matches after misses", []store.SearchQuery{has("a", "Patient", 7, 70), has("a", "CareTeam", 7, 71), has("a", "CareTeam", 7, 70)}, true},
		{"all miss", []store.SearchQuery{has("a", "Patient", 7, 70), has("a", "CareTeam", 7, 71)}, false},
		// Another tenant's row never answers, nor does another type.
		{"other tenant", []store.SearchQuery{has("a", "Encounter", 9, 90)}, false},
		{"other type", []store.SearchQuery{has("b", "CareTeam", 9, 90)}, false},
	} {
		got, err := st.Exists(ctx, c.qs)
		if err != nil || len(got) != 1 || got[0] != c.want {
			t.Errorf("%s: %v %v, want %v", c.name, got, err, c.want)
		}
	}
	// Several groups in one call, each answered on its own.
	got, err := st.Exists(ctx, []store.SearchQuery{has("a", "CareTeam", 7, 71)}, nil,
		[]store.SearchQuery{has("a", "Patient", 7, 70), has("a", "CareTeam", 7, 70)}, []store.SearchQuery{has("b", "Encounter", 9, 90)})
	if err != nil || fmt.Sprint(got) != "[false false true true]" {
		t.Errorf("groups: %v %v", got, err)
	}
	if got, err := st.Exists(ctx); err != nil || len(got) != 0 {
		t.Errorf("no groups: %v %v", got, err)
	}
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{{Tenant: "a", Type: "CareTeam", ID: "ct", Version: 2, LastUpdated: t0.Add(time.Hour), Deleted: true}}}))
	if got, err := st.Exists(ctx, []store.SearchQuery{has("a", "CareTeam", 7, 70)}); err != nil || got[0] {
		t.Errorf("deleted resource: %v %v", got, err)
	}
}

func testListByIDAndCursor(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	for _, id := range []string{"c", "a", "e", "b", "d"} {
		must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Patient", id, 1, "x")}}))
	}
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Observation", "a", 1, "x")}}))
	vs, _ := st.List(ctx, store.ListQuery{Tenant: "a", Type: "Patient", Limit: 2})
	if fmt.Sprint(ids(vs)) != "[a b]" {
		t.Fatalf("%v", ids(vs))
	}
	vs, _ = st.List(ctx, store.ListQuery{Tenant: "a", Type: "Patient", After: "b", Limit: 10})
	if fmt.Sprint(ids(vs)) != "[c d e]" {
		t.Fatalf("%v", ids(vs))
	}
	vs, _ = st.List(ctx, store.ListQuery{Tenant: "a", Type: "Patient", IDs: []string{"e", "a", "zz"}})
	if fmt.Sprint(ids(vs)) != "[a e]" {
		t.Fatalf("%v", ids(vs))
	}
}

func testBodiesOfOneReadAreIndependent(t *testing.T, open Opener) {
	ctx := context.Background()
	// The bodies a read returns may share memory (sqlstore copies a
	// page's into one arena); each must still be its own value, also
	// past a chunk's end (the 100 KB body).
	st := open(t)
	want := map[string]string{}
	for i, id := range []string{"a", "b", "c", "d", "e"} {
		body := strings.Repeat(string(rune('p'+i)), 1+i*700)
		if id == "c" {
			body = strings.Repeat("c", 100<<10)
		}
		want[id] = body
		must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Patient", id, 1, body)}}))
	}
	check := func(what string, vs []store.Version) {
		t.Helper()
		if len(vs) != len(want) {
			t.Fatalf("%s: %d versions, want %d", what, len(vs), len(want))
		}
		for i := range vs {
			_ = append(vs[i].Body, "overwritten"...)
		}
		for _, v := range vs {
			if string(v.Body) != want[v.ID] {
				t.Fatalf("%s: body of %s changed or wrong (%d bytes, want %d)", what, v.ID, len(v.Body), len(want[v.ID]))
			}
		}
	}
	vs, err := st.List(ctx, store.ListQuery{Tenant: "a", Type: "Patient", Limit: 10})
	must(t, err)
	check("List", vs)
	hits, err := st.Search(ctx, store.SearchQuery{Tenant: "a", Types: []string{"Patient"}, Limit: 10})
	must(t, err)
	vs = vs[:0]
	for _, h := range hits {
		vs = append(vs, h.Version)
	}
	check("Search", vs)
}

func testReadsReturnTheCurrentBody(t *testing.T, open Opener) {
	ctx := context.Background()
	// Reads, search pages, lists, references and the export take their
	// bodies from a copy kept with the current row: every write must
	// replace it, also the last of several versions of one batch, and
	// a delete must take the resource out of them.
	st := open(t)
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Patient", "p", 1, "p1"), write("a", "Patient", "gone", 1, "g1")}}))
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Patient", "p", 2, "p2")}}))
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Patient", "q", 1, "q1"), write("a", "Patient", "q", 2, "q2"), write("a", "Patient", "q", 3, "q3")}}))
	del := write("a", "Patient", "gone", 2, "")
	del.Deleted, del.Body = true, nil
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{del}}))
	// A write after a delete brings the resource back with its body.
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Patient", "back", 1, "b1")}}))
	del = write("a", "Patient", "back", 2, "")
	del.Deleted, del.Body = true, nil
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{del}}))
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Patient", "back", 3, "b3")}}))
	want := map[string]string{"p": "p2", "q": "q3", "back": "b3"}
	for _, order := range [][]store.Order{nil, {{Expr: "r.last_updated", Desc: true}}} {
		hits, err := st.Search(ctx, store.SearchQuery{Tenant: "a", Types: []string{"Patient"}, Order: order, Limit: 10})
		must(t, err)
		got := map[string]string{}
		for _, h := range hits {
			if h.Tenant != "a" || h.Type != "Patient" || h.Deleted {
				t.Fatalf("sorted %v: hit %+v", order != nil, h.Version)
			}
			cur, err := st.Current(ctx, "a", "Patient", h.ID)
			must(t, err)
			if h.Version.Version != cur.Version || h.Seq != cur.Seq || !h.LastUpdated.Equal(cur.LastUpdated) {
				t.Fatalf("sorted %v: %s is version %d (seq %d), current is %d (seq %d)", order != nil, h.ID, h.Version.Version, h.Seq, cur.Version, cur.Seq)
			}
			got[h.ID] = string(h.Body)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("sorted %v: page bodies %v, want %v", order != nil, got, want)
		}
	}
	bodies := func(what string, vs []store.Version) {
		t.Helper()
		got := map[string]string{}
		for _, v := range vs {
			if v.Deleted {
				t.Fatalf("%s: deleted %s", what, v.ID)
			}
			got[v.ID] = string(v.Body)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: bodies %v, want %v", what, got, want)
		}
	}
	var cur []store.Version
	for id := range want {
		v, err := st.Current(ctx, "a", "Patient", id)
		must(t, err)
		cur = append(cur, *v)
	}
	bodies("Current", cur)
	if v, err := st.Current(ctx, "a", "Patient", "gone"); err != nil || !v.Deleted || v.Body != nil || v.Version != 2 {
		t.Fatalf("Current of a deleted resource: %+v, %v", v, err)
	}
	vs, err := st.List(ctx, store.ListQuery{Tenant: "a", Type: "Patient", Limit: 10})
	must(t, err)
	bodies("List", vs)
	vs, err = st.Refs(ctx, "a", []store.Ref{{Type: "Patient", ID: "p"}, {Type: "Patient", ID: "q"}, {Type: "Patient", ID: "back"}, {Type: "Patient", ID: "gone"}})
	must(t, err)
	bodies("Refs", vs)
	hits, err := st.Resources(ctx, 0, 100)
	must(t, err)
	vs = vs[:0]
	for _, h := range hits {
		vs = append(vs, h.Version)
	}
	bodies("Resources", vs)
}
