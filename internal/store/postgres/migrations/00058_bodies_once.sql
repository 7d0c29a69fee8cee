-- +goose Up
-- Each version's sealed body is stored once, in resource_versions (issue
-- #24). The copy in resources (00016) doubled the bytes of every current
-- resource. Reads now join the version by seq for the rows they return
-- (docs/benchmarks.md has the read cost). resource_versions already holds
-- every body, so nothing moves. A dropped column's bytes stay in the rows
-- until they are rewritten: CLUSTER rewrites the table (and its indexes)
-- without them now, inside the migration's transaction, which VACUUM FULL
-- cannot run in. It holds an exclusive lock on resources while it runs.
ALTER TABLE resources DROP COLUMN body;
ALTER TABLE resources RESET (toast_tuple_target);
CLUSTER resources USING resources_rid;

-- +goose Down
ALTER TABLE resources ADD COLUMN body bytea;
ALTER TABLE resources SET (toast_tuple_target = 8160);
ALTER TABLE resources ALTER COLUMN body SET STORAGE EXTERNAL;
UPDATE resources r SET body = v.body FROM resource_versions v WHERE v.seq = r.seq AND r.deleted = 0;
