package store

import (
	"context"
	"time"
)

// Witnessing stores both sides of checkpoint witnessing (package witness):
// this node's state as a witness of other logs, and the cosignatures its
// own checkpoints got back. Hashes, sizes and signed notes only.
type Witnessing interface {
	// WitnessLatest returns the size and root of the latest checkpoint
	// of origin this node cosigned; 0 and nil when none.
	WitnessLatest(ctx context.Context, origin string) (size int64, root []byte, err error)
	// WitnessAdvance moves origin from size from to the checkpoint note
	// of size to and root, atomically; ErrConflict when origin is no
	// longer at from.
	WitnessAdvance(ctx context.Context, origin string, from, to int64, root, note []byte, at time.Time) error
	// AddCosignature keeps the checkpoint of size as cosigned by witness
	// (the note with its cosignature lines); a later one replaces it.
	AddCosignature(ctx context.Context, size int64, witness string, note []byte, at time.Time) error
	// Cosignatures returns the cosigned notes of the checkpoint of size,
	// by witness name.
	Cosignatures(ctx context.Context, size int64) (map[string][]byte, error)
}
