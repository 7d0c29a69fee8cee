-- +goose Up
-- This node as a witness of other logs (C2SP tlog-witness): the latest
-- checkpoint it cosigned of each log, moved only by compare-and-swap on
-- its size so that it never cosigns two histories.
CREATE TABLE witness_logs (
    origin     TEXT   PRIMARY KEY,
    size       BIGINT NOT NULL,
    root       BYTEA   NOT NULL,
    note       BYTEA   NOT NULL,
    updated_at BIGINT NOT NULL
);
-- Cosignatures this ledger's checkpoints got back from its witnesses:
-- the checkpoint with the witness's verified cosignature lines appended.
CREATE TABLE audit_cosignatures (
    size       BIGINT NOT NULL,
    witness    TEXT   NOT NULL,
    note       BYTEA   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (size, witness)
);

-- +goose Down
DROP TABLE audit_cosignatures;
DROP TABLE witness_logs;
