-- Email notifications (docs/notifications.md): deliveries by email beside the team's webhook,
-- the events each person chose not to be emailed about, and one-time links that confirm a
-- local account's email address.
ALTER TABLE notification_deliveries DROP CONSTRAINT notification_deliveries_channel_check;
ALTER TABLE notification_deliveries ADD CONSTRAINT notification_deliveries_channel_check
    CHECK (channel IN ('webhook', 'email'));

-- Opt-outs only: a person is emailed about every event that concerns them unless a row here
-- says otherwise (the defaults are "on").
CREATE TABLE notification_opt_outs (
    account_id  BIGINT  NOT NULL REFERENCES accounts(id),
    -- An audit action's key ('approval_requested', ...).
    event       TEXT    NOT NULL,
    PRIMARY KEY (account_id, event)
);

ALTER TABLE account_links DROP CONSTRAINT account_links_purpose_check;
ALTER TABLE account_links ADD CONSTRAINT account_links_purpose_check
    CHECK (purpose IN ('setup', 'invitation', 'reset', 'confirm_email'));
