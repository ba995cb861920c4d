-- Who an account is, and what it has proven (docs/accounts.md, "Who gets in, and as whom").
--
-- email_proven: the account has shown it receives mail at its email, or its company's sign-in
-- service vouched for it (single sign-on with a verified email). Only a proven account takes up
-- a membership an owner granted "by email"; an account made from an invitation has proven only
-- that it holds the link. Accounts without a password came through single sign-on: proven.
ALTER TABLE accounts ADD COLUMN email_proven BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE accounts SET email_proven = TRUE WHERE password_hash IS NULL;

-- Single sign-on identities, by the sign-in service (issuer) and its stable id for the person
-- (subject), never by email: an email can be reassigned, a subject cannot.
CREATE TABLE sso_identities (
    issuer      TEXT    COLLATE "C" NOT NULL,
    subject     TEXT    COLLATE "C" NOT NULL,
    account_id  BIGINT  NOT NULL REFERENCES accounts(id),
    linked_at   TEXT    COLLATE "C" NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX sso_identities_by_account ON sso_identities (account_id);

-- A membership is either granted to an account (account_id set: setup, a team's creator, an
-- accepted invitation, a proven sign-in that took up a by-email grant) or waiting for whoever
-- proves the email (account_id NULL). Memberships of existing accounts are theirs already.
ALTER TABLE team_members ADD COLUMN account_id BIGINT REFERENCES accounts(id);
UPDATE team_members m
   SET account_id = a.id FROM accounts a WHERE a.email = m.email;
CREATE INDEX team_members_by_account ON team_members (account_id);

-- Invitations can be revoked by an owner, and are voided when their maker stops being an owner.
ALTER TABLE account_links ADD COLUMN revoked_at TEXT COLLATE "C";

-- Throttling reserves an attempt before the password is checked: one row per subject is the
-- lock that makes "count, then reserve" one step (a second transaction waits on the row).
CREATE TABLE sign_in_subjects (
    subject  TEXT COLLATE "C" PRIMARY KEY
);
-- The attempt a failure row was reserved for: a sign-in that succeeds takes its row back.
ALTER TABLE sign_in_failures ADD COLUMN attempt TEXT COLLATE "C";
CREATE INDEX sign_in_failures_by_attempt ON sign_in_failures (attempt);
