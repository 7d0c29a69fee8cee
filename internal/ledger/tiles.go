package ledger

// The tree as stored: two strata. Storing every node costs about two rows
// per record, and those inserts were half of the checkpointer's work per
// record (docs/benchmarks.md, "The Merkle tree's cost, third pass"). The
// nodes of the lowest TileHeight levels above the leaves are cheap to
// recompute from the leaf hashes under them, so the store keeps:
//
//   - the leaf hashes in tiles: one row per block of TileWidth leaves
//     (the last block partial until it fills), concatenated;
//   - the nodes of level TileHeight and up, one row each, as before.
//
// Levels 1 to TileHeight-1 are never stored; Fetch recomputes them from
// their tile (at most TileWidth-1 hashes). A tree stored before tiles
// existed (every node a row) keeps working: a low node whose tile is not
// there, or is too short, is read as a row.

import (
	"context"
	"fmt"
)

// TileHeight is how many levels above the leaves one tile spans.
const TileHeight = 4

// TileWidth is the number of leaf hashes in a full tile.
const TileWidth = 1 << TileHeight

// Tile is the leaf hashes of block Index (leaves Index*TileWidth on),
// concatenated: TileWidth of them, fewer in the last, partial block. A
// longer tile of the same block replaces a shorter one (it extends it).
type Tile struct {
	Index  uint64
	Leaves []byte
}

// ReadTiles returns the stored tiles of blocks idx, in their order; nil
// for a block that has none.
type ReadTiles func(ctx context.Context, idx []uint64) ([][]byte, error)

// Strata returns what to store of an extension of the tree from size
// leaves by leaves: the tiles the new leaves touch, and the upper nodes
// among nodes (ExtendRange's result). prefix is the leaf hashes of the
// partial block before size (size%TileWidth of them, in order), so that
// the block's tile is written whole.
func Strata(size uint64, prefix, leaves [][]byte, nodes []Node) ([]Tile, []Node, error) {
	if uint64(len(prefix)) != size%TileWidth {
		return nil, nil, fmt.Errorf("ledger: %d leaves before size %d in its block, want %d", len(prefix), size, size%TileWidth)
	}
	var upper []Node
	for _, n := range nodes {
		if n.ID.Level >= TileHeight {
			upper = append(upper, n)
		}
	}
	var tiles []Tile
	block := size / TileWidth
	cur := make([]byte, 0, TileWidth*32)
	for _, l := range prefix {
		cur = append(cur, l...)
	}
	for _, l := range leaves {
		if len(l) != 32 {
			return nil, nil, fmt.Errorf("ledger: leaf hash of %d bytes", len(l))
		}
		cur = append(cur, l...)
		if len(cur) == TileWidth*32 {
			tiles = append(tiles, Tile{Index: block, Leaves: cur})
			block++
			cur = make([]byte, 0, TileWidth*32)
		}
	}
	if len(cur) > 0 && len(leaves) > 0 {
		tiles = append(tiles, Tile{Index: block, Leaves: cur})
	}
	return tiles, upper, nil
}

// TiledFetch returns the Fetch of a tree stored in strata: nodes of the
// lowest TileHeight levels from their tile, the others (and low ones
// whose tile is missing or short: a tree stored before tiles) from nodes.
func TiledFetch(tiles ReadTiles, nodes Fetch) Fetch {
	return func(ctx context.Context, ids []NodeID) ([][]byte, error) {
		out := make([][]byte, len(ids))
		var blocks []uint64
		seen := map[uint64]int{}
		for _, id := range ids {
			if id.Level >= TileHeight {
				continue
			}
			b := (id.Index << id.Level) / TileWidth
			if _, ok := seen[b]; !ok {
				seen[b] = len(blocks)
				blocks = append(blocks, b)
			}
		}
		var got [][]byte
		if len(blocks) > 0 {
			var err error
			if got, err = tiles(ctx, blocks); err != nil {
				return nil, err
			}
		}
		var rest []NodeID
		var restAt []int
		for i, id := range ids {
			if id.Level < TileHeight {
				first := id.Index << id.Level
				tile := got[seen[first/TileWidth]]
				off := first % TileWidth
				if n := uint64(1) << id.Level; uint64(len(tile)) >= (off+n)*32 {
					out[i] = hashUp(tile[off*32:(off+n)*32], id.Level)
					continue
				}
			}
			rest = append(rest, id)
			restAt = append(restAt, i)
		}
		if len(rest) > 0 {
			hs, err := nodes(ctx, rest)
			if err != nil {
				return nil, err
			}
			for j, i := range restAt {
				out[i] = hs[j]
			}
		}
		return out, nil
	}
}

// hashUp is the root of the perfect subtree of height level over the
// concatenated leaf hashes b.
func hashUp(b []byte, level uint) []byte {
	hs := make([][]byte, 0, 1<<level)
	for i := 0; i < len(b); i += 32 {
		hs = append(hs, b[i:i+32])
	}
	for len(hs) > 1 {
		next := hs[:0:0]
		for i := 0; i < len(hs); i += 2 {
			next = append(next, Hasher.HashChildren(hs[i], hs[i+1]))
		}
		hs = next
	}
	return hs[0]
}
