-- PostgreSQL twin of migrations/0005_audit.sql: one append-only, hash-chained trail of entries
-- per team (server/src/storage/audit.rs computes the hashes; docs/architecture.md, "Audit
-- trail", says what the chain proves). 0004 is left for the accounts tables, as in SQLite.
CREATE TABLE audit_entries (
    team_id    BIGINT  NOT NULL REFERENCES teams(id),
    seq        BIGINT  NOT NULL,
    at         TEXT    COLLATE "C" NOT NULL,
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

-- The newest entry of each team's chain, written in the same transaction as the entry: its
-- row lock makes a team's appends queue, and it lets `verify` notice entries deleted from the
-- end of a chain.
CREATE TABLE audit_heads (
    team_id    BIGINT  PRIMARY KEY REFERENCES teams(id),
    last_seq   BIGINT  NOT NULL,
    last_hash  TEXT    NOT NULL
);

-- Nothing in Offboard changes or removes an entry; these make an accidental UPDATE or DELETE
-- fail loudly. The database owner can drop them: that is what the chain catches.
CREATE FUNCTION audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only';
END;
$$;

CREATE TRIGGER audit_entries_never_change BEFORE UPDATE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only();

CREATE TRIGGER audit_entries_never_removed BEFORE DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only();

-- TRUNCATE skips row triggers: refuse it too.
CREATE TRIGGER audit_entries_never_truncated BEFORE TRUNCATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_append_only();
