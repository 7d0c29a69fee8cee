// Package keys manages the data keys (DEKs) that seal PHI: one per tenant
// (per scope and version: a tenant's keys today, a patient's later),
// generated on first use, stored only wrapped by the key-encryption key
// (a KeyWrapper: a file, a PKCS#11 token or a transit engine), and
// unwrapped into a seal.Keyring at start. A key another node created later
// is loaded on first sight of its id.
//
// Guarantees: start fails if any stored data key cannot be unwrapped (the
// KEK is unreachable or is not the one the keys were wrapped with); once
// Watch runs, a node whose KEK has not answered for longer than the
// configured cache lifetime refuses to seal or open anything
// (ErrKEKUnavailable) until it answers again. Key creation and rotation
// are ledger records.
package keys

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/store"
)

// DataKeyPurpose is the store.Key purpose of wrapped data keys.
const DataKeyPurpose = "dek"

// SystemTenant owns the data key that seals Ward's own secrets (signing
// keys); no PHI is sealed under it.
const SystemTenant = "_system"

// Store is what the manager needs from storage.
type Store interface {
	Keys(ctx context.Context, purpose string) ([]store.Key, error)
	Key(ctx context.Context, id string) (*store.Key, error)
	Commit(ctx context.Context, u *store.Unit) error
}

// TenantScope is the scope of a tenant's own data keys; per-patient keys
// will have their own scope.
const TenantScope = "tenant"

// Manager owns the keyring.
type Manager struct {
	st   Store
	w    KeyWrapper
	ring *seal.Keyring
	now  func() time.Time

	// lastOK is when the KEK last answered (unix nanoseconds); ttl, once
	// Watch runs, how long after that the keyring may still be used.
	lastOK atomic.Int64
	ttl    atomic.Int64

	mu       sync.Mutex
	current  map[string]string        // tenant -> key id used for new seals
	version  map[string]int64         // tenant -> version of current
	blind    map[string]*seal.Blinder // tenant -> blind index hasher
	blindKey map[string][]byte        // tenant -> the blind index key
	stream   map[string][]byte        // key id -> derived stream key (StreamKey)
	pc       patientCache             // unwrapped patient keys (patient.go)
}

// New loads and unwraps every data key with a local KEK (FileWrapper). A
// KEK that does not match the one the keys were wrapped with is an error
// here, at start, not at first read.
func New(ctx context.Context, st Store, kek *seal.KEK, now func() time.Time) (*Manager, error) {
	return NewWithWrapper(ctx, st, NewFileWrapper(kek), now)
}

// NewWithWrapper is New for any KeyWrapper. An unreachable KEK (Probe
// fails, or an unwrap does) fails the start with ErrKEKUnavailable.
func NewWithWrapper(ctx context.Context, st Store, w KeyWrapper, now func() time.Time) (*Manager, error) {
	if now == nil {
		now = time.Now
	}
	m := &Manager{st: st, w: w, ring: seal.NewKeyring(), now: now, current: map[string]string{}, version: map[string]int64{}, blind: map[string]*seal.Blinder{}, blindKey: map[string][]byte{}, stream: map[string][]byte{}, pc: newPatientCache()}
	if p, ok := w.(Prober); ok {
		if err := p.Probe(ctx); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrKEKUnavailable, err)
		}
	}
	if err := m.load(ctx); err != nil {
		return nil, err
	}
	m.answered()
	return m, nil
}

// Wrapper returns the manager's KEK wrapper.
func (m *Manager) Wrapper() KeyWrapper { return m.w }

// ledger is the audit recorder the manager writes key creations through.
func (m *Manager) ledger() *store.Recorder { return store.NewRecorder(m.st) }

func (m *Manager) load(ctx context.Context) error {
	ks, err := m.st.Keys(ctx, DataKeyPurpose)
	if err != nil {
		return fmt.Errorf("load data keys: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range ks {
		if k.Scope == BlindScope {
			if err := m.loadBlind(ctx, k); err != nil {
				return err
			}
			continue
		}
		if k.Scope != "" && k.Scope != TenantScope {
			continue // a later scope (per patient) this version does not use
		}
		if !m.ring.Has(k.ID) {
			dek, err := m.w.Unwrap(ctx, k.ID, k.Wrapped)
			if err != nil {
				return fmt.Errorf("%w: unwrap data key %s (wrapped by %q; is this the key-encryption key the database was created with?): %v", ErrKEKUnavailable, k.ID, k.KEK, err)
			}
			if err := m.ring.Add(k.ID, dek); err != nil {
				return err
			}
			if err := m.setBlinder(k.Tenant, k.ID, dek); err != nil {
				return err
			}
			if err := m.setStreamKey(k.ID, dek); err != nil {
				return err
			}
		}
		if k.State == store.KeyRetiring {
			// It opens what it sealed, never seals again (the store
			// refuses it); a retiring version is never the newest.
			if m.current[k.Tenant] == k.ID {
				delete(m.current, k.Tenant)
				delete(m.version, k.Tenant)
			}
			continue
		}
		if k.Version >= m.version[k.Tenant] {
			m.current[k.Tenant], m.version[k.Tenant] = k.ID, k.Version // the newest version seals
		}
	}
	return nil
}

// loadBlind sets the tenant's blind index key from its own wrapped row
// (kept once the first data key may be destroyed, see RotateData).
func (m *Manager) loadBlind(ctx context.Context, k store.Key) error {
	if _, ok := m.blind[k.Tenant]; ok {
		return nil
	}
	ik, err := m.w.Unwrap(ctx, k.ID, k.Wrapped)
	if err != nil {
		return fmt.Errorf("%w: unwrap blind index key %s: %v", ErrKEKUnavailable, k.ID, err)
	}
	b, err := seal.NewBlinder(ik)
	if err != nil {
		return err
	}
	m.blind[k.Tenant], m.blindKey[k.Tenant] = b, ik
	return nil
}

func keyIDFor(tenant string) string { return versionID(tenant, 1) }

// versionID names version v of tenant's data key.
func versionID(tenant string, v int64) string { return "t/" + tenant + "/" + strconv.FormatInt(v, 10) }

// BlindScope is the scope of a tenant's blind index key once it is kept
// in its own row.
const BlindScope = "blind-index"

// answered notes that the KEK answered now.
func (m *Manager) answered() { m.lastOK.Store(m.now().UnixNano()) }

// usable fails closed once the KEK has been silent for longer than the
// cache lifetime (only while Watch runs: one-shot commands never expire).
func (m *Manager) usable() error {
	ttl := m.ttl.Load()
	if ttl <= 0 {
		return nil
	}
	if silent := m.now().UnixNano() - m.lastOK.Load(); silent > ttl {
		return fmt.Errorf("%w: no answer for %s (cache lifetime %s)", ErrKEKUnavailable, time.Duration(silent).Round(time.Second), time.Duration(ttl))
	}
	return nil
}

// Watch probes the KEK every interval until ctx ends, and from now on
// refuses to seal or open once it has not answered for longer than ttl
// (ttl <= 0: never). A wrapper without Probe always answers.
func (m *Manager) Watch(ctx context.Context, every, ttl time.Duration) {
	m.answered()
	m.ttl.Store(int64(ttl))
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.probe(ctx, every)
		}
	}
}

func (m *Manager) probe(ctx context.Context, timeout time.Duration) {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if p, ok := m.w.(Prober); ok && p.Probe(pctx) != nil {
		return
	}
	m.answered()
	m.sweepPatients()
	// Learn the data-key versions other nodes started (rotate-data), so
	// that new writes here are sealed under the newest too.
	m.load(pctx)
}

// DataKey returns the id of the key that seals new data of tenant, creating
// the tenant's key on first use.
func (m *Manager) DataKey(ctx context.Context, tenant string) (string, error) {
	m.mu.Lock()
	id, ok := m.current[tenant]
	m.mu.Unlock()
	if ok {
		return id, nil
	}
	if err := m.usable(); err != nil {
		return "", err
	}
	id = keyIDFor(tenant)
	dek := make([]byte, seal.KeySize)
	if _, err := rand.Read(dek); err != nil {
		return "", fmt.Errorf("new data key: %w", err)
	}
	wrapped, kek, err := m.w.Wrap(ctx, id, dek)
	if err != nil {
		return "", fmt.Errorf("%w: wrap new data key: %v", ErrKEKUnavailable, err)
	}
	now := m.now().UTC()
	key := &store.Key{ID: id, Purpose: DataKeyPurpose, Tenant: tenant, Scope: TenantScope, Version: 1, KEK: kek, Wrapped: wrapped, Created: now}
	err = m.ledger().Commit(ctx, &store.Unit{Parts: []store.Part{store.NewKey{Key: key}}}, &audit.Record{Time: now, Tenant: tenant, Actor: "system", Role: "system", Action: "data-key-create",
		Entities: []string{"data-key/" + id}})
	switch {
	case errors.Is(err, store.ErrConflict):
		// Another process created it first: use theirs.
	case err != nil:
		return "", err
	default:
		m.mu.Lock()
		if !m.ring.Has(id) {
			if err := m.ring.Add(id, dek); err != nil {
				m.mu.Unlock()
				return "", err
			}
			if err := m.setBlinder(tenant, id, dek); err != nil {
				m.mu.Unlock()
				return "", err
			}
			if err := m.setStreamKey(id, dek); err != nil {
				m.mu.Unlock()
				return "", err
			}
		}
		m.current[tenant], m.version[tenant] = id, 1
		m.mu.Unlock()
		return id, nil
	}
	if err := m.load(ctx); err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if id, ok := m.current[tenant]; ok {
		return id, nil
	}
	return "", fmt.Errorf("data key of tenant %s is missing after creation", tenant)
}

// blindPurpose names the HKDF purpose of blind index keys.
const blindPurpose = "blind-index"

// setBlinder derives the tenant's blind index key from its first data key.
// Only the first: blind indexes must stay comparable across key rotation,
// so the index key does not change when a new data key seals new bodies.
func (m *Manager) setBlinder(tenant, keyID string, dek []byte) error {
	if _, ok := m.blind[tenant]; ok || keyID != keyIDFor(tenant) {
		return nil
	}
	ik, err := seal.DeriveKey(dek, blindPurpose)
	if err != nil {
		return err
	}
	b, err := seal.NewBlinder(ik)
	if err != nil {
		return err
	}
	m.blind[tenant], m.blindKey[tenant] = b, ik
	return nil
}

// Blinder returns the tenant's blind index hasher (creating the tenant's
// data key on first use).
func (m *Manager) Blinder(ctx context.Context, tenant string) (*seal.Blinder, error) {
	if err := m.usable(); err != nil {
		return nil, err
	}
	if _, err := m.DataKey(ctx, tenant); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blind[tenant]
	if !ok {
		return nil, fmt.Errorf("blind index key of tenant %s is missing", tenant)
	}
	return b, nil
}

// streamPurpose names the HKDF purpose of the keys that seal Binary
// content streams (internal/docseal).
const streamPurpose = "binary-stream"

// setStreamKey derives the stream key of data key keyID; the data key
// itself never leaves the keyring.
func (m *Manager) setStreamKey(keyID string, dek []byte) error {
	k, err := seal.DeriveKey(dek, streamPurpose)
	if err != nil {
		return err
	}
	m.stream[keyID] = k
	return nil
}

// StreamKey returns the key derived from data key keyID for sealing
// content streams (never the data key itself), loading the key from the
// store if another node created it after this one started.
func (m *Manager) StreamKey(keyID string) ([]byte, error) {
	m.mu.Lock()
	k, ok := m.stream[keyID]
	m.mu.Unlock()
	if !ok {
		var err error
		if IsPatientKey(keyID) {
			err = m.ensurePatient(context.Background(), keyID)
		} else {
			err = m.load(context.Background())
		}
		if err != nil {
			return nil, err
		}
		m.mu.Lock()
		k, ok = m.stream[keyID]
		m.mu.Unlock()
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s", seal.ErrUnknownKey, keyID)
	}
	return k, nil
}

// Seal seals plaintext under keyID.
func (m *Manager) Seal(keyID string, plaintext, aad []byte) ([]byte, error) {
	if err := m.usable(); err != nil {
		return nil, err
	}
	out, err := m.ring.Seal(keyID, plaintext, aad)
	if errors.Is(err, seal.ErrUnknownKey) && IsPatientKey(keyID) {
		// Evicted between PatientKey and here: load it again.
		if lerr := m.ensurePatient(context.Background(), keyID); lerr != nil {
			return nil, lerr
		}
		return m.ring.Seal(keyID, plaintext, aad)
	}
	return out, err
}

// Open opens an envelope, loading its key from the store if another node
// created it after this one started. A patient's key is refused if it
// was destroyed, even if this node holds it (the state is read afresh).
func (m *Manager) Open(envelope, aad []byte) ([]byte, error) {
	return m.OpenContext(context.Background(), envelope, aad)
}

// OpenContext is Open within the read of ctx: with WithFence, a patient
// key's state is read at most once per read (and not at all when
// another read began after it and read it), not once per version.
func (m *Manager) OpenContext(ctx context.Context, envelope, aad []byte) ([]byte, error) {
	if err := m.usable(); err != nil {
		return nil, err
	}
	since := fenceStart(ctx)
	if kid, _ := seal.EnvelopeKeyID(envelope); IsPatientKey(kid) {
		// Loading it reads its state too, after since.
		if err := m.ensurePatient(ctx, kid); err != nil && !errors.Is(err, seal.ErrUnknownKey) {
			return nil, err
		}
		if err := m.patientLive(ctx, kid, since); err != nil {
			return nil, err
		}
	}
	pt, err := m.ring.Open(envelope, aad)
	if errors.Is(err, seal.ErrUnknownKey) {
		var lerr error
		if kid, _ := seal.EnvelopeKeyID(envelope); IsPatientKey(kid) {
			lerr = m.ensurePatient(ctx, kid)
		} else {
			lerr = m.load(ctx)
		}
		if lerr != nil {
			return nil, lerr
		}
		return m.ring.Open(envelope, aad)
	}
	return pt, err
}
