//! The undo window's records ([`UndoStorage`], part of every [`super::Storage`]): one row per
//! "Deactivate now, delete after N days" run and one per user it deactivated, written once for
//! both databases (docs/undo-window.md).
//!
//! Every change is one guarded `UPDATE`: a user is restored only while the window is open, a
//! window is cancelled only while open, and the date is carried out by one console process
//! at a time (`claimed_by` until `claimed_until`, as notification deliveries are), whose claim
//! lapses if it dies. Times are the console's own clock, passed in, never the database's.

use super::column::{Maybe, Stamp};
use super::store::{Affected, Dialect, Store};
use super::{NewAuditEntry, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use model::ids::{JobId, TeamId};

/// Where a window stands (stored by these names).
pub mod undo_states {
    pub const OPEN: &str = "open";
    pub const CANCELLED: &str = "cancelled";
    pub const ASKED: &str = "asked";
    pub const DONE: &str = "done";
}
use undo_states::{CANCELLED, OPEN};

/// A window opened with its run (see `NewJob::undo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUndoWindow {
    /// `YYYY-MM-DD`, as the typed phrase named it.
    pub delete_on: String,
    pub due_at: DateTime<Utc>,
    /// Who typed the phrase ("Name <email>").
    pub confirmed_by: String,
    pub ask_again: bool,
    pub users: Vec<UndoUser>,
}

/// A user the run is to deactivate, as they were then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UndoUser {
    pub account_id: String,
    pub name: String,
    pub emails: Vec<String>,
}

/// A window as stored.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct UndoWindowRecord {
    pub job_id: JobId,
    pub team_id: TeamId,
    pub delete_on: String,
    #[sqlx(try_from = "Stamp")]
    pub due_at: DateTime<Utc>,
    pub confirmed_by: String,
    pub ask_again: bool,
    /// One of [`undo_states`].
    pub state: String,
    /// The smallest number of days before the date a reminder was written for; 0 = none yet.
    pub reminded_days: i64,
    /// The run that deleted at the date.
    pub delete_job_id: Option<String>,
    /// The preview that waits for a person ("Ask again at the date").
    pub preview_id: Option<String>,
}

/// A window's user as stored.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct UndoUserRecord {
    pub account_id: String,
    pub name: String,
    /// A JSON array of the emails the account had when deactivated.
    #[sqlx(rename = "emails")]
    pub emails_json: String,
    #[sqlx(try_from = "Maybe<Stamp>")]
    pub restored_at: Option<DateTime<Utc>>,
    pub restored_by: Option<String>,
    /// What the date decided (`engine::undo::Verdict`'s name), once it came.
    pub verdict: Option<String>,
}

impl UndoUserRecord {
    pub fn emails(&self) -> Vec<String> {
        serde_json::from_str(&self.emails_json).unwrap_or_default()
    }
}

/// What [`UndoStorage::claim_undo`] asks for: the windows due at `now` (or only `job`,
/// whatever its date: "Delete now"), held by `holder` until `until`.
#[derive(Clone, Copy, Debug)]
pub struct UndoClaim<'a> {
    pub holder: &'a str,
    pub now: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub job: Option<&'a JobId>,
}

/// How a claimed window ends: its new state, what each user came to, the run or preview it
/// made, and the trail's entry.
#[derive(Clone, Debug)]
pub struct UndoClosing<'a> {
    pub job_id: &'a JobId,
    pub holder: &'a str,
    pub state: &'static str,
    pub verdicts: &'a [(String, &'static str)],
    pub delete_job_id: Option<&'a str>,
    pub preview_id: Option<&'a str>,
    pub at: DateTime<Utc>,
    pub audit: &'a NewAuditEntry,
}

#[async_trait]
pub trait UndoStorage: Send + Sync {
    async fn undo_window(
        &self,
        team_id: TeamId,
        job_id: &JobId,
    ) -> Result<Option<UndoWindowRecord>>;
    /// The window's users, by name.
    async fn undo_users(&self, job_id: &JobId) -> Result<Vec<UndoUserRecord>>;
    /// The team's open windows due before `before`, and those whose date came with a
    /// preview waiting for a person, soonest first: "Waiting for you".
    async fn undo_windows_due(
        &self,
        team_id: TeamId,
        before: DateTime<Utc>,
    ) -> Result<Vec<UndoWindowRecord>>;
    /// Every team's open windows due before `before` (the reminders' look-ahead).
    async fn open_undo_windows(&self, before: DateTime<Utc>) -> Result<Vec<UndoWindowRecord>>;
    /// Marks `account_id` restored by `by` at `at` and appends `audit`, in one transaction,
    /// only while the window is open and the user not restored yet; false (nothing written)
    /// otherwise.
    async fn restore_undo_user(
        &self,
        team_id: TeamId,
        job_id: &JobId,
        account_id: &str,
        by: &str,
        at: DateTime<Utc>,
        audit: &NewAuditEntry,
    ) -> Result<bool>;
    /// Cancels an open window (every user not yet restored is marked restored by `by`) and
    /// appends `audit`, in one transaction; false when it was not open (or was claimed).
    async fn cancel_undo_window(
        &self,
        team_id: TeamId,
        job_id: &JobId,
        by: &str,
        at: DateTime<Utc>,
        audit: &NewAuditEntry,
    ) -> Result<bool>;
    /// Records that the reminder `days` before the date was given, with `audit`, once: only
    /// when no reminder as near was recorded and the window is open; false otherwise.
    async fn record_undo_reminder(
        &self,
        team_id: TeamId,
        job_id: &JobId,
        days: i64,
        at: DateTime<Utc>,
        audit: &NewAuditEntry,
    ) -> Result<bool>;
    /// Claims the open windows `claim` asks for whose claim is free or lapsed.
    async fn claim_undo(&self, claim: &UndoClaim<'_>) -> Result<Vec<UndoWindowRecord>>;
    /// Ends a window `closing.holder` still holds: its state, the users' verdicts and the
    /// trail's entry in one transaction; false (nothing written) when its claim was lost.
    async fn close_undo_window(&self, team_id: TeamId, closing: &UndoClosing<'_>) -> Result<bool>;
    /// Gives a claim back (the date could not be carried out now; tried again later).
    async fn release_undo(&self, job_id: &JobId, holder: &str) -> Result<()>;
}

const WINDOW_COLUMNS: &str = "SELECT job_id, team_id, delete_on, due_at, confirmed_by, \
    ask_again, state, reminded_days, delete_job_id, preview_id FROM undo_windows WHERE ";

impl<DB: Dialect> Store<DB> {
    /// Appends `audit` when `changed` (the guarded update took) and commits: the trail holds
    /// the entry exactly when the change was made. Returns `changed`.
    async fn commit_if(
        &self,
        mut tx: sqlx::Transaction<'static, DB>,
        changed: bool,
        team_id: TeamId,
        at: DateTime<Utc>,
        audit: &NewAuditEntry,
    ) -> Result<bool> {
        if changed {
            Self::append_audit_in(&mut tx, self, team_id, at, audit).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Opens `window` for the job being created, inside `create_job`'s transaction: the
    /// window exists exactly when its run does.
    pub(in crate::storage) async fn open_undo_window_in(
        conn: &mut DB::Connection,
        team_id: TeamId,
        job_id: &JobId,
        window: &NewUndoWindow,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO undo_windows (job_id, team_id, delete_on, due_at, confirmed_by, \
             ask_again, state, reminded_days) VALUES ($1, $2, $3, $4, $5, $6, $7, 0)",
        )
        .bind(job_id)
        .bind(team_id)
        .bind(&window.delete_on)
        .bind(Stamp(window.due_at))
        .bind(&window.confirmed_by)
        .bind(window.ask_again)
        .bind(OPEN)
        .execute(DB::on(&mut *conn))
        .await?;
        for user in &window.users {
            sqlx::query(
                "INSERT INTO undo_window_users (job_id, account_id, name, emails) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(job_id)
            .bind(&user.account_id)
            .bind(&user.name)
            .bind(serde_json::Value::from(user.emails.clone()).to_string())
            .execute(DB::on(&mut *conn))
            .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl<DB: Dialect> UndoStorage for Store<DB> {
    async fn undo_window(
        &self,
        team_id: TeamId,
        job_id: &JobId,
    ) -> Result<Option<UndoWindowRecord>> {
        Ok(
            sqlx::query_as(&format!("{WINDOW_COLUMNS} team_id = $1 AND job_id = $2"))
                .bind(team_id)
                .bind(job_id)
                .fetch_optional(self.read())
                .await?,
        )
    }

    async fn undo_users(&self, job_id: &JobId) -> Result<Vec<UndoUserRecord>> {
        Ok(sqlx::query_as(
            "SELECT account_id, name, emails, restored_at, restored_by, verdict \
             FROM undo_window_users WHERE job_id = $1 ORDER BY name, account_id",
        )
        .bind(job_id)
        .fetch_all(self.read())
        .await?)
    }

    async fn undo_windows_due(
        &self,
        team_id: TeamId,
        before: DateTime<Utc>,
    ) -> Result<Vec<UndoWindowRecord>> {
        Ok(sqlx::query_as(&format!(
            "{WINDOW_COLUMNS} team_id = $1 AND ((state = $2 AND due_at < $3) OR state = $4) \
             ORDER BY due_at, job_id"
        ))
        .bind(team_id)
        .bind(OPEN)
        .bind(Stamp(before))
        .bind(undo_states::ASKED)
        .fetch_all(self.read())
        .await?)
    }

    async fn open_undo_windows(&self, before: DateTime<Utc>) -> Result<Vec<UndoWindowRecord>> {
        Ok(sqlx::query_as(&format!(
            "{WINDOW_COLUMNS} state = $1 AND due_at < $2 ORDER BY due_at, job_id"
        ))
        .bind(OPEN)
        .bind(Stamp(before))
        .fetch_all(self.read())
        .await?)
    }

    async fn restore_undo_user(
        &self,
        team_id: TeamId,
        job_id: &JobId,
        account_id: &str,
        by: &str,
        at: DateTime<Utc>,
        audit: &NewAuditEntry,
    ) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE undo_window_users SET restored_at = $1, restored_by = $2 \
             WHERE job_id = $3 AND account_id = $4 AND restored_at IS NULL \
             AND EXISTS (SELECT 1 FROM undo_windows w WHERE w.job_id = $3 AND w.team_id = $5 \
             AND w.state = $6 AND (w.claimed_until IS NULL OR w.claimed_until < $7))",
        )
        .bind(Stamp(at))
        .bind(by)
        .bind(job_id)
        .bind(account_id)
        .bind(team_id)
        .bind(OPEN)
        .bind(Stamp(at))
        .execute(DB::on(&mut *tx))
        .await?;
        self.commit_if(tx, done.rows_affected() == 1, team_id, at, audit)
            .await
    }

    async fn cancel_undo_window(
        &self,
        team_id: TeamId,
        job_id: &JobId,
        by: &str,
        at: DateTime<Utc>,
        audit: &NewAuditEntry,
    ) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE undo_windows SET state = $1, closed_at = $2 WHERE job_id = $3 \
             AND team_id = $4 AND state = $5 AND (claimed_until IS NULL OR claimed_until < $6)",
        )
        .bind(CANCELLED)
        .bind(Stamp(at))
        .bind(job_id)
        .bind(team_id)
        .bind(OPEN)
        .bind(Stamp(at))
        .execute(DB::on(&mut *tx))
        .await?;
        let cancelled = done.rows_affected() == 1;
        if cancelled {
            sqlx::query(
                "UPDATE undo_window_users SET restored_at = $1, restored_by = $2 \
                 WHERE job_id = $3 AND restored_at IS NULL",
            )
            .bind(Stamp(at))
            .bind(by)
            .bind(job_id)
            .execute(DB::on(&mut *tx))
            .await?;
        }
        self.commit_if(tx, cancelled, team_id, at, audit).await
    }

    async fn record_undo_reminder(
        &self,
        team_id: TeamId,
        job_id: &JobId,
        days: i64,
        at: DateTime<Utc>,
        audit: &NewAuditEntry,
    ) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE undo_windows SET reminded_days = $1 WHERE job_id = $2 AND team_id = $3 \
             AND state = $4 AND (reminded_days = 0 OR reminded_days > $5)",
        )
        .bind(days)
        .bind(job_id)
        .bind(team_id)
        .bind(OPEN)
        .bind(days)
        .execute(DB::on(&mut *tx))
        .await?;
        self.commit_if(tx, done.rows_affected() == 1, team_id, at, audit)
            .await
    }

    async fn claim_undo(&self, claim: &UndoClaim<'_>) -> Result<Vec<UndoWindowRecord>> {
        let UndoClaim {
            holder,
            now,
            until,
            job,
        } = *claim;
        // "Delete now" names its window and ignores the date; the periodic claim takes what
        // is due. The free-claim test is in the UPDATE itself, so of two processes racing
        // (PostgreSQL re-checks it after the first commits) one gets each window.
        let (due_by, only) = match job {
            Some(job) => (Stamp(now + chrono::Duration::days(36_500)), job.to_string()),
            None => (Stamp(now), String::new()),
        };
        let mut tx = self.writer.begin().await?;
        let claimed: Vec<String> = sqlx::query_scalar(
            "UPDATE undo_windows SET claimed_by = $1, claimed_until = $2 \
             WHERE state = $3 AND due_at <= $4 AND ($5 = '' OR job_id = $5) \
             AND (claimed_until IS NULL OR claimed_until < $6) RETURNING job_id",
        )
        .bind(holder)
        .bind(Stamp(until))
        .bind(OPEN)
        .bind(due_by)
        .bind(&only)
        .bind(Stamp(now))
        .fetch_all(DB::on(&mut *tx))
        .await?;
        let mut windows = Vec::with_capacity(claimed.len());
        for id in claimed {
            let window: UndoWindowRecord = sqlx::query_as(&format!("{WINDOW_COLUMNS} job_id = $1"))
                .bind(&id)
                .fetch_one(DB::on(&mut *tx))
                .await?;
            windows.push(window);
        }
        tx.commit().await?;
        Ok(windows)
    }

    async fn close_undo_window(&self, team_id: TeamId, closing: &UndoClosing<'_>) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE undo_windows SET state = $1, delete_job_id = $2, preview_id = $3, \
             closed_at = $4, claimed_by = NULL, claimed_until = NULL \
             WHERE job_id = $5 AND team_id = $6 AND state = $7 AND claimed_by = $8",
        )
        .bind(closing.state)
        .bind(closing.delete_job_id.map(str::to_string))
        .bind(closing.preview_id.map(str::to_string))
        .bind(Stamp(closing.at))
        .bind(closing.job_id)
        .bind(team_id)
        .bind(OPEN)
        .bind(closing.holder)
        .execute(DB::on(&mut *tx))
        .await?;
        let closed = done.rows_affected() == 1;
        if closed {
            for (account_id, verdict) in closing.verdicts {
                sqlx::query(
                    "UPDATE undo_window_users SET verdict = $1 \
                     WHERE job_id = $2 AND account_id = $3",
                )
                .bind(*verdict)
                .bind(closing.job_id)
                .bind(account_id)
                .execute(DB::on(&mut *tx))
                .await?;
            }
        }
        self.commit_if(tx, closed, team_id, closing.at, closing.audit)
            .await
    }

    async fn release_undo(&self, job_id: &JobId, holder: &str) -> Result<()> {
        sqlx::query(
            "UPDATE undo_windows SET claimed_by = NULL, claimed_until = NULL \
             WHERE job_id = $1 AND claimed_by = $2",
        )
        .bind(job_id)
        .bind(holder)
        .execute(self.write())
        .await?;
        Ok(())
    }
}
