// Package seal is Ward's one encryption barrier: envelope encryption of
// resource bodies and other protected data under per-tenant or per-patient
// data keys (DEKs), which are themselves wrapped by a key-encryption key
// (KEK).
//
// Guarantee: every byte sealed is AES-256-GCM ciphertext bound to its
// associated data; Open fails for any modified envelope or wrong AAD.
//
// An envelope is self-describing, so keys rotate while old data still opens:
//
//	0x01 | len(keyID) (1 byte) | keyID | nonce (12 bytes) | ciphertext | tag (16 bytes)
//
// The header (version, key id length, key id) is authenticated together with
// the caller's associated data, so an envelope cannot be relabelled to another
// key id even if two ids were ever registered with the same key. The nonce is
// random (crypto/rand, via cipher.NewGCMWithRandomNonce); with 96-bit random
// nonces a single data key should seal no more than 2^32 messages, which is
// why keys are per tenant or per patient compartment and rotate.
//
// The package imports only the standard library, never logs, and its errors
// carry key ids (which are not secret) but never key material or plaintext.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Errors returned by this package. They are wrapped with context; test for
// them with errors.Is.
var (
	// ErrUnknownKey is returned by Seal and Open when the keyring holds no
	// key under the requested (or the envelope's) key id.
	ErrUnknownKey = errors.New("seal: unknown key id")
	// ErrMalformed is returned when an envelope or a wrapped data key is
	// truncated, has an unknown version or an impossible key id length.
	ErrMalformed = errors.New("seal: malformed envelope")
	// ErrOpen is returned when authentication fails: the envelope or wrapped
	// key was modified, the associated data differs from the one it was
	// sealed with, or the key under that id is not the key it was sealed
	// with.
	ErrOpen = errors.New("seal: message authentication failed")
	// ErrInvalidKey is returned for key material of the wrong length or
	// encoding (a KEK or a DEK must be exactly 32 bytes).
	ErrInvalidKey = errors.New("seal: invalid key")
	// ErrInvalidKeyID is returned for a key id that is empty or longer than
	// MaxKeyIDLen bytes.
	ErrInvalidKeyID = errors.New("seal: invalid key id")
	// ErrKeyExists is returned by Keyring.Add when the id is already bound
	// to a different key: silently replacing a key would make everything
	// sealed under the old one unreadable.
	ErrKeyExists = errors.New("seal: key id already bound to a different key")
)

const (
	// KeySize is the size in bytes of a KEK and of a DEK (AES-256).
	KeySize = 32
	// MaxKeyIDLen is the longest key id an envelope can carry.
	MaxKeyIDLen = 255

	envelopeVersion = 0x01
	nonceSize       = 12
	tagSize         = 16
	// gcmOverhead is what cipher.NewGCMWithRandomNonce adds: nonce and tag.
	gcmOverhead = nonceSize + tagSize
)

// Overhead returns how many bytes an envelope under keyID adds to its
// plaintext.
func Overhead(keyID string) int { return 2 + len(keyID) + gcmOverhead }

func checkKeyID(keyID string) error {
	if len(keyID) == 0 || len(keyID) > MaxKeyIDLen {
		return fmt.Errorf("%w: length %d, want 1..%d bytes", ErrInvalidKeyID, len(keyID), MaxKeyIDLen)
	}
	return nil
}

// dataKey is one DEK ready for use; the AEAD is built once in Add because
// expanding the AES key schedule per message would dominate small seals.
type dataKey struct {
	aead cipher.AEAD
	key  [KeySize]byte // kept only to make Add idempotent
}

// Keyring maps key ids to data keys. It is safe for concurrent use; Seal and
// Open take only a read lock, and keys are added rarely. The zero Keyring is
// empty and ready to use.
type Keyring struct {
	mu   sync.RWMutex
	keys map[string]*dataKey
}

// NewKeyring returns an empty keyring.
func NewKeyring() *Keyring {
	return &Keyring{keys: make(map[string]*dataKey)}
}

// Add registers dek under keyID. The keyring keeps its own copy of dek.
// Adding the same key under the same id again is a no-op; adding a different
// key under an existing id returns ErrKeyExists.
func (r *Keyring) Add(keyID string, dek []byte) error {
	if err := checkKeyID(keyID); err != nil {
		return err
	}
	if len(dek) != KeySize {
		return fmt.Errorf("%w: data key for %q must be %d bytes, got %d", ErrInvalidKey, keyID, KeySize, len(dek))
	}
	r.mu.RLock()
	old := r.keys[keyID]
	r.mu.RUnlock()
	if old != nil {
		return sameKey(old, keyID, dek)
	}
	k, err := newDataKey(dek)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.keys[keyID]; old != nil {
		return sameKey(old, keyID, dek)
	}
	if r.keys == nil {
		r.keys = make(map[string]*dataKey)
	}
	r.keys[keyID] = k
	return nil
}

func sameKey(k *dataKey, keyID string, dek []byte) error {
	if subtle.ConstantTimeCompare(k.key[:], dek) == 1 {
		return nil
	}
	return fmt.Errorf("%w: %q", ErrKeyExists, keyID)
}

func newDataKey(dek []byte) (*dataKey, error) {
	k := &dataKey{}
	copy(k.key[:], dek)
	block, err := aes.NewCipher(k.key[:])
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	k.aead, err = cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return k, nil
}

// Has reports whether the keyring holds a key under keyID.
func (r *Keyring) Has(keyID string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.keys[keyID] != nil
}

// Remove forgets the key under keyID, if any. Envelopes sealed under it no
// longer open with this keyring (ErrUnknownKey); destroying every wrapped
// copy of the key as well is what crypto-shredding means.
func (r *Keyring) Remove(keyID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.keys, keyID)
}

// Len returns the number of keys in the keyring.
func (r *Keyring) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.keys)
}

// lookup takes the key id as bytes straight from an envelope; the
// m[string(b)] form does not allocate.
func (r *Keyring) lookup(keyID []byte) *dataKey {
	r.mu.RLock()
	k := r.keys[string(keyID)]
	r.mu.RUnlock()
	return k
}

// String never includes key material.
func (r *Keyring) String() string {
	if r == nil {
		return "seal.Keyring(nil)"
	}
	return fmt.Sprintf("seal.Keyring{keys: %d}", r.Len())
}

// GoString never includes key material.
func (r *Keyring) GoString() string { return r.String() }

// Format makes every fmt verb print the same redacted form as String, so a
// keyring logged by accident with %x or %#v shows no key bytes.
func (r *Keyring) Format(f fmt.State, _ rune) { fmt.Fprint(f, r.String()) }

// Seal encrypts plaintext under the key registered as keyID, bound to aad,
// and returns a new envelope.
func (r *Keyring) Seal(keyID string, plaintext, aad []byte) ([]byte, error) {
	return r.SealTo(nil, keyID, plaintext, aad)
}

// SealTo is Seal appending the envelope to dst and returning the extended
// slice. dst must not overlap plaintext. On error dst is returned unchanged.
func (r *Keyring) SealTo(dst []byte, keyID string, plaintext, aad []byte) ([]byte, error) {
	if err := checkKeyID(keyID); err != nil {
		return dst, err
	}
	r.mu.RLock()
	k := r.keys[keyID]
	r.mu.RUnlock()
	if k == nil {
		return dst, fmt.Errorf("%w: %q", ErrUnknownKey, keyID)
	}
	start := len(dst)
	out := slices.Grow(dst, Overhead(keyID)+len(plaintext))
	out = append(out, envelopeVersion, byte(len(keyID)))
	out = append(out, keyID...)
	ad := joinAD(out[start:], aad)
	out = k.aead.Seal(out, nil, plaintext, *ad)
	releaseAD(ad)
	return out, nil
}

// Open authenticates and decrypts envelope with the key named inside it and
// returns the plaintext. aad must equal the associated data given to Seal.
func (r *Keyring) Open(envelope, aad []byte) ([]byte, error) {
	return r.OpenTo(nil, envelope, aad)
}

// OpenTo is Open appending the plaintext to dst and returning the extended
// slice. dst must not overlap envelope. On error dst is returned unchanged.
func (r *Keyring) OpenTo(dst, envelope, aad []byte) ([]byte, error) {
	keyID, body, err := parseEnvelope(envelope)
	if err != nil {
		return dst, err
	}
	k := r.lookup(keyID)
	if k == nil {
		return dst, fmt.Errorf("%w: %q", ErrUnknownKey, keyID)
	}
	ad := joinAD(envelope[:2+len(keyID)], aad)
	out, err := k.aead.Open(dst, nil, body, *ad)
	releaseAD(ad)
	if err != nil {
		// The cause from crypto/cipher carries nothing useful; replace it
		// with the sentinel.
		return dst, fmt.Errorf("%w (key %q)", ErrOpen, keyID)
	}
	return out, nil
}

// EnvelopeKeyID returns the key id an envelope was sealed under, without
// decrypting it; storage uses it to load the right data key first.
func EnvelopeKeyID(envelope []byte) (string, error) {
	keyID, _, err := parseEnvelope(envelope)
	if err != nil {
		return "", err
	}
	return string(keyID), nil
}

// parseEnvelope splits an envelope into its key id and the GCM body (nonce,
// ciphertext, tag), checking only the framing.
func parseEnvelope(env []byte) (keyID, body []byte, err error) {
	if len(env) < 2 {
		return nil, nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(env))
	}
	if env[0] != envelopeVersion {
		return nil, nil, fmt.Errorf("%w: unknown version %#02x", ErrMalformed, env[0])
	}
	n := int(env[1])
	if n == 0 {
		return nil, nil, fmt.Errorf("%w: empty key id", ErrMalformed)
	}
	if len(env) < 2+n+gcmOverhead {
		return nil, nil, fmt.Errorf("%w: %d bytes, need at least %d", ErrMalformed, len(env), 2+n+gcmOverhead)
	}
	return env[2 : 2+n], env[2+n:], nil
}

// The GCM associated data is header || aad. Joining needs a scratch buffer;
// pooling it keeps Seal and Open at one allocation (the output) per call.
var adPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

const maxPooledAD = 16 << 10

func joinAD(header, aad []byte) *[]byte {
	p := adPool.Get().(*[]byte)
	*p = append(append((*p)[:0], header...), aad...)
	return p
}

func releaseAD(p *[]byte) {
	if cap(*p) > maxPooledAD {
		return
	}
	*p = (*p)[:0]
	adPool.Put(p)
}

// Shredded returns an envelope framed under keyID that holds nothing: its
// nonce, ciphertext and tag are random bytes, so no key opens it. Erasure
// writes it over the bodies it shreds (those still sealed under another
// key too), so that what is left reads as sealed under the destroyed key.
func Shredded(keyID string) ([]byte, error) {
	if err := checkKeyID(keyID); err != nil {
		return nil, err
	}
	out := make([]byte, 2+len(keyID)+gcmOverhead)
	out[0], out[1] = envelopeVersion, byte(len(keyID))
	copy(out[2:], keyID)
	if _, err := rand.Read(out[2+len(keyID):]); err != nil {
		return nil, err
	}
	return out, nil
}
