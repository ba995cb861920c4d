//! Two-person approval's records: each team's setting, and the request made from a preview
//! ([`ApprovalStorage`], part of every [`super::Storage`]), with their implementation on both
//! databases.
//!
//! A request leaves "awaiting" once, by one guarded update (`… WHERE decision IS NULL AND
//! expires_at > now`): approved only in the transaction that creates its run
//! (`approval_step::on_sqlite::approve_in`, called by `create_job`), declined only while no run
//! exists ([`ApprovalStorage::decline_approval`]). Whichever commits first wins; the other
//! changes nothing, so a declined request never has a run and an approved one never a decline.

use super::rows::{enum_from_name, parse_stamp, stamp};
use super::{NewAuditEntry, Result, StorageError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use model::ids::{PreviewId, TeamId};
use model::team::{ApprovalPolicy, TeamSettings};
use model::Named;
use serde::{Deserialize, Serialize};

/// What a second operator decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approved,
    Declined,
}

/// A request for approval of a preview's run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalRecord {
    pub preview_id: PreviewId,
    /// As the trail names them ("Name <email>").
    pub requested_by: String,
    pub requester_email: String,
    pub requested_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub decision: Option<Decision>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

#[async_trait]
pub trait ApprovalStorage: Send + Sync {
    /// The team's settings (the defaults when never saved).
    async fn team_settings(&self, team_id: TeamId) -> Result<TeamSettings>;
    async fn save_team_settings(&self, team_id: TeamId, settings: &TeamSettings) -> Result<()>;
    /// Records a request; false (nothing written) when the preview has one already.
    async fn request_approval(&self, team_id: TeamId, request: &ApprovalRecord) -> Result<bool>;
    async fn approval(
        &self,
        team_id: TeamId,
        preview_id: &PreviewId,
    ) -> Result<Option<ApprovalRecord>>;
    /// The team's requests that no run came from (awaiting, declined or expired), newest
    /// first, at most `limit`: what Overview and History list beside the runs.
    async fn unrun_approvals(&self, team_id: TeamId, limit: u32) -> Result<Vec<ApprovalRecord>>;
    /// Who approved each approved request of the team: (preview, approver).
    async fn approvers(&self, team_id: TeamId) -> Result<Vec<(PreviewId, String)>>;
    /// Declines a request still awaiting at `at` (undecided, not expired, and no run started
    /// from its preview) and appends `audit` to the team's trail, in one transaction; false,
    /// writing nothing, when it no longer awaited. (Approving is creating the run: see
    /// `NewJob::approval`.)
    async fn decline_approval(
        &self,
        team_id: TeamId,
        preview_id: &PreviewId,
        by: &str,
        reason: &str,
        at: DateTime<Utc>,
        audit: &NewAuditEntry,
    ) -> Result<bool>;
}

#[derive(sqlx::FromRow)]
struct ApprovalRow {
    preview_id: PreviewId,
    requested_by: String,
    requester_email: String,
    requested_at: String,
    expires_at: String,
    decision: Option<String>,
    decided_by: Option<String>,
    decided_at: Option<String>,
    reason: Option<String>,
}

impl TryFrom<ApprovalRow> for ApprovalRecord {
    type Error = StorageError;

    fn try_from(r: ApprovalRow) -> Result<ApprovalRecord> {
        Ok(ApprovalRecord {
            decision: r
                .decision
                .as_deref()
                .map(|d| enum_from_name("decision", d))
                .transpose()?,
            decided_at: r.decided_at.as_deref().map(parse_stamp).transpose()?,
            requested_at: parse_stamp(&r.requested_at)?,
            expires_at: parse_stamp(&r.expires_at)?,
            preview_id: r.preview_id,
            requested_by: r.requested_by,
            requester_email: r.requester_email,
            decided_by: r.decided_by,
            reason: r.reason,
        })
    }
}

/// The statements of [`ApprovalStorage`], written once with `$n` placeholders (both
/// databases take them) and implemented for each storage: `$read` is the pool reads use,
/// `$write` the one writes use (SQLite has one writer connection of its own).
macro_rules! approval_queries {
    ($storage:ty, $read:ident, $write:ident, $audit:ident) => {
#[async_trait]
        impl ApprovalStorage for $storage {
    async fn team_settings(&self, team_id: TeamId) -> Result<TeamSettings> {
        let row: Option<(String, bool)> = sqlx::query_as(
            "SELECT approval, approve_deactivations FROM team_settings WHERE team_id = $1",
        )
        .bind(team_id)
        .fetch_optional(&self.$read)
        .await?;
        match row {
            None => Ok(TeamSettings::default()),
            Some((approval, approve_deactivations)) => Ok(TeamSettings {
                approval: ApprovalPolicy::from_key(&approval).ok_or_else(|| {
                    StorageError::Damaged(format!("unknown approval setting {approval:?}"))
                })?,
                approve_deactivations,
            }),
        }
    }

    async fn save_team_settings(&self, team_id: TeamId, settings: &TeamSettings) -> Result<()> {
        sqlx::query(
            "INSERT INTO team_settings (team_id, approval, approve_deactivations) VALUES ($1, $2, $3) \
             ON CONFLICT (team_id) DO UPDATE SET approval = excluded.approval, \
             approve_deactivations = excluded.approve_deactivations",
        )
        .bind(team_id)
        .bind(settings.approval.key())
        .bind(settings.approve_deactivations)
        .execute(&self.$write)
        .await?;
        Ok(())
    }

    async fn request_approval(&self, team_id: TeamId, request: &ApprovalRecord) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO approvals (preview_id, team_id, requested_by, requester_email, \
             requested_at, expires_at) SELECT $1, $2, $3, $4, $5, $6 \
             WHERE EXISTS (SELECT 1 FROM previews WHERE id = $7 AND team_id = $8) \
             ON CONFLICT (preview_id) DO NOTHING",
        )
        .bind(&request.preview_id)
        .bind(team_id)
        .bind(&request.requested_by)
        .bind(&request.requester_email)
        .bind(stamp(request.requested_at))
        .bind(stamp(request.expires_at))
        .bind(&request.preview_id)
        .bind(team_id)
        .execute(&self.$write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn approval(
        &self,
        team_id: TeamId,
        preview_id: &PreviewId,
    ) -> Result<Option<ApprovalRecord>> {
        let row: Option<ApprovalRow> = sqlx::query_as(
            "SELECT preview_id, requested_by, requester_email, requested_at, expires_at, \
             decision, decided_by, decided_at, reason FROM approvals \
             WHERE team_id = $1 AND preview_id = $2",
        )
        .bind(team_id)
        .bind(preview_id)
        .fetch_optional(&self.$read)
        .await?;
        row.map(ApprovalRecord::try_from).transpose()
    }

    async fn unrun_approvals(&self, team_id: TeamId, limit: u32) -> Result<Vec<ApprovalRecord>> {
        let rows: Vec<ApprovalRow> = sqlx::query_as(
            "SELECT preview_id, requested_by, requester_email, requested_at, expires_at, \
             decision, decided_by, decided_at, reason FROM approvals \
             WHERE team_id = $1 AND (decision IS NULL OR decision = 'declined') \
             AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.preview_id = approvals.preview_id) \
             ORDER BY requested_at DESC LIMIT $2",
        )
        .bind(team_id)
        .bind(i64::from(limit))
        .fetch_all(&self.$read)
        .await?;
        rows.into_iter().map(ApprovalRecord::try_from).collect()
    }

    async fn approvers(&self, team_id: TeamId) -> Result<Vec<(PreviewId, String)>> {
        Ok(sqlx::query_as(
            "SELECT preview_id, decided_by FROM approvals \
             WHERE team_id = $1 AND decision = 'approved' AND decided_by IS NOT NULL",
        )
        .bind(team_id)
        .fetch_all(&self.$read)
        .await?)
    }

    async fn decline_approval(
        &self,
        team_id: TeamId,
        preview_id: &PreviewId,
        by: &str,
        reason: &str,
        at: DateTime<Utc>,
        audit: &NewAuditEntry,
    ) -> Result<bool> {
        let mut tx = self.$write.begin().await?;
        // On PostgreSQL the update waits for a run being created from the same request (its
        // transaction holds the row), then finds it decided and changes nothing.
        let done = sqlx::query(
            "UPDATE approvals SET decision = 'declined', decided_by = $1, decided_at = $2, \
             reason = $3 WHERE team_id = $4 AND preview_id = $5 AND decision IS NULL \
             AND expires_at > $6 \
             AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.preview_id = approvals.preview_id)",
        )
        .bind(by)
        .bind(stamp(at))
        .bind(reason)
        .bind(team_id)
        .bind(preview_id)
        .bind(stamp(at))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        super::audit::$audit::append_in(&mut tx, &self.audit_key, team_id, at, audit).await?;
        tx.commit().await?;
        Ok(true)
    }
}
    };
}

approval_queries!(super::sqlite::SqliteStorage, pool, writer, on_sqlite);
approval_queries!(super::postgres::PostgresStorage, pool, pool, on_postgres);
