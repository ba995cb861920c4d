-- A run started under two-person approval names its approver from its creation: written in
-- the transaction that creates the run, which also turns the request from awaiting to
-- approved (see server/src/storage/approvals.rs). Runs approved before this have NULL here;
-- their approver is read from `approvals`.
ALTER TABLE jobs ADD COLUMN approved_by TEXT;
ALTER TABLE jobs ADD COLUMN approved_at TEXT;
