package keys

import (
	"container/list"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
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
	// checked: when the latest read of a cached key's state that found it
	// not destroyed began (the erasure fence, patientLive).
	checked map[string]time.Time
	unwraps *atomic.Int64
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
	return patientCache{max: DefaultPatientCacheSize, ttl: DefaultPatientCacheTTL, ll: list.New(), m: map[string]*list.Element{}, inflight: map[string]chan struct{}{}, checked: map[string]time.Time{}, unwraps: new(atomic.Int64)}
}

// evictLocked forgets a cached patient key (m.mu held).
func (m *Manager) evictLocked(el *list.Element) {
	e := el.Value.(*patientEntry)
	m.pc.ll.Remove(el)
	delete(m.pc.m, e.id)
	delete(m.pc.checked, e.id)
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
		var err error
		if isNewPatient(ctx, tenant, patient) {
			m.mu.Lock()
			e := m.cachedLocked(id)
			m.mu.Unlock()
			if e == nil {
				_, err = m.newPatientKey(ctx, id, tenant, patient)
			} // else created here already and pending: that one
		} else {
			_, err = m.fetchPatientKey(ctx, id, tenant, patient, true)
		}
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

type newPatientCtx struct{ tenant, patient string }

// WithNewPatient marks ctx as the creation of a Patient whose id was
// just drawn at random (a version 4 UUID from crypto/rand): no key can
// exist under that id, so PatientKey makes the patient's key without
// reading the store first (a round trip a new Patient would cost more
// than under tenant keys). Nothing is weakened if the mark is wrong: the
// write that stores the key still refuses an id another key holds
// (store.ErrConflict) or a destroyed one (store.ErrKeyRetired).
func WithNewPatient(ctx context.Context, tenant, patient string) context.Context {
	return context.WithValue(ctx, newPatientCtx{}, newPatientCtx{tenant, patient})
}

func isNewPatient(ctx context.Context, tenant, patient string) bool {
	np, ok := ctx.Value(newPatientCtx{}).(newPatientCtx)
	return ok && np == newPatientCtx{tenant, patient}
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
	start := time.Now()
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
		dek, err := m.unwrapPatient(ctx, id, k.Wrapped)
		if err != nil {
			return nil, fmt.Errorf("%w: unwrap patient key: %v", ErrKEKUnavailable, err)
		}
		m.mu.Lock()
		err = m.cacheLocked(id, dek, nil)
		m.markCheckedLocked(id, start)
		m.mu.Unlock()
		clear(dek)
		return nil, err
	}
	dek, err := m.unwrapPatient(ctx, id, k.Wrapped)
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
	m.markCheckedLocked(id, start)
	m.mu.Unlock()
	clear(dek)
	return nil, err
}

// unwrapPatient unwraps a patient's key, counted (PatientUnwraps).
func (m *Manager) unwrapPatient(ctx context.Context, id string, wrapped []byte) ([]byte, error) {
	m.pc.unwraps.Add(1)
	return m.w.Unwrap(ctx, id, wrapped)
}

// PatientUnwraps is how many times this node has unwrapped a patient's
// key (the cost the cache bounds: once per patient per cache lifetime).
func (m *Manager) PatientUnwraps() int64 { return m.pc.unwraps.Load() }

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
	delete(m.pc.checked, id)
	m.ring.Remove(id)
	delete(m.stream, id)
}

// The erasure fence. A key another node destroyed (Patient/$erase) must
// be refused here even while this node holds it unwrapped: an erasure
// committed before a read starts is honoured by that read on every node.
// A read of the key's state that started after the read began proves
// that no such erasure exists, so one is enough for all of that read's
// versions under the key, and for every other read that began before it
// (checked holds when the latest such state read started). A request
// marks when it began with WithFence; without one, each Open is its own
// read and reads the state afresh (the cost of an unfenced Open is one
// primary-key read, as it always was).

type fenceKey struct{}

// WithFence marks ctx as one read that begins now (if it is not marked
// already): opens under it share the key-state reads that began after
// this moment.
func WithFence(ctx context.Context) context.Context {
	if _, ok := ctx.Value(fenceKey{}).(time.Time); ok {
		return ctx
	}
	return context.WithValue(ctx, fenceKey{}, time.Now())
}

// fenceStart is when the read of ctx began (now, for an unmarked one).
// The monotonic clock, never m.now: tests move that one.
func fenceStart(ctx context.Context) time.Time {
	if t, ok := ctx.Value(fenceKey{}).(time.Time); ok {
		return t
	}
	return time.Now()
}

// markChecked records that a state read begun at start found key id
// not destroyed (m.mu held). Only cached keys are marked: an evicted one
// is read again (with its state) when it is loaded.
func (m *Manager) markCheckedLocked(id string, start time.Time) {
	if _, ok := m.pc.m[id]; !ok {
		return
	}
	if start.After(m.pc.checked[id]) {
		m.pc.checked[id] = start
	}
}

// fresh reports whether key id's state was read after since (m.mu held).
func (m *Manager) freshLocked(id string, since time.Time) bool {
	t, ok := m.pc.checked[id]
	return ok && !t.Before(since)
}

// Observed takes the state of a key that the store read in the same
// statement as a version (store.Version.SealKey) as a read of that state
// begun at k.Began: a destroyed patient key is forgotten (its Open then
// reads it and refuses it), a live one that is cached counts as checked
// from k.Began, so that opening the version within a read that began no
// later (WithFence) costs no query of its own.
func (m *Manager) Observed(k store.SealKeyState) {
	if !IsPatientKey(k.ID) {
		return
	}
	if k.State == store.KeyDestroyed {
		m.Forget(k.ID)
		return
	}
	m.mu.Lock()
	m.markCheckedLocked(k.ID, k.Began)
	m.mu.Unlock()
}

// keysByID is the store's batched key read, if it has one.
type keysByID interface {
	KeysByID(ctx context.Context, ids []string) ([]store.Key, error)
}

// patientLive refuses patient key id if it was destroyed, reading its
// state from the store unless a read of it began after since.
func (m *Manager) patientLive(ctx context.Context, id string, since time.Time) error {
	m.mu.Lock()
	ok := m.freshLocked(id, since)
	m.mu.Unlock()
	if ok {
		return nil
	}
	start := time.Now()
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
	m.mu.Lock()
	m.markCheckedLocked(id, start)
	m.mu.Unlock()
	return nil
}

// Precheck reads, in one query, the state of the patient keys that seal
// envelopes (a search page) and that the read of ctx (WithFence) has not
// seen checked yet, so that opening them costs no read each. It only
// marks live keys: a destroyed one is forgotten, and its Open refuses
// it. An error is left to the opens too (each reads again).
func (m *Manager) Precheck(ctx context.Context, envelopes [][]byte) {
	since := fenceStart(ctx)
	var need []string
	m.mu.Lock()
	for _, env := range envelopes {
		kid, _ := seal.EnvelopeKeyID(env)
		if !IsPatientKey(kid) || m.freshLocked(kid, since) || slices.Contains(need, kid) {
			continue
		}
		if _, cached := m.pc.m[kid]; cached {
			need = append(need, kid)
		}
	}
	m.mu.Unlock()
	b, ok := m.st.(keysByID)
	if len(need) < 2 || !ok {
		return // one key: its Open reads it as cheaply
	}
	start := time.Now()
	ks, err := b.KeysByID(ctx, need)
	if err != nil {
		return
	}
	for _, k := range ks {
		if k.State == store.KeyDestroyed {
			m.Forget(k.ID)
			continue
		}
		m.mu.Lock()
		m.markCheckedLocked(k.ID, start)
		m.mu.Unlock()
	}
}
