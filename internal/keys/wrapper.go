package keys

import (
	"context"
	"errors"
	"fmt"

	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/seal"
)

// KeyWrapper wraps and unwraps data keys under a key-encryption key (KEK)
// that may live outside Ward: a local file (FileWrapper), a PKCS#11 token
// (keys/pkcs11) or a Vault/OpenBao transit engine (keys/transit). With the
// last two the KEK never exists in Ward's memory; only unwrapped data keys
// do.
//
// Wrap binds the wrapped key to keyID (a wrapped key moved to another id
// does not unwrap) and names the KEK version that wrapped it; Unwrap
// accepts any version the wrapper has not retired.
type KeyWrapper interface {
	Wrap(ctx context.Context, keyID string, dek []byte) (wrapped []byte, kek string, err error)
	Unwrap(ctx context.Context, keyID string, wrapped []byte) ([]byte, error)
}

// Rewrapper is a KeyWrapper that moves a wrapped key to its current KEK
// version without the data key leaving the KMS (transit's rewrap). A
// wrapper without it is re-wrapped by Unwrap then Wrap.
type Rewrapper interface {
	Rewrap(ctx context.Context, keyID string, wrapped []byte) ([]byte, string, error)
}

// Batcher is a Rewrapper that re-wraps many keys in one round trip.
type Batcher interface {
	RewrapBatch(ctx context.Context, ids []string, wrapped [][]byte) ([][]byte, []string, error)
}

// Rotator is a KeyWrapper whose KEK can get a new version, used by Wrap
// from then on. It returns the new version's name.
type Rotator interface {
	RotateKEK(ctx context.Context) (string, error)
}

// Retirer is a KeyWrapper that can refuse, from now on, every KEK version
// older than the current one (after rotate-kek re-wrapped every key).
type Retirer interface {
	RetireOldKEKs(ctx context.Context) error
}

// Prober is a KeyWrapper that can say whether its KEK is reachable now,
// cheaply. The manager probes it to decide how long its cache of
// unwrapped keys may still be trusted.
type Prober interface {
	Probe(ctx context.Context) error
}

// Current is a KeyWrapper that names the KEK version Wrap uses now.
type Current interface {
	CurrentKEK(ctx context.Context) (string, error)
}

// ErrKEKUnavailable is returned when the KEK cannot be reached: at start
// (a down KMS, a wrong PIN) or once a running node's cache of unwrapped
// keys has outlived its bounded lifetime. It is a problem.ErrUnavailable:
// requests fail with 503, and nothing is sealed or opened.
var ErrKEKUnavailable = fmt.Errorf("%w: key-encryption key unreachable", problem.ErrUnavailable)

// FileWrapper is the local KEK (a key file or WARD_KEY): today's
// development default. Previous KEKs, when given, still unwrap (during a
// rotation to a new key file); Wrap always uses the first.
type FileWrapper struct {
	kek  *seal.KEK
	prev []*seal.KEK
}

var (
	_ KeyWrapper = (*FileWrapper)(nil)
	_ Current    = (*FileWrapper)(nil)
)

// NewFileWrapper wraps under kek and unwraps under kek or any of prev.
func NewFileWrapper(kek *seal.KEK, prev ...*seal.KEK) *FileWrapper {
	return &FileWrapper{kek: kek, prev: prev}
}

// Wrap implements KeyWrapper; the version is the KEK's fingerprint.
func (f *FileWrapper) Wrap(_ context.Context, keyID string, dek []byte) ([]byte, string, error) {
	w, err := f.kek.WrapDEK(keyID, dek)
	return w, f.kek.ID(), err
}

// Unwrap implements KeyWrapper.
func (f *FileWrapper) Unwrap(_ context.Context, keyID string, wrapped []byte) ([]byte, error) {
	dek, err := f.kek.UnwrapDEK(keyID, wrapped)
	if err == nil || !errors.Is(err, seal.ErrOpen) {
		return dek, err
	}
	for _, p := range f.prev {
		if d, perr := p.UnwrapDEK(keyID, wrapped); perr == nil {
			return d, nil
		}
	}
	return nil, err
}

// KEKs returns every KEK the wrapper unwraps with, current first.
func (f *FileWrapper) KEKs() []*seal.KEK { return append([]*seal.KEK{f.kek}, f.prev...) }

// CurrentKEK implements Current.
func (f *FileWrapper) CurrentKEK(context.Context) (string, error) { return f.kek.ID(), nil }
