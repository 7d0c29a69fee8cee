package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

// Identity writes of a unit: users and their login state, tokens, clients,
// authorization codes and keys, applied inside the batch transaction.

// applyUnitRows writes the identity parts of one unit whose preconditions
// held.
func (db *DB) applyUnitRows(ctx context.Context, tx *sql.Tx, u *store.Unit) (err error) {
	if err = db.applyUsers(ctx, tx, u); err != nil {
		return err
	}
	if err = db.applyTokens(ctx, tx, u); err != nil {
		return err
	}
	q := db.d.Placeholders
	if err = db.applyIdentity(ctx, tx, &u.IdentityChange); err != nil {
		return err
	}
	if k := u.NewKey; k != nil {
		if _, err = tx.ExecContext(ctx, q(`INSERT INTO keys (id, purpose, tenant, wrapped, created) VALUES (?, ?, ?, ?, ?)`),
			k.ID, k.Purpose, k.Tenant, k.Wrapped, k.Created.UnixMicro()); err != nil {
			return fmt.Errorf("insert key: %w", err)
		}
	}
	return nil
}

// applyUsers creates and changes users.
func (db *DB) applyUsers(ctx context.Context, tx *sql.Tx, u *store.Unit) (err error) {
	q := db.d.Placeholders
	if nu := u.NewUser; nu != nil {
		if _, err = tx.ExecContext(ctx, q(`INSERT INTO users (id, tenant, username, role, password_hash, created, disabled, practitioner, patient, clearances) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			nu.ID, nu.Tenant, nu.Username, nu.Role, nu.PasswordHash, nu.Created.UnixMicro(), boolInt(nu.Disabled), nu.Practitioner, nu.Patient, strings.Join(nu.Clearances, ",")); err != nil {
			return fmt.Errorf("insert user: %w", err)
		}
	}
	if l := u.Login; l != nil {
		var until int64
		if !l.LockedUntil.IsZero() {
			until = l.LockedUntil.UnixMicro()
		}
		if _, err = tx.ExecContext(ctx, q(`UPDATE users SET failed_logins = ?, locked_until = ? WHERE id = ?`), l.FailedLogins, until, l.UserID); err != nil {
			return fmt.Errorf("update login state: %w", err)
		}
		if l.TOTPLastStep != 0 {
			if _, err = tx.ExecContext(ctx, q(`UPDATE users SET totp_last_step = ? WHERE id = ?`), l.TOTPLastStep, l.UserID); err != nil {
				return fmt.Errorf("update login state: %w", err)
			}
		}
	}
	if e := u.TOTP; e != nil {
		var secret any
		if e.Sealed != nil {
			secret = e.Sealed
		}
		if _, err = tx.ExecContext(ctx, q(`UPDATE users SET totp_secret = ?, totp_last_step = 0 WHERE id = ?`), secret, e.UserID); err != nil {
			return fmt.Errorf("enroll TOTP: %w", err)
		}
	}
	if up := u.UpdateUser; up != nil {
		if up.Disabled != nil {
			if _, err = tx.ExecContext(ctx, q(`UPDATE users SET disabled = ? WHERE id = ?`), boolInt(*up.Disabled), up.UserID); err != nil {
				return fmt.Errorf("update user: %w", err)
			}
		}
		if up.PasswordHash != "" {
			if _, err = tx.ExecContext(ctx, q(`UPDATE users SET password_hash = ?, failed_logins = 0, locked_until = 0 WHERE id = ?`), up.PasswordHash, up.UserID); err != nil {
				return fmt.Errorf("update user: %w", err)
			}
		}
	}
	return nil
}

// applyTokens writes refresh tokens, revocations, clients and client
// assertion ids.
func (db *DB) applyTokens(ctx context.Context, tx *sql.Tx, u *store.Unit) (err error) {
	q := db.d.Placeholders
	if id := u.UseRefresh; id != "" {
		if _, err = tx.ExecContext(ctx, q(`UPDATE refresh_tokens SET used = 1 WHERE id = ?`), id); err != nil {
			return fmt.Errorf("use refresh token: %w", err)
		}
	}
	if f := u.RevokeFamily; f != "" {
		if _, err = tx.ExecContext(ctx, q(`UPDATE refresh_tokens SET revoked = 1 WHERE family = ?`), f); err != nil {
			return fmt.Errorf("revoke refresh family: %w", err)
		}
	}
	if rt := u.NewRefresh; rt != nil {
		if _, err = tx.ExecContext(ctx, q(`DELETE FROM refresh_tokens WHERE expires < ?`), time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("purge refresh tokens: %w", err)
		}
		if _, err = tx.ExecContext(ctx, q(`INSERT INTO refresh_tokens (id, family, user_id, tenant, scope, expires, patient, encounter, client_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			rt.ID, rt.Family, rt.UserID, rt.Tenant, rt.Scope, rt.Expires.UnixMicro(), rt.Patient, rt.Encounter, rt.ClientID); err != nil {
			return fmt.Errorf("store refresh token: %w", err)
		}
	}
	if rv := u.Revoke; rv != nil {
		if _, err = tx.ExecContext(ctx, q(`DELETE FROM revoked_tokens WHERE expires < ?`), time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("purge revocations: %w", err)
		}
		if _, err = tx.ExecContext(ctx, q(`INSERT INTO revoked_tokens (jti, expires) VALUES (?, ?) ON CONFLICT (jti) DO NOTHING`), rv.JTI, rv.Expires.UnixMicro()); err != nil {
			return fmt.Errorf("revoke token: %w", err)
		}
	}
	if c := u.NewClient; c != nil {
		if _, err = tx.ExecContext(ctx, q(`INSERT INTO clients (id, tenant, jwks, scope, created, disabled, redirect_uris, secret_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
			c.ID, c.Tenant, c.JWKS, c.Scope, c.Created.UnixMicro(), boolInt(c.Disabled), strings.Join(c.RedirectURIs, " "), c.SecretHash); err != nil {
			return fmt.Errorf("insert client: %w", err)
		}
	}
	if jt := u.UseJTI; jt != nil {
		if _, err = tx.ExecContext(ctx, q(`DELETE FROM client_jtis WHERE expires < ?`), time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("purge jtis: %w", err)
		}
		if _, err = tx.ExecContext(ctx, q(`INSERT INTO client_jtis (client_id, jti, expires) VALUES (?, ?, ?)`), jt.ClientID, jt.JTI, jt.Expires.UnixMicro()); err != nil {
			return fmt.Errorf("insert jti: %w", err)
		}
	}
	return nil
}
