package audit

import (
	"encoding/binary"
	"math"
)

// CanonicalVersion is the first byte of the canonical encoding of a
// record without patients; CanonicalVersionPatients that of a record with.
const (
	CanonicalVersion         = 1
	CanonicalVersionPatients = 2
)

// AppendCanonical appends the canonical encoding of r to dst and returns the
// extended slice. It covers every field except PrevHash and Hash, which the
// chain adds. The layout (format version 1) is fixed forever:
//
//	version       1 byte, 0x01
//	Seq           int64, 8 bytes big-endian (two's complement)
//	Time          int64 Unix microseconds, 8 bytes big-endian
//	Tenant        string
//	RequestID     string
//	Actor         string
//	Role          string
//	Action        string
//	ResourceType  string
//	Entities      uint32 count, 4 bytes big-endian, then each as a string
//	Outcome       int64, 8 bytes big-endian
//	Detail        string
//	Emergency     1 byte, 0x00 or 0x01
//	Purpose       string
//
// where a string is its byte length as uint32, 4 bytes big-endian, followed
// by its bytes. Every variable part is length-prefixed, so no choice of
// field values can make two different records encode alike. A nil and an
// empty Entities encode the same; sub-microsecond time is dropped, and so
// are times whose Unix microseconds overflow int64 (beyond ±292,000 years).
//
// Format version 2 is version 1 with the first byte 0x02 and, after
// Purpose, the Patients list encoded as Entities is, then Address as a
// string. It is used exactly when Patients or Address is not empty, so
// every version-1 record keeps its hash.
//
// AppendCanonical panics if a string or the entity list is longer than
// 2^32-1, which no audit record comes near.
func (r *Record) AppendCanonical(dst []byte) []byte {
	v2 := r.v2()
	if v2 {
		dst = append(dst, CanonicalVersionPatients)
	} else {
		dst = append(dst, CanonicalVersion)
	}
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.Seq))
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.Time.UnixMicro()))
	dst = appendString(dst, r.Tenant)
	dst = appendString(dst, r.RequestID)
	dst = appendString(dst, r.Actor)
	dst = appendString(dst, r.Role)
	dst = appendString(dst, r.Action)
	dst = appendString(dst, r.ResourceType)
	dst = appendLen(dst, len(r.Entities))
	for _, e := range r.Entities {
		dst = appendString(dst, e)
	}
	dst = binary.BigEndian.AppendUint64(dst, uint64(int64(r.Outcome)))
	dst = appendString(dst, r.Detail)
	if r.Emergency {
		dst = append(dst, 1)
	} else {
		dst = append(dst, 0)
	}
	dst = appendString(dst, r.Purpose)
	if v2 {
		dst = appendLen(dst, len(r.Patients))
		for _, p := range r.Patients {
			dst = appendString(dst, p)
		}
		dst = appendString(dst, r.Address)
	}
	return dst
}

// v2 says r is encoded in format version 2.
func (r *Record) v2() bool { return len(r.Patients) > 0 || r.Address != "" }

// canonicalLen returns len(r.AppendCanonical(nil)).
func (r *Record) canonicalLen() int {
	n := 1 + 8 + 8 + 6*4 + len(r.Tenant) + len(r.RequestID) + len(r.Actor) +
		len(r.Role) + len(r.Action) + len(r.ResourceType) +
		4 + 8 + 4 + len(r.Detail) + 1 + 4 + len(r.Purpose)
	for _, e := range r.Entities {
		n += 4 + len(e)
	}
	if r.v2() {
		n += 4 + 4 + len(r.Address)
		for _, p := range r.Patients {
			n += 4 + len(p)
		}
	}
	return n
}

func appendString(dst []byte, s string) []byte {
	dst = appendLen(dst, len(s))
	return append(dst, s...)
}

func appendLen(dst []byte, n int) []byte {
	if uint64(n) > math.MaxUint32 {
		panic("audit: record field longer than 2^32-1")
	}
	return binary.BigEndian.AppendUint32(dst, uint32(n))
}
