package audit

import (
	"crypto/sha256"
	"slices"
	"time"
)

// Hash prefixes (RFC 6962 style): an entry hash and a link hash are computed
// over different first bytes, so neither can stand in for the other.
const (
	entryPrefix = 0x00
	linkPrefix  = 0x01
)

// Genesis is the PrevHash of the first record:
// SHA-256("ward audit ledger genesis v1"). Treat it as a constant.
var Genesis = sha256.Sum256([]byte("ward audit ledger genesis v1"))

// EntryHash returns SHA-256(0x00 || canonical(rec)).
func EntryHash(rec *Record) [32]byte {
	// A stack buffer covers typical records without allocating.
	var buf [512]byte
	return sha256.Sum256(rec.AppendCanonical(append(buf[:0], entryPrefix)))
}

// Link returns SHA-256(0x01 || prev || entry), the hash that chains a record
// with entry hash entry onto a record with hash prev.
func Link(prev, entry [32]byte) [32]byte {
	var buf [1 + 32 + 32]byte
	buf[0] = linkPrefix
	copy(buf[1:33], prev[:])
	copy(buf[33:], entry[:])
	return sha256.Sum256(buf[:])
}

// Chain appends rec to a chain whose last hash is prev: it normalizes
// rec.Time to UTC microseconds, sets rec.PrevHash to prev and rec.Hash to
// Link(prev, EntryHash(rec)), and returns rec.Hash. rec.Seq must already be
// the previous record's Seq plus one.
func Chain(prev [32]byte, rec *Record) [32]byte {
	normalize(rec)
	rec.PrevHash = prev
	rec.Hash = Link(prev, EntryHash(rec))
	return rec.Hash
}

func normalize(rec *Record) {
	rec.Time = rec.Time.UTC().Truncate(time.Microsecond)
	if len(rec.Patients) > 1 {
		slices.Sort(rec.Patients)
		rec.Patients = slices.Compact(rec.Patients)
	}
}

// Hasher hashes many records in a row, reusing one scratch buffer, for the
// batch writer and for Verify. The zero Hasher is ready to use; a Hasher must
// not be used by two goroutines at once.
type Hasher struct {
	buf []byte
}

// EntryHash is the package-level EntryHash without allocating once the
// buffer has grown to the largest record seen.
func (h *Hasher) EntryHash(rec *Record) [32]byte {
	if h.buf == nil {
		h.buf = make([]byte, 0, 1024)
	}
	h.buf = rec.AppendCanonical(append(h.buf[:0], entryPrefix))
	sum := sha256.Sum256(h.buf)
	if cap(h.buf) > 64<<10 {
		h.buf = nil // do not pin one huge record's buffer
	}
	return sum
}

// Chain is the package-level Chain using h's buffer.
func (h *Hasher) Chain(prev [32]byte, rec *Record) [32]byte {
	normalize(rec)
	rec.PrevHash = prev
	rec.Hash = Link(prev, h.EntryHash(rec))
	return rec.Hash
}
