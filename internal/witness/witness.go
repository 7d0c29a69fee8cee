// Package witness is the C2SP tlog-witness protocol
// (https://c2sp.org/tlog-witness) over Ward's ledger checkpoints: the
// add-checkpoint request (old size, consistency proof, signed checkpoint),
// the witness's decision, and its timestamped Ed25519 cosignature
// (C2SP tlog-cosignature, cosignature/v1).
//
// Guarantee: a Witness cosigns a checkpoint of a log only when it is
// signed by that log's key and is consistent with the last checkpoint the
// witness cosigned for that log (the request's old size must be that
// checkpoint's size, and the consistency proof must verify between their
// roots). A rewritten history, a truncation or a fork is refused, whatever
// the log's database holds. The package is pure: the witness's state is
// behind the State interface, and HTTP is the caller's.
package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/wardhealth/ward/internal/ledger"
)

// The protocol's content types and path.
const (
	// Path is the witness endpoint below its prefix URL.
	Path = "add-checkpoint"
	// SizeType is the content type of a 409 answer: the witness's size.
	SizeType = "text/x.tlog.size"
	// MaxRequest bounds a request body: 63 proof hashes and a checkpoint
	// with a few signatures fit many times over.
	MaxRequest = 64 << 10
	// maxProof is the most hashes a consistency proof of a 64-bit tree
	// can have.
	maxProof = 63
)

// Errors of Add, each mapped by the caller to the protocol's status.
var (
	// ErrMalformed: the request does not parse (400).
	ErrMalformed = errors.New("witness: malformed request")
	// ErrUnknownLog: no key for the checkpoint's origin (404).
	ErrUnknownLog = errors.New("witness: unknown log")
	// ErrSignature: the checkpoint is not signed by its log's key (403).
	ErrSignature = errors.New("witness: checkpoint signature does not verify")
	// ErrInconsistent: the consistency proof does not verify (422).
	ErrInconsistent = errors.New("witness: checkpoint is not consistent with the last one witnessed")
	// ErrStale: the request's old size exceeds its checkpoint's size (400).
	ErrStale = errors.New("witness: old size is larger than the checkpoint's")
)

// ConflictError: the request's old size is not the witness's latest size
// for the log (409); Size tells the client which size to prove from.
type ConflictError struct{ Size uint64 }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("witness: old size does not match the witness's size %d", e.Size)
}

// Request is an add-checkpoint request.
type Request struct {
	Old        uint64
	Proof      [][]byte
	Checkpoint []byte // the signed note
}

// Marshal encodes r as the protocol's request body.
func (r Request) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("old " + strconv.FormatUint(r.Old, 10) + "\n")
	for _, h := range r.Proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h) + "\n")
	}
	b.WriteString("\n")
	b.Write(r.Checkpoint)
	return b.Bytes()
}

// ParseRequest decodes an add-checkpoint body.
func ParseRequest(body []byte) (Request, error) {
	var r Request
	if len(body) > MaxRequest {
		return r, fmt.Errorf("%w: body larger than %d bytes", ErrMalformed, MaxRequest)
	}
	head, cp, ok := bytes.Cut(body, []byte("\n\n"))
	if !ok {
		return r, fmt.Errorf("%w: no empty line before the checkpoint", ErrMalformed)
	}
	lines := strings.Split(string(head), "\n")
	v, ok := strings.CutPrefix(lines[0], "old ")
	old, err := strconv.ParseUint(v, 10, 64)
	if !ok || err != nil || (len(v) > 1 && v[0] == '0') {
		return r, fmt.Errorf("%w: the first line is not \"old <size>\"", ErrMalformed)
	}
	if len(lines)-1 > maxProof {
		return r, fmt.Errorf("%w: more than %d proof hashes", ErrMalformed, maxProof)
	}
	for i, l := range lines[1:] {
		h, err := base64.StdEncoding.Strict().DecodeString(l)
		if err != nil || len(h) != 32 {
			return r, fmt.Errorf("%w: proof line %d is not a base64 SHA-256 hash", ErrMalformed, i+1)
		}
		r.Proof = append(r.Proof, h)
	}
	if len(cp) == 0 {
		return r, fmt.Errorf("%w: no checkpoint", ErrMalformed)
	}
	r.Old, r.Checkpoint = old, cp
	return r, nil
}

// Latest is what a witness remembers of a log: the last checkpoint it
// cosigned.
type Latest struct {
	Size uint64
	Root []byte
}

// State keeps a witness's latest checkpoint of each log.
type State interface {
	// Latest returns the log's latest checkpoint; size 0 and no root
	// when the witness never saw the log.
	Latest(ctx context.Context, origin string) (Latest, error)
	// Advance moves the log from size from to the new checkpoint
	// atomically; a *ConflictError when the log is no longer at from.
	Advance(ctx context.Context, origin string, from uint64, to Latest, signed []byte) error
}

// Witness checks and cosigns checkpoints of the logs it knows.
type Witness struct {
	signer note.Signer
	keys   note.Verifiers
	logs   map[string]bool
	state  State
}

// New returns a witness cosigning with signer (NewSigner) the checkpoints
// of the logs whose verifier keys are logKeys, one a line (a key's name is
// its log's origin; several keys of one log are its rotations).
func New(signer note.Signer, logKeys string, state State) (*Witness, error) {
	keys, err := ledger.Verifiers(logKeys)
	if err != nil {
		return nil, err
	}
	w := &Witness{signer: signer, keys: keys, logs: map[string]bool{}, state: state}
	for _, l := range strings.Split(logKeys, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			name, _, _ := strings.Cut(l, "+")
			w.logs[name] = true
		}
	}
	return w, nil
}

// Name is the witness's key name.
func (w *Witness) Name() string { return w.signer.Name() }

// Add checks r and, when its checkpoint is consistent with the last one
// witnessed for its log, records it and returns the cosignature lines.
func (w *Witness) Add(ctx context.Context, r Request) ([]byte, error) {
	origin, _, _ := strings.Cut(string(r.Checkpoint), "\n")
	if !w.logs[origin] {
		return nil, ErrUnknownLog
	}
	cp, err := ledger.Open(r.Checkpoint, w.keys)
	if err != nil || cp.Origin != origin {
		return nil, ErrSignature
	}
	if r.Old > cp.Size {
		return nil, ErrStale
	}
	last, err := w.state.Latest(ctx, origin)
	if err != nil {
		return nil, err
	}
	if r.Old != last.Size {
		return nil, &ConflictError{Size: last.Size}
	}
	if r.Old == 0 {
		if len(r.Proof) != 0 {
			return nil, fmt.Errorf("%w: a proof from size 0", ErrInconsistent)
		}
	} else if err := ledger.VerifyConsistency(r.Old, cp.Size, r.Proof, last.Root, cp.Root); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInconsistent, err)
	}
	if err := w.state.Advance(ctx, origin, r.Old, Latest{Size: cp.Size, Root: cp.Root}, r.Checkpoint); err != nil {
		return nil, err
	}
	return w.cosign(cp.Body())
}

func (w *Witness) cosign(body string) ([]byte, error) {
	signed, err := note.Sign(&note.Note{Text: body}, w.signer)
	if err != nil {
		return nil, fmt.Errorf("witness: cosign: %w", err)
	}
	return signed[len(body)+1:], nil
}

// NewKey generates a witness key named name: the private key (to seal)
// and its cosignature/v1 verifier key (to publish).
func NewKey(name string) (skey, vkey string, err error) {
	skey, v, err := ledger.NewKey(name)
	if err != nil {
		return "", "", err
	}
	vkey, err = fnote.VKeyToCosignatureV1(v)
	return skey, vkey, err
}

// NewSigner returns the cosignature/v1 signer of a key from NewKey.
func NewSigner(skey string) (note.Signer, error) {
	s, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		return nil, fmt.Errorf("witness key: %w", err)
	}
	return s, nil
}

// NewVerifier returns the verifier of a published witness key.
func NewVerifier(vkey string) (note.Verifier, error) {
	v, err := fnote.NewVerifierForCosignatureV1(strings.TrimSpace(vkey))
	if err != nil {
		return nil, fmt.Errorf("witness key: %w", err)
	}
	return v, nil
}

// Cosign returns signed with cosig (the lines a witness answered)
// appended, after checking that cosig holds a valid cosignature by v of
// signed's checkpoint. Lines by other keys are dropped.
func Cosign(signed, cosig []byte, v note.Verifier) ([]byte, error) {
	var keep []byte
	for _, l := range strings.SplitAfter(string(cosig), "\n") {
		if l == "" {
			continue
		}
		if !strings.HasSuffix(l, "\n") {
			l += "\n"
		}
		n, err := note.Open(append(bytes.Clone(signed), l...), note.VerifierList(v))
		if err != nil {
			continue
		}
		for _, s := range n.Sigs {
			if s.Name == v.Name() && s.Hash == v.KeyHash() {
				keep = append(keep, l...)
			}
		}
	}
	if keep == nil {
		return nil, fmt.Errorf("witness %s: no valid cosignature in its answer", v.Name())
	}
	return append(bytes.Clone(signed), keep...), nil
}

// Cosigners returns the names of the keys among ws with a valid
// cosignature on signed.
func Cosigners(signed []byte, ws []note.Verifier) []string {
	var out []string
	for _, v := range ws {
		n, err := note.Open(signed, note.VerifierList(v))
		if err != nil {
			continue
		}
		for _, s := range n.Sigs {
			if s.Name == v.Name() && s.Hash == v.KeyHash() {
				out = append(out, v.Name())
				break
			}
		}
	}
	return out
}

// ParseSize decodes a 409 answer's body: the witness's size.
func ParseSize(body []byte) (uint64, error) {
	v := strings.TrimSuffix(string(body), "\n")
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: the size answer is not a decimal number", ErrMalformed)
	}
	return n, nil
}
