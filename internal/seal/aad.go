package seal

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// aadDomain starts every resource AAD, so it can never equal associated
// data built for another purpose.
const aadDomain = "ward/resource/v1"

// AAD returns the associated data that binds a sealed resource body to its
// row: tenant, resource type, id and version. A ciphertext copied to any
// other row fails to open.
//
// Layout: "ward/resource/v1" | uvarint len | tenant | uvarint len |
// resourceType | uvarint len | id | version (8 bytes, big-endian). Every
// variable field is length-prefixed, so distinct tuples never encode alike
// however the strings are chosen.
func AAD(tenant, resourceType, id string, version int64) []byte {
	return AppendAAD(make([]byte, 0, aadLen(tenant, resourceType, id)), tenant, resourceType, id, version)
}

// AppendAAD appends the AAD of the tuple to dst and returns the extended
// slice; with a reused dst it does not allocate.
func AppendAAD(dst []byte, tenant, resourceType, id string, version int64) []byte {
	dst = append(dst, aadDomain...)
	dst = appendString(dst, tenant)
	dst = appendString(dst, resourceType)
	dst = appendString(dst, id)
	return binary.BigEndian.AppendUint64(dst, uint64(version))
}

// aadLen returns len(AAD(tenant, resourceType, id, version)) for any version.
func aadLen(tenant, resourceType, id string) int {
	return len(aadDomain) + uvarintLen(len(tenant)) + len(tenant) +
		uvarintLen(len(resourceType)) + len(resourceType) +
		uvarintLen(len(id)) + len(id) + 8
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func uvarintLen(n int) int {
	l := 1
	for x := uint64(n); x >= 0x80; x >>= 7 {
		l++
	}
	return l
}

const deriveInfoPrefix = "ward/derive/v1/"

// DeriveKey derives a 32-byte subkey of a data key for one purpose, such as
// the HMAC key of a blind search index, with HKDF-SHA256 (RFC 5869, no salt,
// info = "ward/derive/v1/" + purpose). Different purposes give independent
// keys, so an index key never equals the key that seals bodies. dek must be
// KeySize bytes and purpose must not be empty.
func DeriveKey(dek []byte, purpose string) ([]byte, error) {
	if len(dek) != KeySize {
		return nil, fmt.Errorf("%w: data key must be %d bytes, got %d", ErrInvalidKey, KeySize, len(dek))
	}
	if purpose == "" {
		return nil, errors.New("seal: derive key: empty purpose")
	}
	k, err := hkdf.Key(sha256.New, dek, nil, deriveInfoPrefix+purpose, KeySize)
	if err != nil {
		return nil, fmt.Errorf("seal: derive key: %w", err)
	}
	return k, nil
}
