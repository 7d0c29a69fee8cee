-- +goose Up
-- The audit ledger as an RFC 6962 Merkle tree (package ledger): the hash
-- of every perfect subtree, by level (0 for leaves) and index from the
-- left, about two rows per record. Any inclusion or consistency proof and
-- the root of any past size are then O(log n) reads by primary key, and
-- extending the tree reads only its O(log n) frontier. The nodes are
-- derived from the records and hold hashes only; they are trusted by no
-- one: a proof is checked against a signed checkpoint.
CREATE TABLE audit_tree (
    level SMALLINT NOT NULL,
    idx   BIGINT   NOT NULL,
    hash  BYTEA    NOT NULL,
    PRIMARY KEY (level, idx)
);
-- How many records the stored tree covers; moved only with its nodes.
CREATE TABLE audit_tree_head (
    id   SMALLINT PRIMARY KEY CHECK (id = 1),
    size BIGINT   NOT NULL
);
INSERT INTO audit_tree_head (id, size) VALUES (1, 0);
-- Signed checkpoints (C2SP tlog-checkpoint as a signed note), one per
-- tree size, kept so that any of them can be served and checked later.
CREATE TABLE audit_checkpoints (
    size       BIGINT PRIMARY KEY,
    root       BYTEA  NOT NULL,
    note       BYTEA  NOT NULL,
    created_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE audit_checkpoints;
DROP TABLE audit_tree_head;
DROP TABLE audit_tree;
