package api

import (
	"net/http/httptest"
	"testing"
)

// FuzzParseRange: any Range header gives either no range or one whose
// bytes lie inside the content; never a panic.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-0", "bytes=5-", "bytes=-10", "bytes=1-2,4-5", "bytes=9-3", "bytes=-", "bytes=99999999999999999999-", "items=0-1", " bytes= 3-4"} {
		f.Add(s, int64(100))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			return
		}
		r := httptest.NewRequest("GET", "/fhir/Binary/x", nil)
		r.Header.Set("Range", h)
		off, n, partial, err := requestedRange(r, size)
		if err != nil {
			return
		}
		if off < 0 || n < 0 || off+n > size || !partial && (off != 0 || n != size) {
			t.Fatalf("%q on %d bytes: off %d n %d partial %v", h, size, off, n, partial)
		}
	})
}

func TestRequestedRange(t *testing.T) {
	for _, c := range []struct {
		h           string
		off, n      int64
		partial     bool
		unsatisfied bool
	}{
		{"", 0, 100, false, false},
		{"bytes=0-9", 0, 10, true, false},
		{"bytes=90-", 90, 10, true, false},
		{"bytes=90-500", 90, 10, true, false},
		{"bytes=-5", 95, 5, true, false},
		{"bytes=-500", 0, 100, true, false},
		{"bytes=100-", 0, 0, false, true},
		{"bytes=-0", 0, 0, false, true},
		{"bytes=0-1,5-6", 0, 100, false, false}, // several ranges: ignored
		{"bytes=5-1", 0, 100, false, false},     // invalid: ignored
	} {
		r := httptest.NewRequest("GET", "/fhir/Binary/x", nil)
		r.Header.Set("Range", c.h)
		off, n, partial, err := requestedRange(r, 100)
		if (err != nil) != c.unsatisfied || err == nil && (off != c.off || n != c.n || partial != c.partial) {
			t.Errorf("%q: %d %d %v %v", c.h, off, n, partial, err)
		}
	}
}
