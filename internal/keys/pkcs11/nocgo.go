//go:build !cgo

package pkcs11

import (
	"context"
	"errors"
)

// Config names the module, the token and the key.
type Config struct {
	Module, TokenLabel, Pin, KeyLabel string
}

// Wrapper is unavailable without cgo: PKCS#11 modules are C libraries.
type Wrapper struct{}

// New fails: this binary was built without cgo.
func New(Config) (*Wrapper, error) {
	return nil, errors.New("pkcs11: this ward was built without cgo (CGO_ENABLED=0); PKCS#11 needs cgo")
}

// Close does nothing.
func (*Wrapper) Close() error { return nil }

// Wrap fails.
func (*Wrapper) Wrap(context.Context, string, []byte) ([]byte, string, error) {
	return nil, "", errors.New("pkcs11: unavailable")
}

// Unwrap fails.
func (*Wrapper) Unwrap(context.Context, string, []byte) ([]byte, error) {
	return nil, errors.New("pkcs11: unavailable")
}
