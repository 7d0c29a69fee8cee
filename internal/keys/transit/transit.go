// Package transit is a keys.KeyWrapper over the Vault/OpenBao transit
// secrets engine, through the official Vault API client: data keys are
// encrypted and decrypted by the engine, so the key-encryption key never
// exists in Ward's memory.
//
// Each data key is encrypted with its key id as the derivation context
// (the transit key is created with derived=true), so a wrapped key moved
// to another id does not decrypt. The stored wrapped form is the engine's
// ciphertext ("vault:vN:..."); its version names the KEK version.
// Rotation is the engine's (keys/:name/rotate), re-wrapping its rewrap
// (batched), and retiring old versions its min_decryption_version.
package transit

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/wardhealth/ward/internal/keys"
)

// Config names the engine and the key.
type Config struct {
	// Address is the Vault/OpenBao server (https://vault:8200).
	Address string
	// Token is the Vault token (sent as X-Vault-Token).
	Token string
	// Mount is where the transit engine is mounted ("transit").
	Mount string
	// Key is the transit key's name ("ward").
	Key string
	// Timeout bounds each request (default 10 s).
	Timeout time.Duration
}

// Wrapper wraps data keys with a transit key.
type Wrapper struct {
	c     *vault.Client
	mount string
	key   string
}

var (
	_ keys.KeyWrapper = (*Wrapper)(nil)
	_ keys.Rewrapper  = (*Wrapper)(nil)
	_ keys.Rotator    = (*Wrapper)(nil)
	_ keys.Retirer    = (*Wrapper)(nil)
	_ keys.Prober     = (*Wrapper)(nil)
	_ keys.Current    = (*Wrapper)(nil)
	_ keys.Batcher    = (*Wrapper)(nil)
)

// New connects to the engine and creates the transit key (derived,
// aes256-gcm96) if it does not exist yet. It fails if the engine does not
// answer or refuses the token: Ward does not start without its KEK.
func New(ctx context.Context, cfg Config) (*Wrapper, error) {
	if cfg.Address == "" || cfg.Token == "" {
		return nil, errors.New("transit: an address and a token are needed")
	}
	if cfg.Mount == "" {
		cfg.Mount = "transit"
	}
	if cfg.Key == "" {
		cfg.Key = "ward"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	vc := vault.DefaultConfig()
	if vc.Error != nil {
		return nil, fmt.Errorf("transit: %w", vc.Error)
	}
	vc.Address = cfg.Address
	vc.Timeout = cfg.Timeout
	// Ward decides how long to trust its cache of keys; a request that
	// fails is not retried behind its back for longer than its timeout.
	vc.MaxRetries = 0
	c, err := vault.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("transit: %w", err)
	}
	c.SetToken(cfg.Token)
	w := &Wrapper{c: c, mount: strings.Trim(cfg.Mount, "/"), key: cfg.Key}
	if _, err := w.latest(ctx); err != nil {
		var re *vault.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusNotFound {
			return nil, err
		}
		if _, err := c.Logical().WriteWithContext(ctx, w.path("keys"), map[string]any{"type": "aes256-gcm96", "derived": true}); err != nil {
			return nil, fmt.Errorf("transit: create key %s: %w", w.key, err)
		}
	}
	return w, nil
}

func (w *Wrapper) path(op string) string { return w.mount + "/" + op + "/" + w.key }

func (w *Wrapper) version(v int) string { return "transit:" + w.key + ":v" + strconv.Itoa(v) }

// latest reads the key's latest version.
func (w *Wrapper) latest(ctx context.Context) (int, error) {
	s, err := w.c.Logical().ReadWithContext(ctx, w.path("keys"))
	if err != nil {
		return 0, fmt.Errorf("transit: read key %s: %w", w.key, err)
	}
	if s == nil || s.Data == nil {
		return 0, &vault.ResponseError{StatusCode: http.StatusNotFound, Errors: []string{"key not found"}}
	}
	return number(s.Data["latest_version"])
}

func number(v any) (int, error) {
	switch n := v.(type) {
	case float64:
		return int(n), nil
	case interface{ Int64() (int64, error) }: // json.Number
		i, err := n.Int64()
		return int(i), err
	}
	return 0, fmt.Errorf("transit: version %v is not a number", v)
}

// ciphertextVersion is the N of "vault:vN:...".
func ciphertextVersion(c string) (int, error) {
	rest, ok := strings.CutPrefix(c, "vault:v")
	n, _, ok2 := strings.Cut(rest, ":")
	v, err := strconv.Atoi(n)
	// Digits only, as Vault writes them: no sign, no leading zero.
	if !ok || !ok2 || err != nil || v < 1 || strconv.Itoa(v) != n {
		return 0, errors.New("transit: wrapped key is not a transit ciphertext")
	}
	return v, nil
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// Wrap implements keys.KeyWrapper.
func (w *Wrapper) Wrap(ctx context.Context, keyID string, dek []byte) ([]byte, string, error) {
	s, err := w.c.Logical().WriteWithContext(ctx, w.path("encrypt"), map[string]any{
		"plaintext": base64.StdEncoding.EncodeToString(dek), "context": b64(keyID)})
	if err != nil {
		return nil, "", fmt.Errorf("transit: encrypt: %w", err)
	}
	return w.result(s)
}

func (w *Wrapper) result(s *vault.Secret) ([]byte, string, error) {
	if s == nil || s.Data == nil {
		return nil, "", errors.New("transit: empty answer")
	}
	c, _ := s.Data["ciphertext"].(string)
	v, err := ciphertextVersion(c)
	if err != nil {
		return nil, "", err
	}
	return []byte(c), w.version(v), nil
}

// Unwrap implements keys.KeyWrapper.
func (w *Wrapper) Unwrap(ctx context.Context, keyID string, wrapped []byte) ([]byte, error) {
	if _, err := ciphertextVersion(string(wrapped)); err != nil {
		return nil, err
	}
	s, err := w.c.Logical().WriteWithContext(ctx, w.path("decrypt"), map[string]any{
		"ciphertext": string(wrapped), "context": b64(keyID)})
	if err != nil {
		return nil, fmt.Errorf("transit: decrypt: %w", err)
	}
	if s == nil || s.Data == nil {
		return nil, errors.New("transit: empty answer")
	}
	p, _ := s.Data["plaintext"].(string)
	dek, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		return nil, errors.New("transit: plaintext is not base64")
	}
	return dek, nil
}

// Rewrap implements keys.Rewrapper: the engine decrypts and encrypts
// under its latest version without the data key leaving it.
func (w *Wrapper) Rewrap(ctx context.Context, keyID string, wrapped []byte) ([]byte, string, error) {
	s, err := w.c.Logical().WriteWithContext(ctx, w.path("rewrap"), map[string]any{
		"ciphertext": string(wrapped), "context": b64(keyID)})
	if err != nil {
		return nil, "", fmt.Errorf("transit: rewrap: %w", err)
	}
	return w.result(s)
}

// RewrapBatch implements keys.Batcher: one request for many keys.
func (w *Wrapper) RewrapBatch(ctx context.Context, ids []string, wrapped [][]byte) ([][]byte, []string, error) {
	in := make([]map[string]any, len(ids))
	for i := range ids {
		in[i] = map[string]any{"ciphertext": string(wrapped[i]), "context": b64(ids[i])}
	}
	s, err := w.c.Logical().WriteWithContext(ctx, w.path("rewrap"), map[string]any{"batch_input": in})
	if err != nil {
		return nil, nil, fmt.Errorf("transit: rewrap: %w", err)
	}
	if s == nil || s.Data == nil {
		return nil, nil, errors.New("transit: empty answer")
	}
	res, _ := s.Data["batch_results"].([]any)
	if len(res) != len(ids) {
		return nil, nil, fmt.Errorf("transit: rewrap answered %d results for %d keys", len(res), len(ids))
	}
	out, vers := make([][]byte, len(ids)), make([]string, len(ids))
	for i, r := range res {
		m, _ := r.(map[string]any)
		if e, _ := m["error"].(string); e != "" {
			return nil, nil, fmt.Errorf("transit: rewrap key %s: %s", ids[i], e)
		}
		c, _ := m["ciphertext"].(string)
		v, err := ciphertextVersion(c)
		if err != nil {
			return nil, nil, err
		}
		out[i], vers[i] = []byte(c), w.version(v)
	}
	return out, vers, nil
}

// RotateKEK implements keys.Rotator.
func (w *Wrapper) RotateKEK(ctx context.Context) (string, error) {
	if _, err := w.c.Logical().WriteWithContext(ctx, w.path("keys")+"/rotate", nil); err != nil {
		return "", fmt.Errorf("transit: rotate: %w", err)
	}
	return w.CurrentKEK(ctx)
}

// CurrentKEK implements keys.Current.
func (w *Wrapper) CurrentKEK(ctx context.Context) (string, error) {
	v, err := w.latest(ctx)
	if err != nil {
		return "", err
	}
	return w.version(v), nil
}

// RetireOldKEKs implements keys.Retirer: versions below the latest no
// longer decrypt.
func (w *Wrapper) RetireOldKEKs(ctx context.Context) error {
	v, err := w.latest(ctx)
	if err != nil {
		return err
	}
	if _, err := w.c.Logical().WriteWithContext(ctx, w.path("keys")+"/config", map[string]any{"min_decryption_version": v}); err != nil {
		return fmt.Errorf("transit: retire versions below %d: %w", v, err)
	}
	return nil
}

// Probe implements keys.Prober: the key can be read with the token.
func (w *Wrapper) Probe(ctx context.Context) error {
	_, err := w.latest(ctx)
	return err
}
