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
impl<DB> InboxStorage for Store<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    DB::QueryResult: crate::storage::store::Affected,
    usize: sqlx::ColumnIndex<DB::Row>,
    for<'s> &'s str: sqlx::ColumnIndex<DB::Row>,
    i64: crate::storage::column::Column<DB>,
    i32: crate::storage::column::Column<DB>,
    bool: crate::storage::column::Column<DB>,
    String: crate::storage::column::Column<DB>,
    Vec<u8>: crate::storage::column::Column<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<String>: sqlx::Encode<'q, DB>,
    for<'q> Option<crate::storage::column::Stamp>: sqlx::Encode<'q, DB>,
    for<'q> Option<model::deletion::PreviewOutcome>: sqlx::Encode<'q, DB>,
    for<'q> Option<model::ids::TeamId>: sqlx::Encode<'q, DB>,
    for<'q> Option<model::ids::AccountId>: sqlx::Encode<'q, DB>,
    for<'q> Option<model::team::Role>: sqlx::Encode<'q, DB>,
    model::deletion::JobState: crate::storage::column::Column<DB>,
    crate::engine::ItemState: crate::storage::column::Column<DB>,
    model::deletion::Action: crate::storage::column::Column<DB>,
    model::deletion::ItemOutcome: crate::storage::column::Column<DB>,
    model::deletion::PreviewOutcome: crate::storage::column::Column<DB>,
    model::team::Role: crate::storage::column::Column<DB>,
    model::team::ApprovalPolicy: crate::storage::column::Column<DB>,
    crate::storage::kinds::Decision: crate::storage::column::Column<DB>,
    crate::storage::kinds::LinkPurpose: crate::storage::column::Column<DB>,
{
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
        .fetch_all(&self.pool)
        .await?;
        self.jobs_of(rows).await
    }
}
