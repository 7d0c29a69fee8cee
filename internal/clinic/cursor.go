package clinic

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
)

// Cursors are sealed (AES-256-GCM under Options.CursorKey, the route's
// kind as associated data): opaque to the client, refused when altered or
// used on another list, and free of PHI in the URL even when the sort key
// is a name.

var errCursor = errors.New("clinic: not a cursor this server issued")

func (a *API) sealCursor(kind string, v any) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, a.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(a.aead.Seal(nonce, nonce, plain, []byte(kind))), nil
}

func (a *API) openCursor(kind, s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < a.aead.NonceSize() {
		return errCursor
	}
	n := a.aead.NonceSize()
	plain, err := a.aead.Open(nil, b[:n], b[n:], []byte(kind))
	if err != nil {
		return errCursor
	}
	if json.Unmarshal(plain, v) != nil {
		return errCursor
	}
	return nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) == 0 {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
	}
	if len(key) != 32 {
		return nil, errors.New("clinic: the cursor key must have 32 bytes")
	}
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}
