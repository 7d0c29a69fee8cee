-- +goose Up
-- The ledger's tree in two strata (package ledger, tiles.go): the leaf
-- hashes in tiles of 16 (one row per block, the last one partial until it
-- fills, 512 bytes when full), and in audit_tree only the nodes of level
-- 4 and up; levels 1 to 3 are recomputed from a tile when a proof or a
-- root needs them. One row per ~16 records instead of ~2 per record.
-- Rows of a tree stored before (every node) stay and are still read for
-- blocks that have no tile.
CREATE TABLE audit_tree_tiles (
    idx    INTEGER PRIMARY KEY,
    leaves BLOB    NOT NULL
);

-- +goose Down
DROP TABLE audit_tree_tiles;
