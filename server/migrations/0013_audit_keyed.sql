-- The audit trail becomes keyed (server/src/storage/audit.rs; docs/architecture.md, "Audit
-- trail"): each entry says how it is sealed. 1 = plain SHA-256, as every entry written before
-- this migration (they keep verifying as they did); 2 = HMAC-SHA256 under the audit key kept
-- outside the database (every entry written from now on). The first keyed entry of a team
-- names the last unkeyed one's hash; an unkeyed entry after a keyed one is a break.
ALTER TABLE audit_entries ADD COLUMN chain INTEGER NOT NULL DEFAULT 1;

-- What each team wrote before the key: the last unkeyed entry's number and hash. The console
-- seals the two with the key at its first start (`legacy_seal`, once per database: never
-- again once anything is keyed). Only the entries up to a sealed number may be unkeyed, so
-- nobody can pass a rewritten trail off as an old one.
ALTER TABLE audit_heads ADD COLUMN legacy_until INTEGER NOT NULL DEFAULT 0;
ALTER TABLE audit_heads ADD COLUMN legacy_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_heads ADD COLUMN legacy_seal TEXT NOT NULL DEFAULT '';
UPDATE audit_heads SET legacy_until = last_seq, legacy_hash = last_hash;

-- Every team has a head from the moment it exists (an empty trail: entry 0, the genesis
-- hash), so `offboard audit verify` can tell a team whose trail was erased (entries and head
-- gone) from one that never wrote an entry. Teams that exist already get theirs here.
INSERT INTO audit_heads (team_id, last_seq, last_hash)
SELECT id, 0, '0000000000000000000000000000000000000000000000000000000000000000'
FROM teams
WHERE id NOT IN (SELECT team_id FROM audit_heads);

CREATE TRIGGER teams_start_their_audit_trail AFTER INSERT ON teams
BEGIN
    INSERT OR IGNORE INTO audit_heads (team_id, last_seq, last_hash)
    VALUES (NEW.id, 0, '0000000000000000000000000000000000000000000000000000000000000000');
END;
