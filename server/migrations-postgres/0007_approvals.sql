-- PostgreSQL twin of migrations/0007_approvals.sql: each team's approval setting and one
-- request for approval per preview (see server/src/service/approvals.rs).
CREATE TABLE team_settings (
    team_id                BIGINT  PRIMARY KEY REFERENCES teams(id),
    approval               TEXT    NOT NULL DEFAULT 'auto'
                                   CHECK (approval IN ('auto', 'always', 'never')),
    approve_deactivations  BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE approvals (
    preview_id       TEXT    COLLATE "C" PRIMARY KEY REFERENCES previews(id) ON DELETE CASCADE,
    team_id          BIGINT  NOT NULL REFERENCES teams(id),
    requested_by     TEXT    NOT NULL,
    requester_email  TEXT    NOT NULL,
    requested_at     TEXT    COLLATE "C" NOT NULL,
    expires_at       TEXT    COLLATE "C" NOT NULL,
    decision         TEXT    CHECK (decision IN ('approved', 'declined')),
    decided_by       TEXT,
    decided_at       TEXT    COLLATE "C",
    reason           TEXT
);
CREATE INDEX approvals_by_team ON approvals (team_id, requested_at);
