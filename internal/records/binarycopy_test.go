package records

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/wardhealth/ward/internal/docseal"
)

var copyTestKey = bytes.Repeat([]byte{7}, 32)

// sealedBody seals plain (small segments) and returns a function that
// opens it as ReadBinary's body does.
func sealedBody(t *testing.T, plain []byte) (sealed []byte, open func(sealed []byte, onCorrupt func()) *limitedBody) {
	t.Helper()
	aad := docseal.AAD("t", "b", 1)
	s, err := docseal.NewSealing(bytes.NewReader(plain), copyTestKey, aad, docseal.Expect{Size: -1}, docseal.SmallSegmentSize)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := s.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), func(sealed []byte, onCorrupt func()) *limitedBody {
		pr, err := docseal.Open(bytes.NewReader(sealed), copyTestKey, aad, 0, docseal.SmallSegmentSize)
		if err != nil {
			t.Fatal(err)
		}
		return &limitedBody{r: io.LimitReader(pr, int64(len(plain))), c: io.NopCloser(nil), onCorrupt: onCorrupt,
			release: func() {}, bufs: copyBufsFor(docseal.SmallSegmentSize)}
	}
}

// plainWriter is a writer that is not an io.ReaderFrom (as the TCP
// connection's generic copy is): io.Copy to it uses the body's WriteTo
// or else allocates its own 32 KiB buffer.
type plainWriter struct{ n int64 }

func (w *plainWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// TestContentCopyMemory: copying a 100 KiB download to its client
// allocates no more than the decrypter's own plaintext buffer (Tink
// allocates it at the first segment and grows it once at the second,
// which is larger: about 32 KiB) and small change: the copy buffer is a
// pooled one the size of a segment. This is what a download in flight
// holds above its connection, so it is what grows with the number of
// concurrent downloads (BenchmarkBinaryConcurrent100KiB); a copy through
// a fresh or a second 32 KiB buffer (as io.Copy and net/http did before
// the body was an io.WriterTo) fails it. Bytes counted, not timed.
func TestContentCopyMemory(t *testing.T) {
	if raceEnabled {
		t.Skip("counts allocations: the race detector adds its own")
	}
	const size, downloads = 100 << 10, 50
	plain := bytes.Repeat([]byte("ward "), size/5)
	sealed, open := sealedBody(t, plain)
	// The pool warm, as in a running server.
	io.Copy(&plainWriter{}, open(sealed, func() {}))
	bodies := make([]*limitedBody, downloads)
	for i := range bodies {
		bodies[i] = open(sealed, func() {})
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, b := range bodies {
		w := &plainWriter{}
		if _, err := io.Copy(w, b); err != nil || w.n != size {
			t.Fatalf("copied %d bytes (%v), want %d", w.n, err, size)
		}
	}
	runtime.ReadMemStats(&after)
	per := (after.TotalAlloc - before.TotalAlloc) / downloads
	t.Logf("%d bytes allocated per 100 KiB download copied", per)
	if limit := uint64(2*docseal.SmallSegmentSize + 4<<10); per > limit {
		t.Errorf("%d bytes allocated per download copied, want at most %d (the decrypter's plaintext buffer and small change)", per, limit)
	}
}

// TestContentCopyCorrupt: WriteTo stops at the first segment that fails
// authentication, having written only the segments before it, and
// reports the corruption.
func TestContentCopyCorrupt(t *testing.T) {
	plain := bytes.Repeat([]byte("ward "), (100<<10)/5)
	sealed, open := sealedBody(t, plain)
	bad := bytes.Clone(sealed)
	bad[3*docseal.SmallSegmentSize+100] ^= 1 // in the fourth segment
	reported := 0
	var got bytes.Buffer
	n, err := io.Copy(struct{ io.Writer }{&got}, open(bad, func() { reported++ }))
	if !errors.Is(err, docseal.ErrCorrupt) || reported != 1 {
		t.Fatalf("WriteTo: %v, reported %d times; want ErrCorrupt reported once", err, reported)
	}
	if n != int64(got.Len()) || n > 3*docseal.SmallSegmentSize || !bytes.Equal(got.Bytes(), plain[:n]) {
		t.Fatalf("WriteTo wrote %d bytes (%d received) before the bad segment; want at most the three good segments' plaintext", n, got.Len())
	}
}
