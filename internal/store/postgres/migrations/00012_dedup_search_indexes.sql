-- +goose Up
-- Smaller search indexes on PostgreSQL. Each index row of a heap table costs
-- a tuple header and a line pointer on top of its data, so every index row
-- carried in three B-trees is expensive. With the rid left out of the keys,
-- equal keys (one status, one code, one patient's references, one rid's
-- rows) are stored once with a posting list of row pointers (B-tree
-- deduplication, PostgreSQL 13+), which shrinks both indexes several-fold
-- for the low-cardinality values that make up most rows. The rid is read
-- from the heap row instead; a probe by rid finds a resource's few rows
-- through the rid index.
DROP INDEX search_token_key;
CREATE INDEX search_token_key ON search_token (p, h);
DROP INDEX search_token_rid;
CREATE INDEX search_token_rid ON search_token (rid);
DROP INDEX search_date_key;
CREATE INDEX search_date_key ON search_date (p, k, lo, hi);
DROP INDEX search_date_rid;
CREATE INDEX search_date_rid ON search_date (rid);
DROP INDEX search_number_key;
CREATE INDEX search_number_key ON search_number (p, k, lo, hi);
DROP INDEX search_number_rid;
CREATE INDEX search_number_rid ON search_number (rid);
DROP INDEX search_string_key;
CREATE INDEX search_string_key ON search_string (p, v);
DROP INDEX search_string_rid;
CREATE INDEX search_string_rid ON search_string (rid);

-- +goose Down
DROP INDEX search_string_rid;
CREATE INDEX search_string_rid ON search_string (rid, p);
DROP INDEX search_string_key;
CREATE INDEX search_string_key ON search_string (p, v, rid);
DROP INDEX search_number_rid;
CREATE INDEX search_number_rid ON search_number (rid, p);
DROP INDEX search_number_key;
CREATE INDEX search_number_key ON search_number (p, k, lo, hi, rid);
DROP INDEX search_date_rid;
CREATE INDEX search_date_rid ON search_date (rid, p);
DROP INDEX search_date_key;
CREATE INDEX search_date_key ON search_date (p, k, lo, hi, rid);
DROP INDEX search_token_rid;
CREATE INDEX search_token_rid ON search_token (rid, p);
DROP INDEX search_token_key;
CREATE INDEX search_token_key ON search_token (p, h, rid);
