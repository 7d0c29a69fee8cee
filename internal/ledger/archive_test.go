package ledger

import (
	"bytes"
	"context"
	"errors"
	"iter"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/audit"
)

func seq(recs []*audit.Record) iter.Seq2[*audit.Record, error] {
	return func(yield func(*audit.Record, error) bool) {
		for _, r := range recs {
			if !yield(r, nil) {
				return
			}
		}
	}
}

// TestArchiveRoundTrip writes an archive, reads it back to the same
// records and summary, and refuses every alteration of it.
func TestArchiveRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, vs := testKey(t, "ward/audit")
	recs := records(20)
	m := build(t, recs)
	root, err := Root(ctx, m.fetch, 12)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := Sign(Checkpoint{Origin: "ward/audit", Size: 12, Root: root, Time: time.Unix(1, 0)}, s)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	info, err := WriteArchive(&buf, s, cp, seq(recs[:12]))
	if err != nil {
		t.Fatal(err)
	}
	if info.First != 1 || info.Last != 12 || info.Prev != audit.Genesis || info.Head != recs[11].Hash {
		t.Fatalf("info %+v", info)
	}
	var got []*audit.Record
	read, err := ReadArchive(bytes.NewReader(buf.Bytes()), vs, func(r *audit.Record) error { got = append(got, r); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if read.First != 1 || read.Last != 12 || read.Head != info.Head || read.Checkpoint.Size != 12 || !bytes.Equal(read.Checkpoint.Root, root) {
		t.Fatalf("read %+v", read)
	}
	prev := audit.Genesis
	for i, r := range got {
		prev = audit.Chain(prev, r)
		if r.Hash != recs[i].Hash {
			t.Fatalf("record %d hashes differently after the round trip", r.Seq)
		}
	}
	lines := strings.Split(buf.String(), "\n")
	tamper := map[string]string{
		"record altered":   strings.Replace(buf.String(), lines[3], lines[4], 1),
		"record removed":   strings.Replace(buf.String(), lines[3]+"\n", "", 1),
		"tail cut":         strings.Join(lines[:len(lines)-2], "\n") + "\n",
		"header":           strings.Replace(buf.String(), archiveHeader, "ward-audit-archive/2", 1),
		"summary forged":   strings.Replace(buf.String(), `last 12`, `last 11`, 1),
		"not base64":       strings.Replace(buf.String(), lines[2], "!!", 1),
		"data after":       buf.String() + "more\n",
		"empty":            "",
		"checkpoint moved": strings.Replace(buf.String(), `\n12\n`, `\n13\n`, 1),
	}
	for name, text := range tamper {
		if _, err := ReadArchive(strings.NewReader(text), vs, nil); !errors.Is(err, ErrArchive) {
			t.Errorf("%s: %v", name, err)
		}
	}
	_, other := testKey(t, "ward/audit")
	if _, err := ReadArchive(bytes.NewReader(buf.Bytes()), other, nil); !errors.Is(err, ErrArchive) {
		t.Errorf("verified with another key: %v", err)
	}
}

// FuzzReadArchive: an archive is untrusted input (a file anyone with the
// directory can edit); reading never panics, and what it accepts was
// signed by the key.
func FuzzReadArchive(f *testing.F) {
	s, vs := testKey(f, "ward/audit")
	recs := records(3)
	m := memTree{}
	var leaves [][]byte
	for _, r := range recs {
		leaves = append(leaves, LeafHash(r))
	}
	nodes, root, _ := Extend(context.Background(), m.fetch, 0, leaves)
	for _, n := range nodes {
		m[n.ID] = n.Hash
	}
	cp, _ := Sign(Checkpoint{Origin: "ward/audit", Size: 3, Root: root}, s)
	var buf bytes.Buffer
	if _, err := WriteArchive(&buf, s, cp, seq(recs)); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(archiveHeader + "\n{}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := ReadArchive(bytes.NewReader(b), vs, nil)
		if err == nil && (info.Last < info.First || info.Checkpoint.Size != uint64(info.Last)) {
			t.Fatalf("accepted an inconsistent archive: %+v", info)
		}
	})
}
