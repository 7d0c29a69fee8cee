package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/store"
)

// runGuards proves Unit.Guards: a guard is checked inside the write
// transaction against everything committed before the unit, so of many
// concurrent "create only if none exists" units exactly one commits.
func runGuards(t *testing.T, open Opener) {
	ctx := context.Background()
	noPatient := store.Guard{Query: store.SearchQuery{Tenant: "a", Types: []string{"Patient"}}}

	t.Run("GuardsSerialiseConditionalCreates", func(t *testing.T) {
		st := open(t)
		// Unguarded traffic on another type shares the queue, so guarded
		// units meet batches of other units.
		const n = 24
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, conflicts := 0, 0
		for i := range n {
			wg.Add(2)
			go func() {
				defer wg.Done()
				err := st.Commit(ctx, &store.Unit{
					Writes: []store.Write{write("a", "Patient", fmt.Sprintf("p%d", i), 1, "x")},
					Guards: []store.Guard{noPatient},
					Audit:  []*audit.Record{rec("a", "create")},
				})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, store.ErrConflict):
					conflicts++
				default:
					t.Error(err)
				}
			}()
			go func() {
				defer wg.Done()
				if err := st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Observation", fmt.Sprintf("o%d", i), 1, "y")}}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 || conflicts != n-1 {
			t.Fatalf("%d guarded creates committed and %d conflicted, want 1 and %d", wins, conflicts, n-1)
		}
		if got := VerifyLedger(t, st); got != n {
			t.Fatalf("%d audit records, want %d (failed guards are audited too)", got, n)
		}
	})

	t.Run("GuardMatchSetMustBeExact", func(t *testing.T) {
		st := open(t)
		must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Patient", "p1", 1, "x"), write("a", "Patient", "p2", 1, "x"), write("b", "Patient", "p3", 1, "x")}}))
		one := store.SearchQuery{Tenant: "a", Types: []string{"Patient"}, Where: []string{"r.id = ?"}, Args: []any{"p1"}}
		all := store.SearchQuery{Tenant: "a", Types: []string{"Patient"}}
		cases := []struct {
			name  string
			guard store.Guard
			ok    bool
		}{
			{"exact one", store.Guard{Query: one, Match: []store.Ref{{Type: "Patient", ID: "p1"}}}, true},
			{"exact two, other tenant not seen", store.Guard{Query: all, Match: []store.Ref{{Type: "Patient", ID: "p1"}, {Type: "Patient", ID: "p2"}}}, true},
			{"expected none", store.Guard{Query: one}, false},
			{"expected another", store.Guard{Query: one, Match: []store.Ref{{Type: "Patient", ID: "p2"}}}, false},
			{"one more than expected", store.Guard{Query: all, Match: []store.Ref{{Type: "Patient", ID: "p1"}}}, false},
			{"one fewer than expected", store.Guard{Query: one, Match: []store.Ref{{Type: "Patient", ID: "p1"}, {Type: "Patient", ID: "p9"}}}, false},
		}
		for i, c := range cases {
			id := fmt.Sprintf("o%d", i)
			err := st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Observation", id, 1, "y")}, Guards: []store.Guard{c.guard}})
			_, rerr := st.Current(ctx, "a", "Observation", id)
			switch {
			case c.ok && (err != nil || rerr != nil):
				t.Errorf("%s: commit %v, read %v; want committed", c.name, err, rerr)
			case !c.ok && (!errors.Is(err, store.ErrConflict) || !errors.Is(rerr, store.ErrNotFound)):
				t.Errorf("%s: commit %v, read %v; want ErrConflict and nothing written", c.name, err, rerr)
			}
		}
	})

	t.Run("GuardIgnoresDeleted", func(t *testing.T) {
		st := open(t)
		must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Patient", "p1", 1, "x")}}))
		must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{{Tenant: "a", Type: "Patient", ID: "p1", Version: 2, LastUpdated: t0, Deleted: true}}}))
		must(t, st.Commit(ctx, &store.Unit{Writes: []store.Write{write("a", "Patient", "p2", 1, "x")},
			Guards: []store.Guard{{Query: store.SearchQuery{Tenant: "a", Types: []string{"Patient"}, Where: []string{"r.id = ?"}, Args: []any{"p1"}}}}}))
	})
}

// GuardsAcrossWriters runs guarded "create only if none exists" units on
// two stores over one database (two nodes, or the CLI beside the server):
// exactly one commits.
func GuardsAcrossWriters(t *testing.T, a, b store.Store) {
	ctx := context.Background()
	noPatient := store.Guard{Query: store.SearchQuery{Tenant: "g", Types: []string{"Patient"}}}
	const n = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range n {
		st := a
		if i%2 == 1 {
			st = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := st.Commit(ctx, &store.Unit{
				Writes: []store.Write{write("g", "Patient", fmt.Sprintf("p%d", i), 1, "x")},
				Guards: []store.Guard{noPatient},
			})
			if err != nil && !errors.Is(err, store.ErrConflict) {
				t.Error(err)
			}
			if err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d guarded creates committed across two writers, want 1", wins)
	}
}
