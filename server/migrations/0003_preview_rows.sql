-- Previews stop copying everything per revision, and runs remember their exact connection.
--
-- preview_sources: what a preview was made from (the admin's file or ticked IDs, the site
-- listing, the users endpoint and a fingerprint of the token), shared by the preview and every
-- revision of it. Expired with the previews that use it (see docs/engine.md, "Limits").
CREATE TABLE preview_sources (
    id                 TEXT    PRIMARY KEY,
    team_id            INTEGER NOT NULL REFERENCES teams(id),
    created_at         TEXT    NOT NULL,
    users_url          TEXT    NOT NULL,
    -- HMAC of the token under the server's key (never the token): '' when unknown.
    token_fingerprint  TEXT    NOT NULL,
    input_json         TEXT    NOT NULL,
    listing_json       TEXT    NOT NULL
);

CREATE INDEX preview_sources_by_age ON preview_sources (created_at);

-- A preview keeps its summary (source, counts, options) and points at its source; its rows
-- live in preview_rows. preview_json/listing_json stay for old rows' sake and are '' from now on.
ALTER TABLE previews ADD COLUMN source_id    TEXT;
ALTER TABLE previews ADD COLUMN summary_json TEXT    NOT NULL DEFAULT '';
ALTER TABLE previews ADD COLUMN total_rows   INTEGER NOT NULL DEFAULT 0;
-- A revision replaces the unconfirmed preview it revises: the old one keeps only this pointer
-- (its rows are removed), so revising ten times keeps one set of rows, not ten.
ALTER TABLE previews ADD COLUMN replaced_by  TEXT;

CREATE INDEX previews_by_claim_and_age ON previews (claimed_at, created_at);

-- One row per line of the preview, in the admin's order; pages are read with SQL.
CREATE TABLE preview_rows (
    preview_id  TEXT    NOT NULL REFERENCES previews(id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    outcome     TEXT    NOT NULL,
    row_json    TEXT    NOT NULL,
    PRIMARY KEY (preview_id, position)
) WITHOUT ROWID;

CREATE INDEX preview_rows_by_outcome ON preview_rows (preview_id, outcome, position);

-- Previews stored whole by earlier versions are split into the new shape.
INSERT INTO preview_sources (id, team_id, created_at, users_url, token_fingerprint, input_json,
                             listing_json)
SELECT 'legacy-' || id, team_id, created_at, preview_json ->> '$.users_url', '',
       preview_json -> '$.input', listing_json
FROM previews WHERE preview_json <> '';

INSERT INTO preview_rows (preview_id, position, outcome, row_json)
SELECT p.id, CAST(r.key AS INTEGER), r.value ->> '$.outcome', r.value
FROM previews p, json_each(p.preview_json, '$.preview.rows') r
WHERE p.preview_json <> '';

UPDATE previews
SET source_id = 'legacy-' || id,
    -- `->` keeps JSON as JSON (a string stays quoted), so json() can embed it as it was.
    summary_json = json_object(
        'source', json(preview_json -> '$.preview.source'),
        'counts', json(preview_json -> '$.preview.counts'),
        'demote_privileged', json(preview_json -> '$.preview.demote_privileged')),
    total_rows = json_array_length(preview_json, '$.preview.rows'),
    preview_json = '',
    listing_json = ''
WHERE preview_json <> '';

-- The exact connection a run was confirmed on: it resumes only on the same one.
ALTER TABLE jobs ADD COLUMN users_url          TEXT;
ALTER TABLE jobs ADD COLUMN token_fingerprint  TEXT;
