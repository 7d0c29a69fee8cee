package audit

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Golden tamper vectors live in testdata/chain: valid.jsonl is an 8-record
// chain, the other .jsonl files are tampered copies, and vectors.json lists
// each case with the checkpoint and head it is verified against and the
// break Verify must report. Regenerate with: go test ./internal/audit -run
// TestTamperVectors -update

const vectorDir = "testdata/chain"

// jsonRecord is the JSON-lines form of a Record in the vectors, with hashes
// in hex.
type jsonRecord struct {
	Seq          int64     `json:"seq"`
	Time         time.Time `json:"time"`
	Tenant       string    `json:"tenant"`
	RequestID    string    `json:"request_id"`
	Actor        string    `json:"actor"`
	Role         string    `json:"role"`
	Action       string    `json:"action"`
	ResourceType string    `json:"resource_type"`
	Entities     []string  `json:"entities"`
	Outcome      Outcome   `json:"outcome"`
	Detail       string    `json:"detail"`
	Emergency    bool      `json:"emergency"`
	Purpose      string    `json:"purpose"`
	PrevHash     string    `json:"prev_hash"`
	Hash         string    `json:"hash"`
}

type jsonHead struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

type vector struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Records     string    `json:"records"`
	Checkpoint  *jsonHead `json:"checkpoint,omitempty"` // default: genesis
	Head        *jsonHead `json:"head,omitempty"`       // default: no head check
	Want        *struct {
		Seq    int64  `json:"seq"`
		Reason string `json:"reason"`
		Found  int64  `json:"found,omitempty"`
		Empty  bool   `json:"empty,omitempty"`
	} `json:"want"` // null: the chain verifies
}

func toJSON(r *Record) jsonRecord {
	return jsonRecord{r.Seq, r.Time, r.Tenant, r.RequestID, r.Actor, r.Role, r.Action, r.ResourceType,
		r.Entities, r.Outcome, r.Detail, r.Emergency, r.Purpose, hex.EncodeToString(r.PrevHash[:]), hex.EncodeToString(r.Hash[:])}
}

func decodeHash(s string) ([32]byte, error) {
	var h [32]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return h, fmt.Errorf("bad hash %q", s)
	}
	copy(h[:], b)
	return h, nil
}

func fromJSON(j jsonRecord) (*Record, error) {
	prev, err := decodeHash(j.PrevHash)
	if err != nil {
		return nil, err
	}
	hash, err := decodeHash(j.Hash)
	if err != nil {
		return nil, err
	}
	return &Record{Seq: j.Seq, Time: j.Time, Tenant: j.Tenant, RequestID: j.RequestID, Actor: j.Actor, Role: j.Role,
		Action: j.Action, ResourceType: j.ResourceType, Entities: j.Entities, Outcome: j.Outcome, Detail: j.Detail,
		Emergency: j.Emergency, Purpose: j.Purpose, PrevHash: prev, Hash: hash}, nil
}

func head(h Head) *jsonHead { return &jsonHead{h.Seq, hex.EncodeToString(h.Hash[:])} }

// tamperCase derives one tampered ledger from the valid chain.
type tamperCase struct {
	vector
	recs []*Record
}

func tamperCases() []tamperCase {
	valid := buildChain(8)
	hd := *headOf(valid)
	c := func() []*Record { return cloneChain(valid) }
	type w = struct {
		Seq    int64  `json:"seq"`
		Reason string `json:"reason"`
		Found  int64  `json:"found,omitempty"`
		Empty  bool   `json:"empty,omitempty"`
	}
	mk := func(name, desc string, recs []*Record, cp, h *Head, want *w) tamperCase {
		v := vector{Name: name, Description: desc, Records: name + ".jsonl", Want: want}
		if name == "valid" || strings.HasPrefix(name, "valid-") {
			v.Records = "valid.jsonl"
		}
		if cp != nil {
			v.Checkpoint = head(*cp)
		}
		if h != nil {
			v.Head = head(*h)
		}
		return tamperCase{v, recs}
	}
	var cases []tamperCase

	cases = append(cases, mk("valid", "the untouched chain against its head", c(), nil, &hd, nil))
	cases = append(cases, mk("valid-no-head", "the untouched chain, no head check", c(), nil, nil, nil))
	cp4 := Head{Seq: 4, Hash: valid[3].Hash}
	cases = append(cases, mk("checkpoint-valid", "the untouched records 5..8 after a trusted checkpoint at 4",
		c()[4:], &cp4, &hd, nil))

	r := c()
	r[2].Actor = "user/forger"
	cases = append(cases, mk("field-altered", "record 3's actor changed", r, nil, &hd, &w{Seq: 3, Reason: "hash-mismatch"}))

	r = c()
	r[4].Entities = append(r[4].Entities, "Patient/p9")
	cases = append(cases, mk("entity-added", "a reference added to record 5's entities", r, nil, &hd, &w{Seq: 5, Reason: "hash-mismatch"}))

	r = c()
	r[5].Hash[0] ^= 0x01
	cases = append(cases, mk("hash-bit-flipped", "one bit of record 6's stored hash flipped", r, nil, &hd, &w{Seq: 6, Reason: "hash-mismatch"}))

	r = c()
	r[0].PrevHash[31] ^= 0x01
	cases = append(cases, mk("first-not-genesis", "record 1 does not link to genesis", r, nil, &hd, &w{Seq: 1, Reason: "prev-mismatch"}))

	r = slices.Delete(c(), 3, 4)
	cases = append(cases, mk("deleted-middle", "record 4 deleted", r, nil, &hd, &w{Seq: 4, Reason: "gap", Found: 5}))

	r = slices.Delete(c(), 3, 4)
	for _, x := range r[3:] {
		x.Seq--
	}
	cases = append(cases, mk("deleted-renumbered", "record 4 deleted and later records renumbered", r, nil, &hd, &w{Seq: 4, Reason: "prev-mismatch"}))

	r = c()[1:]
	cases = append(cases, mk("deleted-first", "record 1 deleted", r, nil, &hd, &w{Seq: 1, Reason: "gap", Found: 2}))

	r = c()
	r[3], r[4] = r[4], r[3]
	cases = append(cases, mk("swapped", "records 4 and 5 swapped in order", r, nil, &hd, &w{Seq: 4, Reason: "reorder", Found: 5}))

	r = c()
	r[3], r[4] = r[4], r[3]
	r[3].Seq, r[4].Seq = 4, 5
	cases = append(cases, mk("swapped-renumbered", "contents of records 4 and 5 swapped, sequence numbers kept", r, nil, &hd, &w{Seq: 4, Reason: "prev-mismatch"}))

	r = slices.Insert(c(), 5, cloneRecord(valid[4]))
	cases = append(cases, mk("duplicated", "record 5 appears twice", r, nil, &hd, &w{Seq: 6, Reason: "reorder", Found: 5}))

	r = c()[:6]
	cases = append(cases, mk("tail-truncated", "records 7 and 8 deleted, head still at 8", r, nil, &hd, &w{Seq: 7, Reason: "truncated"}))
	cases = append(cases, mk("tail-truncated-no-head", "records 7 and 8 deleted; without the head this is undetectable", c()[:6], nil, nil, nil))
	h6 := Head{Seq: 6, Hash: valid[5].Hash}
	cases = append(cases, mk("tail-truncated-head-rewound", "records 7 and 8 deleted and the head moved back to 6: only a checkpoint catches it",
		c()[:6], nil, &h6, nil))
	cp7 := Head{Seq: 7, Hash: valid[6].Hash}
	cases = append(cases, mk("tail-truncated-head-rewound-checkpoint", "as above, verified from a checkpoint at 7",
		nil, &cp7, &h6, &w{Seq: 6, Reason: "head-mismatch"}))
	cases = append(cases, mk("valid-head-behind", "all 8 records but the head says 6", c(), nil, &h6, &w{Seq: 6, Reason: "head-mismatch", Found: 7}))

	badHead := hd
	badHead.Hash[5] ^= 0x20
	cases = append(cases, mk("valid-head-altered", "all 8 records, head hash altered", c(), nil, &badHead, &w{Seq: 8, Reason: "head-mismatch"}))

	r = c()
	r[2].Detail = "rewritten"
	Chain(r[2].PrevHash, r[2])
	cases = append(cases, mk("rehashed-not-relinked", "record 3 altered and its hash recomputed; record 4 still links to the old hash",
		r, nil, &hd, &w{Seq: 4, Reason: "prev-mismatch"}))

	r = c()
	r[2].Detail = "rewritten"
	prev := r[2].PrevHash
	for _, x := range r[2:] {
		prev = Chain(prev, x)
	}
	cases = append(cases, mk("rechained-from-3", "record 3 altered and every later hash recomputed: only the head catches it",
		r, nil, &hd, &w{Seq: 8, Reason: "head-mismatch"}))
	cases = append(cases, mk("rechained-from-3-checkpoint", "the same forged records 5..8 verified from a trusted checkpoint at 4",
		slices.Clone(r[4:]), &cp4, nil, &w{Seq: 5, Reason: "prev-mismatch"}))

	cases = append(cases, mk("empty-with-head", "no records, head at 8", nil, nil, &hd, &w{Seq: 1, Reason: "truncated", Empty: true}))
	g := GenesisHead()
	cases = append(cases, mk("empty-genesis-head", "no records, head at genesis", nil, nil, &g, nil))
	return cases
}

func writeJSONL(path string, recs []*Record) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, r := range recs {
		if err := enc.Encode(toJSON(r)); err != nil {
			return err
		}
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

func readJSONL(path string) ([]*Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var recs []*Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var j jsonRecord
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&j); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r, err := fromJSON(j)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		recs = append(recs, r)
	}
	return recs, sc.Err()
}

func writeVectors(t *testing.T) {
	if err := os.MkdirAll(vectorDir, 0o755); err != nil {
		t.Fatal(err)
	}
	old, _ := filepath.Glob(filepath.Join(vectorDir, "*.jsonl"))
	for _, p := range old {
		os.Remove(p)
	}
	var manifest []vector
	for _, tc := range tamperCases() {
		if tc.Name == "valid" || !strings.HasPrefix(tc.Name, "valid") {
			if err := writeJSONL(filepath.Join(vectorDir, tc.Records), tc.recs); err != nil {
				t.Fatal(err)
			}
		}
		manifest = append(manifest, tc.vector)
	}
	b, err := json.MarshalIndent(manifest, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vectorDir, "vectors.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestTamperVectors(t *testing.T) {
	if *update {
		writeVectors(t)
	}
	b, err := os.ReadFile(filepath.Join(vectorDir, "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vectors []vector
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&vectors); err != nil {
		t.Fatal(err)
	}
	if len(vectors) < 20 {
		t.Fatalf("only %d vectors", len(vectors))
	}
	// The committed files are what the generator produces: a change to the
	// chain construction or the encoding shows up here, not silently.
	byName := map[string]tamperCase{}
	for _, tc := range tamperCases() {
		byName[tc.Name] = tc
	}
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			recs, err := readJSONL(filepath.Join(vectorDir, v.Records))
			if err != nil {
				t.Fatal(err)
			}
			if tc, ok := byName[v.Name]; !ok {
				t.Errorf("vector %s is not produced by tamperCases", v.Name)
			} else if len(tc.recs) != len(recs) && v.Records != "valid.jsonl" {
				t.Errorf("file has %d records, generator %d", len(recs), len(tc.recs))
			}
			cp := GenesisHead()
			if v.Checkpoint != nil {
				h, err := decodeHash(v.Checkpoint.Hash)
				if err != nil {
					t.Fatal(err)
				}
				cp = Head{v.Checkpoint.Seq, h}
			}
			var hd *Head
			if v.Head != nil {
				h, err := decodeHash(v.Head.Hash)
				if err != nil {
					t.Fatal(err)
				}
				hd = &Head{v.Head.Seq, h}
			}
			err = VerifyFrom(cp, all(recs), hd)
			if v.Want == nil {
				checkBreak(t, err, nil)
				return
			}
			reason, perr := parseReason(v.Want.Reason)
			if perr != nil {
				t.Fatal(perr)
			}
			checkBreak(t, err, &want{seq: v.Want.Seq, reason: reason, found: v.Want.Found, empty: v.Want.Empty})
		})
	}
}

func TestVectorFilesMatchGenerator(t *testing.T) {
	for _, tc := range tamperCases() {
		if tc.Records == "valid.jsonl" && tc.Name != "valid" {
			continue
		}
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		for _, r := range tc.recs {
			if err := enc.Encode(toJSON(r)); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(filepath.Join(vectorDir, tc.Records))
		if err != nil && !(errors.Is(err, os.ErrNotExist) && len(tc.recs) == 0) {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%s differs from the generator; run with -update if the change is intended", tc.Records)
		}
	}
}
