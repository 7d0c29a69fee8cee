package app_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/store/postgres/pgtest"
	"github.com/wardhealth/ward/internal/store/storetest"
)

// witness is a real HTTP receiver of checkpoints (httptest listener).
type witness struct {
	mu    sync.Mutex
	notes []string
	srv   *httptest.Server
}

func newWitness(t *testing.T) *witness {
	w := &witness{}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
			rw.WriteHeader(http.StatusBadRequest)
			return
		}
		w.mu.Lock()
		w.notes = append(w.notes, string(b))
		w.mu.Unlock()
		rw.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *witness) got() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.notes...)
}

// startLedger runs Ward with checkpoints by hand (no timer), a witness
// directory and a witness URL.
func startLedger(t *testing.T, b apptest.Backend, wit *witness, mutate ...func(*config.Config)) (*apptest.Ward, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "witness")
	w := apptest.Start(t, b, append([]func(*config.Config){func(c *config.Config) {
		c.Ledger.CheckpointInterval = 0
		c.Ledger.WitnessDir = dir
		if wit != nil {
			c.Ledger.WitnessURLs = []string{wit.srv.URL + "/checkpoints"}
		}
	}}, mutate...)...)
	return w, dir
}

// traffic makes n ledger records or more (searches by the physician).
func traffic(t *testing.T, w *apptest.Ward, n int) {
	t.Helper()
	for range n {
		if r := w.Do(t, "GET", "/fhir/Patient?_count=1", w.Tokens[authz.RolePhysician], nil); r.Status != 200 {
			t.Fatalf("search: %d %s", r.Status, r.Body)
		}
	}
}

func checkpoint(t *testing.T, w *apptest.Ward) ledger.Checkpoint {
	t.Helper()
	cp, _, err := w.App.Proof.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ledger.Verifiers(string(publicKeys(t, w)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ledger.Open(cp.Note, keys)
	if err != nil {
		t.Fatalf("open our own checkpoint: %v", err)
	}
	return c
}

func publicKeys(t *testing.T, w *apptest.Ward) []byte {
	t.Helper()
	r := w.Do(t, "GET", "/audit/checkpoint/keys", "", nil)
	if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /audit/checkpoint/keys: %d %s", r.Status, r.Body)
	}
	return r.Body
}

func verifiers(t *testing.T, w *apptest.Ward) []byte { return publicKeys(t, w) }

// TestLedgerProofsServed: checkpoints are signed notes published at
// /audit/checkpoint and pushed to both witnesses; every record's inclusion
// proof and the consistency proof between two checkpoints, as served over
// HTTP, pass the Merkle library's own verifier and the offline verifier,
// and the leaf is the RFC 6962 hash of the record's canonical encoding as
// the store returns it.
func TestLedgerProofsServed(t *testing.T) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			wit := newWitness(t)
			w, dir := startLedger(t, b, wit)
			ctx := context.Background()
			if r := w.Do(t, "GET", "/audit/checkpoint", "", nil); r.Status != 404 || !strings.Contains(string(r.Body), "OperationOutcome") {
				t.Fatalf("checkpoint before the first: %d %s", r.Status, r.Body)
			}
			traffic(t, w, 5)
			cp1 := checkpoint(t, w)
			note1 := w.Do(t, "GET", "/audit/checkpoint", "", nil).Body
			traffic(t, w, 7)
			cp2 := checkpoint(t, w)
			r := w.Do(t, "GET", "/audit/checkpoint", "", nil)
			if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
				t.Fatalf("GET /audit/checkpoint: %d %s", r.Status, r.Body)
			}
			note2 := r.Body
			if !strings.HasPrefix(string(note2), cp2.Origin+"\n"+fmt.Sprint(cp2.Size)+"\n") || cp2.Size <= cp1.Size {
				t.Fatalf("latest checkpoint %q, sizes %d then %d", note2, cp1.Size, cp2.Size)
			}
			// No change, no new checkpoint.
			if _, fresh, err := w.App.Proof.Checkpoint(ctx); err != nil || fresh {
				t.Fatalf("checkpoint without new records: fresh %v, %v", fresh, err)
			}
			// Witnesses: the HTTP receiver got both, the directory holds
			// both and latest.
			if got := wit.got(); len(got) != 2 || got[0] != string(note1) || got[1] != string(note2) {
				t.Fatalf("witness received %d notes: %q", len(got), got)
			}
			if latest, err := os.ReadFile(filepath.Join(dir, "latest")); err != nil || !bytes.Equal(latest, note2) {
				t.Fatalf("witness dir latest: %v", err)
			}
			if old, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("checkpoint-%012d", cp1.Size))); err != nil || !bytes.Equal(old, note1) {
				t.Fatalf("witness dir first checkpoint: %v", err)
			}

			recs := storetest.Records(t, w.App.Store)
			admin := w.Tokens[authz.RoleAdmin]
			for _, rec := range recs[:cp2.Size] {
				r := w.Do(t, "GET", fmt.Sprintf("/audit/proof/inclusion?seq=%d", rec.Seq), admin, nil)
				if r.Status != 200 {
					t.Fatalf("inclusion %d: %d %s", rec.Seq, r.Status, r.Body)
				}
				var p app.InclusionProof
				if err := json.Unmarshal(r.Body, &p); err != nil {
					t.Fatal(err)
				}
				leaf := rfc6962.DefaultHasher.HashLeaf(rec.AppendCanonical(nil))
				if !bytes.Equal(p.LeafHash, leaf) || p.Size != int64(cp2.Size) {
					t.Fatalf("inclusion %d: leaf %x, want %x; size %d", rec.Seq, p.LeafHash, leaf, p.Size)
				}
				if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(rec.Seq-1), cp2.Size, leaf, p.Hashes, cp2.Root); err != nil {
					t.Fatalf("library verifier refuses inclusion of %d: %v", rec.Seq, err)
				}
				if _, err := app.VerifyProof(string(verifiers(t, w)), note2, nil, r.Body); err != nil {
					t.Fatalf("offline verifier refuses inclusion of %d: %v", rec.Seq, err)
				}
			}
			// Inclusion in the older tree.
			r = w.Do(t, "GET", fmt.Sprintf("/audit/proof/inclusion?seq=2&size=%d", cp1.Size), admin, nil)
			var p1 app.InclusionProof
			json.Unmarshal(r.Body, &p1)
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, 1, cp1.Size, p1.LeafHash, p1.Hashes, cp1.Root); err != nil {
				t.Fatalf("inclusion in the first checkpoint: %v (%s)", err, r.Body)
			}
			r = w.Do(t, "GET", fmt.Sprintf("/audit/proof/consistency?from=%d", cp1.Size), admin, nil)
			if r.Status != 200 {
				t.Fatalf("consistency: %d %s", r.Status, r.Body)
			}
			var c app.ConsistencyProof
			if err := json.Unmarshal(r.Body, &c); err != nil {
				t.Fatal(err)
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, cp1.Size, cp2.Size, c.Hashes, cp1.Root, cp2.Root); err != nil {
				t.Fatalf("library verifier refuses consistency %d -> %d: %v", cp1.Size, cp2.Size, err)
			}
			sum, err := app.VerifyProof(string(verifiers(t, w)), note1, note2, r.Body)
			if err != nil || !strings.Contains(sum, "prefix") {
				t.Fatalf("offline consistency: %q %v", sum, err)
			}
			// A forged proof is refused by the offline verifier.
			c.Hashes[0][0] ^= 1
			forged, _ := json.Marshal(c)
			var pe *app.ProofError
			if _, err := app.VerifyProof(string(verifiers(t, w)), note1, note2, forged); !errors.As(err, &pe) {
				t.Fatalf("forged consistency proof: %v", err)
			}
			// Not for a physician (refusal audited); bad parameters are
			// OperationOutcomes that do not echo the value.
			before := len(storetest.Records(t, w.App.Store))
			if r := w.Do(t, "GET", "/audit/proof/inclusion?seq=1", w.Tokens[authz.RolePhysician], nil); r.Status != 403 {
				t.Fatalf("physician asks for a proof: %d", r.Status)
			}
			if after := storetest.Records(t, w.App.Store); len(after) != before+1 || after[len(after)-1].Action != "audit-proof" {
				t.Fatal("the refused proof request is not in the ledger")
			}
			if r := w.Do(t, "GET", "/audit/proof/inclusion?seq=1", "", nil); r.Status != 401 {
				t.Fatalf("anonymous proof request: %d", r.Status)
			}
			for _, q := range []string{"inclusion", "inclusion?seq=zz9zz", "inclusion?seq=-1", fmt.Sprintf("inclusion?seq=1&size=%d", cp2.Size+1), fmt.Sprintf("inclusion?seq=%d&size=3", 4), "consistency", "consistency?from=0", fmt.Sprintf("consistency?from=%d&to=2", 3)} {
				r := w.Do(t, "GET", "/audit/proof/"+q, admin, nil)
				if r.Status != 400 || !strings.Contains(string(r.Body), "OperationOutcome") || strings.Contains(string(r.Body), "zz9zz") {
					t.Fatalf("%s: %d %s", q, r.Status, r.Body)
				}
			}
		})
	}
}

// rawDB opens the database under w, as an attacker holding it would.
func rawDB(t *testing.T, w *apptest.Ward) (*sql.DB, func(string) string) {
	t.Helper()
	if w.Backend == apptest.Postgres {
		db := pgtest.DB(t, w.Config.DatabaseURL, 1)
		return db, func(q string) string {
			n := 0
			var b strings.Builder
			for _, c := range q {
				if c == '?' {
					n++
					fmt.Fprintf(&b, "$%d", n)
					continue
				}
				b.WriteRune(c)
			}
			return b.String()
		}
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(w.Config.DataDir, "ward.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, func(q string) string { return q }
}

// rewrite edits the record at seq with edit, then re-chains every record
// after it and moves the head: what an attacker with the database but not
// the signing key can do so that the chain alone verifies. keep cuts the
// ledger after keep records first (0: no cut).
func rewrite(t *testing.T, w *apptest.Ward, keep int64, seq int64, edit func(*audit.Record)) {
	t.Helper()
	db, q := rawDB(t, w)
	recs := storetest.Records(t, w.App.Store)
	if keep > 0 {
		if _, err := db.Exec(q(`DELETE FROM audit_log WHERE seq > ?`), keep); err != nil {
			t.Fatal(err)
		}
		recs = recs[:keep]
	}
	prev := audit.Genesis
	for _, r := range recs {
		if r.Seq == seq {
			edit(r)
		}
		if r.Seq >= seq {
			audit.Chain(prev, r)
			if _, err := db.Exec(q(`UPDATE audit_log SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?`), r.Actor, r.PrevHash[:], r.Hash[:], r.Seq); err != nil {
				t.Fatal(err)
			}
		}
		prev = r.Hash
	}
	last := recs[len(recs)-1]
	if _, err := db.Exec(q(`UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`), last.Seq, last.Hash[:]); err != nil {
		t.Fatal(err)
	}
}

var update = flag.Bool("update", false, "rewrite the golden files")

// TestCheckpointTamperVectors extends the golden tamper vectors of the
// chain (internal/audit/testdata) to what the chain alone cannot see:
// truncation with a rewritten head, a wiped ledger, a rewritten head
// record, a history rewrite re-chained to the end, and a forged tree node,
// each against a checkpoint signed before. The chain-only verify passes
// every one of the first four (shown here); the checkpoint catches each,
// with the reason in testdata/checkpoint_tamper.golden.
func TestCheckpointTamperVectors(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(t *testing.T, w *apptest.Ward, cpSize int64)
		// chainSees: the chain-only verify detects it too.
		chainSees bool
	}{
		{"intact", func(*testing.T, *apptest.Ward, int64) {}, false},
		{"intact-grown", func(t *testing.T, w *apptest.Ward, _ int64) {
			traffic(t, w, 3)
			if _, err := w.App.Proof.ExtendTree(context.Background()); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"truncate-tail-and-head", func(t *testing.T, w *apptest.Ward, n int64) {
			rewrite(t, w, n-3, n+1, func(*audit.Record) {})
		}, false},
		{"wipe", func(t *testing.T, w *apptest.Ward, _ int64) {
			db, q := rawDB(t, w)
			db.Exec(`DELETE FROM audit_log`)
			db.Exec(q(`UPDATE audit_head SET seq = 0, hash = ? WHERE id = 1`), []byte{})
		}, false},
		{"rewrite-head-record", func(t *testing.T, w *apptest.Ward, n int64) {
			rewrite(t, w, 0, n, func(r *audit.Record) { r.Actor = "someone-else" })
		}, false},
		{"rewrite-history-rechained", func(t *testing.T, w *apptest.Ward, n int64) {
			rewrite(t, w, 0, 2, func(r *audit.Record) { r.Actor = "someone-else" })
		}, false},
		{"truncate-and-regrow", func(t *testing.T, w *apptest.Ward, n int64) {
			// Cut three, rewrite the head, and let new records fill the
			// same numbers: the size is back, the history is not.
			rewrite(t, w, n-3, n+1, func(*audit.Record) {})
			db, q := rawDB(t, w)
			recs := storetest.Records(t, w.App.Store)
			prev := recs[len(recs)-1].Hash
			for i := int64(1); i <= 4; i++ {
				r := &audit.Record{Seq: n - 3 + i, Time: time.Now(), Actor: "forger", Action: "read"}
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
		}, false},
		{"forged-tree-node", func(t *testing.T, w *apptest.Ward, _ int64) {
			db, q := rawDB(t, w)
			// Leaf 0's hash, in its tile (the tree's lowest stratum).
			var tile []byte
			if err := db.QueryRow(`SELECT leaves FROM audit_tree_tiles WHERE idx = 0`).Scan(&tile); err != nil {
				t.Fatal(err)
			}
			copy(tile, bytes.Repeat([]byte{9}, 32))
			if _, err := db.Exec(q(`UPDATE audit_tree_tiles SET leaves = ? WHERE idx = 0`), tile); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"edit-without-rechaining", func(t *testing.T, w *apptest.Ward, _ int64) {
			db, _ := rawDB(t, w)
			db.Exec(`UPDATE audit_log SET actor = 'x' WHERE seq = 3`)
		}, true},
	}
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			var got []string
			for _, c := range cases {
				w, _ := startLedger(t, b, nil)
				traffic(t, w, 8)
				cp := checkpoint(t, w)
				note := w.Do(t, "GET", "/audit/checkpoint", "", nil).Body
				keys := verifiers(t, w)
				c.tamper(t, w, int64(cp.Size))
				ctx := context.Background()
				_, chainErr := app.VerifyLedgerSummary(ctx, w.App.Store)
				if (chainErr != nil) != c.chainSees {
					t.Fatalf("%s: chain-only verify says %v", c.name, chainErr)
				}
				vs, err := ledger.Verifiers(string(keys))
				if err != nil {
					t.Fatal(err)
				}
				v, err := app.VerifyLedgerFull(ctx, w.App.Store, app.VerifyOptions{Checkpoint: note, Keys: vs})
				reason := "ok"
				var pe *app.ProofError
				var be *audit.BreakError
				switch {
				case errors.As(err, &pe):
					reason = pe.Reason
				case errors.As(err, &be):
					reason = "chain-" + be.Reason.String()
				case err != nil:
					t.Fatalf("%s: %v", c.name, err)
				}
				if reason == "ok" && !v.TreeChecked {
					t.Fatalf("%s: the stored tree's consistency proof was not checked", c.name)
				}
				got = append(got, c.name+" "+reason)
			}
			compareGolden(t, "testdata/checkpoint_tamper.golden", strings.Join(got, "\n")+"\n")
		})
	}
}

func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != got {
		t.Fatalf("tamper vectors:\n got:\n%s\nwant:\n%s", got, want)
	}
}

// TestCheckpointKeyRotation: a rotated key signs from then on under the
// same origin; both keys stay published, so the checkpoint signed before
// still verifies, and the one after verifies only with the new key. The
// key is sealed: the keys table holds no private key in the clear.
func TestCheckpointKeyRotation(t *testing.T) {
	w, _ := startLedger(t, apptest.SQLite, nil)
	ctx := context.Background()
	traffic(t, w, 2)
	checkpoint(t, w)
	old := w.Do(t, "GET", "/audit/checkpoint", "", nil).Body
	oldKeys := string(publicKeys(t, w))
	vkey, err := w.App.Proof.RotateKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	traffic(t, w, 2)
	checkpoint(t, w)
	fresh := w.Do(t, "GET", "/audit/checkpoint", "", nil).Body
	all := string(publicKeys(t, w))
	if all != oldKeys+vkey+"\n" {
		t.Fatalf("published keys after rotation:\n%s\nwant the old ones then %s", all, vkey)
	}
	both, _ := ledger.Verifiers(all)
	onlyOld, _ := ledger.Verifiers(oldKeys)
	onlyNew, _ := ledger.Verifiers(vkey)
	if _, err := ledger.Open(old, both); err != nil {
		t.Fatalf("the old checkpoint no longer verifies: %v", err)
	}
	if _, err := ledger.Open(fresh, onlyNew); err != nil {
		t.Fatalf("the new checkpoint is not signed by the new key: %v", err)
	}
	if _, err := ledger.Open(fresh, onlyOld); err == nil {
		t.Fatal("the new checkpoint is still signed by the old key")
	}
	ks, err := w.App.Store.Keys(ctx, app.CheckpointKeyPurpose)
	if err != nil || len(ks) != 2 {
		t.Fatalf("%d checkpoint keys stored: %v", len(ks), err)
	}
	for _, k := range ks {
		if bytes.Contains(k.Wrapped, []byte("PRIVATE+KEY")) || bytes.Contains(k.Wrapped, []byte(cpOrigin(t, fresh))) {
			t.Fatal("a checkpoint key is stored in the clear")
		}
	}
	var n int
	for _, r := range storetest.Records(t, w.App.Store) {
		if r.Action == "checkpoint-key-create" {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("%d key creations in the ledger, want 2", n)
	}
}

func cpOrigin(t *testing.T, note []byte) string {
	origin, _, _ := strings.Cut(string(note), "\n")
	return origin
}

// TestServeCheckpointsPeriodically: with WARD_CHECKPOINT_INTERVAL set, the
// running server signs checkpoints by itself and pushes them to the
// witness; the latest one covers the traffic.
func TestServeCheckpointsPeriodically(t *testing.T) {
	wit := newWitness(t)
	w := apptest.Start(t, apptest.SQLite, func(c *config.Config) {
		c.Ledger.CheckpointInterval = time.Second
		c.Ledger.WitnessURLs = []string{wit.srv.URL}
	})
	traffic(t, w, 3)
	head, err := w.App.Store.AuditHead(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if got := wit.got(); len(got) > 0 {
			keys, err := ledger.Verifiers(string(publicKeys(t, w)))
			if err != nil {
				t.Fatal(err)
			}
			c, err := ledger.Open([]byte(got[len(got)-1]), keys)
			if err == nil && int64(c.Size) >= head.Seq {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no checkpoint of %d records reached the witness: %q", head.Seq, wit.got())
}
