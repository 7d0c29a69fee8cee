package keys

import (
	"container/list"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/store"
)

// Per-patient data keys: every version of a resource in exactly one
// patient's compartment is sealed under that patient's own data key (id
// p/<tenant>/<patient>/1, scope "patient/<patient>"), wrapped by the KEK
// like a tenant's keys, so that destroying it crypto-shreds the patient
// and nothing else. There may be millions: they are not loaded at start,
// but unwrapped on first use and kept in a bounded cache (least recently
// used out first) for a bounded time, after which the next use unwraps
// again (so an unreachable KEK fails closed for patients not in use).
//
// A patient's first key is created by the write that first needs it and
// stored in that write's transaction (store.Write.NewKey): until a read
// of the store finds it, every write under it carries it again, so no
// version is ever stored under a key the database does not hold.

// ErrErased is returned for a patient whose data key was destroyed
// (crypto-shredded): nothing sealed under it opens, nothing new is sealed.
// Errors wrapping it also say Erased() (for callers that must not import
// this package's concrete types).
var ErrErased error = erased{}

type erased struct{}

func (erased) Error() string { return "keys: the patient's data key was destroyed" }
func (erased) Erased() bool  { return true }

// PatientKeyID names a patient's data key.
func PatientKeyID(tenant, patient string) string { return "p/" + tenant + "/" + patient + "/1" }

// IsPatientKey reports whether keyID names a patient's data key.
func IsPatientKey(keyID string) bool { return strings.HasPrefix(keyID, "p/") }

// Patient key cache defaults (SetPatientCache).
const (
	DefaultPatientCacheSize = 100_000
	DefaultPatientCacheTTL  = 15 * time.Minute
)

type patientEntry struct {
	id      string
	expires time.Time
	// pending is the key created here and not yet found in the store:
	// every write sealed under it stores it too.
	pending *store.Key
}

// patientCache is an LRU of unwrapped patient keys with a lifetime. The
// key material itself is in the manager's keyring; the cache decides
// how long it stays there.
type patientCache struct {
	max      int
	ttl      time.Duration
	ll       *list.List
	m        map[string]*list.Element
	inflight map[string]chan struct{}
}

// SetPatientCache bounds the cache of unwrapped patient keys: at most max
// keys (<= 0: DefaultPatientCacheSize), each for at most ttl after it was
// unwrapped (<= 0: DefaultPatientCacheTTL).
func (m *Manager) SetPatientCache(max int, ttl time.Duration) {
	if max <= 0 {
		max = DefaultPatientCacheSize
	}
	if ttl <= 0 {
		ttl = DefaultPatientCacheTTL
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pc.max, m.pc.ttl = max, ttl
	m.trimLocked()
}

func newPatientCache() patientCache {
	return patientCache{max: DefaultPatientCacheSize, ttl: DefaultPatientCacheTTL, ll: list.New(), m: map[string]*list.Element{}, inflight: map[string]chan struct{}{}}
}

// evictLocked forgets a cached patient key (m.mu held).
func (m *Manager) evictLocked(el *list.Element) {
	e := el.Value.(*patientEntry)
	m.pc.ll.Remove(el)
	delete(m.pc.m, e.id)
	m.ring.Remove(e.id)
	delete(m.stream, e.id)
}

// cachedLocked returns the live entry of id (m.mu held), evicting it if
// it expired.
func (m *Manager) cachedLocked(id string) *patientEntry {
	el, ok := m.pc.m[id]
	if !ok {
		return nil
	}
	e := el.Value.(*patientEntry)
	if m.now().After(e.expires) {
		// A pending one too: no write is in flight for a cache lifetime
		// (commits time out long before), so it was stored or failed.
		m.evictLocked(el)
		return nil
	}
	m.pc.ll.MoveToFront(el)
	return e
}

// cacheLocked adds or refreshes an entry (m.mu held) with its key.
func (m *Manager) cacheLocked(id string, dek []byte, pending *store.Key) error {
	if err := m.ring.Add(id, dek); err != nil {
		return err
	}
	if err := m.setStreamKey(id, dek); err != nil {
		return err
	}
	e := &patientEntry{id: id, expires: m.now().Add(m.pc.ttl), pending: pending}
	if el, ok := m.pc.m[id]; ok {
		el.Value = e
		m.pc.ll.MoveToFront(el)
	} else {
		m.pc.m[id] = m.pc.ll.PushFront(e)
	}
	m.trimLocked()
	return nil
}

// trimLocked evicts the least recently used keys beyond the bound, never
// the one just used (the front) nor a pending one: a write sealed under
// it may still be on its way to the store, which must store the key with
// it (PendingKey; Stored ends that).
func (m *Manager) trimLocked() {
	for el := m.pc.ll.Back(); el != nil && el != m.pc.ll.Front() && m.pc.ll.Len() > m.pc.max; {
		prev := el.Prev()
		if el.Value.(*patientEntry).pending == nil {
			m.evictLocked(el)
		}
		el = prev
	}
}

// Stored tells the manager that a write stored key id (its NewKey
// committed): it is no longer pending.
func (m *Manager) Stored(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.pc.m[id]; ok {
		el.Value.(*patientEntry).pending = nil
	}
}

// PatientKey returns the id of the key that seals patient's data (while
// it is new and not yet stored, PendingKey returns the wrapped key that a
// write sealed under it must store: store.Write.NewKey). A destroyed key
// is ErrErased.
func (m *Manager) PatientKey(ctx context.Context, tenant, patient string) (string, error) {
	if err := m.usable(); err != nil {
		return "", err
	}
	id := PatientKeyID(tenant, patient)
	for {
		m.mu.Lock()
		if e := m.cachedLocked(id); e != nil && e.pending == nil {
			m.mu.Unlock()
			return id, nil
		}
		if ch, ok := m.pc.inflight[id]; ok {
			m.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		ch := make(chan struct{})
		m.pc.inflight[id] = ch
		m.mu.Unlock()
		_, err := m.fetchPatientKey(ctx, id, tenant, patient, true)
		m.mu.Lock()
		delete(m.pc.inflight, id)
		close(ch)
		m.mu.Unlock()
		if err != nil {
			return "", err
		}
		return id, nil
	}
}

// PendingKey returns the wrapped form of key id while it was created here
// and not yet seen stored, nil otherwise.
func (m *Manager) PendingKey(id string) *store.Key {
	if !IsPatientKey(id) {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.pc.m[id]; ok {
		return el.Value.(*patientEntry).pending
	}
	return nil
}

// sweepPatients drops the expired patient keys (on each probe), so that
// a key is not used past its lifetime even by reads alone.
func (m *Manager) sweepPatients() {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for el := m.pc.ll.Back(); el != nil; {
		prev := el.Prev()
		if e := el.Value.(*patientEntry); now.After(e.expires) {
			m.evictLocked(el)
		}
		el = prev
	}
}

// fetchPatientKey loads key id from the store into the cache, or, when
// the store has none and create is set, creates it (pending). It returns
// the pending key, if any.
func (m *Manager) fetchPatientKey(ctx context.Context, id, tenant, patient string, create bool) (*store.Key, error) {
	k, err := m.patientStore().Key(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if !create {
			return nil, fmt.Errorf("%w: %s", seal.ErrUnknownKey, id)
		}
		m.mu.Lock()
		e := m.cachedLocked(id)
		m.mu.Unlock()
		if e != nil && e.pending != nil {
			return e.pending, nil // created here, not stored yet
		}
		return m.newPatientKey(ctx, id, tenant, patient)
	case err != nil:
		return nil, fmt.Errorf("read patient key: %w", err)
	case k.State == store.KeyDestroyed:
		m.mu.Lock()
		if el, ok := m.pc.m[id]; ok {
			m.evictLocked(el)
		}
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrErased, id)
	}
	m.mu.Lock()
	e := m.cachedLocked(id)
	m.mu.Unlock()
	if e != nil && e.pending != nil && string(e.pending.Wrapped) == string(k.Wrapped) {
		// Ours, now stored: refresh the entry as stored.
		dek, err := m.w.Unwrap(ctx, id, k.Wrapped)
		if err != nil {
			return nil, fmt.Errorf("%w: unwrap patient key: %v", ErrKEKUnavailable, err)
		}
		m.mu.Lock()
		err = m.cacheLocked(id, dek, nil)
		m.mu.Unlock()
		clear(dek)
		return nil, err
	}
	dek, err := m.w.Unwrap(ctx, id, k.Wrapped)
	if err != nil {
		return nil, fmt.Errorf("%w: unwrap patient key %s: %v", ErrKEKUnavailable, id, err)
	}
	m.answered()
	m.mu.Lock()
	if e != nil {
		// Another node stored another key first: ours sealed nothing
		// that was stored (its writes failed with ErrConflict).
		m.ring.Remove(id)
	}
	err = m.cacheLocked(id, dek, nil)
	m.mu.Unlock()
	clear(dek)
	return nil, err
}

// newPatientKey creates and caches a patient's first key, pending.
func (m *Manager) newPatientKey(ctx context.Context, id, tenant, patient string) (*store.Key, error) {
	dek := make([]byte, seal.KeySize)
	if _, err := rand.Read(dek); err != nil {
		return nil, fmt.Errorf("new patient key: %w", err)
	}
	defer clear(dek)
	wrapped, kek, err := m.w.Wrap(ctx, id, dek)
	if err != nil {
		return nil, fmt.Errorf("%w: wrap patient key: %v", ErrKEKUnavailable, err)
	}
	m.answered()
	k := &store.Key{ID: id, Purpose: DataKeyPurpose, Tenant: tenant, Scope: store.PatientScopePrefix + patient, Version: 1, KEK: kek, Wrapped: wrapped, Created: m.now().UTC()}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.cacheLocked(id, dek, k); err != nil {
		return nil, err
	}
	return k, nil
}

// patientStore is the store's by-id key read.
func (m *Manager) patientStore() interface {
	Key(ctx context.Context, id string) (*store.Key, error)
} {
	return m.st
}

// ensurePatient loads patient key id (for Open and StreamKey) if it is
// not in the keyring: never creates one.
func (m *Manager) ensurePatient(ctx context.Context, id string) error {
	m.mu.Lock()
	e := m.cachedLocked(id)
	m.mu.Unlock()
	if e != nil && m.ring.Has(id) {
		return nil
	}
	_, err := m.fetchPatientKey(ctx, id, "", "", false)
	return err
}

// Forget drops a patient's key from this node's cache (after an erasure).
func (m *Manager) Forget(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.pc.m[id]; ok {
		m.evictLocked(el)
	}
	m.ring.Remove(id)
	delete(m.stream, id)
}

// patientLive reads patient key id's state from the store before a
// version sealed under it is opened, so that a key another node destroyed
// (Patient/$erase) is refused here at once even while this node still
// holds it unwrapped in its cache, which it then forgets. One read by
// primary key per opened version: the simplest check that is correct
// across nodes without a cache-invalidation message.
func (m *Manager) patientLive(ctx context.Context, id string) error {
	k, err := m.patientStore().Key(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil // created here and not stored yet, or unknown (Open says so)
	case err != nil:
		return fmt.Errorf("read patient key: %w", err)
	case k.State == store.KeyDestroyed:
		m.Forget(id)
		return fmt.Errorf("%w: %s", ErrErased, id)
	}
	return nil
}
