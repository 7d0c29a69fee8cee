-- +goose Up
-- A de-identified Bulk Data export (_deidentify): the requester's purpose
-- of use at kick-off (the worker decides as that purpose, so research
-- reaches only patients whose consent permits it), the de-identification
-- method and the research project whose key makes the pseudonyms. Names
-- and codes only, no PHI.
ALTER TABLE export_jobs ADD COLUMN purpose TEXT NOT NULL DEFAULT '';
ALTER TABLE export_jobs ADD COLUMN deid_method TEXT NOT NULL DEFAULT '';
ALTER TABLE export_jobs ADD COLUMN deid_project TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE export_jobs DROP COLUMN deid_project;
ALTER TABLE export_jobs DROP COLUMN deid_method;
ALTER TABLE export_jobs DROP COLUMN purpose;
