package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/witness"
)

// The ledger commands end to end on a data directory a real server wrote:
// a checkpoint and the published key from the CLI; verify against the
// checkpoint passes, then catches a cut tail with a rewritten head that
// the chain alone passes; the offline verifier checks a served proof and
// refuses a forged one; archive refuses records within the retention,
// archives them when forced, and verify then covers the archive.
func TestAuditLedgerCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ward-data")
	s := serve(t, dir)
	if _, stderr, code := ward(t, pass+"\n", "users", "add", "--data-dir", dir, "--username", "smoke", "--role", "admin", "--password-stdin"); code != 0 {
		t.Fatal(stderr)
	}
	tok := s.token(t, "smoke", pass)
	for i := range 4 {
		s.post(t, tok, "Observation", fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"n%d"}}`, i))
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()

	files := t.TempDir()
	cpFile, keyFile, proofFile := filepath.Join(files, "checkpoint"), filepath.Join(files, "keys"), filepath.Join(files, "proof.json")
	out, stderr, code := ward(t, "", "audit", "checkpoint", "--data-dir", dir)
	if code != 0 || !strings.HasPrefix(out, "ward/audit\n") || !strings.Contains(out, "\n— ward/audit ") {
		t.Fatalf("checkpoint: exit %d: %s %s", code, out, stderr)
	}
	os.WriteFile(cpFile, []byte(out), 0o600)
	keys, stderr, code := ward(t, "", "audit", "checkpoint-key", "--data-dir", dir)
	if code != 0 || !strings.HasPrefix(keys, "ward/audit+") {
		t.Fatalf("checkpoint-key: exit %d: %s %s", code, keys, stderr)
	}
	os.WriteFile(keyFile, []byte(keys), 0o600)
	out, stderr, code = ward(t, "", "audit", "verify", "--data-dir", dir, "--checkpoint", cpFile, "--key", keyFile)
	if code != 0 || !strings.Contains(out, "holds it unchanged") {
		t.Fatalf("verify against the checkpoint: exit %d: %s %s", code, out, stderr)
	}

	// --witness-keys: a checkpoint cosigned by a witness's key passes and
	// names it; a key that did not cosign is refused.
	wskey, wvkey, _ := witness.NewKey("w.test/witness")
	ws, _ := witness.NewSigner(wskey)
	cpBytes, _ := os.ReadFile(cpFile)
	body := string(cpBytes[:strings.Index(string(cpBytes), "\n\n")+1])
	cosig, _ := note.Sign(&note.Note{Text: body}, ws)
	cosFile, wkFile, otherFile := filepath.Join(files, "cosigned"), filepath.Join(files, "witness.keys"), filepath.Join(files, "other.keys")
	os.WriteFile(cosFile, append(cpBytes, cosig[len(body)+1:]...), 0o600)
	os.WriteFile(wkFile, []byte(wvkey+"\n"), 0o600)
	_, otherKey, _ := witness.NewKey("other.test/witness")
	os.WriteFile(otherFile, []byte(otherKey+"\n"), 0o600)
	out, stderr, code = ward(t, "", "audit", "verify", "--data-dir", dir, "--checkpoint", cosFile, "--key", keyFile, "--witness-keys", wkFile)
	if code != 0 || !strings.Contains(out, "cosigned by w.test/witness") {
		t.Fatalf("verify a cosigned checkpoint: exit %d: %s %s", code, out, stderr)
	}
	out, stderr, code = ward(t, "", "audit", "verify", "--data-dir", dir, "--checkpoint", cpFile, "--key", keyFile, "--witness-keys", otherFile)
	if code == 0 || !strings.Contains(stderr, "no valid cosignature by witness other.test/witness") {
		t.Fatalf("verify without the witness's cosignature: exit %d: %s %s", code, out, stderr)
	}

	// A served inclusion proof, checked offline.
	cfg := config.Default()
	cfg.DataDir = dir
	a, err := app.Open(context.Background(), cfg, app.NewLogger(io.Discard, "error"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Proof.Inclusion(context.Background(), 3, 0)
	a.Close()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(p)
	os.WriteFile(proofFile, b, 0o600)
	out, stderr, code = ward(t, "", "audit", "verify-proof", "--key", keyFile, "--checkpoint", cpFile, "--proof", proofFile)
	if code != 0 || !strings.Contains(out, "record 3") {
		t.Fatalf("verify-proof: exit %d: %s %s", code, out, stderr)
	}
	p.LeafHash[0] ^= 1
	b, _ = json.Marshal(p)
	os.WriteFile(proofFile, b, 0o600)
	if out, stderr, code = ward(t, "", "audit", "verify-proof", "--key", keyFile, "--checkpoint", cpFile, "--proof", proofFile); code != 3 || !strings.Contains(stderr, "PROOF FAILS") {
		t.Fatalf("forged proof: exit %d: %s %s", code, out, stderr)
	}

	// Archive: within the retention refused, forced done and recorded.
	tomorrow := time.Now().Add(24 * time.Hour).Format("2006-01-02")
	if out, stderr, code = ward(t, "", "audit", "archive", "--data-dir", dir, "--before", tomorrow); code == 0 || !strings.Contains(stderr, "--force-within-retention") {
		t.Fatalf("archive within retention: exit %d: %s %s", code, out, stderr)
	}
	out, stderr, code = ward(t, "", "audit", "archive", "--data-dir", dir, "--before", tomorrow, "--force-within-retention")
	if code != 0 || !strings.Contains(out, "archived records 1 to") || !strings.Contains(out, "forced") {
		t.Fatalf("forced archive: exit %d: %s %s", code, out, stderr)
	}
	out, stderr, code = ward(t, "", "audit", "verify", "--data-dir", dir, "--checkpoint", cpFile, "--key", keyFile)
	if code != 0 || !strings.Contains(out, "archives: 1 files") || !strings.Contains(out, "holds it unchanged") {
		t.Fatalf("verify with the archive: exit %d: %s %s", code, out, stderr)
	}

	// Cut the live tail and rewrite the head: the chain passes, the
	// checkpoint does not.
	db, err := sql.Open("sqlite", filepath.Join(dir, "ward.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM audit_log; UPDATE audit_head SET seq = 0, hash = X''`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	os.RemoveAll(filepath.Join(dir, "audit-archive"))
	if _, stderr, code = ward(t, "", "audit", "verify", "--data-dir", dir); code != 0 {
		t.Fatalf("the chain alone should pass an emptied ledger with a reset head: %s", stderr)
	}
	out, stderr, code = ward(t, "", "audit", "verify", "--data-dir", dir, "--checkpoint", cpFile, "--key", keyFile)
	if code != 3 || !strings.Contains(stderr, "LEDGER BROKEN") || !strings.Contains(stderr, "wiped") {
		t.Fatalf("verify of a wiped ledger against the checkpoint: exit %d: %s %s", code, out, stderr)
	}
}
