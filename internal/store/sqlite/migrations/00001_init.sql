-- +goose Up
-- One row per resource version. The body is a sealed envelope (AES-256-GCM,
-- associated data = tenant/type/id/version): no plaintext PHI in this table.
CREATE TABLE resource_versions (
    seq          INTEGER PRIMARY KEY,          -- commit order, assigned by the writer
    tenant       TEXT    NOT NULL,
    type         TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,             -- unix microseconds
    deleted      INTEGER NOT NULL DEFAULT 0,
    body         BLOB,
    UNIQUE (tenant, type, id, version)
);
CREATE INDEX resource_versions_type_seq ON resource_versions (tenant, type, seq);
CREATE INDEX resource_versions_tenant_seq ON resource_versions (tenant, seq);

-- The current version of each resource; seq points at its row in
-- resource_versions.
CREATE TABLE resources (
    tenant       TEXT    NOT NULL,
    type         TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    deleted      INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    PRIMARY KEY (tenant, type, id)
) WITHOUT ROWID;

-- The audit ledger: ids, codes and hashes only, never PHI.
CREATE TABLE audit_log (
    seq           INTEGER PRIMARY KEY,
    recorded_at   INTEGER NOT NULL,
    tenant        TEXT    NOT NULL,
    request_id    TEXT    NOT NULL,
    actor         TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    action        TEXT    NOT NULL,
    resource_type TEXT    NOT NULL,
    entities      TEXT    NOT NULL,
    outcome       INTEGER NOT NULL,
    detail        TEXT    NOT NULL,
    emergency     INTEGER NOT NULL,
    purpose       TEXT    NOT NULL,
    prev_hash     BLOB    NOT NULL,
    hash          BLOB    NOT NULL
);
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash BLOB    NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, X'');

-- Wrapped data keys and sealed signing keys.
CREATE TABLE keys (
    id      TEXT    PRIMARY KEY,
    purpose TEXT    NOT NULL,
    tenant  TEXT    NOT NULL,
    wrapped BLOB    NOT NULL,
    created INTEGER NOT NULL
);

CREATE TABLE users (
    id            TEXT    PRIMARY KEY,
    tenant        TEXT    NOT NULL,
    username      TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    created       INTEGER NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    UNIQUE (tenant, username)
);

-- +goose Down
DROP TABLE users;
DROP TABLE keys;
DROP TABLE audit_head;
DROP TABLE audit_log;
DROP TABLE resources;
DROP TABLE resource_versions;
