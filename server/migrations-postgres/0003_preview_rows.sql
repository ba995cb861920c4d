-- PostgreSQL twin of migrations/0003_preview_rows.sql: previews point at a shared source and
-- keep their rows one per line; runs remember their exact connection. (SQLite's 0003 also
-- splits previews stored whole by earlier versions; no PostgreSQL database ever held those.)
CREATE TABLE preview_sources (
    id                 TEXT    COLLATE "C" PRIMARY KEY,
    team_id            BIGINT  NOT NULL REFERENCES teams(id),
    created_at         TEXT    COLLATE "C" NOT NULL,
    users_url          TEXT    NOT NULL,
    -- HMAC of the token under the server's key (never the token): '' when unknown.
    token_fingerprint  TEXT    NOT NULL,
    input_json         TEXT    NOT NULL,
    listing_json       TEXT    NOT NULL
);

CREATE INDEX preview_sources_by_age ON preview_sources (created_at);

ALTER TABLE previews ADD COLUMN source_id    TEXT    COLLATE "C";
ALTER TABLE previews ADD COLUMN summary_json TEXT    NOT NULL DEFAULT '';
ALTER TABLE previews ADD COLUMN total_rows   BIGINT  NOT NULL DEFAULT 0;
-- A revision replaces the unconfirmed preview it revises: the old one keeps only this pointer.
ALTER TABLE previews ADD COLUMN replaced_by  TEXT    COLLATE "C";

CREATE INDEX previews_by_claim_and_age ON previews (claimed_at, created_at);

-- One row per line of the preview, in the admin's order; pages are read with SQL.
CREATE TABLE preview_rows (
    preview_id  TEXT    COLLATE "C" NOT NULL REFERENCES previews(id) ON DELETE CASCADE,
    position    BIGINT  NOT NULL,
    outcome     TEXT    NOT NULL,
    row_json    TEXT    NOT NULL,
    PRIMARY KEY (preview_id, position)
);

CREATE INDEX preview_rows_by_outcome ON preview_rows (preview_id, outcome, position);

-- The exact connection a run was confirmed on: it resumes only on the same one.
ALTER TABLE jobs ADD COLUMN users_url          TEXT;
ALTER TABLE jobs ADD COLUMN token_fingerprint  TEXT;
