package audit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// decodeCanonical parses a version 1 canonical encoding strictly. It exists
// only to prove the encoding injective: decode(encode(r)) == r for every r.
func decodeCanonical(b []byte) (*Record, error) {
	errShort := errors.New("short")
	u64 := func() (uint64, error) {
		if len(b) < 8 {
			return 0, errShort
		}
		v := binary.BigEndian.Uint64(b)
		b = b[8:]
		return v, nil
	}
	u32 := func() (int, error) {
		if len(b) < 4 {
			return 0, errShort
		}
		v := binary.BigEndian.Uint32(b)
		b = b[4:]
		return int(v), nil
	}
	str := func() (string, error) {
		n, err := u32()
		if err != nil || len(b) < n {
			return "", errShort
		}
		s := string(b[:n])
		b = b[n:]
		return s, nil
	}
	if len(b) < 1 || b[0] != CanonicalVersion {
		return nil, errors.New("bad version")
	}
	b = b[1:]
	var r Record
	var err error
	seq, err := u64()
	if err != nil {
		return nil, err
	}
	r.Seq = int64(seq)
	us, err := u64()
	if err != nil {
		return nil, err
	}
	r.Time = time.UnixMicro(int64(us)).UTC()
	for _, p := range []*string{&r.Tenant, &r.RequestID, &r.Actor, &r.Role, &r.Action, &r.ResourceType} {
		if *p, err = str(); err != nil {
			return nil, err
		}
	}
	n, err := u32()
	if err != nil {
		return nil, err
	}
	for range n {
		e, err := str()
		if err != nil {
			return nil, err
		}
		r.Entities = append(r.Entities, e)
	}
	o, err := u64()
	if err != nil {
		return nil, err
	}
	r.Outcome = Outcome(int64(o))
	if r.Detail, err = str(); err != nil {
		return nil, err
	}
	if len(b) < 1 || b[0] > 1 {
		return nil, errors.New("bad bool")
	}
	r.Emergency = b[0] == 1
	b = b[1:]
	if r.Purpose, err = str(); err != nil {
		return nil, err
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%d trailing bytes", len(b))
	}
	return &r, nil
}

// sameFields compares the hashed fields of two records, with the
// equivalences the encoding documents (time to the microsecond, nil and
// empty entity lists).
func sameFields(a, b *Record) bool {
	return a.Seq == b.Seq && a.Time.UnixMicro() == b.Time.UnixMicro() &&
		a.Tenant == b.Tenant && a.RequestID == b.RequestID && a.Actor == b.Actor &&
		a.Role == b.Role && a.Action == b.Action && a.ResourceType == b.ResourceType &&
		slices.Equal(a.Entities, b.Entities) && a.Outcome == b.Outcome &&
		a.Detail == b.Detail && a.Emergency == b.Emergency && a.Purpose == b.Purpose
}

// splitEntities turns a fuzz string into a list: "" and "x" are empty,
// "|" is one empty reference, "|a|b" is [a b].
func splitEntities(s string) []string { return strings.Split(s, "|")[1:] }

// stringFields returns pointers to the string fields in encoding order.
func stringFields(r *Record) []*string {
	return []*string{&r.Tenant, &r.RequestID, &r.Actor, &r.Role, &r.Action, &r.ResourceType, &r.Detail, &r.Purpose}
}

// deriveB makes a second record from a: op selects a field to replace with
// s or n, or (op >= 128) moves the last n%8 bytes of one string field to the
// front of the next, the classic attack on unprefixed concatenation.
func deriveB(a *Record, op uint8, s string, n int64) *Record {
	b := cloneRecord(a)
	if op >= 128 {
		f := stringFields(b)
		i := int(op) % (len(f) - 1)
		k := int(uint64(n) % 8)
		if k > len(*f[i]) {
			k = len(*f[i])
		}
		cut := len(*f[i]) - k
		*f[i+1] = (*f[i])[cut:] + *f[i+1]
		*f[i] = (*f[i])[:cut]
		return b
	}
	switch op % 13 {
	case 0:
		b.Seq = n
	case 1:
		b.Time = time.UnixMicro(n)
	case 2:
		b.Outcome = Outcome(n)
	case 3:
		b.Emergency = !b.Emergency
	case 4:
		b.Entities = splitEntities(s)
	default:
		*stringFields(b)[op%13-5] = s
	}
	return b
}

// FuzzCanonical checks that the canonical encoding is injective: it decodes
// back to the same fields, and two records share an encoding (and an entry
// hash) only if their fields are equal.
func FuzzCanonical(f *testing.F) {
	// seq, µs, outcome, emergency, tenant, request, actor, role, action,
	// type, entities ("|"-separated after a leading "|"), detail, purpose,
	// then how to derive the second record: op, s, n.
	f.Add(int64(1), int64(1736000000000000), int64(0), false, "acme", "req-1", "user/1", "physician", "read", "Patient", "|Patient/p1", "", "TREAT", uint8(5), "acm", int64(0))
	f.Add(int64(1), int64(0), int64(4), true, "ab", "c", "", "", "", "", "", "", "", uint8(128), "", int64(1))                                        // shift "b" into the next field
	f.Add(int64(2), int64(-1), int64(12), false, "t", "\x00\x00\x00\x01x", "", "", "", "", "|a|b", "", "", uint8(4), "|a\x00\x00\x00\x01b", int64(0)) // length-like bytes
	f.Add(int64(3), int64(5), int64(8), false, "", "", "", "", "", "", "|", "", "", uint8(4), "", int64(0))                                           // one empty entity vs none
	f.Add(int64(4), int64(5), int64(0), false, "", "", "", "", "", "", "|a|b", "", "", uint8(4), "|a", int64(0))                                      // entity boundary
	f.Add(int64(-1), int64(9), int64(0), true, "x", "y", "z", "r", "a", "T", "|e", "d", "p", uint8(3), "", int64(0))                                  // emergency flag only
	f.Fuzz(func(t *testing.T, seq, us, outcome int64, emergency bool, tenant, req, actor, role, action, typ, ents, detail, purpose string, op uint8, s string, n int64) {
		a := &Record{Seq: seq, Time: time.UnixMicro(us), Tenant: tenant, RequestID: req, Actor: actor, Role: role,
			Action: action, ResourceType: typ, Entities: splitEntities(ents), Outcome: Outcome(outcome),
			Detail: detail, Emergency: emergency, Purpose: purpose}
		b := deriveB(a, op, s, n)
		encA, encB := a.AppendCanonical(nil), b.AppendCanonical(nil)
		for _, c := range []struct {
			r   *Record
			enc []byte
		}{{a, encA}, {b, encB}} {
			if len(c.enc) != c.r.canonicalLen() {
				t.Fatalf("canonicalLen %d, encoding %d bytes", c.r.canonicalLen(), len(c.enc))
			}
			back, err := decodeCanonical(c.enc)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !sameFields(back, c.r) {
				t.Fatalf("round trip changed the record:\n%+v\n%+v", c.r, back)
			}
		}
		same := sameFields(a, b)
		if (string(encA) == string(encB)) != same {
			t.Fatalf("fields equal = %v but encodings equal = %v:\n%+v\n%+v", same, !same, a, b)
		}
		if (EntryHash(a) == EntryHash(b)) != same {
			t.Fatalf("fields equal = %v but entry hashes equal = %v", same, !same)
		}
	})
}

// TestWriteCanonicalSeeds rewrites testdata/fuzz/FuzzCanonical with -update.
// Corpus files cannot hold comments; each name says what the seed probes.
func TestWriteCanonicalSeeds(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite testdata/fuzz")
	}
	type seed struct {
		seq, us, outcome                                             int64
		emergency                                                    bool
		tenant, req, actor, role, action, typ, ents, detail, purpose string
		op                                                           uint8
		s                                                            string
		n                                                            int64
	}
	seeds := map[string]seed{
		"typical-read-tenant-changed":   {1, 1736000000000000, 0, false, "acme", "req-1", "user/1", "physician", "read", "Patient", "|Patient/p1/_history/2", "", "TREAT", 5, "acm", 0},
		"equal-records":                 {7, 1736000000000000, 0, false, "acme", "req-1", "user/1", "nurse", "search-type", "Observation", "|Observation/o1|Observation/o2", "", "", 5, "acme", 0},
		"boundary-shift-tenant-request": {1, 0, 4, true, "ab", "c", "", "", "", "", "", "", "", 128, "", 1},
		"boundary-shift-detail-purpose": {1, 0, 4, false, "", "", "", "", "", "", "", "denied", "x", 128 + 6, "", 3},
		"boundary-shift-everything":     {1, 0, 0, false, "aaaaaaaa", "bbbbbbbb", "cccccccc", "dddddddd", "eeeeeeee", "ffffffff", "", "gggggggg", "hhhhhhhh", 128 + 3, "", 7},
		"length-like-bytes-in-entity":   {2, -1, 12, false, "t", "\x00\x00\x00\x01x", "", "", "", "", "|a|b", "", "", 4, "|a\x00\x00\x00\x01b", 0},
		"one-empty-entity-vs-none":      {3, 5, 8, false, "", "", "", "", "", "", "|", "", "", 4, "", 0},
		"entity-split-vs-joined":        {4, 5, 0, false, "", "", "", "", "", "", "|a|b", "", "", 4, "|ab", 0},
		"emergency-flag-only":           {-1, 9, 0, true, "x", "y", "z", "r", "a", "T", "|e", "d", "p", 3, "", 0},
		"seq-negative-vs-positive":      {-1, 0, 0, false, "t", "", "", "", "", "", "", "", "", 0, "", 1},
		"time-min-int64":                {1, -9223372036854775808, 0, false, "t", "", "", "", "", "", "", "", "", 1, "", 9223372036854775807},
		"outcome-unknown-code":          {1, 0, 4, false, "t", "", "", "", "", "", "", "", "", 2, "", -4},
		"invalid-utf8-actor":            {1, 0, 0, false, "t", "r", "\xff\xfe", "", "", "", "", "", "", 7, "\xff", 0},
		"purpose-vs-trailing-detail":    {1, 0, 0, false, "", "", "", "", "", "", "", "\x00\x00\x00\x00", "", 12, "\x00", 0},
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzCanonical")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, s := range seeds {
		var b strings.Builder
		b.WriteString("go test fuzz v1\n")
		fmt.Fprintf(&b, "int64(%d)\nint64(%d)\nint64(%d)\nbool(%v)\n", s.seq, s.us, s.outcome, s.emergency)
		for _, v := range []string{s.tenant, s.req, s.actor, s.role, s.action, s.typ, s.ents, s.detail, s.purpose} {
			fmt.Fprintf(&b, "string(%q)\n", v)
		}
		fmt.Fprintf(&b, "uint8(%d)\nstring(%q)\nint64(%d)\n", s.op, s.s, s.n)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
