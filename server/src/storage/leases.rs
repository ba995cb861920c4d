//! Which console replica drives which run ([`LeaseStorage`]): claiming runs, the holder's
//! heartbeat, and the runner's writes fenced by the lease they were made under.

use super::column::{to_i64, Stamp};
use super::jobs::{changeable, claimable, claimable_states, placeholders, JOB_COLUMNS};
use super::store::{Affected, Claim, Dialect, Store};
use super::*;
use crate::engine::ItemState;
use model::audit::AuditAction;
use model::deletion::ItemOutcome;

/// How the trail names the console itself (a run's end, a run it picked up or paused).
pub const OFFBOARD_ACTOR: &str = "Offboard";

/// The right to drive runs. Every write the runner makes for a job carries its lease and is
/// refused ([`StorageError::LeaseLost`]) once another replica has claimed the job since.
#[async_trait]
pub trait LeaseStorage: Send + Sync {
    /// Claims the unfinished jobs (queued, running, cancelling) nobody holds, oldest first:
    /// those without a lease or with an expired (or released) one, leaving out the jobs
    /// `claim.holder` is `driving`. With `only`, just that job, paused ones too (a new run
    /// about to start, or a paused one the admin resumes). Each claimed lease
    /// gets the next fence and lasts `claim.lease`. PostgreSQL locks the leases it takes with
    /// `FOR UPDATE SKIP LOCKED`, so replicas claiming together never wait on each other or
    /// take the same job; SQLite (one process) takes every lease but those `driving`.
    async fn claim_jobs(&self, claim: &Claim<'_>) -> Result<Vec<(JobRecord, JobLease)>>;
    /// The holder's heartbeat: the lease lasts `lease` from now. False when it was lost (the
    /// fence changed: another replica claimed the job), and then the runner must stop.
    async fn renew_lease(&self, lease: &JobLease, duration: Duration) -> Result<bool>;
    /// Ends one lease now (its job ended, or cannot go on here); the fence stays.
    async fn release_lease(&self, lease: &JobLease) -> Result<()>;
    /// Ends every lease `holder` has (the replica is stopping): others claim them at once.
    async fn release_leases(&self, holder: &str) -> Result<u64>;

    // The runner's writes. Each takes the lease it is made under (None: the service's own
    // writes, such as a cancel before any runner, and the tests') and is refused with
    // [`StorageError::LeaseLost`], writing nothing, once another replica has claimed the job
    // since (see [`LeaseStorage::claim_jobs`]).

    /// Changes the job's state (a final state is never left) and logs the change.
    async fn set_job_state(
        &self,
        job_id: &JobId,
        lease: Option<&JobLease>,
        state: JobState,
        reason: Option<String>,
    ) -> Result<JobEvent>;
    /// Persists "a request is about to be sent for this user". Refused unless the job is
    /// running and the user has no result yet, so a cancel or a finished user stops the send.
    async fn mark_sending(
        &self,
        job_id: &JobId,
        lease: Option<&JobLease>,
        account_id: &str,
    ) -> Result<()>;
    /// Stores the user's final result and logs it, in one transaction. A second result for
    /// the same user is refused with [`StorageError::ItemFinished`].
    async fn record_result(
        &self,
        job_id: &JobId,
        lease: Option<&JobLease>,
        result: &ItemResult,
    ) -> Result<JobEvent>;
    /// Gives every user still pending (never sent) the outcome `NotAttempted`, e.g. after a
    /// cancel. Users left `Sending` are untouched: their outcome is unknown until checked.
    async fn record_not_attempted(
        &self,
        job_id: &JobId,
        lease: Option<&JobLease>,
        message: &str,
    ) -> Result<Vec<JobEvent>>;
}

/// Gives every run a claim may take ([`claimable`]) a lease row if it has none: free (fence
/// 0, ended), so that the claim that follows locks lease rows only, never a job's row (a
/// holder's fenced write share-locks the lease row, then the job's: the two cannot wait on
/// each other in a cycle).
pub(super) async fn add_free_leases<DB: Dialect>(
    conn: &mut DB::Connection,
    only: Option<&JobId>,
) -> Result<()> {
    let insert = format!(
        "INSERT INTO job_leases (job_id, holder, fence, expires_at) \
         SELECT id, '', 0, {} FROM jobs WHERE {} ON CONFLICT (job_id) DO NOTHING",
        DB::LEASE_ENDED,
        claimable("", 1)
    );
    let mut args = DB::Arguments::default();
    add_claimable::<DB>(&mut args, only)?;
    sqlx::query_with(&insert, args)
        .execute(DB::on(&mut *conn))
        .await?;
    Ok(())
}

/// A value a statement could not take.
pub(super) fn unbindable(e: sqlx::error::BoxDynError) -> StorageError {
    StorageError::Database(sqlx::Error::Encode(e))
}

/// Adds what [`claimable`] reads, in its order, after the values `args` holds already.
pub(super) fn add_claimable<'q, DB: Dialect>(
    args: &mut DB::Arguments<'q>,
    only: Option<&JobId>,
) -> Result<()> {
    use sqlx::Arguments;
    args.add(JobState::Paused).map_err(unbindable)?;
    args.add(only.cloned()).map_err(unbindable)?;
    for state in claimable_states() {
        args.add(state).map_err(unbindable)?;
    }
    Ok(())
}

#[async_trait]
impl<DB: Dialect> LeaseStorage for Store<DB> {
    async fn claim_jobs(&self, claim: &Claim<'_>) -> Result<Vec<(JobRecord, JobLease)>> {
        let fences = DB::claim_leases(self, claim).await?;
        if fences.is_empty() {
            return Ok(Vec::new());
        }
        let select = format!(
            "{JOB_COLUMNS} id IN ({}) ORDER BY created_at, id",
            placeholders(1, fences.len())
        );
        let mut rows = sqlx::query_as(&select);
        for (job_id, _) in &fences {
            rows = rows.bind(job_id);
        }
        let jobs = self.jobs_of(rows.fetch_all(self.read()).await?).await?;
        Ok(jobs
            .into_iter()
            .filter_map(|job| {
                let (job_id, fence) = fences.iter().find(|(id, _)| *id == job.id)?.clone();
                Some((job, JobLease { job_id, fence }))
            })
            .collect())
    }

    async fn renew_lease(&self, lease: &JobLease, duration: Duration) -> Result<bool> {
        DB::renew_lease(self, lease, duration).await
    }

    async fn release_lease(&self, lease: &JobLease) -> Result<()> {
        let ended = DB::LEASE_ENDED;
        sqlx::query(&format!(
            "UPDATE job_leases SET expires_at = {ended} WHERE job_id = $1 AND fence = $2"
        ))
        .bind(&lease.job_id)
        .bind(lease.fence)
        .execute(self.write())
        .await?;
        Ok(())
    }

    async fn release_leases(&self, holder: &str) -> Result<u64> {
        let ended = DB::LEASE_ENDED;
        let released = sqlx::query(&format!(
            "UPDATE job_leases SET expires_at = {ended} WHERE holder = $1 \
             AND expires_at <> {ended}"
        ))
        .bind(holder)
        .execute(self.write())
        .await?;
        Ok(released.rows_affected())
    }

    async fn set_job_state(
        &self,
        job_id: &JobId,
        lease: Option<&JobLease>,
        state: JobState,
        reason: Option<String>,
    ) -> Result<JobEvent> {
        self.run_write(job_id, lease, async move |conn| {
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
            if state.has_ended() {
                // The run's end and its trail entry (which notifies the team) are one write:
                // a crash can lose neither alone.
                let (team, entry) = run_end_entry::<DB>(conn, job_id, state, &reason).await?;
                Self::append_audit_in(conn, self, team, at, &entry).await?;
            }
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

    async fn mark_sending(
        &self,
        job_id: &JobId,
        lease: Option<&JobLease>,
        account_id: &str,
    ) -> Result<()> {
        self.run_write(job_id, lease, async |conn| {
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

    async fn record_result(
        &self,
        job_id: &JobId,
        lease: Option<&JobLease>,
        result: &ItemResult,
    ) -> Result<JobEvent> {
        self.run_write(job_id, lease, async |conn| {
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

    async fn record_not_attempted(
        &self,
        job_id: &JobId,
        lease: Option<&JobLease>,
        message: &str,
    ) -> Result<Vec<JobEvent>> {
        self.run_write(job_id, lease, async |conn| {
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

/// The trail entry of a run's end, by "Offboard": its final state, why, and how many users
/// ended each way, read inside the write that ends it.
async fn run_end_entry<DB: Dialect>(
    conn: &mut DB::Connection,
    job_id: &JobId,
    state: JobState,
    reason: &Option<String>,
) -> Result<(TeamId, NewAuditEntry)> {
    let team: TeamId = sqlx::query_scalar("SELECT team_id FROM jobs WHERE id = $1")
        .bind(job_id)
        .fetch_one(DB::on(&mut *conn))
        .await?;
    let tallies: Vec<(ItemState, Option<ItemOutcome>, i64)> = sqlx::query_as(
        "SELECT state, outcome, COUNT(*) FROM job_items WHERE job_id = $1 GROUP BY state, outcome",
    )
    .bind(job_id)
    .fetch_all(DB::on(&mut *conn))
    .await?;
    let (mut users, mut done) = (0, 0);
    let mut counts = std::collections::BTreeMap::<String, i64>::new();
    for (item, outcome, n) in tallies {
        users += n;
        if let (ItemState::Done, Some(outcome)) = (item, outcome) {
            done += n;
            let name = serde_json::to_value(outcome)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| format!("{outcome:?}"));
            *counts.entry(name).or_insert(0) += n;
        }
    }
    let entry = NewAuditEntry {
        actor: OFFBOARD_ACTOR.to_string(),
        action: AuditAction::RunEnded,
        target: Some(job_id.to_string()),
        details: serde_json::json!({
            "state": state,
            "reason": reason,
            "users": users,
            "done": done,
            "counts": counts,
        }),
    };
    Ok((team, entry))
}
