-- The notifications outbox (docs/notifications.md). A notification is written in the
-- transaction that appends the audit entry recording its event, so it exists exactly when the
-- event's entry does; each delivery (one per recipient: today the team's webhook) is sent by one
-- console process at a time (`claimed_by` until `claimed_until`) and is never sent to the same
-- address twice for one notification (the unique key). Times are sortable UTC text.
CREATE TABLE team_webhooks (
    team_id     INTEGER PRIMARY KEY REFERENCES teams(id),
    -- The receiver's address (checked by the site-address guard when saved).
    url         TEXT    NOT NULL,
    -- Not the signing secret: the secret is derived from this and the console's key
    -- (service/notify), so a copy of the database alone cannot sign.
    secret_salt TEXT    NOT NULL,
    saved_by    TEXT    NOT NULL,
    saved_at    TEXT    NOT NULL
);

CREATE TABLE notifications (
    id          TEXT    PRIMARY KEY,
    team_id     INTEGER NOT NULL REFERENCES teams(id),
    -- The audit action that caused it ('approval_requested', …) or 'test'.
    event       TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    target      TEXT    NOT NULL DEFAULT '',
    -- The audit entry's details: counts and ids, never a token or a list of users.
    details     TEXT    NOT NULL,
    created_at  TEXT    NOT NULL
);

CREATE TABLE notification_deliveries (
    -- The stable delivery id receivers de-duplicate by.
    id              TEXT    PRIMARY KEY,
    notification_id TEXT    NOT NULL REFERENCES notifications(id),
    team_id         INTEGER NOT NULL REFERENCES teams(id),
    channel         TEXT    NOT NULL CHECK (channel IN ('webhook')),
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
CREATE INDEX notification_deliveries_due ON notification_deliveries (state, next_attempt_at);
CREATE INDEX notification_deliveries_by_team ON notification_deliveries (team_id, next_attempt_at);
