package seal

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// testKey returns a deterministic 32-byte key; tests never need real
// randomness for the key itself.
func testKey(seed byte) []byte {
	k := make([]byte, KeySize)
	for i := range k {
		k[i] = seed + byte(i)*7
	}
	return k
}

func newTestKeyring(t testing.TB, ids ...string) *Keyring {
	t.Helper()
	r := NewKeyring()
	for i, id := range ids {
		if err := r.Add(id, testKey(byte(i+1))); err != nil {
			t.Fatalf("Add(%q): %v", id, err)
		}
	}
	return r
}

// isSealError reports whether err is one of the documented Open failures.
func isSealError(err error) bool {
	return errors.Is(err, ErrMalformed) || errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrOpen)
}

func TestSealOpenRoundTrip(t *testing.T) {
	longID := strings.Repeat("x", MaxKeyIDLen)
	r := newTestKeyring(t, "k1", "tenant/acme/2", longID)
	tests := []struct {
		name      string
		keyID     string
		plaintext []byte
		aad       []byte
	}{
		{"empty plaintext nil aad", "k1", nil, nil},
		{"empty plaintext with aad", "k1", []byte{}, AAD("acme", "Patient", "p1", 1)},
		{"one byte", "k1", []byte{0}, AAD("acme", "Patient", "p1", 1)},
		{"json body", "tenant/acme/2", []byte(`{"resourceType":"Patient","name":[{"family":"Doe"}]}`), AAD("acme", "Patient", "p1", 7)},
		{"2 KiB", "k1", bytes.Repeat([]byte("a"), 2048), AAD("acme", "Observation", "o", 1)},
		{"1 MiB", "k1", bytes.Repeat([]byte{0xab}, 1<<20), AAD("acme", "Binary", "b", 3)},
		{"longest key id", longID, []byte("x"), nil},
		{"large aad", "k1", []byte("x"), bytes.Repeat([]byte("aad"), 10000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := r.Seal(tt.keyID, tt.plaintext, tt.aad)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if got, want := len(env), Overhead(tt.keyID)+len(tt.plaintext); got != want {
				t.Errorf("len(envelope) = %d, want %d", got, want)
			}
			if env[0] != 0x01 || int(env[1]) != len(tt.keyID) || string(env[2:2+len(tt.keyID)]) != tt.keyID {
				t.Errorf("envelope header = % x, want 01 | %d | %q", env[:min(len(env), 8)], len(tt.keyID), tt.keyID)
			}
			if len(tt.plaintext) >= 8 && bytes.Contains(env, tt.plaintext[:8]) && !bytes.Equal(tt.plaintext[:8], bytes.Repeat(tt.plaintext[:1], 8)) {
				t.Errorf("envelope contains plaintext")
			}
			id, err := EnvelopeKeyID(env)
			if err != nil || id != tt.keyID {
				t.Errorf("EnvelopeKeyID = %q, %v; want %q", id, err, tt.keyID)
			}
			got, err := r.Open(env, tt.aad)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tt.plaintext) {
				t.Errorf("Open returned %d bytes, want the %d sealed", len(got), len(tt.plaintext))
			}
		})
	}
}

func TestSealToOpenToAppend(t *testing.T) {
	r := newTestKeyring(t, "k1")
	aad := AAD("t", "Patient", "1", 1)
	prefix := []byte("prefix")
	env, err := r.SealTo(bytes.Clone(prefix), "k1", []byte("hello"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(env, prefix) {
		t.Fatalf("SealTo did not keep dst")
	}
	out, err := r.OpenTo([]byte("pt:"), env[len(prefix):], aad)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "pt:hello" {
		t.Fatalf("OpenTo = %q, want %q", out, "pt:hello")
	}
	// On error the dst comes back unchanged.
	dst := []byte("keep")
	if got, err := r.OpenTo(dst, env[len(prefix):], nil); err == nil || string(got) != "keep" {
		t.Fatalf("OpenTo on failure = %q, %v", got, err)
	}
	if got, err := r.SealTo(dst, "nope", nil, nil); err == nil || string(got) != "keep" {
		t.Fatalf("SealTo on failure = %q, %v", got, err)
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	r := newTestKeyring(t, "k1")
	seen := map[string]bool{}
	for range 100 {
		env, err := r.Seal("k1", []byte("same"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if seen[string(env)] {
			t.Fatal("two seals of the same message produced the same envelope")
		}
		seen[string(env)] = true
	}
}

// TestEveryBitFlipFails flips each bit of a sealed envelope in turn. The
// keyring holds the same key under "k1" and "k0", which differ in one bit,
// so a flip in the key id finds a key that would decrypt: only binding the
// header into the associated data makes that fail.
func TestEveryBitFlipFails(t *testing.T) {
	r := NewKeyring()
	for _, id := range []string{"k1", "k0", "j1", "k3"} {
		if err := r.Add(id, testKey(9)); err != nil {
			t.Fatal(err)
		}
	}
	aad := AAD("acme", "Patient", "p1", 1)
	env, err := r.Seal("k1", []byte("hello, world"), aad)
	if err != nil {
		t.Fatal(err)
	}
	for i := range len(env) * 8 {
		mod := bytes.Clone(env)
		mod[i/8] ^= 1 << (i % 8)
		pt, err := r.Open(mod, aad)
		if err == nil {
			t.Fatalf("bit %d (byte %d) flipped: Open succeeded with %q", i, i/8, pt)
		}
		if !isSealError(err) {
			t.Fatalf("bit %d flipped: error %v is not a documented sentinel", i, err)
		}
		if i/8 >= 4 && !errors.Is(err, ErrOpen) { // past the header: nonce, ciphertext, tag
			t.Errorf("bit %d flipped: got %v, want ErrOpen", i, err)
		}
	}
}

func TestWrongAADFails(t *testing.T) {
	r := newTestKeyring(t, "k1")
	aad := AAD("acme", "Patient", "p1", 3)
	env, err := r.Seal("k1", []byte("body"), aad)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		aad  []byte
	}{
		{"other tenant", AAD("acme2", "Patient", "p1", 3)},
		{"other type", AAD("acme", "Observation", "p1", 3)},
		{"other id", AAD("acme", "Patient", "p2", 3)},
		{"other version", AAD("acme", "Patient", "p1", 4)},
		{"version zero", AAD("acme", "Patient", "p1", 0)},
		{"negative version", AAD("acme", "Patient", "p1", -3)},
		{"fields shifted", AAD("acmePatient", "", "p1", 3)},
		{"tenant and id swapped", AAD("p1", "Patient", "acme", 3)},
		{"nil", nil},
		{"truncated", aad[:len(aad)-1]},
		{"extended", append(bytes.Clone(aad), 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Open(env, tt.aad)
			if !errors.Is(err, ErrOpen) {
				t.Fatalf("Open with %s: err = %v, want ErrOpen", tt.name, err)
			}
			if strings.Contains(err.Error(), "body") {
				t.Errorf("error %q contains plaintext", err)
			}
		})
	}
	if _, err := r.Open(env, aad); err != nil {
		t.Fatalf("Open with the right AAD: %v", err)
	}
}

func TestUnknownAndWrongKey(t *testing.T) {
	r := newTestKeyring(t, "k1")
	env, err := r.Seal("k1", []byte("body"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Seal("k2", []byte("body"), nil); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Seal with unknown key: %v, want ErrUnknownKey", err)
	}
	if _, err := NewKeyring().Open(env, nil); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Open on an empty keyring: %v, want ErrUnknownKey", err)
	}
	other := NewKeyring()
	if err := other.Add("k1", testKey(99)); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Open(env, nil); !errors.Is(err, ErrOpen) {
		t.Errorf("Open with a different key under the same id: %v, want ErrOpen", err)
	}
	r.Remove("k1")
	if _, err := r.Open(env, nil); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Open after Remove: %v, want ErrUnknownKey", err)
	}
	for _, id := range []string{"", strings.Repeat("x", MaxKeyIDLen+1)} {
		if _, err := r.Seal(id, nil, nil); !errors.Is(err, ErrInvalidKeyID) {
			t.Errorf("Seal with key id of length %d: %v, want ErrInvalidKeyID", len(id), err)
		}
	}
}

func TestTruncatedEnvelopes(t *testing.T) {
	r := newTestKeyring(t, "key-1")
	env, err := r.Seal("key-1", []byte("some plaintext"), nil)
	if err != nil {
		t.Fatal(err)
	}
	minLen := Overhead("key-1")
	for n := range len(env) {
		_, err := r.Open(env[:n], nil)
		_, idErr := EnvelopeKeyID(env[:n])
		if n < minLen {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("Open(env[:%d]) = %v, want ErrMalformed", n, err)
			}
			if !errors.Is(idErr, ErrMalformed) {
				t.Errorf("EnvelopeKeyID(env[:%d]) = %v, want ErrMalformed", n, idErr)
			}
			continue
		}
		if !errors.Is(err, ErrOpen) {
			t.Errorf("Open(env[:%d]) = %v, want ErrOpen", n, err)
		}
	}
}

func TestMalformedHeaders(t *testing.T) {
	r := newTestKeyring(t, "k1")
	env, err := r.Seal("k1", []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(env)) }
	tests := []struct {
		name string
		env  []byte
		want error
	}{
		{"nil", nil, ErrMalformed},
		{"version 0", mod(func(b []byte) []byte { b[0] = 0; return b }), ErrMalformed},
		{"version 2", mod(func(b []byte) []byte { b[0] = 2; return b }), ErrMalformed},
		{"version ff", mod(func(b []byte) []byte { b[0] = 0xff; return b }), ErrMalformed},
		{"empty key id", mod(func(b []byte) []byte { b[1] = 0; return b }), ErrMalformed},
		{"key id past end", mod(func(b []byte) []byte { b[1] = 255; return b }), ErrMalformed},
		{"header only", env[:4], ErrMalformed},
		{"trailing byte", append(bytes.Clone(env), 0), ErrOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := r.Open(tt.env, nil); !errors.Is(err, tt.want) {
				t.Fatalf("Open = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestKeyringAdd(t *testing.T) {
	r := NewKeyring()
	for _, n := range []int{0, 16, 31, 33, 64} {
		if err := r.Add("k", make([]byte, n)); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Add with %d-byte key: %v, want ErrInvalidKey", n, err)
		}
	}
	for _, id := range []string{"", strings.Repeat("a", 256)} {
		if err := r.Add(id, testKey(1)); !errors.Is(err, ErrInvalidKeyID) {
			t.Errorf("Add with %d-byte id: %v, want ErrInvalidKeyID", len(id), err)
		}
	}
	if r.Len() != 0 || r.Has("k") {
		t.Fatal("failed Add changed the keyring")
	}

	dek := testKey(1)
	if err := r.Add("k", dek); err != nil {
		t.Fatal(err)
	}
	if err := r.Add("k", testKey(1)); err != nil {
		t.Errorf("re-adding the same key: %v, want nil", err)
	}
	if err := r.Add("k", testKey(2)); !errors.Is(err, ErrKeyExists) {
		t.Errorf("adding a different key under the same id: %v, want ErrKeyExists", err)
	}
	if !r.Has("k") || r.Has("K") || r.Len() != 1 {
		t.Errorf("Has/Len wrong after Add")
	}

	// The keyring keeps its own copy: wiping the caller's slice is safe.
	env, err := r.Seal("k", []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	clear(dek)
	if _, err := r.Open(env, nil); err != nil {
		t.Fatalf("Open after the caller wiped its key: %v", err)
	}
}

func TestKeyringConcurrent(t *testing.T) {
	r := newTestKeyring(t, "base")
	aad := AAD("t", "Patient", "1", 1)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				if g == 0 && i%10 == 0 {
					if err := r.Add(fmt.Sprintf("k%d", i), testKey(byte(i))); err != nil {
						t.Error(err)
						return
					}
				}
				env, err := r.Seal("base", []byte("msg"), aad)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := r.Open(env, aad); err != nil {
					t.Error(err)
					return
				}
				_ = r.Has("k10")
			}
		})
	}
	wg.Wait()
}

func TestErrorsCarryNoSecrets(t *testing.T) {
	key := testKey(5)
	r := NewKeyring()
	if err := r.Add("k1", key); err != nil {
		t.Fatal(err)
	}
	plaintext := []byte("Jane Doe 1970-01-01")
	env, err := r.Seal("k1", plaintext, []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	for _, e := range [][]byte{env, env[:10], append(bytes.Clone(env), 1)} {
		_, err := r.Open(e, []byte("wrong"))
		errs = append(errs, err)
	}
	errs = append(errs, r.Add("k1", testKey(6)))
	for _, err := range errs {
		if err == nil {
			t.Fatal("expected an error")
		}
		msg := err.Error()
		for _, secret := range secretForms(key) {
			if strings.Contains(msg, secret) {
				t.Errorf("error %q contains key material", msg)
			}
		}
		if strings.Contains(msg, "Jane") {
			t.Errorf("error %q contains plaintext", msg)
		}
	}
}

func TestZeroKeyring(t *testing.T) {
	var r Keyring
	if r.Has("k") || r.Len() != 0 {
		t.Fatal("zero keyring not empty")
	}
	if _, err := r.Open([]byte{1, 1, 'k'}, nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Open on zero keyring: %v", err)
	}
	if err := r.Add("k", testKey(1)); err != nil {
		t.Fatal(err)
	}
	env, err := r.Seal("k", []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Open(env, nil); err != nil {
		t.Fatal(err)
	}
}

// TestShredded: a shredded envelope names its key id and opens with no
// key, not even a key registered under that id.
func TestShredded(t *testing.T) {
	env, err := Shredded("p/t/x/1")
	if err != nil {
		t.Fatal(err)
	}
	if id, err := EnvelopeKeyID(env); err != nil || id != "p/t/x/1" {
		t.Fatalf("key id: %q %v", id, err)
	}
	ring := NewKeyring()
	k := make([]byte, 32)
	if err := ring.Add("p/t/x/1", k); err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Open(env, AAD("t", "Patient", "x", 1)); err == nil {
		t.Fatal("a shredded envelope opened")
	}
	if _, err := Shredded(""); err == nil {
		t.Fatal("an empty key id was accepted")
	}
}
