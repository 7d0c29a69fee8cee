package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/wardhealth/ward/internal/blob"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/keys/pkcs11"
	"github.com/wardhealth/ward/internal/keys/transit"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/shred"
	"github.com/wardhealth/ward/internal/store"
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
	prev, err := loadPreviousKEKs(cfg, kek, warn)
	if err != nil {
		return nil, nil, err
	}
	return keys.NewFileWrapper(kek, prev...), func() {}, nil
}

// loadPreviousKEKs loads WARD_KEK_PREVIOUS_FILES: the key files a node
// restarted on a new WARD_KEY_FILE still unwraps with, so that keys not
// yet re-wrapped by rotate-kek keep opening (they never wrap). A file
// that is missing, unreadable by its mode or the current key again is an
// error at start, not a 503 at first use.
func loadPreviousKEKs(cfg config.Config, cur *seal.KEK, warn io.Writer) ([]*seal.KEK, error) {
	var out []*seal.KEK
	for _, f := range cfg.KEK.PreviousFiles {
		if err := checkKeyFile(cfg, f, warn); err != nil {
			return nil, err
		}
		k, err := seal.LoadKEKFile(f)
		if err != nil {
			return nil, fmt.Errorf("previous key file (WARD_KEK_PREVIOUS_FILES): %w", err)
		}
		if k.ID() == cur.ID() {
			return nil, fmt.Errorf("previous key file %s holds the current key-encryption key", f)
		}
		out = append(out, k)
	}
	return out, nil
}

// RotateKEKOptions are the choices of `ward keys rotate-kek`.
type RotateKEKOptions struct {
	// NewKeyFile is the new key file of a file KEK (created, mode 0600, if
	// it does not exist); the configured KEK is the old one.
	NewKeyFile string
	// Retire retires the old versions of a PKCS#11 or transit KEK once no
	// key is left under them.
	Retire bool
	// Batch is the keys re-wrapped per transaction.
	Batch int
	// Progress is told the keys re-wrapped so far.
	Progress func(int)
}

// openStoreAndKEK opens the existing database and its KEK for an offline
// key command; the returned func releases both.
func openStoreAndKEK(ctx context.Context, cfg config.Config) (store.Store, keys.KeyWrapper, func(), error) {
	st, err := OpenExistingStore(ctx, cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	w, closeKEK, err := OpenKeyWrapper(ctx, cfg, io.Discard)
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	return st, w, func() { closeKEK(); st.Close() }, nil
}

// openTenantKeys opens the store and the key manager for a job over one
// tenant's data keys (rotate-data, migrate); what names the flag's use.
func openTenantKeys(ctx context.Context, cfg config.Config, tenant, what string) (store.Store, *keys.Manager, func(), error) {
	if tenant == "" {
		return nil, nil, nil, fmt.Errorf("name the tenant whose %s (--tenant)", what)
	}
	st, w, closeAll, err := openStoreAndKEK(ctx, cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	km, err := keys.NewWithWrapper(ctx, st, w, nil)
	if err != nil {
		closeAll()
		return nil, nil, nil, err
	}
	return st, km, closeAll, nil
}

// RotateKEK moves every wrapped data key of the existing database to a new
// KEK version, online (keys.RotateKEK): a new version in the token or the
// transit engine, or the new key file.
func RotateKEK(ctx context.Context, cfg config.Config, o RotateKEKOptions) (*keys.RotateReport, error) {
	st, w, closeAll, err := openStoreAndKEK(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	ro := keys.RotateOptions{Retire: o.Retire, Batch: o.Batch, Progress: o.Progress, Actor: "ward-cli"}
	switch {
	case cfg.KEK.Provider == "file" && o.NewKeyFile == "" && len(cfg.KEK.PreviousFiles) > 0:
		// The nodes already run on the new file (WARD_KEY_FILE) with the
		// old ones as previous files: move what is still under those.
		if o.Retire {
			return nil, errors.New("--retire is for pkcs11 and transit; a previous key file is retired by removing it from WARD_KEK_PREVIOUS_FILES and destroying it")
		}
	case cfg.KEK.Provider == "file":
		if o.NewKeyFile == "" {
			return nil, errors.New("a key file KEK is rotated to a new file: give --new-key-file (created if missing), or set WARD_KEY_FILE to the new file and WARD_KEK_PREVIOUS_FILES to the old one")
		}
		if o.Retire {
			return nil, errors.New("--retire is for pkcs11 and transit; a key file is retired by setting WARD_KEY_FILE to the new one and destroying the old")
		}
		old := w.(*keys.FileWrapper)
		next, err := seal.LoadKEKFile(o.NewKeyFile)
		if errors.Is(err, fs.ErrNotExist) {
			next, err = seal.GenerateKEKFile(o.NewKeyFile)
		}
		if err != nil {
			return nil, fmt.Errorf("new key file: %w", err)
		}
		cur, _ := old.CurrentKEK(ctx)
		if next.ID() == cur {
			return nil, errors.New("the new key file holds the current key-encryption key")
		}
		w = keys.NewFileWrapper(next, old.KEKs()...)
	default:
		ro.Rotate = true
	}
	ro.Outside = func(ctx context.Context, w keys.KeyWrapper) error { return rewrapShredKey(ctx, cfg, w) }
	return keys.RotateKEK(ctx, st, w, ro)
}

// rewrapShredKey moves the shred list's MAC key, which lives in the
// document store rather than the database, to w's current KEK version,
// so that retiring the old version leaves erasures and restores working.
// A deployment with no list yet (no server has started) has nothing to
// move.
func rewrapShredKey(ctx context.Context, cfg config.Config, w keys.KeyWrapper) error {
	objs, err := openObjects(cfg)
	if err != nil {
		return err
	}
	l, err := shred.Open(ctx, objs, w, false)
	if errors.Is(err, shred.ErrMissing) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("the shred list's key: %w", err)
	}
	return l.Rewrap(ctx, w)
}

// RotateDataOptions are the choices of `ward keys rotate-data`.
type RotateDataOptions struct {
	Tenant  string
	Rate    float64
	Batch   int
	KeepOld bool
	// Progress is told the versions re-sealed so far.
	Progress func(int64)
}

// RotateData starts a new data-key version for a tenant's new writes and
// re-seals the tenant's stored versions under it (keys.RotateData),
// resuming a job that was stopped. Running nodes learn the new version
// within two KEK probe intervals, which the job waits before re-sealing.
func RotateData(ctx context.Context, cfg config.Config, o RotateDataOptions) (*keys.ResealReport, error) {
	st, km, closeAll, err := openTenantKeys(ctx, cfg, o.Tenant, "data key to rotate")
	if err != nil {
		return nil, err
	}
	defer closeAll()
	keepOld := o.KeepOld
	if !keepOld {
		// Binary content is sealed under keys derived from the data key
		// (docseal) and the job re-seals resource versions only: while the
		// tenant has content objects, destroying the old version would make
		// them unreadable, so it is kept.
		has, err := hasContent(ctx, cfg, o.Tenant)
		if err != nil {
			return nil, err
		}
		keepOld = has
	}
	return keys.RotateData(ctx, st, km, o.Tenant, keys.ResealOptions{Batch: o.Batch, Rate: o.Rate, KeepOld: keepOld,
		Settle: 2 * cfg.KEK.ProbeInterval, Progress: o.Progress, Actor: "ward-cli"})
}

// MigrateOptions are the choices of `ward keys migrate`.
type MigrateOptions struct {
	Tenant   string
	Rate     float64
	Batch    int
	Progress func(int64)
}

// MigratePatientKeys moves a tenant's stored versions that belong to one
// patient's compartment to that patient's own key (keys.MigratePatients,
// with the records layer's rule, records.SealPatient), resuming a job
// that was stopped. Servers keep running: their new writes already go
// under patients' keys.
func MigratePatientKeys(ctx context.Context, cfg config.Config, o MigrateOptions) (*keys.MigrateReport, error) {
	st, km, closeAll, err := openTenantKeys(ctx, cfg, o.Tenant, "records to move")
	if err != nil {
		return nil, err
	}
	defer closeAll()
	rule := func(v store.Version, plain []byte) (string, error) {
		var doc map[string]any
		if err := json.Unmarshal(plain, &doc); err != nil {
			return "", fmt.Errorf("migrate %s/%s version %d: %w", v.Type, v.ID, v.Version, err)
		}
		return records.SealPatient(v.Type, v.ID, doc), nil
	}
	return keys.MigratePatients(ctx, st, km, o.Tenant, keys.MigrateOptions{Batch: o.Batch, Rate: o.Rate, Patient: rule, Progress: o.Progress, Actor: "ward-cli"})
}

// errFound ends a listing at its first object.
var errFound = errors.New("found")

// hasContent says whether the tenant has any Binary content object.
func hasContent(ctx context.Context, cfg config.Config, tenant string) (bool, error) {
	objs, err := openObjects(cfg)
	if err != nil {
		return false, err
	}
	err = objs.List(ctx, records.ObjectPrefix(tenant), func(blob.Object) error { return errFound })
	if errors.Is(err, errFound) {
		return true, nil
	}
	return false, err
}
