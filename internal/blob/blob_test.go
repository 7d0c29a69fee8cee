package blob_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/wardhealth/ward/internal/blob"
	"github.com/wardhealth/ward/internal/blob/blobtest"
)

// backends runs f on a Local store and on a real S3-compatible bucket.
func backends(t *testing.T, f func(t *testing.T, s blob.Store, leftovers func() int)) {
	t.Run("local", func(t *testing.T) {
		dir := t.TempDir()
		l, err := blob.NewLocal(dir)
		if err != nil {
			t.Fatal(err)
		}
		f(t, l, func() int {
			es, _ := os.ReadDir(filepath.Join(dir, "tmp"))
			return len(es)
		})
	})
	t.Run("s3", func(t *testing.T) {
		cfg := blobtest.S3(t)
		cfg.PartSize = 5 << 20 // the S3 minimum: several parts per test object
		s, err := blob.NewS3(cfg)
		if err != nil {
			t.Fatal(err)
		}
		f(t, s, func() int { return blobtest.Uploads(t, cfg) })
	})
}

func data(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{9}).Read(b)
	return b
}

func TestStore(t *testing.T) {
	backends(t, func(t *testing.T, s blob.Store, leftovers func() int) {
		ctx := context.Background()
		want := data(12<<20 + 5)
		n, err := s.Put(ctx, "b/t/x/1-a", bytes.NewReader(want))
		if err != nil || n != int64(len(want)) {
			t.Fatalf("put: %d %v", n, err)
		}
		for _, off := range []int64{0, 1, 5 << 20, int64(len(want))} {
			rc, err := s.Open(ctx, "b/t/x/1-a", off)
			if err != nil {
				t.Fatalf("open at %d: %v", off, err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, want[off:]) {
				t.Fatalf("read at %d: %v (equal %v)", off, err, bytes.Equal(got, want[off:]))
			}
		}
		s.Put(ctx, "b/t/y/1-b", bytes.NewReader([]byte("second")))
		var keys []string
		if err := s.List(ctx, "b/", func(o blob.Object) error { keys = append(keys, o.Key); return nil }); err != nil {
			t.Fatal(err)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, []string{"b/t/x/1-a", "b/t/y/1-b"}) {
			t.Fatalf("list: %v", keys)
		}
		if err := s.Delete(ctx, "b/t/y/1-b"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Open(ctx, "b/t/y/1-b", 0); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("open deleted: %v", err)
		}
		if err := s.Delete(ctx, "b/t/y/1-b"); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("delete deleted: %v", err)
		}
		for _, bad := range []string{"", "../x", "a//b", "/a", "a/./b", "a b"} {
			if _, err := s.Put(ctx, bad, bytes.NewReader(nil)); !errors.Is(err, blob.ErrInvalidKey) {
				t.Errorf("put %q: %v", bad, err)
			}
		}
		_ = leftovers
	})
}

// failing yields n bytes, then an error: a client that went away.
type failing struct {
	r io.Reader
}

func (f *failing) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errors.New("client went away")
	}
	return n, err
}

// TestPutAtomic: a Put whose source fails leaves nothing visible and
// nothing behind.
func TestPutAtomic(t *testing.T) {
	backends(t, func(t *testing.T, s blob.Store, leftovers func() int) {
		ctx := context.Background()
		for _, n := range []int{100, 11 << 20} { // one part, several parts
			if _, err := s.Put(ctx, "b/t/z/1-c", &failing{bytes.NewReader(data(n))}); err == nil {
				t.Fatal("put of a failing source succeeded")
			}
			if _, err := s.Open(ctx, "b/t/z/1-c", 0); !errors.Is(err, blob.ErrNotFound) {
				t.Fatalf("%d: half object visible: %v", n, err)
			}
			if k := leftovers(); k != 0 {
				t.Fatalf("%d: %d leftovers after a failed put", n, k)
			}
		}
		if _, err := s.CleanTemp(ctx, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCleanTempLocal(t *testing.T) {
	dir := t.TempDir()
	l, err := blob.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(dir, "tmp", "dead")
	os.WriteFile(old, []byte("x"), 0o600)
	os.Chtimes(old, time.Now().Add(-2*time.Hour), time.Now().Add(-2*time.Hour))
	os.WriteFile(filepath.Join(dir, "tmp", "live"), []byte("y"), 0o600)
	n, err := l.CleanTemp(context.Background(), time.Now().Add(-time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("clean: %d %v", n, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tmp", "live")); err != nil {
		t.Fatal("a recent temporary file was removed")
	}
}

func FuzzValidKey(f *testing.F) {
	for _, s := range []string{"b/74/id/1-ab", "../x", "a//b", ".", "a/..", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, k string) {
		if !blob.ValidKey(k) {
			return
		}
		if filepath.IsAbs(k) || filepath.Clean(k) != k || k == ".." || len(k) >= 2 && k[:2] == ".." {
			t.Fatalf("valid key %q escapes the root", k)
		}
	})
}

// TestS3ObjectLock: with a lock mode, every object (single PutObject and
// multipart) is written with that retention, read back with
// GetObjectRetention; a delete of a locked object is ErrLocked and the
// object stays; a bucket without object lock fails the start check.
func TestS3ObjectLock(t *testing.T) {
	ctx := context.Background()
	cfg := blobtest.S3Locked(t)
	cfg.PartSize = 5 << 20
	cfg.LockMode, cfg.LockDays = "GOVERNANCE", 2
	s, err := blob.NewS3(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckObjectLock(ctx); err != nil {
		t.Fatalf("a bucket with object lock: %v", err)
	}
	c := blobtest.Client(cfg)
	for key, n := range map[string]int{"l/small": 1000, "l/multipart": 11 << 20} {
		start := time.Now()
		if _, err := s.Put(ctx, key, bytes.NewReader(data(n))); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		out, err := c.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: aws.String(cfg.Bucket), Key: aws.String(key)})
		if err != nil || out.Retention == nil {
			t.Fatalf("retention of %s: %v", key, err)
		}
		until := aws.ToTime(out.Retention.RetainUntilDate)
		if out.Retention.Mode != types.ObjectLockRetentionModeGovernance || until.Before(start.Add(47*time.Hour)) || until.After(time.Now().Add(49*time.Hour)) {
			t.Fatalf("retention of %s: %s until %v; want GOVERNANCE for 2 days", key, out.Retention.Mode, until)
		}
		if err := s.Delete(ctx, key); !errors.Is(err, blob.ErrLocked) {
			t.Fatalf("delete of locked %s: %v; want ErrLocked", key, err)
		}
		r, err := s.Open(ctx, key, 0)
		if err != nil {
			t.Fatalf("a locked object is gone after a refused delete: %v", err)
		}
		got, _ := io.ReadAll(r)
		r.Close()
		if len(got) != n {
			t.Fatalf("%s: %d bytes after a refused delete, want %d", key, len(got), n)
		}
	}

	plain := blobtest.S3(t)
	plain.LockMode, plain.LockDays = "COMPLIANCE", 1
	u, err := blob.NewS3(plain)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.CheckObjectLock(ctx); err == nil {
		t.Fatal("object lock configured on a bucket without it: the start check passed")
	}
	if _, err := blob.NewS3(blob.S3Config{Bucket: "b", LockMode: "governance", LockDays: 1}); err == nil {
		t.Fatal("a lock mode other than GOVERNANCE or COMPLIANCE was accepted")
	}
}
