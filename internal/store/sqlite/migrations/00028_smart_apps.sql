-- +goose Up
-- SMART App Launch: the URL an EHR launch opens the app at (issue #31).
ALTER TABLE clients ADD COLUMN launch_uri TEXT NOT NULL DEFAULT '';
-- What a user allowed an app on the consent screen, remembered until the
-- user or an admin revokes it. Scope is the granted scope list (no PHI).
CREATE TABLE app_grants (
    tenant    TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    client_id TEXT NOT NULL,
    scope     TEXT NOT NULL,
    created   INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX app_grants_tenant ON app_grants (tenant, user_id);

-- +goose Down
DROP TABLE app_grants;
ALTER TABLE clients DROP COLUMN launch_uri;
