-- +goose Up
-- Webhooks registered by admins (ward webhooks add): the receiver of
-- events at url, signed with a secret kept sealed by the system data key
-- (never in clear). types: comma-separated event types ('' : all).
CREATE TABLE webhooks (
    id       TEXT    PRIMARY KEY,
    tenant   TEXT    NOT NULL,
    url      TEXT    NOT NULL,
    secret   BYTEA   NOT NULL,
    types    TEXT    NOT NULL,
    created  BIGINT  NOT NULL
);

-- +goose Down
DROP TABLE webhooks;
