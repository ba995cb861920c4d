-- The job lease (docs/deployment.md, "Several replicas"): which console process drives each
-- job, until when, and its fencing number. SQLite serves one process, so its leases are
-- taken over at once (storage/sqlite.rs); the table is here so both databases keep the same
-- records and the same code drives a run on either.
CREATE TABLE job_leases (
    job_id      TEXT    PRIMARY KEY REFERENCES jobs(id),
    holder      TEXT    NOT NULL,     -- the replica id ('' until a replica first claims it)
    fence       INTEGER NOT NULL,     -- +1 at every claim, never reused
    expires_at  TEXT    NOT NULL      -- when the holder stops being the holder
);
