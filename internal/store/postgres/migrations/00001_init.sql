-- +goose Up
-- One row per resource version. The body is a sealed envelope (AES-256-GCM,
-- associated data = tenant/type/id/version): no plaintext PHI in this table.
CREATE TABLE resource_versions (
    seq          BIGINT   PRIMARY KEY, -- commit order, assigned by the writer under the audit head lock
    tenant       TEXT     NOT NULL,
    type         TEXT     NOT NULL,
    id           TEXT     NOT NULL,
    version      BIGINT   NOT NULL,
    last_updated BIGINT   NOT NULL,                                 -- unix microseconds
    deleted      SMALLINT NOT NULL DEFAULT 0,
    body         BYTEA,
    UNIQUE (tenant, type, id, version)
);
CREATE INDEX resource_versions_type_seq ON resource_versions (tenant, type, seq);
CREATE INDEX resource_versions_tenant_seq ON resource_versions (tenant, seq);

-- The current version of each resource; seq points at its row in
-- resource_versions.
CREATE TABLE resources (
    tenant       TEXT     NOT NULL,
    type         TEXT     NOT NULL,
    id           TEXT     NOT NULL,
    version      BIGINT   NOT NULL,
    last_updated BIGINT   NOT NULL,
    deleted      SMALLINT NOT NULL,
    seq          BIGINT   NOT NULL,
    PRIMARY KEY (tenant, type, id)
);

-- The audit ledger: ids, codes and hashes only, never PHI.
CREATE TABLE audit_log (
    seq           BIGINT   PRIMARY KEY,
    recorded_at   BIGINT   NOT NULL,
    tenant        TEXT     NOT NULL,
    request_id    TEXT     NOT NULL,
    actor         TEXT     NOT NULL,
    role          TEXT     NOT NULL,
    action        TEXT     NOT NULL,
    resource_type TEXT     NOT NULL,
    entities      TEXT     NOT NULL,
    outcome       SMALLINT NOT NULL,
    detail        TEXT     NOT NULL,
    emergency     SMALLINT NOT NULL,
    purpose       TEXT     NOT NULL,
    prev_hash     BYTEA    NOT NULL,
    hash          BYTEA    NOT NULL
);
-- The head row is locked (SELECT ... FOR UPDATE) by every write batch, so
-- writers on many nodes serialise on it and the chain stays one chain.
CREATE TABLE audit_head (
    id   SMALLINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT   NOT NULL,
    hash BYTEA    NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, ''::bytea);

-- Wrapped data keys and sealed signing keys.
CREATE TABLE keys (
    id      TEXT   PRIMARY KEY,
    purpose TEXT   NOT NULL,
    tenant  TEXT   NOT NULL,
    wrapped BYTEA  NOT NULL,
    created BIGINT NOT NULL
);

CREATE TABLE users (
    id            TEXT     PRIMARY KEY,
    tenant        TEXT     NOT NULL,
    username      TEXT     NOT NULL,
    role          TEXT     NOT NULL,
    password_hash TEXT     NOT NULL,
    created       BIGINT   NOT NULL,
    disabled      SMALLINT NOT NULL DEFAULT 0,
    UNIQUE (tenant, username)
);

-- +goose Down
DROP TABLE users;
DROP TABLE keys;
DROP TABLE audit_head;
DROP TABLE audit_log;
DROP TABLE resources;
DROP TABLE resource_versions;
