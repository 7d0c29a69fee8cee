// Package app builds Ward's object graph from a Config. It is the only
// package that knows every concrete type; cmd/ward calls it and nothing
// else does.
package app

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wardhealth/ward/internal/api"
	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authn"
	"github.com/wardhealth/ward/internal/bulk"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/invalidation"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/ratelimit"
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

// OpenStore opens the configured database and applies migrations. The
// embedded database's directory is created 0700 and its files 0600 (looser
// existing ones are tightened, with a warning on standard error).
func OpenStore(ctx context.Context, cfg config.Config) (store.Store, error) {
	return openStore(ctx, cfg, os.Stderr)
}

// DatabaseFileName is the embedded SQLite database inside the data
// directory.
const DatabaseFileName = "ward.db"

// ErrNoDatabase is returned by OpenExistingStore when the data directory
// holds no database.
var ErrNoDatabase = errors.New("no database")

// OpenExistingStore is OpenStore for tools that inspect a database (audit
// verify): it never creates one, so a mistyped --data-dir is an error
// (ErrNoDatabase) instead of a new, empty and "intact" database.
func OpenExistingStore(ctx context.Context, cfg config.Config) (store.Store, error) {
	if err := RequireDatabase(cfg); err != nil {
		return nil, err
	}
	return OpenStore(ctx, cfg)
}

func openStore(ctx context.Context, cfg config.Config, warn io.Writer) (store.Store, error) {
	if cfg.DatabaseURL != "" {
		return postgres.Open(ctx, cfg.DatabaseURL, sqlstore.Options{})
	}
	if err := secureDataDir(cfg.DataDir, warn); err != nil {
		return nil, err
	}
	return sqlite.Open(ctx, filepath.Join(cfg.DataDir, DatabaseFileName), sqlstore.Options{})
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
		if err := checkKeyFile(cfg, cfg.KeyFile, warn); err != nil {
			return nil, err
		}
		return seal.LoadKEKFile(cfg.KeyFile)
	case cfg.DatabaseURL != "":
		return nil, errors.New("with WARD_DATABASE_URL, set WARD_KEY or WARD_KEY_FILE: a production database needs a key kept outside it")
	}
	if err := secureDataDir(cfg.DataDir, warn); err != nil {
		return nil, err
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
	if err := checkKeyFile(cfg, path, warn); err != nil {
		return nil, err
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
	// Proof keeps the ledger's Merkle tree and signs checkpoints; serve
	// starts its loop (StartWorkers).
	Proof  *LedgerProof
	limits *limits
	// Bus carries cache invalidations to and from the other nodes
	// (WARD_NATS_URL); nil on a single node.
	Bus *invalidation.Bus
	// ledger are the alert loop and SIEM exporters (siem.go).
	ledger *ledgerWorkers
	// events is the outbox dispatcher (events.go), started by
	// StartWorkers.
	events    *eventsRunner
	eventsCfg config.Events
	// fhirBase is the FHIR base URL notifications name resources under
	// ("" : relative references).
	fhirBase string
	subsWS   *subsWS
	log      *slog.Logger
	// kekCfg says how often the KEK is probed and how long unwrapped keys
	// outlive its silence; stopKEK ends the probe, closeKEK releases the
	// KEK (a PKCS#11 session).
	kekCfg   config.KEK
	stopKEK  context.CancelFunc
	closeKEK func()
	// docs is the content sweeper (documents.go), started by StartWorkers.
	docs    *sweeper
	docsCfg config.Documents
}

// Option tunes Open beyond the configuration (tests).
type Option func(*options)

type options struct {
	cacheTTL       time.Duration
	now            func() time.Time
	tenantKeysOnly bool
}

// WithTenantKeysOnly seals every version under the tenant's data key,
// none under a patient's (side-by-side benchmarks of per-patient keys).
func WithTenantKeysOnly() Option { return func(o *options) { o.tenantKeysOnly = true } }

// WithNow gives the records service a clock (tests of what time ends, such
// as a registration CareTeam's period).
func WithNow(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithCacheTTL sets how long cached access facts and the revocation list
// are trusted without an invalidation (default 5 s). Tests make it long so
// that only the invalidation bus can make a node see another's change.
func WithCacheTTL(d time.Duration) Option { return func(o *options) { o.cacheTTL = d } }

// Open builds the application. With WARD_NATS_URL set it connects to NATS
// first and fails if no server answers.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger, warn io.Writer, opts ...Option) (*App, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	kw, closeKEK, err := OpenKeyWrapper(ctx, cfg, warn)
	if err != nil {
		return nil, err
	}
	var bus *invalidation.Bus
	if cfg.NATSURL != "" {
		if bus, err = invalidation.Connect(invalidation.Options{URL: cfg.NATSURL, Prefix: cfg.NATSPrefix, Log: log}); err != nil {
			closeKEK()
			return nil, fmt.Errorf("WARD_NATS_URL: %w", err)
		}
	}
	st, err := openStore(ctx, cfg, warn)
	if err != nil {
		if bus != nil {
			bus.Close()
		}
		closeKEK()
		return nil, err
	}
	a, err := build(ctx, cfg, log, kw, st, bus, o)
	if err != nil {
		if bus != nil {
			bus.Close()
		}
		st.Close()
		closeKEK()
		return nil, err
	}
	a.closeKEK = closeKEK
	return a, nil
}

func build(ctx context.Context, cfg config.Config, log *slog.Logger, kw keys.KeyWrapper, st store.Store, bus *invalidation.Bus, o options) (*App, error) {
	km, err := keys.NewWithWrapper(ctx, st, kw, nil)
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
	to := authn.Options{Issuer: issuer, TTL: cfg.TokenTTL, Tenant: cfg.Tenant, SealKeyID: sysKey, External: external, RevocationRefresh: o.cacheTTL,
		StyleURL: cfg.SMARTStyleURL}
	ro := records.Options{ConditionalDeleteMax: cfg.ConditionalDeleteMax, NoAdminPHI: !cfg.AdminPHIAccess, PlainAddresses: cfg.AuditPlainAddresses,
		MaxDecidedCount: cfg.SearchMaxDecided, FactTTL: o.cacheTTL, Now: o.now, RegistrationCare: cfg.RegistrationCarePeriod,
		ReferentialIntegrity: cfg.ReferentialIntegrity, BaseURL: cfg.BaseURL, TenantKeysOnly: o.tenantKeysOnly}
	parseLimits := fhir.Limits{ArrayItems: cfg.Limits.ArrayItems, Elements: cfg.Limits.Elements, BundleEntries: cfg.Limits.BundleEntries}
	ro.Limits = records.Limits{PatchElements: cfg.Limits.PatchElements, ArrayItems: cfg.Limits.ArrayItems,
		Includes: cfg.Limits.SearchIncludes, Parse: parseLimits}
	if bus != nil {
		to.Peers, to.Live = tokenPeers{bus}, bus
		ro.Peers, ro.Live = factPeers{bus}, bus
	}
	tokens, err := authn.New(ctx, st, km, to)
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
	pg := d != nil && d.Dialect() == "postgres"
	ro.Search = search.Options{Leaky: cfg.SearchLeakyIndex, ProbeByRID: pg, IDsByKey: pg}
	ro.EncounterWindow = window
	if ro.Content, err = contentOptions(cfg, log); err != nil {
		return nil, err
	}
	// Without its shred list a server still serves; it refuses every
	// erasure (503), which could not survive a restore.
	if sl, err := openShredList(ctx, ro.Content.Objects, kw); err == nil {
		ro.Shred = sl
	} else {
		log.Error("the shred list cannot be opened: Patient/$erase is refused until it can", "error", err.Error())
	}
	rec := records.New(st, km, val, ro)
	if bus != nil {
		// Subscribed only now that there is something to invalidate;
		// until it returns the caches are not trusted (Bus.Live).
		if err := bus.Subscribe(applier{records: rec, tokens: tokens, log: log}); err != nil {
			return nil, fmt.Errorf("WARD_NATS_URL: %w", err)
		}
	}
	health := func(ctx context.Context) error {
		_, err := st.AuditHead(ctx)
		return err
	}
	var bs *bulk.Service
	if js, ok := st.(bulk.Store); ok {
		bs = bulk.New(js, rec, km, bulk.Options{TTL: cfg.ExportTTL, Log: log, ProjectKey: projectKey(km)})
	}
	lim, err := openLimits(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	sysBlind, err := km.Blinder(ctx, keys.SystemTenant)
	if err != nil {
		lim.close()
		return nil, err
	}
	proof := newLedgerProof(st, km, sysKey, withArchiveDir(cfg), log, o.now)
	addressTag := func(addr string) string {
		b := sysBlind.Index("client-address", addr)
		return hex.EncodeToString(b[:8])
	}
	cl, err := newClinic(ctx, cfg, km, sysBlind)
	if err != nil {
		lim.close()
		return nil, err
	}
	wa := &webhookAdmin{}
	ws := &subsWS{}
	h := api.New(api.Options{BaseURL: cfg.BaseURL, ReferentialIntegrity: cfg.ReferentialIntegrity, MaxBodyBytes: cfg.MaxBodyBytes, Version: Version, Admin: authn.NewAdmin(st), Webhooks: wa, Bulk: bs,
		MaxCount: cfg.SearchMaxCount, LeakyIndex: cfg.SearchLeakyIndex,
		AuthLimit: lim.auth, APILimit: lim.api, TrustedProxies: cfg.TrustedProxies, AddressTag: addressTag,
		Limits: api.Limits{Parse: parseLimits, PatchOps: cfg.Limits.PatchOps, SearchParams: cfg.Limits.SearchParams,
			SearchValues: cfg.Limits.SearchValues, RequestTimeout: cfg.Limits.RequestTimeout},
		CORSOrigins: cfg.CORSOrigins, SMARTStyleURL: cfg.SMARTStyleURL, MaxHeaderBytes: cfg.MaxHeaderBytes, Mounts: []api.Mounter{cl, ws}, Ledger: proofServer{proof}, RequestContext: keys.WithFence}, log, rec, tokens, health)
	if bs != nil {
		bs.SetExecutor(h.ExecuteAsync) // the asynchronous request pattern runs the API's handlers
	}
	a := &App{Store: st, Keys: km, Tokens: tokens, Records: rec, Bulk: bs, Handler: h, Bus: bus, Proof: proof, limits: lim, eventsCfg: cfg.Events, kekCfg: cfg.KEK, log: log, docsCfg: cfg.Documents}
	if cfg.BaseURL != "" {
		a.fhirBase = cfg.BaseURL + "/fhir"
	}
	wa.app = a
	ws.app = a
	a.subsWS = ws
	return a, nil
}

// go-redis logs each failed dial on its own, unstructured, through a
// package-wide logger; Ward logs the change of state once instead
// (ratelimit.Shared). Set in init, before any client exists, because the
// logger is a global that go-redis reads without a lock.
func init() { redis.SetLogger(quietRedis{}) }

type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

// limits are the two rate limits and the Redis they may share.
type limits struct {
	auth, api api.Limiter
	redis     *redis.Client
}

func (l *limits) close() {
	if l != nil && l.redis != nil {
		l.redis.Close()
	}
}

// openLimits builds the rate limits: per node, or shared through Redis
// when WARD_REDIS_URL is set. A Redis that is configured but does not
// answer stops Ward here: an operator who asked for shared limits must not
// get per-node ones without knowing. Once running, Shared falls back to
// per-node limits by itself and logs it.
func openLimits(ctx context.Context, cfg config.Config, log *slog.Logger) (*limits, error) {
	l := &limits{}
	if cfg.RedisURL != "" && (cfg.AuthRate > 0 || cfg.APIRate > 0) {
		opt, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("WARD_REDIS_URL: %w", err)
		}
		// A limit check is on the path of every request: Redis answers
		// in well under a millisecond or is treated as unreachable (and
		// the node limits on its own) instead of holding requests.
		// One dial attempt, no command retries: a request that probes a
		// dead Redis waits at most DialTimeout.
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.PoolTimeout = 250*time.Millisecond, 250*time.Millisecond, 250*time.Millisecond, 250*time.Millisecond
		opt.MaxRetries, opt.DialerRetries = -1, 1
		l.redis = redis.NewClient(opt)
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err = l.redis.Ping(pctx).Err()
		cancel()
		if err != nil {
			l.redis.Close()
			return nil, fmt.Errorf("WARD_REDIS_URL: Redis at %s does not answer (%v); Ward will not start with shared rate limits it cannot reach", opt.Addr, err)
		}
	}
	build := func(name string, rate float64, burst, lease int) (api.Limiter, error) {
		if rate == 0 {
			return nil, nil
		}
		limit := ratelimit.Limit{Rate: rate, Burst: burst}
		local, err := ratelimit.NewLocal(limit, ratelimit.LocalOptions{})
		if err != nil || l.redis == nil {
			return local, err
		}
		remote, err := ratelimit.NewRedis(l.redis, limit, ratelimit.RedisOptions{Prefix: cfg.RedisKeyPrefix + name + ":"})
		if err != nil {
			return nil, err
		}
		return ratelimit.NewShared(local, remote, ratelimit.SharedOptions{Name: name, Log: log, Lease: lease}), nil
	}
	var err error
	// Authentication requests are few and each is worth counting exactly:
	// one round trip each. API requests take a twentieth of the burst per
	// round trip (20 of the default 400) and spend it within a second (the
	// default lease TTL), see ratelimit.Shared.
	if l.auth, err = build("auth", cfg.AuthRate, cfg.AuthBurst, 1); err == nil {
		l.api, err = build("api", cfg.APIRate, cfg.APIBurst, max(1, cfg.APIBurst/20))
	}
	if err != nil {
		l.close()
		return nil, fmt.Errorf("rate limits: %w", err)
	}
	return l, nil
}

// StartWorkers starts the background work of a serving node: the Bulk
// Data export worker and its sweeper of expired files. Close stops it.
func (a *App) StartWorkers() {
	if a.Bulk != nil {
		a.Bulk.Start()
	}
	ev, err := startEvents(a.eventsCfg, a.Store, a.Keys, a.Records, a.fhirBase, a.log)
	if err != nil {
		a.log.Error("event dispatcher not started", "error", err.Error())
	}
	a.events = ev
	if ev != nil && ev.subs != nil {
		a.subsWS.m.Store(ev.subs)
	}
	a.Proof.Start()
	kctx, stop := context.WithCancel(context.Background())
	a.stopKEK = stop
	go a.Keys.Watch(kctx, a.kekCfg.ProbeInterval, a.kekCfg.CacheTTL)
	a.docs = startSweeper(a.Records, a.docsCfg.SweepEvery, a.docsCfg.SweepGrace, a.log)
}

// Close stops the workers and releases the store.
func (a *App) Close() error {
	a.stopLedgerWorkers()
	if a.Bulk != nil {
		a.Bulk.Stop()
	}
	a.events.stop()
	a.docs.close()
	a.docs = nil
	a.Proof.Stop()
	a.limits.close()
	if a.Bus != nil {
		a.Bus.Close() // flushes what this node published
	}
	if a.stopKEK != nil {
		a.stopKEK()
	}
	err := a.Store.Close()
	if a.closeKEK != nil {
		a.closeKEK()
		a.closeKEK = nil
	}
	return err
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
	sum, err := VerifyLedgerSummary(ctx, st)
	return sum.Count, sum.Head, err
}

// LedgerSummary is what a verification read: enough for an operator to
// compare with what they expect (a chain that verifies proves nothing
// about records cut off its end together with a rewritten head; see
// docs/security.md, "What verify cannot see").
type LedgerSummary struct {
	Count int64
	// First and Last are the first and last sequence numbers read (0 when
	// the ledger is empty); FirstTime and LastTime their times.
	First, Last         int64
	FirstTime, LastTime time.Time
	Head                audit.Head
}

// VerifyLedgerSummary is VerifyLedger with the first and last records'
// sequence numbers and times.
func VerifyLedgerSummary(ctx context.Context, st store.Store) (sum LedgerSummary, err error) {
	err = st.AuditScan(ctx, 0, func(h audit.Head, recs iter.Seq2[*audit.Record, error]) error {
		sum.Head = h
		counted := func(yield func(*audit.Record, error) bool) {
			for r, err := range recs {
				if r != nil {
					sum.Count++
					if sum.First == 0 {
						sum.First, sum.FirstTime = r.Seq, r.Time
					}
					sum.Last, sum.LastTime = r.Seq, r.Time
				}
				if !yield(r, err) {
					return
				}
			}
		}
		return audit.Verify(counted, &h)
	})
	return sum, err
}
