-- +goose Up
-- The owner of each FHIR Subscription (internal/subscriptions): the
-- subject that last created or updated it, whose access decides at
-- delivery time what a notification may carry. owner is JSON of ids and
-- codes only (user id, role, scopes, linked Practitioner/Patient ids,
-- clearance codes), never PHI; it is written by the records layer in the
-- same transaction as the Subscription version.
CREATE TABLE subscription_owners (
    tenant  TEXT    NOT NULL,
    id      TEXT    NOT NULL,
    owner   BYTEA   NOT NULL,
    updated BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);

-- +goose Down
DROP TABLE subscription_owners;
