// Package keys manages the data keys (DEKs) that seal PHI: one per tenant,
// generated on first use, stored only wrapped by the key-encryption key, and
// unwrapped into a seal.Keyring at start. A key another node created later
// is loaded on first sight of its id.
package keys

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
	Commit(ctx context.Context, u *store.Unit) error
}

// Manager owns the keyring.
type Manager struct {
	st   Store
	kek  *seal.KEK
	ring *seal.Keyring
	now  func() time.Time

	mu      sync.Mutex
	current map[string]string        // tenant -> key id used for new seals
	blind   map[string]*seal.Blinder // tenant -> blind index hasher
	stream  map[string][]byte        // key id -> derived stream key (StreamKey)
}

// New loads and unwraps every data key. A KEK that does not match the one
// the keys were wrapped with is an error here, at start, not at first read.
func New(ctx context.Context, st Store, kek *seal.KEK, now func() time.Time) (*Manager, error) {
	if now == nil {
		now = time.Now
	}
	m := &Manager{st: st, kek: kek, ring: seal.NewKeyring(), now: now, current: map[string]string{}, blind: map[string]*seal.Blinder{}, stream: map[string][]byte{}}
	if err := m.load(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

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
		if !m.ring.Has(k.ID) {
			dek, err := m.kek.UnwrapDEK(k.ID, k.Wrapped)
			if err != nil {
				return fmt.Errorf("unwrap data key %s (is this the key-encryption key the database was created with? this one is %s): %w", k.ID, m.kek.ID(), err)
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
		m.current[k.Tenant] = k.ID // keys come oldest first: the newest wins
	}
	return nil
}

func keyIDFor(tenant string) string { return "t/" + tenant + "/1" }

// DataKey returns the id of the key that seals new data of tenant, creating
// the tenant's key on first use.
func (m *Manager) DataKey(ctx context.Context, tenant string) (string, error) {
	m.mu.Lock()
	id, ok := m.current[tenant]
	m.mu.Unlock()
	if ok {
		return id, nil
	}
	id = keyIDFor(tenant)
	dek, wrapped, err := m.kek.NewDEK(id)
	if err != nil {
		return "", fmt.Errorf("new data key: %w", err)
	}
	now := m.now().UTC()
	err = m.ledger().Commit(ctx, &store.Unit{Parts: []store.Part{store.NewKey{Key: &store.Key{ID: id, Purpose: DataKeyPurpose, Tenant: tenant, Wrapped: wrapped, Created: now}}}}, &audit.Record{Time: now, Tenant: tenant, Actor: "system", Role: "system", Action: "data-key-create",
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
		m.current[tenant] = id
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
	m.blind[tenant] = b
	return nil
}

// Blinder returns the tenant's blind index hasher (creating the tenant's
// data key on first use).
func (m *Manager) Blinder(ctx context.Context, tenant string) (*seal.Blinder, error) {
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
		if err := m.load(context.Background()); err != nil {
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
	return m.ring.Seal(keyID, plaintext, aad)
}

// Open opens an envelope, loading its key from the store if another node
// created it after this one started.
func (m *Manager) Open(envelope, aad []byte) ([]byte, error) {
	pt, err := m.ring.Open(envelope, aad)
	if errors.Is(err, seal.ErrUnknownKey) {
		if lerr := m.load(context.Background()); lerr != nil {
			return nil, lerr
		}
		return m.ring.Open(envelope, aad)
	}
	return pt, err
}
