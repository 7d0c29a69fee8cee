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

// The parts of a unit (store.Part): users and their login state, tokens,
// tenants, clients, authorization codes, launches and keys, checked and
// applied inside the batch transaction, grouped by aggregate.

// checkParts verifies the preconditions of a unit's parts.
func (db *DB) checkParts(ctx context.Context, tx *sql.Tx, parts []store.Part) error {
	for _, p := range parts {
		if err := db.checkPart(ctx, tx, p); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) checkPart(ctx context.Context, tx *sql.Tx, p store.Part) error {
	switch p := p.(type) {
	// Users.
	case store.NewUser:
		return db.absent(ctx, tx, "username already exists", `SELECT 1 FROM users WHERE tenant = ? AND username = ?`, p.User.Tenant, p.User.Username)
	case *store.UserUpdate:
		return db.present(ctx, tx, "no such user", `SELECT 1 FROM users WHERE id = ?`, p.UserID)
	case *store.LoginState, *store.TOTPEnrollment:
		return nil
	// Tokens.
	case store.UseRefresh:
		var used, revoked int
		err := tx.QueryRowContext(ctx, db.d.Placeholders(`SELECT used, revoked FROM refresh_tokens WHERE id = ?`), p.ID).Scan(&used, &revoked)
		if errors.Is(err, sql.ErrNoRows) || err == nil && (used != 0 || revoked != 0) {
			return fmt.Errorf("%w: refresh token unknown, used or revoked", store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("check refresh token: %w", err)
		}
		return nil
	case store.UseJTI:
		return db.absent(ctx, tx, "client assertion id already used", `SELECT 1 FROM client_jtis WHERE client_id = ? AND jti = ?`, p.ClientID, p.JTI)
	case store.NewRefresh, store.RevokeFamily, store.RevokeToken:
		return nil
	// Tenants, clients, codes and launches.
	case store.NewTenant:
		return db.absent(ctx, tx, "tenant already exists", `SELECT 1 FROM tenants WHERE id = ?`, p.Tenant.ID)
	case store.NewClient:
		return db.absent(ctx, tx, "client id already registered", `SELECT 1 FROM clients WHERE id = ?`, p.Client.ID)
	case *store.ClientUpdate:
		return db.present(ctx, tx, "no such client", `SELECT 1 FROM clients WHERE id = ?`, p.ClientID)
	case *store.CodeUse:
		return db.unusedFresh(ctx, tx, "authorization code", `SELECT used, expires FROM auth_codes WHERE id = ?`, p.ID)
	case store.UseLaunch:
		return db.unusedFresh(ctx, tx, "launch context", `SELECT used, expires FROM launch_contexts WHERE id = ?`, p.ID)
	case store.NewCode, store.NewLaunch, store.Outbox, store.SubscriptionOwner, store.PutGrant:
		return nil
	case store.RevokeGrant:
		return db.present(ctx, tx, "no such grant", `SELECT 1 FROM app_grants WHERE user_id = ? AND client_id = ?`, p.UserID, p.ClientID)
	case store.NewWebhook:
		return db.absent(ctx, tx, "webhook id already exists", `SELECT 1 FROM webhooks WHERE id = ?`, p.Hook.ID)
	case store.RemoveWebhook:
		return db.present(ctx, tx, "no such webhook", `SELECT 1 FROM webhooks WHERE id = ?`, p.ID)
	// Keys.
	case store.SaveCursor:
		if !p.Guarded {
			return nil
		}
		var at int64
		err := tx.QueryRowContext(ctx, db.d.Placeholders(`SELECT seq FROM ledger_cursors WHERE name = ?`), p.Name).Scan(&at)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("check ledger cursor: %w", err)
		}
		if at != p.From {
			return fmt.Errorf("%w: ledger cursor %s moved", store.ErrConflict, p.Name)
		}
		return nil
	case store.NewKey:
		return db.absent(ctx, tx, "key "+p.Key.ID+" already exists", qKeyExists, p.Key.ID)
	case store.RewrapKey, store.RetireKey, store.DestroyKey, store.ResealVersion:
		return nil
	case store.SetHold:
		return db.absent(ctx, tx, "the patient is already under a legal hold", `SELECT 1 FROM legal_holds WHERE tenant = ? AND patient = ?`, p.Tenant, p.Patient)
	case store.ReleaseHold:
		return db.present(ctx, tx, "the patient is under no legal hold", `SELECT 1 FROM legal_holds WHERE tenant = ? AND patient = ?`, p.Tenant, p.Patient)
	case store.ErasePatient:
		if err := db.absent(ctx, tx, "held", `SELECT 1 FROM legal_holds WHERE tenant = ? AND patient = ?`, p.Tenant, p.Patient); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return store.ErrHeld
			}
			return err
		}
		return nil
	}
	return fmt.Errorf("unknown unit part %T", p)
}

// absent fails with ErrConflict (why) if query finds a row.
func (db *DB) absent(ctx context.Context, tx *sql.Tx, why, query string, args ...any) error {
	var one int
	err := db.txQueryRow(ctx, tx, query, args...).Scan(&one)
	if err == nil {
		return fmt.Errorf("%w: %s", store.ErrConflict, why)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("check %s: %w", why, err)
	}
	return nil
}

// present fails with ErrConflict (why) if query finds no row.
func (db *DB) present(ctx context.Context, tx *sql.Tx, why, query string, args ...any) error {
	var one int
	err := db.txQueryRow(ctx, tx, query, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %s", store.ErrConflict, why)
	}
	if err != nil {
		return fmt.Errorf("check %s: %w", why, err)
	}
	return nil
}

// unusedFresh fails with ErrConflict if the used-once row query selects
// (used, expires) of is unknown, used or expired.
func (db *DB) unusedFresh(ctx context.Context, tx *sql.Tx, what, query, id string) error {
	var used int
	var exp int64
	err := tx.QueryRowContext(ctx, db.d.Placeholders(query), id).Scan(&used, &exp)
	if errors.Is(err, sql.ErrNoRows) || err == nil && (used != 0 || exp < time.Now().UnixMicro()) {
		return fmt.Errorf("%w: %s unknown, used or expired", store.ErrConflict, what)
	}
	if err != nil {
		return fmt.Errorf("check %s: %w", what, err)
	}
	return nil
}

// applyParts writes the parts of one unit whose preconditions held, in
// order.
func (db *DB) applyParts(ctx context.Context, tx *sql.Tx, parts []store.Part) error {
	// A KEK rotation re-wraps thousands of keys a unit: their statement
	// is prepared once (parsing it dominated each exec).
	var rewrap, resealV *sql.Stmt
	defer func() {
		for _, st := range []*sql.Stmt{rewrap, resealV} {
			if st != nil {
				st.Close()
			}
		}
	}()
	for _, p := range parts {
		var err error
		switch p.(type) {
		case store.NewUser, *store.LoginState, *store.TOTPEnrollment, *store.UserUpdate:
			err = db.applyUser(ctx, tx, p)
		case store.NewRefresh, store.UseRefresh, store.RevokeFamily, store.RevokeToken, store.UseJTI:
			err = db.applyToken(ctx, tx, p)
		case store.SaveCursor:
			c := p.(store.SaveCursor)
			err = db.exec(ctx, tx, "save ledger cursor", `INSERT INTO ledger_cursors (name, seq, state) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, state = excluded.state`,
				c.Name, c.Seq, nonNil(c.State))
		case store.Outbox:
			// Appended for the whole batch by commitBatch (outboxEvents).
		case store.NewWebhook:
			h := p.(store.NewWebhook).Hook
			err = db.exec(ctx, tx, "insert webhook", `INSERT INTO webhooks (id, tenant, url, secret, types, created) VALUES (?, ?, ?, ?, ?, ?)`,
				h.ID, h.Tenant, h.URL, h.Secret, strings.Join(h.Types, ","), h.Created.UnixMicro())
		case store.SubscriptionOwner:
			o := p.(store.SubscriptionOwner)
			err = db.exec(ctx, tx, "record subscription owner", `INSERT INTO subscription_owners (tenant, id, owner, updated) VALUES (?, ?, ?, ?) ON CONFLICT (tenant, id) DO UPDATE SET owner = excluded.owner, updated = excluded.updated`,
				o.Tenant, o.ID, o.Owner, o.At.UnixMicro())
		case store.RemoveWebhook:
			err = db.exec(ctx, tx, "delete webhook", `DELETE FROM webhooks WHERE id = ?`, p.(store.RemoveWebhook).ID)
		case store.NewKey:
			k := p.(store.NewKey).Key
			scope, version := k.Scope, k.Version
			if scope == "" {
				scope = "tenant"
			}
			if version == 0 {
				version = 1
			}
			err = db.exec(ctx, tx, "insert key", qInsertKey,
				k.ID, k.Purpose, k.Tenant, k.Wrapped, k.Created.UnixMicro(), k.KEK, scope, version)
		case store.RewrapKey:
			k := p.(store.RewrapKey)
			if rewrap == nil {
				if rewrap, err = tx.PrepareContext(ctx, db.d.Placeholders(`UPDATE keys SET wrapped = ?, kek = ? WHERE id = ? AND wrapped = ?`)); err != nil {
					return fmt.Errorf("rewrap key: %w", err)
				}
			}
			if _, err = rewrap.ExecContext(quick(ctx), k.New, k.KEK, k.ID, k.Old); err != nil {
				err = fmt.Errorf("rewrap key: %w", err)
			}
		case store.SetHold:
			h := p.(store.SetHold)
			err = db.exec(ctx, tx, "set legal hold", `INSERT INTO legal_holds (tenant, patient, reason, created) VALUES (?, ?, ?, ?)`, h.Tenant, h.Patient, h.Reason, h.At.UnixMicro())
		case store.ReleaseHold:
			h := p.(store.ReleaseHold)
			err = db.exec(ctx, tx, "release legal hold", `DELETE FROM legal_holds WHERE tenant = ? AND patient = ?`, h.Tenant, h.Patient)
		case store.ErasePatient:
			err = db.eraseIndex(ctx, tx, p.(store.ErasePatient))
		case store.RetireKey:
			err = db.exec(ctx, tx, "retire key", `UPDATE keys SET state = ? WHERE id = ? AND state = ?`, store.KeyRetiring, p.(store.RetireKey).ID, store.KeyActive)
		case store.DestroyKey:
			// A tombstone, not a deletion: the id stays taken and the
			// write check (keyStates) refuses new bodies sealed under it.
			err = db.exec(ctx, tx, "destroy key", `UPDATE keys SET state = ?, wrapped = ? WHERE id = ?`, store.KeyDestroyed, []byte{}, p.(store.DestroyKey).ID)
		case store.ResealVersion:
			if resealV == nil {
				if resealV, err = db.prepareReseal(ctx, tx); err != nil {
					return err
				}
			}
			err = reseal(quick(ctx), resealV, p.(store.ResealVersion))
		default:
			err = db.applyIdentity(ctx, tx, p)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// quick is the context of a one-row statement by primary key that a
// rotation runs thousands of times a transaction. The driver watches a
// cancellable context with a goroutine and a progress handler per
// statement, a third of such a statement's cost; one this short cannot
// overrun, and the transaction around it still ends with ctx.
func quick(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// exec runs one statement of a part (what names it in the error).
func (db *DB) exec(ctx context.Context, tx *sql.Tx, what, query string, args ...any) error {
	if _, err := db.txExec(ctx, tx, query, args...); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// applyUser creates and changes users.
func (db *DB) applyUser(ctx context.Context, tx *sql.Tx, p store.Part) error {
	switch p := p.(type) {
	case store.NewUser:
		nu := p.User
		return db.exec(ctx, tx, "insert user", `INSERT INTO users (id, tenant, username, role, password_hash, created, disabled, practitioner, patient, clearances) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			nu.ID, nu.Tenant, nu.Username, nu.Role, nu.PasswordHash, nu.Created.UnixMicro(), boolInt(nu.Disabled), nu.Practitioner, nu.Patient, strings.Join(nu.Clearances, ","))
	case *store.LoginState:
		var until int64
		if !p.LockedUntil.IsZero() {
			until = p.LockedUntil.UnixMicro()
		}
		if err := db.exec(ctx, tx, "update login state", `UPDATE users SET failed_logins = ?, locked_until = ? WHERE id = ?`, p.FailedLogins, until, p.UserID); err != nil {
			return err
		}
		if p.TOTPLastStep != 0 {
			return db.exec(ctx, tx, "update login state", `UPDATE users SET totp_last_step = ? WHERE id = ?`, p.TOTPLastStep, p.UserID)
		}
	case *store.TOTPEnrollment:
		var secret any
		if p.Sealed != nil {
			secret = p.Sealed
		}
		return db.exec(ctx, tx, "enroll TOTP", `UPDATE users SET totp_secret = ?, totp_last_step = 0 WHERE id = ?`, secret, p.UserID)
	case *store.UserUpdate:
		if p.Disabled != nil {
			if err := db.exec(ctx, tx, "update user", `UPDATE users SET disabled = ? WHERE id = ?`, boolInt(*p.Disabled), p.UserID); err != nil {
				return err
			}
		}
		if p.PasswordHash != "" {
			return db.exec(ctx, tx, "update user", `UPDATE users SET password_hash = ?, failed_logins = 0, locked_until = 0 WHERE id = ?`, p.PasswordHash, p.UserID)
		}
	}
	return nil
}

// applyToken writes refresh tokens, revocations and client assertion ids.
func (db *DB) applyToken(ctx context.Context, tx *sql.Tx, p store.Part) error {
	now := time.Now().UnixMicro()
	switch p := p.(type) {
	case store.UseRefresh:
		return db.exec(ctx, tx, "use refresh token", `UPDATE refresh_tokens SET used = 1 WHERE id = ?`, p.ID)
	case store.RevokeFamily:
		return db.exec(ctx, tx, "revoke refresh family", `UPDATE refresh_tokens SET revoked = 1 WHERE family = ?`, p.Family)
	case store.NewRefresh:
		rt := p.Refresh
		if err := db.exec(ctx, tx, "purge refresh tokens", `DELETE FROM refresh_tokens WHERE expires < ?`, now); err != nil {
			return err
		}
		return db.exec(ctx, tx, "store refresh token", `INSERT INTO refresh_tokens (id, family, user_id, tenant, scope, expires, patient, encounter, client_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			rt.ID, rt.Family, rt.UserID, rt.Tenant, rt.Scope, rt.Expires.UnixMicro(), rt.Patient, rt.Encounter, rt.ClientID)
	case store.RevokeToken:
		if err := db.exec(ctx, tx, "purge revocations", `DELETE FROM revoked_tokens WHERE expires < ?`, now); err != nil {
			return err
		}
		return db.exec(ctx, tx, "revoke token", `INSERT INTO revoked_tokens (jti, expires) VALUES (?, ?) ON CONFLICT (jti) DO NOTHING`, p.JTI, p.Expires.UnixMicro())
	case store.UseJTI:
		if err := db.exec(ctx, tx, "purge jtis", `DELETE FROM client_jtis WHERE expires < ?`, now); err != nil {
			return err
		}
		return db.exec(ctx, tx, "insert jti", `INSERT INTO client_jtis (client_id, jti, expires) VALUES (?, ?, ?)`, p.ClientID, p.JTI, p.Expires.UnixMicro())
	}
	return nil
}

// applyIdentity writes tenants, clients, authorization codes and launch
// contexts.
func (db *DB) applyIdentity(ctx context.Context, tx *sql.Tx, p store.Part) error {
	// Codes and launches live minutes; a used or expired one is kept for a
	// day so that a replay is recognised as one (and revokes what the code
	// gave), then purged.
	dayAgo := time.Now().Add(-24 * time.Hour).UnixMicro()
	switch p := p.(type) {
	case store.NewTenant:
		return db.exec(ctx, tx, "insert tenant", `INSERT INTO tenants (id, created) VALUES (?, ?)`, p.Tenant.ID, p.Tenant.Created.UnixMicro())
	case store.NewClient:
		c := p.Client
		return db.exec(ctx, tx, "insert client", `INSERT INTO clients (id, tenant, jwks, scope, created, disabled, redirect_uris, secret_hash, launch_uri) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			c.ID, c.Tenant, c.JWKS, c.Scope, c.Created.UnixMicro(), boolInt(c.Disabled), strings.Join(c.RedirectURIs, " "), c.SecretHash, c.LaunchURI)
	case *store.ClientUpdate:
		return db.exec(ctx, tx, "update client", `UPDATE clients SET disabled = ? WHERE id = ?`, boolInt(p.Disabled), p.ClientID)
	case *store.CodeUse:
		var texp int64
		if !p.TokenExpires.IsZero() {
			texp = p.TokenExpires.UnixMicro()
		}
		return db.exec(ctx, tx, "use authorization code", `UPDATE auth_codes SET used = 1, token_id = ?, token_expires = ?, family = ? WHERE id = ?`, p.TokenID, texp, p.Family, p.ID)
	case store.UseLaunch:
		return db.exec(ctx, tx, "use launch context", `UPDATE launch_contexts SET used = 1 WHERE id = ?`, p.ID)
	case store.NewLaunch:
		l := p.Launch
		if err := db.exec(ctx, tx, "purge launch contexts", `DELETE FROM launch_contexts WHERE expires < ?`, dayAgo); err != nil {
			return err
		}
		return db.exec(ctx, tx, "store launch context", `INSERT INTO launch_contexts (id, tenant, user_id, client_id, patient, encounter, expires) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			l.ID, l.Tenant, l.UserID, l.ClientID, l.Patient, l.Encounter, l.Expires.UnixMicro())
	case store.PutGrant:
		g := p.Grant
		return db.exec(ctx, tx, "store grant", `INSERT INTO app_grants (tenant, user_id, client_id, scope, created) VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, created = excluded.created`,
			g.Tenant, g.UserID, g.ClientID, g.Scope, g.Created.UnixMicro())
	case store.RevokeGrant:
		return db.exec(ctx, tx, "revoke grant", `DELETE FROM app_grants WHERE user_id = ? AND client_id = ?`, p.UserID, p.ClientID)
	case store.NewCode:
		cd := p.Code
		if err := db.exec(ctx, tx, "purge authorization codes", `DELETE FROM auth_codes WHERE expires < ?`, dayAgo); err != nil {
			return err
		}
		return db.exec(ctx, tx, "store authorization code", `INSERT INTO auth_codes (id, client_id, redirect_uri, code_challenge, user_id, tenant, scope, expires, patient, encounter, ehr_launch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			cd.ID, cd.ClientID, cd.RedirectURI, cd.CodeChallenge, cd.UserID, cd.Tenant, cd.Scope, cd.Expires.UnixMicro(), cd.Patient, cd.Encounter, boolInt(cd.EHRLaunch))
	}
	return fmt.Errorf("unknown unit part %T", p)
}

// prepareReseal prepares the statement of a re-seal, once a unit: a
// data-key rotation re-seals hundreds of versions per unit.
func (db *DB) prepareReseal(ctx context.Context, tx *sql.Tx) (*sql.Stmt, error) {
	v, err := tx.PrepareContext(ctx, db.d.Placeholders(`UPDATE resource_versions SET body = ? WHERE tenant = ? AND type = ? AND id = ? AND version = ? AND body = ?`))
	if err != nil {
		return nil, fmt.Errorf("reseal version: %w", err)
	}
	return v, nil
}

// reseal replaces a version's body, the one copy of it (the current row
// names its version and holds no body).
func reseal(ctx context.Context, v *sql.Stmt, p store.ResealVersion) error {
	if _, err := v.ExecContext(ctx, p.New, p.Tenant, p.Type, p.ID, p.Version, p.Old); err != nil {
		return fmt.Errorf("reseal version: %w", err)
	}
	return nil
}

// eraseIndex deletes the index rows of an erased patient's resources,
// marks them deleted and overwrites the body of every stored version of
// them with e.Shredded (those still sealed under a tenant key too, which
// the key destruction would not make unreadable). Resources go by
// chunks of row values: a few statements for the lot.
func (db *DB) eraseIndex(ctx context.Context, tx *sql.Tx, e store.ErasePatient) error {
	q := db.d.Placeholders
	const chunk = 400
	var rids []int64
	for start := 0; start < len(e.Resources); start += chunk {
		refs := e.Resources[start:min(len(e.Resources), start+chunk)]
		args := make([]any, 0, 2+2*len(refs))
		args = append(args, e.Tenant)
		for _, r := range refs {
			args = append(args, r.Type, r.ID)
		}
		in := strings.TrimSuffix(strings.Repeat("(?, ?), ", len(refs)), ", ")
		rows, err := tx.QueryContext(ctx, q(`SELECT rid FROM resources WHERE tenant = ? AND (type, id) IN (VALUES `+in+`)`), args...)
		if err != nil {
			return fmt.Errorf("erase: find resources: %w", err)
		}
		for rows.Next() {
			var rid int64
			if err := rows.Scan(&rid); err != nil {
				rows.Close()
				return fmt.Errorf("erase: find resources: %w", err)
			}
			rids = append(rids, rid)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("erase: find resources: %w", err)
		}
		if err := db.exec(ctx, tx, "erase: shred versions", `UPDATE resource_versions SET body = ? WHERE body IS NOT NULL AND tenant = ? AND (type, id) IN (VALUES `+in+`)`, append([]any{e.Shredded}, args...)...); err != nil {
			return err
		}
	}
	if err := db.deleteIndexRows(ctx, tx, rids); err != nil {
		return err
	}
	// Deleted, so that no search lists them (a type scan needs no index
	// row) and a read answers 410 before it opens anything.
	for start := 0; start < len(rids); start += chunk {
		part := rids[start:min(len(rids), start+chunk)]
		args := make([]any, 0, len(part))
		for _, r := range part {
			args = append(args, r)
		}
		in := strings.TrimSuffix(strings.Repeat("?, ", len(part)), ", ")
		// The current row holds no body (each version's is stored once,
		// in resource_versions, shredded above).
		if err := db.exec(ctx, tx, "erase: mark deleted", `UPDATE resources SET deleted = 1 WHERE rid IN (`+in+`)`, args...); err != nil {
			return err
		}
	}
	return nil
}
