//! The notifications outbox ([`OutboxStorage`], part of every [`super::Storage`]), written once
//! for both databases: each team's webhook, the notifications its events make, and their
//! deliveries, claimed by one console process at a time and recorded as sent or failed.
//!
//! A notification is written by [`Store::queue_notification_in`] inside the transaction that
//! appends the audit entry of its event (storage/audit/sql.rs): the outbox holds a
//! notification exactly when the trail holds its event, whatever crashes in between.

use super::column::{Maybe, Stamp};
use super::store::{Affected, Dialect, Store};
use super::{NewAuditEntry, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use model::audit::AuditAction;
use model::ids::{AccountId, TeamId};
use model::Named;
use std::sync::atomic::Ordering;

/// The audit actions that notify the team (the rest stay in the trail only): a request for
/// approval and its answer, and the end of a run.
pub const NOTIFYING: [AuditAction; 9] = [
    AuditAction::ApprovalRequested,
    AuditAction::ApprovalGiven,
    AuditAction::ApprovalDeclined,
    AuditAction::RunEnded,
    AuditAction::InvitationAccepted,
    AuditAction::DeletionPrepared,
    AuditAction::DeletionCancelled,
    AuditAction::DeletionReminder,
    AuditAction::DeletionDue,
];

/// What a test message's notification is called (no audit action: it records nothing).
pub const TEST_EVENT: &str = "test";

/// Who an event concerns by email (besides the team's webhook, which hears of every event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Concerned {
    /// The team's operators and owners, but not this address (the one who asked).
    OperatorsBut(String),
    /// These people (lower-case emails), if they are members of the team.
    People(Vec<String>),
}

/// The email inside a name as the console writes it ("Carol <carol@example.com>"), or the
/// name itself when it is a bare email; lower-case. None for a name with no email (the
/// console's own admin).
pub fn email_in(name: &str) -> Option<String> {
    let name = name.trim();
    let email = match name.strip_suffix('>').and_then(|n| n.rsplit_once('<')) {
        Some((_, inside)) => inside.trim(),
        None => name,
    };
    let (local, domain) = email.split_once('@')?;
    let plain = |part: &str| {
        !part.is_empty() && !part.contains(|c: char| c.is_whitespace() || "<>@,;".contains(c))
    };
    (plain(local) && plain(domain)).then(|| email.to_lowercase())
}

/// A team's webhook as stored.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredWebhook {
    pub url: String,
    /// Where the signing secret is derived from (never the secret itself).
    pub secret_salt: String,
    pub saved_by: String,
    #[sqlx(try_from = "Stamp")]
    pub saved_at: DateTime<Utc>,
}

/// A delivery claimed for sending, with what its notification says.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DueDelivery {
    /// The stable delivery id (the receiver's de-duplication key).
    pub id: String,
    pub team_id: TeamId,
    /// 'webhook' or 'email'.
    pub channel: String,
    /// An audit action's key, or [`TEST_EVENT`].
    pub event: String,
    pub actor: String,
    pub target: String,
    /// JSON text, as the audit entry's details.
    pub details: String,
    #[sqlx(try_from = "Stamp")]
    pub created_at: DateTime<Utc>,
    pub address: String,
    /// Attempts before this one.
    pub attempts: i64,
}

/// One line of the Team page's delivery log.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryRecord {
    pub id: String,
    pub event: String,
    pub actor: String,
    #[sqlx(try_from = "Stamp")]
    pub created_at: DateTime<Utc>,
    /// 'webhook' or 'email'.
    pub channel: String,
    pub address: String,
    /// 'pending', 'sent' or 'given_up'.
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    #[sqlx(try_from = "Maybe<Stamp>")]
    pub sent_at: Option<DateTime<Utc>>,
    #[sqlx(try_from = "Stamp")]
    pub next_attempt_at: DateTime<Utc>,
}

/// What [`OutboxStorage::claim_deliveries`] asks for: at most `limit` deliveries due at
/// `now` that nobody holds, held by `holder` until `until`.
#[derive(Clone, Copy, Debug)]
pub struct DeliveryClaim<'a> {
    pub holder: &'a str,
    pub now: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub limit: u32,
}

/// How a failed attempt is recorded: tried again at `retry_at`, or given up (None).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedAttempt {
    pub error: String,
    pub retry_at: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait OutboxStorage: Send + Sync {
    async fn webhook(&self, team_id: TeamId) -> Result<Option<StoredWebhook>>;
    /// Saves (or replaces) the team's webhook and appends `audit`, in one transaction.
    async fn save_webhook(
        &self,
        team_id: TeamId,
        webhook: &StoredWebhook,
        audit: &NewAuditEntry,
    ) -> Result<()>;
    /// Removes the team's webhook and its deliveries not yet sent (nothing goes to an address
    /// the team took away), appending `audit`, in one transaction. False when it had none.
    async fn remove_webhook(&self, team_id: TeamId, audit: &NewAuditEntry) -> Result<bool>;
    /// Queues a test message to the team's webhook; false when it has none.
    async fn queue_test_message(&self, team_id: TeamId, actor: &str) -> Result<bool>;
    /// Claims the deliveries `claim` asks for: a claim made by another process is never taken
    /// before it lapses.
    async fn claim_deliveries(&self, claim: &DeliveryClaim<'_>) -> Result<Vec<DueDelivery>>;
    /// Records delivery `id` sent, if `holder` still holds it; false otherwise.
    async fn delivery_sent(&self, id: &str, holder: &str, at: DateTime<Utc>) -> Result<bool>;
    /// Records a failed attempt at delivery `id`, if `holder` still holds it.
    async fn delivery_failed(&self, id: &str, holder: &str, failed: &FailedAttempt)
        -> Result<bool>;
    /// The team's newest deliveries, newest first.
    async fn delivery_log(&self, team_id: TeamId, limit: u32) -> Result<Vec<DeliveryRecord>>;
    /// From now on, also queue each notification as an email to each member it concerns
    /// ([`Concerned`]) who did not opt out of its event (the console has a mail server).
    fn email_people(&self, on: bool);
    /// The events (audit action keys) account `account` chose not to be emailed about.
    async fn email_opt_outs(&self, account: AccountId) -> Result<Vec<String>>;
    /// Replaces account `account`'s opt-outs with `events`.
    async fn set_email_opt_outs(&self, account: AccountId, events: &[String]) -> Result<()>;
}

impl<DB: Dialect> Store<DB> {
    /// Writes the notification `event` makes, and a delivery to each of the team's receivers,
    /// inside the caller's transaction. `event` is [`TEST_EVENT`] or a [`NOTIFYING`] action's
    /// key; anything else writes nothing.
    pub(in crate::storage) async fn queue_notification_in(
        conn: &mut DB::Connection,
        store: &Self,
        team_id: TeamId,
        at: DateTime<Utc>,
        event: &str,
        entry: &NewAuditEntry,
    ) -> Result<bool> {
        if event != TEST_EVENT && !NOTIFYING.iter().any(|a| a.key() == event) {
            return Ok(false);
        }
        let webhook: Option<String> =
            sqlx::query_scalar("SELECT url FROM team_webhooks WHERE team_id = $1")
                .bind(team_id)
                .fetch_optional(DB::on(&mut *conn))
                .await?;
        let emails = if store.emails_on.load(Ordering::Relaxed) && event != TEST_EVENT {
            email_recipients::<DB>(conn, team_id, event, entry).await?
        } else {
            Vec::new()
        };
        let receivers = webhook
            .into_iter()
            .map(|url| ("webhook", url))
            .chain(emails.into_iter().map(|email| ("email", email)));
        let mut id = None;
        for (channel, address) in receivers {
            let notification = match &id {
                Some(id) => id,
                None => {
                    id.insert(insert_notification::<DB>(conn, team_id, at, event, entry).await?)
                }
            };
            sqlx::query(
                "INSERT INTO notification_deliveries (id, notification_id, team_id, channel, \
                 address, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (notification_id, channel, address) DO NOTHING",
            )
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(notification.as_str())
            .bind(team_id)
            .bind(channel)
            .bind(address)
            .bind(Stamp(at))
            .execute(DB::on(&mut *conn))
            .await?;
        }
        Ok(id.is_some())
    }
}

/// Writes the notification itself (what every delivery of it says); returns its id.
async fn insert_notification<DB: Dialect>(
    conn: &mut DB::Connection,
    team_id: TeamId,
    at: DateTime<Utc>,
    event: &str,
    entry: &NewAuditEntry,
) -> Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO notifications (id, team_id, event, actor, target, details, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(team_id)
    .bind(event)
    .bind(&entry.actor)
    .bind(entry.target.clone().unwrap_or_default())
    .bind(entry.details.to_string())
    .bind(Stamp(at))
    .execute(DB::on(&mut *conn))
    .await?;
    Ok(id)
}

/// Who `event` concerns (docs/notifications.md, "Who gets an email"), read from the records
/// it is about inside the event's own transaction.
async fn concerned<DB: Dialect>(
    conn: &mut DB::Connection,
    event: &str,
    entry: &NewAuditEntry,
) -> Result<Concerned> {
    let target = entry.target.clone().unwrap_or_default();
    let detail = |key: &str| {
        entry
            .details
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or("")
    };
    Ok(match AuditAction::from_key(event) {
        // What the team's operators and owners must act on (not whoever caused it).
        Some(
            AuditAction::ApprovalRequested
            | AuditAction::DeletionPrepared
            | AuditAction::DeletionReminder
            | AuditAction::DeletionDue
            | AuditAction::DeletionCancelled,
        ) => Concerned::OperatorsBut(email_in(&entry.actor).unwrap_or_default()),
        Some(AuditAction::ApprovalDeclined) => requester::<DB>(conn, &target).await?,
        Some(AuditAction::ApprovalGiven) => requester::<DB>(conn, detail("preview")).await?,
        Some(AuditAction::RunEnded) => {
            let names: Option<(String, Option<String>)> =
                sqlx::query_as("SELECT created_by, approved_by FROM jobs WHERE id = $1")
                    .bind(target)
                    .fetch_optional(DB::on(&mut *conn))
                    .await?;
            let (started, approved) = names.unwrap_or_default();
            Concerned::People(
                [Some(started), approved]
                    .into_iter()
                    .flatten()
                    .filter_map(|name| email_in(&name))
                    .collect(),
            )
        }
        Some(AuditAction::InvitationAccepted) => {
            Concerned::People(email_in(detail("invited_by")).into_iter().collect())
        }
        _ => Concerned::People(Vec::new()),
    })
}

/// Whoever asked for approval of `preview`.
async fn requester<DB: Dialect>(conn: &mut DB::Connection, preview: &str) -> Result<Concerned> {
    let email: Option<String> =
        sqlx::query_scalar("SELECT requester_email FROM approvals WHERE preview_id = $1")
            .bind(preview)
            .fetch_optional(DB::on(&mut *conn))
            .await?;
    Ok(Concerned::People(
        email.and_then(|e| email_in(&e)).into_iter().collect(),
    ))
}

/// The emails `event` goes to: the members of the team it concerns who are signed up (an
/// account holds the membership) and did not opt out of it.
async fn email_recipients<DB: Dialect>(
    conn: &mut DB::Connection,
    team_id: TeamId,
    event: &str,
    entry: &NewAuditEntry,
) -> Result<Vec<String>> {
    let (operators, people) = match concerned::<DB>(conn, event, entry).await? {
        Concerned::OperatorsBut(but) => (Some(but), Vec::new()),
        Concerned::People(people) => (None, people),
    };
    let wanted = "SELECT m.email FROM team_members m WHERE m.team_id = $1 \
        AND m.account_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM notification_opt_outs o \
        WHERE o.account_id = m.account_id AND o.event = $2)";
    let mut emails: Vec<String> = match operators {
        Some(but) => {
            sqlx::query_scalar(&format!(
                "{wanted} AND m.role IN ('owner', 'operator') AND m.email <> $3 ORDER BY m.email"
            ))
            .bind(team_id)
            .bind(event)
            .bind(but)
            .fetch_all(DB::on(&mut *conn))
            .await?
        }
        None => Vec::new(),
    };
    for person in people {
        let member: Option<String> = sqlx::query_scalar(&format!("{wanted} AND m.email = $3"))
            .bind(team_id)
            .bind(event)
            .bind(person)
            .fetch_optional(DB::on(&mut *conn))
            .await?;
        emails.extend(member.filter(|m| !emails.contains(m)));
    }
    Ok(emails)
}

#[async_trait]
impl<DB: Dialect> OutboxStorage for Store<DB> {
    async fn webhook(&self, team_id: TeamId) -> Result<Option<StoredWebhook>> {
        Ok(sqlx::query_as(
            "SELECT url, secret_salt, saved_by, saved_at FROM team_webhooks WHERE team_id = $1",
        )
        .bind(team_id)
        .fetch_optional(self.read())
        .await?)
    }

    async fn save_webhook(
        &self,
        team_id: TeamId,
        webhook: &StoredWebhook,
        audit: &NewAuditEntry,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO team_webhooks (team_id, url, secret_salt, saved_by, saved_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (team_id) DO UPDATE SET url = excluded.url, \
             secret_salt = excluded.secret_salt, saved_by = excluded.saved_by, \
             saved_at = excluded.saved_at",
        )
        .bind(team_id)
        .bind(&webhook.url)
        .bind(&webhook.secret_salt)
        .bind(&webhook.saved_by)
        .bind(Stamp(webhook.saved_at))
        .execute(DB::on(&mut *tx))
        .await?;
        // Deliveries still waiting for the old address are not sent there any more.
        drop_unsent::<DB>(&mut tx, team_id).await?;
        Self::append_audit_in(&mut tx, self, team_id, self.clock.now(), audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn remove_webhook(&self, team_id: TeamId, audit: &NewAuditEntry) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let removed = sqlx::query("DELETE FROM team_webhooks WHERE team_id = $1")
            .bind(team_id)
            .execute(DB::on(&mut *tx))
            .await?
            .rows_affected()
            == 1;
        if removed {
            drop_unsent::<DB>(&mut tx, team_id).await?;
            Self::append_audit_in(&mut tx, self, team_id, self.clock.now(), audit).await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn queue_test_message(&self, team_id: TeamId, actor: &str) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let entry = NewAuditEntry {
            actor: actor.to_string(),
            action: AuditAction::TeamSettingsChanged,
            target: None,
            details: serde_json::json!({}),
        };
        let now = self.clock.now();
        let queued =
            Self::queue_notification_in(&mut tx, self, team_id, now, TEST_EVENT, &entry).await?;
        tx.commit().await?;
        Ok(queued)
    }

    async fn claim_deliveries(&self, claim: &DeliveryClaim<'_>) -> Result<Vec<DueDelivery>> {
        let DeliveryClaim {
            holder,
            now,
            until,
            limit,
        } = *claim;
        let mut tx = self.writer.begin().await?;
        // The free-and-due test is in the UPDATE itself, not only in its sub-select: on
        // PostgreSQL a second process blocked on the same rows re-checks it after the first
        // commits, and so takes none of the rows the first claimed.
        let claimed: Vec<String> = sqlx::query_scalar(&format!(
            "UPDATE notification_deliveries SET claimed_by = $1, claimed_until = $2 \
             WHERE id IN (SELECT id FROM notification_deliveries WHERE state = 'pending' \
             AND next_attempt_at <= $3 AND (claimed_until IS NULL OR claimed_until < $4) \
             ORDER BY next_attempt_at, id LIMIT $5{}) \
             AND state = 'pending' AND (claimed_until IS NULL OR claimed_until < $6) RETURNING id",
            DB::FOR_UPDATE
        ))
        .bind(holder)
        .bind(Stamp(until))
        .bind(Stamp(now))
        .bind(Stamp(now))
        .bind(i64::from(limit))
        .bind(Stamp(now))
        .fetch_all(DB::on(&mut *tx))
        .await?;
        let mut due = Vec::with_capacity(claimed.len());
        for id in claimed {
            let delivery: DueDelivery = sqlx::query_as(
                "SELECT d.id, d.team_id, d.channel, n.event, n.actor, n.target, n.details, \
                 n.created_at, d.address, d.attempts FROM notification_deliveries d \
                 JOIN notifications n ON n.id = d.notification_id WHERE d.id = $1",
            )
            .bind(&id)
            .fetch_one(DB::on(&mut *tx))
            .await?;
            due.push(delivery);
        }
        tx.commit().await?;
        due.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(due)
    }

    async fn delivery_sent(&self, id: &str, holder: &str, at: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE notification_deliveries SET state = 'sent', sent_at = $1, \
             attempts = attempts + 1, last_error = NULL, claimed_by = NULL, claimed_until = NULL \
             WHERE id = $2 AND claimed_by = $3 AND state = 'pending'",
        )
        .bind(Stamp(at))
        .bind(id)
        .bind(holder)
        .execute(self.write())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delivery_failed(
        &self,
        id: &str,
        holder: &str,
        failed: &FailedAttempt,
    ) -> Result<bool> {
        let (state, next) = match failed.retry_at {
            Some(at) => ("pending", Some(Stamp(at))),
            None => ("given_up", None),
        };
        let done = sqlx::query(
            "UPDATE notification_deliveries SET state = $1, attempts = attempts + 1, \
             last_error = $2, next_attempt_at = COALESCE($3, next_attempt_at), \
             claimed_by = NULL, claimed_until = NULL \
             WHERE id = $4 AND claimed_by = $5 AND state = 'pending'",
        )
        .bind(state)
        .bind(&failed.error)
        .bind(next)
        .bind(id)
        .bind(holder)
        .execute(self.write())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delivery_log(&self, team_id: TeamId, limit: u32) -> Result<Vec<DeliveryRecord>> {
        Ok(sqlx::query_as(
            "SELECT d.id, n.event, n.actor, n.created_at, d.channel, d.address, d.state, d.attempts, \
             d.last_error, d.sent_at, d.next_attempt_at FROM notification_deliveries d \
             JOIN notifications n ON n.id = d.notification_id WHERE d.team_id = $1 \
             ORDER BY n.created_at DESC, d.id DESC LIMIT $2",
        )
        .bind(team_id)
        .bind(i64::from(limit))
        .fetch_all(self.read())
        .await?)
    }

    fn email_people(&self, on: bool) {
        self.emails_on.store(on, Ordering::Relaxed);
    }

    async fn email_opt_outs(&self, account: AccountId) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT event FROM notification_opt_outs WHERE account_id = $1 ORDER BY event",
        )
        .bind(account)
        .fetch_all(self.read())
        .await?)
    }

    async fn set_email_opt_outs(&self, account: AccountId, events: &[String]) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM notification_opt_outs WHERE account_id = $1")
            .bind(account)
            .execute(DB::on(&mut *tx))
            .await?;
        for event in events {
            sqlx::query(
                "INSERT INTO notification_opt_outs (account_id, event) VALUES ($1, $2) \
                 ON CONFLICT (account_id, event) DO NOTHING",
            )
            .bind(account)
            .bind(event)
            .execute(DB::on(&mut *tx))
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Gives up, with words for the log, the team's deliveries not yet sent when its webhook was
/// replaced or removed.
async fn drop_unsent<DB: Dialect>(conn: &mut DB::Connection, team_id: TeamId) -> Result<()> {
    sqlx::query(
        "UPDATE notification_deliveries SET state = 'given_up', claimed_by = NULL, \
         claimed_until = NULL, last_error = $1 WHERE team_id = $2 AND state = 'pending'",
    )
    .bind("Not sent: the webhook address was changed or removed before it went out.")
    .bind(team_id)
    .execute(DB::on(&mut *conn))
    .await?;
    Ok(())
}
