-- +goose Up
-- Search. Every resource gets a stable surrogate rid (the seq of its first
-- version); index rows point at it. resources becomes a rowid table keyed
-- by rid so that index rows join it by primary key, and a scan of one type
-- in (tenant, type) index order is a scan in rid order (cursor paging).
-- refh is the keyed hash of "Type/id" that reference index rows carry:
-- chaining and _has join on it.
CREATE TABLE resources_new (
    rid          INTEGER PRIMARY KEY,
    tenant       TEXT    NOT NULL,
    type         TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    deleted      INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    refh         INTEGER NOT NULL DEFAULT 0
);
INSERT INTO resources_new (rid, tenant, type, id, version, last_updated, deleted, seq)
SELECT (SELECT MIN(v.seq) FROM resource_versions v WHERE v.tenant = r.tenant AND v.type = r.type AND v.id = r.id),
       r.tenant, r.type, r.id, r.version, r.last_updated, r.deleted, r.seq
FROM resources r;
DROP TABLE resources;
ALTER TABLE resources_new RENAME TO resources;
CREATE UNIQUE INDEX resources_key ON resources (tenant, type, id);
CREATE INDEX resources_type ON resources (tenant, type, deleted);
CREATE INDEX resources_updated ON resources (tenant, type, last_updated);
CREATE INDEX resources_refh ON resources (refh);

-- Index rows (see internal/search for what each column holds). p is the
-- parameter, k a composite's leading components, h a keyed hash of a
-- token, reference or blinded value, s the keyed hash of a token's system.
-- No column holds an identifying value in clear.
CREATE TABLE search_token (
    p   INTEGER NOT NULL,
    h   INTEGER NOT NULL,
    rid INTEGER NOT NULL,
    s   INTEGER NOT NULL,
    PRIMARY KEY (p, h, rid, s)
) WITHOUT ROWID;
CREATE INDEX search_token_rid ON search_token (rid, p);

CREATE TABLE search_date (
    p   INTEGER NOT NULL,
    k   INTEGER NOT NULL,
    lo  INTEGER NOT NULL,
    hi  INTEGER NOT NULL,
    rid INTEGER NOT NULL,
    PRIMARY KEY (p, k, lo, hi, rid)
) WITHOUT ROWID;
CREATE INDEX search_date_rid ON search_date (rid, p);

CREATE TABLE search_number (
    p   INTEGER NOT NULL,
    k   INTEGER NOT NULL,
    lo  REAL    NOT NULL,
    hi  REAL    NOT NULL,
    rid INTEGER NOT NULL,
    u   INTEGER NOT NULL,
    PRIMARY KEY (p, k, lo, hi, rid, u)
) WITHOUT ROWID;
CREATE INDEX search_number_rid ON search_number (rid, p);

CREATE TABLE search_string (
    p   INTEGER NOT NULL,
    v   TEXT    NOT NULL,
    rid INTEGER NOT NULL,
    PRIMARY KEY (p, v, rid)
) WITHOUT ROWID;
CREATE INDEX search_string_rid ON search_string (rid, p);

-- +goose Down
DROP TABLE search_string;
DROP TABLE search_number;
DROP TABLE search_date;
DROP TABLE search_token;
CREATE TABLE resources_old (
    tenant       TEXT    NOT NULL,
    type         TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    deleted      INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    PRIMARY KEY (tenant, type, id)
) WITHOUT ROWID;
INSERT INTO resources_old SELECT tenant, type, id, version, last_updated, deleted, seq FROM resources;
DROP TABLE resources;
ALTER TABLE resources_old RENAME TO resources;
