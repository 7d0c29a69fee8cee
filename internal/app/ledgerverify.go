package app

// Verification of the ledger against a signed checkpoint and across
// archives, archiving, and the offline proof verifier.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/witness"
)

// ProofError is evidence that the ledger is not what a signed checkpoint
// or an archive says it was. Reason is a stable token.
type ProofError struct {
	Reason string // truncated, wiped, history-rewritten, tree-inconsistent, archive-missing, archive-altered
	Detail string
	Err    error
}

// Reasons of a ProofError.
const (
	ReasonTruncated        = "truncated"
	ReasonWiped            = "wiped"
	ReasonHistoryRewritten = "history-rewritten"
	ReasonTreeInconsistent = "tree-inconsistent"
	ReasonArchiveMissing   = "archive-missing"
	ReasonArchiveAltered   = "archive-altered"
)

func (e *ProofError) Error() string {
	s := "ledger " + e.Reason + ": " + e.Detail
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *ProofError) Unwrap() error { return e.Err }

// LedgerVerification is what a full verification read.
type LedgerVerification struct {
	LedgerSummary
	// Archives and Archived are the archive files read and the records
	// they hold.
	Archives int
	Archived int64
	// Checkpoint is the checkpoint verified against, if any.
	Checkpoint *ledger.Checkpoint
	// TreeSize is the stored tree's size; TreeChecked says its
	// consistency proof from the checkpoint was checked.
	TreeSize    int64
	TreeChecked bool
	// Cosigners are the witnesses whose cosignatures were checked.
	Cosigners []string
	// Reapplied is how many erasures of the shred list a restore
	// re-applied (Restore only).
	Reapplied int
}

// VerifyOptions say what to verify beyond the live chain.
type VerifyOptions struct {
	// ArchiveDir holds the archives; every one found is verified, and the
	// live ledger must continue exactly where the last one ends.
	ArchiveDir string
	// Checkpoint is a signed checkpoint held outside the database; nil:
	// none.
	Checkpoint []byte
	// Keys are the published checkpoint keys; needed for a checkpoint or
	// any archive.
	Keys note.Verifiers
	// Witnesses are witness verifier keys (cosignature/v1): the
	// checkpoint must carry a valid cosignature by each.
	Witnesses []note.Verifier
}

// archiveFile is one archive in the directory.
type archiveFile struct {
	path        string
	first, last int64
}

// listArchives lists dir's archive files by first seq (a missing
// directory holds none).
func listArchives(dir string) ([]archiveFile, error) {
	if dir == "" {
		return nil, nil
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the archive directory: %w", err)
	}
	var out []archiveFile
	for _, e := range ents {
		name := e.Name()
		rest, ok := strings.CutPrefix(name, "ledger-")
		if !ok || !strings.HasSuffix(rest, ".archive") {
			continue
		}
		a, b, ok := strings.Cut(strings.TrimSuffix(rest, ".archive"), "-")
		first, err1 := strconv.ParseInt(a, 10, 64)
		last, err2 := strconv.ParseInt(b, 10, 64)
		if !ok || err1 != nil || err2 != nil {
			return nil, &ProofError{Reason: ReasonArchiveAltered, Detail: "archive file " + name + " is misnamed"}
		}
		out = append(out, archiveFile{path: filepath.Join(dir, name), first: first, last: last})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].first < out[j].first })
	return out, nil
}

func archiveName(first, last int64) string {
	return fmt.Sprintf("ledger-%012d-%012d.archive", first, last)
}

// roots recomputes the tree from the leaves as they pass, keeps the root
// at the sizes asked for, and (with stored set) compares every node it
// makes below the stored tree's size with the stored one, in batches.
type roots struct {
	r    *compact.Range
	want map[uint64][]byte

	ctx     context.Context
	stored  ledger.Fetch
	size    uint64 // the stored tree's size
	ids     []ledger.NodeID
	hashes  [][]byte
	badNode *ledger.NodeID
}

func (t *roots) add(rec *audit.Record) error {
	var visit compact.VisitFn
	if t.stored != nil {
		visit = func(id compact.NodeID, h []byte) {
			if _, end := id.Coverage(); end <= t.size {
				t.ids = append(t.ids, id)
				t.hashes = append(t.hashes, h)
			}
		}
	}
	if err := t.r.Append(ledger.LeafHash(rec), visit); err != nil {
		return err
	}
	if _, ok := t.want[t.r.End()]; ok {
		h, err := ledger.RootOf(t.r)
		if err != nil {
			return err
		}
		t.want[t.r.End()] = h
	}
	if len(t.ids) >= 512 {
		return t.flush()
	}
	return nil
}

// flush compares the pending nodes with the stored ones.
func (t *roots) flush() error {
	if len(t.ids) == 0 || t.badNode != nil {
		t.ids, t.hashes = t.ids[:0], t.hashes[:0]
		return nil
	}
	got, err := t.stored(t.ctx, t.ids)
	if err != nil {
		id := t.ids[0]
		t.badNode = &id
	} else {
		for i := range got {
			if string(got[i]) != string(t.hashes[i]) {
				id := t.ids[i]
				t.badNode = &id
				break
			}
		}
	}
	t.ids, t.hashes = t.ids[:0], t.hashes[:0]
	return nil
}

// VerifyLedgerFull verifies the archives (each signed, whole, chained to
// the one before and to the tree root its boundary checkpoint states),
// then the live chain from where they end to the stored head, and, with a
// checkpoint, that the ledger still holds the tree it signed: at least its
// size (else truncated or wiped) and the same root recomputed from the
// records (else history rewritten), and that the stored tree proves the
// checkpoint consistent with its own size by the library's verifier.
func VerifyLedgerFull(ctx context.Context, st store.Store, o VerifyOptions) (LedgerVerification, error) {
	var v LedgerVerification
	var cp *ledger.Checkpoint
	if o.Checkpoint != nil {
		if o.Keys == nil {
			return v, errors.New("verifying against a checkpoint needs the published checkpoint keys")
		}
		c, err := ledger.Open(o.Checkpoint, o.Keys)
		if err != nil {
			return v, err
		}
		cp, v.Checkpoint = &c, &c
		if v.Cosigners, err = checkCosigners(o.Checkpoint, o.Witnesses); err != nil {
			return v, err
		}
	}
	treeSize, err := st.AuditTreeSize(ctx)
	if err != nil {
		return v, err
	}
	v.TreeSize = treeSize
	t := &roots{r: ledger.NewRange(), want: map[uint64][]byte{}, ctx: ctx, stored: ledgerFetch(st), size: uint64(treeSize)}
	if cp != nil {
		t.want[cp.Size] = nil
		if treeSize >= int64(cp.Size) {
			t.want[uint64(treeSize)] = nil
		}
	}
	archives, err := listArchives(o.ArchiveDir)
	if err != nil {
		return v, err
	}
	if len(archives) > 0 && o.Keys == nil {
		return v, errors.New("verifying archives needs the published checkpoint keys")
	}
	prev := audit.GenesisHead()
	for _, a := range archives {
		if a.first != prev.Seq+1 {
			return v, &ProofError{Reason: ReasonArchiveMissing, Detail: fmt.Sprintf("no archive holds records %d to %d", prev.Seq+1, a.first-1)}
		}
		info, err := verifyArchive(a, prev, t, o.Keys)
		if err != nil {
			return v, err
		}
		v.Archives++
		v.Archived += info.Last - info.First + 1
		if v.First == 0 {
			v.First = info.First
		}
		prev = audit.Head{Seq: info.Last, Hash: info.Head}
	}
	err = st.AuditScan(ctx, prev.Seq, func(h audit.Head, recs iter.Seq2[*audit.Record, error]) error {
		v.Head = h
		counted := func(yield func(*audit.Record, error) bool) {
			for r, err := range recs {
				if r != nil {
					v.Count++
					if v.First == 0 {
						v.First, v.FirstTime = r.Seq, r.Time
					} else if v.FirstTime.IsZero() {
						v.FirstTime = r.Time
					}
					v.Last, v.LastTime = r.Seq, r.Time
					if err := t.add(r); err != nil {
						yield(nil, err)
						return
					}
				}
				if !yield(r, err) {
					return
				}
			}
		}
		err := audit.VerifyFrom(prev, counted, &h)
		var be *audit.BreakError
		if len(archives) > 0 && errors.As(err, &be) && be.Seq == prev.Seq+1 && be.Reason == audit.ReasonGap {
			return &ProofError{Reason: ReasonArchiveMissing, Detail: fmt.Sprintf("the live ledger starts at %d, the archives end at %d", be.Found, prev.Seq), Err: err}
		}
		return err
	})
	if err != nil {
		var be *audit.BreakError
		if len(archives) == 0 && errors.As(err, &be) && be.Seq == 1 && be.Reason == audit.ReasonGap {
			return v, &ProofError{Reason: ReasonArchiveMissing, Detail: fmt.Sprintf("the live ledger starts at %d and no archive holds the records before", be.Found), Err: err}
		}
		return v, err
	}
	if err := t.flush(); err != nil {
		return v, err
	}
	badTree := func() error {
		if t.badNode == nil {
			return nil
		}
		return &ProofError{Reason: ReasonTreeInconsistent, Detail: fmt.Sprintf("the stored tree node (level %d, index %d) does not match the records: records were rewritten after the tree was built, or the tree was forged", t.badNode.Level, t.badNode.Index)}
	}
	if cp == nil {
		return v, badTree()
	}
	have := uint64(v.Head.Seq)
	switch {
	case have == 0 && cp.Size > 0:
		return v, &ProofError{Reason: ReasonWiped, Detail: fmt.Sprintf("the ledger is empty, the checkpoint signed %d records", cp.Size)}
	case have < cp.Size:
		return v, &ProofError{Reason: ReasonTruncated, Detail: fmt.Sprintf("the ledger holds %d records, the checkpoint signed %d", have, cp.Size)}
	}
	if got := t.want[cp.Size]; got == nil || string(got) != string(cp.Root) {
		return v, &ProofError{Reason: ReasonHistoryRewritten, Detail: fmt.Sprintf("the records up to %d do not hash to the checkpoint's root", cp.Size)}
	}
	if err := badTree(); err != nil {
		return v, err
	}
	if treeSize >= int64(cp.Size) && cp.Size > 0 {
		p, err := ledger.Consistency(ctx, ledgerFetch(st), cp.Size, uint64(treeSize))
		if err == nil {
			err = ledger.VerifyConsistency(cp.Size, uint64(treeSize), p, cp.Root, t.want[uint64(treeSize)])
		}
		if err != nil {
			return v, &ProofError{Reason: ReasonTreeInconsistent, Detail: fmt.Sprintf("the stored tree does not prove size %d consistent with size %d", cp.Size, treeSize), Err: err}
		}
		v.TreeChecked = true
	}
	return v, nil
}

func ledgerFetch(st store.Store) ledger.Fetch {
	return (&LedgerProof{st: st}).fetch
}

// verifyArchive reads one archive, chaining its records from prev and
// feeding the tree, and checks its signed summary and boundary checkpoint.
func verifyArchive(a archiveFile, prev audit.Head, t *roots, keys note.Verifiers) (ledger.ArchiveInfo, error) {
	f, err := os.Open(a.path)
	if err != nil {
		return ledger.ArchiveInfo{}, &ProofError{Reason: ReasonArchiveMissing, Detail: "cannot read " + filepath.Base(a.path), Err: err}
	}
	defer f.Close()
	last := prev
	info, err := ledger.ReadArchive(f, keys, func(r *audit.Record) error {
		if r.Seq != last.Seq+1 {
			return fmt.Errorf("%w: record %d where %d was due", ledger.ErrArchive, r.Seq, last.Seq+1)
		}
		audit.Chain(last.Hash, r)
		last = audit.Head{Seq: r.Seq, Hash: r.Hash}
		return t.add(r)
	})
	name := filepath.Base(a.path)
	if err != nil {
		return info, &ProofError{Reason: ReasonArchiveAltered, Detail: name, Err: err}
	}
	switch {
	case info.First != a.first || info.Last != a.last:
		return info, &ProofError{Reason: ReasonArchiveAltered, Detail: name + " holds other records than its name says"}
	case info.Prev != prev.Hash:
		return info, &ProofError{Reason: ReasonArchiveAltered, Detail: name + " does not chain onto the records before it"}
	case info.Head != last.Hash:
		return info, &ProofError{Reason: ReasonArchiveAltered, Detail: name + " does not hash to its signed head"}
	}
	root, err := ledger.RootOf(t.r)
	if err != nil {
		return info, err
	}
	if string(root) != string(info.Checkpoint.Root) {
		return info, &ProofError{Reason: ReasonArchiveAltered, Detail: name + ": the records up to it do not hash to its boundary checkpoint"}
	}
	return info, nil
}

// ArchiveOptions say what `ward audit archive` moves out.
type ArchiveOptions struct {
	// Before: records recorded before it are archived (the prefix of the
	// ledger older than it).
	Before time.Time
	// Force allows records within the retention period; the forcing is
	// itself a ledger record.
	Force bool
	// Actor names who runs it, in the ledger ("operator" if empty).
	Actor string
}

// ArchiveResult is what an archive run did.
type ArchiveResult struct {
	File        string
	First, Last int64
	Removed     int64
	Forced      bool
}

// ErrWithinRetention is returned for an archive boundary newer than the
// retention allows.
var ErrWithinRetention = errors.New("records within the retention period")

// Archive moves the records older than o.Before out of the live ledger:
// it extends the tree over them, signs the checkpoint at the boundary,
// writes the archive file (synced and renamed into place), reads it back
// and verifies it, and only then removes the records, in one statement.
// An archive run is recorded in the ledger; so is forcing the retention.
func (p *LedgerProof) Archive(ctx context.Context, o ArchiveOptions) (*ArchiveResult, error) {
	actor := o.Actor
	if actor == "" {
		actor = "operator"
	}
	limit := p.now().Add(-p.cfg.Retention)
	forced := false
	if o.Before.After(limit) {
		if !o.Force {
			return nil, fmt.Errorf("%w: --before %s is newer than the retention allows (records before %s; WARD_AUDIT_RETENTION %s); pass --force-within-retention to archive them anyway, which is recorded",
				ErrWithinRetention, o.Before.UTC().Format(time.RFC3339), limit.UTC().Format(time.RFC3339), p.cfg.Retention)
		}
		forced = true
		now := p.now().UTC()
		err := store.NewRecorder(p.st).Record(ctx, &audit.Record{Time: now, Actor: actor, Role: "operator", Action: "audit-archive-forced",
			Detail: "within-retention", Entities: []string{"audit-archive/before/" + strconv.FormatInt(o.Before.Unix(), 10)}})
		if err != nil {
			return nil, err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	through, err := p.st.AuditSeqBefore(ctx, o.Before)
	if err != nil {
		return nil, err
	}
	archives, err := listArchives(p.archiveDir())
	if err != nil {
		return nil, err
	}
	done := int64(0)
	if len(archives) > 0 {
		done = archives[len(archives)-1].last
	}
	if through <= done {
		return &ArchiveResult{Forced: forced}, nil
	}
	size, err := p.extend(ctx)
	if err != nil {
		return nil, err
	}
	if size < through {
		return nil, fmt.Errorf("the tree covers %d records, not %d: run ward audit verify", size, through)
	}
	cp, err := p.signAt(ctx, through)
	if err != nil {
		return nil, err
	}
	signer, err := p.signerFor(ctx)
	if err != nil {
		return nil, err
	}
	name := archiveName(done+1, through)
	var info ledger.ArchiveInfo
	err = writeDurableFunc(p.archiveDir(), name, 0o400, func(w io.Writer) error {
		return p.st.AuditScan(ctx, done, func(_ audit.Head, recs iter.Seq2[*audit.Record, error]) error {
			var werr error
			info, werr = ledger.WriteArchive(w, signer, cp.Note, upTo(recs, done, through))
			return werr
		})
	})
	if err != nil {
		return nil, fmt.Errorf("write archive %s: %w", name, err)
	}
	// Read back what is on disk before anything is removed.
	vs, err := ledger.Verifiers(strings.Join(p.vkeys, "\n"))
	if err != nil {
		return nil, err
	}
	prev := audit.Head{Seq: done, Hash: info.Prev}
	if _, err := verifyArchive(archiveFile{path: filepath.Join(p.archiveDir(), name), first: done + 1, last: through}, prev, &roots{r: mustFrontier(ctx, p, done), want: map[uint64][]byte{}}, vs); err != nil {
		os.Remove(filepath.Join(p.archiveDir(), name))
		return nil, fmt.Errorf("the archive written does not verify, nothing removed: %w", err)
	}
	n, err := p.st.AuditRemoveThrough(ctx, through)
	if err != nil {
		return nil, err
	}
	now := p.now().UTC()
	err = store.NewRecorder(p.st).Record(ctx, &audit.Record{Time: now, Actor: actor, Role: "operator", Action: "audit-archive",
		Entities: []string{fmt.Sprintf("audit-archive/%d-%d", done+1, through)}})
	if err != nil {
		return nil, err
	}
	return &ArchiveResult{File: filepath.Join(p.archiveDir(), name), First: done + 1, Last: through, Removed: n, Forced: forced}, nil
}

// mustFrontier is the tree's compact range at size, for checking an
// archive that starts there; an empty one if it cannot be read (the
// archive's root check then fails, and nothing is removed).
func mustFrontier(ctx context.Context, p *LedgerProof, size int64) *compact.Range {
	r, err := ledger.Frontier(ctx, p.fetch, uint64(size))
	if err != nil {
		return ledger.NewRange()
	}
	return r
}

// upTo yields the records after done through through, and fails if one is
// missing or does not chain.
func upTo(recs iter.Seq2[*audit.Record, error], done, through int64) iter.Seq2[*audit.Record, error] {
	return func(yield func(*audit.Record, error) bool) {
		want := done + 1
		var prev *[32]byte
		var h audit.Hasher
		for r, err := range recs {
			if err != nil {
				yield(nil, err)
				return
			}
			if r.Seq != want {
				yield(nil, fmt.Errorf("record %d missing from the live ledger (found %d)", want, r.Seq))
				return
			}
			if audit.Link(r.PrevHash, h.EntryHash(r)) != r.Hash || (prev != nil && *prev != r.PrevHash) {
				yield(nil, fmt.Errorf("record %d does not verify: run ward audit verify; nothing archived", r.Seq))
				return
			}
			hash := r.Hash
			prev = &hash
			if !yield(r, nil) {
				return
			}
			if r.Seq == through {
				return
			}
			want++
		}
		if want <= through {
			yield(nil, fmt.Errorf("record %d missing from the live ledger", want))
		}
	}
}

func (p *LedgerProof) archiveDir() string { return p.cfg.ArchiveDir }

// CheckpointKeys returns the published checkpoint keys of an existing
// database, unwrapped with the key-encryption key (for verify when no key
// file is given).
func CheckpointKeys(ctx context.Context, cfg config.Config, st store.Store) (string, error) {
	kw, closeKEK, err := OpenKeyWrapper(ctx, cfg, io.Discard)
	if err != nil {
		return "", err
	}
	defer closeKEK()
	km, err := keys.NewWithWrapper(ctx, st, kw, nil)
	if err != nil {
		return "", err
	}
	sys, err := km.DataKey(ctx, keys.SystemTenant)
	if err != nil {
		return "", err
	}
	p := newLedgerProof(st, km, sys, withArchiveDir(cfg), nil, nil)
	return p.PublicKeys(ctx)
}

// withArchiveDir resolves the archive directory default.
func withArchiveDir(cfg config.Config) config.Config {
	cfg.Ledger.ArchiveDir = cfg.ArchiveDir()
	return cfg
}

// VerifyProof checks a proof served by /audit/proof/... against signed
// checkpoints and the published keys, without a database: an inclusion
// proof against checkpoint (of the proof's size); a consistency proof from
// checkpoint (of size from) to newer (of size to) or, without newer, to
// the proof's own to_root (which then proves only that the old checkpoint
// is a prefix of that root). It returns a one-line summary.
func VerifyProof(keysText string, checkpoint, newer, proofJSON []byte) (string, error) {
	vs, err := ledger.Verifiers(keysText)
	if err != nil {
		return "", err
	}
	cp, err := ledger.Open(checkpoint, vs)
	if err != nil {
		return "", err
	}
	var kind struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(proofJSON, &kind); err != nil {
		return "", problem.New(problem.ErrInvalid, "structure", "the proof is not JSON")
	}
	dec := func(v any) error {
		d := json.NewDecoder(strings.NewReader(string(proofJSON)))
		d.DisallowUnknownFields()
		if err := d.Decode(v); err != nil {
			return problem.New(problem.ErrInvalid, "structure", "the proof does not parse: "+err.Error())
		}
		return nil
	}
	switch kind.Type {
	case "inclusion":
		var p InclusionProof
		if err := dec(&p); err != nil {
			return "", err
		}
		if p.Size < 1 || uint64(p.Size) != cp.Size {
			return "", fmt.Errorf("the proof is for a tree of %d records, the checkpoint signs %d", p.Size, cp.Size)
		}
		if p.Seq < 1 || p.Seq > p.Size {
			return "", errors.New("the proof's seq is outside its tree")
		}
		if err := ledger.VerifyInclusion(uint64(p.Seq-1), cp.Size, p.LeafHash, p.Hashes, cp.Root); err != nil {
			return "", &ProofError{Reason: ReasonHistoryRewritten, Detail: fmt.Sprintf("record %d is not in the signed tree of %d", p.Seq, cp.Size), Err: err}
		}
		return fmt.Sprintf("record %d (leaf hash %x) is in the signed tree of %d records (%s)", p.Seq, p.LeafHash, cp.Size, cp.Origin), nil
	case "consistency":
		var p ConsistencyProof
		if err := dec(&p); err != nil {
			return "", err
		}
		if p.From < 1 || uint64(p.From) != cp.Size || p.To < p.From {
			return "", fmt.Errorf("the proof starts at %d records, the checkpoint signs %d", p.From, cp.Size)
		}
		to, what := p.ToRoot, "the proof's own to_root (unsigned)"
		if newer != nil {
			ncp, err := ledger.Open(newer, vs)
			if err != nil {
				return "", err
			}
			if ncp.Size != uint64(p.To) {
				return "", fmt.Errorf("the proof ends at %d records, the newer checkpoint signs %d", p.To, ncp.Size)
			}
			to, what = ncp.Root, "the newer signed checkpoint"
		}
		if err := ledger.VerifyConsistency(uint64(p.From), uint64(p.To), p.Hashes, cp.Root, to); err != nil {
			return "", &ProofError{Reason: ReasonHistoryRewritten, Detail: fmt.Sprintf("the tree of %d is not a prefix of the tree of %d", p.From, p.To), Err: err}
		}
		return fmt.Sprintf("the signed tree of %d records is a prefix of the tree of %d records (%s)", p.From, p.To, what), nil
	}
	return "", problem.New(problem.ErrInvalid, "value", `the proof's type must be "inclusion" or "consistency"`)
}

// LedgerBroken says err is evidence of tampering (a broken chain, or a
// ledger that is not what a checkpoint or an archive says), rather than a
// failure to read.
func LedgerBroken(err error) bool {
	var be *audit.BreakError
	var pe *ProofError
	return errors.As(err, &be) || errors.As(err, &pe)
}

// VerifyLedgerAt is `ward audit verify`: the archives in the configured
// directory, the live ledger of the existing database, and, when
// checkpoint is not nil, the checkpoint. keysText are the published
// checkpoint keys; empty: the keys sealed in the database, unwrapped with
// the key-encryption key (trusting the KEK, not the database).
func VerifyLedgerAt(ctx context.Context, cfg config.Config, checkpoint []byte, keysText, witnessKeys string) (LedgerVerification, error) {
	var ws []note.Verifier
	for _, l := range strings.Split(witnessKeys, "\n") {
		if l = strings.TrimSpace(l); l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		w, err := witness.NewVerifier(l)
		if err != nil {
			return LedgerVerification{}, err
		}
		ws = append(ws, w)
	}
	if len(ws) > 0 && checkpoint == nil {
		return LedgerVerification{}, errors.New("witness keys need a checkpoint to check")
	}
	st, err := OpenExistingStore(ctx, cfg)
	if err != nil {
		return LedgerVerification{}, err
	}
	defer st.Close()
	dir := cfg.ArchiveDir()
	archives, err := listArchives(dir)
	if err != nil {
		return LedgerVerification{}, err
	}
	var vs note.Verifiers
	if keysText == "" && (checkpoint != nil || len(archives) > 0) {
		if keysText, err = CheckpointKeys(ctx, cfg, st); err != nil {
			return LedgerVerification{}, fmt.Errorf("the checkpoint keys (pass the published ones with --key): %w", err)
		}
	}
	if keysText != "" {
		if vs, err = ledger.Verifiers(keysText); err != nil {
			return LedgerVerification{}, err
		}
	}
	return VerifyLedgerFull(ctx, st, VerifyOptions{ArchiveDir: dir, Checkpoint: checkpoint, Keys: vs, Witnesses: ws})
}

// checkCosigners requires a valid cosignature on checkpoint by each of ws.
func checkCosigners(checkpoint []byte, ws []note.Verifier) ([]string, error) {
	if len(ws) == 0 {
		return nil, nil
	}
	got := witness.Cosigners(checkpoint, ws)
	for _, w := range ws {
		if !slices.Contains(got, w.Name()) {
			return got, fmt.Errorf("the checkpoint carries no valid cosignature by witness %s", w.Name())
		}
	}
	return got, nil
}
