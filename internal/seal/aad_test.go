package seal

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// The expected bytes below were computed by an independent implementation
// (Python: struct and hmac) from the layouts documented in aad.go, and are
// pinned: a change here breaks every stored ciphertext.

func TestAADGolden(t *testing.T) {
	tests := []struct {
		tenant, typ, id string
		version         int64
		want            string
	}{
		{"acme", "Patient", "p1", 3, "776172642f7265736f757263652f76310461636d650750617469656e740270310000000000000003"},
		{"", "", "", -1, "776172642f7265736f757263652f7631000000ffffffffffffffff"},
		{strings.Repeat("t", 200), "Observation", "x", 1 << 40, "776172642f7265736f757263652f7631c801" + strings.Repeat("74", 200) + "0b4f62736572766174696f6e01780000010000000000"},
	}
	for _, tt := range tests {
		got := AAD(tt.tenant, tt.typ, tt.id, tt.version)
		if hex.EncodeToString(got) != tt.want {
			t.Errorf("AAD(%.10q, %q, %q, %d) =\n%x\nwant\n%s", tt.tenant, tt.typ, tt.id, tt.version, got, tt.want)
		}
		if cap(got) != len(got) {
			t.Errorf("AAD over-allocated: len %d cap %d", len(got), cap(got))
		}
		if app := AppendAAD([]byte("pre"), tt.tenant, tt.typ, tt.id, tt.version); !bytes.Equal(app, append([]byte("pre"), got...)) {
			t.Errorf("AppendAAD does not append AAD")
		}
	}
}

// TestAADDistinct lists tuples that a naive concatenation would confuse.
func TestAADDistinct(t *testing.T) {
	type tuple struct {
		tenant, typ, id string
		version         int64
	}
	tuples := []tuple{
		{"ab", "c", "", 1},
		{"a", "bc", "", 1},
		{"a", "b", "c", 1},
		{"", "abc", "", 1},
		{"", "", "abc", 1},
		{"abc", "", "", 1},
		{"a/b", "c", "d", 1},
		{"a", "b/c", "d", 1},
		{"a\x01", "b", "c", 1},
		{"a", "\x01b", "c", 1},
		{"a", "b", "c", 2},
		{"a", "b", "c", -1},
		{"a", "b", "c\x00\x00\x00\x00\x00\x00\x00\x01", 0},
		{strings.Repeat("x", 127), "", "", 0},
		{strings.Repeat("x", 128), "", "", 0},
		{strings.Repeat("x", 127), "x", "", 0},
	}
	seen := map[string]tuple{}
	for _, tp := range tuples {
		a := string(AAD(tp.tenant, tp.typ, tp.id, tp.version))
		if prev, ok := seen[a]; ok {
			t.Errorf("AAD%+v == AAD%+v", prev, tp)
		}
		seen[a] = tp
	}
}

func TestAppendAADNoAllocs(t *testing.T) {
	buf := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendAAD(buf[:0], "tenant-1", "Patient", "2f1c6a5e-8a1b-4c1e-9d57-0b8e5b0e6a11", 12)
	})
	if allocs != 0 {
		t.Errorf("AppendAAD into a large enough buffer: %v allocs, want 0", allocs)
	}
	allocs = testing.AllocsPerRun(100, func() {
		buf = AAD("tenant-1", "Patient", "2f1c6a5e-8a1b-4c1e-9d57-0b8e5b0e6a11", 12)
	})
	if allocs != 1 {
		t.Errorf("AAD: %v allocs, want 1", allocs)
	}
}

// hkdfSHA256 is RFC 5869 written out from HMAC, only to check that DeriveKey
// is plain HKDF with the documented salt and info (production uses
// crypto/hkdf).
func hkdfSHA256(ikm []byte, info string, n int) []byte {
	ext := hmac.New(sha256.New, make([]byte, sha256.Size))
	ext.Write(ikm)
	prk := ext.Sum(nil)
	var okm, prev []byte
	for i := byte(1); len(okm) < n; i++ {
		m := hmac.New(sha256.New, prk)
		m.Write(prev)
		m.Write([]byte(info))
		m.Write([]byte{i})
		prev = m.Sum(nil)
		okm = append(okm, prev...)
	}
	return okm[:n]
}

func TestDeriveKeyVectors(t *testing.T) {
	seq := make([]byte, 32)
	for i := range seq {
		seq[i] = byte(i)
	}
	tests := []struct {
		dek     []byte
		purpose string
		want    string
	}{
		// Independent Python HKDF-SHA256, info "ward/derive/v1/"+purpose, no salt.
		{testKey(1), "blind-index/name", "133bc73b8a89904d1f752f367a0e76e8908d76bfb96614e37b61579d7588179c"},
		{testKey(1), "blind-index/identifier", "2bd1ddd1805dbb1670186e279ef09f99e6178a3189541c81695b024bef878ab8"},
		{seq, "blind-index/name", "2e38627d6e90a8475f4753eeea319f01b5982cdabd24d78b4e91bb3e044adbb3"},
		{seq, "x", "fe5df0944158c97396536c65021f1f63cd74d197bf69056060fb011be923f853"},
	}
	for _, tt := range tests {
		got, err := DeriveKey(tt.dek, tt.purpose)
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got) != tt.want {
			t.Errorf("DeriveKey(%q) = %x, want %s", tt.purpose, got, tt.want)
		}
		if ref := hkdfSHA256(tt.dek, "ward/derive/v1/"+tt.purpose, 32); !bytes.Equal(got, ref) {
			t.Errorf("DeriveKey(%q) differs from RFC 5869 HKDF", tt.purpose)
		}
		if bytes.Equal(got, tt.dek) {
			t.Error("derived key equals the data key")
		}
	}
	if _, err := DeriveKey(testKey(1), ""); err == nil {
		t.Error("DeriveKey with empty purpose succeeded")
	}
	if _, err := DeriveKey(testKey(1)[:16], "p"); err == nil {
		t.Error("DeriveKey with a 16-byte key succeeded")
	}
}
