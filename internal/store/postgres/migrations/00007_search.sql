-- +goose Up
-- Search. Every resource gets a stable surrogate rid (the seq of its first
-- version); index rows point at it. refh is the keyed hash of "Type/id"
-- that reference index rows carry: chaining and _has join on it.
ALTER TABLE resources ADD COLUMN rid BIGINT;
ALTER TABLE resources ADD COLUMN refh BIGINT NOT NULL DEFAULT 0;
UPDATE resources r SET rid = (SELECT MIN(v.seq) FROM resource_versions v
    WHERE v.tenant = r.tenant AND v.type = r.type AND v.id = r.id);
ALTER TABLE resources ALTER COLUMN rid SET NOT NULL;
CREATE UNIQUE INDEX resources_rid ON resources (rid);
CREATE INDEX resources_type ON resources (tenant, type, rid) WHERE deleted = 0;
CREATE INDEX resources_updated ON resources (tenant, type, last_updated);
CREATE INDEX resources_refh ON resources (refh);

-- Index rows (see internal/search for what each column holds). p is the
-- parameter, k a composite's leading components, h a keyed hash of a
-- token, reference or blinded value, s the keyed hash of a token's system.
-- No column holds an identifying value in clear. Columns are ordered
-- widest first so that rows carry no alignment padding.
CREATE TABLE search_token (
    h   BIGINT  NOT NULL,
    rid BIGINT  NOT NULL,
    p   INTEGER NOT NULL,
    s   INTEGER NOT NULL
);
CREATE INDEX search_token_key ON search_token (p, h, rid);
CREATE INDEX search_token_rid ON search_token (rid, p);

CREATE TABLE search_date (
    k   BIGINT  NOT NULL,
    lo  BIGINT  NOT NULL,
    hi  BIGINT  NOT NULL,
    rid BIGINT  NOT NULL,
    p   INTEGER NOT NULL
);
CREATE INDEX search_date_key ON search_date (p, k, lo, hi, rid);
CREATE INDEX search_date_rid ON search_date (rid, p);

CREATE TABLE search_number (
    k   BIGINT           NOT NULL,
    lo  DOUBLE PRECISION NOT NULL,
    hi  DOUBLE PRECISION NOT NULL,
    rid BIGINT           NOT NULL,
    p   INTEGER          NOT NULL,
    u   INTEGER          NOT NULL
);
CREATE INDEX search_number_key ON search_number (p, k, lo, hi, rid);
CREATE INDEX search_number_rid ON search_number (rid, p);

-- C collation: prefix searches are byte ranges over normalized text.
CREATE TABLE search_string (
    rid BIGINT  NOT NULL,
    p   INTEGER NOT NULL,
    v   TEXT    COLLATE "C" NOT NULL
);
CREATE INDEX search_string_key ON search_string (p, v, rid);
CREATE INDEX search_string_rid ON search_string (rid, p);

-- +goose Down
DROP TABLE search_string;
DROP TABLE search_number;
DROP TABLE search_date;
DROP TABLE search_token;
DROP INDEX resources_refh;
DROP INDEX resources_updated;
DROP INDEX resources_type;
DROP INDEX resources_rid;
ALTER TABLE resources DROP COLUMN refh;
ALTER TABLE resources DROP COLUMN rid;
