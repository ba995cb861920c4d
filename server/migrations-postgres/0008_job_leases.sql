-- PostgreSQL twin of migrations/0008_job_leases.sql: which console replica drives each job,
-- until when, and its fencing number (docs/deployment.md, "Several replicas"). Times are the
-- database's own clock (now()), so replicas need not agree on theirs.
CREATE TABLE job_leases (
    job_id      TEXT        COLLATE "C" PRIMARY KEY REFERENCES jobs(id),
    holder      TEXT        NOT NULL,  -- the replica id ('' until a replica first claims it)
    fence       BIGINT      NOT NULL,  -- +1 at every claim, never reused
    expires_at  TIMESTAMPTZ NOT NULL   -- when the holder stops being the holder
);
