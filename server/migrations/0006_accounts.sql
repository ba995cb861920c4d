-- People, teams and who may do what (see server/src/service/accounts.rs). Emails are stored
-- lower-cased, so one person is one row whatever case they type.

-- A person who can sign in: with a password (local account) or through single sign-on
-- (password_hash NULL). console_owner: may create teams and give password-reset links.
-- session_epoch: sessions carry the epoch they were made in; "sign out everywhere" and a
-- password change raise it, so every older session stops working at its next request.
CREATE TABLE accounts (
    id             INTEGER PRIMARY KEY,
    email          TEXT    NOT NULL UNIQUE,
    name           TEXT    NOT NULL,
    password_hash  TEXT,
    console_owner  INTEGER NOT NULL DEFAULT 0,
    session_epoch  INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT    NOT NULL
);

-- Who belongs to which team, by email: a member added by email before their first sign-in
-- (single sign-on) is a member as soon as they sign in.
CREATE TABLE team_members (
    team_id   INTEGER NOT NULL REFERENCES teams(id),
    email     TEXT    NOT NULL,
    role      TEXT    NOT NULL CHECK (role IN ('owner', 'operator', 'viewer')),
    added_by  TEXT    NOT NULL,
    added_at  TEXT    NOT NULL,
    PRIMARY KEY (team_id, email)
);
CREATE INDEX team_members_by_email ON team_members (email);

-- One-time links: the first owner's setup link, invitations to a team, password resets.
-- Only a SHA-256 of the link's secret is kept: the database alone cannot be used to sign in.
CREATE TABLE account_links (
    secret_hash  TEXT    PRIMARY KEY,
    purpose      TEXT    NOT NULL CHECK (purpose IN ('setup', 'invitation', 'reset')),
    team_id      INTEGER REFERENCES teams(id),
    role         TEXT    CHECK (role IN ('owner', 'operator', 'viewer')),
    email        TEXT,
    created_by   TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    expires_at   TEXT    NOT NULL,
    used_at      TEXT
);

-- Failed sign-ins, by account ("account:<email>") and by address ("address:<ip>"), for
-- throttling; rows older than the throttling window are removed as new ones arrive.
CREATE TABLE sign_in_failures (
    subject  TEXT NOT NULL,
    at       TEXT NOT NULL
);
CREATE INDEX sign_in_failures_by_subject ON sign_in_failures (subject, at);
