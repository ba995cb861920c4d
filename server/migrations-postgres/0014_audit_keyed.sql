-- PostgreSQL twin of migrations/0013_audit_keyed.sql: each entry says how it is sealed
-- (1 = plain SHA-256, every entry written before; 2 = HMAC-SHA256 under the audit key kept
-- outside the database, every entry from now on), and every team has a head from the moment
-- it exists, so an erased trail (entries and head gone) is told from an empty one.
ALTER TABLE audit_entries ADD COLUMN chain INTEGER NOT NULL DEFAULT 1;

-- What each team wrote before the key: the last unkeyed entry's number and hash. The console
-- seals the two with the key at its first start (`legacy_seal`, once per database: never
-- again once anything is keyed). Only the entries up to a sealed number may be unkeyed, so
-- nobody can pass a rewritten trail off as an old one.
ALTER TABLE audit_heads ADD COLUMN legacy_until BIGINT NOT NULL DEFAULT 0;
ALTER TABLE audit_heads ADD COLUMN legacy_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_heads ADD COLUMN legacy_seal TEXT NOT NULL DEFAULT '';
UPDATE audit_heads SET legacy_until = last_seq, legacy_hash = last_hash;

INSERT INTO audit_heads (team_id, last_seq, last_hash)
SELECT id, 0, '0000000000000000000000000000000000000000000000000000000000000000'
FROM teams
WHERE id NOT IN (SELECT team_id FROM audit_heads);

CREATE FUNCTION teams_start_their_audit_trail() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_heads (team_id, last_seq, last_hash)
    VALUES (NEW.id, 0, '0000000000000000000000000000000000000000000000000000000000000000')
    ON CONFLICT (team_id) DO NOTHING;
    RETURN NEW;
END;
$$;

CREATE TRIGGER teams_start_their_audit_trail AFTER INSERT ON teams
    FOR EACH ROW EXECUTE FUNCTION teams_start_their_audit_trail();
