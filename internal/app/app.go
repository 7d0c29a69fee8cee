// Package app builds Ward's object graph from a Config. It is the only
// package that knows every concrete type; cmd/ward calls it and nothing
// else does.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/wardhealth/ward/internal/api"
	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authn"
	"github.com/wardhealth/ward/internal/bulk"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/search"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/postgres"
	"github.com/wardhealth/ward/internal/store/sqlite"
	"github.com/wardhealth/ward/internal/store/sqlstore"
)

// Version is Ward's version, set at build time with -ldflags.
var Version = "0.1.0-dev"

// OpenStore opens the configured database and applies migrations.
func OpenStore(ctx context.Context, cfg config.Config) (store.Store, error) {
	if cfg.DatabaseURL != "" {
		return postgres.Open(ctx, cfg.DatabaseURL, sqlstore.Options{})
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	return sqlite.Open(ctx, filepath.Join(cfg.DataDir, "ward.db"), sqlstore.Options{})
}

// KeyFileName is the generated development key inside the data directory.
const KeyFileName = "ward.key"

// LoadKEK finds the key-encryption key: WARD_KEY, then WARD_KEY_FILE, then
// (embedded database only) the data directory's key file, generated on first
// start with a warning written to warn.
func LoadKEK(cfg config.Config, warn io.Writer) (*seal.KEK, error) {
	switch {
	case cfg.Key != "":
		return seal.ParseKEK(cfg.Key)
	case cfg.KeyFile != "":
		if err := seal.CheckKeyFileMode(cfg.KeyFile); err != nil {
			fmt.Fprintf(warn, "WARNING: %v: the key file should be readable by its owner only (chmod 600)\n", err)
		}
		return seal.LoadKEKFile(cfg.KeyFile)
	case cfg.DatabaseURL != "":
		return nil, errors.New("with WARD_DATABASE_URL, set WARD_KEY or WARD_KEY_FILE: a production database needs a key kept outside it")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	path := filepath.Join(cfg.DataDir, KeyFileName)
	k, err := seal.LoadKEKFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k, err = seal.GenerateKEKFile(path)
		if err == nil {
			fmt.Fprintf(warn, `
################################################################################
#  WARNING: generated a new key-encryption key at %s
#  This key is for DEVELOPMENT. Every record in this data directory is sealed
#  under it: lose it and the data is gone; copy it with the data and the data
#  is readable. In production supply WARD_KEY or WARD_KEY_FILE from a secret
#  store and keep it apart from the database and its backups.
################################################################################

`, path)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	if err := seal.CheckKeyFileMode(path); err != nil {
		fmt.Fprintf(warn, "WARNING: %v: chmod 600 %s\n", err, path)
	}
	return k, nil
}

// App is a running Ward.
type App struct {
	Store   store.Store
	Keys    *keys.Manager
	Tokens  *authn.Service
	Records *records.Service
	// Bulk runs Bulk Data export jobs; serve starts its worker
	// (StartWorkers), one-shot commands do not.
	Bulk    *bulk.Service
	Handler *api.Server
}

// Open builds the application.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger, warn io.Writer) (*App, error) {
	kek, err := LoadKEK(cfg, warn)
	if err != nil {
		return nil, err
	}
	st, err := OpenStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	a, err := build(ctx, cfg, log, kek, st)
	if err != nil {
		st.Close()
		return nil, err
	}
	return a, nil
}

func build(ctx context.Context, cfg config.Config, log *slog.Logger, kek *seal.KEK, st store.Store) (*App, error) {
	km, err := keys.New(ctx, st, kek, nil)
	if err != nil {
		return nil, err
	}
	sysKey, err := km.DataKey(ctx, keys.SystemTenant)
	if err != nil {
		return nil, err
	}
	issuer := cfg.BaseURL
	if issuer == "" {
		issuer = "ward"
	}
	var external []authn.IssuerConfig
	if cfg.OIDCIssuers != "" {
		b, err := os.ReadFile(cfg.OIDCIssuers)
		if err != nil {
			return nil, fmt.Errorf("WARD_OIDC_ISSUERS: %w", err)
		}
		if external, err = authn.ParseIssuers(b); err != nil {
			return nil, fmt.Errorf("WARD_OIDC_ISSUERS: %w", err)
		}
	}
	tokens, err := authn.New(ctx, st, km, authn.Options{Issuer: issuer, TTL: cfg.TokenTTL, Tenant: cfg.Tenant, SealKeyID: sysKey, External: external})
	if err != nil {
		return nil, err
	}
	val, err := fhir.NewValidator()
	if err != nil {
		return nil, fmt.Errorf("load FHIR schema: %w", err)
	}
	window := cfg.CareEncounterWindow
	if window == 0 {
		window = -1 // Encounters make no care relationship
	}
	// PostgreSQL caches generic plans of Ward's prepared statements (see
	// postgres.Open): probes are written so that such a plan still reads
	// them by rid.
	d, _ := st.(interface{ Dialect() string })
	so := search.Options{Leaky: cfg.SearchLeakyIndex, ProbeByRID: d != nil && d.Dialect() == "postgres"}
	rec := records.New(st, km, val, records.Options{Search: so, ConditionalDeleteMax: cfg.ConditionalDeleteMax,
		NoAdminPHI: !cfg.AdminPHIAccess, EncounterWindow: window})
	health := func(ctx context.Context) error {
		_, err := st.AuditHead(ctx)
		return err
	}
	var bs *bulk.Service
	if js, ok := st.(bulk.Store); ok {
		bs = bulk.New(js, rec, km, bulk.Options{TTL: cfg.ExportTTL, Log: log})
	}
	h := api.New(api.Options{BaseURL: cfg.BaseURL, MaxBodyBytes: cfg.MaxBodyBytes, Version: Version, Directory: st, Bulk: bs,
		MaxCount: cfg.SearchMaxCount, LeakyIndex: cfg.SearchLeakyIndex}, log, rec, tokens, health)
	return &App{Store: st, Keys: km, Tokens: tokens, Records: rec, Bulk: bs, Handler: h}, nil
}

// StartWorkers starts the background work of a serving node: the Bulk
// Data export worker and its sweeper of expired files. Close stops it.
func (a *App) StartWorkers() {
	if a.Bulk != nil {
		a.Bulk.Start()
	}
}

// Close stops the workers and releases the store.
func (a *App) Close() error {
	if a.Bulk != nil {
		a.Bulk.Stop()
	}
	return a.Store.Close()
}

// NewLogger returns the JSON logger at the configured level.
func NewLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// VerifyLedger checks the whole audit chain against the stored head, in one
// read snapshot. It returns the number of records and the head, or a
// *audit.BreakError naming the first bad sequence number.
func VerifyLedger(ctx context.Context, st store.Store) (n int64, head audit.Head, err error) {
	err = st.AuditScan(ctx, 0, func(h audit.Head, recs iter.Seq2[*audit.Record, error]) error {
		head = h
		counted := func(yield func(*audit.Record, error) bool) {
			for r, err := range recs {
				n++
				if !yield(r, err) {
					return
				}
			}
		}
		return audit.Verify(counted, &h)
	})
	return n, head, err
}
