package app_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store/storetest"
	wit "github.com/wardhealth/ward/internal/witness"
)

// TestWardNodesWitnessEachOther runs two Ward nodes on each database,
// each through a real listener: B witnesses A's log. A pushes every new
// checkpoint with a consistency proof to B's add-checkpoint endpoint
// (C2SP tlog-witness), verifies B's cosignature and keeps it: it is served
// with the checkpoint and `verify` checks it against B's published key.
// Then whoever holds A's database rewrites its history (records re-chained,
// the tree rebuilt): A signs the rewritten tree, and B refuses it (422),
// stays at the size it witnessed, and the forged checkpoint gets no
// cosignature. B answers a stale old size with 409 and its size.
func TestWardNodesWitnessEachOther(t *testing.T) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			ctx := context.Background()
			logKeys := filepath.Join(t.TempDir(), "logs.keys")
			B := apptest.Start(t, b, func(c *config.Config) {
				c.Ledger.CheckpointInterval = 0
				c.Ledger.WitnessLogKeys = logKeys
				c.Ledger.CheckpointOrigin = "b.test/audit"
			})
			r := B.Do(t, "GET", "/audit/witness/key", "", nil)
			if r.Status != 200 {
				t.Fatalf("witness key: %d %s", r.Status, r.Body)
			}
			bKey := strings.TrimSpace(string(r.Body))
			bv, err := wit.NewVerifier(bKey)
			if err != nil {
				t.Fatal(err)
			}
			A, _ := startLedger(t, b, nil, func(c *config.Config) {
				c.Ledger.CheckpointOrigin = "a.test/audit"
				c.Ledger.Cosigners = []config.Cosigner{{URL: B.Server.URL + "/audit/witness", Key: bKey}}
			})
			aKey, err := A.App.Proof.RotateKey(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(logKeys, []byte(aKey+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}

			cosigned := func(size uint64) []byte {
				t.Helper()
				n := A.Do(t, "GET", "/audit/checkpoint", "", nil).Body
				if got := wit.Cosigners(n, []note.Verifier{bv}); len(got) != 1 {
					t.Fatalf("checkpoint of %d not cosigned by B: %s", size, n)
				}
				return n
			}
			traffic(t, A, 3)
			cp1 := checkpoint(t, A)
			cosigned(cp1.Size)
			traffic(t, A, 4)
			cp2 := checkpoint(t, A)
			n2 := cosigned(cp2.Size)

			// verify checks the cosignature against B's key, and a key
			// that did not cosign is refused.
			vs, err := ledger.Verifiers(string(publicKeys(t, A)))
			if err != nil {
				t.Fatal(err)
			}
			v, err := app.VerifyLedgerFull(ctx, A.App.Store, app.VerifyOptions{Checkpoint: n2, Keys: vs, Witnesses: []note.Verifier{bv}})
			if err != nil || len(v.Cosigners) != 1 || v.Cosigners[0] != bv.Name() {
				t.Fatalf("verify with the witness key: %v %v", v.Cosigners, err)
			}
			_, otherKey, _ := wit.NewKey("other.test/witness")
			ov, _ := wit.NewVerifier(otherKey)
			if _, err := app.VerifyLedgerFull(ctx, A.App.Store, app.VerifyOptions{Checkpoint: n2, Keys: vs, Witnesses: []note.Verifier{ov}}); err == nil || !strings.Contains(err.Error(), "cosignature") {
				t.Fatalf("verify with a witness that did not cosign: %v", err)
			}

			// A stale old size: 409 with B's size.
			r = B.Do(t, "POST", "/audit/witness/add-checkpoint", "", wit.Request{Old: cp1.Size, Checkpoint: n2}.Marshal())
			if r.Status != 409 || r.Header.Get("Content-Type") != wit.SizeType || strings.TrimSpace(string(r.Body)) != itoa(cp2.Size) {
				t.Fatalf("stale old size: %d %q %s", r.Status, r.Header.Get("Content-Type"), r.Body)
			}

			// History rewritten from record 2 on, the tree rebuilt over it.
			rewrite(t, A, 0, 2, func(r *audit.Record) { r.Actor = "someone-else" })
			db, q := rawDB(t, A)
			if _, err := db.Exec(`DELETE FROM audit_tree`); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(`DELETE FROM audit_tree_tiles`); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(q(`UPDATE audit_tree_head SET size = 0 WHERE id = 1`)); err != nil {
				t.Fatal(err)
			}
			// Grown past B's size by records written straight into the
			// database (a running node may cache the head it last wrote).
			recs := storetest.Records(t, A.App.Store)
			prev := recs[len(recs)-1].Hash
			for i := int64(1); i <= 2; i++ {
				r := &audit.Record{Seq: recs[len(recs)-1].Seq + i, Time: time.Now(), Actor: "forger", Action: "read"}
				audit.Chain(prev, r)
				prev = r.Hash
				if _, err := db.Exec(q(`INSERT INTO audit_log (seq, recorded_at, tenant, request_id, actor, role, action, resource_type, entities, outcome, detail, emergency, purpose, prev_hash, hash) VALUES (?, ?, '', '', ?, '', ?, '', '[]', 0, '', 0, '', ?, ?)`),
					r.Seq, r.Time.UnixMicro(), r.Actor, r.Action, r.PrevHash[:], r.Hash[:]); err != nil {
					t.Fatal(err)
				}
				if _, err := db.Exec(q(`UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`), r.Seq, r.Hash[:]); err != nil {
					t.Fatal(err)
				}
			}
			forged, fresh, err := A.App.Proof.Checkpoint(ctx)
			if err != nil || !fresh {
				t.Fatalf("checkpoint over the rewritten history: %v %v", fresh, err)
			}
			if cos, err := A.App.Store.Cosignatures(ctx, forged.Size); err != nil || len(cos) != 0 {
				t.Fatalf("the rewritten history was cosigned: %v %v", cos, err)
			}
			if !strings.Contains(A.Log.String(), "checkpoint cosigner") || !strings.Contains(A.Log.String(), "answered 422") {
				t.Fatalf("A did not log B's refusal: %s", A.Log.String())
			}
			if size, _, err := B.App.Store.WitnessLatest(ctx, "a.test/audit"); err != nil || size != int64(cp2.Size) {
				t.Fatalf("B moved to %d (%v), want %d", size, err, cp2.Size)
			}
			// The same through B's endpoint, with A's own proof: refused.
			pr := A.Do(t, "GET", "/audit/proof/consistency?from="+itoa(cp2.Size), A.Tokens[authz.RoleAdmin], nil)
			if pr.Status != 200 {
				t.Fatalf("consistency proof: %d %s", pr.Status, pr.Body)
			}
			r = B.Do(t, "POST", "/audit/witness/add-checkpoint", "", wit.Request{Old: cp2.Size, Proof: proofHashes(t, pr.Body), Checkpoint: forged.Note}.Marshal())
			if r.Status != 422 || !strings.Contains(string(r.Body), "OperationOutcome") {
				t.Fatalf("forged checkpoint: %d %s", r.Status, r.Body)
			}
			// Bad input: a malformed body, an unknown log.
			if r := B.Do(t, "POST", "/audit/witness/add-checkpoint", "", []byte("old x\n\nnope")); r.Status != 400 {
				t.Fatalf("malformed: %d %s", r.Status, r.Body)
			}
			r = A.Do(t, "POST", "/audit/witness/add-checkpoint", "", wit.Request{Checkpoint: n2}.Marshal())
			if r.Status != 404 {
				t.Fatalf("a node that witnesses nothing: %d %s", r.Status, r.Body)
			}
		})
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func proofHashes(t *testing.T, body []byte) [][]byte {
	t.Helper()
	var c app.ConsistencyProof
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatal(err)
	}
	return c.Hashes
}
