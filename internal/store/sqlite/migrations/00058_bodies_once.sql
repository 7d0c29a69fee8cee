-- +goose Up
-- Each version's sealed body is stored once, in resource_versions (issue
-- #24). The copy in resources (00016) doubled the bytes of every current
-- resource: with 4 KiB pages a ~2.3 KB sealed Patient fills a page on its
-- own, so the copy cost a whole page per resource. Reads now join the
-- version by seq (its rowid) for the rows they return
-- (docs/benchmarks.md has the read cost). resource_versions already holds
-- every body, so nothing moves. The table is rebuilt rather than the
-- column dropped: DROP COLUMN shrinks each row in place and leaves every
-- page as it was, one row to a page. The old pages go to the free list,
-- reused by later writes (VACUUM gives them back to the file system).
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
INSERT INTO resources_new (rid, tenant, type, id, version, last_updated, deleted, seq, refh)
SELECT rid, tenant, type, id, version, last_updated, deleted, seq, refh FROM resources ORDER BY rid;
DROP TABLE resources;
ALTER TABLE resources_new RENAME TO resources;
CREATE UNIQUE INDEX resources_key ON resources (tenant, type, id);
CREATE INDEX resources_type ON resources (tenant, type, deleted);
CREATE INDEX resources_updated ON resources (tenant, type, last_updated);
CREATE INDEX resources_refh ON resources (refh);

-- +goose Down
ALTER TABLE resources ADD COLUMN body BLOB;
UPDATE resources SET body = (SELECT v.body FROM resource_versions v WHERE v.seq = resources.seq) WHERE deleted = 0;
