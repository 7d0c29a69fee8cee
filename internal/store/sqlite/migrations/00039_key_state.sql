-- +goose Up
-- The life of a data key: 'active' (it may seal), 'retiring' (it still
-- opens, but the store refuses every new version sealed under it: a
-- rotation or an erasure is about to destroy it) and 'destroyed' (a
-- tombstone: the wrapped key is gone, and the id stays taken so that a
-- node holding the key in memory can never seal a new version under it).
ALTER TABLE keys ADD COLUMN state TEXT NOT NULL DEFAULT 'active';
-- Every node lists the keys that are not a patient's on each KEK probe
-- (Keys); per-patient keys (there may be millions) are read one by id.
CREATE INDEX keys_not_patient ON keys (purpose) WHERE scope NOT LIKE 'patient/%';

-- +goose Down
DROP INDEX keys_not_patient;
DELETE FROM keys WHERE state = 'destroyed';
ALTER TABLE keys DROP COLUMN state;
