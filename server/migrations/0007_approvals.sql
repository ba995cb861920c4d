-- Two-person approval (see server/src/service/approvals.rs): a team's setting, and one
-- request per preview. The run it starts cites the preview, so a run's approver is found here.

CREATE TABLE team_settings (
    team_id                INTEGER PRIMARY KEY REFERENCES teams(id),
    -- 'auto': needed once the team has two or more operators; 'always'; 'never'.
    approval               TEXT    NOT NULL DEFAULT 'auto'
                                   CHECK (approval IN ('auto', 'always', 'never')),
    -- Deactivations can be undone: by default they start without a second person.
    approve_deactivations  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE approvals (
    preview_id       TEXT    PRIMARY KEY REFERENCES previews(id) ON DELETE CASCADE,
    team_id          INTEGER NOT NULL REFERENCES teams(id),
    requested_by     TEXT    NOT NULL,
    requester_email  TEXT    NOT NULL,
    requested_at     TEXT    NOT NULL,
    expires_at       TEXT    NOT NULL,
    decision         TEXT    CHECK (decision IN ('approved', 'declined')),
    decided_by       TEXT,
    decided_at       TEXT,
    reason           TEXT
);
CREATE INDEX approvals_by_team ON approvals (team_id, requested_at);
