//go:build cgo

// Package pkcs11 is a keys.KeyWrapper over a PKCS#11 token (an HSM, or
// SoftHSM in tests) through github.com/ThalesGroup/crypto11: data keys are
// encrypted and decrypted with AES-256-GCM inside the token by a secret
// key that is generated there, sensitive and not extractable, so the
// key-encryption key never exists in Ward's memory.
//
// KEK versions are token keys labelled "<label>.<N>"; the newest is used
// for wrapping. A wrapped key is
//
//	0x02 | version (4 bytes, big endian) | nonce (12) | encrypted key (32) | tag (16)
//
// with "ward/dek/pkcs11/v1/"+keyID as associated data, so a wrapped key
// moved to another key id does not unwrap.
package pkcs11

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/ThalesGroup/crypto11"

	"github.com/wardhealth/ward/internal/keys"
)

// Config names the module, the token and the key.
type Config struct {
	// Module is the path of the PKCS#11 library
	// (/usr/lib/softhsm/libsofthsm2.so).
	Module string
	// TokenLabel selects the token; Pin is its user PIN.
	TokenLabel, Pin string
	// KeyLabel is the label of the KEK versions ("ward-kek").
	KeyLabel string
}

const (
	format      = 0x02
	headerSize  = 1 + 4
	nonceSize   = 12
	wrappedSize = headerSize + nonceSize + 32 + 16
	adPrefix    = "ward/dek/pkcs11/v1/"
)

// Wrapper wraps data keys with a token's AES key.
type Wrapper struct {
	ctx       *crypto11.Context
	label     string
	closeOnce sync.Once

	mu       sync.Mutex
	versions map[int]cipher.AEAD // found so far
	current  int
}

var (
	_ keys.KeyWrapper = (*Wrapper)(nil)
	_ keys.Rotator    = (*Wrapper)(nil)
	_ keys.Retirer    = (*Wrapper)(nil)
	_ keys.Prober     = (*Wrapper)(nil)
	_ keys.Current    = (*Wrapper)(nil)
)

// New logs in to the token and finds the KEK versions, generating the
// first in the token if there is none. A missing module, an unknown token
// or a wrong PIN is an error: Ward does not start without its KEK.
func New(cfg Config) (*Wrapper, error) {
	if cfg.Module == "" || cfg.TokenLabel == "" {
		return nil, errors.New("pkcs11: a module path and a token label are needed")
	}
	if cfg.KeyLabel == "" {
		cfg.KeyLabel = "ward-kek"
	}
	c, err := crypto11.Configure(&crypto11.Config{Path: cfg.Module, TokenLabel: cfg.TokenLabel, Pin: cfg.Pin})
	if err != nil {
		// crypto11's message names the failing call (C_Login: a wrong
		// PIN), never the PIN.
		return nil, fmt.Errorf("pkcs11: open token %q: %w", cfg.TokenLabel, err)
	}
	w := &Wrapper{ctx: c, label: cfg.KeyLabel, versions: map[int]cipher.AEAD{}}
	if err := w.refresh(); err != nil {
		c.Close()
		return nil, err
	}
	if w.current == 0 {
		if _, err := w.RotateKEK(context.Background()); err != nil {
			c.Close()
			return nil, err
		}
	}
	return w, nil
}

// Close logs out of the token; a second Close does nothing (crypto11
// panics on one).
func (w *Wrapper) Close() error {
	var err error
	w.closeOnce.Do(func() { err = w.ctx.Close() })
	return err
}

func (w *Wrapper) keyLabel(v int) string { return w.label + "." + strconv.Itoa(v) }

func (w *Wrapper) version(v int) string { return "pkcs11:" + w.keyLabel(v) }

// refresh finds the versions from the newest known one up: another node
// may have rotated since.
func (w *Wrapper) refresh() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for v := w.current + 1; ; v++ {
		a, err := w.find(v)
		if err != nil {
			return err
		}
		if a == nil {
			return nil
		}
		w.versions[v], w.current = a, v
	}
}

// key returns version v's token key, nil if there is none.
func (w *Wrapper) key(v int) (*crypto11.SecretKey, error) {
	ks, err := w.ctx.FindKeys(nil, []byte(w.keyLabel(v)))
	if err != nil {
		return nil, fmt.Errorf("pkcs11: find key %s: %w", w.keyLabel(v), err)
	}
	if len(ks) == 0 {
		return nil, nil
	}
	return ks[0], nil
}

// find returns version v's cipher, nil if the token has no such key.
func (w *Wrapper) find(v int) (cipher.AEAD, error) {
	k, err := w.key(v)
	if k == nil || err != nil {
		return nil, err
	}
	a, err := k.NewGCM()
	if err != nil {
		return nil, fmt.Errorf("pkcs11: key %s: %w", w.keyLabel(v), err)
	}
	return a, nil
}

func (w *Wrapper) aead(v int) (cipher.AEAD, error) {
	w.mu.Lock()
	a := w.versions[v]
	w.mu.Unlock()
	if a != nil {
		return a, nil
	}
	if err := w.refresh(); err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if a = w.versions[v]; a == nil {
		return nil, fmt.Errorf("pkcs11: the token has no key %s", w.keyLabel(v))
	}
	return a, nil
}

// Wrap implements keys.KeyWrapper, under the newest version the token has.
func (w *Wrapper) Wrap(_ context.Context, keyID string, dek []byte) ([]byte, string, error) {
	if err := w.refresh(); err != nil {
		return nil, "", err
	}
	w.mu.Lock()
	v, a := w.current, w.versions[w.current]
	w.mu.Unlock()
	out := make([]byte, headerSize+nonceSize, wrappedSize)
	out[0] = format
	binary.BigEndian.PutUint32(out[1:headerSize], uint32(v))
	nonce := out[headerSize:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, "", err
	}
	sealed := a.Seal(nil, nonce, dek, []byte(adPrefix+keyID))
	return append(out, sealed...), w.version(v), nil
}

// Unwrap implements keys.KeyWrapper.
func (w *Wrapper) Unwrap(_ context.Context, keyID string, wrapped []byte) ([]byte, error) {
	if len(wrapped) != wrappedSize || wrapped[0] != format {
		return nil, fmt.Errorf("pkcs11: wrapped key %s is not a PKCS#11 wrapped key (%d bytes)", keyID, len(wrapped))
	}
	v := int(binary.BigEndian.Uint32(wrapped[1:headerSize]))
	a, err := w.aead(v)
	if err != nil {
		return nil, err
	}
	dek, err := a.Open(nil, wrapped[headerSize:headerSize+nonceSize], wrapped[headerSize+nonceSize:], []byte(adPrefix+keyID))
	if err != nil {
		return nil, fmt.Errorf("pkcs11: unwrap %s with %s: %w", keyID, w.keyLabel(v), err)
	}
	return dek, nil
}

// RotateKEK implements keys.Rotator: a new AES-256 key is generated in the
// token, sensitive and not extractable.
func (w *Wrapper) RotateKEK(context.Context) (string, error) {
	if err := w.refresh(); err != nil {
		return "", err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	v := w.current + 1
	label := []byte(w.keyLabel(v))
	k, err := w.ctx.GenerateSecretKeyWithLabel(label, label, 256, crypto11.CipherAES)
	if err != nil {
		return "", fmt.Errorf("pkcs11: generate key %s: %w", label, err)
	}
	a, err := k.NewGCM()
	if err != nil {
		return "", fmt.Errorf("pkcs11: key %s: %w", label, err)
	}
	w.versions[v], w.current = a, v
	return w.version(v), nil
}

// CurrentKEK implements keys.Current.
func (w *Wrapper) CurrentKEK(context.Context) (string, error) {
	if err := w.refresh(); err != nil {
		return "", err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.version(w.current), nil
}

// RetireOldKEKs implements keys.Retirer: the older versions are deleted
// from the token.
func (w *Wrapper) RetireOldKEKs(context.Context) error {
	if err := w.refresh(); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for v := w.current - 1; v >= 1; v-- {
		k, err := w.key(v)
		if err != nil {
			return err
		}
		if k != nil {
			if err := k.Delete(); err != nil {
				return fmt.Errorf("pkcs11: delete key %s: %w", w.keyLabel(v), err)
			}
		}
		delete(w.versions, v)
	}
	return nil
}

// Probe implements keys.Prober: the token still answers with the current
// key.
func (w *Wrapper) Probe(context.Context) error {
	w.mu.Lock()
	v := w.current
	w.mu.Unlock()
	k, err := w.key(v)
	if err != nil {
		return err
	}
	if k == nil {
		return fmt.Errorf("pkcs11: the token has no key %s", w.keyLabel(v))
	}
	return nil
}
