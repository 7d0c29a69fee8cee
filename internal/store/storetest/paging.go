package storetest

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

// testSearchPagesBackward pages a search forward to its end and back to
// its start, in rid order and under sort keys with ties (so the rid
// decides among equals), ascending and descending: every backward page
// must be the forward page it comes back to, and a backward read without
// a cursor must be the last hits.
func testSearchPagesBackward(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	var ws []store.Write
	for i := range 11 {
		w := write("a", "Patient", fmt.Sprintf("p%02d", i), 1, "x")
		// Four distinct times for eleven resources: ties everywhere.
		w.LastUpdated = t0.Add(time.Duration(i%4) * time.Second)
		ws = append(ws, w)
	}
	must(t, st.Commit(ctx, &store.Unit{Writes: ws}))
	// A resource of another tenant and a deleted one never show.
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("b", "Patient", "other", 1, "x")}}))
	del := write("a", "Patient", "p05", 2, "")
	del.Deleted, del.Body = true, nil
	must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{del}}))
	orders := map[string][]store.Order{
		"rid":          nil,
		"updated":      {{Expr: "r.last_updated"}},
		"-updated":     {{Expr: "r.last_updated", Desc: true}},
		"-updated,-id": {{Expr: "r.last_updated", Desc: true}, {Expr: "r.id", Desc: true}},
	}
	keys := func(h store.Hit) []any { return append(append([]any(nil), h.Keys...), h.RID) }
	ids := func(hs []store.Hit) []string {
		var out []string
		for _, h := range hs {
			out = append(out, h.ID)
		}
		return out
	}
	for name, order := range orders {
		q := store.SearchQuery{Tenant: "a", Types: []string{"Patient"}, Order: order}
		all := q
		all.Limit = 100
		every, err := st.Search(ctx, all)
		must(t, err)
		if len(every) != 10 {
			t.Fatalf("%s: %d hits, want 10", name, len(every))
		}
		// Forward by 3: pages of 3, 3, 3, 1.
		var pages [][]store.Hit
		var after []any
		for {
			pq := q
			pq.Limit, pq.After = 3, after
			hs, err := st.Search(ctx, pq)
			must(t, err)
			if len(hs) == 0 {
				break
			}
			pages = append(pages, hs)
			after = keys(hs[len(hs)-1])
		}
		if len(pages) != 4 {
			t.Fatalf("%s: %d forward pages, want 4", name, len(pages))
		}
		// Back from each page's first hit: the page before it.
		for i := len(pages) - 1; i > 0; i-- {
			pq := q
			pq.Limit, pq.After, pq.Backward = 3, keys(pages[i][0]), true
			hs, err := st.Search(ctx, pq)
			must(t, err)
			if !reflect.DeepEqual(ids(hs), ids(pages[i-1])) {
				t.Fatalf("%s: back from page %d: %v, want %v", name, i, ids(hs), ids(pages[i-1]))
			}
		}
		pq := q
		pq.Limit, pq.After, pq.Backward = 3, keys(pages[0][0]), true
		hs, err := st.Search(ctx, pq)
		must(t, err)
		if len(hs) != 0 {
			t.Fatalf("%s: back from the first page: %v", name, ids(hs))
		}
		// No cursor: the last hits, in order.
		pq = q
		pq.Limit, pq.Backward = 4, true
		hs, err = st.Search(ctx, pq)
		must(t, err)
		if !reflect.DeepEqual(ids(hs), ids(every[6:])) {
			t.Fatalf("%s: last 4: %v, want %v", name, ids(hs), ids(every[6:]))
		}
	}
}
