package seal

import (
	"bytes"
	"testing"
)

func testBlinder(t testing.TB, fill byte) *Blinder {
	b, err := NewBlinder(bytes.Repeat([]byte{fill}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBlindIndex(t *testing.T) {
	b := testBlinder(t, 1)
	if b.Index("family", "smith") != b.Index("family", "smith") {
		t.Fatal("not deterministic")
	}
	distinct := map[Blind]string{}
	for _, c := range [][2]string{
		{"family", "smith"}, {"family", "smyth"}, {"given", "smith"}, {"family", "smith "},
		{"famil", "ysmith"}, {"familys", "mith"}, {"", "familysmith"}, {"family", ""},
	} {
		k := b.Index(c[0], c[1])
		if prev, dup := distinct[k]; dup {
			t.Fatalf("%v collides with %s", c, prev)
		}
		distinct[k] = c[0] + "|" + c[1]
	}
	other := testBlinder(t, 2)
	if other.Index("family", "smith") == b.Index("family", "smith") {
		t.Fatal("different keys give the same blind index")
	}
	if _, err := NewBlinder(make([]byte, 16)); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestBlindPrefixes(t *testing.T) {
	b := testBlinder(t, 1)
	rows := b.Prefixes(nil, "family", "müller", 2, 4)
	// mü, mül, müll, and the whole value.
	if len(rows) != 4 {
		t.Fatalf("%d rows", len(rows))
	}
	for _, p := range []string{"mü", "mül", "müll", "müller"} {
		want := b.Index("family", p)
		found := false
		for _, r := range rows {
			found = found || r == want
		}
		if !found {
			t.Errorf("prefix %q not indexed", p)
		}
	}
	for _, p := range []string{"m", "mülle", "x"} {
		for _, r := range rows {
			if r == b.Index("family", p) {
				t.Errorf("%q indexed but outside the bounds", p)
			}
		}
	}
	if n := len(b.Prefixes(nil, "family", "a", 2, 4)); n != 0 {
		t.Fatalf("value shorter than the minimum gave %d rows", n)
	}
	if n := len(b.Prefixes(nil, "family", "ab", 2, 4)); n != 1 {
		t.Fatalf("two-letter value gave %d rows, want 1 (the value itself)", n)
	}
	if !ValidPrefix("mül", 2, 4) || ValidPrefix("m", 2, 4) || ValidPrefix("mülle", 2, 4) {
		t.Fatal("ValidPrefix bounds")
	}
}

func TestBlindConcurrent(t *testing.T) {
	b := testBlinder(t, 3)
	want := b.Index("identifier", "987-65-4329")
	done := make(chan bool)
	for range 8 {
		go func() {
			ok := true
			for range 500 {
				ok = ok && b.Index("identifier", "987-65-4329") == want
			}
			done <- ok
		}()
	}
	for range 8 {
		if !<-done {
			t.Fatal("concurrent use changed the result")
		}
	}
}

func BenchmarkBlindIndex(b *testing.B) {
	bl := testBlinder(b, 1)
	for b.Loop() {
		bl.Index("family", "vordermann-quaile")
	}
}

func BenchmarkBlindPrefixes(b *testing.B) {
	bl := testBlinder(b, 1)
	dst := make([]Blind, 0, 32)
	for b.Loop() {
		dst = bl.Prefixes(dst[:0], "family", "vordermann-quaile", 2, 16)
	}
}
