-- +goose Up
-- resources keeps a copy of each current version's sealed body, written by
-- the statement that makes the version current (sqlstore.Dialect
-- CurrentBodies), as on PostgreSQL (its migration 00016). A search page
-- then takes its bodies from the resources rows it has already found
-- instead of probing resource_versions by seq for each hit in a second
-- statement. Deleted resources have none. The copy is sealed with the same
-- keys as the version, so erasure shreds both.
ALTER TABLE resources ADD COLUMN body BLOB;
UPDATE resources SET body = (SELECT v.body FROM resource_versions v WHERE v.seq = resources.seq) WHERE deleted = 0;

-- +goose Down
ALTER TABLE resources DROP COLUMN body;
