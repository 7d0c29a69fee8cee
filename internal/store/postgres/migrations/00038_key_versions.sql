-- +goose Up
-- Which KEK version wrapped each key (kek; '' : the local key file of
-- before this migration), so that rotate-kek re-wraps only what is not
-- under the current version and says when an old version can be retired.
-- Data keys are named by (tenant, scope, version): scope 'tenant' for a
-- tenant's own keys, later one scope per patient compartment.
ALTER TABLE keys ADD COLUMN kek TEXT NOT NULL DEFAULT '';
ALTER TABLE keys ADD COLUMN scope TEXT NOT NULL DEFAULT 'tenant';
ALTER TABLE keys ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
CREATE UNIQUE INDEX keys_scope_version ON keys (tenant, scope, version) WHERE purpose = 'dek';

-- +goose Down
DROP INDEX keys_scope_version;
ALTER TABLE keys DROP COLUMN version;
ALTER TABLE keys DROP COLUMN scope;
ALTER TABLE keys DROP COLUMN kek;
