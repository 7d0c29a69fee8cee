-- +goose Up
-- Tenants: users and clients belong to one; 'default' exists from the start.
CREATE TABLE tenants (
    id      TEXT   PRIMARY KEY,
    created INTEGER NOT NULL
);
INSERT INTO tenants (id, created) SELECT DISTINCT tenant, 0 FROM users WHERE tenant <> '';
INSERT INTO tenants (id, created) SELECT DISTINCT tenant, 0 FROM clients WHERE tenant <> '' AND tenant NOT IN (SELECT id FROM tenants);
INSERT INTO tenants (id, created) SELECT 'default', 0 WHERE NOT EXISTS (SELECT 1 FROM tenants WHERE id = 'default');
-- Public SMART apps (authorization code + PKCE) register redirect URIs
-- (space separated) instead of a JWKS.
ALTER TABLE clients ADD COLUMN redirect_uris TEXT NOT NULL DEFAULT '';
-- Authorization codes, stored only as SHA-256 of the code, bound to the
-- client, its redirect URI and the PKCE challenge; used once.
CREATE TABLE auth_codes (
    id             TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    tenant         TEXT NOT NULL,
    scope          TEXT NOT NULL,
    expires        INTEGER NOT NULL,
    used           INTEGER NOT NULL DEFAULT 0,
    -- What the exchange issued, revoked if the code is presented again.
    token_id       TEXT NOT NULL DEFAULT '',
    token_expires  INTEGER NOT NULL DEFAULT 0,
    family         TEXT NOT NULL DEFAULT ''
);

-- +goose Down
DROP TABLE auth_codes;
ALTER TABLE clients DROP COLUMN redirect_uris;
DROP TABLE tenants;
