-- +goose Up
-- The keys table clustered by id (WITHOUT ROWID): every key is read and
-- written by id (a node's by-id read of a patient's key, rotate-kek's
-- pages in id order and its compare-and-swap per key), and with a rowid
-- each of those went through the id index and then the table. A million
-- patient keys make this the difference between one B-tree and two per
-- key (issue #29: rotate-kek over 1,000,000 keys).
CREATE TABLE keys_by_id (
    id      TEXT    NOT NULL PRIMARY KEY,
    purpose TEXT    NOT NULL,
    tenant  TEXT    NOT NULL,
    wrapped BLOB    NOT NULL,
    created INTEGER NOT NULL,
    kek     TEXT    NOT NULL DEFAULT '',
    scope   TEXT    NOT NULL DEFAULT 'tenant',
    version INTEGER NOT NULL DEFAULT 1,
    state   TEXT    NOT NULL DEFAULT 'active'
) WITHOUT ROWID;
INSERT INTO keys_by_id (id, purpose, tenant, wrapped, created, kek, scope, version, state)
    SELECT id, purpose, tenant, wrapped, created, kek, scope, version, state FROM keys;
DROP TABLE keys;
ALTER TABLE keys_by_id RENAME TO keys;
CREATE UNIQUE INDEX keys_scope_version ON keys (tenant, scope, version) WHERE purpose = 'dek';
CREATE INDEX keys_not_patient ON keys (purpose) WHERE scope NOT LIKE 'patient/%';

-- +goose Down
CREATE TABLE keys_rowid (
    id      TEXT    PRIMARY KEY,
    purpose TEXT    NOT NULL,
    tenant  TEXT    NOT NULL,
    wrapped BLOB    NOT NULL,
    created INTEGER NOT NULL,
    kek     TEXT    NOT NULL DEFAULT '',
    scope   TEXT    NOT NULL DEFAULT 'tenant',
    version INTEGER NOT NULL DEFAULT 1,
    state   TEXT    NOT NULL DEFAULT 'active'
);
INSERT INTO keys_rowid (id, purpose, tenant, wrapped, created, kek, scope, version, state)
    SELECT id, purpose, tenant, wrapped, created, kek, scope, version, state FROM keys;
DROP TABLE keys;
ALTER TABLE keys_rowid RENAME TO keys;
CREATE UNIQUE INDEX keys_scope_version ON keys (tenant, scope, version) WHERE purpose = 'dek';
CREATE INDEX keys_not_patient ON keys (purpose) WHERE scope NOT LIKE 'patient/%';
