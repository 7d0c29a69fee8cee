-- +goose Up
-- The transactional outbox (internal/events, internal/dispatch): domain
-- events appended by the write batch in the same transaction as the change,
-- under the ledger head lock, so seq is commit order. AUTOINCREMENT: a seq
-- is never reused after a purge, since receivers keep a cursor by seq.
-- body is the CloudEvents JSON: ids and codes only, never PHI.
CREATE TABLE outbox (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    id     TEXT    NOT NULL,
    tenant TEXT    NOT NULL,
    type   TEXT    NOT NULL,
    okey   TEXT    NOT NULL,
    at     INTEGER NOT NULL,
    body   BLOB    NOT NULL
);
-- One row per receiver (the NATS sink, each webhook): the last seq it has
-- taken (pos: delivered or dead-lettered), and the lease of the node that
-- dispatches to it.
CREATE TABLE outbox_receivers (
    name        TEXT    PRIMARY KEY,
    pos         INTEGER NOT NULL,
    lease_owner TEXT    NOT NULL DEFAULT '',
    lease_until INTEGER NOT NULL DEFAULT 0,
    delivered   INTEGER NOT NULL DEFAULT 0,
    updated     INTEGER NOT NULL DEFAULT 0
);
-- Events a receiver did not take after the configured attempts.
CREATE TABLE outbox_dead (
    receiver   TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    attempts   INTEGER NOT NULL,
    last_error TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    replay     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (receiver, seq)
);

-- +goose Down
DROP TABLE outbox_dead;
DROP TABLE outbox_receivers;
DROP TABLE outbox;
