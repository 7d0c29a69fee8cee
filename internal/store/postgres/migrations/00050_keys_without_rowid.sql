-- +goose Up
-- SQLite clustered its keys table by id (WITHOUT ROWID). PostgreSQL's
-- tables have no rowid to drop: nothing to do here; the number keeps the
-- two migration sequences aligned.
SELECT 1;

-- +goose Down
SELECT 1;
