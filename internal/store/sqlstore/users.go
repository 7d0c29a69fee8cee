package sqlstore

// Identity reads: users, refresh tokens, revocations, clients and keys.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

// UserByName finds a user of a tenant.
func (db *DB) UserByName(ctx context.Context, tenant, username string) (*store.User, error) {
	return db.user(ctx, `tenant = ? AND username = ?`, tenant, username)
}

// UserByID finds a user by id.
func (db *DB) UserByID(ctx context.Context, id string) (*store.User, error) {
	return db.user(ctx, `id = ?`, id)
}

func (db *DB) user(ctx context.Context, where string, args ...any) (*store.User, error) {
	u := &store.User{}
	var created, lockedUntil int64
	var disabled int
	var clearances string
	err := db.read.QueryRowContext(ctx, db.d.Placeholders(`SELECT id, tenant, username, role, password_hash, created, disabled, failed_logins, locked_until, totp_secret, totp_last_step, practitioner, patient, clearances FROM users WHERE `+where), args...).
		Scan(&u.ID, &u.Tenant, &u.Username, &u.Role, &u.PasswordHash, &created, &disabled, &u.FailedLogins, &lockedUntil, &u.TOTPSecret, &u.TOTPLastStep, &u.Practitioner, &u.Patient, &clearances)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read user: %v", store.ErrUnavailable, err)
	}
	u.Created = time.UnixMicro(created).UTC()
	u.Disabled = disabled != 0
	if clearances != "" {
		u.Clearances = strings.Split(clearances, ",")
	}
	if lockedUntil != 0 {
		u.LockedUntil = time.UnixMicro(lockedUntil).UTC()
	}
	return u, nil
}

// Users lists a tenant's users by username (password hashes included: the
// caller decides what to show).
func (db *DB) Users(ctx context.Context, tenant string) ([]store.User, error) {
	rows, err := db.read.QueryContext(ctx, db.d.Placeholders(`SELECT id, tenant, username, role, created, disabled, failed_logins, locked_until, totp_secret IS NOT NULL, practitioner, patient, clearances FROM users WHERE tenant = ? ORDER BY username`), tenant)
	if err != nil {
		return nil, fmt.Errorf("%w: list users: %v", store.ErrUnavailable, err)
	}
	defer rows.Close()
	var out []store.User
	for rows.Next() {
		var u store.User
		var created, locked int64
		var disabled int
		var totp bool
		var clearances string
		if err := rows.Scan(&u.ID, &u.Tenant, &u.Username, &u.Role, &created, &disabled, &u.FailedLogins, &locked, &totp, &u.Practitioner, &u.Patient, &clearances); err != nil {
			return nil, fmt.Errorf("%w: scan user: %v", store.ErrUnavailable, err)
		}
		if clearances != "" {
			u.Clearances = strings.Split(clearances, ",")
		}
		u.Created = time.UnixMicro(created).UTC()
		u.Disabled = disabled != 0
		if locked != 0 {
			u.LockedUntil = time.UnixMicro(locked).UTC()
		}
		if totp {
			u.TOTPSecret = []byte{} // enrolled; the secret itself is not read here
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// RefreshByID finds a refresh token by the hash of its value.
func (db *DB) RefreshByID(ctx context.Context, id string) (*store.Refresh, error) {
	r := &store.Refresh{}
	var exp int64
	var used, revoked int
	err := db.read.QueryRowContext(ctx, db.d.Placeholders(`SELECT id, family, user_id, tenant, scope, expires, used, revoked, patient, encounter, client_id FROM refresh_tokens WHERE id = ?`), id).
		Scan(&r.ID, &r.Family, &r.UserID, &r.Tenant, &r.Scope, &exp, &used, &revoked, &r.Patient, &r.Encounter, &r.ClientID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read refresh token: %v", store.ErrUnavailable, err)
	}
	r.Expires = time.UnixMicro(exp).UTC()
	r.Used, r.Revoked = used != 0, revoked != 0
	return r, nil
}

// Revoked lists unexpired revoked token ids.
func (db *DB) Revoked(ctx context.Context) ([]string, error) {
	rows, err := db.read.QueryContext(ctx, db.d.Placeholders(`SELECT jti FROM revoked_tokens WHERE expires >= ?`), time.Now().UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("%w: list revocations: %v", store.ErrUnavailable, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var j string
		if err := rows.Scan(&j); err != nil {
			return nil, fmt.Errorf("%w: scan revocation: %v", store.ErrUnavailable, err)
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// DisabledSubjects lists disabled users' ids and "client/"+id of disabled
// clients (the subjects of their tokens).
func (db *DB) DisabledSubjects(ctx context.Context) ([]string, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT id FROM users WHERE disabled <> 0 UNION ALL SELECT 'client/' || id FROM clients WHERE disabled <> 0`)
	if err != nil {
		return nil, fmt.Errorf("%w: list disabled subjects: %v", store.ErrUnavailable, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("%w: scan disabled subject: %v", store.ErrUnavailable, err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// ClientByID finds a registered client.
func (db *DB) ClientByID(ctx context.Context, id string) (*store.Client, error) {
	c := &store.Client{}
	var created int64
	var disabled int
	var redirects string
	err := db.read.QueryRowContext(ctx, db.d.Placeholders(`SELECT id, tenant, jwks, scope, created, disabled, redirect_uris, secret_hash, launch_uri FROM clients WHERE id = ?`), id).
		Scan(&c.ID, &c.Tenant, &c.JWKS, &c.Scope, &created, &disabled, &redirects, &c.SecretHash, &c.LaunchURI)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read client: %v", store.ErrUnavailable, err)
	}
	c.Created = time.UnixMicro(created).UTC()
	c.Disabled = disabled != 0
	c.RedirectURIs = strings.Fields(redirects)
	return c, nil
}

// Keys returns the keys with a purpose, oldest first.
func (db *DB) Keys(ctx context.Context, purpose string) ([]store.Key, error) {
	return db.keys(ctx, `SELECT id, purpose, tenant, wrapped, created, kek, scope, version, state FROM keys WHERE purpose = ? AND state <> 'destroyed' AND scope NOT LIKE 'patient/%' ORDER BY created, id`, purpose)
}

// Key returns one key by id, a destroyed one too.
func (db *DB) Key(ctx context.Context, id string) (*store.Key, error) {
	ks, err := db.keys(ctx, `SELECT id, purpose, tenant, wrapped, created, kek, scope, version, state FROM keys WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if len(ks) == 0 {
		return nil, fmt.Errorf("%w: key %s", store.ErrNotFound, id)
	}
	return &ks[0], nil
}

// KeysByID returns the keys with these ids that exist, destroyed ones
// too, in one query (the erasure fence reads a search page's patient
// keys at once).
func (db *DB) KeysByID(ctx context.Context, ids []string) ([]store.Key, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	marks := strings.Repeat("?, ", len(ids)-1) + "?"
	return db.keys(ctx, `SELECT id, purpose, tenant, wrapped, created, kek, scope, version, state FROM keys WHERE id IN (`+marks+`)`, args...)
}

// KeysAfter returns at most limit keys with a purpose in id order after
// afterID.
func (db *DB) KeysAfter(ctx context.Context, purpose, afterID string, limit int) ([]store.Key, error) {
	return db.keys(ctx, `SELECT id, purpose, tenant, wrapped, created, kek, scope, version, state FROM keys WHERE purpose = ? AND id > ? AND state <> 'destroyed' ORDER BY id LIMIT ?`, purpose, afterID, limit)
}

// WrappedAfter is KeysAfter with only ID, KEK and Wrapped read.
func (db *DB) WrappedAfter(ctx context.Context, purpose, afterID string, limit int) ([]store.Key, error) {
	rows, err := db.read.QueryContext(ctx, db.d.Placeholders(`SELECT id, kek, wrapped FROM keys WHERE purpose = ? AND id > ? AND state <> 'destroyed' ORDER BY id LIMIT ?`), purpose, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("%w: read keys: %v", store.ErrUnavailable, err)
	}
	defer rows.Close()
	out := make([]store.Key, 0, limit)
	for rows.Next() {
		var k store.Key
		if err := rows.Scan(&k.ID, &k.KEK, &k.Wrapped); err != nil {
			return nil, fmt.Errorf("%w: scan key: %v", store.ErrUnavailable, err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: read keys: %v", store.ErrUnavailable, err)
	}
	return out, nil
}

func (db *DB) keys(ctx context.Context, query string, args ...any) ([]store.Key, error) {
	// Through the statement cache: a new patient's first write looks its
	// key up here, once per create.
	rows, err := db.query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%w: read keys: %v", store.ErrUnavailable, err)
	}
	defer rows.Close()
	var out []store.Key
	for rows.Next() {
		var k store.Key
		var created int64
		if err := rows.Scan(&k.ID, &k.Purpose, &k.Tenant, &k.Wrapped, &created, &k.KEK, &k.Scope, &k.Version, &k.State); err != nil {
			return nil, fmt.Errorf("%w: scan key: %v", store.ErrUnavailable, err)
		}
		k.Created = time.UnixMicro(created).UTC()
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: read keys: %v", store.ErrUnavailable, err)
	}
	return out, nil
}
