// Package config declares every setting of Ward once: its environment
// variable, flag, type, default, validation and a doc line. Unknown WARD_*
// variables are refused (a typo must not silently fall back to a default),
// and secrets are masked when the configuration is printed.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Config is the effective configuration.
type Config struct {
	Addr         string
	DataDir      string
	DatabaseURL  string
	KeyFile      string
	Key          string
	BaseURL      string
	Tenant       string
	MaxBodyBytes int64
	// ClinicListCap bounds the patients GET /patients decrypts and sorts
	// by name (clinic API).
	ClinicListCap int
	TokenTTL      time.Duration
	LogLevel      string
	PprofAddr     string
	// SearchLeakyIndex also indexes identifying strings and dates in
	// clear (see docs/security.md); changing it needs `ward reindex`.
	SearchLeakyIndex bool
	// SearchMaxCount caps _count.
	SearchMaxCount int
	// SearchMaxDecided bounds how many matches a total may decide one by
	// one (matches whose access depends on the resource itself); beyond it
	// the total is left out.
	SearchMaxDecided int
	// ConditionalDeleteMax caps the resources one conditional delete
	// removes.
	ConditionalDeleteMax int
	// ReferentialIntegrity refuses writes whose local references do not
	// resolve and deletes that would leave references dangling.
	ReferentialIntegrity bool
	// OIDCIssuers is a JSON file listing trusted external OpenID Connect
	// issuers (see authn.IssuerConfig); empty: none.
	OIDCIssuers string
	// AdminPHIAccess lets admins read and write every patient of their
	// tenant (issue #6; off: admins manage users, keys and the directory
	// only).
	AdminPHIAccess bool
	// AuditPlainAddresses keeps client addresses in the audit ledger in
	// the clear instead of as a keyed hash.
	AuditPlainAddresses bool
	// CareEncounterWindow is how far back an Encounter listing a
	// clinician as participant makes a care relationship.
	CareEncounterWindow time.Duration
	// RegistrationCarePeriod is how long the CareTeam a physician or
	// nurse gets with a Patient they create lasts; 0: none is made.
	RegistrationCarePeriod time.Duration
	// ExportTTL is how long Bulk Data export files are kept after the
	// export finishes.
	ExportTTL time.Duration
	// RedisURL names the Redis that holds the rate limits shared by every
	// node; empty: each node limits on its own.
	RedisURL string
	// RedisKeyPrefix goes in front of every key Ward writes to Redis.
	RedisKeyPrefix string
	// AuthRate and AuthBurst limit the OAuth endpoints per client address
	// (requests per second, burst); AuthRate 0: no limit.
	AuthRate  float64
	AuthBurst int
	// APIRate and APIBurst limit bearer-token requests per subject (tenant
	// and user or client id); APIRate 0: no limit.
	APIRate  float64
	APIBurst int
	// TrustedProxies are the proxies whose X-Forwarded-For is believed
	// when finding a client's address; empty: RemoteAddr only.
	TrustedProxies []netip.Prefix
	// NATSURL is the NATS server(s) carrying cache invalidations between
	// nodes; empty: a single node.
	NATSURL string
	// NATSPrefix is the first part of the invalidation subject
	// (<prefix>.invalidate): nodes with one prefix are one cluster.
	NATSPrefix string
	// Events configure the outbox dispatcher (events.go).
	Events Events
	// KEK says where the key-encryption key lives (kek.go).
	KEK KEK
	// Documents configure Binary content storage (documents.go).
	Documents Documents

	// Bounded work (issue #22): what one request may cost. Each limit is
	// refused with a 4xx OperationOutcome naming its setting.
	Limits Limits

	// --- Edges (issue #22: HTTPS, CORS, key and header limits) ---

	// TLSCert and TLSKey are PEM files: with both set, serve speaks
	// HTTPS (TLS 1.2+, HTTP/2, HSTS) instead of HTTP.
	TLSCert, TLSKey string
	// TLSSelfSigned generates (once, in DataDir) and serves a self-signed
	// certificate: for development only.
	TLSSelfSigned bool
	// CORSOrigins are the exact origins (scheme://host[:port]) whose
	// browser pages may call Ward; empty: no CORS headers at all.
	CORSOrigins []string
	// SMARTStyleURL is the smart_style_url of SMART token responses with
	// launch context: where apps fetch the EHR's style ("" : none).
	SMARTStyleURL string
	// AllowInsecureKeyFile lets Ward start with a key file that group or
	// others may read. Dangerous.
	AllowInsecureKeyFile bool
	// MaxHeaderBytes bounds a request's header block (names and values);
	// beyond it the answer is a 431 OperationOutcome.
	MaxHeaderBytes int
	// Ledger configures checkpoints, witnesses and archives, the alert
	// rules and the SIEM exporters (ledger.go, checkpoint.go).
	Ledger Ledger
}

// Limits bound the work of one request.
type Limits struct {
	// ArrayItems caps the items of one JSON array in a submitted body.
	ArrayItems int
	// Elements caps the JSON values (objects, arrays, primitives) of one
	// submitted body, a Bundle included.
	Elements int
	// BundleEntries caps the entries of one Bundle (batch, transaction,
	// stored Bundle, $import).
	BundleEntries int
	// PatchOps caps the operations of one JSON Patch or FHIRPath Patch.
	PatchOps int
	// PatchElements caps the JSON values of a document being patched,
	// checked after each operation.
	PatchElements int
	// SearchIncludes caps the resources _include and _revinclude add to
	// one search page; a page that would need more is refused (400).
	SearchIncludes int
	// SearchParams caps the parameters of one search (each occurrence;
	// a chain or _has counts once per hop).
	SearchParams int
	// SearchValues caps the comma-separated values of one parameter.
	SearchValues int
	// RequestTimeout bounds the time one API request may work (not the
	// download of Bulk Data files).
	RequestTimeout time.Duration
}

// Default returns the defaults.
func Default() Config {
	return Config{
		Addr:           "127.0.0.1:8080",
		DataDir:        "ward-data",
		Tenant:         "default",
		MaxBodyBytes:   16 << 20,
		ClinicListCap:  2000,
		TokenTTL:       15 * time.Minute,
		LogLevel:       "info",
		SearchMaxCount: 1000,

		SearchMaxDecided: 100000,

		ConditionalDeleteMax: 100,

		AdminPHIAccess:      true,
		CareEncounterWindow: 90 * 24 * time.Hour,

		RegistrationCarePeriod: 30 * 24 * time.Hour,

		ExportTTL: 24 * time.Hour,

		RedisKeyPrefix: "ward:rl:",
		AuthRate:       10,
		AuthBurst:      20,
		APIRate:        200,
		APIBurst:       400,
		NATSPrefix:     "ward",
		Events:         eventDefaults(),
		KEK:            kekDefaults(),
		Documents:      documentDefaults(),

		Limits: Limits{
			ArrayItems:     10000,
			Elements:       1000000,
			BundleEntries:  10000,
			PatchOps:       1000,
			PatchElements:  100000,
			SearchIncludes: 1000,
			SearchParams:   100,
			SearchValues:   100,
			RequestTimeout: 60 * time.Second,
		},
		MaxHeaderBytes: 64 << 10,
		Ledger:         defaultLedger(),
	}
}

type setting struct {
	env, flag, doc string
	secret         bool
	get            func(*Config) string
	set            func(*Config, string) error
}

var (
	tenantPattern  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	subjectPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
)

var settings = []setting{
	{"WARD_ADDR", "addr", "address to listen on", false,
		func(c *Config) string { return c.Addr }, func(c *Config, v string) error {
			if err := checkHostPort(v); err != nil {
				return err
			}
			c.Addr = v
			return nil
		}},
	{"WARD_DATA_DIR", "data-dir", "directory of the embedded SQLite database and generated key (used when WARD_DATABASE_URL is empty)", false,
		func(c *Config) string { return c.DataDir }, func(c *Config, v string) error { c.DataDir = v; return nil }},
	{"WARD_DATABASE_URL", "database-url", "postgres://... to use PostgreSQL instead of the embedded SQLite database", true,
		func(c *Config) string { return c.DatabaseURL }, func(c *Config, v string) error {
			if v != "" && !strings.HasPrefix(v, "postgres://") && !strings.HasPrefix(v, "postgresql://") {
				return errors.New("must be a postgres:// or postgresql:// URL")
			}
			c.DatabaseURL = v
			return nil
		}},
	{"WARD_KEY_FILE", "key-file", "file holding the base64 key-encryption key (32 bytes)", false,
		func(c *Config) string { return c.KeyFile }, func(c *Config, v string) error { c.KeyFile = v; return nil }},
	{"WARD_KEY", "", "the base64 key-encryption key itself (32 bytes)", true,
		func(c *Config) string { return c.Key }, func(c *Config, v string) error { c.Key = v; return nil }},
	{"WARD_BASE_URL", "base-url", "public base URL (e.g. https://ward.example.org); empty: from each request's Host", false,
		func(c *Config) string { return c.BaseURL }, func(c *Config, v string) error {
			if v == "" {
				c.BaseURL = ""
				return nil
			}
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
				return errors.New("must be an absolute http(s) URL without a query")
			}
			c.BaseURL = strings.TrimSuffix(v, "/")
			return nil
		}},
	{"WARD_TENANT", "tenant", "the tenant a command works in (users add: the tenant the user belongs to), and the tenant of password logins that name none", false,
		func(c *Config) string { return c.Tenant }, func(c *Config, v string) error {
			if !tenantPattern.MatchString(v) {
				return errors.New("must match [a-z0-9][a-z0-9-]{0,62}")
			}
			c.Tenant = v
			return nil
		}},
	{"WARD_MAX_BODY_BYTES", "max-body-bytes", "largest accepted request body in bytes", false,
		func(c *Config) string { return strconv.FormatInt(c.MaxBodyBytes, 10) }, func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1024 || n > 1<<30 {
				return errors.New("must be an integer between 1024 and 1073741824")
			}
			c.MaxBodyBytes = n
			return nil
		}},
	{"WARD_CLINIC_LIST_CAP", "clinic-list-cap", "most patients GET /patients (clinic API) decrypts and sorts by name; a list with more candidates is refused (list-too-large)", false,
		func(c *Config) string { return strconv.Itoa(c.ClinicListCap) }, func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 100000 {
				return errors.New("must be an integer between 1 and 100000")
			}
			c.ClinicListCap = n
			return nil
		}},
	{"WARD_TOKEN_TTL", "token-ttl", "access token lifetime (Go duration, e.g. 15m)", false,
		func(c *Config) string { return c.TokenTTL.String() }, func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Minute || d > 24*time.Hour {
				return errors.New("must be a duration between 1m and 24h")
			}
			c.TokenTTL = d
			return nil
		}},
	{"WARD_CONDITIONAL_DELETE_MAX", "conditional-delete-max", "most resources one conditional delete (DELETE [type]?search) may remove; more matches are refused with 412", false,
		func(c *Config) string { return strconv.Itoa(c.ConditionalDeleteMax) }, func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 100000 {
				return errors.New("must be an integer between 1 and 100000")
			}
			c.ConditionalDeleteMax = n
			return nil
		}},
	{"WARD_REFERENTIAL_INTEGRITY", "referential-integrity", "on: a write whose reference to a local resource does not resolve, and a delete that would leave references to it, are refused (409); off (default): references are not checked", false,
		func(c *Config) string { return map[bool]string{true: "on", false: "off"}[c.ReferentialIntegrity] }, func(c *Config, v string) error {
			switch v {
			case "on":
				c.ReferentialIntegrity = true
			case "off":
				c.ReferentialIntegrity = false
			default:
				return errors.New("must be on or off")
			}
			return nil
		}},
	{"WARD_LOG_LEVEL", "log-level", "debug, info, warn or error", false,
		func(c *Config) string { return c.LogLevel }, func(c *Config, v string) error {
			switch v {
			case "debug", "info", "warn", "error":
				c.LogLevel = v
				return nil
			}
			return errors.New("must be debug, info, warn or error")
		}},
	{"WARD_SEARCH_LEAKY_INDEX", "search-leaky-index", "also index names, identifiers, telecom, addresses and birth dates in clear so that :contains and day-precision birth-date ranges work; weakens protection at rest (docs/security.md); run `ward reindex` after changing it", false,
		func(c *Config) string { return strconv.FormatBool(c.SearchLeakyIndex) }, func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return errors.New("must be true or false")
			}
			c.SearchLeakyIndex = b
			return nil
		}},
	{"WARD_SEARCH_MAX_COUNT", "search-max-count", "largest _count a search may ask for (a larger one is capped)", false,
		func(c *Config) string { return strconv.Itoa(c.SearchMaxCount) }, func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 10000 {
				return errors.New("must be an integer between 1 and 10000")
			}
			c.SearchMaxCount = n
			return nil
		}},
	{"WARD_SEARCH_MAX_DECIDED", "search-max-decided", "most matches a search total (`_total`, `_summary=count`) may decide one by one for a caller whose access depends on each resource (consents on labels or named resources); beyond it the total is left out with a warning, never estimated", false,
		func(c *Config) string { return strconv.Itoa(c.SearchMaxDecided) }, func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 10000000 {
				return errors.New("must be an integer between 1 and 10000000")
			}
			c.SearchMaxDecided = n
			return nil
		}},
	{"WARD_ADMIN_PHI_ACCESS", "admin-phi-access", "true: admins may read and write every patient of their tenant; false: admins reach only non-patient data (users, clients, keys, Practitioner, Organization, ...)", false,
		func(c *Config) string { return strconv.FormatBool(c.AdminPHIAccess) }, func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return errors.New("must be true or false")
			}
			c.AdminPHIAccess = b
			return nil
		}},
	{"WARD_AUDIT_PLAIN_ADDRESSES", "audit-plain-addresses", "true: the audit ledger keeps client network addresses in the clear; false (default): a keyed hash of each address", false,
		func(c *Config) string { return strconv.FormatBool(c.AuditPlainAddresses) }, func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return errors.New("must be true or false")
			}
			c.AuditPlainAddresses = b
			return nil
		}},
	{"WARD_CARE_ENCOUNTER_WINDOW", "care-encounter-window", "how long after an Encounter its participants keep a care relationship with the patient (Go duration, e.g. 2160h)", false,
		func(c *Config) string { return c.CareEncounterWindow.String() }, func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 || d > 10*365*24*time.Hour {
				return errors.New("must be a duration between 0 and 87600h")
			}
			c.CareEncounterWindow = d
			return nil
		}},
	{"WARD_REGISTRATION_CARE_PERIOD", "registration-care-period", "how long the care relationship of a physician or nurse with a Patient they create lasts: a CareTeam (subject the patient, participant their Practitioner) created with it and ending after this period (Go duration, e.g. 720h; 0: no CareTeam, the clinician cannot read the patient back)", false,
		func(c *Config) string { return c.RegistrationCarePeriod.String() }, func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 || d > 10*365*24*time.Hour {
				return errors.New("must be a duration between 0 and 87600h")
			}
			c.RegistrationCarePeriod = d
			return nil
		}},
	{"WARD_OIDC_ISSUERS", "oidc-issuers", "JSON file listing trusted external OpenID Connect issuers (issuer, audience, jwks_url or discovery, algorithms, tenant or tenant_claim, role_claim and roles, practitioner_claim, scope); empty: none", false,
		func(c *Config) string { return c.OIDCIssuers }, func(c *Config, v string) error { c.OIDCIssuers = v; return nil }},
	{"WARD_PPROF_ADDR", "pprof-addr", "if set, serve Go profiling (net/http/pprof) on this separate address, e.g. 127.0.0.1:6060; never expose it", false,
		func(c *Config) string { return c.PprofAddr }, func(c *Config, v string) error {
			if v != "" {
				if err := checkHostPort(v); err != nil {
					return err
				}
			}
			c.PprofAddr = v
			return nil
		}},
	{"WARD_NATS_URL", "nats-url", "NATS server(s) for cache invalidations between nodes (nats://host:4222, comma-separated for a cluster); every node of one database must use it; empty: a single node", true,
		func(c *Config) string { return c.NATSURL }, func(c *Config, v string) error {
			for _, part := range strings.Split(v, ",") {
				if v == "" {
					break
				}
				u, err := url.Parse(strings.TrimSpace(part))
				if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" {
					return errors.New("must be nats:// or tls:// URLs, comma-separated")
				}
			}
			c.NATSURL = v
			return nil
		}},
	{"WARD_NATS_PREFIX", "nats-prefix", "subject prefix of the invalidations (<prefix>.invalidate); nodes sharing a database must share it", false,
		func(c *Config) string { return c.NATSPrefix }, func(c *Config, v string) error {
			if len(v) > 64 || !subjectPattern.MatchString(v) {
				return errors.New("must be NATS subject tokens (letters, digits, _ and -) separated by dots, at most 64 characters")
			}
			c.NATSPrefix = v
			return nil
		}},
	{"WARD_EXPORT_TTL", "export-ttl", "how long Bulk Data export files are kept after the export finishes (Go duration, 1m to 720h)", false,
		func(c *Config) string { return c.ExportTTL.String() }, func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Minute || d > 720*time.Hour {
				return errors.New("must be a duration between 1m and 720h")
			}
			c.ExportTTL = d
			return nil
		}},
	{"WARD_REDIS_URL", "redis-url", "redis://[:password@]host:port/db (or rediss://) of the Redis holding rate limits shared by all nodes; Ward refuses to start if it is set and unreachable; empty: each node limits on its own", true,
		func(c *Config) string { return c.RedisURL }, func(c *Config, v string) error {
			if v == "" {
				c.RedisURL = ""
				return nil
			}
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") || (u.Scheme != "unix" && u.Host == "") {
				return errors.New("must be a redis://, rediss:// or unix:// URL")
			}
			c.RedisURL = v
			return nil
		}},
	{"WARD_REDIS_KEY_PREFIX", "redis-key-prefix", "prefix of every key Ward writes to Redis (1-64 printable characters, no spaces), so that several Wards can share one Redis", false,
		func(c *Config) string { return c.RedisKeyPrefix }, func(c *Config, v string) error {
			if len(v) < 1 || len(v) > 64 || strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r > '~' }) {
				return errors.New("must be 1 to 64 printable ASCII characters without spaces")
			}
			c.RedisKeyPrefix = v
			return nil
		}},
	{"WARD_AUTH_RATE_LIMIT", "auth-rate-limit", "requests per second one client address may make to /oauth2/token, the login form (POST /oauth2/authorize), /oauth2/introspect and /oauth2/revoke, after a burst of WARD_AUTH_RATE_BURST; 0: no limit", false,
		func(c *Config) string { return formatRate(c.AuthRate) }, func(c *Config, v string) error { return parseRate(v, &c.AuthRate) }},
	{"WARD_AUTH_RATE_BURST", "auth-rate-burst", "requests one client address may make to the OAuth endpoints at once", false,
		func(c *Config) string { return strconv.Itoa(c.AuthBurst) }, func(c *Config, v string) error { return parseBurst(v, &c.AuthBurst) }},
	{"WARD_API_RATE_LIMIT", "api-rate-limit", "requests per second one subject (a user or client of a tenant) may make with its bearer token (/fhir, /admin, /bulk, /oauth2/launch), after a burst of WARD_API_RATE_BURST; 0: no limit", false,
		func(c *Config) string { return formatRate(c.APIRate) }, func(c *Config, v string) error { return parseRate(v, &c.APIRate) }},
	{"WARD_API_RATE_BURST", "api-rate-burst", "requests one subject may make at once", false,
		func(c *Config) string { return strconv.Itoa(c.APIBurst) }, func(c *Config, v string) error { return parseBurst(v, &c.APIBurst) }},
	{"WARD_TRUSTED_PROXIES", "trusted-proxies", "comma-separated addresses or CIDR prefixes of reverse proxies (load balancers) whose X-Forwarded-For names the client address for rate limits, and whose Forwarded or X-Forwarded-Proto/-Host/-Prefix set the base of links (unless WARD_BASE_URL is set); empty: the connection's address is the client's and its Host the links' base", false,
		func(c *Config) string {
			var parts []string
			for _, p := range c.TrustedProxies {
				parts = append(parts, p.String())
			}
			return strings.Join(parts, ",")
		}, func(c *Config, v string) error {
			var out []netip.Prefix
			for _, f := range strings.Split(v, ",") {
				f = strings.TrimSpace(f)
				if f == "" {
					continue
				}
				p, err := netip.ParsePrefix(f)
				if err != nil {
					a, aerr := netip.ParseAddr(f)
					if aerr != nil || a.Zone() != "" {
						return fmt.Errorf("%q is not an IP address or CIDR prefix", f)
					}
					p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
				}
				out = append(out, p.Masked())
			}
			c.TrustedProxies = out
			return nil
		}},

	// Bounded work (issue #22): what one request may cost. Each is refused
	// with a 4xx OperationOutcome naming the setting, before the work.
	intSetting("WARD_RESOURCE_MAX_ARRAY_ITEMS", "resource-max-array-items", "most items in one JSON array of a submitted resource or Bundle (checked while parsing, before decoding)", 10, 10000000,
		func(c *Config) *int { return &c.Limits.ArrayItems }),
	intSetting("WARD_RESOURCE_MAX_ELEMENTS", "resource-max-elements", "most JSON values (objects, arrays, primitives) in one submitted body, a Bundle included (checked while parsing, before decoding)", 100, 100000000,
		func(c *Config) *int { return &c.Limits.Elements }),
	intSetting("WARD_BUNDLE_MAX_ENTRIES", "bundle-max-entries", "most entries in one Bundle (batch, transaction, a stored Bundle, one $import or `ward import` file), refused before any entry is processed", 1, 1000000,
		func(c *Config) *int { return &c.Limits.BundleEntries }),
	intSetting("WARD_PATCH_MAX_OPS", "patch-max-ops", "most operations in one JSON Patch or FHIRPath Patch", 1, 100000,
		func(c *Config) *int { return &c.Limits.PatchOps }),
	intSetting("WARD_PATCH_MAX_ELEMENTS", "patch-max-elements", "most JSON values a resource may have after each operation of a patch (a patch that grows it past this is refused at that operation)", 100, 100000000,
		func(c *Config) *int { return &c.Limits.PatchElements }),
	intSetting("WARD_SEARCH_MAX_INCLUDES", "search-max-includes", "most resources _include and _revinclude add to one search page; a page that would need more is refused (400) rather than cut short", 1, 100000,
		func(c *Config) *int { return &c.Limits.SearchIncludes }),
	intSetting("WARD_SEARCH_MAX_PARAMS", "search-max-params", "most parameters in one search (each occurrence; each hop of a chain or _has counts once more)", 1, 10000,
		func(c *Config) *int { return &c.Limits.SearchParams }),
	intSetting("WARD_SEARCH_MAX_VALUES", "search-max-values", "most comma-separated values (ORs) in one search parameter, _type, _elements and _sort", 1, 10000,
		func(c *Config) *int { return &c.Limits.SearchValues }),
	{"WARD_REQUEST_TIMEOUT", "request-timeout", "longest time one API request may work before it is stopped with 503 (Go duration, 1s to 1h; Bulk Data file downloads and $export runs are not bounded by it)", false,
		func(c *Config) string { return c.Limits.RequestTimeout.String() }, func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Second || d > time.Hour {
				return errors.New("must be a duration between 1s and 1h")
			}
			c.Limits.RequestTimeout = d
			return nil
		}},
}

// LimitFlags are the flag names of the bounded-work settings, for the
// subcommands that serve or load data.
func LimitFlags() []string {
	return []string{"resource-max-array-items", "resource-max-elements", "bundle-max-entries", "patch-max-ops",
		"patch-max-elements", "search-max-includes", "search-max-params", "search-max-values", "request-timeout"}
}

// intSetting declares an integer setting between lo and hi.
func intSetting(env, flag, doc string, lo, hi int, field func(*Config) *int) setting {
	return setting{env: env, flag: flag, doc: doc,
		get: func(c *Config) string { return strconv.Itoa(*field(c)) },
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < lo || n > hi {
				return fmt.Errorf("must be an integer between %d and %d", lo, hi)
			}
			*field(c) = n
			return nil
		}}
}

// --- Edges (issue #22: HTTPS, CORS, key and header limits) ---

// edgeSettings are the settings of the HTTP edge and of the files Ward
// keeps; they join settings in init.
var edgeSettings = []setting{
	{"WARD_TLS_CERT", "tls-cert", "PEM certificate (chain) file: with WARD_TLS_KEY, serve HTTPS (TLS 1.2+, HTTP/2, Strict-Transport-Security) instead of HTTP", false,
		func(c *Config) string { return c.TLSCert }, func(c *Config, v string) error { c.TLSCert = v; return nil }},
	{"WARD_TLS_KEY", "tls-key", "PEM private key file of WARD_TLS_CERT (readable by its owner only)", false,
		func(c *Config) string { return c.TLSKey }, func(c *Config, v string) error { c.TLSKey = v; return nil }},
	{"WARD_TLS_SELF_SIGNED", "tls-self-signed", "DEVELOPMENT ONLY: serve HTTPS with a self-signed certificate generated once into the data directory (tls-cert.pem, tls-key.pem) for localhost, 127.0.0.1, ::1 and the host of WARD_BASE_URL", false,
		func(c *Config) string { return strconv.FormatBool(c.TLSSelfSigned) }, func(c *Config, v string) error { return parseBool(v, &c.TLSSelfSigned) }},
	{"WARD_CORS_ORIGINS", "cors-origins", "comma-separated exact origins (https://app.example.org, http://localhost:3000) whose browser apps may call /fhir, /oauth2/token, /oauth2/revoke, /oauth2/introspect and /.well-known; empty: no CORS headers", false,
		func(c *Config) string { return strings.Join(c.CORSOrigins, ",") }, func(c *Config, v string) error {
			var out []string
			for _, f := range strings.Split(v, ",") {
				f = strings.TrimSpace(f)
				if f == "" {
					continue
				}
				o, err := parseOrigin(f)
				if err != nil {
					return err
				}
				out = append(out, o)
			}
			c.CORSOrigins = out
			return nil
		}},
	{"WARD_SMART_STYLE_URL", "smart-style-url", "absolute http(s) URL of the SMART style document (smart_style_url) sent in token responses with launch context; empty: none", false,
		func(c *Config) string { return c.SMARTStyleURL }, func(c *Config, v string) error {
			if v == "" {
				c.SMARTStyleURL = ""
				return nil
			}
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" || len(v) > 512 {
				return errors.New("must be an absolute http(s) URL without user info or fragment, at most 512 characters")
			}
			c.SMARTStyleURL = v
			return nil
		}},
	{"WARD_ALLOW_INSECURE_KEY_FILE", "allow-insecure-key-file", "DANGEROUS: start even when the key file (WARD_KEY_FILE or the generated one) or the data directory may be read by group or others", false,
		func(c *Config) string { return strconv.FormatBool(c.AllowInsecureKeyFile) }, func(c *Config, v string) error { return parseBool(v, &c.AllowInsecureKeyFile) }},
	{"WARD_MAX_HEADER_BYTES", "max-header-bytes", "largest accepted request header block in bytes (names and values); larger is a 431 OperationOutcome", false,
		func(c *Config) string { return strconv.Itoa(c.MaxHeaderBytes) }, func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 4096 || n > 1<<20 {
				return errors.New("must be an integer between 4096 and 1048576")
			}
			c.MaxHeaderBytes = n
			return nil
		}},
}

// boolFlags are the settings given as bare flags (--tls-self-signed).
var boolFlags = map[string]bool{"tls-self-signed": true, "allow-insecure-key-file": true}

func init() { settings = append(settings, edgeSettings...) }

func parseBool(v string, dst *bool) error {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return errors.New("must be true or false")
	}
	*dst = b
	return nil
}

// parseOrigin accepts a browser origin as browsers send it: scheme, host
// and a port only when it is not the scheme's default; nothing else.
func parseOrigin(s string) (string, error) {
	bad := errors.New("each origin must be http(s)://host[:port] exactly as a browser sends it (no path, no trailing slash, no wildcard, lower case)")
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || strings.ContainsAny(s, "*?#") {
		return "", bad
	}
	if strings.ToLower(s) != s || u.Scheme+"://"+u.Host != s {
		return "", bad
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 || (u.Scheme == "http" && p == "80") || (u.Scheme == "https" && p == "443") {
			return "", bad
		}
	}
	return s, nil
}

// CheckTLS reports a contradictory TLS setting: a certificate without its
// key (or the reverse), or a certificate together with the self-signed
// mode.
func (c Config) CheckTLS() error {
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("WARD_TLS_CERT and WARD_TLS_KEY (--tls-cert, --tls-key) must be set together")
	}
	if c.TLSSelfSigned && c.TLSCert != "" {
		return errors.New("WARD_TLS_SELF_SIGNED (--tls-self-signed) and WARD_TLS_CERT/WARD_TLS_KEY exclude each other")
	}
	return nil
}

// TLS says serve speaks HTTPS.
func (c Config) TLS() bool { return c.TLSCert != "" || c.TLSSelfSigned }

// maxRate matches ratelimit.MaxRate (config imports nothing of Ward).
const maxRate = 1e6

func parseRate(v string, dst *float64) error {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > maxRate || f != f {
		return errors.New("must be a number of requests per second between 0 (no limit) and 1000000")
	}
	*dst = f
	return nil
}

func formatRate(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func parseBurst(v string, dst *int) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1_000_000 {
		return errors.New("must be an integer between 1 and 1000000")
	}
	*dst = n
	return nil
}

// checkHostPort validates a listening address before anything is
// created: host:port with a numeric port (an empty host listens on every
// interface).
func checkHostPort(v string) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("must be host:port, e.g. 127.0.0.1:8080 (%q)", v)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port must be a number between 0 and 65535 (%q)", v)
	}
	return nil
}

// FromEnv applies WARD_* variables from environ (os.Environ() form) to c.
// Variables starting with WARD_TEST_ belong to the test suite and are
// ignored.
func (c *Config) FromEnv(environ []string) error {
	byEnv := map[string]*setting{}
	for i := range settings {
		byEnv[settings[i].env] = &settings[i]
	}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "WARD_") || strings.HasPrefix(k, "WARD_TEST_") {
			continue
		}
		s, ok := byEnv[k]
		if !ok {
			return fmt.Errorf("unknown setting %s (known: %s)", k, strings.Join(envNames(), ", "))
		}
		if err := s.set(c, v); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

func envNames() []string {
	var out []string
	for _, s := range settings {
		out = append(out, s.env)
	}
	sort.Strings(out)
	return out
}

// Flags registers the settings named in names (by flag name) on fs; the
// flag values are applied to c as they are parsed. Each flag's help shows
// its environment variable and its effective default (after the
// environment), so -h tells what the command would run with.
func (c *Config) Flags(fs *flag.FlagSet, names ...string) {
	for i := range settings {
		s := &settings[i]
		if s.flag == "" {
			continue
		}
		for _, n := range names {
			if n != s.flag {
				continue
			}
			v := &settingValue{c: c, s: s, bool: boolFlags[s.flag]}
			fs.Var(v, s.flag, flagUsage(s))
		}
	}
}

// flagUsage is a setting's flag help. Backquotes are flag's marker for the
// argument's name (flag.UnquoteUsage), so quoted words of a doc line become
// plain quotes; the argument is named after what the setting takes.
func flagUsage(s *setting) string {
	doc := strings.ReplaceAll(s.doc, "`", "'")
	if name := argName(s); name != "" && name != "value" {
		return doc + " (`" + name + "`, env " + s.env + ")"
	}
	return doc + " (env " + s.env + ")"
}

// argName names a flag's argument in the help text.
func argName(s *setting) string {
	switch {
	case boolFlags[s.flag]:
		return ""
	case strings.Contains(s.doc, "duration"):
		return "duration"
	case strings.HasSuffix(s.flag, "-url") || strings.HasSuffix(s.flag, "-urls"):
		return "url"
	case s.flag == "addr" || strings.HasSuffix(s.flag, "-addr"):
		return "host:port"
	case strings.HasSuffix(s.flag, "-dir"):
		return "dir"
	case strings.HasSuffix(s.flag, "-file") || s.flag == "tls-cert" || s.flag == "tls-key" || s.flag == "oidc-issuers":
		return "file"
	}
	if d := s.get(&Config{}); d == "false" {
		return "bool"
	} else if _, err := strconv.Atoi(d); err == nil {
		return "n"
	}
	return "value"
}

// settingValue is a flag.Value over one setting of a Config.
type settingValue struct {
	c    *Config
	s    *setting
	bool bool
}

func (v *settingValue) String() string {
	if v == nil || v.c == nil || v.s == nil {
		return ""
	}
	if v.s.secret {
		if cur := v.s.get(v.c); cur != "" {
			return mask(v.s.env, cur)
		}
		return ""
	}
	return v.s.get(v.c)
}

func (v *settingValue) Set(x string) error { return v.s.set(v.c, x) }
func (v *settingValue) IsBoolFlag() bool   { return v.bool }

// Load returns the defaults overridden by the environment.
func Load() (Config, error) {
	c := Default()
	err := c.FromEnv(os.Environ())
	return c, err
}

// Print writes the effective configuration with secrets masked.
func (c *Config) Print(w io.Writer) {
	width := 0
	for _, s := range settings {
		width = max(width, len(s.env))
	}
	for _, s := range settings {
		v := s.get(c)
		if s.secret && v != "" {
			v = mask(s.env, v)
		}
		fmt.Fprintf(w, "%-*s  %s\n", width, s.env, v)
	}
}

func mask(env, v string) string {
	if env == "WARD_NATS_URL" {
		var out []string
		for _, part := range strings.Split(v, ",") {
			u, err := url.Parse(strings.TrimSpace(part))
			if err != nil {
				return "(set, hidden)"
			}
			if u.User != nil {
				u.User = url.User("xxxxx")
			}
			out = append(out, u.Redacted())
		}
		return strings.Join(out, ",")
	}
	if env == "WARD_DATABASE_URL" || env == "WARD_REDIS_URL" {
		if u, err := url.Parse(v); err == nil {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
			}
			return u.Redacted()
		}
	}
	return "(set, hidden)"
}
