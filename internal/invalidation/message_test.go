package invalidation

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestEncodeDecode(t *testing.T) {
	good := []Message{
		{Node: "n1", Tenant: "default", Kind: Relationships},
		{Node: "n1", Tenant: "clinic-2", Kind: Consents},
		{Node: "n1", Tenant: "default", Kind: Relationships, Patient: "a1b2-c3.d4"},
		{Node: "n1", Tenant: "default", Kind: Consents, Patient: "p1"},
		{Node: "n1", Tenant: "default", Kind: Revocation, JTI: "0123456789abcdef0123456789abcdef"},
		{Node: "n1", Tenant: "default", Kind: Revocation}, // reload every revocation
		{Node: "n1", Kind: Keys},
	}
	for _, m := range good {
		b, err := Encode(m)
		if err != nil {
			t.Fatalf("Encode(%+v): %v", m, err)
		}
		got, err := Decode(b)
		if err != nil || got != m {
			t.Fatalf("Decode(Encode(%+v)) = %+v, %v", m, got, err)
		}
	}
	// Every field is an id; anything that could carry text is refused.
	bad := []struct {
		name string
		m    Message
	}{
		{"no node", Message{Tenant: "default", Kind: Consents}},
		{"node with space", Message{Node: "n 1", Tenant: "default", Kind: Consents}},
		{"no tenant", Message{Node: "n", Kind: Consents}},
		{"tenant as name", Message{Node: "n", Tenant: "Ada Lovelace", Kind: Consents}},
		{"keys with tenant", Message{Node: "n", Tenant: "default", Kind: Keys}},
		{"jti on consents", Message{Node: "n", Tenant: "default", Kind: Consents, JTI: "abc"}},
		{"jti with text", Message{Node: "n", Tenant: "default", Kind: Revocation, JTI: "Ada Lovelace 1970-01-01"}},
		{"jti too long", Message{Node: "n", Tenant: "default", Kind: Revocation, JTI: strings.Repeat("a", 129)}},
		{"unknown kind", Message{Node: "n", Tenant: "default", Kind: 9}},
		{"patient on a revocation", Message{Node: "n", Tenant: "default", Kind: Revocation, Patient: "p1"}},
		{"patient on keys", Message{Node: "n", Kind: Keys, Patient: "p1"}},
		{"patient as name", Message{Node: "n", Tenant: "default", Kind: Consents, Patient: "Ada Lovelace"}},
		{"patient too long", Message{Node: "n", Tenant: "default", Kind: Consents, Patient: strings.Repeat("a", 65)}},
	}
	for _, c := range bad {
		if _, err := Encode(c.m); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Encode = %v, want ErrInvalid", c.name, err)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	ok, _ := Encode(Message{Node: "n1", Tenant: "default", Kind: Consents})
	cases := map[string][]byte{
		"empty":          nil,
		"version only":   {Version},
		"version 2":      append([]byte{2}, ok[1:]...),
		"truncated":      ok[:len(ok)-1],
		"trailing bytes": append(bytes.Clone(ok), 0),
		"long length":    {Version, byte(Consents), 200, 'n'},
		"json":           []byte(`{"node":"n1","tenant":"default","kind":"consents"}`),
	}
	for name, b := range cases {
		if _, err := Decode(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Decode = %v, want ErrInvalid", name, err)
		}
	}
}

// FuzzDecode: Decode never panics, and whatever it accepts is valid and
// encodes back to the same bytes (the format has one spelling per message).
func FuzzDecode(f *testing.F) {
	for _, m := range []Message{
		{Node: "n1", Tenant: "default", Kind: Relationships},
		{Node: "n1", Tenant: "default", Kind: Revocation, JTI: "0123456789abcdef0123456789abcdef"},
		{Node: "n1", Kind: Keys},
	} {
		b, _ := Encode(m)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{Version, 9, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("decoded an invalid message %+v: %v", m, err)
		}
		again, err := Encode(m)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("round trip: %x -> %+v -> %x, %v", b, m, again, err)
		}
	})
}
