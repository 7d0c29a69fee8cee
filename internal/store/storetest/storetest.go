// Package storetest is the conformance suite of the storage contract. Every
// store.Store implementation runs it (SQLite always, PostgreSQL whenever a
// server is reachable and always in CI).
package storetest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/store"
)

// Opener opens a fresh, empty, migrated store for one test.
type Opener func(t *testing.T) store.Store

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)

func write(tenant, typ, id string, v int64, body string) store.Write {
	return store.Write{Tenant: tenant, Type: typ, ID: id, Version: v, LastUpdated: t0.Add(time.Duration(v) * time.Second), Body: []byte(body)}
}

func rec(tenant, action string, entities ...string) *audit.Record {
	return &audit.Record{Time: t0, Tenant: tenant, RequestID: "req", Actor: "u1", Role: "physician", Action: action, Entities: entities}
}

// VerifyLedger walks the whole ledger and checks the chain against the head.
func VerifyLedger(t *testing.T, st store.Store) int {
	t.Helper()
	ctx := context.Background()
	n := 0
	err := st.AuditScan(ctx, 0, func(head audit.Head, recs iter.Seq2[*audit.Record, error]) error {
		counted := func(yield func(*audit.Record, error) bool) {
			for r, err := range recs {
				n++
				if !yield(r, err) {
					return
				}
			}
		}
		return audit.Verify(counted, &head)
	})
	if err != nil {
		t.Fatalf("ledger does not verify: %v", err)
	}
	return n
}

// Run runs the suite.
func Run(t *testing.T, open Opener) {
	ctx := context.Background()
	runGuards(t, open)

	t.Run("CreateReadVersions", func(t *testing.T) {
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
	})

	t.Run("TenantsAreIsolated", func(t *testing.T) {
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
	})

	t.Run("VersionConflictIsAuditedAndWritesNothing", func(t *testing.T) {
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
	})

	t.Run("ConcurrentCommitsFormOneChain", func(t *testing.T) {
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
	})

	t.Run("ConcurrentUpdatesOneWinnerPerVersion", func(t *testing.T) {
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
	})

	t.Run("SameResourceTwiceInOneBatch", func(t *testing.T) {
		st := open(t)
		must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Patient", "p", 1, "v1"), write("a", "Patient", "p", 2, "v2"), write("a", "Patient", "p", 3, "v3")}}))
		cur, err := st.Current(ctx, "a", "Patient", "p")
		if err != nil || cur.Version != 3 || string(cur.Body) != "v3" {
			t.Fatalf("%+v %v", cur, err)
		}
	})

	t.Run("DeleteKeepsHistory", func(t *testing.T) {
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
	})

	t.Run("HistoryPagingAndSince", func(t *testing.T) {
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
	})

	t.Run("HistoryWhereOnCurrentRow", func(t *testing.T) {
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
	})

	t.Run("ExistsAnswersAlternativesInOneCall", func(t *testing.T) {
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
	})

	t.Run("ListByIDAndCursor", func(t *testing.T) {
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
	})

	t.Run("BodiesOfOneReadAreIndependent", func(t *testing.T) {
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
	})

	t.Run("ReadsReturnTheCurrentBody", func(t *testing.T) {
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
	})

	t.Run("UsersAndKeys", func(t *testing.T) {
		st := open(t)
		u := &store.User{ID: "u1", Tenant: "a", Username: "alice", Role: "nurse", PasswordHash: "h", Created: t0}
		must(t, st.Commit(ctx, &store.Unit{NewUser: u, Audit: []*audit.Record{rec("a", "user-add")}}))
		got, err := st.UserByName(ctx, "a", "alice")
		if err != nil || got.ID != "u1" || got.Role != "nurse" || !got.Created.Equal(t0) {
			t.Fatalf("%+v %v", got, err)
		}
		if byID, err := st.UserByID(ctx, "u1"); err != nil || byID.Username != "alice" {
			t.Fatalf("by id: %+v %v", byID, err)
		}
		if _, err := st.UserByID(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		// Links to FHIR resources and clearances round-trip (issue #6).
		linked := []*store.User{
			{ID: "u2", Tenant: "c", Username: "dr", Role: "physician", PasswordHash: "h", Created: t0, Practitioner: "pr-1", Clearances: []string{"R", "HIV"}},
			{ID: "u3", Tenant: "c", Username: "pat", Role: "user", PasswordHash: "h", Created: t0, Patient: "pa-1"},
		}
		for _, lu := range linked {
			must(t, st.Commit(ctx, &store.Unit{NewUser: lu, Audit: []*audit.Record{rec("c", "user-add")}}))
			got, err := st.UserByID(ctx, lu.ID)
			if err != nil || got.Practitioner != lu.Practitioner || got.Patient != lu.Patient || fmt.Sprint(got.Clearances) != fmt.Sprint(lu.Clearances) {
				t.Fatalf("links: %+v %v", got, err)
			}
		}
		if us, err := st.Users(ctx, "c"); err != nil || len(us) != 2 || us[0].Practitioner != "pr-1" || us[1].Patient != "pa-1" {
			t.Fatalf("users list links: %+v %v", us, err)
		}
		if _, err := st.UserByName(ctx, "b", "alice"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("user visible in another tenant: %v", err)
		}
		until := t0.Add(time.Hour)
		must(t, st.Commit(ctx, &store.Unit{Login: &store.LoginState{UserID: "u1", FailedLogins: 6, LockedUntil: until}}))
		got, _ = st.UserByName(ctx, "a", "alice")
		if got.FailedLogins != 6 || !got.LockedUntil.Equal(until) {
			t.Fatalf("login state %+v", got)
		}
		must(t, st.Commit(ctx, &store.Unit{Login: &store.LoginState{UserID: "u1"}}))
		got, _ = st.UserByName(ctx, "a", "alice")
		if got.FailedLogins != 0 || !got.LockedUntil.IsZero() {
			t.Fatalf("login state not reset %+v", got)
		}
		must(t, st.Commit(ctx, &store.Unit{TOTP: &store.TOTPEnrollment{UserID: "u1", Sealed: []byte{9, 9}}}))
		must(t, st.Commit(ctx, &store.Unit{Login: &store.LoginState{UserID: "u1", TOTPLastStep: 1234}}))
		got, _ = st.UserByName(ctx, "a", "alice")
		if string(got.TOTPSecret) != "\x09\x09" || got.TOTPLastStep != 1234 {
			t.Fatalf("TOTP state %+v", got)
		}
		must(t, st.Commit(ctx, &store.Unit{TOTP: &store.TOTPEnrollment{UserID: "u1"}}))
		if got, _ = st.UserByName(ctx, "a", "alice"); got.TOTPSecret != nil || got.TOTPLastStep != 0 {
			t.Fatalf("TOTP not removed %+v", got)
		}
		yes := true
		must(t, st.Commit(ctx, &store.Unit{UpdateUser: &store.UserUpdate{UserID: "u1", Disabled: &yes, PasswordHash: "h2"}}))
		if got, _ = st.UserByName(ctx, "a", "alice"); !got.Disabled || got.PasswordHash != "h2" {
			t.Fatalf("update %+v", got)
		}
		if err := st.Commit(ctx, &store.Unit{UpdateUser: &store.UserUpdate{UserID: "nobody", Disabled: &yes}}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("update of an unknown user: %v", err)
		}
		list, err := st.Users(ctx, "a")
		if err != nil || len(list) != 1 || list[0].Username != "alice" || !list[0].Disabled {
			t.Fatalf("users %+v %v", list, err)
		}
		if other, _ := st.Users(ctx, "b"); len(other) != 0 {
			t.Fatal("users listed across tenants")
		}
		dup := *u
		dup.ID = "u2"
		if err := st.Commit(ctx, &store.Unit{NewUser: &dup}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate username: %v", err)
		}
		k := &store.Key{ID: "k1", Purpose: "dek", Tenant: "a", Wrapped: []byte{1, 2, 3}, Created: t0}
		must(t, st.Commit(ctx, &store.Unit{NewKey: k}))
		if err := st.Commit(ctx, &store.Unit{NewKey: k}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate key: %v", err)
		}
		ks, err := st.Keys(ctx, "dek")
		if err != nil || len(ks) != 1 || string(ks[0].Wrapped) != "\x01\x02\x03" {
			t.Fatalf("%+v %v", ks, err)
		}
		VerifyLedger(t, st)
	})

	t.Run("ClientsAndAssertionReplay", func(t *testing.T) {
		st := open(t)
		c := &store.Client{ID: "backend-1", Tenant: "a", JWKS: `{"keys":[]}`, Scope: "system/Patient.rs", Created: t0}
		must(t, st.Commit(ctx, &store.Unit{NewClient: c}))
		if err := st.Commit(ctx, &store.Unit{NewClient: c}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate client: %v", err)
		}
		got, err := st.ClientByID(ctx, "backend-1")
		if err != nil || got.Scope != c.Scope || got.JWKS != c.JWKS || got.Tenant != "a" {
			t.Fatalf("%+v %v", got, err)
		}
		if _, err := st.ClientByID(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		jti := &store.JTI{ClientID: "backend-1", JTI: "j1", Expires: time.Now().Add(time.Minute)}
		must(t, st.Commit(ctx, &store.Unit{UseJTI: jti, Audit: []*audit.Record{rec("a", "client-token")}}))
		if err := st.Commit(ctx, &store.Unit{UseJTI: jti, Audit: []*audit.Record{rec("a", "client-token")}}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("replayed jti: %v", err)
		}
		// The same jti from another client is not a replay; an expired
		// one is purged and may be used again.
		must(t, st.Commit(ctx, &store.Unit{UseJTI: &store.JTI{ClientID: "other", JTI: "j1", Expires: time.Now().Add(time.Minute)}}))
		must(t, st.Commit(ctx, &store.Unit{UseJTI: &store.JTI{ClientID: "backend-1", JTI: "old", Expires: time.Now().Add(-time.Minute)}}))
		must(t, st.Commit(ctx, &store.Unit{UseJTI: &store.JTI{ClientID: "backend-1", JTI: "j2", Expires: time.Now().Add(time.Minute)}}))
		must(t, st.Commit(ctx, &store.Unit{UseJTI: &store.JTI{ClientID: "backend-1", JTI: "old", Expires: time.Now().Add(time.Minute)}}))
		VerifyLedger(t, st)
	})

	t.Run("TenantsClientsAndCodes", func(t *testing.T) {
		st := open(t)
		ts, err := st.Tenants(ctx)
		if err != nil || len(ts) != 1 || ts[0].ID != "default" {
			t.Fatalf("a new database has tenants %+v (%v), want only default", ts, err)
		}
		must(t, st.Commit(ctx, &store.Unit{IdentityChange: store.IdentityChange{NewTenant: &store.Tenant{ID: "b", Created: t0}}}))
		if err := st.Commit(ctx, &store.Unit{IdentityChange: store.IdentityChange{NewTenant: &store.Tenant{ID: "b", Created: t0}}}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate tenant: %v", err)
		}
		if got, err := st.TenantByID(ctx, "b"); err != nil || got.ID != "b" || !got.Created.Equal(t0) {
			t.Fatalf("tenant b: %+v %v", got, err)
		}
		if _, err := st.TenantByID(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown tenant: %v", err)
		}
		app := &store.Client{ID: "app-1", Tenant: "b", Scope: "launch/patient openid", Created: t0, RedirectURIs: []string{"https://app.example/cb", "http://127.0.0.1:9/cb"}}
		must(t, st.Commit(ctx, &store.Unit{NewClient: app}))
		must(t, st.Commit(ctx, &store.Unit{NewClient: &store.Client{ID: "app-0", Tenant: "b", Scope: "x", Created: t0}}))
		must(t, st.Commit(ctx, &store.Unit{NewClient: &store.Client{ID: "other", Tenant: "default", Scope: "x", Created: t0}}))
		cs, err := st.Clients(ctx, "b")
		if err != nil || len(cs) != 2 || cs[0].ID != "app-0" || cs[1].ID != "app-1" || fmt.Sprint(cs[1].RedirectURIs) != fmt.Sprint(app.RedirectURIs) {
			t.Fatalf("clients of b: %+v %v", cs, err)
		}
		must(t, st.Commit(ctx, &store.Unit{IdentityChange: store.IdentityChange{UpdateClient: &store.ClientUpdate{ClientID: "app-1", Disabled: true}}}))
		if got, _ := st.ClientByID(ctx, "app-1"); !got.Disabled || len(got.RedirectURIs) != 2 {
			t.Fatalf("disabled client: %+v", got)
		}
		if err := st.Commit(ctx, &store.Unit{IdentityChange: store.IdentityChange{UpdateClient: &store.ClientUpdate{ClientID: "nope", Disabled: true}}}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("disable unknown client: %v", err)
		}
		exp := time.Now().Add(time.Minute).UTC().Truncate(time.Microsecond)
		code := &store.Code{ID: "c1", ClientID: "app-1", RedirectURI: "https://app.example/cb", CodeChallenge: "ch", UserID: "u1", Tenant: "b", Scope: "openid", Expires: exp}
		must(t, st.Commit(ctx, &store.Unit{IdentityChange: store.IdentityChange{NewCode: code}}))
		got, err := st.CodeByID(ctx, "c1")
		if err != nil || got.Used || got.CodeChallenge != "ch" || got.RedirectURI != code.RedirectURI || !got.Expires.Equal(exp) {
			t.Fatalf("code: %+v %v", got, err)
		}
		must(t, st.Commit(ctx, &store.Unit{IdentityChange: store.IdentityChange{UseCode: &store.CodeUse{ID: "c1", TokenID: "j1", TokenExpires: exp, Family: "f1"}}, Audit: []*audit.Record{rec("b", "code")}}))
		if err := st.Commit(ctx, &store.Unit{IdentityChange: store.IdentityChange{UseCode: &store.CodeUse{ID: "c1"}}, Audit: []*audit.Record{rec("b", "code")}}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second use of a code: %v", err)
		}
		must(t, st.Commit(ctx, &store.Unit{IdentityChange: store.IdentityChange{NewCode: &store.Code{ID: "old", ClientID: "app-1", Expires: time.Now().Add(-time.Second)}}}))
		if err := st.Commit(ctx, &store.Unit{IdentityChange: store.IdentityChange{UseCode: &store.CodeUse{ID: "old"}}}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("use of an expired code: %v", err)
		}
		if got, _ := st.CodeByID(ctx, "c1"); !got.Used || got.TokenID != "j1" || got.Family != "f1" || !got.TokenExpires.Equal(exp) {
			t.Fatalf("used code: %+v", got)
		}
		// A code and a refresh token carry an EHR launch's context; a
		// launch context is used once, and not when expired; a client
		// keeps its secret's hash.
		must(t, st.Commit(ctx, &store.Unit{IdentityChange: store.IdentityChange{NewCode: &store.Code{ID: "c2", ClientID: "app-1", Tenant: "b", Expires: exp, Patient: "p1", Encounter: "e1"}}}))
		if got, err := st.CodeByID(ctx, "c2"); err != nil || got.Patient != "p1" || got.Encounter != "e1" {
			t.Fatalf("code with a launch context: %+v %v", got, err)
		}
		must(t, st.Commit(ctx, &store.Unit{NewRefresh: &store.Refresh{ID: "r-launch", Family: "f2", UserID: "u1", Tenant: "b", Scope: "launch", Expires: exp, Patient: "p1", Encounter: "e1", ClientID: "app-1"}}))
		if got, err := st.RefreshByID(ctx, "r-launch"); err != nil || got.Patient != "p1" || got.Encounter != "e1" || got.ClientID != "app-1" {
			t.Fatalf("refresh with a launch context: %+v %v", got, err)
		}
		l := &store.Launch{ID: "l1", Tenant: "b", UserID: "u1", ClientID: "app-1", Patient: "p1", Encounter: "e1", Expires: exp}
		must(t, st.Commit(ctx, &store.Unit{IdentityChange: store.IdentityChange{NewLaunch: l}}))
		if got, err := st.LaunchByID(ctx, "l1"); err != nil || got.Used || *got != *l {
			t.Fatalf("launch: %+v %v", got, err)
		}
		if _, err := st.LaunchByID(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown launch: %v", err)
		}
		must(t, st.Commit(ctx, &store.Unit{IdentityChange: store.IdentityChange{UseLaunch: "l1"}}))
		if err := st.Commit(ctx, &store.Unit{IdentityChange: store.IdentityChange{UseLaunch: "l1"}}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second use of a launch: %v", err)
		}
		if got, _ := st.LaunchByID(ctx, "l1"); !got.Used {
			t.Fatalf("used launch: %+v", got)
		}
		must(t, st.Commit(ctx, &store.Unit{IdentityChange: store.IdentityChange{NewLaunch: &store.Launch{ID: "l-old", Tenant: "b", Expires: time.Now().Add(-time.Second)}}}))
		if err := st.Commit(ctx, &store.Unit{IdentityChange: store.IdentityChange{UseLaunch: "l-old"}}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("use of an expired launch: %v", err)
		}
		must(t, st.Commit(ctx, &store.Unit{NewClient: &store.Client{ID: "conf-1", Tenant: "b", Scope: "openid", Created: t0, RedirectURIs: []string{"https://app.example/cb"}, SecretHash: "$argon2id$x"}}))
		if got, err := st.ClientByID(ctx, "conf-1"); err != nil || got.SecretHash != "$argon2id$x" {
			t.Fatalf("confidential client: %+v %v", got, err)
		}
		VerifyLedger(t, st)
	})

	t.Run("RevokedTokens", func(t *testing.T) {
		st := open(t)
		must(t, st.Commit(ctx, &store.Unit{Revoke: &store.JTI{JTI: "t1", Expires: time.Now().Add(time.Hour)}}))
		must(t, st.Commit(ctx, &store.Unit{Revoke: &store.JTI{JTI: "t1", Expires: time.Now().Add(time.Hour)}}))
		must(t, st.Commit(ctx, &store.Unit{Revoke: &store.JTI{JTI: "old", Expires: time.Now().Add(-time.Hour)}}))
		got, err := st.Revoked(ctx)
		if err != nil || fmt.Sprint(got) != "[t1]" {
			t.Fatalf("revoked %v %v", got, err)
		}
	})

	t.Run("DisabledSubjects", func(t *testing.T) {
		st := open(t)
		t0 := time.Now().UTC().Truncate(time.Microsecond)
		for _, id := range []string{"u1", "u2"} {
			must(t, st.Commit(ctx, &store.Unit{NewUser: &store.User{ID: id, Tenant: "a", Username: id, Role: "nurse", PasswordHash: "h", Created: t0}}))
		}
		for _, id := range []string{"c1", "c2"} {
			must(t, st.Commit(ctx, &store.Unit{NewClient: &store.Client{ID: id, Tenant: "a", Scope: "x", Created: t0}}))
		}
		list := func() string {
			got, err := st.DisabledSubjects(ctx)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			return fmt.Sprint(got)
		}
		if got := list(); got != "[]" {
			t.Fatalf("nothing disabled: %s", got)
		}
		yes, no := true, false
		must(t, st.Commit(ctx, &store.Unit{UpdateUser: &store.UserUpdate{UserID: "u2", Disabled: &yes}}))
		must(t, st.Commit(ctx, &store.Unit{IdentityChange: store.IdentityChange{UpdateClient: &store.ClientUpdate{ClientID: "c1", Disabled: true}}}))
		if got := list(); got != "[client/c1 u2]" {
			t.Fatalf("disabled: %s", got)
		}
		must(t, st.Commit(ctx, &store.Unit{UpdateUser: &store.UserUpdate{UserID: "u2", Disabled: &no}}))
		if got := list(); got != "[client/c1]" {
			t.Fatalf("after enabling u2: %s", got)
		}
	})

	t.Run("RefreshTokens", func(t *testing.T) {
		st := open(t)
		exp := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
		must(t, st.Commit(ctx, &store.Unit{NewRefresh: &store.Refresh{ID: "h1", Family: "f", UserID: "u1", Tenant: "a", Scope: "offline_access", Expires: exp}}))
		got, err := st.RefreshByID(ctx, "h1")
		if err != nil || got.Family != "f" || got.Used || !got.Expires.Equal(exp) {
			t.Fatalf("%+v %v", got, err)
		}
		// Use and rotate in one unit; a second use conflicts.
		must(t, st.Commit(ctx, &store.Unit{UseRefresh: "h1", NewRefresh: &store.Refresh{ID: "h2", Family: "f", UserID: "u1", Tenant: "a", Expires: exp}}))
		if err := st.Commit(ctx, &store.Unit{UseRefresh: "h1", NewRefresh: &store.Refresh{ID: "h3", Family: "f", UserID: "u1", Tenant: "a", Expires: exp}}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second use: %v", err)
		}
		if _, err := st.RefreshByID(ctx, "h3"); !errors.Is(err, store.ErrNotFound) {
			t.Fatal("the refused rotation stored its new token")
		}
		must(t, st.Commit(ctx, &store.Unit{RevokeFamily: "f"}))
		if got, _ := st.RefreshByID(ctx, "h2"); !got.Revoked {
			t.Fatal("family not revoked")
		}
		if err := st.Commit(ctx, &store.Unit{UseRefresh: "h2"}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("use of a revoked token: %v", err)
		}
	})

	t.Run("OneBadUnitDoesNotFailTheBatch", func(t *testing.T) {
		st := open(t)
		// A user whose id is taken passes the username check but fails at
		// insert, aborting its transaction. Units batched with it must
		// still commit.
		must(t, st.Commit(ctx, &store.Unit{NewUser: &store.User{ID: "same", Tenant: "a", Username: "x", Role: "user", PasswordHash: "h", Created: t0}}))
		var wg sync.WaitGroup
		results := make([]error, 40)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if i == 20 {
					results[i] = st.Commit(ctx, &store.Unit{NewUser: &store.User{ID: "same", Tenant: "a", Username: "y", Role: "user", PasswordHash: "h", Created: t0}, Audit: []*audit.Record{rec("a", "user-add")}})
					return
				}
				results[i] = st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Patient", fmt.Sprint("p", i), 1, "x")}, Audit: []*audit.Record{rec("a", "create")}})
			}()
		}
		wg.Wait()
		for i, err := range results {
			if i == 20 {
				if !errors.Is(err, store.ErrUnavailable) {
					t.Errorf("bad unit: %v, want ErrUnavailable", err)
				}
				continue
			}
			if err != nil {
				t.Errorf("unit %d failed with the bad one: %v", i, err)
			}
		}
		if n := VerifyLedger(t, st); n != 39 {
			t.Fatalf("%d audit records, want 39 (the failed unit's record is not written)", n)
		}
	})

	t.Run("AuditRecordsRoundTrip", func(t *testing.T) {
		st := open(t)
		r := &audit.Record{Time: t0, Tenant: "a", RequestID: "r1", Actor: "u1", Role: "nurse", Action: "search-type", ResourceType: "Patient",
			Entities: []string{"Patient/x/_history/1", "Patient/y/_history/4"}, Outcome: audit.OutcomeSuccess, Detail: "d", Purpose: "TREAT", Emergency: true}
		must(t, st.Commit(ctx, &store.Unit{Audit: []*audit.Record{r}}))
		var got []*audit.Record
		got = Records(t, st)
		if len(got) != 1 {
			t.Fatalf("%d records", len(got))
		}
		g := got[0]
		if g.Seq != 1 || !g.Time.Equal(t0) || g.Actor != "u1" || fmt.Sprint(g.Entities) != fmt.Sprint(r.Entities) || !g.Emergency || g.Purpose != "TREAT" || g.Hash != r.Hash || g.PrevHash != audit.Genesis {
			t.Fatalf("round trip: %+v", g)
		}
		VerifyLedger(t, st)
	})
}

// Records returns the whole ledger.
func Records(t testing.TB, st store.Store) []*audit.Record {
	t.Helper()
	var out []*audit.Record
	err := st.AuditScan(context.Background(), 0, func(_ audit.Head, recs iter.Seq2[*audit.Record, error]) error {
		for r, err := range recs {
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func ids(vs []store.Version) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.ID)
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// InterleavedWriters commits concurrently through two stores on the same
// database (two processes, or two nodes) and checks the ledger is one
// unbroken chain with every record in it.
func InterleavedWriters(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		for j, st := range []store.Store{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("p%d-%d", j, i)
				errs <- st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Patient", id, 1, "x")}, Audit: []*audit.Record{rec("a", "create")}})
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := VerifyLedger(t, a); got != 2*n {
		t.Fatalf("%d records, want %d", got, 2*n)
	}
}

// InterleavedLedgerAppends has two stores on one database (two nodes)
// append ledger records alone, as reads do, concurrently and interleaved
// with the other's, then checks the ledger is one unbroken chain holding
// every record once: a node whose idea of the head is stale must not append
// after it.
func InterleavedLedgerAppends(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	before := VerifyLedger(t, a)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for j, st := range []store.Store{a, b} {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range n / 4 {
					errs <- st.Commit(ctx, &store.Unit{Audit: []*audit.Record{rec("a", "read", fmt.Sprintf("Patient/p%d-%d", j, i))}})
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := VerifyLedger(t, a); got != before+2*n {
		t.Fatalf("%d records, want %d", got, before+2*n)
	}
}

// BenchmarkLedgerAppend measures one audit record made durable through
// Commit: sequentially (one record per transaction, the latency a lone
// request sees) and from 32 goroutines (group commit at work).
func BenchmarkLedgerAppend(b *testing.B, st store.Store) {
	ctx := context.Background()
	newRec := func() *audit.Record {
		return &audit.Record{Time: time.Now(), Tenant: "default", RequestID: "0123456789abcdef01234567", Actor: "4f9c3a1e-7d2b-4c55-9e0f-1a2b3c4d5e6f",
			Role: "physician", Action: "read", ResourceType: "Patient", Entities: []string{"Patient/6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9/_history/3"}}
	}
	b.Run("sequential", func(b *testing.B) {
		for b.Loop() {
			if err := st.Commit(ctx, &store.Unit{Audit: []*audit.Record{newRec()}}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel32", func(b *testing.B) {
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := st.Commit(ctx, &store.Unit{Audit: []*audit.Record{newRec()}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// MigrateUp runs the Up section of a goose SQL migration file (a path
// relative to the calling test's package) on db, as goose would: for
// tests that write rows under the schema before a migration and check
// what the migration makes of them.
func MigrateUp(t *testing.T, db *sql.DB, file string) {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	up, _, ok := strings.Cut(string(src), "-- +goose Down")
	if !ok {
		t.Fatalf("%s: no Down section", file)
	}
	if _, err := db.ExecContext(context.Background(), up); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}
