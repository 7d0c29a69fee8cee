package audit

import (
	"errors"
	"fmt"
	"iter"
	"strconv"
)

// Head points at the last record of a ledger: the stored head row, or a
// trusted checkpoint. The head of an empty ledger is GenesisHead().
type Head struct {
	Seq  int64
	Hash [32]byte
}

// GenesisHead returns the head of an empty ledger: sequence 0 and Genesis.
func GenesisHead() Head { return Head{Seq: 0, Hash: Genesis} }

// Reason says how a chain is broken.
type Reason int

// Reasons for a BreakError. For each, BreakError.Seq is as noted.
const (
	// ReasonHashMismatch: the record at Seq does not hash to its stored
	// Hash; one of its fields (or the Hash) was changed.
	ReasonHashMismatch Reason = iota + 1
	// ReasonPrevMismatch: the record at Seq does not link to the record
	// before it (or to the checkpoint or Genesis); a record before it was
	// replaced, removed and renumbered, or rehashed.
	ReasonPrevMismatch
	// ReasonGap: sequence number Seq is missing; the next record read has a
	// higher number (BreakError.Found).
	ReasonGap
	// ReasonReorder: where Seq was expected, a record with a lower or
	// repeated number (Found) appeared, or Seq itself appeared only after a
	// later record: records are out of order or duplicated.
	ReasonReorder
	// ReasonHeadMismatch: the stored head at Seq does not match the chain:
	// the record at Seq has another hash, records continue past the head
	// (Found is the first of them), or the head is behind the checkpoint.
	ReasonHeadMismatch
	// ReasonTruncated: the records end before the head; Seq is the first
	// sequence number the head says exists but was not read.
	ReasonTruncated
)

var reasonNames = [...]string{
	ReasonHashMismatch: "hash-mismatch",
	ReasonPrevMismatch: "prev-mismatch",
	ReasonGap:          "gap",
	ReasonReorder:      "reorder",
	ReasonHeadMismatch: "head-mismatch",
	ReasonTruncated:    "truncated",
}

// String returns a stable token for the reason, such as "hash-mismatch",
// usable in reports and test vectors.
func (r Reason) String() string {
	if r > 0 && int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "Reason(" + strconv.Itoa(int(r)) + ")"
}

var reasonText = [...]string{
	ReasonHashMismatch: "record does not match its hash",
	ReasonPrevMismatch: "record does not link to the previous record",
	ReasonGap:          "record missing",
	ReasonReorder:      "records out of order or duplicated",
	ReasonHeadMismatch: "ledger head does not match the chain",
	ReasonTruncated:    "records end before the ledger head",
}

// ErrEmpty is matched (errors.Is) by the BreakError Verify returns when no
// record at all was read but the head says records exist.
var ErrEmpty = errors.New("audit: ledger is empty but its head is not")

// BreakError is the evidence of tampering that Verify reports. Every record
// numbered below Seq was verified; the chain breaks at Seq.
type BreakError struct {
	Seq    int64
	Reason Reason
	// Found is the sequence number actually read, for ReasonGap,
	// ReasonReorder and records past the head; otherwise 0.
	Found int64

	empty bool
}

func (e *BreakError) Error() string {
	s := "audit: chain breaks at seq " + strconv.FormatInt(e.Seq, 10) + ": "
	if e.Reason > 0 && int(e.Reason) < len(reasonText) {
		s += reasonText[e.Reason]
	} else {
		s += e.Reason.String()
	}
	if e.Found != 0 {
		s += " (found seq " + strconv.FormatInt(e.Found, 10) + ")"
	}
	return s
}

// Unwrap returns ErrEmpty when the ledger had no records at all.
func (e *BreakError) Unwrap() error {
	if e.empty {
		return ErrEmpty
	}
	return nil
}

// Verify checks a whole ledger: records must come in sequence order starting
// at 1 and linking to Genesis. See VerifyFrom.
func Verify(records iter.Seq2[*Record, error], head *Head) error {
	return VerifyFrom(GenesisHead(), records, head)
}

// VerifyFrom checks the records that follow a trusted checkpoint (a head
// verified earlier, or GenesisHead for the whole ledger). records must yield
// them in sequence order starting at checkpoint.Seq+1. For each record it
// checks that the sequence number is the next one, that PrevHash is the
// previous record's Hash (the checkpoint's for the first), and that Hash
// recomputes. If head is not nil it is the stored head pointer, and the last
// record must be exactly the head: this detects a deleted tail, which the
// links alone cannot. Read records and head from one consistent snapshot;
// records written after the head was read count as a mismatch.
//
// VerifyFrom returns nil, a *BreakError naming the first bad sequence
// number, or an error from records (wrapped), which is not evidence of
// tampering. It never modifies the records.
func VerifyFrom(checkpoint Head, records iter.Seq2[*Record, error], head *Head) error {
	if head != nil && head.Seq < checkpoint.Seq {
		return &BreakError{Seq: head.Seq, Reason: ReasonHeadMismatch}
	}
	var h Hasher
	last := checkpoint
	seen := false
	// A forward jump is held back for one record: if the missing number
	// comes next, the records were reordered rather than deleted.
	var gap *BreakError
	for rec, err := range records {
		if err != nil {
			return fmt.Errorf("audit: verify: reading the record after seq %d: %w", last.Seq, err)
		}
		if rec == nil {
			return fmt.Errorf("audit: verify: nil record after seq %d", last.Seq)
		}
		if gap != nil {
			if rec.Seq == gap.Seq {
				gap.Reason = ReasonReorder
			}
			return gap
		}
		want := last.Seq + 1
		switch {
		case rec.Seq < want:
			return &BreakError{Seq: want, Reason: ReasonReorder, Found: rec.Seq}
		case rec.Seq > want:
			gap = &BreakError{Seq: want, Reason: ReasonGap, Found: rec.Seq}
			continue
		}
		if head != nil && rec.Seq > head.Seq {
			return &BreakError{Seq: head.Seq, Reason: ReasonHeadMismatch, Found: rec.Seq}
		}
		if rec.PrevHash != last.Hash {
			return &BreakError{Seq: rec.Seq, Reason: ReasonPrevMismatch}
		}
		if Link(rec.PrevHash, h.EntryHash(rec)) != rec.Hash {
			return &BreakError{Seq: rec.Seq, Reason: ReasonHashMismatch}
		}
		last = Head{Seq: rec.Seq, Hash: rec.Hash}
		seen = true
	}
	if gap != nil {
		return gap
	}
	if head == nil {
		return nil
	}
	if head.Seq > last.Seq {
		return &BreakError{Seq: last.Seq + 1, Reason: ReasonTruncated, empty: !seen}
	}
	if head.Hash != last.Hash {
		return &BreakError{Seq: head.Seq, Reason: ReasonHeadMismatch}
	}
	return nil
}
