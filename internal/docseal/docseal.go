// Package docseal seals document content as a stream: Tink's streaming
// AEAD (AES-256-GCM-HKDF, 1 MiB ciphertext segments), keyed by a key
// derived from the tenant's data key and bound by associated data to the
// tenant, the Binary's id and its version.
//
// Guarantees:
//   - Memory is bounded by a few segments, whatever the content's size.
//   - Each segment is authenticated before any of its plaintext is
//     returned; a segment changed, moved, dropped, or taken from another
//     object (another tenant, Binary or version) fails at that segment,
//     and a stream cut short fails at its end (Tink marks the last
//     segment), so no plaintext past a bad segment is ever returned.
//   - The SHA-256 and SHA-1 of the plaintext and its size are computed
//     while sealing; an expected size or SHA-1 that does not match makes
//     the sealed stream end in an error instead of EOF, so a store that
//     writes atomically keeps nothing.
package docseal

import (
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/tink-crypto/tink-go/v2/streamingaead/subtle"

	"github.com/wardhealth/ward/internal/seal"
)

// SegmentSize is the size of a ciphertext segment; the plaintext of a
// segment is SegmentSize - Overhead bytes (the first one also less the
// header).
const SegmentSize = 1 << 20

// SmallSegmentSize is the segment size of content known to be small:
// a reader holds about two segments, so the downloads in progress of
// small documents cost about 32 KiB of buffers each (64 KiB segments
// measured half again as much RSS growth for 1,000 concurrent 100 KiB
// downloads). The tag costs 16 bytes per segment: 0.1%.
const SmallSegmentSize = 16 << 10

// SegmentFor is the segment size for content of size bytes (-1:
// unknown).
func SegmentFor(size int64) int {
	if size >= 0 && size <= SegmentSize {
		return SmallSegmentSize
	}
	return SegmentSize
}

// Overhead is the tag of one segment.
const Overhead = 16

// ErrMismatch is returned (instead of EOF) when the plaintext does not
// have the expected size or SHA-1.
var ErrMismatch = errors.New("docseal: content does not match")

// ErrTooLarge is returned when the plaintext exceeds Expect.Max.
var ErrTooLarge = errors.New("docseal: content too large")

// ErrCorrupt wraps every failure to open a sealed stream: tampering,
// truncation, a wrong key or associated data.
var ErrCorrupt = errors.New("docseal: sealed content fails authentication")

// AAD is the associated data of the content of one Binary version.
func AAD(tenant, id string, version int64) []byte {
	return append([]byte("ward/binary-content/v1\x00"), seal.AAD(tenant, "Binary", id, version)...)
}

func cipher(key []byte, segment int) (*subtle.AESGCMHKDF, error) {
	if segment != SegmentSize && segment != SmallSegmentSize {
		return nil, fmt.Errorf("docseal: unsupported segment size %d", segment)
	}
	c, err := subtle.NewAESGCMHKDF(key, "SHA256", 32, segment, 0)
	if err != nil {
		return nil, fmt.Errorf("docseal: %w", err)
	}
	return c, nil
}

// Sum describes the plaintext that was sealed.
type Sum struct {
	Size   int64
	SHA256 [sha256.Size]byte
	SHA1   [sha1.Size]byte
}

// Expect is what the plaintext must be; zero fields are not checked.
type Expect struct {
	Size int64 // -1: any
	SHA1 []byte
	// Max bounds the size (0: no bound).
	Max int64
}

// Sealing is a reader of the sealed form of a plaintext stream. It
// seals on its own goroutine, through a pipe, when it is Read; WriteTo
// (which io.Copy prefers) seals on the caller's goroutine straight into
// the destination, one copy of every byte fewer.
type Sealing struct {
	c     *subtle.AESGCMHKDF
	plain io.Reader
	aad   []byte
	want  Expect

	start sync.Once
	pr    *io.PipeReader
	sum   Sum
	err   error
	// written is what WriteTo wrote.
	written int64
	// done is closed when sealing has finished; sum is final then.
	done chan struct{}
}

// NewSealing seals plain under key with aad in segments of segment bytes
// (SegmentSize or SmallSegmentSize) as it is read. Close it when done (it
// stops the sealing if the reader gave up early).
func NewSealing(plain io.Reader, key, aad []byte, want Expect, segment int) (*Sealing, error) {
	c, err := cipher(key, segment)
	if err != nil {
		return nil, err
	}
	return &Sealing{c: c, plain: plain, aad: aad, want: want, done: make(chan struct{})}, nil
}

// Read reads sealed bytes.
func (s *Sealing) Read(p []byte) (int, error) {
	s.start.Do(func() {
		pr, pw := io.Pipe()
		s.pr = pr
		go func() {
			defer close(s.done)
			err := s.run(s.c, pw, s.plain, s.aad, s.want)
			s.err = err
			pw.CloseWithError(err) // nil: EOF
		}()
	})
	if s.pr == nil {
		return 0, errors.New("docseal: sealing already written out")
	}
	return s.pr.Read(p)
}

// WriteTo seals everything into w. It returns the sealing's error (a
// mismatch, too large, the plaintext's or w's failure), after which w
// has received an incomplete stream.
func (s *Sealing) WriteTo(w io.Writer) (int64, error) {
	ran := false
	s.start.Do(func() {
		ran = true
		cw := &countWriter{w: w}
		s.err = s.run(s.c, cw, s.plain, s.aad, s.want)
		s.written = cw.n
		close(s.done)
	})
	if !ran {
		return 0, errors.New("docseal: sealing already started")
	}
	return s.written, s.err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Close stops the sealing and waits for it.
func (s *Sealing) Close() error {
	s.start.Do(func() { close(s.done) })
	if s.pr != nil {
		s.pr.CloseWithError(errors.New("docseal: sealing stopped"))
	}
	<-s.done
	return nil
}

// Sum is what was sealed, valid once Read returned EOF or WriteTo
// returned.
func (s *Sealing) Sum() (Sum, error) {
	<-s.done
	return s.sum, s.err
}

// chunk is how much plaintext is read at a time, and inflight how many
// chunks an upload holds at most: small enough to stay in the cores'
// caches (larger chunks measured slower), 256 KiB per upload.
const (
	chunk    = 64 << 10
	inflight = 4
)

var chunks = sync.Pool{New: func() any { b := make([]byte, chunk); return &b }}

type piece struct {
	buf *[]byte
	n   int
}

// run reads the plaintext in chunks; SHA-256 runs on its own goroutine
// while this one computes SHA-1 and seals, so an upload keeps two cores
// busy instead of one. A chunk goes back to the free list once hashed;
// sealing is done with it before the next read (Tink copies what it is
// given), so a chunk taken from the free list is no longer in use.
func (s *Sealing) run(c *subtle.AESGCMHKDF, pw io.Writer, plain io.Reader, aad []byte, want Expect) error {
	ew, err := c.NewEncryptingWriter(pw, aad)
	if err != nil {
		return fmt.Errorf("docseal: %w", err)
	}
	h256, h1 := sha256.New(), sha1.New()
	src := io.Reader(plain)
	if want.Max > 0 {
		src = io.LimitReader(plain, want.Max+1)
	}
	free := make(chan *[]byte, inflight)
	work := make(chan piece, inflight)
	hashed := make(chan struct{})
	go func() {
		defer close(hashed)
		for p := range work {
			h256.Write((*p.buf)[:p.n])
			free <- p.buf
		}
	}()
	taken := 0
	next := func() *[]byte {
		select {
		case b := <-free:
			return b
		default:
		}
		if taken < inflight {
			taken++
			return chunks.Get().(*[]byte)
		}
		return <-free
	}
	// finish stops the hashing goroutine and returns every chunk.
	finish := func() {
		close(work)
		<-hashed
		for ; taken > 0; taken-- {
			chunks.Put(<-free)
		}
	}
	var n int64
	for {
		b := next()
		k, rerr := io.ReadFull(src, *b)
		if k > 0 {
			n += int64(k)
			work <- piece{b, k}
			h1.Write((*b)[:k])
			if _, err := ew.Write((*b)[:k]); err != nil {
				finish()
				return err
			}
		} else {
			free <- b
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			finish()
			return rerr
		}
	}
	finish()
	if want.Max > 0 && n > want.Max {
		return ErrTooLarge
	}
	s.sum.Size = n
	copy(s.sum.SHA256[:], h256.Sum(nil))
	copy(s.sum.SHA1[:], h1.Sum(nil))
	if want.Size >= 0 && want.Size != n || want.SHA1 != nil && !equal(want.SHA1, s.sum.SHA1[:]) {
		return ErrMismatch
	}
	// Closing writes the last segment: only now can the stream end.
	if err := ew.Close(); err != nil {
		return fmt.Errorf("docseal: %w", err)
	}
	return nil
}

func equal(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	var d byte
	for i := range a {
		d |= a[i] ^ b[i]
	}
	return d == 0
}

// Open returns the plaintext of the sealed stream r (sealed in segments
// of segment bytes) from plaintext offset off. Every error it or its
// reader returns wraps ErrCorrupt unless it comes from r itself.
func Open(r io.Reader, key, aad []byte, off int64, segment int) (io.Reader, error) {
	c, err := cipher(key, segment)
	if err != nil {
		return nil, err
	}
	src := &srcErr{r: r}
	dr, err := c.NewDecryptingReader(src, aad)
	if err != nil {
		return nil, src.wrap(err)
	}
	or := &openReader{r: dr, src: src}
	if off > 0 {
		if _, err := io.CopyN(io.Discard, or, off); err != nil {
			if err == io.EOF {
				return nil, fmt.Errorf("%w: offset beyond the content", ErrCorrupt)
			}
			return nil, err
		}
	}
	return or, nil
}

// srcErr remembers an error of the underlying reader, to tell an I/O
// failure from an authentication failure.
type srcErr struct {
	r   io.Reader
	err error
}

func (s *srcErr) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

func (s *srcErr) wrap(err error) error {
	if s.err != nil {
		return fmt.Errorf("docseal: read sealed content: %w", s.err)
	}
	return fmt.Errorf("%w: %v", ErrCorrupt, err)
}

type openReader struct {
	r   io.Reader
	src *srcErr
}

func (o *openReader) Read(p []byte) (int, error) {
	n, err := o.r.Read(p)
	if err != nil && err != io.EOF {
		return n, o.src.wrap(err)
	}
	return n, err
}

var _ hash.Hash = sha256.New()
