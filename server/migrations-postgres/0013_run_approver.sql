-- PostgreSQL twin of migrations/0012_run_approver.sql: a run started under two-person
-- approval names its approver from its creation (written in the transaction that creates the
-- run and turns the request approved). Older runs have NULL; their approver is read from
-- `approvals`.
ALTER TABLE jobs ADD COLUMN approved_by TEXT;
ALTER TABLE jobs ADD COLUMN approved_at TEXT COLLATE "C";
