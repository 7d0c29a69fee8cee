-- +goose Up
-- TOTP (RFC 6238): the shared secret, sealed under the system data key
-- (NULL: not enrolled), and the last time step accepted, so that a code is
-- never accepted twice.
ALTER TABLE users ADD COLUMN totp_secret BLOB;
ALTER TABLE users ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE users DROP COLUMN totp_last_step;
ALTER TABLE users DROP COLUMN totp_secret;
