package dispatch

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/events"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/sqlite"
	"github.com/wardhealth/ward/internal/store/sqlstore"
)

// TestTail: the tail answers only for positions it covers, with exactly
// the outbox's events after them, and wakes idle receivers when events
// arrive; a position older than it goes to the database.
func TestTail(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ward.db"), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	commit := func(n int) {
		for i := range n {
			e := events.New("t", events.ResourceUpdated, "Patient/p", "Patient/p", time.Now(), events.Data{ResourceType: "Patient", ID: fmt.Sprint(i)})
			u := &store.Unit{Parts: []store.Part{store.Outbox{Events: []events.Event{e}}}}
			u.AddAudit(&audit.Record{Time: time.Now(), Tenant: "t", Actor: "test", Role: "system", Action: "update"})
			if err := st.Commit(ctx, u); err != nil {
				t.Fatal(err)
			}
		}
	}
	commit(5) // before the tail: not in it
	var tl tail
	if _, ok := tl.after(0, 10); ok {
		t.Fatal("an unread tail answered")
	}
	if err := tl.read(ctx, st, 4); err != nil {
		t.Fatal(err)
	}
	head := tl.head
	if evs, ok := tl.after(head, 10); !ok || len(evs) != 0 {
		t.Fatalf("at the head: %d events, %v", len(evs), ok)
	}
	if _, ok := tl.after(head-1, 10); ok {
		t.Fatal("a position before the tail was answered from it")
	}
	woken := tl.signal()
	commit(9)
	if err := tl.read(ctx, st, 4); err != nil { // several reads of 4
		t.Fatal(err)
	}
	select {
	case <-woken:
	default:
		t.Fatal("new events did not wake idle receivers")
	}
	for _, pos := range []int64{head, head + 3, head + 8, head + 9} {
		want, err := st.OutboxAfter(ctx, pos, 4)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := tl.after(pos, 4)
		if !ok || len(got) != len(want) {
			t.Fatalf("after %d: %d events (%v), want %d", pos, len(got), ok, len(want))
		}
		for i := range want {
			if got[i].Seq != want[i].Seq || got[i].ID != want[i].ID {
				t.Fatalf("after %d: event %d is %d, want %d", pos, i, got[i].Seq, want[i].Seq)
			}
		}
	}
}
