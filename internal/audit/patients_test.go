package audit

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// TestCanonicalV2Patients pins format version 2: version 1's bytes with the
// first byte 0x02 and the patient list appended, built here byte by byte
// from the documented layout rather than through AppendCanonical.
func TestCanonicalV2Patients(t *testing.T) {
	v1 := goldenRecord().AppendCanonical(nil)
	rec := goldenRecord()
	rec.Patients = []string{"p1", "abc"}
	want := append([]byte{0x02}, v1[1:]...)
	want = binary.BigEndian.AppendUint32(want, 2)
	for _, p := range []string{"p1", "abc"} {
		want = binary.BigEndian.AppendUint32(want, uint32(len(p)))
		want = append(want, p...)
	}
	want = binary.BigEndian.AppendUint32(want, 0) // the empty Address
	got := rec.AppendCanonical(nil)
	if !bytes.Equal(got, want) {
		t.Fatalf("v2 encoding\n got %x\nwant %x", got, want)
	}
	if len(got) != rec.canonicalLen() {
		t.Errorf("canonicalLen = %d, encoding has %d bytes", rec.canonicalLen(), len(got))
	}
	// A record without patients keeps its version-1 hash.
	if EntryHash(goldenRecord()) == EntryHash(rec) {
		t.Fatal("patients do not change the entry hash")
	}
	other := goldenRecord()
	other.Patients = []string{"p2"}
	if EntryHash(other) == EntryHash(rec) {
		t.Fatal("different patients hash alike")
	}
	// An address alone makes version 2 too: no patients, then the address.
	addr := goldenRecord()
	addr.Address = "a1b2"
	want = append([]byte{0x02}, v1[1:]...)
	want = binary.BigEndian.AppendUint32(want, 0)
	want = binary.BigEndian.AppendUint32(want, 4)
	want = append(want, "a1b2"...)
	if got := addr.AppendCanonical(nil); !bytes.Equal(got, want) || len(got) != addr.canonicalLen() {
		t.Fatalf("v2 with an address\n got %x\nwant %x", got, want)
	}
}

// TestChainSortsPatients: Chain puts the patients in one order without
// repeats, so a store that returns them sorted verifies.
func TestChainSortsPatients(t *testing.T) {
	a := goldenRecord()
	a.Patients = []string{"p2", "p1", "p2"}
	b := goldenRecord()
	b.Patients = []string{"p1", "p2"}
	if Chain(Genesis, a) != Chain(Genesis, b) {
		t.Fatal("patient order or repeats change the chained hash")
	}
	if len(a.Patients) != 2 || a.Patients[0] != "p1" {
		t.Fatalf("Patients = %v, want [p1 p2]", a.Patients)
	}
}
