package ledger

import (
	"bytes"
	"context"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/testonly"
)

// memTiles stands in for the store's tile table: a longer tile replaces a
// shorter one, as there.
type memTiles map[uint64][]byte

func (m memTiles) read(_ context.Context, idx []uint64) ([][]byte, error) {
	out := make([][]byte, len(idx))
	for i, x := range idx {
		out[i] = m[x]
	}
	return out, nil
}

// buildTiled extends a tree stored in strata in uneven steps, as periodic
// checkpoints do. The first legacy leaves are stored as a tree was before
// tiles (every node a row, no tile), to show such a tree keeps working
// and is extended in strata from where it stood.
func buildTiled(t *testing.T, n, legacy int, steps ...int) (memTree, memTiles, Fetch) {
	t.Helper()
	ctx := context.Background()
	recs := records(n)
	nodes, tiles := memTree{}, memTiles{}
	fetch := TiledFetch(tiles.read, nodes.fetch)
	size := 0
	for _, step := range append(steps, n) {
		step = min(step, n)
		var leaves [][]byte
		for _, r := range recs[size:step] {
			leaves = append(leaves, LeafHash(r))
		}
		r, err := Frontier(ctx, fetch, uint64(size))
		if err != nil {
			t.Fatal(err)
		}
		ns, err := ExtendRange(r, leaves)
		if err != nil {
			t.Fatal(err)
		}
		if step <= legacy {
			for _, x := range ns {
				nodes[x.ID] = x.Hash
			}
			size = step
			continue
		}
		var prefix [][]byte
		for i := size - size%TileWidth; i < size; i++ {
			h, err := fetch(ctx, []NodeID{{Level: 0, Index: uint64(i)}})
			if err != nil {
				t.Fatal(err)
			}
			prefix = append(prefix, h[0])
		}
		ts, upper, err := Strata(uint64(size), prefix, leaves, ns)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range upper {
			nodes[x.ID] = x.Hash
		}
		for _, x := range ts {
			if len(x.Leaves) > len(tiles[x.Index]) {
				tiles[x.Index] = x.Leaves
			}
		}
		size = step
	}
	return nodes, tiles, fetch
}

// TestTilesMatchReference: a tree stored in strata (tiles of leaf hashes,
// nodes from level TileHeight up) gives the reference tree's roots and
// proofs that pass the library's verifier for every size and pair, also
// when its first part was stored before tiles; it stores no node of
// levels 1 to TileHeight-1 and about three rows per TileWidth leaves (two per leaf before).
func TestTilesMatchReference(t *testing.T) {
	ctx := context.Background()
	const n = 90
	ref := testonly.New(Hasher)
	for _, r := range records(n) {
		ref.AppendData(r.AppendCanonical(nil))
	}
	for _, legacy := range []int{0, 17, 40} {
		nodes, tiles, fetch := buildTiled(t, n, legacy, 1, 5, 16, 17, 31, 40, 41, 64, 70)
		for size := uint64(0); size <= n; size++ {
			root, err := Root(ctx, fetch, size)
			if err != nil {
				t.Fatal(err)
			}
			if want := ref.HashAt(size); !bytes.Equal(root, want) {
				t.Fatalf("legacy %d: root at %d: %x, reference %x", legacy, size, root, want)
			}
			for i := uint64(0); i < size; i++ {
				p, err := Inclusion(ctx, fetch, i, size)
				if err != nil {
					t.Fatal(err)
				}
				leaf, err := fetch(ctx, []NodeID{{Level: 0, Index: i}})
				if err != nil {
					t.Fatal(err)
				}
				if err := proof.VerifyInclusion(Hasher, i, size, leaf[0], p, root); err != nil {
					t.Fatalf("legacy %d: inclusion %d in %d: %v", legacy, i, size, err)
				}
			}
			for s1 := uint64(0); s1 <= size; s1++ {
				p, err := Consistency(ctx, fetch, s1, size)
				if err != nil {
					t.Fatal(err)
				}
				if err := proof.VerifyConsistency(Hasher, s1, size, p, ref.HashAt(s1), root); err != nil {
					t.Fatalf("legacy %d: consistency %d -> %d: %v", legacy, s1, size, err)
				}
			}
		}
		if legacy == 0 {
			for id := range nodes {
				if id.Level < TileHeight {
					t.Fatalf("node %v stored as a row", id)
				}
			}
			if rows := len(nodes) + len(tiles); rows > 3*n/TileWidth+1 {
				t.Fatalf("%d rows for %d leaves", rows, n)
			}
			if len(tiles) != (n+TileWidth-1)/TileWidth {
				t.Fatalf("%d tiles for %d leaves", len(tiles), n)
			}
		}
	}
}

// TestTileForged: a leaf hash changed in its tile changes the root: the
// low levels are recomputed from the tile, not trusted from elsewhere.
func TestTileForged(t *testing.T) {
	ctx := context.Background()
	_, tiles, fetch := buildTiled(t, 40, 0, 10, 33)
	root, err := Root(ctx, fetch, 40)
	if err != nil {
		t.Fatal(err)
	}
	tiles[2][40] ^= 1 // leaf 33, in the partial block under no stored node
	forged, err := Root(ctx, fetch, 40)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(root, forged) {
		t.Fatal("a forged leaf in a tile left the root unchanged")
	}
}

func TestStrataPrefix(t *testing.T) {
	if _, _, err := Strata(18, nil, [][]byte{make([]byte, 32)}, nil); err == nil {
		t.Fatal("an extension from 18 without the block's first two leaves was accepted")
	}
}
