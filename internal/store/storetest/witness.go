package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

// testWitnessing: a witnessed log moves only from the size it is at
// (insert from 0, compare-and-swap after), a stale move is a conflict that
// writes nothing, and cosignatures are kept per size and witness, a later
// one replacing the earlier.
func testWitnessing(t *testing.T, open Opener) {
	st := open(t)
	ctx := context.Background()
	now := time.Now().UTC()
	if n, root, err := st.WitnessLatest(ctx, "a.test/audit"); err != nil || n != 0 || root != nil {
		t.Fatalf("unknown log: %d %x %v", n, root, err)
	}
	r5, r9 := bytes.Repeat([]byte{5}, 32), bytes.Repeat([]byte{9}, 32)
	must(t, st.WitnessAdvance(ctx, "a.test/audit", 0, 5, r5, []byte("note5"), now))
	if err := st.WitnessAdvance(ctx, "a.test/audit", 0, 7, r9, []byte("fork"), now); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second start from 0: %v, want ErrConflict", err)
	}
	if err := st.WitnessAdvance(ctx, "a.test/audit", 4, 9, r9, []byte("note9"), now); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("move from a stale size: %v, want ErrConflict", err)
	}
	if n, root, err := st.WitnessLatest(ctx, "a.test/audit"); err != nil || n != 5 || !bytes.Equal(root, r5) {
		t.Fatalf("after refused moves: %d %x %v", n, root, err)
	}
	must(t, st.WitnessAdvance(ctx, "a.test/audit", 5, 9, r9, []byte("note9"), now))
	if n, root, err := st.WitnessLatest(ctx, "a.test/audit"); err != nil || n != 9 || !bytes.Equal(root, r9) {
		t.Fatalf("after the move: %d %x %v", n, root, err)
	}
	if n, _, _ := st.WitnessLatest(ctx, "b.test/audit"); n != 0 {
		t.Fatalf("another log moved: %d", n)
	}

	must(t, st.AddCosignature(ctx, 9, "w1", []byte("cp9 w1 old"), now))
	must(t, st.AddCosignature(ctx, 9, "w1", []byte("cp9 w1"), now))
	must(t, st.AddCosignature(ctx, 9, "w2", []byte("cp9 w2"), now))
	must(t, st.AddCosignature(ctx, 5, "w1", []byte("cp5 w1"), now))
	got, err := st.Cosignatures(ctx, 9)
	if err != nil || len(got) != 2 || string(got["w1"]) != "cp9 w1" || string(got["w2"]) != "cp9 w2" {
		t.Fatalf("cosignatures of 9: %q %v", got, err)
	}
	if got, err := st.Cosignatures(ctx, 6); err != nil || len(got) != 0 {
		t.Fatalf("cosignatures of 6: %q %v", got, err)
	}
}
