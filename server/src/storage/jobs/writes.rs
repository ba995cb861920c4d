//! The runs' writes on one connection, inside the caller's transaction: creating a run's
//! approval step, the runner's writes (plain or fenced, see leases.rs) and reading jobs back
//! with their users counted. A child of jobs.rs, so it reads the stored rows' private parts.

use super::*;

/// The runner's writes on one connection, inside the caller's transaction: the plain
/// methods run them alone, the fenced ones (leases.rs) after `hold_lease` in the same
/// transaction. Each write that hands out event numbers locks the job's row first
/// (`take_seqs`), then the users' rows, always in that order, so two writers of one job
/// queue instead of deadlocking or taking the same number.
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

    /// One of the runner's writes in its own transaction: `write` runs after checking that
    /// `lease` (when given: the runner's writes; None: the service's and the tests') still
    /// holds the job, and is committed with that check.
    pub(in crate::storage) async fn run_write<T>(
        &self,
        lease: Option<&JobLease>,
        write: impl AsyncFnOnce(&mut DB::Connection) -> Result<T>,
    ) -> Result<T> {
        let mut tx = self.writer.begin().await?;
        if let Some(lease) = lease {
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
    async fn take_seqs(conn: &mut DB::Connection, job_id: &JobId, count: i64) -> Result<i64> {
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

    pub(in crate::storage) async fn set_state(
        &self,
        lease: Option<&JobLease>,
        job_id: &JobId,
        state: JobState,
        reason: Option<String>,
    ) -> Result<JobEvent> {
        self.run_write(lease, async move |conn| {
            let at = self.clock.now();
            let started = (state == JobState::Running).then_some(Stamp(at));
            let finished = state.has_ended().then_some(Stamp(at));
            let from = changeable();
            let update = format!(
                "UPDATE jobs SET state = $1, reason = $2, last_seq = last_seq + 1, \
                 started_at = COALESCE(started_at, $3), finished_at = COALESCE($4, finished_at) \
                 WHERE id = $5 AND state IN ({}) RETURNING last_seq",
                placeholders(6, from.len())
            );
            let mut update = sqlx::query_scalar(&update)
                .bind(state)
                .bind(&reason)
                .bind(started)
                .bind(finished)
                .bind(job_id);
            for state in from {
                update = update.bind(state);
            }
            let seq: Option<i64> = update.fetch_optional(DB::on(&mut *conn)).await?;
            let Some(seq) = seq else {
                let found: Option<JobState> =
                    sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
                        .bind(job_id)
                        .fetch_optional(DB::on(&mut *conn))
                        .await?;
                let state = found.ok_or_else(|| StorageError::JobNotFound(job_id.clone()))?;
                let job_id = job_id.clone();
                return Err(StorageError::JobEnded { job_id, state });
            };
            sqlx::query(
                "INSERT INTO job_events (job_id, seq, at, state_change, reason) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(job_id)
            .bind(seq)
            .bind(Stamp(at))
            .bind(state)
            .bind(&reason)
            .execute(DB::on(&mut *conn))
            .await?;
            Ok(JobEvent {
                seq,
                at,
                result: None,
                state_change: Some(state),
                reason,
            })
        })
        .await
    }

    pub(in crate::storage) async fn mark_sending_in(
        &self,
        lease: Option<&JobLease>,
        job_id: &JobId,
        account_id: &str,
    ) -> Result<()> {
        self.run_write(lease, async |conn| {
            // The job's row is share-locked first on PostgreSQL: a concurrent cancel either lands
            // before (and this refuses) or waits until the mark is written (and the runner sees
            // the cancel).
            let updated = sqlx::query(&format!(
                "UPDATE job_items SET state = $1 WHERE job_id = $2 AND account_id = $3 \
                 AND state IN ($4, $1) \
                 AND EXISTS (SELECT 1 FROM jobs WHERE id = $2 AND state = $5{})",
                DB::FOR_SHARE
            ))
            .bind(ItemState::Sending)
            .bind(job_id)
            .bind(account_id)
            .bind(ItemState::Pending)
            .bind(JobState::Running)
            .execute(DB::on(&mut *conn))
            .await?;
            if updated.rows_affected() == 1 {
                return Ok(());
            }
            let found: Option<(JobState, Option<ItemState>)> = sqlx::query_as(
                "SELECT j.state, i.state FROM jobs j \
                 LEFT JOIN job_items i ON i.job_id = j.id AND i.account_id = $2 WHERE j.id = $1",
            )
            .bind(job_id)
            .bind(account_id)
            .fetch_optional(DB::on(&mut *conn))
            .await?;
            match found {
                None => Err(StorageError::JobNotFound(job_id.clone())),
                Some((state, _)) if state != JobState::Running => {
                    Err(StorageError::JobNotRunning {
                        job_id: job_id.clone(),
                        state,
                    })
                }
                Some((_, item)) => Err(item_refusal(job_id, account_id, item)),
            }
        })
        .await
    }

    pub(in crate::storage) async fn record_result_in(
        &self,
        lease: Option<&JobLease>,
        job_id: &JobId,
        result: &ItemResult,
    ) -> Result<JobEvent> {
        self.run_write(lease, async |conn| {
            let at = self.clock.now();
            let seq = match Self::take_seqs(conn, job_id, 1).await {
                // A result for a job that does not exist names the unknown user.
                Err(StorageError::JobNotFound(_)) => {
                    return Err(item_refusal(job_id, &result.account_id, None))
                }
                taken => taken?,
            };
            let updated = sqlx::query(
                "UPDATE job_items SET state = $1, outcome = $2, message = $3, attempts = $4, \
                 elapsed_ms = $5, demoted = $6, email = COALESCE($7, email), finished_at = $8 \
                 WHERE job_id = $9 AND account_id = $10 AND state <> $1",
            )
            .bind(ItemState::Done)
            .bind(result.outcome)
            .bind(&result.message)
            .bind(i64::from(result.attempts))
            .bind(i64::try_from(result.elapsed_ms).unwrap_or(i64::MAX))
            .bind(result.demoted)
            .bind(&result.email)
            .bind(Stamp(at))
            .bind(job_id)
            .bind(&result.account_id)
            .execute(DB::on(&mut *conn))
            .await?;
            if updated.rows_affected() != 1 {
                // Nothing written: the sequence number goes back with the rollback.
                let state: Option<ItemState> = sqlx::query_scalar(
                    "SELECT state FROM job_items WHERE job_id = $1 AND account_id = $2",
                )
                .bind(job_id)
                .bind(&result.account_id)
                .fetch_optional(DB::on(&mut *conn))
                .await?;
                return Err(item_refusal(job_id, &result.account_id, state));
            }
            let mut events =
                DB::log_results(conn, job_id, seq, at, std::slice::from_ref(result)).await?;
            events
                .pop()
                .ok_or_else(|| StorageError::Damaged("a logged result has no event".into()))
        })
        .await
    }

    pub(in crate::storage) async fn record_not_attempted_in(
        &self,
        lease: Option<&JobLease>,
        job_id: &JobId,
        message: &str,
    ) -> Result<Vec<JobEvent>> {
        self.run_write(lease, async |conn| {
            let at = self.clock.now();
            // The job's row first (see above), then every pending user at once.
            Self::take_seqs(conn, job_id, 0).await?;
            let mut pending: Vec<(i64, String, Option<String>)> = sqlx::query_as(
                "UPDATE job_items SET state = $1, outcome = $2, message = $3, attempts = 0, \
                 elapsed_ms = 0, demoted = $4, finished_at = $5 \
                 WHERE job_id = $6 AND state = $7 RETURNING position, account_id, email",
            )
            .bind(ItemState::Done)
            .bind(ItemOutcome::NotAttempted)
            .bind(message)
            .bind(false)
            .bind(Stamp(at))
            .bind(job_id)
            .bind(ItemState::Pending)
            .fetch_all(DB::on(&mut *conn))
            .await?;
            if pending.is_empty() {
                // Nothing to log: the sequence stays where it was.
                return Ok(Vec::new());
            }
            pending.sort_by_key(|(position, _, _)| *position);
            let results: Vec<ItemResult> = pending
                .into_iter()
                .map(|(_, account_id, email)| ItemResult {
                    account_id,
                    email,
                    outcome: ItemOutcome::NotAttempted,
                    message: message.to_string(),
                    attempts: 0,
                    elapsed_ms: 0,
                    demoted: false,
                })
                .collect();
            let first = Self::take_seqs(conn, job_id, to_i64(results.len())).await?;
            DB::log_results(conn, job_id, first, at, &results).await
        })
        .await
    }
}
