package app

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/keys/pkcs11"
	"github.com/wardhealth/ward/internal/keys/transit"
)

// OpenKeyWrapper returns the configured home of the key-encryption key
// (WARD_KEK_PROVIDER) and what releases it. A KEK that cannot be reached
// (a transit server down, a wrong PIN) is an error: Ward does not start
// without it.
func OpenKeyWrapper(ctx context.Context, cfg config.Config, warn io.Writer) (keys.KeyWrapper, func(), error) {
	if err := cfg.CheckKEK(); err != nil {
		return nil, nil, err
	}
	switch cfg.KEK.Provider {
	case "pkcs11":
		w, err := pkcs11.New(pkcs11.Config{Module: cfg.KEK.PKCS11Module, TokenLabel: cfg.KEK.PKCS11Token, Pin: cfg.KEK.PKCS11PIN, KeyLabel: cfg.KEK.PKCS11KeyLabel})
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", keys.ErrKEKUnavailable, err)
		}
		return w, func() { w.Close() }, nil
	case "transit":
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		w, err := transit.New(tctx, transit.Config{Address: cfg.KEK.TransitAddr, Token: cfg.KEK.TransitToken, Mount: cfg.KEK.TransitMount, Key: cfg.KEK.TransitKey})
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", keys.ErrKEKUnavailable, err)
		}
		return w, func() {}, nil
	}
	kek, err := LoadKEK(cfg, warn)
	if err != nil {
		return nil, nil, err
	}
	return keys.NewFileWrapper(kek), func() {}, nil
}
