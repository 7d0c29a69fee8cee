// Package ledger makes Ward's audit ledger verifiable without trusting the
// database that holds it. The hash chain (package audit) finds an edited
// record, but not a cut of the newest records together with a rewritten
// head; this package adds what does:
//
//   - the ledger as an RFC 6962 Merkle tree, whose leaf i (0-based) is the
//     canonical encoding of the record with sequence number i+1, so that
//     the leaf hash SHA-256(0x00 || canonical) is exactly audit.EntryHash;
//   - checkpoints: the tree size and root in the C2SP tlog-checkpoint format,
//     signed as a signed note with an Ed25519 key;
//   - inclusion and consistency proofs computed from stored node hashes, in
//     O(log n) node reads;
//   - archive files that carry records out of the live database together
//     with the signed checkpoint at their boundary.
//
// Guarantee: given a checkpoint verified with a published key, a ledger
// that was truncated, emptied, or had any record at or below the
// checkpoint's size rewritten (head included) fails Consistent or a proof
// check, whatever the database says.
//
// The package does no I/O of its own: nodes are read through a Fetch
// function, and archives are read and written through io.Reader and
// io.Writer.
package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/wardhealth/ward/internal/audit"
)

// NodeID names a node of the tree: its level (0 for leaves) and its index
// from the left on that level. Only perfect subtrees have nodes.
type NodeID = compact.NodeID

// Node is a node and its hash, as the tree stores it.
type Node struct {
	ID   NodeID
	Hash []byte
}

// Fetch returns the hashes of ids, in their order. A node the store does
// not have is an error: the tree is incomplete.
type Fetch func(ctx context.Context, ids []NodeID) ([][]byte, error)

// Hasher is the RFC 6962 SHA-256 hasher of the tree.
var Hasher = rfc6962.DefaultHasher

var factory = &compact.RangeFactory{Hash: Hasher.HashChildren}

// LeafHash returns the tree's leaf hash of r: SHA-256(0x00 ||
// canonical(r)), which is audit.EntryHash(r).
func LeafHash(r *audit.Record) []byte {
	h := audit.EntryHash(r)
	return h[:]
}

// Frontier returns the compact range of the first size leaves from stored
// nodes: the O(log n) roots of the perfect subtrees that cover them.
func Frontier(ctx context.Context, fetch Fetch, size uint64) (*compact.Range, error) {
	if size == 0 {
		return factory.NewEmptyRange(0), nil
	}
	ids := compact.RangeNodes(0, size, nil)
	hashes, err := fetch(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("ledger: read the tree frontier at size %d: %w", size, err)
	}
	r, err := factory.NewRange(0, size, hashes)
	if err != nil {
		return nil, fmt.Errorf("ledger: tree frontier at size %d: %w", size, err)
	}
	return r, nil
}

// NewRange returns an empty compact range, for computing a root from the
// leaves alone (Append each LeafHash, then RootOf).
func NewRange() *compact.Range { return factory.NewEmptyRange(0) }

// RootOf returns the root hash of a compact range that starts at leaf 0;
// the empty tree's root is SHA-256 of nothing.
func RootOf(r *compact.Range) ([]byte, error) {
	if r.End() == 0 {
		return Hasher.EmptyRoot(), nil
	}
	return r.GetRootHash(nil)
}

// Extend appends leaves to the tree of size leaves held in the store and
// returns the new nodes to store (every perfect subtree the leaves
// complete, the leaves included) and the new root. Its cost is O(log n)
// reads and amortized two node writes per leaf.
func Extend(ctx context.Context, fetch Fetch, size uint64, leaves [][]byte) ([]Node, []byte, error) {
	r, err := Frontier(ctx, fetch, size)
	if err != nil {
		return nil, nil, err
	}
	nodes, err := ExtendRange(r, leaves)
	if err != nil {
		return nil, nil, err
	}
	root, err := RootOf(r)
	if err != nil {
		return nil, nil, err
	}
	return nodes, root, nil
}

// ExtendRange appends leaves to the compact range r of a tree (in place)
// and returns the new nodes to store. A caller that keeps the frontier
// it last stored extends it without reading it back.
func ExtendRange(r *compact.Range, leaves [][]byte) ([]Node, error) {
	nodes := make([]Node, 0, 2*len(leaves)+1)
	visit := func(id NodeID, h []byte) { nodes = append(nodes, Node{ID: id, Hash: h}) }
	for _, l := range leaves {
		if err := r.Append(l, visit); err != nil {
			return nil, fmt.Errorf("ledger: extend the tree: %w", err)
		}
	}
	return nodes, nil
}

// Root returns the root hash of the tree's first size leaves.
func Root(ctx context.Context, fetch Fetch, size uint64) ([]byte, error) {
	r, err := Frontier(ctx, fetch, size)
	if err != nil {
		return nil, err
	}
	return RootOf(r)
}

// Inclusion returns the inclusion proof of leaf index (0-based) in the tree
// of size leaves.
func Inclusion(ctx context.Context, fetch Fetch, index, size uint64) ([][]byte, error) {
	if index >= size {
		return nil, fmt.Errorf("%w: leaf %d is not in a tree of %d", ErrOutOfRange, index, size)
	}
	n, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrOutOfRange, err)
	}
	return rehash(ctx, fetch, n)
}

// Consistency returns the consistency proof from the tree of size1 leaves
// to the tree of size2 leaves.
func Consistency(ctx context.Context, fetch Fetch, size1, size2 uint64) ([][]byte, error) {
	if size1 > size2 {
		return nil, fmt.Errorf("%w: a tree of %d is not a prefix of one of %d", ErrOutOfRange, size1, size2)
	}
	n, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrOutOfRange, err)
	}
	return rehash(ctx, fetch, n)
}

func rehash(ctx context.Context, fetch Fetch, n proof.Nodes) ([][]byte, error) {
	if len(n.IDs) == 0 {
		return [][]byte{}, nil
	}
	hashes, err := fetch(ctx, n.IDs)
	if err != nil {
		return nil, fmt.Errorf("ledger: read proof nodes: %w", err)
	}
	p, err := n.Rehash(hashes, Hasher.HashChildren)
	if err != nil {
		return nil, fmt.Errorf("ledger: proof: %w", err)
	}
	return p, nil
}

// ErrOutOfRange is returned for a proof asked beyond the tree.
var ErrOutOfRange = errors.New("ledger: out of range")

// VerifyInclusion checks an inclusion proof with the library's verifier.
func VerifyInclusion(index, size uint64, leafHash []byte, p [][]byte, root []byte) error {
	return proof.VerifyInclusion(Hasher, index, size, leafHash, p, root)
}

// VerifyConsistency checks a consistency proof with the library's verifier.
func VerifyConsistency(size1, size2 uint64, p [][]byte, root1, root2 []byte) error {
	return proof.VerifyConsistency(Hasher, size1, size2, p, root1, root2)
}
