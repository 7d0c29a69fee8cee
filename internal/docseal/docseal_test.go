package docseal

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

var testKey = bytes.Repeat([]byte{7}, 32)

func sealAll(t testing.TB, plain []byte, aad []byte, want Expect) ([]byte, Sum, error) {
	t.Helper()
	s, err := NewSealing(bytes.NewReader(plain), testKey, aad, want, SegmentSize)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ct, rerr := io.ReadAll(s)
	sum, serr := s.Sum()
	if rerr != nil {
		return nil, sum, rerr
	}
	return ct, sum, serr
}

func content(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(b)
	return b
}

func openAll(ct, aad []byte, off int64) ([]byte, error) {
	r, err := Open(bytes.NewReader(ct), testKey, aad, off, SegmentSize)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func TestRoundTrip(t *testing.T) {
	aad := AAD("t1", "b1", 1)
	for _, n := range []int{0, 1, SegmentSize - 100, SegmentSize, 3*SegmentSize + 17} {
		plain := content(n)
		ct, sum, err := sealAll(t, plain, aad, Expect{Size: -1})
		if err != nil {
			t.Fatalf("%d: %v", n, err)
		}
		if sum.Size != int64(n) || sum.SHA256 != sha256.Sum256(plain) || sum.SHA1 != sha1.Sum(plain) {
			t.Fatalf("%d: wrong sum", n)
		}
		if n >= 16 && bytes.Contains(ct, plain[:min(n, 64)]) {
			t.Fatalf("%d: plaintext in the sealed stream", n)
		}
		for _, off := range []int64{0, 1, SegmentSize - 40, SegmentSize - 24, int64(n) / 2, int64(n)} {
			if off > int64(n) {
				continue
			}
			got, err := openAll(ct, aad, off)
			if err != nil || !bytes.Equal(got, plain[off:]) {
				t.Fatalf("%d from %d: %v, equal=%v", n, off, err, bytes.Equal(got, plain[off:]))
			}
		}
	}
}

// TestTamper: a changed byte, two segments swapped, a cut, another
// object's stream: each fails, and no plaintext of the bad segment or
// past it is returned.
func TestTamper(t *testing.T) {
	aad := AAD("t1", "b1", 1)
	plain := content(4*SegmentSize + 100)
	ct, _, err := sealAll(t, plain, aad, Expect{Size: -1})
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := sealAll(t, plain, AAD("t1", "b2", 1), Expect{Size: -1})
	hdr := len(ct) - (len(plain) + 5*Overhead) // the header
	seg := func(i int) (int, int) {            // byte range of ciphertext segment i
		start := i * SegmentSize
		return start, min(start+SegmentSize, len(ct))
	}
	flip := bytes.Clone(ct)
	s2, _ := seg(2)
	flip[s2+10] ^= 1
	reorder := bytes.Clone(ct)
	a0, a1 := seg(1)
	b0, b1 := seg(2)
	copy(reorder[a0:a1], ct[b0:b1])
	copy(reorder[b0:b1], ct[a0:a1])
	_, e3 := seg(3)
	cases := map[string]struct {
		ct       []byte
		aad      []byte
		goodUpTo int // plaintext bytes that may come out before the failure
	}{
		"tampered segment": {flip, aad, 2*SegmentSize - hdr - 2*Overhead},
		"reordered":        {reorder, aad, SegmentSize - hdr - Overhead},
		"truncated":        {ct[:e3], aad, 4*SegmentSize - hdr - 4*Overhead},
		"truncated header": {ct[:hdr-1], aad, 0},
		"other object":     {other, aad, 0},
		"other version":    {ct, AAD("t1", "b1", 2), 0},
		"other tenant":     {ct, AAD("t2", "b1", 1), 0},
	}
	for name, c := range cases {
		r, err := Open(bytes.NewReader(c.ct), testKey, c.aad, 0, SegmentSize)
		var got []byte
		if err == nil {
			got, err = io.ReadAll(r)
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: error %v, want ErrCorrupt", name, err)
		}
		if len(got) > c.goodUpTo || !bytes.Equal(got, plain[:len(got)]) {
			t.Errorf("%s: %d bytes returned, at most %d good ones allowed", name, len(got), c.goodUpTo)
		}
	}
}

func TestExpect(t *testing.T) {
	plain := content(5000)
	good := sha1.Sum(plain)
	aad := AAD("t", "b", 1)
	for name, c := range map[string]struct {
		want Expect
		err  error
	}{
		"good":      {Expect{Size: 5000, SHA1: good[:]}, nil},
		"bad size":  {Expect{Size: 4999}, ErrMismatch},
		"bad sha1":  {Expect{Size: -1, SHA1: make([]byte, 20)}, ErrMismatch},
		"too large": {Expect{Size: -1, Max: 4096}, ErrTooLarge},
		"at max":    {Expect{Size: -1, Max: 5000}, nil},
	} {
		_, _, err := sealAll(t, plain, aad, c.want)
		if !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", name, err, c.err)
		}
	}
}

func FuzzOpen(f *testing.F) {
	aad := AAD("t", "b", 1)
	plain := content(300)
	ct, _, _ := sealAll(f, plain, aad, Expect{Size: -1})
	f.Add(ct, int64(0))
	f.Add(ct[:40], int64(3))
	f.Add([]byte{}, int64(0))
	f.Fuzz(func(t *testing.T, b []byte, off int64) {
		if off < 0 || off > 1<<20 {
			return
		}
		got, err := openAll(b, aad, off)
		// Only a stream sealed under the key opens: here, only one of
		// plain (each process seals it with its own random salt).
		if err == nil && (off > int64(len(plain)) || !bytes.Equal(got, plain[off:])) {
			t.Fatalf("a forged stream opened (%d bytes)", len(got))
		}
	})
}

func BenchmarkSeal(b *testing.B) {
	plain := content(64 << 20)
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		s, _ := NewSealing(bytes.NewReader(plain), testKey, AAD("t", "b", 1), Expect{Size: -1}, SegmentSize)
		io.Copy(io.Discard, s)
		s.Close()
	}
}

// TestSmallSegments: small content round-trips in small segments, and a
// stream does not open with the other segment size.
func TestSmallSegments(t *testing.T) {
	aad := AAD("t", "b", 1)
	plain := content(300 << 10)
	s, err := NewSealing(bytes.NewReader(plain), testKey, aad, Expect{Size: -1}, SegmentFor(int64(len(plain))))
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := io.ReadAll(s)
	s.Close()
	r, err := Open(bytes.NewReader(ct), testKey, aad, 1000, SmallSegmentSize)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, plain[1000:]) {
		t.Fatalf("small segments: %v", err)
	}
	if r, err := Open(bytes.NewReader(ct), testKey, aad, 0, SegmentSize); err == nil {
		if _, err := io.ReadAll(r); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("opened with the wrong segment size: %v", err)
		}
	}
	if _, err := NewSealing(bytes.NewReader(nil), testKey, aad, Expect{Size: -1}, 4096); err == nil {
		t.Fatal("an unsupported segment size was accepted")
	}
}

// TestWriteTo: sealing straight into a writer (what blob.Local does)
// gives a stream that opens to the same plaintext with the same sums,
// and a mismatch is still an error after which nothing may be kept.
func TestWriteTo(t *testing.T) {
	aad := AAD("t1", "b1", 1)
	for _, n := range []int{0, 5, chunk - 1, chunk, 3*chunk + 7, 2*SegmentSize + 99} {
		plain := content(n)
		s, err := NewSealing(bytes.NewReader(plain), testKey, aad, Expect{Size: -1}, SegmentSize)
		if err != nil {
			t.Fatal(err)
		}
		var ct bytes.Buffer
		w, err := s.WriteTo(&ct)
		if err != nil || w != int64(ct.Len()) {
			t.Fatalf("%d: WriteTo %d, %v (wrote %d)", n, w, err, ct.Len())
		}
		sum, err := s.Sum()
		if err != nil || sum.Size != int64(n) || sum.SHA256 != sha256.Sum256(plain) || sum.SHA1 != sha1.Sum(plain) {
			t.Fatalf("%d: wrong sum (%v)", n, err)
		}
		s.Close()
		got, err := openAll(ct.Bytes(), aad, 0)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%d: open: %v", n, err)
		}
	}
	plain := content(3*chunk + 1)
	bad := sha1.Sum([]byte("other"))
	s, _ := NewSealing(bytes.NewReader(plain), testKey, aad, Expect{Size: -1, SHA1: bad[:]}, SegmentSize)
	if _, err := s.WriteTo(io.Discard); !errors.Is(err, ErrMismatch) {
		t.Fatalf("mismatch: %v", err)
	}
	if _, err := s.Read(make([]byte, 10)); err == nil {
		t.Fatal("Read after WriteTo succeeded")
	}
	s.Close()
}
