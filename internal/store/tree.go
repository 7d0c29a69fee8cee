package store

import (
	"context"
	"iter"
	"time"

	"github.com/wardhealth/ward/internal/audit"
)

// LedgerTree stores what makes the ledger verifiable without trusting the
// database (package ledger computes it): the nodes of the ledger's Merkle
// tree, its signed checkpoints, and the removal of archived records.
type LedgerTree interface {
	// AuditTreeSize is how many records the stored tree covers.
	AuditTreeSize(ctx context.Context) (int64, error)
	// AuditTreeExtend stores nodes and tiles and moves the tree size from
	// from to to in one transaction. ErrConflict when the size is no
	// longer from (another node extended it first); nothing is written
	// then. A tile replaces a stored one of the same index only when it
	// is longer (it extends the same block).
	AuditTreeExtend(ctx context.Context, from, to int64, nodes []TreeNode, tiles []TreeTile) error
	// AuditTreeNodes returns the hashes of ids in their order;
	// ErrNotFound if one is missing.
	AuditTreeNodes(ctx context.Context, ids []NodeID) ([][]byte, error)
	// AuditTreeTiles returns the tiles of blocks idx in their order, nil
	// for a block that has none (package ledger, tiles.go).
	AuditTreeTiles(ctx context.Context, idx []uint64) ([][]byte, error)
	// AuditScanTree is Ledger.AuditScan for extending the tree: the same
	// records, except that a record's patients may come from the copy on
	// its own row instead of the patient index. The tree needs only each
	// record's leaf hash, which the chain link checks whichever copy it
	// was computed from; comparing the copy with the index is verify's
	// job, and reading the index doubles the scan's statements.
	AuditScanTree(ctx context.Context, after int64, fn func(head audit.Head, records iter.Seq2[*audit.Record, error]) error) error
	// AddCheckpoint keeps a signed checkpoint; one of the same size that
	// is already kept is left as it is.
	AddCheckpoint(ctx context.Context, c Checkpoint) error
	// LatestCheckpoint returns the checkpoint of the largest size;
	// ErrNotFound when there is none.
	LatestCheckpoint(ctx context.Context) (*Checkpoint, error)
	// AuditSeqBefore returns the largest seq such that the live records
	// up to it were all recorded before t (0 when the first is not).
	AuditSeqBefore(ctx context.Context, t time.Time) (int64, error)
	// AuditRemoveThrough deletes the live records with seq <= through in
	// one transaction, after they were archived, and returns how many.
	// The head and the tree are left as they are.
	AuditRemoveThrough(ctx context.Context, through int64) (int64, error)
}

// NodeID names a node of the ledger's tree: level 0 for leaves, index from
// the left.
type NodeID struct {
	Level uint8
	Index uint64
}

// TreeNode is a node and its hash.
type TreeNode struct {
	NodeID
	Hash []byte
}

// TreeTile is the concatenated leaf hashes of one block of the tree's
// leaves (ledger.Tile).
type TreeTile struct {
	Index  uint64
	Leaves []byte
}

// Checkpoint is a signed checkpoint as kept: the tree size and root and
// the signed note that states them.
type Checkpoint struct {
	Size    int64
	Root    []byte
	Note    []byte
	Created time.Time
}
