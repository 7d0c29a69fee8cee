-- +goose Up
-- Blinded strings (names, addresses and free text of patient data), one
-- row per value instead of one search_token row per prefix length (issue
-- #24; see the SQLite migration of the same number for the layout). The
-- key index keeps the rid so that a name search streams its page in rid
-- order (what search_token_names did for the old rows). Rows written
-- before this migration stay in search_token until `ward reindex`
-- rewrites them (docs/operations.md).
CREATE TABLE search_prefix (
    h   BIGINT   NOT NULL,
    rid BIGINT   NOT NULL,
    p   INTEGER  NOT NULL,
    t   SMALLINT NOT NULL,
    n   SMALLINT NOT NULL,
    f   BYTEA    NOT NULL
);
CREATE INDEX search_prefix_key ON search_prefix (p, h, rid);
CREATE INDEX search_prefix_rid ON search_prefix (rid);
ALTER TABLE search_prefix ALTER COLUMN h SET STATISTICS 1000;

-- +goose Down
DROP TABLE search_prefix;
