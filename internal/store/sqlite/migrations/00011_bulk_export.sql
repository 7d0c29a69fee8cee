-- +goose Up
-- Bulk Data export jobs (FHIR Bulk Data Access 2.0). A job names its
-- requester (subject id, role and scopes as at kick-off: the worker decides
-- access for that subject) and what was asked; nothing here is PHI. The
-- worker that runs a job holds a lease (owner, lease_until) that it renews;
-- a job whose lease ran out (its node died) is claimed again and restarted.
CREATE TABLE export_jobs (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    requester   TEXT NOT NULL,
    role        TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    group_id    TEXT NOT NULL DEFAULT '',
    types       TEXT NOT NULL DEFAULT '',
    since       INTEGER NOT NULL DEFAULT 0,
    request     TEXT NOT NULL,
    status      TEXT NOT NULL,
    progress    TEXT NOT NULL DEFAULT '',
    created     INTEGER NOT NULL,
    tx_time     INTEGER NOT NULL,
    expires     INTEGER NOT NULL,
    error       TEXT NOT NULL DEFAULT '',
    owner       TEXT NOT NULL DEFAULT '',
    lease_until INTEGER NOT NULL DEFAULT 0,
    attempts    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX export_jobs_status ON export_jobs (status, created);
CREATE INDEX export_jobs_expires ON export_jobs (expires);
-- One NDJSON output file of a job: its type, line count and the references
-- ("Type/id/_history/v") it holds, which the ledger names when it is
-- downloaded.
CREATE TABLE export_parts (
    job_id  TEXT NOT NULL,
    part    INTEGER NOT NULL,
    type    TEXT NOT NULL,
    lines   INTEGER NOT NULL,
    bytes   INTEGER NOT NULL,
    refs    TEXT NOT NULL,
    PRIMARY KEY (job_id, part)
);
-- The sealed content of a part, in chunks of at most 1 MiB of NDJSON each:
-- AES-256-GCM under the tenant's data key, associated data binding the
-- tenant, job, part and chunk number.
CREATE TABLE export_chunks (
    job_id  TEXT NOT NULL,
    part    INTEGER NOT NULL,
    chunk   INTEGER NOT NULL,
    body    BLOB NOT NULL,
    PRIMARY KEY (job_id, part, chunk)
);

-- +goose Down
DROP TABLE export_chunks;
DROP TABLE export_parts;
DROP TABLE export_jobs;
