package seal

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// secretForms lists the ways key bytes could show up in text.
func secretForms(key []byte) []string {
	return []string{
		string(key),
		hex.EncodeToString(key),
		strings.ToUpper(hex.EncodeToString(key)),
		hex.EncodeToString(key[:8]),
		base64.StdEncoding.EncodeToString(key),
		base64.RawStdEncoding.EncodeToString(key),
		base64.RawURLEncoding.EncodeToString(key),
		base64.StdEncoding.EncodeToString(key)[:12],
		fmt.Sprint(key),            // [1 8 15 ...]
		fmt.Sprintf("%v", key[:4]), // partial decimal dump
		fmt.Sprintf("% x", key[:8]),
		fmt.Sprintf("%q", key[:8]),
	}
}

// awkwardKey encodes to '+' and '/' in standard base64 and to '-' and '_'
// in URL-safe base64, so the two alphabets are really exercised.
func awkwardKey() []byte {
	return bytes.Repeat([]byte{0xfb, 0xef, 0xbe, 0xff, 0xff, 0xff, 0x00, 0x10}, 4)
}

func TestParseKEKEncodings(t *testing.T) {
	key := awkwardKey()
	want, err := NewKEK(key)
	if err != nil {
		t.Fatal(err)
	}
	std := base64.StdEncoding.EncodeToString(key)
	if !strings.ContainsAny(std, "+/") {
		t.Fatalf("test key %q does not exercise the standard alphabet", std)
	}
	tests := []struct {
		name string
		in   string
	}{
		{"standard", std},
		{"standard with newline", std + "\n"},
		{"standard with CRLF and spaces", "  " + std + " \r\n"},
		{"raw url", base64.RawURLEncoding.EncodeToString(key)},
		{"url padded", base64.URLEncoding.EncodeToString(key)},
		{"raw standard", base64.RawStdEncoding.EncodeToString(key)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKEK(tt.in)
			if err != nil {
				t.Fatalf("ParseKEK: %v", err)
			}
			if k.ID() != want.ID() {
				t.Errorf("ID = %s, want %s", k.ID(), want.ID())
			}
		})
	}
}

func TestParseKEKRejects(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"whitespace", " \n\t"},
		{"not base64", "this is not base64 at all!!"},
		{"hex", hex.EncodeToString(testKey(1))},
		{"16 bytes", base64.StdEncoding.EncodeToString(testKey(1)[:16])},
		{"31 bytes", base64.StdEncoding.EncodeToString(testKey(1)[:31])},
		{"33 bytes", base64.StdEncoding.EncodeToString(append(testKey(1), 0))},
		{"64 bytes", base64.StdEncoding.EncodeToString(append(testKey(1), testKey(2)...))},
		{"1 byte", base64.RawURLEncoding.EncodeToString([]byte{1})},
		{"mixed alphabets", strings.Replace(base64.StdEncoding.EncodeToString(awkwardKey()), "+", "-", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKEK(tt.in)
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("ParseKEK = %v, %v; want ErrInvalidKey", k, err)
			}
			if s := strings.TrimSpace(tt.in); len(s) > 4 && strings.Contains(err.Error(), s) {
				t.Errorf("error %q echoes the input", err)
			}
		})
	}
}

func TestKEKID(t *testing.T) {
	key := testKey(1)
	k, err := NewKEK(key)
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("ward kek id v1"))
	want := "kek-" + hex.EncodeToString(mac.Sum(nil)[:8])
	if k.ID() != want {
		t.Errorf("ID = %s, want %s", k.ID(), want)
	}
	// Pinned so the fingerprint of an existing key never changes.
	if k.ID() != "kek-7ecc87d9a249ad8f" {
		t.Errorf("ID = %s, want the pinned kek-7ecc87d9a249ad8f", k.ID())
	}
	k2, _ := NewKEK(testKey(2))
	if k2.ID() == k.ID() {
		t.Error("different keys share an ID")
	}
	if _, err := NewKEK(key[:31]); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("NewKEK(31 bytes) = %v, want ErrInvalidKey", err)
	}
}

type kekHolder struct {
	name string
	kek  KEK
	ptr  *KEK
	ring *Keyring
}

type PublicHolder struct {
	KEK  KEK
	Ptr  *KEK
	Ring *Keyring
}

func TestNoKeyMaterialInStrings(t *testing.T) {
	key := testKey(3)
	k, err := NewKEK(key)
	if err != nil {
		t.Fatal(err)
	}
	dek := testKey(4)
	r := NewKeyring()
	if err := r.Add("tenant-1", dek); err != nil {
		t.Fatal(err)
	}
	values := map[string]any{
		"*KEK":            k,
		"KEK":             *k,
		"*Keyring":        r,
		"unexported":      kekHolder{"h", *k, k, r},
		"*unexported":     &kekHolder{"h", *k, k, r},
		"exported fields": PublicHolder{*k, k, r},
		"slice":           []*KEK{k},
		"map":             map[string]*Keyring{"r": r},
	}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"}
	for name, v := range values {
		for _, verb := range verbs {
			out := fmt.Sprintf(verb, v)
			for _, secret := range append(secretForms(key), secretForms(dek)...) {
				if strings.Contains(out, secret) {
					t.Errorf("Sprintf(%q, %s) = %q contains key material %q", verb, name, out, secret)
				}
			}
		}
	}
	for _, s := range []string{k.String(), k.GoString(), r.String(), r.GoString()} {
		if strings.Contains(s, hex.EncodeToString(key[:8])) {
			t.Errorf("%q contains key material", s)
		}
	}
	if got := fmt.Sprint(k); got != "seal.KEK{"+k.ID()+"}" {
		t.Errorf("Sprint(kek) = %q", got)
	}
	if got := fmt.Sprint(r); got != "seal.Keyring{keys: 1}" {
		t.Errorf("Sprint(keyring) = %q", got)
	}
}

func TestGenerateAndLoadKEKFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ward.key")
	k, err := GenerateKEKFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %#o, want 0600", fi.Mode().Perm())
	}
	if err := CheckKeyFileMode(path); err != nil {
		t.Errorf("CheckKeyFileMode on a fresh key file: %v", err)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(text) != 45 || text[44] != '\n' {
		t.Errorf("key file = %d bytes, want 44 base64 characters and a newline", len(text))
	}
	loaded, err := LoadKEKFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.ID() != k.ID() {
		t.Errorf("loaded ID %s, generated %s", loaded.ID(), k.ID())
	}

	// O_EXCL: never overwrite an existing key.
	if _, err := GenerateKEKFile(path); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second GenerateKEKFile = %v, want fs.ErrExist", err)
	}
	again, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(again, text) {
		t.Errorf("key file changed by a refused GenerateKEKFile")
	}
	// Two generated keys differ.
	k2, err := GenerateKEKFile(filepath.Join(dir, "other.key"))
	if err != nil {
		t.Fatal(err)
	}
	if k2.ID() == k.ID() {
		t.Error("two generated keys share an ID")
	}
	if _, err := GenerateKEKFile(filepath.Join(dir, "missing", "x.key")); err == nil {
		t.Error("GenerateKEKFile into a missing directory succeeded")
	}
}

func TestLoadKEKFileErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := base64.StdEncoding.EncodeToString(testKey(1))
	if _, err := LoadKEKFile(write("trailing", good+"\n\n  \n")); err != nil {
		t.Errorf("trailing whitespace: %v", err)
	}
	short := base64.StdEncoding.EncodeToString(testKey(1)[:20])
	_, err := LoadKEKFile(write("short", short+"\n"))
	if !errors.Is(err, ErrInvalidKey) {
		t.Errorf("short key: %v, want ErrInvalidKey", err)
	}
	if err != nil && strings.Contains(err.Error(), short) {
		t.Errorf("error %q echoes the key file", err)
	}
	if _, err := LoadKEKFile(write("big", strings.Repeat("A", 10000))); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("huge file: %v, want ErrInvalidKey", err)
	}
	if _, err := LoadKEKFile(write("empty", "")); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("empty file: %v, want ErrInvalidKey", err)
	}
	if _, err := LoadKEKFile(filepath.Join(dir, "absent")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
}

func TestCheckKeyFileMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "k")
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true}, {0o400, true}, {0o700, true}, {0o200, true},
		{0o640, false}, {0o604, false}, {0o644, false}, {0o660, false}, {0o666, false}, {0o610, false}, {0o601, false},
	} {
		if err := os.Chmod(p, tt.mode); err != nil {
			t.Fatal(err)
		}
		err := CheckKeyFileMode(p)
		if tt.ok && err != nil {
			t.Errorf("mode %#o: %v, want nil", tt.mode, err)
		}
		if !tt.ok && !errors.Is(err, ErrKeyFilePermissions) {
			t.Errorf("mode %#o: %v, want ErrKeyFilePermissions", tt.mode, err)
		}
	}
	if err := CheckKeyFileMode(filepath.Join(dir, "absent")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
}

func TestDEKWrapUnwrap(t *testing.T) {
	kek, err := NewKEK(testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	dek, wrapped, err := kek.NewDEK("tenant/acme/1")
	if err != nil {
		t.Fatal(err)
	}
	if len(dek) != KeySize || len(wrapped) != 61 || wrapped[0] != 0x01 {
		t.Fatalf("NewDEK: %d-byte key, %d-byte wrapped (version %#x)", len(dek), len(wrapped), wrapped[0])
	}
	if bytes.Contains(wrapped, dek[:8]) {
		t.Error("wrapped key contains the key")
	}
	got, err := kek.UnwrapDEK("tenant/acme/1", wrapped)
	if err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("UnwrapDEK = %v; want the generated key", err)
	}
	dek2, _, err := kek.NewDEK("tenant/acme/1")
	if err != nil || bytes.Equal(dek, dek2) {
		t.Fatal("NewDEK returned the same key twice")
	}

	// Rotation: unwrap under the old KEK, re-wrap under the new one.
	newKEK, _ := NewKEK(testKey(2))
	rewrapped, err := newKEK.WrapDEK("tenant/acme/1", got)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := newKEK.UnwrapDEK("tenant/acme/1", rewrapped); err != nil || !bytes.Equal(again, dek) {
		t.Fatalf("unwrap after re-wrap: %v", err)
	}

	tests := []struct {
		name    string
		kek     *KEK
		keyID   string
		wrapped []byte
		want    error
	}{
		{"other key id", kek, "tenant/acme/2", wrapped, ErrOpen},
		{"other KEK", newKEK, "tenant/acme/1", wrapped, ErrOpen},
		{"truncated", kek, "tenant/acme/1", wrapped[:60], ErrMalformed},
		{"extended", kek, "tenant/acme/1", append(bytes.Clone(wrapped), 0), ErrMalformed},
		{"bad version", kek, "tenant/acme/1", append([]byte{2}, wrapped[1:]...), ErrMalformed},
		{"empty", kek, "tenant/acme/1", nil, ErrMalformed},
		{"empty key id", kek, "", wrapped, ErrInvalidKeyID},
	}
	for i := 8; i < len(wrapped)*8; i += 8 {
		mod := bytes.Clone(wrapped)
		mod[i/8] ^= 1 << (i % 7)
		tests = append(tests, struct {
			name    string
			kek     *KEK
			keyID   string
			wrapped []byte
			want    error
		}{fmt.Sprintf("bit flip in byte %d", i/8), kek, "tenant/acme/1", mod, ErrOpen})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.kek.UnwrapDEK(tt.keyID, tt.wrapped)
			if !errors.Is(err, tt.want) {
				t.Fatalf("UnwrapDEK = %x, %v; want %v", got, err, tt.want)
			}
			for _, s := range secretForms(dek) {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q contains key material", err)
				}
			}
		})
	}

	if _, err := kek.WrapDEK("k", make([]byte, 16)); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("WrapDEK(16 bytes) = %v, want ErrInvalidKey", err)
	}
	if _, _, err := kek.NewDEK(strings.Repeat("x", 256)); !errors.Is(err, ErrInvalidKeyID) {
		t.Errorf("NewDEK(256-byte id) = %v, want ErrInvalidKeyID", err)
	}
}
