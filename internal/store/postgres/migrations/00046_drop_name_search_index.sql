-- +goose Up
-- The blinded names that search_token_names (migration 00014) kept in rid
-- order moved to search_prefix (00045), whose key index keeps the rid for
-- every row; after `ward reindex` the partial index is empty, and each
-- token insert still tested its predicate.
DROP INDEX IF EXISTS search_token_names;

-- +goose Down
CREATE INDEX search_token_names ON search_token (p, h, rid)
    WHERE p IN (147360096, 2146706965, 1724988659, 794697393, 951115054, 362174670, 996287714, 1149132369);
