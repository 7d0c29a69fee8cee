package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// ErrKeyFilePermissions is returned by CheckKeyFileMode when a key file can
// be read or written by its group or by others.
var ErrKeyFilePermissions = errors.New("seal: key file permissions too open")

const (
	wrappedVersion = 0x01
	// wrappedSize is version | nonce | encrypted DEK | tag.
	wrappedSize = 1 + nonceSize + KeySize + tagSize
	// maxKeyFileSize bounds what LoadKEKFile reads; a key file is ~45 bytes.
	maxKeyFileSize = 4096

	kekIDInfo   = "ward kek id v1"
	dekADPrefix = "ward/dek/v1/"
)

// KEK is a key-encryption key: it wraps and unwraps data keys and nothing
// else. It holds no raw key bytes after construction (only the AES key
// schedule inside the AEAD), and every fmt verb prints only its ID. Create
// one with NewKEK, ParseKEK, LoadKEKFile or GenerateKEKFile.
//
// The state sits behind a pointer so that even a KEK printed as an
// unexported field of some other struct (where fmt cannot call Format)
// shows an address, not the key schedule.
type KEK struct {
	s *kekState
}

type kekState struct {
	aead cipher.AEAD
	id   string
}

// NewKEK returns a KEK for the 32-byte key. The caller may wipe key
// afterwards; the KEK does not retain the slice.
func NewKEK(key []byte) (*KEK, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("%w: KEK must be %d bytes, got %d", ErrInvalidKey, KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(kekIDInfo))
	return &KEK{s: &kekState{aead: aead, id: "kek-" + hex.EncodeToString(mac.Sum(nil)[:8])}}, nil
}

// ParseKEK decodes a base64 KEK as found in WARD_KEY or a key file. Standard
// base64 is expected; URL-safe and unpadded forms are accepted too.
// Surrounding whitespace is ignored. Errors never echo the input.
func ParseKEK(b64 string) (*KEK, error) {
	s := strings.TrimSpace(b64)
	if s == "" {
		return nil, fmt.Errorf("%w: KEK is empty", ErrInvalidKey)
	}
	var key []byte
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawURLEncoding, base64.URLEncoding, base64.RawStdEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			key = b
			break
		}
	}
	if key == nil {
		return nil, fmt.Errorf("%w: KEK is not valid base64 (%d characters)", ErrInvalidKey, len(s))
	}
	defer clear(key)
	if len(key) != KeySize {
		return nil, fmt.Errorf("%w: KEK must decode to %d bytes, got %d", ErrInvalidKey, KeySize, len(key))
	}
	return NewKEK(key)
}

// LoadKEKFile reads a base64 KEK from the file at path. It does not check
// the file's permissions; call CheckKeyFileMode to decide what to do about
// a file others can read.
func LoadKEKFile(path string) (*KEK, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("seal: load key file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	defer clear(b)
	if err != nil {
		return nil, fmt.Errorf("seal: load key file %s: %w", path, err)
	}
	if len(b) > maxKeyFileSize {
		return nil, fmt.Errorf("%w: key file %s is larger than %d bytes", ErrInvalidKey, path, maxKeyFileSize)
	}
	k, err := ParseKEK(string(b))
	if err != nil {
		return nil, fmt.Errorf("seal: key file %s: %w", path, err)
	}
	return k, nil
}

// CheckKeyFileMode returns an error wrapping ErrKeyFilePermissions if the
// file at path grants any permission to its group or to others. It is a
// separate check so that the caller decides whether that is fatal or a
// warning. On Windows, where Unix permission bits mean nothing, it only
// checks that the file exists.
func CheckKeyFileMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("seal: check key file: %w", err)
	}
	if runtime.GOOS == "windows" {
		return nil
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %#o, want 0600 or stricter", ErrKeyFilePermissions, path, perm)
	}
	return nil
}

// GenerateKEKFile creates a new random KEK and writes it, base64 and a
// newline, to a new file at path with mode 0600. It refuses to overwrite an
// existing file (the old key would be lost, and with it every data key it
// wraps) and syncs the file and its directory before returning.
func GenerateKEKFile(path string) (*KEK, error) {
	var key [KeySize]byte
	defer clear(key[:])
	if _, err := rand.Read(key[:]); err != nil {
		return nil, fmt.Errorf("seal: generate KEK: %w", err)
	}
	k, err := NewKEK(key[:])
	if err != nil {
		return nil, err
	}
	text := make([]byte, base64.StdEncoding.EncodedLen(KeySize)+1)
	defer clear(text)
	base64.StdEncoding.Encode(text, key[:])
	text[len(text)-1] = '\n'

	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("seal: create key file: %w", err)
	}
	_, err = f.Write(text)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("seal: write key file %s: %w", path, err)
	}
	return k, nil
}

// syncDir makes the new directory entry durable. Windows cannot open a
// directory for syncing, and NTFS journals the entry anyway.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ID returns a stable, non-secret fingerprint of the KEK ("kek-" and 16 hex
// digits), to record which KEK wrapped a data key. It is a keyed hash, so
// it reveals nothing about the key.
func (k KEK) ID() string { return k.s.id }

// String returns the KEK's ID, never key material.
func (k KEK) String() string {
	if k.s == nil {
		return "seal.KEK{}"
	}
	return "seal.KEK{" + k.s.id + "}"
}

// GoString returns the KEK's ID, never key material.
func (k KEK) GoString() string { return k.String() }

// Format makes every fmt verb (%v, %+v, %#v, %x, ...) print the redacted
// form. The methods have value receivers so that KEK and *KEK both redact.
func (k KEK) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// NewDEK generates a random data key for keyID and returns it together with
// its wrapped form, which is what gets stored.
func (k *KEK) NewDEK(keyID string) (dek, wrapped []byte, err error) {
	if err := checkKeyID(keyID); err != nil {
		return nil, nil, err
	}
	dek = make([]byte, KeySize)
	if _, err := rand.Read(dek); err != nil {
		return nil, nil, fmt.Errorf("seal: generate data key: %w", err)
	}
	wrapped, err = k.WrapDEK(keyID, dek)
	if err != nil {
		return nil, nil, err
	}
	return dek, wrapped, nil
}

// WrapDEK encrypts dek under the KEK, bound to keyID, for storage or for
// re-wrapping under a new KEK. The result is
//
//	0x01 | nonce (12) | encrypted key (32) | tag (16)
//
// with "ward/dek/v1/"+keyID as associated data, so a wrapped key moved to
// another key id does not unwrap.
func (k *KEK) WrapDEK(keyID string, dek []byte) ([]byte, error) {
	if err := checkKeyID(keyID); err != nil {
		return nil, err
	}
	if len(dek) != KeySize {
		return nil, fmt.Errorf("%w: data key for %q must be %d bytes, got %d", ErrInvalidKey, keyID, KeySize, len(dek))
	}
	out := make([]byte, 1, wrappedSize)
	out[0] = wrappedVersion
	return k.s.aead.Seal(out, nil, dek, dekAD(keyID)), nil
}

// UnwrapDEK reverses WrapDEK. It returns ErrMalformed for a value of the
// wrong size or version and ErrOpen if the value was modified, belongs to
// another key id, or was wrapped by another KEK.
func (k *KEK) UnwrapDEK(keyID string, wrapped []byte) ([]byte, error) {
	if err := checkKeyID(keyID); err != nil {
		return nil, err
	}
	if len(wrapped) != wrappedSize || wrapped[0] != wrappedVersion {
		return nil, fmt.Errorf("%w: wrapped data key for %q (%d bytes)", ErrMalformed, keyID, len(wrapped))
	}
	dek, err := k.s.aead.Open(nil, nil, wrapped[1:], dekAD(keyID))
	if err != nil {
		return nil, fmt.Errorf("%w: unwrap data key %q with %s", ErrOpen, keyID, k.s.id)
	}
	return dek, nil
}

func dekAD(keyID string) []byte {
	return append([]byte(dekADPrefix), keyID...)
}
