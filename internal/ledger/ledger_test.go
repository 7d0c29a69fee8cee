package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"

	"github.com/wardhealth/ward/internal/audit"
)

// memTree is a node map standing in for the store's table (the store's
// own is tested by storetest).
type memTree map[NodeID][]byte

func (m memTree) fetch(_ context.Context, ids []NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		h, ok := m[id]
		if !ok {
			return nil, fmt.Errorf("node %v missing", id)
		}
		out[i] = h
	}
	return out, nil
}

func records(n int) []*audit.Record {
	var out []*audit.Record
	prev := audit.Genesis
	t0 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= n; i++ {
		r := &audit.Record{Seq: int64(i), Time: t0.Add(time.Duration(i) * time.Minute), Tenant: "t", Actor: "u" + fmt.Sprint(i%3),
			Role: "physician", Action: "read", ResourceType: "Patient", Entities: []string{fmt.Sprintf("Patient/p%d/_history/1", i)}, Purpose: "TREAT", Emergency: i%7 == 0}
		prev = audit.Chain(prev, r)
		out = append(out, r)
	}
	return out
}

// build extends a memTree in uneven steps, as periodic checkpoints do.
func build(t *testing.T, recs []*audit.Record, steps ...int) memTree {
	t.Helper()
	m := memTree{}
	size := 0
	for _, step := range append(steps, len(recs)) {
		if step > len(recs) {
			step = len(recs)
		}
		var leaves [][]byte
		for _, r := range recs[size:step] {
			leaves = append(leaves, LeafHash(r))
		}
		nodes, _, err := Extend(context.Background(), m.fetch, uint64(size), leaves)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			m[n.ID] = n.Hash
		}
		size = step
	}
	return m
}

// TestLeafIsEntryHash: the tree's leaf hash is RFC 6962's hash of the
// canonical encoding, the same bytes the chain hashes.
func TestLeafIsEntryHash(t *testing.T) {
	r := records(1)[0]
	if want := Hasher.HashLeaf(r.AppendCanonical(nil)); !bytes.Equal(LeafHash(r), want) {
		t.Fatalf("leaf hash %x, RFC 6962 leaf of the canonical encoding %x", LeafHash(r), want)
	}
}

// TestTreeMatchesReference: roots, inclusion and consistency proofs from
// incrementally stored nodes match the library's reference tree and pass
// the library's own verifier, for every size and pair up to 70.
func TestTreeMatchesReference(t *testing.T) {
	ctx := context.Background()
	recs := records(70)
	m := build(t, recs, 1, 5, 16, 17, 40)
	ref := testonly.New(Hasher)
	for _, r := range recs {
		ref.AppendData(r.AppendCanonical(nil))
	}
	for size := uint64(0); size <= 70; size++ {
		root, err := Root(ctx, m.fetch, size)
		if err != nil {
			t.Fatal(err)
		}
		want := ref.HashAt(size)
		if !bytes.Equal(root, want) {
			t.Fatalf("root at %d: %x, reference %x", size, root, want)
		}
		for i := uint64(0); i < size; i++ {
			p, err := Inclusion(ctx, m.fetch, i, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyInclusion(Hasher, i, size, LeafHash(recs[i]), p, root); err != nil {
				t.Fatalf("inclusion %d in %d: %v", i, size, err)
			}
			if err := proof.VerifyInclusion(Hasher, i, size, LeafHash(recs[(i+1)%size]), p, root); err == nil && size > 1 {
				t.Fatalf("inclusion %d in %d verified another leaf", i, size)
			}
		}
		for s1 := uint64(0); s1 <= size; s1++ {
			p, err := Consistency(ctx, m.fetch, s1, size)
			if err != nil {
				t.Fatal(err)
			}
			r1 := ref.HashAt(s1)
			if err := proof.VerifyConsistency(Hasher, s1, size, p, r1, root); err != nil {
				t.Fatalf("consistency %d -> %d: %v", s1, size, err)
			}
		}
	}
	if _, err := Inclusion(ctx, m.fetch, 70, 70); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("inclusion beyond the tree: %v", err)
	}
	if _, err := Consistency(ctx, m.fetch, 9, 8); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("consistency backwards: %v", err)
	}
	// About two nodes per leaf: the storage cost of O(log n) proofs.
	if len(m) > 2*len(recs) {
		t.Fatalf("%d nodes stored for %d leaves", len(m), len(recs))
	}
}

func testKey(t testing.TB, origin string) (note.Signer, note.Verifiers) {
	t.Helper()
	skey, vkey, err := NewKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := Verifiers("# published\n" + vkey + "\n")
	if err != nil {
		t.Fatal(err)
	}
	return s, vs
}

func TestCheckpointSignOpen(t *testing.T) {
	s, vs := testKey(t, "ward.example/audit")
	root := bytes.Repeat([]byte{7}, 32)
	cp := Checkpoint{Origin: "ward.example/audit", Size: 42, Root: root, Time: time.Unix(1700000000, 0).UTC()}
	signed, err := Sign(cp, s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(signed), "ward.example/audit\n42\nBwcH") {
		t.Fatalf("not a tlog-checkpoint body:\n%s", signed)
	}
	got, err := Open(signed, vs)
	if err != nil {
		t.Fatal(err)
	}
	if got.Size != 42 || !bytes.Equal(got.Root, root) || !got.Time.Equal(cp.Time) || got.Origin != cp.Origin {
		t.Fatalf("opened %+v", got)
	}
	// Another key of the same name (a rotation not yet published, or a
	// forger) does not verify.
	_, other := testKey(t, "ward.example/audit")
	if _, err := Open(signed, other); !errors.Is(err, ErrCheckpoint) {
		t.Fatalf("opened with an unknown key: %v", err)
	}
	// A changed size breaks the signature.
	forged := bytes.Replace(signed, []byte("\n42\n"), []byte("\n41\n"), 1)
	if _, err := Open(forged, vs); !errors.Is(err, ErrCheckpoint) {
		t.Fatalf("forged size opened: %v", err)
	}
	if _, err := Sign(Checkpoint{Origin: "elsewhere", Root: root}, s); err == nil {
		t.Fatal("signed for another origin")
	}
}

func TestParseBody(t *testing.T) {
	good := "o\n3\n" + strings.Repeat("A", 43) + "=\ntime 5\nextra line\n"
	if c, err := ParseBody(good); err != nil || c.Size != 3 || c.Time.Unix() != 5 {
		t.Fatalf("%+v %v", c, err)
	}
	for _, bad := range []string{"", "o\n3\n", "o\n03\n" + strings.Repeat("A", 43) + "=\n", "o\n-1\n" + strings.Repeat("A", 43) + "=\n",
		"o\n3\nAAAA\n", "\n3\n" + strings.Repeat("A", 43) + "=\n", "o\n3\n" + strings.Repeat("A", 43) + "=", "o\n3\n" + strings.Repeat("A", 43) + "=\ntime x\n"} {
		if _, err := ParseBody(bad); !errors.Is(err, ErrCheckpoint) {
			t.Errorf("%q parsed: %v", bad, err)
		}
	}
}

func TestCanonicalRoundTrip(t *testing.T) {
	for _, r := range append(records(3), &audit.Record{Seq: 9, Time: time.UnixMicro(-5).UTC(), Detail: "\x00\xff", Outcome: audit.OutcomeMajor},
		// Format version 2: with patients, with an address, with both.
		&audit.Record{Seq: 10, Time: time.UnixMicro(7).UTC(), Action: "read", Patients: []string{"p1", "p2"}},
		&audit.Record{Seq: 11, Time: time.UnixMicro(8).UTC(), Action: "login", Address: "k1:abc"},
		&audit.Record{Seq: 12, Time: time.UnixMicro(9).UTC(), Action: "read", Patients: []string{"p3"}, Address: "k1:def"}) {
		enc := r.AppendCanonical(nil)
		got, err := ParseCanonical(enc)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.AppendCanonical(nil), enc) {
			t.Fatalf("round trip changed record %d", r.Seq)
		}
		for cut := 0; cut < len(enc); cut++ {
			if _, err := ParseCanonical(enc[:cut]); err == nil {
				t.Fatalf("record %d cut at %d parsed", r.Seq, cut)
			}
		}
		if _, err := ParseCanonical(append(enc, 0)); err == nil {
			t.Fatal("trailing byte parsed")
		}
	}
	// A version-2 encoding of a record with neither patients nor address
	// is never produced, so it is refused.
	v1 := (&audit.Record{Seq: 13}).AppendCanonical(nil)
	v2 := append(append([]byte{audit.CanonicalVersionPatients}, v1[1:]...), 0, 0, 0, 0, 0, 0, 0, 0)
	if _, err := ParseCanonical(v2); err == nil {
		t.Fatal("an empty version-2 tail parsed")
	}
}

func FuzzParseCanonical(f *testing.F) {
	for _, r := range records(2) {
		f.Add(r.AppendCanonical(nil))
	}
	f.Add([]byte{1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseCanonical(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.AppendCanonical(nil), b) {
			t.Fatalf("accepted %x, which does not re-encode to itself", b)
		}
	})
}

func FuzzParseBody(f *testing.F) {
	f.Add("ward/audit\n1\n" + strings.Repeat("A", 43) + "=\ntime 1\n")
	f.Add("o\n0\n\n")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseBody(s)
		if err != nil {
			return
		}
		if len(c.Root) != 32 || c.Origin == "" {
			t.Fatalf("accepted %q as %+v", s, c)
		}
	})
}

// BenchmarkExtend is the checkpointer's tree work per record: the leaf
// hash of a typical record and its share of node hashes, appended to a
// tree of a million leaves in batches of 1000 (node reads are the
// store's, timed by the app benchmarks).
func BenchmarkExtend(b *testing.B) {
	recs := records(1000)
	r := NewRange()
	for i := 0; i < 1<<20; i++ {
		r.Append(Hasher.HashLeaf([]byte{byte(i)}), nil)
	}
	b.ResetTimer()
	for b.Loop() {
		for _, rec := range recs {
			if err := r.Append(LeafHash(rec), func(NodeID, []byte) {}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/record")
}
