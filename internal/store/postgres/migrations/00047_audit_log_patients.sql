-- +goose Up
-- A copy of a ledger record's patients (audit.Record.Patients, sorted,
-- space-separated; '' none) beside the record, so that AuditEvent
-- searches and $disclosures read a record's patients with the record's
-- own row instead of one more index lookup per record (at 10,000,000
-- records each is a page read). NULL for records written before this
-- column: their list is read from audit_patients. The patient index stays
-- the list that is hashed and verified; verify also checks this copy
-- against it, so editing either one is found.
ALTER TABLE audit_log ADD COLUMN patients TEXT;

-- +goose Down
ALTER TABLE audit_log DROP COLUMN patients;
