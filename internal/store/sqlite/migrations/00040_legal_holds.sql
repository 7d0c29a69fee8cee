-- +goose Up
-- Legal holds: a patient under one may not be erased (Patient/$erase).
-- The reason is kept as a SHA-256 only (it is free text and may name the
-- patient); the ledger has who set and released it.
CREATE TABLE legal_holds (
    tenant  TEXT    NOT NULL,
    patient TEXT    NOT NULL,
    reason  BLOB    NOT NULL,
    created BIGINT  NOT NULL,
    PRIMARY KEY (tenant, patient)
);

-- +goose Down
DROP TABLE legal_holds;
