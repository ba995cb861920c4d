-- The audit trail becomes keyed (server/src/storage/audit.rs; docs/architecture.md, "Audit
-- trail"): each entry says how it is sealed. 1 = plain SHA-256, as every entry written before
-- this migration (they keep verifying as they did); 2 = HMAC-SHA256 under the audit key kept
-- outside the database (every entry written from now on). The first keyed entry of a team
-- names the last unkeyed one's hash; an unkeyed entry after a keyed one is a break.
ALTER TABLE audit_entries ADD COLUMN chain INTEGER NOT NULL DEFAULT 1;

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
