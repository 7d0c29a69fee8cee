package search

import (
	"encoding/binary"

	"github.com/wardhealth/ward/internal/seal"
)

// BlindKeyer is the Keyer of a tenant: seal's blind index (HMAC-SHA-256
// under the tenant's index key) truncated to 64 bits. Truncation keeps
// index rows small; two different values of one tenant collide with
// probability about n²/2⁶⁵, negligible for any one tenant's data.
type BlindKeyer struct{ B *seal.Blinder }

// Key implements Keyer.
func (k BlindKeyer) Key(kind, v string) int64 {
	b := k.B.Index(kind, v)
	return int64(binary.BigEndian.Uint64(b[:8]))
}
