package app

// The ledger made verifiable without trusting the database (issue #26,
// items 1 and 5; docs/ledger.md): the Merkle tree kept beside the chain,
// signed checkpoints and their witnesses, proofs, verification against a
// checkpoint and across archives, and archiving.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/store"
)

// CheckpointKeyPurpose is the store.Key purpose of sealed checkpoint keys.
const CheckpointKeyPurpose = "checkpoint-key"

// treeChunk bounds the records one tree extension reads and hashes.
const treeChunk = 50000

// LedgerProof keeps the ledger's Merkle tree, signs checkpoints with the
// sealed checkpoint key, pushes them to witnesses and serves proofs.
type LedgerProof struct {
	st     store.Store
	km     *keys.Manager
	sysKey string
	origin string
	cfg    config.Ledger
	log    *slog.Logger
	now    func() time.Time
	client *http.Client

	mu     sync.Mutex // one extension or checkpoint at a time in this process
	signer note.Signer
	// front is the tree's frontier as this process last stored it (nil
	// when unknown): an extension from its size appends to it instead of
	// reading it back, and a checkpoint at its size takes its root. It
	// is used only while the stored size equals its size; another node's
	// extension or a failed one drops it.
	front *compact.Range
	tail  [][]byte // the leaf hashes of front's partial last block
	vkeys []string // every published verifier key, oldest first

	cosMu   sync.Mutex
	cos     []*cosigner // the configured cosigners, parsed on first use
	witness *nodeWitness

	stop chan struct{}
	done chan struct{}
}

func newLedgerProof(st store.Store, km *keys.Manager, sysKey string, cfg config.Config, log *slog.Logger, now func() time.Time) *LedgerProof {
	if now == nil {
		now = time.Now
	}
	p := &LedgerProof{st: st, km: km, sysKey: sysKey, origin: cfg.Origin(), cfg: cfg.Ledger, log: log, now: now,
		client: &http.Client{Timeout: 10 * time.Second}}
	p.witness = &nodeWitness{p: p}
	return p
}

// Origin is the log's name in checkpoints.
func (p *LedgerProof) Origin() string { return p.origin }

// fetch reads nodes of the tree as stored: low levels from their tile,
// the others as rows (ledger.TiledFetch).
func (p *LedgerProof) fetch(ctx context.Context, ids []ledger.NodeID) ([][]byte, error) {
	return ledger.TiledFetch(p.st.AuditTreeTiles, p.fetchNodes)(ctx, ids)
}

func (p *LedgerProof) fetchNodes(ctx context.Context, ids []ledger.NodeID) ([][]byte, error) {
	sids := make([]store.NodeID, len(ids))
	for i, id := range ids {
		sids[i] = store.NodeID{Level: uint8(id.Level), Index: id.Index}
	}
	return p.st.AuditTreeNodes(ctx, sids)
}

// blockPrefix returns the leaf hashes of the partial block before size
// (the tile an extension from size writes again, longer): the ones kept
// from the last extension when they are at that size, else read back.
func (p *LedgerProof) blockPrefix(ctx context.Context, size int64) ([][]byte, error) {
	n := uint64(size) % ledger.TileWidth
	if n == 0 {
		return nil, nil
	}
	if p.front != nil && p.front.End() == uint64(size) && uint64(len(p.tail)) == n {
		return p.tail, nil
	}
	ids := make([]ledger.NodeID, n)
	for i := range ids {
		ids[i] = ledger.NodeID{Level: 0, Index: uint64(size) - n + uint64(i)}
	}
	return p.fetch(ctx, ids)
}

func checkpointKeyAAD(id string) []byte { return []byte("checkpoint-key/" + id) }

// loadKeys unwraps every checkpoint key: the newest named after the origin
// signs, all are published.
func (p *LedgerProof) loadKeys(ctx context.Context) error {
	ks, err := p.st.Keys(ctx, CheckpointKeyPurpose)
	if err != nil {
		return fmt.Errorf("load checkpoint keys: %w", err)
	}
	var signer note.Signer
	var vkeys []string
	for _, k := range ks {
		b, err := p.km.Open(k.Wrapped, checkpointKeyAAD(k.ID))
		if err != nil {
			return fmt.Errorf("open checkpoint key %s: %w", k.ID, err)
		}
		skey, vkey, ok := strings.Cut(string(b), "\n")
		if !ok {
			return fmt.Errorf("checkpoint key %s is malformed", k.ID)
		}
		s, err := note.NewSigner(skey)
		if err != nil {
			return fmt.Errorf("checkpoint key %s: %w", k.ID, err)
		}
		vkeys = append(vkeys, vkey)
		if s.Name() == p.origin {
			signer = s // keys come oldest first: the newest signs
		}
	}
	p.signer, p.vkeys = signer, vkeys
	return nil
}

// RotateKey makes a new checkpoint key for the origin: it signs every
// checkpoint from now on, and the old keys stay published so that old
// checkpoints and archives keep verifying. It returns the new verifier key.
func (p *LedgerProof) RotateKey(ctx context.Context) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.createKey(ctx)
}

func (p *LedgerProof) createKey(ctx context.Context) (string, error) {
	skey, vkey, err := ledger.NewKey(p.origin)
	if err != nil {
		return "", fmt.Errorf("generate checkpoint key: %w", err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return "", err
	}
	id := fmt.Sprintf("checkpoint/%s/%08x", p.origin, v.KeyHash())
	sealed, err := p.km.Seal(p.sysKey, []byte(skey+"\n"+vkey), checkpointKeyAAD(id))
	if err != nil {
		return "", fmt.Errorf("seal checkpoint key: %w", err)
	}
	now := p.now().UTC().Truncate(time.Microsecond)
	err = store.NewRecorder(p.st).Commit(ctx, &store.Unit{Parts: []store.Part{store.NewKey{Key: &store.Key{ID: id, Purpose: CheckpointKeyPurpose, Wrapped: sealed, Created: now}}}},
		&audit.Record{Time: now, Actor: "system", Role: "system", Action: "checkpoint-key-create", Entities: []string{"checkpoint-key/" + id}})
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return "", err
	}
	if err := p.loadKeys(ctx); err != nil {
		return "", err
	}
	return vkey, nil
}

// signerFor returns the signing key, generating it on first use.
func (p *LedgerProof) signerFor(ctx context.Context) (note.Signer, error) {
	if p.signer != nil {
		return p.signer, nil
	}
	if err := p.loadKeys(ctx); err != nil {
		return nil, err
	}
	if p.signer == nil {
		if _, err := p.createKey(ctx); err != nil {
			return nil, err
		}
	}
	if p.signer == nil {
		return nil, errors.New("no checkpoint key for the origin after creating one")
	}
	return p.signer, nil
}

// PublicKeys returns the published verifier keys, one a line, oldest
// first. It writes nothing: before the first checkpoint there is no key.
func (p *LedgerProof) PublicKeys(ctx context.Context) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.loadKeys(ctx); err != nil {
		return "", err
	}
	if len(p.vkeys) == 0 {
		return "", problem.New(problem.ErrNotFound, "not-found", "no checkpoint key yet: the first checkpoint makes one")
	}
	return strings.Join(p.vkeys, "\n") + "\n", nil
}

// ExtendTree brings the stored tree up to the ledger head and returns its
// size. It checks each record's own hash and its link to the one before as
// it goes, so a record edited before it was ever checkpointed is refused
// here rather than signed.
func (p *LedgerProof) ExtendTree(ctx context.Context) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.extend(ctx)
}

func (p *LedgerProof) extend(ctx context.Context) (int64, error) {
	for {
		size, err := p.st.AuditTreeSize(ctx)
		if err != nil {
			return 0, err
		}
		var leaves [][]byte
		var anchor *[32]byte
		var h audit.Hasher
		err = p.st.AuditScanTree(ctx, max(size-1, 0), func(head audit.Head, recs iter.Seq2[*audit.Record, error]) error {
			for r, err := range recs {
				if err != nil {
					return err
				}
				if r.Seq == size {
					hash := r.Hash
					anchor = &hash
					continue
				}
				want := size + int64(len(leaves)) + 1
				if r.Seq != want {
					return fmt.Errorf("ledger: record %d missing while extending the tree (found %d)", want, r.Seq)
				}
				// The chain's entry hash is the tree's leaf hash
				// (ledger.LeafHash): encode and hash each record once.
				leaf := h.EntryHash(r)
				if audit.Link(r.PrevHash, leaf) != r.Hash || (anchor != nil && r.PrevHash != *anchor) || (r.Seq == 1 && r.PrevHash != audit.Genesis) {
					return fmt.Errorf("ledger: record %d does not verify; the tree is not extended over it (run ward audit verify)", r.Seq)
				}
				hash := r.Hash
				anchor = &hash
				leaves = append(leaves, leaf[:])
				if len(leaves) == treeChunk || r.Seq == head.Seq {
					return nil
				}
			}
			return nil
		})
		if err != nil {
			return size, err
		}
		if len(leaves) == 0 {
			return size, nil
		}
		prefix, err := p.blockPrefix(ctx, size)
		if err != nil {
			return size, err
		}
		r := p.front
		p.front, p.tail = nil, nil // until the extension is stored
		if r == nil || r.End() != uint64(size) {
			if r, err = ledger.Frontier(ctx, p.fetch, uint64(size)); err != nil {
				return size, err
			}
		}
		nodes, err := ledger.ExtendRange(r, leaves)
		if err != nil {
			return size, err
		}
		tiles, upper, err := ledger.Strata(uint64(size), prefix, leaves, nodes)
		if err != nil {
			return size, err
		}
		sn := make([]store.TreeNode, len(upper))
		for i, n := range upper {
			sn[i] = store.TreeNode{NodeID: store.NodeID{Level: uint8(n.ID.Level), Index: n.ID.Index}, Hash: n.Hash}
		}
		st := make([]store.TreeTile, len(tiles))
		for i, t := range tiles {
			st[i] = store.TreeTile{Index: t.Index, Leaves: t.Leaves}
		}
		err = p.st.AuditTreeExtend(ctx, size, size+int64(len(leaves)), sn, st)
		if errors.Is(err, store.ErrConflict) {
			continue // another node extended it first: read again
		}
		if err != nil {
			return size, err
		}
		p.front, p.tail = r, nil
		if end := r.End(); end%ledger.TileWidth != 0 {
			last := st[len(st)-1].Leaves
			for i := 0; i < len(last); i += 32 {
				p.tail = append(p.tail, last[i:i+32])
			}
		}
		if len(leaves) < treeChunk {
			// The scan reached the head of its snapshot: done, without
			// a second scan that would find nothing (newer records wait
			// for the next checkpoint).
			return size + int64(len(leaves)), nil
		}
	}
}

// rootAt is the root of the tree's first size leaves: from the frontier
// kept in memory when it is at that size, else from the stored nodes.
func (p *LedgerProof) rootAt(ctx context.Context, size int64) ([]byte, error) {
	if p.front != nil && p.front.End() == uint64(size) {
		return ledger.RootOf(p.front)
	}
	return ledger.Root(ctx, p.fetch, uint64(size))
}

// signAt signs the checkpoint of the tree at size and keeps it.
func (p *LedgerProof) signAt(ctx context.Context, size int64) (*store.Checkpoint, error) {
	signer, err := p.signerFor(ctx)
	if err != nil {
		return nil, err
	}
	root, err := p.rootAt(ctx, size)
	if err != nil {
		return nil, err
	}
	now := p.now().UTC()
	signed, err := ledger.Sign(ledger.Checkpoint{Origin: p.origin, Size: uint64(size), Root: root, Time: now}, signer)
	if err != nil {
		return nil, err
	}
	cp := &store.Checkpoint{Size: size, Root: root, Note: signed, Created: now.Truncate(time.Microsecond)}
	if err := p.st.AddCheckpoint(ctx, *cp); err != nil {
		return nil, err
	}
	return cp, nil
}

// Checkpoint extends the tree and, when it grew past the latest
// checkpoint, signs a new one, keeps it and pushes it to the witnesses. It
// returns the latest checkpoint (nil while the ledger is empty) and
// whether it is new.
func (p *LedgerProof) Checkpoint(ctx context.Context) (*store.Checkpoint, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	size, err := p.extend(ctx)
	if err != nil {
		return nil, false, err
	}
	latest, err := p.st.LatestCheckpoint(ctx)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, false, err
	}
	if latest != nil && latest.Size >= size || size == 0 {
		return latest, false, nil
	}
	cp, err := p.signAt(ctx, size)
	if err != nil {
		return nil, false, err
	}
	if err := p.publish(ctx, cp); err != nil {
		// A witness that is down must not stop checkpoints: it gets the
		// next one, which proves this one by consistency.
		p.log.Warn("checkpoint witness", "size", cp.Size, "error", err.Error())
	}
	if err := p.cosign(ctx, cp); err != nil {
		// As above: the next checkpoint is pushed with a proof from the
		// size each cosigner last cosigned.
		p.log.Warn("checkpoint cosigner", "size", cp.Size, "error", err.Error())
	}
	return cp, true, nil
}

// publish pushes a checkpoint to every witness: a file in the witness
// directory (checkpoint-<size> and latest, each written whole and
// renamed into place) and a POST to every witness URL.
func (p *LedgerProof) publish(ctx context.Context, cp *store.Checkpoint) error {
	var errs []error
	if dir := p.cfg.WitnessDir; dir != "" {
		for _, name := range []string{fmt.Sprintf("checkpoint-%012d", cp.Size), "latest"} {
			if err := writeDurable(dir, name, cp.Note, 0o644); err != nil {
				errs = append(errs, fmt.Errorf("witness directory: %w", err))
			}
		}
	}
	for _, u := range p.cfg.WitnessURLs {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(cp.Note))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		req.Header.Set("Content-Type", "text/plain; charset=utf-8")
		resp, err := p.client.Do(req)
		if err != nil {
			errs = append(errs, fmt.Errorf("witness %s: %w", u, err))
			continue
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			errs = append(errs, fmt.Errorf("witness %s answered %d", u, resp.StatusCode))
		}
	}
	return errors.Join(errs...)
}

// writeDurable writes data to dir/name through a temporary file that is
// synced and renamed, then syncs the directory.
func writeDurable(dir, name string, data []byte, mode os.FileMode) error {
	return writeDurableFunc(dir, name, mode, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

func writeDurableFunc(dir, name string, mode os.FileMode, write func(io.Writer) error) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+name+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Start signs checkpoints every CheckpointInterval until Stop (none when
// the interval is 0).
func (p *LedgerProof) Start() {
	if p.cfg.CheckpointInterval <= 0 || p.stop != nil {
		return
	}
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(p.done)
		t := time.NewTicker(p.cfg.CheckpointInterval)
		defer t.Stop()
		for {
			// The first checkpoint waits an interval too: a server that
			// stops at once (a test, a failed start) writes nothing.
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			if _, _, err := p.Checkpoint(ctx); err != nil {
				p.log.Error("audit checkpoint", "error", err.Error())
			}
			cancel()
		}
	}()
}

// Stop ends the checkpoint loop and waits for it.
func (p *LedgerProof) Stop() {
	if p.stop != nil {
		close(p.stop)
		<-p.done
		p.stop = nil
	}
}

// LatestCheckpointNote is the latest signed checkpoint (GET
// /audit/checkpoint).
func (p *LedgerProof) LatestCheckpointNote(ctx context.Context) ([]byte, error) {
	cp, err := p.st.LatestCheckpoint(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil, problem.New(problem.ErrNotFound, "not-found", "no checkpoint has been signed yet")
	}
	if err != nil {
		return nil, err
	}
	return p.cosignedNote(ctx, cp)
}

// InclusionProof proves that the record seq is leaf seq-1 of the tree of
// size records (GET /audit/proof/inclusion). Hashes are base64 in JSON.
type InclusionProof struct {
	Type     string   `json:"type"` // "inclusion"
	Seq      int64    `json:"seq"`
	Size     int64    `json:"size"`
	LeafHash []byte   `json:"leaf_hash"`
	Root     []byte   `json:"root"`
	Hashes   [][]byte `json:"hashes"`
}

// ConsistencyProof proves that the tree of from records is a prefix of the
// tree of to records (GET /audit/proof/consistency).
type ConsistencyProof struct {
	Type     string   `json:"type"` // "consistency"
	From     int64    `json:"from"`
	To       int64    `json:"to"`
	FromRoot []byte   `json:"from_root"`
	ToRoot   []byte   `json:"to_root"`
	Hashes   [][]byte `json:"hashes"`
}

// treeSize is the size proofs may be asked up to: the latest checkpoint's
// (only a signed size is worth proving against).
func (p *LedgerProof) signedSize(ctx context.Context) (int64, error) {
	cp, err := p.st.LatestCheckpoint(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return 0, problem.New(problem.ErrNotFound, "not-found", "no checkpoint has been signed yet")
	}
	if err != nil {
		return 0, err
	}
	return cp.Size, nil
}

// Inclusion returns the inclusion proof of record seq in the tree of size
// records; size 0 is the latest checkpoint's size.
func (p *LedgerProof) Inclusion(ctx context.Context, seq, size int64) (*InclusionProof, error) {
	signed, err := p.signedSize(ctx)
	if err != nil {
		return nil, err
	}
	if size == 0 {
		size = signed
	}
	if size > signed {
		return nil, problem.New(problem.ErrInvalid, "value", fmt.Sprintf("size is beyond the latest checkpoint (%d)", signed))
	}
	if seq < 1 || seq > size {
		return nil, problem.New(problem.ErrInvalid, "value", "seq must be between 1 and size")
	}
	hashes, err := ledger.Inclusion(ctx, p.fetch, uint64(seq-1), uint64(size))
	if err != nil {
		return nil, err
	}
	leaf, err := p.fetch(ctx, []ledger.NodeID{ledger.NodeID{Level: 0, Index: uint64(seq - 1)}})
	if err != nil {
		return nil, err
	}
	root, err := ledger.Root(ctx, p.fetch, uint64(size))
	if err != nil {
		return nil, err
	}
	return &InclusionProof{Type: "inclusion", Seq: seq, Size: size, LeafHash: leaf[0], Root: root, Hashes: hashes}, nil
}

// Consistency returns the consistency proof from the tree of from records
// to the tree of to records; to 0 is the latest checkpoint's size.
func (p *LedgerProof) Consistency(ctx context.Context, from, to int64) (*ConsistencyProof, error) {
	signed, err := p.signedSize(ctx)
	if err != nil {
		return nil, err
	}
	if to == 0 {
		to = signed
	}
	if to > signed {
		return nil, problem.New(problem.ErrInvalid, "value", fmt.Sprintf("to is beyond the latest checkpoint (%d)", signed))
	}
	if from < 1 || from > to {
		return nil, problem.New(problem.ErrInvalid, "value", "from must be between 1 and to")
	}
	hashes, err := ledger.Consistency(ctx, p.fetch, uint64(from), uint64(to))
	if err != nil {
		return nil, err
	}
	r1, err := ledger.Root(ctx, p.fetch, uint64(from))
	if err != nil {
		return nil, err
	}
	r2, err := ledger.Root(ctx, p.fetch, uint64(to))
	if err != nil {
		return nil, err
	}
	return &ConsistencyProof{Type: "consistency", From: from, To: to, FromRoot: r1, ToRoot: r2, Hashes: hashes}, nil
}

// proofServer adapts LedgerProof to api.Ledger.
type proofServer struct{ *LedgerProof }

func (p proofServer) InclusionProof(ctx context.Context, seq, size int64) (any, error) {
	return p.Inclusion(ctx, seq, size)
}

func (p proofServer) ConsistencyProof(ctx context.Context, from, to int64) (any, error) {
	return p.Consistency(ctx, from, to)
}
