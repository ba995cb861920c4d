-- What each team used in the last hour (the hourly limits, service/limits.rs): previews made and runs
-- started, one row each. Kept in the database so every replica counts the same hour and a
-- restart forgets nothing; a team's rows older than an hour go as new ones are written.
CREATE TABLE team_usage (
    team_id  INTEGER NOT NULL REFERENCES teams(id),
    what     TEXT    NOT NULL,   -- 'preview' or 'run'
    at       TEXT    NOT NULL
);
CREATE INDEX team_usage_by_team ON team_usage (team_id, what, at);
