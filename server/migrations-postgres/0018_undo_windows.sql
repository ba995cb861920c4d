-- The undo window (docs/undo-window.md): a run that deactivates its users now and deletes, at
-- a date, those still deactivated and unchanged. One row per such run and one per user it was
-- to deactivate, with what the user was then (account id, emails), so the deletion at the date
-- acts only on the same people. Times are sortable UTC text; `due_at` is compared with the
-- console's own clock, never the database's.
ALTER TABLE team_settings ADD COLUMN days_before_deletion BIGINT NOT NULL DEFAULT 30;
ALTER TABLE team_settings ADD COLUMN ask_again_at_date BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE undo_windows (
    -- The run that deactivated the users.
    job_id          TEXT    PRIMARY KEY REFERENCES jobs(id),
    team_id         BIGINT  NOT NULL REFERENCES teams(id),
    -- The date the typed phrase named (YYYY-MM-DD), and its first instant in UTC.
    delete_on       TEXT    NOT NULL,
    due_at          TEXT COLLATE "C" NOT NULL,
    -- Who typed the phrase: the deletion is started "on behalf of" them.
    confirmed_by    TEXT    NOT NULL,
    ask_again       BOOLEAN NOT NULL DEFAULT FALSE,
    -- 'open' until the date; 'cancelled' (everyone restored), 'asked' (a preview waits for a
    -- person), 'done' (the deletion run was started, or nobody was left to delete).
    state           TEXT    NOT NULL DEFAULT 'open'
                            CHECK (state IN ('open', 'cancelled', 'asked', 'done')),
    -- The smallest number of days before the date a reminder was written for (3, then 1).
    reminded_days   BIGINT,
    -- One console process at a time carries out the date, until its claim lapses.
    claimed_by      TEXT,
    claimed_until   TEXT COLLATE "C",
    -- The run that deleted, or the preview that waits for a person.
    delete_job_id   TEXT,
    preview_id      TEXT,
    closed_at       TEXT
);
CREATE INDEX undo_windows_due ON undo_windows (state, due_at);

CREATE TABLE undo_window_users (
    job_id       TEXT    NOT NULL REFERENCES undo_windows(job_id),
    account_id   TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    -- Every email of the account when it was deactivated, as a JSON array.
    emails       TEXT    NOT NULL,
    restored_at  TEXT,
    restored_by  TEXT,
    -- What the date decided: 'deleted' (handed to the deletion run), 'restored', 'changed',
    -- 'gone'.
    verdict      TEXT,
    PRIMARY KEY (job_id, account_id)
);
