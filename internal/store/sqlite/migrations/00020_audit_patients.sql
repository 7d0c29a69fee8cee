-- +goose Up
-- The ledger's patient index: one row per (record, patient) for the
-- records whose Patients list is not empty (audit.Record.Patients, hashed
-- in canonical format version 2). Written in the transaction that appends
-- the record, read back by AuditScan for verification, and searched by
-- (tenant, patient, time) for AuditEvent?patient= and $disclosures.
-- Opaque patient ids only: no names, nothing else about the patient.
CREATE TABLE audit_patients (
    seq         BIGINT NOT NULL,
    patient     TEXT   NOT NULL,
    tenant      TEXT   NOT NULL,
    recorded_at BIGINT NOT NULL,
    PRIMARY KEY (seq, patient)
);
CREATE INDEX audit_patients_time ON audit_patients (tenant, patient, recorded_at, seq);
-- One user's activity (ward audit access, AuditEvent?agent=).
CREATE INDEX audit_log_actor ON audit_log (tenant, actor, recorded_at);

-- +goose Down
DROP INDEX audit_log_actor;
DROP TABLE audit_patients;
