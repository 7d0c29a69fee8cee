-- +goose Up
-- SMART Backend Services clients: public keys (a JWKS, no secrets) and the
-- scopes the client may be granted.
CREATE TABLE clients (
    id       TEXT    PRIMARY KEY,
    tenant   TEXT    NOT NULL,
    jwks     TEXT    NOT NULL,
    scope    TEXT    NOT NULL,
    created  BIGINT NOT NULL,
    disabled BIGINT NOT NULL DEFAULT 0
);
-- Client assertion ids seen, until they expire: an assertion is accepted
-- once.
CREATE TABLE client_jtis (
    client_id TEXT NOT NULL,
    jti       TEXT NOT NULL,
    expires   BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);

-- +goose Down
DROP TABLE client_jtis;
DROP TABLE clients;
