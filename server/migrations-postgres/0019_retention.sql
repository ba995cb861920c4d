-- The retention policy (docs/retention.md): each team's time zone and policy, what the daily
-- listing of its site saw (only the users it found deactivated, from when), and the deletions
-- the policy prepared. Times are sortable UTC text; due times are compared with the console's
-- own clock, passed in, never the database's.
CREATE TABLE retention_policies (
    team_id         BIGINT  PRIMARY KEY REFERENCES teams(id),
    -- An IANA name ('Europe/Berlin'); the weekday and time below are read in it.
    time_zone       TEXT    NOT NULL DEFAULT 'UTC',
    -- Off: the site is not listed and nothing is prepared (the zone is kept).
    enabled         BOOLEAN NOT NULL DEFAULT FALSE,
    -- Deactivated for at least this many days.
    min_days        BIGINT  NOT NULL,
    -- 0 = Monday … 6 = Sunday.
    weekday         BIGINT  NOT NULL CHECK (weekday BETWEEN 0 AND 6),
    -- Minutes after local midnight.
    at_minute       BIGINT  NOT NULL CHECK (at_minute BETWEEN 0 AND 1439),
    -- When it next prepares a deletion (UTC). Moved on by one conditional update, so one
    -- console process alone acts for each due time.
    next_fire_at    TEXT COLLATE "C"   NOT NULL,
    -- When the site is next listed (UTC), claimed the same way.
    next_listing_at TEXT COLLATE "C"   NOT NULL,
    saved_by        TEXT    NOT NULL,
    saved_at        TEXT COLLATE "C"   NOT NULL
);

-- Users a daily listing found deactivated, from the first listing that saw them so; a user
-- seen active again loses the row. Only these, never a copy of the site.
CREATE TABLE deactivated_sightings (
    team_id       BIGINT  NOT NULL REFERENCES teams(id),
    -- The SCIM users URL the account id means something at.
    users_url     TEXT    NOT NULL,
    account_id    TEXT    NOT NULL,
    -- The account's emails when first seen deactivated, as a JSON array.
    emails        TEXT    NOT NULL,
    first_seen_at TEXT COLLATE "C"   NOT NULL,
    PRIMARY KEY (team_id, account_id)
);

-- The previews the policy made: "Waiting for you" lists them until a run starts from one or
-- the preview is removed.
CREATE TABLE retention_previews (
    preview_id TEXT    PRIMARY KEY REFERENCES previews(id) ON DELETE CASCADE,
    team_id    BIGINT  NOT NULL REFERENCES teams(id),
    -- The due time it was made for.
    due_at     TEXT COLLATE "C"   NOT NULL,
    made_at    TEXT COLLATE "C"   NOT NULL,
    users      BIGINT  NOT NULL
);
CREATE INDEX retention_previews_team ON retention_previews (team_id, made_at);
