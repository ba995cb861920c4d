-- The audit trail: one append-only chain of entries per team (see server/src/storage/audit.rs
-- for the hash and docs/architecture.md, "Audit trail", for what it does and does not prove).
--
-- Each entry stores the SHA-256 of its own canonical content, which includes the hash of the
-- team's previous entry, so an edited, deleted or reordered row breaks the chain that
-- `offboard audit verify` walks. Chains are per team (seq 1, 2, 3… within a team): a team's
-- trail is complete and checkable on its own, and teams never wait on each other's writes.
CREATE TABLE audit_entries (
    team_id    INTEGER NOT NULL REFERENCES teams(id),
    seq        INTEGER NOT NULL,
    at         TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    -- The preview or run the entry is about ('' when none).
    target     TEXT    NOT NULL DEFAULT '',
    -- Counts and ids as JSON: never a token, never a list of users.
    details    TEXT    NOT NULL,
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL,
    PRIMARY KEY (team_id, seq)
);

CREATE INDEX audit_entries_by_action ON audit_entries (team_id, action, seq);
CREATE INDEX audit_entries_by_time ON audit_entries (team_id, at);

-- The newest entry of each team's chain, written in the same transaction as the entry: it
-- takes the write lock first (so appends queue instead of racing for the next seq) and lets
-- `verify` notice entries deleted from the end of a chain.
CREATE TABLE audit_heads (
    team_id    INTEGER PRIMARY KEY REFERENCES teams(id),
    last_seq   INTEGER NOT NULL,
    last_hash  TEXT    NOT NULL
);

-- Nothing in Offboard changes or removes an entry; these make an accidental UPDATE or DELETE
-- fail loudly. Someone with the database file can drop them: that is what the chain catches.
CREATE TRIGGER audit_entries_never_change BEFORE UPDATE ON audit_entries
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;

CREATE TRIGGER audit_entries_never_removed BEFORE DELETE ON audit_entries
BEGIN
    SELECT RAISE(ABORT, 'the audit trail is append-only');
END;
