-- Email notifications (docs/notifications.md): deliveries by email beside the team's webhook,
-- the events each person chose not to be emailed about, and one-time links that confirm a
-- local account's email address.
--
-- SQLite cannot change a CHECK constraint in place: the two tables whose CHECK widens are
-- rebuilt (nothing references either).
CREATE TABLE notification_deliveries_new (
    id              TEXT    PRIMARY KEY,
    notification_id TEXT    NOT NULL REFERENCES notifications(id),
    team_id         INTEGER NOT NULL REFERENCES teams(id),
    channel         TEXT    NOT NULL CHECK (channel IN ('webhook', 'email')),
    address         TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'given_up')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT    NOT NULL,
    last_error      TEXT,
    sent_at         TEXT,
    claimed_by      TEXT,
    claimed_until   TEXT,
    UNIQUE (notification_id, channel, address)
);
INSERT INTO notification_deliveries_new SELECT * FROM notification_deliveries;
DROP TABLE notification_deliveries;
ALTER TABLE notification_deliveries_new RENAME TO notification_deliveries;
CREATE INDEX notification_deliveries_due ON notification_deliveries (state, next_attempt_at);
CREATE INDEX notification_deliveries_by_team ON notification_deliveries (team_id, next_attempt_at);

-- Opt-outs only: a person is emailed about every event that concerns them unless a row here
-- says otherwise (the defaults are "on").
CREATE TABLE notification_opt_outs (
    account_id  INTEGER NOT NULL REFERENCES accounts(id),
    -- An audit action's key ('approval_requested', ...).
    event       TEXT    NOT NULL,
    PRIMARY KEY (account_id, event)
);

CREATE TABLE account_links_new (
    secret_hash  TEXT    PRIMARY KEY,
    purpose      TEXT    NOT NULL CHECK (purpose IN ('setup', 'invitation', 'reset', 'confirm_email')),
    team_id      INTEGER REFERENCES teams(id),
    role         TEXT    CHECK (role IN ('owner', 'operator', 'viewer')),
    email        TEXT,
    created_by   TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    expires_at   TEXT    NOT NULL,
    used_at      TEXT,
    revoked_at   TEXT
);
INSERT INTO account_links_new SELECT * FROM account_links;
DROP TABLE account_links;
ALTER TABLE account_links_new RENAME TO account_links;
