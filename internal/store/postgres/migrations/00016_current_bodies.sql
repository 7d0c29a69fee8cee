-- +goose Up
-- resources keeps a copy of each current version's sealed body, written in
-- the same statement that makes the version current (sqlstore.Dialect
-- CurrentBodies). A search page then reads its bodies from the resources
-- rows it has already found, instead of probing resource_versions by seq
-- for each hit: one index descent and one heap fetch fewer per resource
-- returned (docs/benchmarks.md). Deleted resources have none. The copy is
-- sealed with the same keys as the version, so erasure shreds both.
-- Bodies stay in the row, uncompressed, as in resource_versions (00015).
ALTER TABLE resources ADD COLUMN body bytea;
ALTER TABLE resources SET (toast_tuple_target = 8160);
ALTER TABLE resources ALTER COLUMN body SET STORAGE EXTERNAL;
UPDATE resources r SET body = v.body FROM resource_versions v WHERE v.seq = r.seq AND r.deleted = 0;
-- The UPDATE wrote every row again, and its index entries with it (a row
-- grown by its body is not updated in place): rebuilt, the indexes are
-- their size again. The old rows' heap space is reused by later writes;
-- VACUUM FULL resources gives it back to the file system at once.
REINDEX TABLE resources;

-- +goose Down
ALTER TABLE resources DROP COLUMN body;
ALTER TABLE resources RESET (toast_tuple_target);
