//! What "Waiting for you" reads of a team's runs ([`InboxStorage`], part of every
//! [`super::Storage`]): the runs that may need someone, written once for both databases. The
//! requests for approval it lists are [`super::ApprovalStorage::unrun_approvals`].

use super::column::Stamp;
use super::jobs::JOB_COLUMNS;
use super::store::{Dialect, Store};
use super::{JobRecord, JobState, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use model::ids::TeamId;

/// Most runs one read returns: a team with more paused or recently ended runs than this has
/// bigger problems than a long list, and the newest come first.
const RUNS_READ: i64 = 200;

#[async_trait]
pub trait InboxStorage: Send + Sync {
    /// The team's paused runs and the runs that ended at or after `ended_since`, newest
    /// first (at most 200): the service picks those that need someone.
    async fn runs_to_look_at(
        &self,
        team_id: TeamId,
        ended_since: DateTime<Utc>,
    ) -> Result<Vec<JobRecord>>;
}

#[async_trait]
impl<DB: Dialect> InboxStorage for Store<DB> {
    async fn runs_to_look_at(
        &self,
        team_id: TeamId,
        ended_since: DateTime<Utc>,
    ) -> Result<Vec<JobRecord>> {
        // Stamps are sortable text on both databases (column.rs), so `>=` compares times.
        let rows = sqlx::query_as(&format!(
            "{JOB_COLUMNS} team_id = $1 AND (state = $2 OR finished_at >= $3) \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        ))
        .bind(team_id)
        .bind(JobState::Paused)
        .bind(Stamp(ended_since))
        .bind(RUNS_READ)
        .fetch_all(self.read())
        .await?;
        self.jobs_of(rows).await
    }
}
