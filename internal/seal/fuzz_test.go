package seal

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the seed corpus in testdata/fuzz")

// fuzzKeyring holds fixed keys so that committed seed envelopes open.
func fuzzKeyring(t testing.TB) *Keyring {
	r := NewKeyring()
	if err := r.Add("k1", testKey(1)); err != nil {
		t.Fatal(err)
	}
	if err := r.Add("tenant/acme/7", testKey(2)); err != nil {
		t.Fatal(err)
	}
	return r
}

// FuzzOpen feeds arbitrary bytes to Open as envelope and associated data.
// Open must never panic, must fail only with a documented sentinel, and can
// succeed only for a real envelope (the committed valid seeds), whose AAD
// then cannot be changed. Every input also round-trips as a plaintext.
func FuzzOpen(f *testing.F) {
	r := fuzzKeyring(f)
	aad := AAD("acme", "Patient", "p1", 1)
	valid, err := r.Seal("k1", []byte(`{"resourceType":"Patient"}`), aad)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid, aad)                                 // opens
	f.Add(valid, []byte(nil))                         // right envelope, wrong AAD
	f.Add(valid[:len(valid)-1], aad)                  // lost its last tag byte
	f.Add([]byte{1, 2, 'k', '1'}, []byte(nil))        // header only
	f.Add([]byte{1, 0}, []byte(nil))                  // empty key id
	f.Add([]byte{2, 2, 'k', '1'}, []byte(nil))        // unknown version
	f.Add([]byte{1, 255, 'k'}, []byte(nil))           // key id past the end
	f.Add(bytes.Repeat([]byte{1}, 64), []byte("aad")) // unknown key "\x01"
	f.Fuzz(func(t *testing.T, env, aad []byte) {
		pt, err := r.Open(env, aad)
		if err != nil {
			if !isSealError(err) {
				t.Fatalf("Open error %v is not a documented sentinel", err)
			}
		} else {
			id, err := EnvelopeKeyID(env)
			if err != nil || !r.Has(id) {
				t.Fatalf("Open succeeded but EnvelopeKeyID = %q, %v", id, err)
			}
			if len(pt) != len(env)-Overhead(id) {
				t.Fatalf("plaintext %d bytes from a %d-byte envelope", len(pt), len(env))
			}
			if _, err := r.Open(env, append(bytes.Clone(aad), 0)); !errors.Is(err, ErrOpen) {
				t.Fatalf("Open with extended AAD: %v, want ErrOpen", err)
			}
		}
		sealed, err := r.Seal("tenant/acme/7", env, aad)
		if err != nil {
			t.Fatal(err)
		}
		back, err := r.Open(sealed, aad)
		if err != nil || !bytes.Equal(back, env) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzAAD checks that AAD is injective: two tuples give equal associated
// data exactly when they are equal.
func FuzzAAD(f *testing.F) {
	f.Add("ab", "c", "", int64(1), "a", "bc", "", int64(1))  // boundary moved between fields
	f.Add("a", "b", "c", int64(1), "a", "b", "c", int64(1))  // equal tuples
	f.Add("a", "b", "c", int64(1), "a", "b", "c", int64(-1)) // versions differ in sign
	f.Add("a\x01b", "", "", int64(0), "a", "b", "", int64(0))
	f.Add(strings.Repeat("x", 128), "", "", int64(0), strings.Repeat("x", 127), "x", "", int64(0)) // two-byte length
	f.Add("t", "", "\x00\x00\x00\x00\x00\x00\x00\x01", int64(0), "t", "", "", int64(1))
	f.Fuzz(func(t *testing.T, t1, ty1, id1 string, v1 int64, t2, ty2, id2 string, v2 int64) {
		a1 := AAD(t1, ty1, id1, v1)
		a2 := AAD(t2, ty2, id2, v2)
		same := t1 == t2 && ty1 == ty2 && id1 == id2 && v1 == v2
		if bytes.Equal(a1, a2) != same {
			t.Fatalf("AAD(%q,%q,%q,%d) vs AAD(%q,%q,%q,%d): equal=%v, tuples equal=%v",
				t1, ty1, id1, v1, t2, ty2, id2, v2, !same, same)
		}
		if len(a1) != aadLen(t1, ty1, id1) {
			t.Fatalf("len(AAD) = %d, aadLen = %d", len(a1), aadLen(t1, ty1, id1))
		}
		if !bytes.Equal(AppendAAD([]byte{9}, t1, ty1, id1, v1)[1:], a1) {
			t.Fatal("AppendAAD differs from AAD")
		}
	})
}

// TestWriteFuzzSeeds regenerates testdata/fuzz with -update. The files carry
// no comments (the corpus format has none); their names say what they are.
func TestWriteFuzzSeeds(t *testing.T) {
	if !*update {
		t.Skip("run with -update to rewrite testdata/fuzz")
	}
	r := fuzzKeyring(t)
	aad := AAD("acme", "Patient", "p1", 1)
	seal := func(keyID string, pt, aad []byte) []byte {
		env, err := r.Seal(keyID, pt, aad)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	valid := seal("k1", []byte(`{"resourceType":"Patient"}`), aad)
	flipped := bytes.Clone(valid)
	flipped[len(flipped)-1] ^= 1
	open := map[string][2][]byte{
		"valid-envelope":              {valid, aad},
		"valid-envelope-nil-aad":      {seal("k1", []byte("x"), nil), nil},
		"valid-empty-plaintext":       {seal("tenant/acme/7", nil, aad), aad},
		"valid-envelope-wrong-aad":    {valid, AAD("acme", "Patient", "p1", 2)},
		"tag-bit-flipped":             {flipped, aad},
		"truncated-tag":               {valid[:len(valid)-1], aad},
		"header-only":                 {[]byte{1, 2, 'k', '1'}, nil},
		"empty-key-id":                {[]byte{1, 0}, nil},
		"unknown-version":             {append([]byte{2}, valid[1:]...), aad},
		"key-id-length-past-end":      {[]byte{1, 255, 'k', '1'}, nil},
		"unknown-key-id":              {append([]byte{1, 2, 'k', '9'}, valid[4:]...), aad},
		"envelope-with-trailing-byte": {append(bytes.Clone(valid), 0), aad},
		"empty-input":                 {nil, nil},
		"minimum-length-garbage":      {append([]byte{1, 2, 'k', '1'}, make([]byte, 28)...), nil},
	}
	for name, v := range open {
		writeSeed(t, "FuzzOpen", name, v[0], v[1])
	}
	aadSeeds := map[string][]any{
		"field-boundary-moved":    {"ab", "c", "", int64(1), "a", "bc", "", int64(1)},
		"equal-tuples":            {"acme", "Patient", "p1", int64(1), "acme", "Patient", "p1", int64(1)},
		"version-sign":            {"a", "b", "c", int64(1), "a", "b", "c", int64(-1)},
		"length-byte-inside":      {"a\x01b", "", "", int64(0), "a", "b", "", int64(0)},
		"two-byte-length":         {strings.Repeat("x", 128), "", "", int64(0), strings.Repeat("x", 127), "x", "", int64(0)},
		"version-bytes-inside-id": {"t", "", "\x00\x00\x00\x00\x00\x00\x00\x01", int64(0), "t", "", "", int64(1)},
		"tenant-id-swapped":       {"p1", "Patient", "acme", int64(3), "acme", "Patient", "p1", int64(3)},
		"empty-vs-separator":      {"", "", "", int64(0), "/", "", "", int64(0)},
		"invalid-utf8":            {"\xff\xfe", "Patient", "1", int64(1), "\xff", "\xfePatient", "1", int64(1)},
	}
	for name, v := range aadSeeds {
		writeSeed(t, "FuzzAAD", name, v...)
	}
}

func writeSeed(t *testing.T, fuzzer, name string, vals ...any) {
	t.Helper()
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, v := range vals {
		switch v := v.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case string:
			fmt.Fprintf(&b, "string(%q)\n", v)
		case int64:
			fmt.Fprintf(&b, "int64(%d)\n", v)
		default:
			t.Fatalf("unsupported seed type %T", v)
		}
	}
	dir := filepath.Join("testdata", "fuzz", fuzzer)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCommittedSeedsOpen keeps the valid seeds valid: if the envelope format
// or the fuzz keys change, the corpus must be regenerated with -update.
func TestCommittedSeedsOpen(t *testing.T) {
	r := fuzzKeyring(t)
	for _, name := range []string{"valid-envelope", "valid-envelope-nil-aad", "valid-empty-plaintext"} {
		vals := readSeed(t, filepath.Join("testdata", "fuzz", "FuzzOpen", name))
		if len(vals) != 2 {
			t.Fatalf("%s: %d values, want 2", name, len(vals))
		}
		if _, err := r.Open(vals[0], vals[1]); err != nil {
			t.Errorf("%s: Open: %v", name, err)
		}
	}
}

// readSeed parses a corpus file holding only []byte values.
func readSeed(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if lines[0] != "go test fuzz v1" {
		t.Fatalf("%s: bad header %q", path, lines[0])
	}
	var vals [][]byte
	for _, l := range lines[1:] {
		s, ok := strings.CutPrefix(l, "[]byte(")
		s, ok2 := strings.CutSuffix(s, ")")
		if !ok || !ok2 {
			t.Fatalf("%s: not a []byte line: %q", path, l)
		}
		u, err := strconv.Unquote(s)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		vals = append(vals, []byte(u))
	}
	return vals
}
