-- +goose Up
-- PostgreSQL dropped its partial name index (search_token_names), which
-- SQLite never had. Nothing to do here; the number keeps the two
-- migration sequences aligned.
SELECT 1;

-- +goose Down
SELECT 1;
