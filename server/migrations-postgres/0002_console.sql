-- PostgreSQL twin of migrations/0002_console.sql: each team's connection, the previews admins
-- confirm, and the jobs with one row per user and an event log watchers can resume from.

-- One connection per team. The token is stored encrypted (see server/src/secret.rs).
CREATE TABLE connections (
    team_id           BIGINT  PRIMARY KEY REFERENCES teams(id),
    site_url          TEXT    NOT NULL,
    scim_base_url     TEXT,
    token_ciphertext  TEXT,
    token_hint        TEXT    NOT NULL DEFAULT '',
    -- The admin's own email: the run never touches this account.
    operator_email    TEXT,
    updated_at        TEXT    COLLATE "C" NOT NULL
);

-- A preview as the admin saw it; the typed phrase is checked against this row, and a preview
-- starts at most one job (claimed_at is set once, atomically). SQLite's preview_json and
-- listing_json columns (emptied by its 0003) never existed here.
CREATE TABLE previews (
    id            TEXT    COLLATE "C" PRIMARY KEY,
    team_id       BIGINT  NOT NULL REFERENCES teams(id),
    created_at    TEXT    COLLATE "C" NOT NULL,
    action        TEXT    NOT NULL,
    phrase        TEXT    NOT NULL,
    claimed_at    TEXT    COLLATE "C"
);

CREATE INDEX previews_by_team ON previews (team_id, created_at);

ALTER TABLE jobs ADD COLUMN created_by  TEXT    NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN site_url    TEXT    NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN action      TEXT    NOT NULL DEFAULT 'Delete';
ALTER TABLE jobs ADD COLUMN preview_id  TEXT    COLLATE "C";
-- Why the job paused, stopped or failed, in plain words.
ALTER TABLE jobs ADD COLUMN reason      TEXT;
ALTER TABLE jobs ADD COLUMN started_at  TEXT    COLLATE "C";
ALTER TABLE jobs ADD COLUMN finished_at TEXT    COLLATE "C";
-- The last event number handed out; every event-writing transaction bumps it first, so
-- concurrent writers of one job queue on this row's lock instead of racing for MAX(seq).
ALTER TABLE jobs ADD COLUMN last_seq    BIGINT  NOT NULL DEFAULT 0;

CREATE INDEX jobs_by_state ON jobs (state);
-- A preview starts at most one job, whatever the code above this table does.
CREATE UNIQUE INDEX jobs_by_preview ON jobs (preview_id);

CREATE TYPE itemstate AS ENUM ('pending', 'sending', 'done');

-- One row per user the job covers, in the order of the admin's input (position).
-- state: pending -> sending (persisted before each request) -> done (outcome set).
CREATE TABLE job_items (
    job_id       TEXT      COLLATE "C" NOT NULL REFERENCES jobs(id),
    position     BIGINT    NOT NULL,
    account_id   TEXT      NOT NULL,
    email        TEXT,
    state        itemstate NOT NULL,
    outcome      TEXT,
    message      TEXT      NOT NULL DEFAULT '',
    attempts     BIGINT    NOT NULL DEFAULT 0,
    elapsed_ms   BIGINT    NOT NULL DEFAULT 0,
    demoted      BOOLEAN   NOT NULL DEFAULT FALSE,
    finished_at  TEXT      COLLATE "C",
    PRIMARY KEY (job_id, position)
);

-- An account appears once per job: a second request for the same user is never planned.
CREATE UNIQUE INDEX job_items_by_account ON job_items (job_id, account_id);

-- Everything watchers see, in order: item results and job state changes.
CREATE TABLE job_events (
    job_id        TEXT     COLLATE "C" NOT NULL REFERENCES jobs(id),
    seq           BIGINT   NOT NULL,
    at            TEXT     COLLATE "C" NOT NULL,
    result_json   TEXT,
    state_change  jobstate,
    reason        TEXT,
    PRIMARY KEY (job_id, seq)
);
