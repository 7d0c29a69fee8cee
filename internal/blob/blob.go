// Package blob keeps opaque objects (the sealed content of Binary
// versions) on local disk or an S3-compatible service, behind one small
// interface.
//
// Guarantees every Store keeps (proved by the shared tests in
// blob_test.go, run against both backends):
//   - Put is atomic: after it returns an error, or after the process dies
//     in the middle of it, nothing is visible under the key (leftovers are
//     invisible temporary files or multipart uploads, which CleanTemp
//     removes).
//   - Put returns only after the object is durable (local: file and
//     directory fsynced; S3: the service acknowledged it).
//   - Keys are checked (ValidKey), so a key never escapes the store's root.
//
// The package never sees plaintext: callers seal before they Put.
package blob

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"
)

// ErrNotFound is returned by Open and Delete when no object has the key.
var ErrNotFound = errors.New("blob: not found")

// ErrLocked is returned by Delete when the store refuses to delete an
// object under object lock retention: the caller keeps it and tries
// again later (after the retention ends).
var ErrLocked = errors.New("blob: object under retention")

// ErrInvalidKey is returned for a key ValidKey refuses.
var ErrInvalidKey = errors.New("blob: invalid key")

// Object is one stored object as List reports it.
type Object struct {
	Key      string
	Size     int64
	Modified time.Time
}

// Store keeps objects.
type Store interface {
	// Put stores everything r yields under key, replacing nothing: a
	// key is written once. It returns the number of bytes stored.
	Put(ctx context.Context, key string, r io.Reader) (int64, error)
	// Open reads the object from byte offset off to its end.
	Open(ctx context.Context, key string, off int64) (io.ReadCloser, error)
	// Delete removes the object; a missing one is ErrNotFound, one the
	// store keeps under retention ErrLocked.
	Delete(ctx context.Context, key string) error
	// List calls fn for every object whose key starts with prefix.
	List(ctx context.Context, prefix string, fn func(Object) error) error
	// CleanTemp removes what interrupted Puts left behind before
	// cutoff (temporary files, incomplete multipart uploads), returning
	// how many it removed.
	CleanTemp(ctx context.Context, cutoff time.Time) (int, error)
}

// ValidKey reports whether key is a relative slash-separated path of
// segments made of [A-Za-z0-9._-], none of them "." or "..", at most 512
// bytes: safe as a file path and as an S3 key.
func ValidKey(key string) bool {
	if key == "" || len(key) > 512 {
		return false
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
			if !ok {
				return false
			}
		}
	}
	return true
}
