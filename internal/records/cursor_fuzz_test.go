package records

import (
	"reflect"
	"testing"
)

// FuzzDecodePageCursor: a _cursor is untrusted input. Decoding never
// panics; what decodes re-encodes to a cursor that decodes the same
// (forward and backward, the last page's included), and a backward
// cursor never reads as a forward one.
func FuzzDecodePageCursor(f *testing.F) {
	for _, c := range []Cursor{
		{Keys: []any{int64(7)}},
		{Keys: []any{"2024", 1.5, int64(9)}},
		{Keys: []any{int64(3)}, Before: true},
		{Before: true},
		{Keys: []any{int64(4)}, Total: new(int64(12)), TotalMAC: -77},
		{Before: true, Total: new(int64(0)), TotalMAC: 5},
	} {
		s, err := EncodePageCursor(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s)
	}
	f.Add("W1siYiIsIiJdLFsiaSIsIngiXV0") // [["b",""],["i","x"]]
	f.Add("W1siYiIsIngiXV0")             // [["b","x"]]
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := DecodePageCursor(s)
		if err != nil {
			return
		}
		if c.Keys == nil && !c.Before {
			t.Fatalf("%q decodes as the first page", s)
		}
		again, err := EncodePageCursor(c)
		if err != nil {
			t.Fatalf("%q: decoded %v does not encode: %v", s, c, err)
		}
		back, err := DecodePageCursor(again)
		if err != nil || !reflect.DeepEqual(back, c) {
			t.Fatalf("%q: %v re-encodes as %q, which decodes as %v, %v", s, c, again, back, err)
		}
	})
}
