//! Which console replica drives which run ([`LeaseStorage`]): claiming runs, the holder's
//! heartbeat, and the runner's writes fenced by the lease they were made under.

use super::jobs::{claimable, claimable_states, placeholders, JOB_COLUMNS};
use super::store::{Affected, Claim, Dialect, Store};
use super::*;

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
}
