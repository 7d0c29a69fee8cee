-- +goose Up
-- SMART App Launch: the URL an EHR launch opens the app at (issue #31).
ALTER TABLE clients ADD COLUMN launch_uri TEXT NOT NULL DEFAULT '';
-- A code (and the refresh tokens of its exchange) from an EHR launch:
-- the EHR shows the patient banner, so the token response says the app
-- need not (need_patient_banner false).
ALTER TABLE auth_codes ADD COLUMN ehr_launch BIGINT NOT NULL DEFAULT 0;
-- What a user allowed an app on the consent screen, remembered until the
-- user or an admin revokes it. Scope is the granted scope list (no PHI).
CREATE TABLE app_grants (
    tenant    TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    client_id TEXT NOT NULL,
    scope     TEXT NOT NULL,
    created   BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX app_grants_tenant ON app_grants (tenant, user_id);

-- +goose Down
DROP TABLE app_grants;
ALTER TABLE auth_codes DROP COLUMN ehr_launch;
ALTER TABLE clients DROP COLUMN launch_uri;
