// Package store is Ward's storage contract: resource versions, the audit
// ledger, wrapped keys and identities, as one small interface per
// aggregate (Committer, Resources, Ledger, Identity, KeyReader) composed
// into Store, with two implementations (store/sqlite, the embedded
// default, and store/postgres). Problem maps its errors to problem classes;
// Recorder is the audit recorder over its units.
//
// A Unit is its resource versions (Writes), search index rewrites
// (Reindex), guards, audit records and a list of typed Parts, one small
// type per change, grouped by aggregate:
//   - users: NewUser, *LoginState, *TOTPEnrollment, *UserUpdate;
//   - tokens: NewRefresh, UseRefresh, RevokeFamily, RevokeToken, UseJTI;
//   - tenants, clients, codes and launches: NewTenant, NewClient,
//     *ClientUpdate, NewCode, *CodeUse, NewLaunch, UseLaunch, PutGrant, RevokeGrant;
//   - keys: NewKey, RewrapKey, RetireKey, DestroyKey, ResealVersion.
//
// A unit with nothing but audit records is records-only
// (Unit.RecordsOnly), which a store may commit faster.
//
// Guarantees every implementation keeps (proved by store/storetest):
//   - Commit is the only way to write, and a Unit commits whole or not at
//     all: its resource versions, its user or key rows and its audit records
//     land in one database transaction. An audit record is never dropped: if
//     the ledger cannot be written, nothing in the unit is written.
//   - Commit returns only after the transaction is durable.
//   - The audit ledger is one hash chain in commit order, even when several
//     processes write to the same database.
//   - Bodies are stored exactly as given; the store never sees plaintext PHI
//     (the records layer seals before it calls Commit).
//   - Every read is scoped by tenant in SQL.
package store

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/wardhealth/ward/internal/audit"
)

// Sentinel errors. Implementations wrap them with context; callers test
// with errors.Is.
var (
	// ErrNotFound is returned by reads when no row matches.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict is returned by Commit when a precondition of the unit does
	// not hold: a write's expected previous version is not the current one,
	// a username or key id is already taken. The unit's audit records are
	// still committed, with their outcome set to a failure.
	ErrConflict = errors.New("store: conflict")
	// ErrUnavailable is returned when the database cannot be written or read
	// (including the audit ledger). Nothing of the unit was committed.
	ErrUnavailable = errors.New("store: unavailable")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("store: closed")
	// ErrKeyRetired is a unit's error when one of its writes carries a
	// body sealed under a data key that is retiring or destroyed
	// (RetireKey, DestroyKey): the writer sealed under a key version it
	// had not learnt was replaced. Nothing of the unit is written but its
	// audit records (marked failed); the writer may seal again under the
	// current key and retry.
	ErrKeyRetired = errors.New("store: data key retired")
	// ErrHeld is a unit's error when it erases a patient under a legal
	// hold (ErasePatient). It is also ErrConflict.
	ErrHeld = fmt.Errorf("%w: the patient is under a legal hold", ErrConflict)
)

// Version is one stored version of a resource.
type Version struct {
	Tenant      string
	Type        string
	ID          string
	Version     int64
	LastUpdated time.Time
	Deleted     bool
	// Body is the sealed envelope of the resource JSON; nil when Deleted.
	Body []byte
	// Seq is the commit order of the version across the whole database.
	Seq int64
	// SealKey is a store's answer, from the statement that read the
	// version, about the key that sealed Body (nil: not read). A store
	// that reads it with the row spares the erasure fence its own read
	// of the key's state (keys.Manager.Observed).
	SealKey *SealKeyState
}

// SealKeyState is the state of a data key as read together with a
// version: ID as the database names it, State as stored (a store.Key's
// State) and Began, a moment no later than the start of the statement
// that read it (so no later than the snapshot it saw).
type SealKeyState struct {
	ID    string
	State string
	Began time.Time
}

// Write creates one new version of a resource.
type Write struct {
	Tenant string
	Type   string
	ID     string
	// Version is the version this write creates. It commits only if the
	// current version is Version-1 (0: the resource must not exist yet).
	Version     int64
	LastUpdated time.Time
	Deleted     bool
	Body        []byte
	// Index holds the search index rows of this version. They replace the
	// resource's previous rows in the same transaction; a deletion (or a
	// nil Index) leaves the resource with none.
	Index *Index
	// NewKey, when set, is the wrapped data key Body was sealed under,
	// created for this write (a patient's first key): it is stored in the
	// same transaction, so that no version is ever stored under a key
	// the database does not hold. The same key already stored is no
	// conflict; another key under its id is ErrConflict.
	NewKey *Key
}

// Index is the search index of one resource version, as computed by
// internal/search. The store keeps the rows as given and joins them to the
// resource's current row; it never interprets a hash.
type Index struct {
	// RefHash is the keyed hash of "Type/id" that references to this
	// resource carry in TokenRow.H.
	RefHash int64
	Tokens  []TokenRow
	Dates   []DateRow
	Numbers []NumberRow
	Strings []StringRow
	// Prefixes are the blinded strings of patient data (search_prefix).
	Prefixes []PrefixRow
}

// PrefixRow is one blinded string value's row of prefix hashes (see
// internal/search, "Blinded strings"): H is the keyed hash of a short
// prefix the row is found by, T the part of a name or address the value
// is (0 for a plain string), F the truncated keyed hashes of the longer
// prefixes (and of the exact value) that a search compares byte ranges of.
type PrefixRow struct {
	P int32
	T int32
	H int64
	F string
}

// TokenRow is a keyed hash of a token, reference or blinded value (H),
// with the keyed hash of a token's system (S, 0 if none), for parameter P.
type TokenRow struct {
	P int32
	S int32
	H int64
}

// DateRow is a closed range of Unix microseconds. K is 0, or for a
// composite the hash of its leading components.
type DateRow struct {
	P      int32
	K      int64
	Lo, Hi int64
}

// NumberRow is a number or quantity (U: hash of the unit, 0 if none).
type NumberRow struct {
	P      int32
	U      int32
	K      int64
	Lo, Hi float64
}

// StringRow is a normalized string kept in clear, for parameters whose
// values are not identifying (see internal/search).
type StringRow struct {
	P int32
	V string
}

// Reindex replaces the search index of a resource's current version
// without creating a version (ward reindex). An unknown or deleted
// resource is skipped.
type Reindex struct {
	Tenant, Type, ID string
	Index            *Index
}

// User is a login account. Username is staff identity, not PHI.
type User struct {
	ID           string
	Tenant       string
	Username     string
	Role         string
	PasswordHash string
	Created      time.Time
	Disabled     bool
	// FailedLogins counts consecutive failed logins; LockedUntil is when
	// the account accepts logins again (zero: not locked).
	FailedLogins int
	LockedUntil  time.Time
	// TOTPSecret is the sealed TOTP secret (nil: not enrolled);
	// TOTPLastStep the last time step accepted.
	TOTPSecret   []byte
	TOTPLastStep int64
	// Practitioner is the id of the Practitioner a physician or nurse is;
	// Patient the id of the Patient a user-role account is or acts for
	// ("" : not linked). Clearances are the security label codes the user
	// may see.
	Practitioner string
	Patient      string
	Clearances   []string
}

// LoginState sets a user's failed-login counter and lock, and (when not
// zero) the last TOTP time step accepted.
type LoginState struct {
	UserID       string
	FailedLogins int
	LockedUntil  time.Time
	TOTPLastStep int64
}

// UserUpdate changes an existing user: enable or disable it, or set a new
// password hash (which also clears any lockout).
type UserUpdate struct {
	UserID       string
	Disabled     *bool
	PasswordHash string
}

// TOTPEnrollment sets (or, with a nil secret, removes) a user's sealed TOTP
// secret.
type TOTPEnrollment struct {
	UserID string
	Sealed []byte
}

// Key is a wrapped or sealed key (a data key wrapped by the KEK, a signing
// key sealed by a data key). The store holds only the opaque bytes.
type Key struct {
	ID      string
	Purpose string
	Tenant  string
	Wrapped []byte
	Created time.Time
	// Scope and Version name a data key within its tenant ("tenant" and 1
	// unless set; a patient's scope later). KEK names the key-encryption
	// key version that wrapped it ("" : the key file of before versions
	// were recorded).
	Scope   string
	Version int64
	KEK     string
	// State is KeyActive or KeyRetiring; destroyed keys are not listed.
	State string
}

// Key states (Key.State). A retiring key still opens what it sealed, but
// no unit may write a new version sealed under it; a destroyed key is a
// tombstone (its wrapped form is gone, its id stays taken).
const (
	KeyActive    = "active"
	KeyRetiring  = "retiring"
	KeyDestroyed = "destroyed"
)

// Client is a SMART Backend Services client: it authenticates with a JWT
// signed by a key in its JWKS (public keys only).
type Client struct {
	ID       string
	Tenant   string
	JWKS     string
	Scope    string
	Created  time.Time
	Disabled bool
	// RedirectURIs are the registered redirect URIs of a public app
	// (authorization code + PKCE); empty for a backend-services client.
	RedirectURIs []string
	// SecretHash is the argon2id hash of a confidential app's client
	// secret; empty for public apps and key-authenticated clients.
	SecretHash string
	// LaunchURI is where an EHR launch opens the app (SMART launch_uri);
	// "" : the app is launched standalone only.
	LaunchURI string
}

// JTI is one use of a client assertion id; a second use of the same id by
// the same client is a conflict (replay).
type JTI struct {
	ClientID string
	JTI      string
	Expires  time.Time
}

// Refresh is a refresh token, known by the SHA-256 of its value.
type Refresh struct {
	ID      string // hex SHA-256 of the token
	Family  string
	UserID  string
	Tenant  string
	Scope   string
	Expires time.Time
	Used    bool
	Revoked bool
	// Patient and Encounter are the EHR launch context of the grant the
	// family descends from ("" : none).
	Patient, Encounter string
	// ClientID is the app the family was issued to ("" : the password
	// grant).
	ClientID string
}

// Unit is what one Commit writes, all or nothing.
type Unit struct {
	// Writes are the resource versions of the unit.
	Writes []Write
	// Reindex rewrites search index rows.
	Reindex []Reindex
	// Guards are search conditions re-checked inside the write
	// transaction, against every unit committed before this one: if a
	// guard's matches are not exactly its Match set, the unit fails with
	// ErrConflict (and the caller decides again from fresh reads). This is
	// what makes conditional create, update, delete and conditional
	// references atomic with their search.
	Guards []Guard
	// Parts are the unit's other changes (users, tokens, clients, tenants,
	// codes, launches, keys; see Part), applied in order.
	Parts []Part
	// Audit records are appended to the ledger in the same transaction. The
	// store assigns Seq, PrevHash and Hash. If a precondition fails, each
	// record's Outcome is raised to at least audit.OutcomeMinor and Detail
	// is set to "conflict" when it was empty.
	Audit []*audit.Record
}

// RecordsOnly says the unit holds ledger records and nothing else.
func (u *Unit) RecordsOnly() bool {
	return len(u.Writes) == 0 && len(u.Reindex) == 0 && len(u.Guards) == 0 && len(u.Parts) == 0
}

// Guard is a search (Where and Args as in SearchQuery; Limit and cursor
// are ignored) whose current, not deleted matches must be exactly Match.
type Guard struct {
	Query SearchQuery
	Match []Ref
}

// HistoryQuery selects versions newest first. Empty Type means every type
// of the tenant; empty ID means every resource of the type.
type HistoryQuery struct {
	Tenant string
	Type   string
	ID     string
	Since  time.Time // zero: no lower bound
	Before int64     // Seq cursor, exclusive; 0: from the newest
	Limit  int
	// Where are SQL conditions, ANDed, over the current row of each
	// version's resource (alias r, columns of the resources table, '?'
	// placeholders, as in SearchQuery), with their Args: a version is
	// listed when its resource's current row satisfies them. The tenant
	// and the other fields still apply.
	Where []string
	Args  []any
}

// ListQuery selects current, not deleted resources of one type in id order.
type ListQuery struct {
	Tenant string
	Type   string
	IDs    []string // empty: every id
	After  string   // id cursor, exclusive
	Limit  int
}

// SearchQuery is a search as the search package translated it: SQL
// conditions over the current row of a resource (alias r, columns of the
// resources table, '?' placeholders), sort keys and a keyset cursor. The
// store adds the tenant, type and not-deleted conditions itself, so no
// query can reach another tenant's rows or a deleted resource.
type SearchQuery struct {
	Tenant string
	// Types are the resource types searched (at least one).
	Types []string
	Where []string
	Args  []any
	// Order are the sort keys; the rid is always the last, ascending.
	Order []Order
	// After is the keyset cursor: the sort key values and rid of the last
	// hit of the previous page (len(Order)+1 values), or nil.
	After []any
	// Backward pages toward the start: After, when set, holds the keys
	// of the first hit of the page that follows, and Search returns the
	// Limit hits just before it (the last Limit hits when After is nil),
	// still in Order. A previous page costs what a next page does: the
	// same keyset seek, read the other way.
	Backward bool
	Limit    int
	// Drive, when set, is the one condition whose index rows list the
	// candidates (the others test each candidate). The store either joins
	// it, so that a page in rid order streams from the index and stops at
	// the limit, or tests it like a Where condition, as
	// r.rid IN (SELECT <Alias>.rid FROM <Table> <Alias> WHERE <Cond>).
	Drive *Drive
}

// Drive is an index table's rows, by a condition over its alias, that name
// a search's candidates by rid.
type Drive struct {
	Table, Alias, Cond string
	Args               []any
}

// Order is one sort key: a SQL expression over r that is never NULL.
type Order struct {
	Expr string
	Args []any
	Desc bool
}

// Hit is one search result: the current version, its rid and the values
// of its sort keys (for the next page's cursor).
type Hit struct {
	Version
	RID  int64
	Keys []any
}

// Ref names a resource.
type Ref struct{ Type, ID string }

// Store is the storage contract: the write path (Committer, with the audit
// recorder on top) and one reader per aggregate. A consumer declares the
// smallest of these it needs, or its own smaller interface, where it is
// used.
type Store interface {
	Committer
	Resources
	Ledger
	Cursors
	LedgerTree
	Witnessing
	LedgerSearch
	Identity
	KeyReader
	Close() error
}

// Resources reads resource versions, their current rows and the search
// index.
type Resources interface {
	Current(ctx context.Context, tenant, typ, id string) (*Version, error)
	Version(ctx context.Context, tenant, typ, id string, version int64) (*Version, error)
	History(ctx context.Context, q HistoryQuery) ([]Version, error)
	List(ctx context.Context, q ListQuery) ([]Version, error)

	// Search returns the current, not deleted resources that match q, in
	// q's order, at most q.Limit.
	Search(ctx context.Context, q SearchQuery) ([]Hit, error)
	// Count counts what Search would return without a limit or cursor.
	Count(ctx context.Context, q SearchQuery) (int64, error)
	// Exists reports, for each group of queries, whether any of them would
	// return a resource, all in one statement (the access layer asks
	// several questions about one patient at once). Limits, orders and
	// cursors are ignored.
	Exists(ctx context.Context, groups ...[]SearchQuery) ([]bool, error)
	// Refs returns the current, not deleted versions of the named
	// resources of a tenant (any order, unknown ones left out).
	Refs(ctx context.Context, tenant string, refs []Ref) ([]Version, error)
	// Resources lists current, not deleted resources of every tenant and
	// type in rid order after the rid given, for reindexing.
	Resources(ctx context.Context, afterRID int64, limit int) ([]Hit, error)
}

// Identity reads users, clients, refresh tokens, revocations, tenants,
// authorization codes and launch contexts.
type Identity interface {
	UserByName(ctx context.Context, tenant, username string) (*User, error)
	UserByID(ctx context.Context, id string) (*User, error)
	ClientByID(ctx context.Context, id string) (*Client, error)
	// RefreshByID finds a refresh token by the hash of its value.
	RefreshByID(ctx context.Context, id string) (*Refresh, error)
	// Revoked lists the ids of revoked tokens that have not expired.
	Revoked(ctx context.Context) ([]string, error)
	// DisabledSubjects lists the token subjects that are disabled: the
	// ids of disabled users and "client/" + the id of disabled clients.
	DisabledSubjects(ctx context.Context) ([]string, error)
	// Users lists a tenant's users by username.
	Users(ctx context.Context, tenant string) ([]User, error)
	IdentityReader
}

// KeyReader lists wrapped keys by purpose: all of them but the per-patient
// ones (scope PatientScopePrefix+id), oldest first, or a page of every key
// in id order after the id given (rotate-kek walks a million). Key reads
// one key by id, a destroyed one too (State KeyDestroyed, no wrapped
// form); an unknown id is ErrNotFound. WrappedAfter is KeysAfter with
// only ID, KEK and Wrapped set: what a re-wrap needs, read for a million
// keys at a third of the cost.
type KeyReader interface {
	Keys(ctx context.Context, purpose string) ([]Key, error)
	KeysAfter(ctx context.Context, purpose, afterID string, limit int) ([]Key, error)
	WrappedAfter(ctx context.Context, purpose, afterID string, limit int) ([]Key, error)
	Key(ctx context.Context, id string) (*Key, error)
}

// PatientScopePrefix starts the scope of a patient's data keys.
const PatientScopePrefix = "patient/"

// Ledger reads the audit ledger. Records are appended only through Commit,
// by the audit recorder.
type Ledger interface {
	// AuditHead is the stored head of the ledger (seq 0 when empty).
	AuditHead(ctx context.Context) (audit.Head, error)
	// AuditScan reads one snapshot of the ledger: fn gets the head and the
	// records with Seq > after in ascending Seq order as stored (nothing is
	// reordered or skipped for fn), so that a verifier can compare records
	// and head while writers keep appending. The iterator yields an error
	// and stops if the database fails mid-scan.
	AuditScan(ctx context.Context, after int64, fn func(head audit.Head, records iter.Seq2[*audit.Record, error]) error) error
}

// Explainer is implemented by stores that can show the database's plan for
// a translated search (both SQL stores do). Tests use it to check that the
// benchmarked searches use indexes; `ward explain` shows it to operators.
type Explainer interface {
	// Explain returns the plan of q's page query (or of its count), one
	// line per plan node.
	Explain(ctx context.Context, q SearchQuery, o ExplainOptions) ([]string, error)
}

// ExplainOptions select what Explain shows.
type ExplainOptions struct {
	// Count explains the count query instead of the page query.
	Count bool
	// NoSeqScan asks a cost-based planner (PostgreSQL) to avoid sequential
	// scans, so that a test on a small table can see whether an index
	// could answer the query at all. SQLite ignores it.
	NoSeqScan bool
	// Generic explains the plan made without the statement's values, the
	// one a database that caches plans of prepared statements may reuse
	// for any values (PostgreSQL's generic plan). SQLite, which plans
	// every statement the same way whatever its values, ignores it.
	Generic bool
}

// Sizer is implemented by stores that can tell how much space the search
// index takes, for `ward stats` and the index-size benchmark.
type Sizer interface {
	// IndexSize returns, for every search index table, its bytes on disk
	// (indexes included) and row count, and how many of its rows belong
	// to current resources of type typ, with the number of such resources.
	IndexSize(ctx context.Context, typ string) (tables []TableSize, resources int64, err error)
}

// DiskSizer is implemented by stores that can tell what every table and
// index of the database takes on disk, for the disk budget test of issue
// #24 (bytes per created resource, by part).
type DiskSizer interface {
	// DiskUsage returns every table and index with its bytes on disk: on
	// SQLite the pages of its B-tree (slack included), on PostgreSQL the
	// relation with its TOAST and maps (tables) or the index alone.
	DiskUsage(ctx context.Context) ([]Relation, error)
}

// Relation is one table or index and its size.
type Relation struct {
	Table string // the table (itself for a table)
	Name  string // the table or index
	Bytes int64
}

// TableSize is one table's share of the search index.
type TableSize struct {
	Name    string
	Bytes   int64 // table and its indexes
	Rows    int64 // all rows
	RowsFor int64 // rows of resources of the asked type
}
