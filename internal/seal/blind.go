package seal

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"sync"
	"unicode/utf8"
)

// BlindSize is the length of a blind index value: 128 bits of HMAC-SHA256,
// enough that unrelated values never collide in practice, short enough to
// keep index rows small.
const BlindSize = 16

// Blind is one blind index value.
type Blind [BlindSize]byte

// blindDomain separates blind indexes from every other use of the key.
const blindDomain = "ward/blind/v1"

// Blinder computes blind indexes: a keyed, deterministic hash of a search
// parameter's normalized value, so that equality (and, over prefixes,
// starts-with) can be answered without storing the value. The same value
// under the same key always gives the same Blind; without the key, a Blind
// reveals nothing but equality with other Blinds of the same key. Callers
// normalize values first (case, accents, punctuation: the search layer's
// job). Safe for concurrent use.
type Blinder struct {
	pool sync.Pool
}

// NewBlinder returns a Blinder over an index key, typically
// DeriveKey(tenantDEK, "blind-index").
func NewBlinder(key []byte) (*Blinder, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("%w: blind index key must be %d bytes, got %d", ErrInvalidKey, KeySize, len(key))
	}
	k := append([]byte(nil), key...)
	b := &Blinder{}
	b.pool.New = func() any { return hmac.New(sha256.New, k) }
	return b, nil
}

// Index returns the blind index of value for one search parameter. The
// parameter name is bound in, so equal values of different parameters (a
// family name equal to a city) do not share a Blind.
func (b *Blinder) Index(param, value string) Blind {
	h := b.pool.Get().(hash.Hash)
	defer b.pool.Put(h)
	return b.sum(h, param, value)
}

func (b *Blinder) sum(h hash.Hash, param, value string) Blind {
	h.Reset()
	var n [binary.MaxVarintLen64]byte
	h.Write([]byte(blindDomain))
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(param)))])
	h.Write([]byte(param))
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(value)))])
	h.Write([]byte(value))
	var out Blind
	var sum [sha256.Size]byte
	copy(out[:], h.Sum(sum[:0]))
	return out
}

// Prefixes appends to dst the blind indexes of every prefix of value from
// minRunes to maxRunes characters (whole characters, never split UTF-8),
// plus the whole value if it is longer than maxRunes. A starts-with search
// for a prefix p then matches Index(param, p) against these rows, for p of
// minRunes..maxRunes characters. Prefixes shorter than minRunes are not
// indexed: a one-letter prefix would be nearly as revealing as the letter.
func (b *Blinder) Prefixes(dst []Blind, param, value string, minRunes, maxRunes int) []Blind {
	h := b.pool.Get().(hash.Hash)
	defer b.pool.Put(h)
	runes := 0
	for i := range value {
		if runes >= minRunes && runes <= maxRunes {
			dst = append(dst, b.sum(h, param, value[:i]))
		}
		runes++
	}
	if runes >= minRunes {
		dst = append(dst, b.sum(h, param, value))
	}
	return dst
}

// ValidPrefix reports whether a query prefix can be answered from rows
// written by Prefixes with the same bounds.
func ValidPrefix(prefix string, minRunes, maxRunes int) bool {
	n := utf8.RuneCountInString(prefix)
	return n >= minRunes && n <= maxRunes
}
