//! Two-person approval's records: each team's setting, and the request made from a preview
//! ([`ApprovalStorage`], part of every [`super::Storage`]), written once for both databases.
//!
//! A request leaves "awaiting" once, by one guarded update (`… WHERE decision IS NULL AND
//! expires_at > now`): approved only in the transaction that creates its run
//! (`Store::approve_in` in jobs.rs, called by `create_job`), declined only while no run
//! exists ([`ApprovalStorage::decline_approval`]). Whichever commits first wins; the other
//! changes nothing, so a declined request never has a run and an approved one never a decline.

use super::column::{Maybe, Stamp};
use super::store::{Affected, Dialect, Store};
use super::{NewAuditEntry, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use model::ids::{PreviewId, TeamId};
use model::team::{ApprovalPolicy, TeamSettings, DEFAULT_DELETION_DAYS};

pub use super::kinds::Decision;

/// The approval a run is created under (see `NewJob::approval`): who gave it, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunApproval {
    /// As the trail names them ("Name <email>").
    pub by: String,
    pub at: DateTime<Utc>,
}

/// A request for approval of a preview's run.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ApprovalRecord {
    pub preview_id: PreviewId,
    /// As the trail names them ("Name <email>").
    pub requested_by: String,
    pub requester_email: String,
    #[sqlx(try_from = "Stamp")]
    pub requested_at: DateTime<Utc>,
    #[sqlx(try_from = "Stamp")]
    pub expires_at: DateTime<Utc>,
    pub decision: Option<Decision>,
    pub decided_by: Option<String>,
    #[sqlx(try_from = "Maybe<Stamp>")]
    pub decided_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

#[async_trait]
pub trait ApprovalStorage: Send + Sync {
    /// The team's settings (the defaults when never saved).
    async fn team_settings(&self, team_id: TeamId) -> Result<TeamSettings>;
    async fn save_team_settings(&self, team_id: TeamId, settings: &TeamSettings) -> Result<()>;
    /// Records a request and appends `audit` to the team's trail, in one transaction; false
    /// (nothing written) when the preview has one already.
    async fn request_approval(
        &self,
        team_id: TeamId,
        request: &ApprovalRecord,
        audit: &NewAuditEntry,
    ) -> Result<bool>;
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

/// `SELECT` of an [`ApprovalRecord`]'s columns, for a condition to follow.
const APPROVAL_COLUMNS: &str = "SELECT preview_id, requested_by, requester_email, requested_at, \
    expires_at, decision, decided_by, decided_at, reason FROM approvals";

#[async_trait]
impl<DB: Dialect> ApprovalStorage for Store<DB> {
    async fn team_settings(&self, team_id: TeamId) -> Result<TeamSettings> {
        let row: Option<(ApprovalPolicy, bool, i64, bool)> = sqlx::query_as(
            "SELECT approval, approve_deactivations, days_before_deletion, ask_again_at_date \
             FROM team_settings WHERE team_id = $1",
        )
        .bind(team_id)
        .fetch_optional(self.read())
        .await?;
        Ok(
            row.map_or_else(TeamSettings::default, |(approval, approve, days, ask)| {
                TeamSettings {
                    approval,
                    approve_deactivations: approve,
                    days_before_deletion: u16::try_from(days).unwrap_or(DEFAULT_DELETION_DAYS),
                    ask_again_at_date: ask,
                }
            }),
        )
    }

    async fn save_team_settings(&self, team_id: TeamId, settings: &TeamSettings) -> Result<()> {
        sqlx::query(
            "INSERT INTO team_settings (team_id, approval, approve_deactivations, \
             days_before_deletion, ask_again_at_date) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (team_id) DO UPDATE SET approval = excluded.approval, \
             approve_deactivations = excluded.approve_deactivations, \
             days_before_deletion = excluded.days_before_deletion, \
             ask_again_at_date = excluded.ask_again_at_date",
        )
        .bind(team_id)
        .bind(settings.approval)
        .bind(settings.approve_deactivations)
        .bind(i64::from(settings.days_before_deletion))
        .bind(settings.ask_again_at_date)
        .execute(self.write())
        .await?;
        Ok(())
    }

    async fn request_approval(
        &self,
        team_id: TeamId,
        request: &ApprovalRecord,
        audit: &NewAuditEntry,
    ) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
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
        .bind(Stamp(request.requested_at))
        .bind(Stamp(request.expires_at))
        .bind(&request.preview_id)
        .bind(team_id)
        .execute(DB::on(&mut *tx))
        .await?;
        let made = done.rows_affected() == 1;
        if made {
            let at = request.requested_at;
            Self::append_audit_in(&mut tx, self, team_id, at, audit).await?;
        }
        tx.commit().await?;
        Ok(made)
    }

    async fn approval(
        &self,
        team_id: TeamId,
        preview_id: &PreviewId,
    ) -> Result<Option<ApprovalRecord>> {
        Ok(sqlx::query_as(&format!(
            "{APPROVAL_COLUMNS} WHERE team_id = $1 AND preview_id = $2"
        ))
        .bind(team_id)
        .bind(preview_id)
        .fetch_optional(self.read())
        .await?)
    }

    async fn unrun_approvals(&self, team_id: TeamId, limit: u32) -> Result<Vec<ApprovalRecord>> {
        Ok(sqlx::query_as(&format!(
            "{APPROVAL_COLUMNS} WHERE team_id = $1 AND (decision IS NULL OR decision = $2) \
             AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.preview_id = approvals.preview_id) \
             ORDER BY requested_at DESC LIMIT $3"
        ))
        .bind(team_id)
        .bind(Decision::Declined)
        .bind(i64::from(limit))
        .fetch_all(self.read())
        .await?)
    }

    async fn approvers(&self, team_id: TeamId) -> Result<Vec<(PreviewId, String)>> {
        Ok(sqlx::query_as(
            "SELECT preview_id, decided_by FROM approvals \
             WHERE team_id = $1 AND decision = 'approved' AND decided_by IS NOT NULL",
        )
        .bind(team_id)
        .fetch_all(self.read())
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
        let mut tx = self.writer.begin().await?;
        // On PostgreSQL the update waits for a run being created from the same request (its
        // transaction holds the row), then finds it decided and changes nothing.
        let done = sqlx::query(
            "UPDATE approvals SET decision = 'declined', decided_by = $1, decided_at = $2, \
             reason = $3 WHERE team_id = $4 AND preview_id = $5 AND decision IS NULL \
             AND expires_at > $6 \
             AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.preview_id = approvals.preview_id)",
        )
        .bind(by)
        .bind(Stamp(at))
        .bind(reason)
        .bind(team_id)
        .bind(preview_id)
        .bind(Stamp(at))
        .execute(DB::on(&mut *tx))
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        Self::append_audit_in(&mut tx, self, team_id, at, audit).await?;
        tx.commit().await?;
        Ok(true)
    }
}
