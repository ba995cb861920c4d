//! The steps the runs' statements share, on one connection inside the caller's transaction:
//! counting a site's runs, a run's approval step, the transaction and lease check every runner
//! write starts with (the writes themselves are in leases.rs), handing out event numbers, and
//! reading jobs back with their users counted. A child of jobs.rs, so it reads the stored
//! rows' private parts.

use super::*;

/// The steps of the runs' writes. Each runner write (leases.rs) runs in `run_write`'s
/// transaction, after `hold_lease` when it is made under a lease. Each write that hands out
/// event numbers locks the job's row first (`take_seqs`), then the users' rows, always in
/// that order, so two writers of one job queue instead of deadlocking or taking the same
/// number.
impl<DB: Dialect> Store<DB> {
    /// The site's runs not ended yet (queued, running, paused or cancelling), all teams
    /// together: a paused run will go on, so it keeps its place.
    pub(super) async fn count_runs_on_site(
        conn: &mut DB::Connection,
        site_url: &str,
    ) -> Result<usize> {
        let unended = changeable();
        let count = format!(
            "SELECT COUNT(*) FROM jobs WHERE site_url = $1 AND state IN ({})",
            placeholders(2, unended.len())
        );
        let mut count = sqlx::query_scalar(&count).bind(site_url);
        for state in unended {
            count = count.bind(state);
        }
        let running: i64 = count.fetch_one(DB::on(&mut *conn)).await?;
        Ok(usize::try_from(running).unwrap_or(usize::MAX))
    }

    /// The jobs `select` reads (`JOB_COLUMNS` and a condition), each with its users counted
    /// by one more query for all of them.
    pub(in crate::storage) async fn jobs_of(&self, rows: Vec<JobRow>) -> Result<Vec<JobRecord>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let count = format!(
            "SELECT job_id, state, outcome, COUNT(*) AS n FROM job_items \
             WHERE job_id IN ({}) GROUP BY job_id, state, outcome",
            placeholders(1, rows.len())
        );
        let mut tallies = sqlx::query_as(&count);
        for row in &rows {
            tallies = tallies.bind(&row.job.id);
        }
        let tallies: Vec<Tally> = tallies.fetch_all(self.read()).await?;
        rows.into_iter()
            .map(|row| job_record(row, &tallies))
            .collect()
    }

    /// Turns the request of `preview_id` from awaiting to approved inside the
    /// transaction that creates its run; [`StorageError::ApprovalNotAwaiting`] when it
    /// no longer awaits at `approval.at` (declined, withdrawn, expired, or approved
    /// already), and then the caller's transaction must not commit. On PostgreSQL the
    /// row stays locked until that transaction ends, so a decline waits for it.
    pub(in crate::storage) async fn approve_in(
        conn: &mut DB::Connection,
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
        .bind(Stamp(approval.at))
        .bind(team_id)
        .bind(preview_id)
        .bind(Stamp(approval.at))
        .execute(DB::on(&mut *conn))
        .await?;
        if done.rows_affected() != 1 {
            return Err(StorageError::ApprovalNotAwaiting(preview_id.clone()));
        }
        Ok(())
    }

    /// One of the runner's writes to `job_id` in its own transaction: `write` runs after
    /// checking that `lease` (when given: the runner's writes; None: the service's and the
    /// tests') is the job's and still holds it, and is committed with that check.
    pub(in crate::storage) async fn run_write<T>(
        &self,
        job_id: &JobId,
        lease: Option<&JobLease>,
        write: impl AsyncFnOnce(&mut DB::Connection) -> Result<T>,
    ) -> Result<T> {
        let mut tx = self.writer.begin().await?;
        if let Some(lease) = lease {
            if lease.job_id != *job_id {
                return Err(StorageError::LeaseLost(job_id.clone()));
            }
            Self::hold_lease(&mut tx, lease).await?;
        }
        let written = write(&mut tx).await?;
        tx.commit().await?;
        Ok(written)
    }

    /// Refuses with [`StorageError::LeaseLost`] unless `lease` still holds its job, and (on
    /// PostgreSQL) share-locks the lease row until the transaction ends: a claim, which locks
    /// it for update, cannot slip between this check and the write that follows.
    async fn hold_lease(conn: &mut DB::Connection, lease: &JobLease) -> Result<()> {
        let held: Option<i32> = sqlx::query_scalar(&format!(
            "SELECT 1 FROM job_leases WHERE job_id = $1 AND fence = $2{}",
            DB::FOR_SHARE
        ))
        .bind(&lease.job_id)
        .bind(lease.fence)
        .fetch_optional(DB::on(&mut *conn))
        .await?;
        held.map(drop)
            .ok_or_else(|| StorageError::LeaseLost(lease.job_id.clone()))
    }

    /// Locks the job's row and takes its next `count` event numbers; returns the first.
    pub(in crate::storage) async fn take_seqs(
        conn: &mut DB::Connection,
        job_id: &JobId,
        count: i64,
    ) -> Result<i64> {
        let last: Option<i64> = sqlx::query_scalar(
            "UPDATE jobs SET last_seq = last_seq + $1 WHERE id = $2 RETURNING last_seq",
        )
        .bind(count)
        .bind(job_id)
        .fetch_optional(DB::on(&mut *conn))
        .await?;
        last.map(|last| last - count + 1)
            .ok_or_else(|| StorageError::JobNotFound(job_id.clone()))
    }
}
