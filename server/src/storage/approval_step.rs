//! The approval's side of creating a run: the guarded update that turns a request from
//! awaiting to approved, run by `create_job` inside the transaction that writes the run (kept
//! apart from `approvals.rs`, whose queries are implemented on each database's storage, so the
//! database files can call this without importing that module back).

use super::rows::stamp;
use super::{Result, StorageError};
use chrono::{DateTime, Utc};
use model::ids::{PreviewId, TeamId};

/// The approval a run is created under (see `NewJob::approval`): who gave it, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunApproval {
    /// As the trail names them ("Name <email>").
    pub by: String,
    pub at: DateTime<Utc>,
}

/// The approval's side of creating a run, for `create_job` on each database (module
/// `$module`).
macro_rules! approval_in_transaction {
    ($module:ident, $db:ty) => {
        pub(super) mod $module {
            use super::*;

            /// Turns the request of `preview_id` from awaiting to approved inside the
            /// transaction that creates its run; [`StorageError::ApprovalNotAwaiting`] when it
            /// no longer awaits at `approval.at` (declined, withdrawn, expired, or approved
            /// already), and then the caller's transaction must not commit. On PostgreSQL the
            /// row stays locked until that transaction ends, so a decline waits for it.
            pub async fn approve_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                team_id: TeamId,
                preview_id: &PreviewId,
                approval: &RunApproval,
            ) -> Result<()> {
                let done = sqlx::query(
                    "UPDATE approvals SET decision = 'approved', decided_by = $1, \
                     decided_at = $2 WHERE team_id = $3 AND preview_id = $4 \
                     AND decision IS NULL AND expires_at > $5",
                )
                .bind(&approval.by)
                .bind(stamp(approval.at))
                .bind(team_id)
                .bind(preview_id)
                .bind(stamp(approval.at))
                .execute(&mut **tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Err(StorageError::ApprovalNotAwaiting(preview_id.clone()));
                }
                Ok(())
            }
        }
    };
}

approval_in_transaction!(on_sqlite, sqlx::Sqlite);
approval_in_transaction!(on_postgres, sqlx::Postgres);
