//! Runs: creating one from a confirmed preview, reading it back, its users' results and the
//! log watchers follow ([`JobStorage`]), written once for both databases. The runner's writes
//! (state changes, sends, results) are [`LeaseStorage`]'s, in leases.rs.

use super::column::{to_i64, to_u64, Stamp};
use super::store::{Affected, Dialect, Store};
use super::*;
use crate::engine::earlier::EarlierResult;
use crate::engine::job_state::JobEvent as Happening;
use crate::engine::ItemState;

mod writes;

/// Runs and their logs. Methods taking a `team_id` only ever see that team's runs; the
/// runner's writes ([`LeaseStorage`]) take a job id the server got from `create_job` or
/// `claim_jobs`.
#[async_trait]
pub trait JobStorage: Send + Sync {
    /// Keeps the site's user list taken when the run started (the "all users" report; the
    /// service stores it gzipped, storage keeps the bytes as given).
    async fn save_listing(&self, job_id: &JobId, users_json: &[u8]) -> Result<()>;
    /// The run's kept user list, if the team has that run and the list was kept here.
    async fn listing(&self, team_id: TeamId, job_id: &JobId) -> Result<Option<Vec<u8>>>;
    /// The runs against `site_url` that have not ended (paused ones included), all teams.
    async fn runs_on_site(&self, site_url: &str) -> Result<usize>;
    /// The users the team's runs on `site_url` finished with one of `outcomes` (what a new
    /// preview cites: "already deleted", "may be refused"), in no particular order.
    async fn earlier_results(
        &self,
        team_id: TeamId,
        site_url: &str,
        outcomes: &[ItemOutcome],
    ) -> Result<Vec<EarlierResult>>;
    /// Creates the job (queued), its users and their first events in one transaction.
    async fn create_job(&self, job: &NewJob) -> Result<()>;
    async fn job(&self, team_id: TeamId, job_id: &JobId) -> Result<Option<JobRecord>>;
    /// The team's jobs, newest first.
    async fn list_jobs(&self, team_id: TeamId, limit: u32) -> Result<Vec<JobRecord>>;
    /// The users still without a result, in input order; one left `Sending` by a crash comes
    /// back as [`ItemState::Sending`] so it is checked before anything is re-sent.
    async fn job_targets(&self, job_id: &JobId) -> Result<Vec<RunTarget>>;
    /// The job's events after `after_seq` (0 = from the start), oldest first.
    async fn events_since(
        &self,
        team_id: TeamId,
        job_id: &JobId,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<JobEvent>>;
    /// The job's result events before `before_seq` (None = the newest), newest first, and the
    /// seq of the job's newest event of any kind (0 when none): what the Run page opens with,
    /// instead of replaying the whole log.
    async fn latest_results(
        &self,
        team_id: TeamId,
        job_id: &JobId,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<(Vec<JobEvent>, i64)>;
    /// Every final result of the job (settled rows included), in input order. Users still
    /// without a result are absent: compare with [`JobRecord::total`].
    async fn job_results(&self, team_id: TeamId, job_id: &JobId) -> Result<Vec<ItemResult>>;
    /// The runs whose events other console processes store, as they are stored (PostgreSQL:
    /// `LISTEN offboard_job_events`); None where one process writes everything (SQLite).
    async fn job_event_notices(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<JobId>>;
}

pub(super) const JOB_COLUMNS: &str =
    "SELECT id, team_id, created_by, created_at, site_url, action, \
                           preview_id, state, reason, started_at, finished_at, users_url, \
                           token_fingerprint, approved_by, approved_at FROM jobs WHERE ";

/// The states a run may still change from: those some happening starts from, as the one
/// transition function says (engine/job_state.rs): every state but the ended ones.
pub(super) fn changeable() -> Vec<JobState> {
    let starts: Vec<JobState> = Happening::ALL
        .into_iter()
        .flat_map(Happening::starts_from)
        .collect();
    JobState::ALL
        .into_iter()
        .filter(|state| starts.contains(state))
        .collect()
}

/// Which runs a claim may take, as a `WHERE` condition on `{jobs}.state` and `{jobs}.id`: those
/// a runner may launch (engine/job_state.rs), paused ones only when one job is named (the
/// admin resumes it). `$first` is the paused state, `$first + 1` the named job (or NULL),
/// then the launch states ([`claimable_states`], in that order).
pub(super) fn claimable(jobs: &str, first: usize) -> String {
    let (paused, only) = (first, first + 1);
    let states = placeholders(first + 2, claimable_states().len());
    format!(
        "{jobs}state IN ({states}) AND ({jobs}state <> ${paused} OR ${only} IS NOT NULL) \
         AND (${only} IS NULL OR {jobs}id = ${only})"
    )
}

/// The states a runner may launch a run from: what [`claimable`] binds after the paused
/// state and the named job.
pub(super) fn claimable_states() -> Vec<JobState> {
    Happening::Launch.starts_from()
}

/// `$from, $from+1, …`: `n` placeholders of a list.
pub(super) fn placeholders(from: usize, n: usize) -> String {
    let numbers: Vec<String> = (from..from + n).map(|i| format!("${i}")).collect();
    numbers.join(", ")
}

const EVENT_COLUMNS: &str = "SELECT e.seq, e.at, e.result_json, e.state_change, e.reason \
                             FROM job_events e JOIN jobs j ON j.id = e.job_id WHERE ";

/// `SELECT {JOB_COLUMNS} …`: a job before its users are counted, and its connection's parts.
#[derive(sqlx::FromRow)]
pub(super) struct JobRow {
    #[sqlx(flatten)]
    job: JobRecord,
    users_url: Option<String>,
    token_fingerprint: Option<String>,
}

/// A user an earlier run finished, with the run's author (`earlier_results`).
#[derive(sqlx::FromRow)]
struct EarlierRow {
    job_id: String,
    account_id: String,
    email: Option<String>,
    outcome: ItemOutcome,
    at: Stamp,
    created_by: String,
}

/// How many users of one job are in one state (and outcome).
type Tally = (JobId, ItemState, Option<ItemOutcome>, i64);

fn job_record(row: JobRow, tallies: &[Tally]) -> Result<JobRecord> {
    let mut job = row.job;
    for (_, state, outcome, n) in tallies.iter().filter(|t| t.0 == job.id) {
        let n = to_u64(*n);
        job.total += n;
        if *state == ItemState::Done {
            job.done += n;
            let outcome = outcome.ok_or_else(|| {
                StorageError::Damaged(format!("a finished user of job {} has no outcome", job.id))
            })?;
            *job.counts.entry(outcome).or_insert(0) += n;
        }
    }
    if let (Some(users_url), Some(token_fingerprint)) = (row.users_url, row.token_fingerprint) {
        job.connection = Some(JobConnection {
            users_url,
            token_fingerprint,
        });
    }
    Ok(job)
}

#[async_trait]
impl<DB: Dialect> JobStorage for Store<DB> {
    async fn save_listing(&self, job_id: &JobId, users_json: &[u8]) -> Result<()> {
        sqlx::query("INSERT INTO job_listings (job_id, users_json) VALUES ($1, $2)")
            .bind(job_id)
            .bind(users_json.to_vec())
            .execute(self.write())
            .await?;
        Ok(())
    }

    async fn listing(&self, team_id: TeamId, job_id: &JobId) -> Result<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar(
            "SELECT l.users_json FROM job_listings l JOIN jobs j ON j.id = l.job_id \
             WHERE l.job_id = $1 AND j.team_id = $2",
        )
        .bind(job_id)
        .bind(team_id)
        .fetch_optional(self.read())
        .await?)
    }

    async fn runs_on_site(&self, site_url: &str) -> Result<usize> {
        let mut conn = self.pool.acquire().await?;
        Self::count_runs_on_site(&mut conn, site_url).await
    }

    async fn earlier_results(
        &self,
        team_id: TeamId,
        site_url: &str,
        outcomes: &[ItemOutcome],
    ) -> Result<Vec<EarlierResult>> {
        if outcomes.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT i.job_id, i.account_id, i.email, i.outcome, \
             COALESCE(i.finished_at, j.finished_at, j.created_at) AS at, j.created_by \
             FROM job_items i JOIN jobs j ON j.id = i.job_id \
             WHERE j.team_id = $1 AND j.site_url = $2 AND i.state = $3 AND i.outcome IN ({})",
            placeholders(4, outcomes.len())
        );
        let mut query = sqlx::query_as::<_, EarlierRow>(&sql)
            .bind(team_id)
            .bind(site_url)
            .bind(ItemState::Done);
        for outcome in outcomes {
            query = query.bind(*outcome);
        }
        let rows = query.fetch_all(self.read()).await?;
        Ok(rows
            .into_iter()
            .map(|row| EarlierResult {
                job_id: row.job_id,
                account_id: row.account_id,
                email: row.email,
                outcome: row.outcome,
                at: row.at.0,
                started_by: row.created_by,
            })
            .collect())
    }

    async fn create_job(&self, job: &NewJob) -> Result<()> {
        let settled = job.check_items()?;
        let at = job.created_at;
        let mut tx = self.writer.begin().await?;
        // Approving is creating the run: the request turns approved here (on PostgreSQL its
        // row locked until the commit, so a decline waits and then finds it decided) or
        // nothing is written.
        if let Some(approval) = &job.approval {
            Self::approve_in(&mut tx, job.team_id, &job.preview_id, approval).await?;
        }
        // Replicas may start runs on the same site at the same moment: they count and write
        // one after the other (SQLite's one writer already does that).
        DB::lock_site(&mut tx, &job.site_url).await?;
        let running = Self::count_runs_on_site(&mut tx, &job.site_url).await?;
        if running >= job.runs_per_site.max(1) {
            let site_url = job.site_url.clone();
            return Err(StorageError::SiteBusy { site_url, running });
        }
        // Written only if its preview is this team's, of the same action and claimed: a job
        // can never start from an unconfirmed preview. Its log starts with `queued` (seq 1),
        // then the settled users' results (seq 2, 3, …).
        let inserted = sqlx::query(
            "INSERT INTO jobs (id, team_id, created_at, state, created_by, site_url, action, \
             users_url, token_fingerprint, preview_id, last_seq, approved_by, approved_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, id, $10, $11, $12 FROM previews \
             WHERE id = $13 AND team_id = $2 AND action = $7 AND claimed_at IS NOT NULL",
        )
        .bind(&job.id)
        .bind(job.team_id)
        .bind(Stamp(at))
        .bind(JobState::Queued)
        .bind(&job.created_by)
        .bind(&job.site_url)
        .bind(job.action)
        .bind(&job.connection.users_url)
        .bind(&job.connection.token_fingerprint)
        .bind(1 + to_i64(settled))
        .bind(job.approval.as_ref().map(|a| a.by.clone()))
        .bind(job.approval.as_ref().map(|a| Stamp(a.at)))
        .bind(&job.preview_id)
        .execute(DB::on(&mut *tx))
        .await?;
        if inserted.rows_affected() != 1 {
            return Err(StorageError::PreviewNotConfirmed(job.preview_id.clone()));
        }
        sqlx::query(
            "INSERT INTO job_events (job_id, seq, at, state_change) VALUES ($1, 1, $2, $3)",
        )
        .bind(&job.id)
        .bind(Stamp(at))
        .bind(JobState::Queued)
        .execute(DB::on(&mut *tx))
        .await?;
        DB::insert_job_items(&mut tx, &job.id, at, &job.items).await?;
        let results: Vec<ItemResult> = job
            .items
            .iter()
            .filter_map(|item| match item {
                PlannedItem::Settled(r) => Some(r.clone()),
                PlannedItem::Run(_) => None,
            })
            .collect();
        DB::log_results(&mut tx, &job.id, 2, at, &results).await?;
        for entry in &job.audit {
            let now = self.clock.now();
            Self::append_audit_in(&mut tx, self, job.team_id, now, entry).await?;
        }
        if let Some(window) = &job.undo {
            Self::open_undo_window_in(&mut tx, job.team_id, &job.id, window).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn job(&self, team_id: TeamId, job_id: &JobId) -> Result<Option<JobRecord>> {
        let rows = sqlx::query_as(&format!("{JOB_COLUMNS} team_id = $1 AND id = $2"))
            .bind(team_id)
            .bind(job_id)
            .fetch_all(self.read())
            .await?;
        Ok(self.jobs_of(rows).await?.pop())
    }

    async fn list_jobs(&self, team_id: TeamId, limit: u32) -> Result<Vec<JobRecord>> {
        let rows = sqlx::query_as(&format!(
            "{JOB_COLUMNS} team_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(team_id)
        .bind(i64::from(limit))
        .fetch_all(self.read())
        .await?;
        self.jobs_of(rows).await
    }

    async fn job_targets(&self, job_id: &JobId) -> Result<Vec<RunTarget>> {
        let rows: Vec<(String, Option<String>, ItemState)> = sqlx::query_as(
            "SELECT account_id, email, state FROM job_items WHERE job_id = $1 AND state <> $2 \
             ORDER BY position",
        )
        .bind(job_id)
        .bind(ItemState::Done)
        .fetch_all(self.read())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(account_id, email, state)| RunTarget {
                account_id,
                email,
                state,
            })
            .collect())
    }

    async fn events_since(
        &self,
        team_id: TeamId,
        job_id: &JobId,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<JobEvent>> {
        let rows: Vec<JobEvent> = sqlx::query_as(&format!(
            "{EVENT_COLUMNS} j.team_id = $1 AND e.job_id = $2 AND e.seq > $3 \
             ORDER BY e.seq LIMIT $4"
        ))
        .bind(team_id)
        .bind(job_id)
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(self.read())
        .await?;
        Ok(rows)
    }

    async fn latest_results(
        &self,
        team_id: TeamId,
        job_id: &JobId,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<(Vec<JobEvent>, i64)> {
        // One snapshot for both reads, so no event falls between the page and the resume
        // point.
        let mut tx = self.snapshot().await?;
        let last_seq: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(e.seq), 0) FROM job_events e JOIN jobs j ON j.id = e.job_id \
             WHERE j.team_id = $1 AND e.job_id = $2",
        )
        .bind(team_id)
        .bind(job_id)
        .fetch_one(DB::on(&mut *tx))
        .await?;
        let rows: Vec<JobEvent> = sqlx::query_as(&format!(
            "{EVENT_COLUMNS} j.team_id = $1 AND e.job_id = $2 AND e.seq < $3 \
             AND e.result_json IS NOT NULL ORDER BY e.seq DESC LIMIT $4"
        ))
        .bind(team_id)
        .bind(job_id)
        .bind(before_seq.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(DB::on(&mut *tx))
        .await?;
        tx.commit().await?;
        Ok((rows, last_seq))
    }

    async fn job_results(&self, team_id: TeamId, job_id: &JobId) -> Result<Vec<ItemResult>> {
        Ok(sqlx::query_as(
            "SELECT account_id, email, outcome, message, attempts, elapsed_ms, demoted \
             FROM job_items WHERE job_id = (SELECT id FROM jobs WHERE id = $1 AND team_id = $2) \
             AND state = $3 ORDER BY position",
        )
        .bind(job_id)
        .bind(team_id)
        .bind(ItemState::Done)
        .fetch_all(self.read())
        .await?)
    }

    async fn job_event_notices(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<JobId>> {
        DB::job_event_notices(self).await
    }
}
