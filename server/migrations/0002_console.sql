-- What the web console keeps: each team's connection, the previews admins confirm, and the
-- jobs with one row per user and an event log watchers can resume from.
-- Portable SQL only (SQLite and PostgreSQL): times are RFC 3339 UTC text with a fixed number
-- of fraction digits (so they sort as text), JSON is TEXT, booleans are 0/1 integers.

-- One connection per team. The token is stored encrypted (see server/src/secret.rs).
CREATE TABLE connections (
    team_id           INTEGER PRIMARY KEY REFERENCES teams(id),
    site_url          TEXT    NOT NULL,
    scim_base_url     TEXT,
    token_ciphertext  TEXT,
    token_hint        TEXT    NOT NULL DEFAULT '',
    -- The admin's own email: the run never touches this account.
    operator_email    TEXT,
    updated_at        TEXT    NOT NULL
);

-- A preview as the admin saw it; the typed phrase is checked against this row, and a preview
-- starts at most one job (claimed_at is set once, atomically).
CREATE TABLE previews (
    id            TEXT    PRIMARY KEY,
    team_id       INTEGER NOT NULL REFERENCES teams(id),
    created_at    TEXT    NOT NULL,
    action        TEXT    NOT NULL,
    preview_json  TEXT    NOT NULL,
    listing_json  TEXT    NOT NULL,
    phrase        TEXT    NOT NULL,
    claimed_at    TEXT
);

CREATE INDEX previews_by_team ON previews (team_id, created_at);

ALTER TABLE jobs ADD COLUMN created_by  TEXT    NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN site_url    TEXT    NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN action      TEXT    NOT NULL DEFAULT 'Delete';
ALTER TABLE jobs ADD COLUMN preview_id  TEXT;
-- Why the job paused, stopped or failed, in plain words.
ALTER TABLE jobs ADD COLUMN reason      TEXT;
ALTER TABLE jobs ADD COLUMN started_at  TEXT;
ALTER TABLE jobs ADD COLUMN finished_at TEXT;
-- The last event number handed out; bumped first in every event-writing transaction, so
-- concurrent writers queue on the row lock instead of racing for MAX(seq).
ALTER TABLE jobs ADD COLUMN last_seq    INTEGER NOT NULL DEFAULT 0;

CREATE INDEX jobs_by_state ON jobs (state);
-- A preview starts at most one job, whatever the code above this table does.
CREATE UNIQUE INDEX jobs_by_preview ON jobs (preview_id);

-- One row per user the job covers, in the order of the admin's input (position).
-- state: pending -> sending (persisted before each request) -> done (outcome set).
CREATE TABLE job_items (
    job_id       TEXT    NOT NULL REFERENCES jobs(id),
    position     INTEGER NOT NULL,
    account_id   TEXT    NOT NULL,
    email        TEXT,
    state        TEXT    NOT NULL,
    outcome      TEXT,
    message      TEXT    NOT NULL DEFAULT '',
    attempts     INTEGER NOT NULL DEFAULT 0,
    elapsed_ms   INTEGER NOT NULL DEFAULT 0,
    demoted      INTEGER NOT NULL DEFAULT 0,
    finished_at  TEXT,
    PRIMARY KEY (job_id, position)
);

-- An account appears once per job: a second request for the same user is never planned.
CREATE UNIQUE INDEX job_items_by_account ON job_items (job_id, account_id);

-- Everything watchers see, in order: item results and job state changes.
CREATE TABLE job_events (
    job_id        TEXT    NOT NULL REFERENCES jobs(id),
    seq           INTEGER NOT NULL,
    at            TEXT    NOT NULL,
    result_json   TEXT,
    state_change  TEXT,
    reason        TEXT,
    PRIMARY KEY (job_id, seq)
);
