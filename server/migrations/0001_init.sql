-- Teams own everything else; one default team until accounts arrive.
CREATE TABLE teams (
    id          INTEGER PRIMARY KEY,
    name        TEXT    NOT NULL,
    created_at  TEXT    NOT NULL
);

INSERT INTO teams (id, name, created_at)
VALUES (1, 'Default team', strftime('%Y-%m-%dT%H:%M:%SZ', 'now'));

-- One row per deletion or deactivation run.
CREATE TABLE jobs (
    id          TEXT    PRIMARY KEY,
    team_id     INTEGER NOT NULL REFERENCES teams(id),
    created_at  TEXT    NOT NULL,
    state       TEXT    NOT NULL
);

CREATE INDEX jobs_by_team ON jobs (team_id, created_at);
