-- +goose Up
-- Name searches on PostgreSQL. A name prefix (Patient?family=she) may match
-- thousands of people; migration 00012 left the rid out of the search index
-- keys, so every candidate's rid was read from the heap and the candidates
-- sorted before the first page (60 ms for 2,500 matches at 100,000
-- Patients). This partial index keeps the rid in the key for the name
-- parameters of the people types only, so the page streams in rid order and
-- stops at its limit (0.4 ms for the same search). It holds only those rows
-- (about 1.3 KB per Patient), none of any Observation.
--
-- The p values are search.PID("<Type>", "<code>") for family, given and
-- name of Patient, Practitioner, RelatedPerson and Person; a test in
-- internal/store/postgres recomputes them.
CREATE INDEX search_token_names ON search_token (p, h, rid)
    WHERE p IN (147360096, 2146706965, 1724988659, 794697393, 951115054, 362174670, 996287714, 1149132369);

-- The planner estimates a keyed hash it has no statistics for at a few rows;
-- with the default 100 most common values a name prefix shared by 2,500
-- Patients was estimated at 15, and the plan sorted them all. A larger
-- sample keeps the frequent prefixes and codes in the statistics.
ALTER TABLE search_token ALTER COLUMN h SET STATISTICS 1000;

-- +goose Down
ALTER TABLE search_token ALTER COLUMN h SET STATISTICS -1;
DROP INDEX search_token_names;
