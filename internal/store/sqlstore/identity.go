package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

// checkIdentity verifies the preconditions of a unit's identity changes.
func (db *DB) checkIdentity(ctx context.Context, tx *sql.Tx, c *store.IdentityChange) error {
	q := db.d.Placeholders
	if t := c.NewTenant; t != nil {
		var one int
		err := tx.QueryRowContext(ctx, q(`SELECT 1 FROM tenants WHERE id = ?`), t.ID).Scan(&one)
		if err == nil {
			return fmt.Errorf("%w: tenant already exists", store.ErrConflict)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("check tenant: %w", err)
		}
	}
	if up := c.UpdateClient; up != nil {
		var one int
		err := tx.QueryRowContext(ctx, q(`SELECT 1 FROM clients WHERE id = ?`), up.ClientID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: no such client", store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("check client: %w", err)
		}
	}
	if c.UseCode != nil {
		var used int
		var exp int64
		err := tx.QueryRowContext(ctx, q(`SELECT used, expires FROM auth_codes WHERE id = ?`), c.UseCode.ID).Scan(&used, &exp)
		if errors.Is(err, sql.ErrNoRows) || err == nil && (used != 0 || exp < time.Now().UnixMicro()) {
			return fmt.Errorf("%w: authorization code unknown, used or expired", store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("check authorization code: %w", err)
		}
	}
	if id := c.UseLaunch; id != "" {
		var used int
		var exp int64
		err := tx.QueryRowContext(ctx, q(`SELECT used, expires FROM launch_contexts WHERE id = ?`), id).Scan(&used, &exp)
		if errors.Is(err, sql.ErrNoRows) || err == nil && (used != 0 || exp < time.Now().UnixMicro()) {
			return fmt.Errorf("%w: launch context unknown, used or expired", store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("check launch context: %w", err)
		}
	}
	return nil
}

// applyIdentity writes a unit's identity changes (preconditions checked).
func (db *DB) applyIdentity(ctx context.Context, tx *sql.Tx, c *store.IdentityChange) error {
	q := db.d.Placeholders
	if t := c.NewTenant; t != nil {
		if _, err := tx.ExecContext(ctx, q(`INSERT INTO tenants (id, created) VALUES (?, ?)`), t.ID, t.Created.UnixMicro()); err != nil {
			return fmt.Errorf("insert tenant: %w", err)
		}
	}
	if up := c.UpdateClient; up != nil {
		if _, err := tx.ExecContext(ctx, q(`UPDATE clients SET disabled = ? WHERE id = ?`), boolInt(up.Disabled), up.ClientID); err != nil {
			return fmt.Errorf("update client: %w", err)
		}
	}
	if cu := c.UseCode; cu != nil {
		var texp int64
		if !cu.TokenExpires.IsZero() {
			texp = cu.TokenExpires.UnixMicro()
		}
		if _, err := tx.ExecContext(ctx, q(`UPDATE auth_codes SET used = 1, token_id = ?, token_expires = ?, family = ? WHERE id = ?`), cu.TokenID, texp, cu.Family, cu.ID); err != nil {
			return fmt.Errorf("use authorization code: %w", err)
		}
	}
	if id := c.UseLaunch; id != "" {
		if _, err := tx.ExecContext(ctx, q(`UPDATE launch_contexts SET used = 1 WHERE id = ?`), id); err != nil {
			return fmt.Errorf("use launch context: %w", err)
		}
	}
	if l := c.NewLaunch; l != nil {
		if _, err := tx.ExecContext(ctx, q(`DELETE FROM launch_contexts WHERE expires < ?`), time.Now().Add(-24*time.Hour).UnixMicro()); err != nil {
			return fmt.Errorf("purge launch contexts: %w", err)
		}
		if _, err := tx.ExecContext(ctx, q(`INSERT INTO launch_contexts (id, tenant, user_id, client_id, patient, encounter, expires) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			l.ID, l.Tenant, l.UserID, l.ClientID, l.Patient, l.Encounter, l.Expires.UnixMicro()); err != nil {
			return fmt.Errorf("store launch context: %w", err)
		}
	}
	if cd := c.NewCode; cd != nil {
		// Codes live a minute; a used or expired one is kept for a day so
		// that a replay is recognised as one (and revokes what the code
		// gave), then purged.
		if _, err := tx.ExecContext(ctx, q(`DELETE FROM auth_codes WHERE expires < ?`), time.Now().Add(-24*time.Hour).UnixMicro()); err != nil {
			return fmt.Errorf("purge authorization codes: %w", err)
		}
		if _, err := tx.ExecContext(ctx, q(`INSERT INTO auth_codes (id, client_id, redirect_uri, code_challenge, user_id, tenant, scope, expires, patient, encounter) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			cd.ID, cd.ClientID, cd.RedirectURI, cd.CodeChallenge, cd.UserID, cd.Tenant, cd.Scope, cd.Expires.UnixMicro(), cd.Patient, cd.Encounter); err != nil {
			return fmt.Errorf("store authorization code: %w", err)
		}
	}
	return nil
}

// Tenants lists every tenant by id.
func (db *DB) Tenants(ctx context.Context) ([]store.Tenant, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT id, created FROM tenants ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("%w: list tenants: %v", store.ErrUnavailable, err)
	}
	defer rows.Close()
	var out []store.Tenant
	for rows.Next() {
		var t store.Tenant
		var created int64
		if err := rows.Scan(&t.ID, &created); err != nil {
			return nil, fmt.Errorf("%w: scan tenant: %v", store.ErrUnavailable, err)
		}
		t.Created = time.UnixMicro(created).UTC()
		out = append(out, t)
	}
	return out, rows.Err()
}

// TenantByID finds a tenant.
func (db *DB) TenantByID(ctx context.Context, id string) (*store.Tenant, error) {
	var created int64
	t := &store.Tenant{}
	err := db.read.QueryRowContext(ctx, db.d.Placeholders(`SELECT id, created FROM tenants WHERE id = ?`), id).Scan(&t.ID, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read tenant: %v", store.ErrUnavailable, err)
	}
	t.Created = time.UnixMicro(created).UTC()
	return t, nil
}

// Clients lists a tenant's clients by id.
func (db *DB) Clients(ctx context.Context, tenant string) ([]store.Client, error) {
	rows, err := db.read.QueryContext(ctx, db.d.Placeholders(`SELECT id, tenant, jwks, scope, created, disabled, redirect_uris, secret_hash FROM clients WHERE tenant = ? ORDER BY id`), tenant)
	if err != nil {
		return nil, fmt.Errorf("%w: list clients: %v", store.ErrUnavailable, err)
	}
	defer rows.Close()
	var out []store.Client
	for rows.Next() {
		var c store.Client
		var created int64
		var disabled int
		var redirects string
		if err := rows.Scan(&c.ID, &c.Tenant, &c.JWKS, &c.Scope, &created, &disabled, &redirects, &c.SecretHash); err != nil {
			return nil, fmt.Errorf("%w: scan client: %v", store.ErrUnavailable, err)
		}
		c.Created = time.UnixMicro(created).UTC()
		c.Disabled = disabled != 0
		c.RedirectURIs = strings.Fields(redirects)
		out = append(out, c)
	}
	return out, rows.Err()
}

// CodeByID finds an authorization code by the hash of its value.
func (db *DB) CodeByID(ctx context.Context, id string) (*store.Code, error) {
	c := &store.Code{}
	var exp, texp int64
	var used int
	err := db.read.QueryRowContext(ctx, db.d.Placeholders(`SELECT id, client_id, redirect_uri, code_challenge, user_id, tenant, scope, expires, used, token_id, token_expires, family, patient, encounter FROM auth_codes WHERE id = ?`), id).
		Scan(&c.ID, &c.ClientID, &c.RedirectURI, &c.CodeChallenge, &c.UserID, &c.Tenant, &c.Scope, &exp, &used, &c.TokenID, &texp, &c.Family, &c.Patient, &c.Encounter)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read authorization code: %v", store.ErrUnavailable, err)
	}
	c.Expires = time.UnixMicro(exp).UTC()
	c.Used = used != 0
	if texp != 0 {
		c.TokenExpires = time.UnixMicro(texp).UTC()
	}
	return c, nil
}

// LaunchByID finds an EHR launch context by the hash of its value.
func (db *DB) LaunchByID(ctx context.Context, id string) (*store.Launch, error) {
	l := &store.Launch{}
	var exp int64
	var used int
	err := db.read.QueryRowContext(ctx, db.d.Placeholders(`SELECT id, tenant, user_id, client_id, patient, encounter, expires, used FROM launch_contexts WHERE id = ?`), id).
		Scan(&l.ID, &l.Tenant, &l.UserID, &l.ClientID, &l.Patient, &l.Encounter, &exp, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read launch context: %v", store.ErrUnavailable, err)
	}
	l.Expires = time.UnixMicro(exp).UTC()
	l.Used = used != 0
	return l, nil
}
