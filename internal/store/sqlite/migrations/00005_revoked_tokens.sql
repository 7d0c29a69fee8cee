-- +goose Up
-- Revoked access tokens (RFC 7009), by jti, kept until they would have
-- expired anyway.
CREATE TABLE revoked_tokens (
    jti     TEXT PRIMARY KEY,
    expires INTEGER NOT NULL
);

-- +goose Down
DROP TABLE revoked_tokens;
