package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/store"
)

func node(level uint8, index uint64) store.TreeNode {
	return store.TreeNode{NodeID: store.NodeID{Level: level, Index: index}, Hash: bytes.Repeat([]byte{level*16 + byte(index)}, 32)}
}

// testLedgerTree: tree nodes move with the size in one transaction, a
// stale extension is a conflict that writes nothing, nodes come back in
// the order asked (repeats included) and a missing one is not found;
// tiles likewise, a longer one replacing a shorter one.
func testLedgerTree(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	if n, err := st.AuditTreeSize(ctx); err != nil || n != 0 {
		t.Fatalf("new store tree size %d, %v", n, err)
	}
	must(t, st.AuditTreeExtend(ctx, 0, 3, []store.TreeNode{node(0, 0), node(0, 1), node(1, 0), node(0, 2)}, []store.TreeTile{{Index: 0, Leaves: []byte("abc")}}))
	if err := st.AuditTreeExtend(ctx, 0, 4, []store.TreeNode{node(0, 3)}, []store.TreeTile{{Index: 0, Leaves: []byte("abcd")}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale extension: %v, want ErrConflict", err)
	}
	if _, err := st.AuditTreeNodes(ctx, []store.NodeID{{Level: 0, Index: 3}}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("node of a refused extension: %v, want ErrNotFound", err)
	}
	// An extension that repeats a stored node (one left by an earlier
	// attempt) keeps the first.
	many := []store.TreeNode{node(0, 2), node(0, 3), node(1, 1), node(2, 0)}
	for i := uint64(4); i < 4500; i++ {
		many = append(many, store.TreeNode{NodeID: store.NodeID{Level: 0, Index: i}, Hash: []byte(fmt.Sprintf("%032d", i))})
	}
	// Tiles: a longer one replaces a shorter one of its block, a shorter
	// or equal one (a stale writer's) does not; many in one extension.
	tiles := []store.TreeTile{{Index: 0, Leaves: []byte("abcdef")}}
	for i := uint64(1); i < 600; i++ {
		tiles = append(tiles, store.TreeTile{Index: i, Leaves: []byte(fmt.Sprintf("tile%d", i))})
	}
	must(t, st.AuditTreeExtend(ctx, 3, 4500, many, tiles))
	must(t, st.AuditTreeExtend(ctx, 4500, 4500, nil, []store.TreeTile{{Index: 0, Leaves: []byte("abcdeX")}, {Index: 1, Leaves: []byte("x")}, {Index: 599, Leaves: []byte("tile599+")}}))
	tgot, err := st.AuditTreeTiles(ctx, []uint64{1, 0, 599, 1, 600, 5})
	must(t, err)
	for i, want := range []string{"tile1", "abcdef", "tile599+", "tile1", "", "tile5"} {
		if string(tgot[i]) != want || (want == "") != (tgot[i] == nil) {
			t.Fatalf("tile %d: %q, want %q", i, tgot[i], want)
		}
	}
	if n, _ := st.AuditTreeSize(ctx); n != 4500 {
		t.Fatalf("tree size %d, want 4500", n)
	}
	ids := []store.NodeID{{Level: 2, Index: 0}, {Level: 0, Index: 1}, {Level: 2, Index: 0}, {Level: 1, Index: 1}}
	for i := uint64(4); i < 4500; i += 3 {
		ids = append(ids, store.NodeID{Level: 0, Index: i})
	}
	got, err := st.AuditTreeNodes(ctx, ids)
	must(t, err)
	for i, id := range ids {
		want := bytes.Repeat([]byte{id.Level*16 + byte(id.Index)}, 32)
		if id.Level == 0 && id.Index >= 4 {
			want = []byte(fmt.Sprintf("%032d", id.Index))
		}
		if !bytes.Equal(got[i], want) {
			t.Fatalf("node %v: %x, want %x", id, got[i], want)
		}
	}
	if _, err := st.AuditTreeNodes(ctx, []store.NodeID{{Level: 0, Index: 1}, {Level: 5, Index: 0}}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing node: %v", err)
	}

	if _, err := st.LatestCheckpoint(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("no checkpoint yet: %v", err)
	}
	must(t, st.AddCheckpoint(ctx, store.Checkpoint{Size: 3, Root: []byte("r3"), Note: []byte("note 3"), Created: t0}))
	must(t, st.AddCheckpoint(ctx, store.Checkpoint{Size: 700, Root: []byte("r700"), Note: []byte("note 700"), Created: t0.Add(time.Second)}))
	must(t, st.AddCheckpoint(ctx, store.Checkpoint{Size: 700, Root: []byte("other"), Note: []byte("other"), Created: t0}))
	must(t, st.AddCheckpoint(ctx, store.Checkpoint{Size: 5, Root: []byte("r5"), Note: []byte("note 5"), Created: t0}))
	c, err := st.LatestCheckpoint(ctx)
	must(t, err)
	if c.Size != 700 || string(c.Note) != "note 700" || string(c.Root) != "r700" || !c.Created.Equal(t0.Add(time.Second)) {
		t.Fatalf("latest checkpoint %+v", c)
	}
}

// testLedgerArchiveBoundary: the boundary before a time is the end of the
// prefix of records older than it, and removing through it leaves the
// rest verifiable from there, with the head unchanged.
func testLedgerArchiveBoundary(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		r := rec("a", "read")
		r.Time = t0.Add(time.Duration(i) * time.Hour)
		must(t, st.Commit(ctx, &store.Unit{Audit: []*audit.Record{r}}))
	}
	for _, c := range []struct {
		at   time.Time
		want int64
	}{{t0, 0}, {t0.Add(time.Minute), 1}, {t0.Add(4 * time.Hour), 4}, {t0.Add(100 * time.Hour), 10}} {
		if got, err := st.AuditSeqBefore(ctx, c.at); err != nil || got != c.want {
			t.Fatalf("boundary before %v: %d, %v; want %d", c.at, got, err, c.want)
		}
	}
	head, err := st.AuditHead(ctx)
	must(t, err)
	n, err := st.AuditRemoveThrough(ctx, 4)
	must(t, err)
	if n != 4 {
		t.Fatalf("removed %d, want 4", n)
	}
	if h, _ := st.AuditHead(ctx); h != head {
		t.Fatalf("head moved: %+v, was %+v", h, head)
	}
	recs := Records(t, st)
	if len(recs) != 6 || recs[0].Seq != 5 {
		t.Fatalf("%d live records from seq %d, want 6 from 5", len(recs), recs[0].Seq)
	}
	if got, _ := st.AuditSeqBefore(ctx, t0.Add(6*time.Hour)); got != 6 {
		t.Fatalf("boundary after removal: %d, want 6", got)
	}
	// New records keep chaining after a removal.
	must(t, st.Commit(ctx, &store.Unit{Audit: []*audit.Record{rec("a", "read")}}))
	if recs := Records(t, st); recs[len(recs)-1].Seq != 11 || recs[len(recs)-1].PrevHash != head.Hash {
		t.Fatalf("record after removal does not chain onto the head")
	}
}

// testLedgerScanTree: the tree's scan yields the records AuditScan
// yields, patients included, each with a hash that links (the leaf hash
// it gives is the one the chain committed), through several pages and
// from a starting point.
func testLedgerScanTree(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	for i := 0; i < 2300; i += 100 {
		var rs []*audit.Record
		for j := 0; j < 100; j++ {
			r := rec("a", "read", fmt.Sprintf("Patient/p%d", i+j))
			switch (i + j) % 3 {
			case 1:
				r.Patients = []string{fmt.Sprintf("p%d", i+j)}
			case 2:
				r.Patients = []string{"zz", fmt.Sprintf("p%d", i+j), "aa"}
			}
			rs = append(rs, r)
		}
		must(t, st.Commit(ctx, &store.Unit{Audit: rs}))
	}
	all := Records(t, st)
	for _, after := range []int64{0, 999, 2299} {
		var got []*audit.Record
		var h audit.Hasher
		err := st.AuditScanTree(ctx, after, func(head audit.Head, recs iter.Seq2[*audit.Record, error]) error {
			if head.Seq != 2300 {
				t.Fatalf("head %d, want 2300", head.Seq)
			}
			for r, err := range recs {
				if err != nil {
					return err
				}
				if audit.Link(r.PrevHash, h.EntryHash(r)) != r.Hash {
					t.Fatalf("record %d from the tree's scan does not link", r.Seq)
				}
				got = append(got, r)
			}
			return nil
		})
		must(t, err)
		want := all[after:]
		if len(got) != len(want) {
			t.Fatalf("after %d: %d records, want %d", after, len(got), len(want))
		}
		for i := range want {
			if got[i].Seq != want[i].Seq || got[i].Hash != want[i].Hash || !slices.Equal(got[i].Patients, want[i].Patients) {
				t.Fatalf("after %d: record %d differs: %v %v", after, want[i].Seq, got[i].Patients, want[i].Patients)
			}
		}
	}
}
