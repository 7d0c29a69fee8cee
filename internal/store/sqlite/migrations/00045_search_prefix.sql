-- +goose Up
-- Blinded strings (names, addresses and free text of patient data), one
-- row per value instead of one search_token row per prefix length (issue
-- #24: a realistic Patient cost 171 index rows and 8.8 KB). A value has a
-- short row found by the keyed hash of its first two characters and, from
-- five characters on, a long row found by the hash of its first five; f
-- holds truncated keyed hashes of the exact value and of the other prefix
-- lengths, which a search compares byte ranges of (internal/search, "Blinded
-- strings"). t is the part of a name or address (family, given, city, ...),
-- so that family and address-city are answered from the name and address
-- rows. Rows written before this migration stay in search_token until
-- `ward reindex` rewrites them; until then string searches do not find
-- those resources (docs/operations.md).
-- n tells apart two values of one resource that share p, h and t (given
-- names Lulu and Luna), so that f, the widest column, stays out of the key
-- and so out of the rid index, which repeats the key.
CREATE TABLE search_prefix (
    p   INTEGER NOT NULL,
    h   INTEGER NOT NULL,
    rid INTEGER NOT NULL,
    t   INTEGER NOT NULL,
    n   INTEGER NOT NULL,
    f   BLOB    NOT NULL,
    PRIMARY KEY (p, h, rid, t, n)
) WITHOUT ROWID;
CREATE INDEX search_prefix_rid ON search_prefix (rid);

-- +goose Down
DROP TABLE search_prefix;
