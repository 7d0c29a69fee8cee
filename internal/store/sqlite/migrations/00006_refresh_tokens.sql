-- +goose Up
-- Refresh tokens, stored only as SHA-256 of the token. Each use rotates
-- the token within its family; a second use of a used token revokes the
-- family (the token was stolen, or the client is broken).
CREATE TABLE refresh_tokens (
    id       TEXT PRIMARY KEY,
    family   TEXT NOT NULL,
    user_id  TEXT NOT NULL,
    tenant   TEXT NOT NULL,
    scope    TEXT NOT NULL,
    expires  INTEGER NOT NULL,
    used     INTEGER NOT NULL DEFAULT 0,
    revoked  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);

-- +goose Down
DROP TABLE refresh_tokens;
