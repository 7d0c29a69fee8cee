-- +goose Up
-- A user's link to the FHIR resource they are (issue #6): a physician or
-- nurse is a Practitioner, a user-role account the Patient it is or acts
-- for. Ids only (resource ids are opaque, never PHI). clearances is the
-- comma-separated list of security label codes (R, V, HIV, ...) the user
-- may see.
ALTER TABLE users ADD COLUMN practitioner TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN patient TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN clearances TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE users DROP COLUMN clearances;
ALTER TABLE users DROP COLUMN patient;
ALTER TABLE users DROP COLUMN practitioner;
