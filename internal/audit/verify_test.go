package audit

import (
	"errors"
	"fmt"
	"iter"
	"slices"
	"testing"
	"time"
)

var actions = []string{"login", "search-type", "read", "vread", "create", "update", "history-instance", "delete"}

// buildChain returns n valid, deterministic records chained from Genesis.
func buildChain(n int) []*Record {
	recs := make([]*Record, n)
	prev := Genesis
	for i := range recs {
		seq := int64(i + 1)
		r := &Record{
			Seq:          seq,
			Time:         time.Date(2025, 1, 2, 3, 4, 5, 123456000, time.UTC).Add(time.Duration(i) * time.Minute),
			Tenant:       "acme",
			RequestID:    fmt.Sprintf("req-%04d", seq),
			Actor:        fmt.Sprintf("user/%d", seq%3+1),
			Role:         []string{"admin", "physician", "nurse"}[i%3],
			Action:       actions[i%len(actions)],
			ResourceType: "Patient",
			Outcome:      OutcomeSuccess,
		}
		if r.Action == "login" {
			r.ResourceType = ""
		} else {
			r.Entities = []string{fmt.Sprintf("Patient/p%d/_history/%d", seq%4, seq%3+1)}
		}
		if i%5 == 3 {
			r.Outcome, r.Detail, r.Entities = OutcomeMinor, "forbidden", nil
		}
		if i%7 == 6 {
			r.Emergency, r.Purpose = true, "ETREAT"
		}
		prev = Chain(prev, r)
		recs[i] = r
	}
	return recs
}

func cloneRecord(r *Record) *Record {
	c := *r
	c.Entities = slices.Clone(r.Entities)
	return &c
}

func cloneChain(recs []*Record) []*Record {
	out := make([]*Record, len(recs))
	for i, r := range recs {
		out[i] = cloneRecord(r)
	}
	return out
}

func all(recs []*Record) iter.Seq2[*Record, error] {
	return func(yield func(*Record, error) bool) {
		for _, r := range recs {
			if !yield(r, nil) {
				return
			}
		}
	}
}

func headOf(recs []*Record) *Head {
	if len(recs) == 0 {
		h := GenesisHead()
		return &h
	}
	last := recs[len(recs)-1]
	return &Head{Seq: last.Seq, Hash: last.Hash}
}

type want struct {
	seq    int64
	reason Reason
	found  int64
	empty  bool
}

func checkBreak(t *testing.T, err error, w *want) {
	t.Helper()
	if w == nil {
		if err != nil {
			t.Fatalf("got %v, want nil", err)
		}
		return
	}
	var be *BreakError
	if !errors.As(err, &be) {
		t.Fatalf("got %v, want a BreakError at seq %d (%s)", err, w.seq, w.reason)
	}
	if be.Seq != w.seq || be.Reason != w.reason || be.Found != w.found {
		t.Fatalf("got %v (seq %d, %s, found %d), want seq %d, %s, found %d",
			err, be.Seq, be.Reason, be.Found, w.seq, w.reason, w.found)
	}
	if errors.Is(err, ErrEmpty) != w.empty {
		t.Fatalf("errors.Is(%v, ErrEmpty) = %v, want %v", err, !w.empty, w.empty)
	}
}

// alterations change one field each; every one must break the record's hash.
var alterations = map[string]func(*Record){
	"Time":           func(r *Record) { r.Time = r.Time.Add(time.Microsecond) },
	"Tenant":         func(r *Record) { r.Tenant = "evil" },
	"RequestID":      func(r *Record) { r.RequestID += "0" },
	"Actor":          func(r *Record) { r.Actor = "user/other" },
	"Role":           func(r *Record) { r.Role = "admin!" },
	"Action":         func(r *Record) { r.Action = "noop" },
	"ResourceType":   func(r *Record) { r.ResourceType = "Observation" },
	"Entities add":   func(r *Record) { r.Entities = append(r.Entities, "Patient/x") },
	"Entities clear": func(r *Record) { r.Entities = []string{""} },
	"Outcome":        func(r *Record) { r.Outcome += 4 },
	"Detail":         func(r *Record) { r.Detail += "." },
	"Emergency":      func(r *Record) { r.Emergency = !r.Emergency },
	"Purpose":        func(r *Record) { r.Purpose += "X" },
	"Hash":           func(r *Record) { r.Hash[31] ^= 0x80 },
}

func TestVerifyValid(t *testing.T) {
	for n := range 10 {
		recs := buildChain(n)
		checkBreak(t, Verify(all(recs), nil), nil)
		checkBreak(t, Verify(all(recs), headOf(recs)), nil)
		// From every checkpoint, including the last record.
		for k := range n + 1 {
			cp := *headOf(recs[:k])
			checkBreak(t, VerifyFrom(cp, all(recs[k:]), headOf(recs)), nil)
			checkBreak(t, VerifyFrom(cp, all(recs[k:]), nil), nil)
		}
	}
}

func TestVerifyAlteredFields(t *testing.T) {
	const n = 6
	for i := range n {
		for name, alter := range alterations {
			t.Run(fmt.Sprintf("record %d %s", i+1, name), func(t *testing.T) {
				recs := cloneChain(buildChain(n))
				head := headOf(recs)
				alter(recs[i])
				checkBreak(t, Verify(all(recs), head), &want{seq: int64(i + 1), reason: ReasonHashMismatch})
				checkBreak(t, Verify(all(recs), nil), &want{seq: int64(i + 1), reason: ReasonHashMismatch})
			})
		}
		t.Run(fmt.Sprintf("record %d PrevHash", i+1), func(t *testing.T) {
			recs := cloneChain(buildChain(n))
			recs[i].PrevHash[0] ^= 1
			checkBreak(t, Verify(all(recs), headOf(recs)), &want{seq: int64(i + 1), reason: ReasonPrevMismatch})
		})
		t.Run(fmt.Sprintf("record %d Seq", i+1), func(t *testing.T) {
			// Renumbering one record is seen as a sequence error first.
			recs := cloneChain(buildChain(n))
			recs[i].Seq += 10
			w := &want{seq: int64(i + 1), reason: ReasonGap, found: int64(i + 11)}
			checkBreak(t, Verify(all(recs), headOf(buildChain(n))), w)
		})
	}
}

func TestVerifyRehashedWithoutRelinking(t *testing.T) {
	const n = 6
	for i := range n {
		recs := cloneChain(buildChain(n))
		oldHead := headOf(recs)
		recs[i].Actor = "user/forger"
		Chain(recs[i].PrevHash, recs[i]) // a forger recomputes this record's hash
		if i+1 < n {
			checkBreak(t, Verify(all(recs), oldHead), &want{seq: int64(i + 2), reason: ReasonPrevMismatch})
			checkBreak(t, Verify(all(recs), nil), &want{seq: int64(i + 2), reason: ReasonPrevMismatch})
		} else {
			// The last record: only the head catches it.
			checkBreak(t, Verify(all(recs), oldHead), &want{seq: n, reason: ReasonHeadMismatch})
			checkBreak(t, Verify(all(recs), nil), nil)
		}
		// Relinking everything after it is caught by the head alone, and by
		// any checkpoint taken after the forged record.
		for j := i + 1; j < n; j++ {
			Chain(recs[j-1].Hash, recs[j])
		}
		checkBreak(t, Verify(all(recs), oldHead), &want{seq: n, reason: ReasonHeadMismatch})
		orig := buildChain(n)
		for k := i + 1; k < n; k++ {
			cp := Head{Seq: orig[k-1].Seq, Hash: orig[k-1].Hash}
			checkBreak(t, VerifyFrom(cp, all(recs[k:]), nil), &want{seq: int64(k + 1), reason: ReasonPrevMismatch})
		}
	}
}

func TestVerifyDeleted(t *testing.T) {
	const n = 6
	for i := range n {
		recs := buildChain(n)
		head := headOf(recs)
		del := slices.Delete(slices.Clone(recs), i, i+1)
		seq := int64(i + 1)
		switch {
		case i == n-1:
			checkBreak(t, Verify(all(del), head), &want{seq: seq, reason: ReasonTruncated})
			checkBreak(t, Verify(all(del), nil), nil) // undetectable without a head
		default:
			checkBreak(t, Verify(all(del), head), &want{seq: seq, reason: ReasonGap, found: seq + 1})
			checkBreak(t, Verify(all(del), nil), &want{seq: seq, reason: ReasonGap, found: seq + 1})
		}
		// Deleted and the rest renumbered: the next record no longer links.
		ren := cloneChain(del)
		for j := i; j < len(ren); j++ {
			ren[j].Seq--
		}
		if i < n-1 {
			checkBreak(t, Verify(all(ren), head), &want{seq: seq, reason: ReasonPrevMismatch})
		}
	}
	// Deleting two in a row is one gap.
	recs := buildChain(6)
	del := slices.Delete(slices.Clone(recs), 2, 4)
	checkBreak(t, Verify(all(del), headOf(recs)), &want{seq: 3, reason: ReasonGap, found: 5})
}

func TestVerifyReordered(t *testing.T) {
	const n = 6
	for i := range n - 1 {
		recs := slices.Clone(buildChain(n))
		recs[i], recs[i+1] = recs[i+1], recs[i]
		seq := int64(i + 1)
		checkBreak(t, Verify(all(recs), headOf(buildChain(n))), &want{seq: seq, reason: ReasonReorder, found: seq + 1})

		// Duplicate record i.
		dup := slices.Insert(slices.Clone(buildChain(n)), i+1, buildChain(n)[i])
		checkBreak(t, Verify(all(dup), nil), &want{seq: seq + 1, reason: ReasonReorder, found: seq})

		// Contents swapped but sequence numbers kept in place.
		sw := cloneChain(buildChain(n))
		sw[i], sw[i+1] = sw[i+1], sw[i]
		sw[i].Seq, sw[i+1].Seq = sw[i+1].Seq, sw[i].Seq
		checkBreak(t, Verify(all(sw), nil), &want{seq: seq, reason: ReasonPrevMismatch})
	}
	// A record moved far back is a gap where it went missing, and a record
	// reappearing with a lower number is a reorder.
	recs := buildChain(6)
	moved := []*Record{recs[0], recs[2], recs[3], recs[1]}
	checkBreak(t, Verify(all(moved), nil), &want{seq: 2, reason: ReasonGap, found: 3})
	back := []*Record{recs[0], recs[1], recs[2], recs[0]}
	checkBreak(t, Verify(all(back), nil), &want{seq: 4, reason: ReasonReorder, found: 1})
	zero := cloneRecord(recs[0])
	zero.Seq = 0
	checkBreak(t, Verify(all([]*Record{zero}), nil), &want{seq: 1, reason: ReasonReorder})
	neg := cloneRecord(recs[0])
	neg.Seq = -5
	checkBreak(t, Verify(all([]*Record{neg}), nil), &want{seq: 1, reason: ReasonReorder, found: -5})
}

func TestVerifyHead(t *testing.T) {
	const n = 6
	recs := buildChain(n)
	for k := range n {
		// Tail truncated to k records while the head still says n.
		w := &want{seq: int64(k + 1), reason: ReasonTruncated, empty: k == 0}
		checkBreak(t, Verify(all(recs[:k]), headOf(recs)), w)
		// Head rewound to record k: records past it do not match.
		if k > 0 {
			checkBreak(t, Verify(all(recs), headOf(recs[:k])), &want{seq: int64(k), reason: ReasonHeadMismatch, found: int64(k + 1)})
		}
	}
	bad := *headOf(recs)
	bad.Hash[0] ^= 1
	checkBreak(t, Verify(all(recs), &bad), &want{seq: n, reason: ReasonHeadMismatch})
	// Head pointing at the right seq with another record's hash.
	wrong := Head{Seq: n, Hash: recs[n-2].Hash}
	checkBreak(t, Verify(all(recs), &wrong), &want{seq: n, reason: ReasonHeadMismatch})

	// Empty ledgers.
	checkBreak(t, Verify(all(nil), nil), nil)
	checkBreak(t, Verify(all(nil), &Head{Seq: 0, Hash: Genesis}), nil)
	checkBreak(t, Verify(all(nil), &Head{Seq: 0}), &want{seq: 0, reason: ReasonHeadMismatch})
	checkBreak(t, Verify(all(nil), &Head{Seq: 3, Hash: recs[2].Hash}), &want{seq: 1, reason: ReasonTruncated, empty: true})

	// Checkpoints.
	cp := Head{Seq: 3, Hash: recs[2].Hash}
	checkBreak(t, VerifyFrom(cp, all(nil), &cp), nil)
	checkBreak(t, VerifyFrom(cp, all(recs[3:5]), headOf(recs)), &want{seq: 6, reason: ReasonTruncated})
	checkBreak(t, VerifyFrom(cp, all(nil), headOf(recs)), &want{seq: 4, reason: ReasonTruncated, empty: true})
	// The stored head is behind the checkpoint: the ledger was rolled back.
	checkBreak(t, VerifyFrom(cp, all(recs[3:]), headOf(recs[:2])), &want{seq: 2, reason: ReasonHeadMismatch})
	// Records starting at the wrong place after a checkpoint.
	checkBreak(t, VerifyFrom(cp, all(recs[4:]), nil), &want{seq: 4, reason: ReasonGap, found: 5})
	checkBreak(t, VerifyFrom(cp, all(recs[2:]), nil), &want{seq: 4, reason: ReasonReorder, found: 3})
	// A forked checkpoint (right seq, other hash).
	fork := Head{Seq: 3, Hash: recs[1].Hash}
	checkBreak(t, VerifyFrom(fork, all(recs[3:]), nil), &want{seq: 4, reason: ReasonPrevMismatch})
}

func TestVerifyReadErrors(t *testing.T) {
	recs := buildChain(4)
	io := errors.New("disk on fire")
	failing := func(yield func(*Record, error) bool) {
		for _, r := range recs[:2] {
			if !yield(r, nil) {
				return
			}
		}
		yield(nil, io)
	}
	err := Verify(failing, headOf(recs))
	var be *BreakError
	if !errors.Is(err, io) || errors.As(err, &be) {
		t.Fatalf("got %v, want the read error and no BreakError", err)
	}
	withNil := func(yield func(*Record, error) bool) { yield(recs[0], nil); yield(nil, nil) }
	if err := Verify(withNil, nil); err == nil || errors.As(err, &be) {
		t.Fatalf("nil record: got %v, want a plain error", err)
	}
	// Verify stops pulling records at the first break.
	pulled := 0
	counting := func(yield func(*Record, error) bool) {
		bad := cloneChain(recs)
		bad[1].Actor = "x"
		for _, r := range bad {
			pulled++
			if !yield(r, nil) {
				return
			}
		}
	}
	checkBreak(t, Verify(counting, nil), &want{seq: 2, reason: ReasonHashMismatch})
	if pulled != 2 {
		t.Errorf("Verify read %d records, want 2", pulled)
	}
}

func TestVerifyDoesNotModify(t *testing.T) {
	recs := buildChain(5)
	recs[2].Time = recs[2].Time.In(time.FixedZone("X", 7200))
	before := cloneChain(recs)
	checkBreak(t, Verify(all(recs), headOf(recs)), nil)
	for i := range recs {
		if !recs[i].Time.Equal(before[i].Time) || recs[i].Time.Location() != before[i].Time.Location() || recs[i].Hash != before[i].Hash {
			t.Fatalf("record %d changed", i+1)
		}
	}
}

func TestBreakErrorText(t *testing.T) {
	tests := []struct {
		err  *BreakError
		want string
	}{
		{&BreakError{Seq: 4, Reason: ReasonGap, Found: 5}, "audit: chain breaks at seq 4: record missing (found seq 5)"},
		{&BreakError{Seq: 7, Reason: ReasonHashMismatch}, "audit: chain breaks at seq 7: record does not match its hash"},
		{&BreakError{Seq: 1, Reason: ReasonTruncated, empty: true}, "audit: chain breaks at seq 1: records end before the ledger head"},
		{&BreakError{Seq: 2, Reason: 99}, "audit: chain breaks at seq 2: Reason(99)"},
	}
	for _, tt := range tests {
		if tt.err.Error() != tt.want {
			t.Errorf("Error() = %q, want %q", tt.err.Error(), tt.want)
		}
	}
	for r := ReasonHashMismatch; r <= ReasonTruncated; r++ {
		if got, err := parseReason(r.String()); err != nil || got != r {
			t.Errorf("reason %d: String %q does not parse back", int(r), r.String())
		}
	}
	if Reason(0).String() != "Reason(0)" {
		t.Errorf("zero Reason = %q", Reason(0).String())
	}
}

func parseReason(s string) (Reason, error) {
	for r := ReasonHashMismatch; r <= ReasonTruncated; r++ {
		if r.String() == s {
			return r, nil
		}
	}
	return 0, fmt.Errorf("unknown reason %q", s)
}
