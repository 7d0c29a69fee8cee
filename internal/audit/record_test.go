package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// goldenRecord is pinned by testdata/canonical_v1.hex. The expected bytes
// and hashes were first computed by an independent implementation (Python
// struct and hashlib) from the layout documented on AppendCanonical.
func goldenRecord() *Record {
	return &Record{
		Seq:          42,
		Time:         time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC),
		Tenant:       "acme",
		RequestID:    "req-01HQ",
		Actor:        "user/7f3a",
		Role:         "physician",
		Action:       "vread",
		ResourceType: "Patient",
		Entities:     []string{"Patient/abc/_history/2", "Observation/o1"},
		Outcome:      OutcomeMinor,
		Detail:       "consent-denied",
		Emergency:    true,
		Purpose:      "TREAT",
	}
}

const (
	genesisHex     = "bfc13f369298adf82672e4f9b3a2dbcddfbe54e0a0f7f0d1702b04e04289a410"
	goldenEntryHex = "9158e0bccc3cfd72c5bca044b1d2bc3b09985370260b99fc74895014e323e4f7"
	goldenHashHex  = "f36100392f68c9365689d221e93989730a9d5803dafe90c23f644c19f627ae8e" // linked to Genesis
)

func TestGenesis(t *testing.T) {
	if got := hex.EncodeToString(Genesis[:]); got != genesisHex {
		t.Fatalf("Genesis = %s, want %s", got, genesisHex)
	}
	if GenesisHead() != (Head{Seq: 0, Hash: Genesis}) {
		t.Fatal("GenesisHead is not {0, Genesis}")
	}
}

func TestCanonicalGolden(t *testing.T) {
	path := filepath.Join("testdata", "canonical_v1.hex")
	rec := goldenRecord()
	got := rec.AppendCanonical(nil)
	if *update {
		if err := os.WriteFile(path, []byte(hex.EncodeToString(got)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(got) != strings.TrimSpace(string(want)) {
		t.Fatalf("canonical encoding changed; it must never change once released.\n got %x\nwant %s", got, want)
	}
	if len(got) != rec.canonicalLen() {
		t.Errorf("canonicalLen = %d, encoding has %d bytes", rec.canonicalLen(), len(got))
	}
	if e := EntryHash(rec); hex.EncodeToString(e[:]) != goldenEntryHex {
		t.Errorf("EntryHash = %x, want %s", e, goldenEntryHex)
	}
	h := Chain(Genesis, rec)
	if hex.EncodeToString(h[:]) != goldenHashHex || rec.Hash != h || rec.PrevHash != Genesis {
		t.Errorf("Chain = %x (Hash %x, PrevHash %x), want %s linked to Genesis", h, rec.Hash, rec.PrevHash, goldenHashHex)
	}
	// Prefix appending leaves dst alone.
	if out := rec.AppendCanonical([]byte("xy")); !bytes.Equal(out[2:], got) || string(out[:2]) != "xy" {
		t.Error("AppendCanonical does not append")
	}
}

// TestEveryFieldIsHashed changes each field of Record in turn, found by
// reflection, so a field added later without being encoded fails here.
func TestEveryFieldIsHashed(t *testing.T) {
	base := goldenRecord()
	baseEnc := base.AppendCanonical(nil)
	baseEntry := EntryHash(base)
	typ := reflect.TypeFor[Record]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Name == "PrevHash" || f.Name == "Hash" {
			continue
		}
		rec := *goldenRecord()
		v := reflect.ValueOf(&rec).Elem().Field(i)
		switch f.Type {
		case reflect.TypeFor[time.Time]():
			v.Set(reflect.ValueOf(base.Time.Add(time.Microsecond)))
		case reflect.TypeFor[[]string]():
			v.Set(reflect.ValueOf(append(append([]string(nil), base.Entities...), "Patient/x")))
		default:
			switch f.Type.Kind() {
			case reflect.String:
				v.SetString(v.String() + "x")
			case reflect.Int, reflect.Int64:
				v.SetInt(v.Int() + 1)
			case reflect.Bool:
				v.SetBool(!v.Bool())
			default:
				t.Fatalf("field %s has type %s, which this test does not know how to change", f.Name, f.Type)
			}
		}
		if bytes.Equal(rec.AppendCanonical(nil), baseEnc) {
			t.Errorf("changing %s does not change the canonical encoding", f.Name)
		}
		if EntryHash(&rec) == baseEntry {
			t.Errorf("changing %s does not change the entry hash", f.Name)
		}
	}
	// PrevHash and Hash are not part of the entry but are part of the link.
	rec := *goldenRecord()
	rec.PrevHash[0] ^= 1
	rec.Hash[0] ^= 1
	if EntryHash(&rec) != baseEntry {
		t.Error("PrevHash or Hash leaks into the entry hash")
	}
}

func TestCanonicalEquivalences(t *testing.T) {
	a := goldenRecord()
	b := goldenRecord()
	b.Time = b.Time.Add(999 * time.Nanosecond).In(time.FixedZone("X", 3600))
	if !bytes.Equal(a.AppendCanonical(nil), b.AppendCanonical(nil)) {
		t.Error("time zone or sub-microsecond time changes the encoding")
	}
	a.Entities, b.Entities = nil, []string{}
	if !bytes.Equal(a.AppendCanonical(nil), b.AppendCanonical(nil)) {
		t.Error("nil and empty Entities encode differently")
	}
	// Chain stores what it hashed.
	c := goldenRecord()
	c.Time = time.Date(2025, 3, 14, 16, 9, 26, 535897999, time.FixedZone("CET", 3600))
	Chain(Genesis, c)
	if c.Time.Location() != time.UTC || c.Time.Nanosecond() != 535897000 {
		t.Errorf("Chain left Time = %v", c.Time)
	}
}

// TestDomainSeparation checks the hash inputs byte for byte: entry hashes
// start with 0x00 and link hashes with 0x01, so neither can stand in for
// the other.
func TestDomainSeparation(t *testing.T) {
	rec := goldenRecord()
	entry := EntryHash(rec)
	if want := sha256.Sum256(append([]byte{0x00}, rec.AppendCanonical(nil)...)); entry != want {
		t.Errorf("EntryHash is not SHA-256(0x00 || canonical)")
	}
	linkIn := append(append([]byte{0x01}, Genesis[:]...), entry[:]...)
	if Link(Genesis, entry) != sha256.Sum256(linkIn) {
		t.Errorf("Link is not SHA-256(0x01 || prev || entry)")
	}
	if Link(Genesis, entry) == Link(entry, Genesis) {
		t.Error("Link is symmetric")
	}
}

func TestOutcomeString(t *testing.T) {
	for o, want := range map[Outcome]string{
		OutcomeSuccess: "success", OutcomeMinor: "minor failure",
		OutcomeSerious: "serious failure", OutcomeMajor: "major failure", 5: "Outcome(5)",
	} {
		if o.String() != want {
			t.Errorf("Outcome(%d).String() = %q, want %q", int(o), o.String(), want)
		}
	}
	if OutcomeSuccess != 0 || OutcomeMinor != 4 || OutcomeSerious != 8 || OutcomeMajor != 12 {
		t.Error("outcome codes differ from FHIR audit-event-outcome")
	}
}

func TestHashingAllocations(t *testing.T) {
	rec := typicalRecord()
	var h Hasher
	h.Chain(Genesis, rec) // grow the buffer
	if n := testing.AllocsPerRun(100, func() { h.Chain(Genesis, rec) }); n != 0 {
		t.Errorf("Hasher.Chain: %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { Chain(Genesis, rec) }); n != 0 {
		t.Errorf("Chain on a typical record: %v allocs, want 0", n)
	}
	big := typicalRecord()
	big.Entities = make([]string, 100)
	for i := range big.Entities {
		big.Entities[i] = "Observation/2f1c6a5e-8a1b-4c1e-9d57-0b8e5b0e6a11"
	}
	if Chain(Genesis, big) != h.Chain(Genesis, big) {
		t.Error("Chain and Hasher.Chain disagree on a large record")
	}
}

// typicalRecord is a read of one patient resource.
func typicalRecord() *Record {
	return &Record{
		Seq:          1000,
		Time:         time.Date(2025, 6, 1, 12, 0, 0, 123456000, time.UTC),
		Tenant:       "acme-clinic",
		RequestID:    "01JX4Z9K7QY3V8W2N5T6R1M0PB",
		Actor:        "user/3f9c2a1e-7b4d-4e8a-9c1f-2d6b8a0e5f31",
		Role:         "physician",
		Action:       "read",
		ResourceType: "Patient",
		Entities:     []string{"Patient/2f1c6a5e-8a1b-4c1e-9d57-0b8e5b0e6a11/_history/3"},
		Outcome:      OutcomeSuccess,
		Purpose:      "TREAT",
	}
}
