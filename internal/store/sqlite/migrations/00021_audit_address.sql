-- +goose Up
-- The client's network address of a ledger record (audit.Record.Address):
-- a keyed hash under the tenant's blind-index key unless the operator
-- configured plain addresses; '' for records before this column and for
-- records made without a request. Hashed in canonical format version 2.
ALTER TABLE audit_log ADD COLUMN address TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE audit_log DROP COLUMN address;
