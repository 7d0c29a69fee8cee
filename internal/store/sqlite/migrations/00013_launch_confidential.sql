-- +goose Up
-- Confidential apps (authorization code flow) authenticate at the token
-- endpoint with a client secret, stored only as its argon2id hash, or with
-- a JWKS (private_key_jwt, the existing jwks column).
ALTER TABLE clients ADD COLUMN secret_hash TEXT NOT NULL DEFAULT '';
-- SMART EHR launch contexts: the launch value is stored only as its
-- SHA-256; bound to the tenant, the user who created it and the app; used
-- once and short-lived. Patient and encounter are resource ids.
CREATE TABLE launch_contexts (
    id        TEXT PRIMARY KEY,
    tenant    TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    client_id TEXT NOT NULL,
    patient   TEXT NOT NULL,
    encounter TEXT NOT NULL DEFAULT '',
    expires   INTEGER NOT NULL,
    used      INTEGER NOT NULL DEFAULT 0
);
-- The launch context an authorization code and a refresh token carry.
ALTER TABLE auth_codes ADD COLUMN patient TEXT NOT NULL DEFAULT '';
ALTER TABLE auth_codes ADD COLUMN encounter TEXT NOT NULL DEFAULT '';
ALTER TABLE refresh_tokens ADD COLUMN patient TEXT NOT NULL DEFAULT '';
ALTER TABLE refresh_tokens ADD COLUMN encounter TEXT NOT NULL DEFAULT '';
-- The app a refresh token was issued to ('' : the password grant), so
-- that a confidential app authenticates to refresh.
ALTER TABLE refresh_tokens ADD COLUMN client_id TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE refresh_tokens DROP COLUMN client_id;
ALTER TABLE refresh_tokens DROP COLUMN encounter;
ALTER TABLE refresh_tokens DROP COLUMN patient;
ALTER TABLE auth_codes DROP COLUMN encounter;
ALTER TABLE auth_codes DROP COLUMN patient;
DROP TABLE launch_contexts;
ALTER TABLE clients DROP COLUMN secret_hash;
