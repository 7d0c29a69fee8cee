// Package shred keeps the shred list: one entry for every committed
// Patient/$erase, kept OUTSIDE the database (in the document object
// store, which a database backup does not hold and which every node of a
// cluster shares), so that a restore of a backup taken before an erasure
// can re-apply it (docs/keys.md, The shred list).
//
// Guarantees:
//   - Append returns only after the entry is durable (blob.Store.Put:
//     fsynced file and directory, or acknowledged by S3). An entry is
//     named by its ledger record (sequence number and hash), so no other
//     erasure's entry can take its name.
//   - Entries hold ids, key ids, ledger sequence numbers and hashes, and a
//     time: never PHI.
//   - Every entry carries an HMAC-SHA256 over its object name and its
//     bytes, under a MAC key that exists only wrapped by the
//     key-encryption key (object "shred/key"), never in the database:
//     whoever can write the object store but not use the KEK cannot
//     forge, alter or move an entry without Entries reporting ErrTampered.
//     Deleting whole entries is not detected by the list alone; a
//     restore checks that every erasure its ledger holds has its entry.
package shred

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/blob"
)

const (
	// keyObject holds the wrapped MAC key; its presence is what says the
	// list exists (Open creates it when a server starts).
	keyObject = "shred/key"
	// rewrapPrefix holds the MAC key re-wrapped by KEK rotations, one
	// object each (objects are written once): the newest that unwraps
	// is used, so retiring the version keyObject is under loses nothing.
	rewrapPrefix = "shred/k/"
	// entryPrefix names entries: shred/e/<ledger seq, 20 digits>-<the
	// first 16 hex digits of the record's hash>. The hash keeps apart
	// the records of two histories that share a seq (a ledger that went
	// on from a restored backup).
	entryPrefix = "shred/e/"
	// macKeyID binds the wrapped MAC key to its use (the wrappers
	// authenticate the key id with the key).
	macKeyID = "shred-list/mac"
	// maxObject bounds what is read of one object (an entry names at
	// most the resources of one patient).
	maxObject = 64 << 20
	domain    = "ward shred entry v1\n"
)

var (
	// ErrMissing is returned by Open (without create) when the store
	// holds no shred list.
	ErrMissing = errors.New("shred: no shred list in the object store")
	// ErrTampered is returned by Entries when an entry is malformed or
	// its MAC does not verify; the error names the object.
	ErrTampered = errors.New("shred: shred list entry tampered with")
)

// Wrapper wraps and unwraps the MAC key under the key-encryption key
// (keys.KeyWrapper).
type Wrapper interface {
	Wrap(ctx context.Context, keyID string, dek []byte) (wrapped []byte, kek string, err error)
	Unwrap(ctx context.Context, keyID string, wrapped []byte) ([]byte, error)
}

// Entry is one erasure.
type Entry struct {
	Tenant  string `json:"tenant"`
	Patient string `json:"patient"`
	// Keys are the destroyed data keys' ids.
	Keys []string `json:"keys"`
	// Resources are the erased resources ("Type/id"), the Patient
	// included.
	Resources []string `json:"resources,omitempty"`
	// Seq and Hash are the erase ledger record's sequence number and
	// hash (hex).
	Seq  int64     `json:"seq"`
	Hash string    `json:"hash"`
	At   time.Time `json:"at"`
}

// stored is an entry object: the entry's exact bytes and their MAC.
type stored struct {
	Entry json.RawMessage `json:"entry"`
	MAC   string          `json:"mac"`
}

type keyFile struct {
	KEK     string `json:"kek"`
	Wrapped string `json:"wrapped"`
}

// List is the shred list in an object store.
type List struct {
	objs blob.Store
	w    Wrapper
}

// Open opens the shred list of objs, whose MAC key w unwraps. With
// create, a store without a list gets one (a new MAC key, wrapped);
// without, it is ErrMissing.
func Open(ctx context.Context, objs blob.Store, w Wrapper, create bool) (*List, error) {
	l := &List{objs: objs, w: w}
	_, err := l.key(ctx)
	if !errors.Is(err, blob.ErrNotFound) {
		if err != nil {
			return nil, err
		}
		return l, nil
	}
	if !create {
		return nil, ErrMissing
	}
	mac := make([]byte, 32)
	if _, err := rand.Read(mac); err != nil {
		return nil, err
	}
	wrapped, kek, err := w.Wrap(ctx, macKeyID, mac)
	if err != nil {
		return nil, fmt.Errorf("shred: wrap the shred list's key: %w", err)
	}
	kb, _ := json.Marshal(keyFile{KEK: kek, Wrapped: base64.StdEncoding.EncodeToString(wrapped)})
	// Another node may create it at the same time: a local store keeps
	// the first, S3 the last; either way every node uses what is stored
	// (key reads it for each use).
	objs.Put(ctx, keyObject, bytes.NewReader(kb))
	if _, err := l.key(ctx); err != nil {
		return nil, fmt.Errorf("shred: create %s: %w", keyObject, err)
	}
	return l, nil
}

// Rewrap re-wraps the list's MAC key under w's current KEK version (a
// KEK rotation calls it before older versions are retired, so the list
// stays readable). The MAC key itself does not change, so every entry
// keeps verifying.
func (l *List) Rewrap(ctx context.Context, w Wrapper) error {
	mac, err := l.key(ctx)
	if err != nil {
		return err
	}
	wrapped, kek, err := w.Wrap(ctx, macKeyID, mac)
	if err != nil {
		return fmt.Errorf("shred: re-wrap the shred list's key: %w", err)
	}
	kb, _ := json.Marshal(keyFile{KEK: kek, Wrapped: base64.StdEncoding.EncodeToString(wrapped)})
	name := fmt.Sprintf("%s%020d", rewrapPrefix, time.Now().UnixNano())
	if _, err := l.objs.Put(ctx, name, bytes.NewReader(kb)); err != nil {
		return fmt.Errorf("shred: store the re-wrapped key: %w", err)
	}
	got, err := l.unwrapObject(ctx, w, name)
	if err != nil || !bytes.Equal(got, mac) {
		return fmt.Errorf("shred: the re-wrapped key %s does not open: %v", name, err)
	}
	l.w = w
	return nil
}

// key reads and unwraps the stored MAC key: the newest re-wrapped copy
// that unwraps, else the original. It is read for every use, not kept:
// an object store that lets a later Put replace an object (S3) may have
// taken another node's key when both created the list at once.
func (l *List) key(ctx context.Context) ([]byte, error) {
	var copies []string
	if err := l.objs.List(ctx, rewrapPrefix, func(o blob.Object) error {
		copies = append(copies, o.Key)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("shred: list the re-wrapped keys: %w", err)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(copies)))
	for _, name := range copies {
		if mac, err := l.unwrapObject(ctx, l.w, name); err == nil {
			return mac, nil
		}
	}
	return l.unwrapObject(ctx, l.w, keyObject)
}

// unwrapObject reads the wrapped MAC key stored as name and unwraps it
// with w.
func (l *List) unwrapObject(ctx context.Context, w Wrapper, name string) ([]byte, error) {
	b, err := read(ctx, l.objs, name)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("shred: read %s: %w", name, err)
	}
	var kf keyFile
	wrapped, derr := []byte(nil), json.Unmarshal(b, &kf)
	if derr == nil {
		wrapped, derr = base64.StdEncoding.DecodeString(kf.Wrapped)
	}
	if derr != nil {
		return nil, fmt.Errorf("%w: %s is malformed", ErrTampered, name)
	}
	mac, err := w.Unwrap(ctx, macKeyID, wrapped)
	if err != nil {
		return nil, fmt.Errorf("shred: unwrap the shred list's key (%s) with the KEK: %w", name, err)
	}
	return mac, nil
}

// EntryName is the object name of the entry of the ledger record seq
// whose hash is hash (hex).
func EntryName(seq int64, hash string) string {
	return fmt.Sprintf("%s%020d-%s", entryPrefix, seq, hash[:min(16, len(hash))])
}

func sum(mac []byte, name string, entry []byte) []byte {
	m := hmac.New(sha256.New, mac)
	m.Write([]byte(domain))
	m.Write([]byte(name))
	m.Write([]byte{'\n'})
	m.Write(entry)
	return m.Sum(nil)
}

// Append makes e durable in the list. An entry for the same ledger
// record that is already there is no error.
func (l *List) Append(ctx context.Context, e Entry) error {
	if e.Seq <= 0 || e.Tenant == "" || e.Patient == "" || len(e.Hash) != 64 || len(e.Keys) == 0 {
		return errors.New("shred: an entry needs its tenant, patient, keys and ledger record")
	}
	e.At = e.At.UTC()
	eb, err := json.Marshal(e)
	if err != nil {
		return err
	}
	mac, err := l.key(ctx)
	if err != nil {
		return err
	}
	name := EntryName(e.Seq, e.Hash)
	ob, _ := json.Marshal(stored{Entry: eb, MAC: hex.EncodeToString(sum(mac, name, eb))})
	if _, err := l.objs.Put(ctx, name, bytes.NewReader(append(ob, '\n'))); err != nil {
		if got, rerr := l.entry(ctx, mac, name); rerr == nil && got.Hash == e.Hash && got.Tenant == e.Tenant && got.Patient == e.Patient {
			return nil
		}
		return fmt.Errorf("shred: append to the shred list: %w", err)
	}
	return nil
}

// Entries returns every entry in ledger order, each verified. A malformed
// entry, a wrong MAC or an entry under another name is ErrTampered.
func (l *List) Entries(ctx context.Context) ([]Entry, error) {
	var names []string
	err := l.objs.List(ctx, entryPrefix, func(o blob.Object) error {
		names = append(names, o.Key)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("shred: list the shred list: %w", err)
	}
	slices.Sort(names)
	mac, err := l.key(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(names))
	for _, n := range names {
		e, err := l.entry(ctx, mac, n)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// Find returns the entry of tenant's patient, if the list has one.
func (l *List) Find(ctx context.Context, tenant, patient string) (*Entry, error) {
	es, err := l.Entries(ctx)
	if err != nil {
		return nil, err
	}
	for i := range es {
		if es[i].Tenant == tenant && es[i].Patient == patient {
			return &es[i], nil
		}
	}
	return nil, nil
}

func (l *List) entry(ctx context.Context, mac []byte, name string) (Entry, error) {
	b, err := read(ctx, l.objs, name)
	if err != nil {
		return Entry{}, fmt.Errorf("shred: read %s: %w", name, err)
	}
	e, got, err := Parse(b)
	if err != nil {
		return Entry{}, fmt.Errorf("%w: %s: %v", ErrTampered, name, err)
	}
	if !hmac.Equal(got, sum(mac, name, rawEntry(b))) || EntryName(e.Seq, e.Hash) != name {
		return Entry{}, fmt.Errorf("%w: %s: its MAC does not verify", ErrTampered, name)
	}
	return e, nil
}

// rawEntry returns the entry bytes of a stored object Parse accepted.
func rawEntry(b []byte) []byte {
	var s stored
	json.Unmarshal(b, &s)
	return s.Entry
}

// Parse decodes a stored entry object (untrusted bytes) into its entry and
// MAC, without verifying the MAC.
func Parse(b []byte) (Entry, []byte, error) {
	var s stored
	if err := json.Unmarshal(b, &s); err != nil {
		return Entry{}, nil, errors.New("not an entry object")
	}
	mac, err := hex.DecodeString(s.MAC)
	if err != nil || len(mac) != sha256.Size {
		return Entry{}, nil, errors.New("bad MAC")
	}
	var e Entry
	if err := json.Unmarshal(s.Entry, &e); err != nil {
		return Entry{}, nil, errors.New("bad entry")
	}
	if e.Seq <= 0 || e.Tenant == "" || e.Patient == "" || len(e.Keys) == 0 {
		return Entry{}, nil, errors.New("incomplete entry")
	}
	if h, err := hex.DecodeString(e.Hash); err != nil || len(h) != sha256.Size {
		return Entry{}, nil, errors.New("bad ledger hash")
	}
	for _, r := range e.Resources {
		if typ, id, ok := strings.Cut(r, "/"); !ok || typ == "" || id == "" {
			return Entry{}, nil, errors.New("bad resource " + strconv.Quote(r))
		}
	}
	return e, mac, nil
}

func read(ctx context.Context, objs blob.Store, name string) ([]byte, error) {
	rc, err := objs.Open(ctx, name, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxObject+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxObject {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, maxObject)
	}
	return b, nil
}
