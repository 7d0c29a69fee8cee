package app

// Checkpoint witnessing (C2SP tlog-witness; docs/ledger.md, "Witnesses"):
// this node pushes each new checkpoint with a consistency proof to its
// cosigners and keeps the cosignatures it verifies, and, when it is given
// other logs' keys, acts as a witness of them at
// POST /audit/witness/add-checkpoint.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/ledger"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/witness"
)

// WitnessKeyPurpose is the store.Key purpose of this node's sealed
// witness key.
const WitnessKeyPurpose = "witness-key"

// cosigner is a configured witness endpoint and its key.
type cosigner struct {
	url  string
	v    note.Verifier
	size uint64 // the size it last cosigned, as far as this node knows
}

func (p *LedgerProof) cosigners() ([]*cosigner, error) {
	p.cosMu.Lock()
	defer p.cosMu.Unlock()
	if p.cos != nil || len(p.cfg.Cosigners) == 0 {
		return p.cos, nil
	}
	var out []*cosigner
	for _, c := range p.cfg.Cosigners {
		v, err := witness.NewVerifier(c.Key)
		if err != nil {
			return nil, fmt.Errorf("WARD_CHECKPOINT_COSIGNERS: %w", err)
		}
		out = append(out, &cosigner{url: c.URL, v: v})
	}
	p.cos = out
	return out, nil
}

// cosign pushes cp to every cosigner and keeps each verified
// cosignature. Called with p.mu held.
func (p *LedgerProof) cosign(ctx context.Context, cp *store.Checkpoint) error {
	cs, err := p.cosigners()
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range cs {
		full, err := p.pushTo(ctx, c, cp)
		if err == nil {
			err = p.st.AddCosignature(ctx, cp.Size, c.v.Name(), full, p.now().UTC())
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("cosigner %s: %w", c.url, err))
		}
	}
	return errors.Join(errs...)
}

// pushTo sends add-checkpoint from the size the witness last cosigned; on
// a 409 it learns the witness's size and tries once more from there.
func (p *LedgerProof) pushTo(ctx context.Context, c *cosigner, cp *store.Checkpoint) ([]byte, error) {
	for try := 0; ; try++ {
		old := min(c.size, uint64(cp.Size))
		var pr [][]byte
		if old > 0 {
			var err error
			if pr, err = ledger.Consistency(ctx, p.fetch, old, uint64(cp.Size)); err != nil {
				return nil, err
			}
		}
		status, body, err := p.post(ctx, c.url+"/"+witness.Path, witness.Request{Old: old, Proof: pr, Checkpoint: cp.Note}.Marshal())
		if err != nil {
			return nil, err
		}
		switch {
		case status == http.StatusOK:
			full, err := witness.Cosign(cp.Note, body, c.v)
			if err != nil {
				return nil, err
			}
			c.size = uint64(cp.Size)
			return full, nil
		case status == http.StatusConflict && try == 0:
			n, err := witness.ParseSize(body)
			if err != nil {
				return nil, err
			}
			c.size = n
		default:
			return nil, fmt.Errorf("answered %d", status)
		}
	}
}

func (p *LedgerProof) post(ctx context.Context, u string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, witness.MaxRequest))
	return resp.StatusCode, b, err
}

// CosignedNote returns the checkpoint of size with every cosignature kept
// for it appended.
func (p *LedgerProof) cosignedNote(ctx context.Context, cp *store.Checkpoint) ([]byte, error) {
	cos, err := p.st.Cosignatures(ctx, cp.Size)
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(cp.Note)
	for _, full := range cos {
		if bytes.HasPrefix(full, cp.Note) {
			out = append(out, full[len(cp.Note):]...)
		}
	}
	return out, nil
}

// nodeWitness is this node as a witness of other Ward logs. The log
// keys file is read at each request, so that a log can be added without a
// restart; the witness key is unwrapped once.
type nodeWitness struct {
	p      *LedgerProof
	mu     sync.Mutex
	signer note.Signer
	vkey   string
}

// witnessName is the name of this node's witness key.
func (p *LedgerProof) witnessName() string { return p.origin + "/witness" }

func (n *nodeWitness) key(ctx context.Context) (note.Signer, string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.p.cfg.WitnessLogKeys == "" {
		return nil, "", problem.New(problem.ErrNotFound, "not-found", "this node witnesses no log (WARD_WITNESS_LOG_KEYS)")
	}
	if n.signer == nil {
		skey, vkey, err := n.p.witnessKey(ctx)
		if err != nil {
			return nil, "", err
		}
		s, err := witness.NewSigner(skey)
		if err != nil {
			return nil, "", err
		}
		n.signer, n.vkey = s, vkey
	}
	return n.signer, n.vkey, nil
}

func (n *nodeWitness) load(ctx context.Context) (*witness.Witness, error) {
	s, _, err := n.key(ctx)
	if err != nil {
		return nil, err
	}
	logs, err := os.ReadFile(n.p.cfg.WitnessLogKeys)
	if err != nil {
		return nil, fmt.Errorf("WARD_WITNESS_LOG_KEYS: %w", err)
	}
	return witness.New(s, string(logs), witnessState{n.p.st, n.p.now})
}

// witnessKey unwraps this node's witness key, making and sealing it on
// first use (its creation is a ledger record).
func (p *LedgerProof) witnessKey(ctx context.Context) (skey, vkey string, err error) {
	id := "witness/" + p.witnessName()
	for range 2 {
		ks, err := p.st.Keys(ctx, WitnessKeyPurpose)
		if err != nil {
			return "", "", err
		}
		for _, k := range ks {
			if k.ID != id {
				continue
			}
			b, err := p.km.Open(k.Wrapped, []byte(WitnessKeyPurpose+"/"+id))
			if err != nil {
				return "", "", fmt.Errorf("open witness key: %w", err)
			}
			skey, vkey, ok := strings.Cut(string(b), "\n")
			if !ok {
				return "", "", errors.New("the witness key is malformed")
			}
			return skey, vkey, nil
		}
		skey, vkey, err := witness.NewKey(p.witnessName())
		if err != nil {
			return "", "", err
		}
		sealed, err := p.km.Seal(p.sysKey, []byte(skey+"\n"+vkey), []byte(WitnessKeyPurpose+"/"+id))
		if err != nil {
			return "", "", fmt.Errorf("seal witness key: %w", err)
		}
		now := p.now().UTC().Truncate(time.Microsecond)
		err = store.NewRecorder(p.st).Commit(ctx, &store.Unit{Parts: []store.Part{store.NewKey{Key: &store.Key{ID: id, Purpose: WitnessKeyPurpose, Wrapped: sealed, Created: now}}}},
			&audit.Record{Time: now, Actor: "system", Role: "system", Action: "witness-key-create", Entities: []string{"witness-key/" + id}})
		if err != nil && !errors.Is(err, store.ErrConflict) {
			return "", "", err
		}
		// Read it back: on a conflict another node made it first.
	}
	return "", "", errors.New("no witness key after creating one")
}

// WitnessAdd answers a C2SP add-checkpoint request: the cosignature
// lines, a *witness.ConflictError, or a problem naming the refusal.
func (p *LedgerProof) WitnessAdd(ctx context.Context, body []byte) ([]byte, error) {
	w, err := p.witness.load(ctx)
	if err != nil {
		return nil, err
	}
	r, err := witness.ParseRequest(body)
	if err != nil {
		return nil, problem.New(problem.ErrInvalid, "invalid", err.Error())
	}
	cos, err := w.Add(ctx, r)
	var ce *witness.ConflictError
	switch {
	case err == nil:
		return cos, nil
	case errors.As(err, &ce):
		return nil, err
	case errors.Is(err, witness.ErrUnknownLog):
		return nil, problem.New(problem.ErrNotFound, "not-found", "this node does not witness the checkpoint's log")
	case errors.Is(err, witness.ErrSignature):
		return nil, problem.New(problem.ErrForbidden, "forbidden", "the checkpoint is not signed by its log's key")
	case errors.Is(err, witness.ErrInconsistent):
		p.log.Warn("witness refused an inconsistent checkpoint", "size_old", r.Old)
		return nil, problem.New(problem.ErrUnprocessable, "processing", "the consistency proof does not verify: the log's history differs from the one witnessed")
	case errors.Is(err, witness.ErrStale):
		return nil, problem.New(problem.ErrInvalid, "invalid", "the old size is larger than the checkpoint's size")
	}
	return nil, err
}

// WitnessKey returns this node's published witness verifier key.
func (p *LedgerProof) WitnessKey(ctx context.Context) (string, error) {
	_, vkey, err := p.witness.key(ctx)
	if err != nil {
		return "", err
	}
	return vkey + "\n", nil
}

// witnessState is witness.State over the store.
type witnessState struct {
	st  store.Store
	now func() time.Time
}

func (s witnessState) Latest(ctx context.Context, origin string) (witness.Latest, error) {
	size, root, err := s.st.WitnessLatest(ctx, origin)
	return witness.Latest{Size: uint64(size), Root: root}, err
}

func (s witnessState) Advance(ctx context.Context, origin string, from uint64, to witness.Latest, signed []byte) error {
	err := s.st.WitnessAdvance(ctx, origin, int64(from), int64(to.Size), to.Root, signed, s.now().UTC())
	if errors.Is(err, store.ErrConflict) {
		l, lerr := s.Latest(ctx, origin)
		if lerr != nil {
			return lerr
		}
		return &witness.ConflictError{Size: l.Size}
	}
	return err
}
