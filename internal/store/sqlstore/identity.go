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
	rows, err := db.read.QueryContext(ctx, db.d.Placeholders(`SELECT id, tenant, jwks, scope, created, disabled, redirect_uris, secret_hash, launch_uri FROM clients WHERE tenant = ? ORDER BY id`), tenant)
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
		if err := rows.Scan(&c.ID, &c.Tenant, &c.JWKS, &c.Scope, &created, &disabled, &redirects, &c.SecretHash, &c.LaunchURI); err != nil {
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
	var used, ehr int
	err := db.read.QueryRowContext(ctx, db.d.Placeholders(`SELECT id, client_id, redirect_uri, code_challenge, user_id, tenant, scope, expires, used, token_id, token_expires, family, patient, encounter, ehr_launch FROM auth_codes WHERE id = ?`), id).
		Scan(&c.ID, &c.ClientID, &c.RedirectURI, &c.CodeChallenge, &c.UserID, &c.Tenant, &c.Scope, &exp, &used, &c.TokenID, &texp, &c.Family, &c.Patient, &c.Encounter, &ehr)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read authorization code: %v", store.ErrUnavailable, err)
	}
	c.Expires = time.UnixMicro(exp).UTC()
	c.Used = used != 0
	c.EHRLaunch = ehr != 0
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

// GrantOf finds what a user allowed an app.
func (db *DB) GrantOf(ctx context.Context, userID, clientID string) (*store.Grant, error) {
	g := &store.Grant{}
	var created int64
	err := db.read.QueryRowContext(ctx, db.d.Placeholders(`SELECT tenant, user_id, client_id, scope, created FROM app_grants WHERE user_id = ? AND client_id = ?`), userID, clientID).
		Scan(&g.Tenant, &g.UserID, &g.ClientID, &g.Scope, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read grant: %v", store.ErrUnavailable, err)
	}
	g.Created = time.UnixMicro(created).UTC()
	return g, nil
}

// Grants lists a tenant's grants (of one user when userID is not "").
func (db *DB) Grants(ctx context.Context, tenant, userID string) ([]store.Grant, error) {
	q, args := `SELECT tenant, user_id, client_id, scope, created FROM app_grants WHERE tenant = ?`, []any{tenant}
	if userID != "" {
		q, args = q+` AND user_id = ?`, append(args, userID)
	}
	rows, err := db.read.QueryContext(ctx, db.d.Placeholders(q+` ORDER BY user_id, client_id`), args...)
	if err != nil {
		return nil, fmt.Errorf("%w: list grants: %v", store.ErrUnavailable, err)
	}
	defer rows.Close()
	var out []store.Grant
	for rows.Next() {
		var g store.Grant
		var created int64
		if err := rows.Scan(&g.Tenant, &g.UserID, &g.ClientID, &g.Scope, &created); err != nil {
			return nil, fmt.Errorf("%w: scan grant: %v", store.ErrUnavailable, err)
		}
		g.Created = time.UnixMicro(created).UTC()
		out = append(out, g)
	}
	return out, rows.Err()
}
