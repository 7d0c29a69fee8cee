-- +goose Up
-- How far each ledger consumer (the alert engine, SIEM exporters) has
-- read: the last seq processed and its state (ids and counters, never
-- PHI), saved in the unit that carries the consumer's own ledger records.
CREATE TABLE ledger_cursors (
    name  TEXT   PRIMARY KEY,
    seq   BIGINT NOT NULL,
    state BLOB   NOT NULL
);

-- +goose Down
DROP TABLE ledger_cursors;
