package ledger

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is a signed statement of the tree: the C2SP tlog-checkpoint
// body
//
//	<origin>
//	<tree size, decimal>
//	<root hash, base64>
//	time <Unix seconds>
//
// where the fourth line is an extension line (C2SP allows them; verifiers
// that do not know it ignore it) saying when Ward signed it.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
	Time   time.Time
}

// Body returns the checkpoint's note text.
func (c Checkpoint) Body() string {
	return c.Origin + "\n" + strconv.FormatUint(c.Size, 10) + "\n" +
		base64.StdEncoding.EncodeToString(c.Root) + "\ntime " + strconv.FormatInt(c.Time.Unix(), 10) + "\n"
}

// ErrCheckpoint is wrapped by every error about a checkpoint's form or
// signature.
var ErrCheckpoint = errors.New("ledger: bad checkpoint")

// ParseBody parses a checkpoint's note text (as verified by note.Open).
// Extension lines other than time are allowed and ignored.
func ParseBody(text string) (Checkpoint, error) {
	var c Checkpoint
	if !strings.HasSuffix(text, "\n") {
		return c, fmt.Errorf("%w: the body does not end with a newline", ErrCheckpoint)
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return c, fmt.Errorf("%w: the body has %d lines, want at least 3", ErrCheckpoint, len(lines))
	}
	c.Origin = lines[0]
	if c.Origin == "" {
		return c, fmt.Errorf("%w: empty origin", ErrCheckpoint)
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || (len(lines[1]) > 1 && lines[1][0] == '0') {
		return c, fmt.Errorf("%w: the tree size is not a decimal number", ErrCheckpoint)
	}
	c.Size = size
	root, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(root) != 32 {
		return c, fmt.Errorf("%w: the root hash is not 32 bytes of base64", ErrCheckpoint)
	}
	c.Root = root
	for _, l := range lines[3:] {
		if v, ok := strings.CutPrefix(l, "time "); ok {
			sec, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return c, fmt.Errorf("%w: the time line is not Unix seconds", ErrCheckpoint)
			}
			c.Time = time.Unix(sec, 0).UTC()
		}
	}
	return c, nil
}

// Sign returns the signed note of c.
func Sign(c Checkpoint, signer note.Signer) ([]byte, error) {
	if signer.Name() != c.Origin {
		return nil, fmt.Errorf("%w: key %q cannot sign for origin %q", ErrCheckpoint, signer.Name(), c.Origin)
	}
	return note.Sign(&note.Note{Text: c.Body()}, signer)
}

// Open verifies a signed checkpoint against the published keys and parses
// it. At least one signature must be by a key named after the checkpoint's
// origin: a witness cosignature alone does not make it Ward's.
func Open(signed []byte, keys note.Verifiers) (Checkpoint, error) {
	n, err := note.Open(bytes.TrimLeft(signed, "\r\n\t "), keys)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %v", ErrCheckpoint, err)
	}
	c, err := ParseBody(n.Text)
	if err != nil {
		return c, err
	}
	for _, s := range n.Sigs {
		if s.Name == c.Origin {
			return c, nil
		}
	}
	return c, fmt.Errorf("%w: no signature by the origin's key %q", ErrCheckpoint, c.Origin)
}

// Verifiers parses published verifier keys, one a line (blank lines and
// lines starting with # ignored).
func Verifiers(text string) (note.Verifiers, error) {
	var vs []note.Verifier
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		v, err := note.NewVerifier(l)
		if err != nil {
			return nil, fmt.Errorf("%w: a verifier key line does not parse: %v", ErrCheckpoint, err)
		}
		vs = append(vs, v)
	}
	if len(vs) == 0 {
		return nil, fmt.Errorf("%w: no verifier key", ErrCheckpoint)
	}
	return note.VerifierList(vs...), nil
}

// NewKey generates an Ed25519 note key named origin: the private key
// string (to seal) and the verifier key (to publish).
func NewKey(origin string) (skey, vkey string, err error) {
	return note.GenerateKey(rand.Reader, origin)
}
