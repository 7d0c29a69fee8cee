package storetest

import (
	"context"
	"testing"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/store"
)

// testLedgerCursors: a consumer's cursor is absent until saved, commits
// with the ledger records of its unit, and is overwritten by the next.
func testLedgerCursors(t *testing.T, open Opener) {
	ctx := context.Background()
	st := open(t)
	seq, state, err := st.Cursor(ctx, "alerts")
	if err != nil || seq != 0 || state != nil {
		t.Fatalf("fresh cursor = %d, %q, %v; want 0, nil, nil", seq, state, err)
	}
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.SaveCursor{Name: "alerts", Seq: 7, State: []byte(`{"n":1}`)}}, Audit: []*audit.Record{rec("a", "alert")}}))
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.SaveCursor{Name: "siem", Seq: 3}}}))
	must(t, st.Commit(ctx, &store.Unit{Parts: []store.Part{store.SaveCursor{Name: "alerts", Seq: 9, State: []byte(`{"n":2}`)}}}))
	for _, c := range []struct {
		name  string
		seq   int64
		state string
	}{{"alerts", 9, `{"n":2}`}, {"siem", 3, ""}} {
		seq, state, err := st.Cursor(ctx, c.name)
		if err != nil || seq != c.seq || string(state) != c.state {
			t.Errorf("cursor %s = %d, %q, %v; want %d, %q", c.name, seq, state, err, c.seq, c.state)
		}
	}
	if n := VerifyLedger(t, st); n != 1 {
		t.Errorf("ledger holds %d records, want the 1 committed with the cursor", n)
	}
}
