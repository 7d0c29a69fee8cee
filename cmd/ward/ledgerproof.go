package main

// ward audit verify, verify-proof, checkpoint, checkpoint-key and archive:
// the ledger verifiable without trusting the database (docs/ledger.md).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/app"
)

// ledgerProofCommand returns the runner of a ledger subcommand, or nil.
func ledgerProofCommand(name string) func(context.Context, []string, io.Writer, io.Writer) error {
	switch name {
	case "verify":
		return runAuditVerify
	case "verify-proof":
		return runAuditVerifyProof
	case "checkpoint":
		return runAuditCheckpoint
	case "checkpoint-key":
		return runAuditCheckpointKey
	case "archive":
		return runAuditArchive
	}
	return nil
}

// ledgerProofCommands lists them for `ward audit`.
const ledgerProofCommands = `  verify          check the archives and the ledger's hash chain to the head, and against a signed checkpoint: ward audit verify [--checkpoint F] [--key F] [--data-dir D]
  verify-proof    check an inclusion or consistency proof against a checkpoint and public key, without a database: ward audit verify-proof --key F --checkpoint F [--new-checkpoint F] --proof F
  checkpoint      extend the Merkle tree, sign a checkpoint if the ledger grew, push it to the witnesses and print it: ward audit checkpoint [--data-dir D]
  checkpoint-key  print the published checkpoint keys (--rotate: make a new one): ward audit checkpoint-key [--rotate]
  archive         move records older than a date into a signed archive file: ward audit archive --before DATE [--force-within-retention]
`

// auditVerifyLimit is what a verification can and cannot prove; printed
// with ward audit verify -h and kept in step with docs/ledger.md.
const auditVerifyLimit = `
audit verify reads the archive files (WARD_AUDIT_ARCHIVE_DIR) and then the
live ledger: it recomputes every record's hash and its link to the record
before it, from sequence 1 (genesis) to the stored head, checks that each
archive is signed, whole and chained to the next, and exits 0 only if all
of it is intact; 3 when it is not (naming the first bad sequence number or
the archive); 1 when there is no database at --data-dir.

It reports the record count, the first and last sequence numbers and the
time of the head record. The chain alone cannot show a cut of its newest
records (or of all of them) together with a rewritten head row. Give it a
signed checkpoint held outside the database (--checkpoint, from
GET /audit/checkpoint or a witness) and it also detects that: a ledger
smaller than the checkpoint (truncated or wiped), or records at or below
its size that do not hash to its signed root (a rewritten head or any
rewritten history), and it checks the stored Merkle tree's consistency
proof with the checkpoint. --key names the published checkpoint keys; by
default they are unwrapped from the database with the key-encryption key.
`

func runAuditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cpFile, keyFile, witnessFile string
	cfg, _, err := flags("audit verify", args, stderr, append(append([]string{}, dbSettings...), "key-file", "audit-archive-dir"), func(fs *flag.FlagSet) {
		fs.StringVar(&cpFile, "checkpoint", "", "a signed checkpoint held outside the database to verify against")
		fs.StringVar(&keyFile, "key", "", "the published checkpoint keys, one a line (default: unwrapped from the database)")
		fs.StringVar(&witnessFile, "witness-keys", "", "witness verifier keys, one a line: the checkpoint must carry a valid cosignature by each")
	})
	var he *helpError
	if errors.As(err, &he) {
		he.text += auditVerifyLimit
	}
	if err != nil {
		return err
	}
	var cp []byte
	if cpFile != "" {
		if cp, err = os.ReadFile(cpFile); err != nil {
			return fmt.Errorf("--checkpoint: %w", err)
		}
	}
	keys := ""
	if keyFile != "" {
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return fmt.Errorf("--key: %w", err)
		}
		keys = string(b)
	}
	witnesses := ""
	if witnessFile != "" {
		b, err := os.ReadFile(witnessFile)
		if err != nil {
			return fmt.Errorf("--witness-keys: %w", err)
		}
		witnesses = string(b)
	}
	v, err := app.VerifyLedgerAt(ctx, cfg, cp, keys, witnesses)
	if err != nil {
		if app.LedgerBroken(err) {
			return &exitError{code: 3, err: fmt.Errorf("LEDGER BROKEN: %w", err)}
		}
		return err
	}
	fmt.Fprintf(stdout, "ledger intact: %d records, head seq %d hash %x\n", v.Count+v.Archived, v.Head.Seq, v.Head.Hash)
	if v.Archives > 0 {
		fmt.Fprintf(stdout, "  archives: %d files holding %d records (%s), signed and chained\n", v.Archives, v.Archived, cfg.ArchiveDir())
	}
	if v.Count == 0 {
		fmt.Fprintln(stdout, "  the live ledger is EMPTY: if this server has ever served a request since the archives, records were removed")
	} else {
		fmt.Fprintf(stdout, "  first record: seq %d at %s\n", v.First, v.FirstTime.UTC().Format(time.RFC3339Nano))
		fmt.Fprintf(stdout, "  last record:  seq %d at %s (the head)\n", v.Last, v.LastTime.UTC().Format(time.RFC3339Nano))
	}
	if v.Checkpoint == nil {
		fmt.Fprintln(stdout, "  compare these with what you expect: records cut off the end together with a rewritten head are not detected without a checkpoint (see ward audit verify -h)")
		return nil
	}
	fmt.Fprintf(stdout, "  checkpoint %s of %d records signed %s: the ledger holds it unchanged", v.Checkpoint.Origin, v.Checkpoint.Size, v.Checkpoint.Time.Format(time.RFC3339))
	if v.TreeChecked {
		fmt.Fprintf(stdout, "; the stored tree proves it consistent with size %d", v.TreeSize)
	}
	fmt.Fprintln(stdout)
	if len(v.Cosigners) > 0 {
		fmt.Fprintf(stdout, "  cosigned by %s\n", strings.Join(v.Cosigners, ", "))
	}
	return nil
}

func runAuditVerifyProof(_ context.Context, args []string, stdout, stderr io.Writer) error {
	var keyFile, cpFile, newFile, proofFile string
	_, _, err := flags("audit verify-proof", args, stderr, nil, func(fs *flag.FlagSet) {
		fs.StringVar(&keyFile, "key", "", "the published checkpoint keys, one a line (required)")
		fs.StringVar(&cpFile, "checkpoint", "", "the signed checkpoint the proof is for (required): of the proof's size, or of its from size")
		fs.StringVar(&newFile, "new-checkpoint", "", "for a consistency proof: the newer signed checkpoint, of its to size")
		fs.StringVar(&proofFile, "proof", "", "the proof, JSON from /audit/proof/inclusion or /audit/proof/consistency (required)")
	})
	if err != nil {
		return err
	}
	if keyFile == "" || cpFile == "" || proofFile == "" {
		fmt.Fprintln(stderr, "ward audit verify-proof: --key, --checkpoint and --proof are required")
		return errUsage
	}
	read := func(name, f string) ([]byte, error) {
		if f == "" {
			return nil, nil
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", name, err)
		}
		return b, nil
	}
	keys, err := read("key", keyFile)
	if err != nil {
		return err
	}
	cp, err := read("checkpoint", cpFile)
	if err != nil {
		return err
	}
	newer, err := read("new-checkpoint", newFile)
	if err != nil {
		return err
	}
	p, err := read("proof", proofFile)
	if err != nil {
		return err
	}
	sum, err := app.VerifyProof(string(keys), cp, newer, p)
	if err != nil {
		if app.LedgerBroken(err) {
			return &exitError{code: 3, err: fmt.Errorf("PROOF FAILS: %w", err)}
		}
		return err
	}
	fmt.Fprintln(stdout, "proof verified: "+sum)
	return nil
}

func runAuditCheckpoint(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, _, err := flags("audit checkpoint", args, stderr, append(append([]string{}, dbSettings...), "key-file", "base-url", "checkpoint-origin", "checkpoint-witness-dir", "checkpoint-witness-urls", "checkpoint-cosigners"), nil)
	if err != nil {
		return err
	}
	a, err := openApp(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	cp, fresh, err := a.Proof.Checkpoint(ctx)
	if err != nil {
		return err
	}
	if cp == nil {
		fmt.Fprintln(stderr, "the ledger is empty: no checkpoint")
		return nil
	}
	if !fresh {
		fmt.Fprintf(stderr, "no new records since the checkpoint of %d records\n", cp.Size)
	}
	_, err = stdout.Write(cp.Note)
	return err
}

func runAuditCheckpointKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var rotate bool
	cfg, _, err := flags("audit checkpoint-key", args, stderr, append(append([]string{}, dbSettings...), "key-file", "base-url", "checkpoint-origin"), func(fs *flag.FlagSet) {
		fs.BoolVar(&rotate, "rotate", false, "make a new checkpoint key; it signs from now on, the old ones stay published")
	})
	if err != nil {
		return err
	}
	a, err := openApp(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	if rotate {
		vkey, err := a.Proof.RotateKey(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "new checkpoint key: %s\npublish it next to the old ones (they keep verifying older checkpoints and archives)\n", vkey)
	}
	keys, err := a.Proof.PublicKeys(ctx)
	if err != nil {
		return err
	}
	_, err = io.WriteString(stdout, keys)
	return err
}

func runAuditArchive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var before, actor string
	var force bool
	cfg, _, err := flags("audit archive", args, stderr, append(append([]string{}, dbSettings...), "key-file", "base-url", "checkpoint-origin", "audit-archive-dir", "audit-retention"), func(fs *flag.FlagSet) {
		fs.StringVar(&before, "before", "", "archive the records recorded before this date (2019-01-01) or RFC 3339 time (required)")
		fs.BoolVar(&force, "force-within-retention", false, "archive records newer than WARD_AUDIT_RETENTION allows; the forcing is recorded in the ledger")
		fs.StringVar(&actor, "operator", "", "who runs the archive, as the ledger names them (default: operator)")
	})
	if err != nil {
		return err
	}
	if before == "" {
		fmt.Fprintln(stderr, "ward audit archive: --before is required")
		return errUsage
	}
	t, err := time.Parse(time.RFC3339, before)
	if err != nil {
		if t, err = time.Parse("2006-01-02", before); err != nil {
			return errors.New("--before must be a date (2019-01-01) or an RFC 3339 time")
		}
	}
	a, err := openApp(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	res, err := a.Proof.Archive(ctx, app.ArchiveOptions{Before: t, Force: force, Actor: actor})
	if err != nil {
		return err
	}
	if res.File == "" {
		fmt.Fprintln(stdout, "nothing to archive: no live record before that date")
		return nil
	}
	fmt.Fprintf(stdout, "archived records %d to %d into %s and removed %d from the live ledger\n", res.First, res.Last, res.File, res.Removed)
	if res.Forced {
		fmt.Fprintln(stdout, "  within the retention period (forced; recorded in the ledger)")
	}
	return nil
}
