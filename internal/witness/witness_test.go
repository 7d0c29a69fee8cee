package witness_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/witness"
)

// tree is a Merkle tree of test leaves kept by the ledger package's own
// code, so proofs are the ones Ward serves.
type tree struct {
	nodes map[ledger.NodeID][]byte
	size  uint64
}

func (t *tree) fetch(_ context.Context, ids []ledger.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		h, ok := t.nodes[id]
		if !ok {
			return nil, fmt.Errorf("node %v missing", id)
		}
		out[i] = h
	}
	return out, nil
}

func (t *tree) add(tb testing.TB, prefix string, n int) {
	tb.Helper()
	var leaves [][]byte
	for i := range n {
		leaves = append(leaves, ledger.Hasher.HashLeaf([]byte(fmt.Sprintf("%s-%d", prefix, int(t.size)+i))))
	}
	nodes, _, err := ledger.Extend(context.Background(), t.fetch, t.size, leaves)
	if err != nil {
		tb.Fatal(err)
	}
	for _, nd := range nodes {
		t.nodes[nd.ID] = nd.Hash
	}
	t.size += uint64(n)
}

func (t *tree) checkpoint(tb testing.TB, s note.Signer) ([]byte, []byte) {
	tb.Helper()
	root, err := ledger.Root(context.Background(), t.fetch, t.size)
	if err != nil {
		tb.Fatal(err)
	}
	signed, err := ledger.Sign(ledger.Checkpoint{Origin: s.Name(), Size: t.size, Root: root, Time: time.Unix(1796630400, 0)}, s)
	if err != nil {
		tb.Fatal(err)
	}
	return signed, root
}

func (t *tree) proof(tb testing.TB, from uint64) [][]byte {
	tb.Helper()
	if from == 0 {
		return nil
	}
	p, err := ledger.Consistency(context.Background(), t.fetch, from, t.size)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// memState is the witness's state in memory; the store's is tested
// through Ward's endpoint (internal/app).
type memState struct {
	mu sync.Mutex
	m  map[string]witness.Latest
}

func (s *memState) Latest(_ context.Context, origin string) (witness.Latest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[origin], nil
}

func (s *memState) Advance(_ context.Context, origin string, from uint64, to witness.Latest, _ []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[origin].Size != from {
		return &witness.ConflictError{Size: s.m[origin].Size}
	}
	s.m[origin] = to
	return nil
}

func newLog(t *testing.T, origin string) (note.Signer, string) {
	skey, vkey, err := ledger.NewKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s, vkey
}

// TestWitnessCosignsOnlyConsistentCheckpoints: the first checkpoint, a
// grown one with its proof, and the same again are cosigned (the
// cosignature verifies with the published cosignature/v1 key); a forked
// history, a stale old size, an unknown log, a bad signature and a bad
// proof are refused with the protocol's errors, and leave the state as
// it was.
func TestWitnessCosignsOnlyConsistentCheckpoints(t *testing.T) {
	ctx := context.Background()
	logSigner, logKey := newLog(t, "ward.test/audit")
	otherSigner, _ := newLog(t, "other.test/audit")
	forger, _ := newLog(t, "ward.test/audit") // the same name, another key
	wskey, wvkey, err := witness.NewKey("witness.test")
	if err != nil {
		t.Fatal(err)
	}
	ws, err := witness.NewSigner(wskey)
	if err != nil {
		t.Fatal(err)
	}
	wv, err := witness.NewVerifier(wvkey)
	if err != nil {
		t.Fatal(err)
	}
	st := &memState{m: map[string]witness.Latest{}}
	w, err := witness.New(ws, logKey, st)
	if err != nil {
		t.Fatal(err)
	}
	add := func(r witness.Request) ([]byte, error) {
		// Through the wire encoding, as the endpoint receives it.
		back, err := witness.ParseRequest(r.Marshal())
		if err != nil {
			t.Fatalf("request does not round-trip: %v", err)
		}
		return w.Add(ctx, back)
	}
	cosigned := func(signed, cosig []byte) {
		t.Helper()
		full, err := witness.Cosign(signed, cosig, wv)
		if err != nil {
			t.Fatal(err)
		}
		if got := witness.Cosigners(full, []note.Verifier{wv}); len(got) != 1 || got[0] != "witness.test" {
			t.Fatalf("cosigners = %v", got)
		}
	}

	log := &tree{nodes: map[ledger.NodeID][]byte{}}
	log.add(t, "a", 5)
	cp5, _ := log.checkpoint(t, logSigner)
	c, err := add(witness.Request{Old: 0, Checkpoint: cp5})
	if err != nil {
		t.Fatal(err)
	}
	cosigned(cp5, c)

	log.add(t, "a", 8)
	cp13, root13 := log.checkpoint(t, logSigner)
	c, err = add(witness.Request{Old: 5, Proof: log.proof(t, 5), Checkpoint: cp13})
	if err != nil {
		t.Fatal(err)
	}
	cosigned(cp13, c)
	if c, err = add(witness.Request{Old: 13, Checkpoint: cp13}); err != nil {
		t.Fatalf("the same checkpoint again: %v", err)
	}

	// A history rewritten from record 3 on, regrown past 13 and signed by
	// the log's own key: no proof from 13 verifies.
	fork := &tree{nodes: map[ledger.NodeID][]byte{}}
	fork.add(t, "a", 3)
	fork.add(t, "forged", 14)
	cpFork, _ := fork.checkpoint(t, logSigner)
	honest := &tree{nodes: log.nodes, size: log.size}
	for _, tc := range []struct {
		name string
		req  witness.Request
		want error
	}{
		{"forked history, its own proof", witness.Request{Old: 13, Proof: fork.proof(t, 13), Checkpoint: cpFork}, witness.ErrInconsistent},
		{"forked history, the honest proof", witness.Request{Old: 13, Proof: honest.proof(t, 13), Checkpoint: cpFork}, witness.ErrInconsistent},
		{"truncated: old larger than the checkpoint", witness.Request{Old: 13, Checkpoint: cp5}, witness.ErrStale},
		{"old size behind the witness", witness.Request{Old: 5, Proof: log.proof(t, 5), Checkpoint: cp13}, &witness.ConflictError{}},
		{"unknown log", witness.Request{Old: 0, Checkpoint: func() []byte { s, _ := log.checkpoint(t, otherSigner); return s }()}, witness.ErrUnknownLog},
		{"signed by a key the witness does not hold", witness.Request{Old: 13, Checkpoint: func() []byte { s, _ := log.checkpoint(t, forger); return s }()}, witness.ErrSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := add(tc.req)
			var ce *witness.ConflictError
			if _, isConflict := tc.want.(*witness.ConflictError); isConflict {
				if !errors.As(err, &ce) || ce.Size != 13 {
					t.Fatalf("err = %v, want a conflict at 13", err)
				}
			} else if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if l := st.m["ward.test/audit"]; l.Size != 13 || !bytes.Equal(l.Root, root13) {
				t.Fatalf("state moved to %d", l.Size)
			}
		})
	}
}

// TestCosignRejectsForeignLines: an answer without a valid cosignature by
// the expected key is refused.
func TestCosignRejectsForeignLines(t *testing.T) {
	logSigner, _ := newLog(t, "ward.test/audit")
	log := &tree{nodes: map[ledger.NodeID][]byte{}}
	log.add(t, "a", 2)
	cp, _ := log.checkpoint(t, logSigner)
	_, wvkey, _ := witness.NewKey("witness.test")
	wv, _ := witness.NewVerifier(wvkey)
	otherKey, _, _ := witness.NewKey("witness.test")
	other, _ := witness.NewSigner(otherKey)
	signed, _ := note.Sign(&note.Note{Text: string(cp[:bytes.Index(cp, []byte("\n\n"))+1])}, other)
	body := string(cp[:bytes.Index(cp, []byte("\n\n"))+1])
	for _, answer := range []string{"", "garbage\n", string(signed[len(body)+1:])} {
		if _, err := witness.Cosign(cp, []byte(answer), wv); err == nil {
			t.Errorf("answer %q accepted", answer)
		}
	}
}

// FuzzParseRequest: any body parses or is refused as malformed, and a
// parsed request encodes back to a body that parses to the same request.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("old 0\n\nward.test/audit\n1\nAAAA\n\n— x y\n"))                                      // first checkpoint
	f.Add([]byte("old 5\n" + "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\nward.test/audit\n13\n")) // with a proof line
	f.Add([]byte("old 05\n\nx"))                                                                       // leading zero
	f.Add([]byte("old 1\nnot base64\n\nx"))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := witness.ParseRequest(body)
		if err != nil {
			if !errors.Is(err, witness.ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		back, err := witness.ParseRequest(r.Marshal())
		if err != nil || back.Old != r.Old || len(back.Proof) != len(r.Proof) || !bytes.Equal(back.Checkpoint, r.Checkpoint) {
			t.Fatalf("round trip: %v %+v %+v", err, back, r)
		}
	})
}
