-- +goose Up
-- PostgreSQL rebuilt its search indexes without the rid in their keys
-- (B-tree deduplication); SQLite keeps its WITHOUT ROWID tables, whose
-- primary keys are the data itself. Nothing to do here; the number keeps
-- the two migration sequences aligned.
SELECT 1;

-- +goose Down
SELECT 1;
