//! Offboard's own records (teams, connections, previews, jobs), behind the [`Storage`] trait so
//! callers do not care which database holds them. SQLite is built in; the URL scheme picks the
//! driver, so PostgreSQL can be added as a second implementation without touching callers.

use crate::engine::{Clock, RunTarget, SystemClock, TargetState};
use app::model::{Action, ItemOutcome, ItemResult, PreviewOutcome, PreviewRow};
use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("unsupported database URL (expected sqlite://...): {0}")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("a stored record is damaged: {0}")]
    Damaged(String),
    #[error("could not store a result: {0}")]
    Encoding(#[from] serde_json::Error),
    #[error("job {0} does not exist")]
    JobNotFound(String),
    #[error("job {job_id} has already ended ({state}); its state cannot change any more")]
    JobEnded { job_id: String, state: JobState },
    #[error("job {job_id} is {state}, not running: no request may be sent for it")]
    JobNotRunning { job_id: String, state: JobState },
    #[error("user {account_id} is not part of job {job_id}")]
    UnknownItem { job_id: String, account_id: String },
    #[error(
        "user {account_id} already has a result in job {job_id}; nothing is sent or recorded twice"
    )]
    ItemFinished { job_id: String, account_id: String },
    #[error("user {0} appears twice in the job; each user is planned once")]
    DuplicateAccount(String),
    #[error("user {0} cannot have succeeded before any request was sent")]
    SettledAsSuccess(String),
    #[error("preview {0} was not confirmed for this team and action, or it does not exist: a job starts only from a confirmed preview")]
    PreviewNotConfirmed(String),
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// What a health check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageHealth {
    pub database: &'static str,
    pub migrations: i64,
    pub jobs: i64,
}

/// A team's saved connection to its site. `Debug` hides the encrypted token.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionRecord {
    pub site_url: String,
    /// An explicit SCIM base URL, when the admin overrides the one derived from `site_url`.
    pub scim_base_url: Option<String>,
    /// The token as [`crate::secret::SecretBox::encrypt`] stored it; None when no token is saved.
    pub token_ciphertext: Option<String>,
    /// The token's last characters ([`crate::scim::ScimToken::hint`]), to show "ends in …x7Q9".
    pub token_hint: String,
    /// The admin's own email: the run never touches this account.
    pub operator_email: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for ConnectionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionRecord")
            .field("site_url", &self.site_url)
            .field("scim_base_url", &self.scim_base_url)
            .field(
                "token_ciphertext",
                &self.token_ciphertext.as_ref().map(|_| "<hidden>"),
            )
            .field("token_hint", &self.token_hint)
            .field("operator_email", &self.operator_email)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// A preview as the admin saw it, kept so the server (not the browser) checks the typed phrase
/// and runs exactly what was shown. Its rows are stored beside it, one by one
/// ([`Storage::preview_rows`]); what it was made from is its [`PreviewSourceRecord`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviewRecord {
    /// A UUID.
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub action: Action,
    /// The source it was resolved from (shared with its revisions).
    pub source_id: String,
    /// What the pages show above the rows (source, counts, options), as JSON.
    pub summary_json: String,
    pub total_rows: usize,
    /// What the admin must type to confirm, e.g. `DELETE 37 USERS`.
    pub phrase: String,
    /// True once a job was started from it.
    pub claimed: bool,
    /// The revision that replaced it (its rows are gone then).
    pub replaced_by: Option<String>,
}

/// What a preview was made from: the admin's input and the site listing, with the connection
/// that produced the listing. One source serves a preview and all its revisions, so revising
/// costs the new rows only.
#[derive(Clone, PartialEq, Eq)]
pub struct PreviewSourceRecord {
    /// A UUID.
    pub id: String,
    pub created_at: DateTime<Utc>,
    /// The SCIM users URL the listing came from; account IDs mean something only there.
    pub users_url: String,
    /// HMAC of the token the listing was taken with (see `SecretBox::fingerprint`).
    pub token_fingerprint: String,
    /// The admin's input (file or ticked IDs), as JSON.
    pub input_json: String,
    /// The full user listing, as JSON.
    pub listing_json: String,
}

impl fmt::Debug for PreviewSourceRecord {
    // The listing can hold thousands of users and the input a whole file: print their sizes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreviewSourceRecord")
            .field("id", &self.id)
            .field("created_at", &self.created_at)
            .field("users_url", &self.users_url)
            .field(
                "input_json",
                &format_args!("<{} bytes>", self.input_json.len()),
            )
            .field(
                "listing_json",
                &format_args!("<{} bytes>", self.listing_json.len()),
            )
            .finish_non_exhaustive()
    }
}

/// What the preview sweep removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expired {
    pub previews: u64,
    pub sources: u64,
}

/// The exact connection a run was confirmed on; it resumes only on the same one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobConnection {
    pub users_url: String,
    pub token_fingerprint: String,
}

/// Where a job is. `Finished`, `Stopped` and `Failed` are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Created, waiting for the runner.
    Queued,
    Running,
    /// Waiting for the admin (by request, or because the site needs a setting changed).
    Paused,
    /// The admin cancelled; the runner is finishing the request in flight.
    Cancelling,
    /// Every user has a result.
    Finished,
    /// Ended before every user was processed (cancelled, or a stop condition); see the reason.
    Stopped,
    /// Could not continue because of an error in Offboard itself; see the reason.
    Failed,
}

impl JobState {
    pub const ALL: [JobState; 7] = [
        JobState::Queued,
        JobState::Running,
        JobState::Paused,
        JobState::Cancelling,
        JobState::Finished,
        JobState::Stopped,
        JobState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Paused => "paused",
            JobState::Cancelling => "cancelling",
            JobState::Finished => "finished",
            JobState::Stopped => "stopped",
            JobState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// True once the job can no longer change.
    pub fn has_ended(self) -> bool {
        matches!(
            self,
            JobState::Finished | JobState::Stopped | JobState::Failed
        )
    }

    /// States the server picks up again after a restart (a paused job waits for the admin).
    pub fn resumes_at_start(self) -> bool {
        matches!(
            self,
            JobState::Queued | JobState::Running | JobState::Cancelling
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One user in a new job, in the admin's input order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlannedItem {
    /// Still matches the preview: the run will act on it.
    Run(RunTarget),
    /// Already decided when the job was created, typically `ChangedSincePreview`: recorded as
    /// final, never sent. A success outcome is refused (nothing was sent yet).
    Settled(ItemResult),
}

impl PlannedItem {
    fn account_id(&self) -> &str {
        match self {
            PlannedItem::Run(t) => &t.account_id,
            PlannedItem::Settled(r) => &r.account_id,
        }
    }
}

/// A job about to be created from a confirmed preview.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewJob {
    /// A UUID.
    pub id: String,
    pub team_id: i64,
    /// Who started it, as the console names the admin.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub site_url: String,
    pub action: Action,
    /// Must be a preview of the same team and action, already claimed with
    /// [`Storage::claim_preview`].
    pub preview_id: String,
    /// The connection the admin confirmed it on.
    pub connection: JobConnection,
    /// Every selected user of the preview, in input order.
    pub items: Vec<PlannedItem>,
}

/// A job as the console lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub team_id: i64,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub site_url: String,
    pub action: Action,
    pub preview_id: Option<String>,
    /// None for runs started before Offboard recorded it.
    pub connection: Option<JobConnection>,
    pub state: JobState,
    /// Why it paused, stopped or failed, in plain words.
    pub reason: Option<String>,
    /// When it first ran.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Users in the job.
    pub total: u64,
    /// Users with a final result.
    pub done: u64,
    /// Final results per outcome (outcomes with no users are absent).
    pub counts: BTreeMap<ItemOutcome, u64>,
}

impl JobRecord {
    pub fn count(&self, outcome: ItemOutcome) -> u64 {
        self.counts.get(&outcome).copied().unwrap_or(0)
    }
}

/// One entry of a job's log, in `seq` order: either a user's result or a change of state.
/// Watchers resume with the last `seq` they saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobEvent {
    /// Increases by one per event within a job, starting at 1.
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub result: Option<ItemResult>,
    pub state_change: Option<JobState>,
    /// Why the state changed, when it says.
    pub reason: Option<String>,
}

/// The records Offboard keeps. One implementation a database kind.
///
/// Methods taking a `team_id` only ever see that team's records. The runner-side methods
/// (`set_job_state`, `job_targets`, `mark_sending`, `record_result`, `record_not_attempted`)
/// take a job id the server got from `create_job` or `unfinished_jobs`.
#[async_trait]
pub trait Storage: Send + Sync {
    /// A real round trip: counts applied migrations and the team's jobs.
    async fn health(&self, team_id: i64) -> Result<StorageHealth>;

    /// Replaces the team's connection with `record` as given (a None token means no token).
    async fn save_connection(&self, team_id: i64, record: &ConnectionRecord) -> Result<()>;
    async fn connection(&self, team_id: i64) -> Result<Option<ConnectionRecord>>;
    /// Drops the saved token (and its hint); the site settings stay.
    async fn forget_token(&self, team_id: i64) -> Result<()>;

    async fn save_preview_source(&self, team_id: i64, source: &PreviewSourceRecord) -> Result<()>;
    async fn preview_source(
        &self,
        team_id: i64,
        source_id: &str,
    ) -> Result<Option<PreviewSourceRecord>>;
    /// Stores a preview and its rows together (or neither).
    async fn save_preview(
        &self,
        team_id: i64,
        preview: &PreviewRecord,
        rows: &[PreviewRow],
    ) -> Result<()>;
    async fn preview(&self, team_id: i64, preview_id: &str) -> Result<Option<PreviewRecord>>;
    /// Stores `revision` (with its rows) as the replacement of `replaced`: an unconfirmed
    /// `replaced` loses its rows and points at the revision; a confirmed one stays as it is
    /// (its run cites it).
    async fn replace_preview(
        &self,
        team_id: i64,
        replaced: &str,
        revision: &PreviewRecord,
        rows: &[PreviewRow],
    ) -> Result<()>;
    /// One page of a preview's rows in input order, optionally of one outcome, and how many
    /// rows match in all.
    async fn preview_rows(
        &self,
        team_id: i64,
        preview_id: &str,
        outcome: Option<PreviewOutcome>,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<PreviewRow>, usize)>;
    /// Every row of a preview, in input order (to start a run or write a report).
    async fn all_preview_rows(&self, team_id: i64, preview_id: &str) -> Result<Vec<PreviewRow>>;
    /// Removes previews nobody confirmed that were made before `before`, with their rows, and
    /// the sources no remaining unclaimed preview uses that were made before `before`.
    async fn expire_previews(&self, before: DateTime<Utc>) -> Result<Expired>;
    /// Marks the preview used. True exactly once per preview: a replayed confirmation gets false.
    async fn claim_preview(&self, team_id: i64, preview_id: &str) -> Result<bool>;

    /// Creates the job (queued), its users and their first events in one transaction.
    async fn create_job(&self, job: &NewJob) -> Result<()>;
    /// Changes the job's state (a final state is never left) and logs the change.
    async fn set_job_state(
        &self,
        job_id: &str,
        state: JobState,
        reason: Option<String>,
    ) -> Result<JobEvent>;
    async fn job(&self, team_id: i64, job_id: &str) -> Result<Option<JobRecord>>;
    /// The team's jobs, newest first.
    async fn list_jobs(&self, team_id: i64, limit: u32) -> Result<Vec<JobRecord>>;
    /// Every team's queued, running or cancelling jobs, oldest first: resumed at server start.
    async fn unfinished_jobs(&self) -> Result<Vec<JobRecord>>;

    /// The users still without a result, in input order; one left `Sending` by a crash comes
    /// back as [`TargetState::Sending`] so it is checked before anything is re-sent.
    async fn job_targets(&self, job_id: &str) -> Result<Vec<RunTarget>>;
    /// Persists "a request is about to be sent for this user". Refused unless the job is
    /// running and the user has no result yet, so a cancel or a finished user stops the send.
    async fn mark_sending(&self, job_id: &str, account_id: &str) -> Result<()>;
    /// Stores the user's final result and logs it, in one transaction. A second result for
    /// the same user is refused with [`StorageError::ItemFinished`].
    async fn record_result(&self, job_id: &str, result: &ItemResult) -> Result<JobEvent>;
    /// Gives every user still pending (never sent) the outcome `NotAttempted`, e.g. after a
    /// cancel. Users left `Sending` are untouched: their outcome is unknown until checked.
    async fn record_not_attempted(&self, job_id: &str, message: &str) -> Result<Vec<JobEvent>>;

    /// The job's events after `after_seq` (0 = from the start), oldest first.
    async fn events_since(
        &self,
        team_id: i64,
        job_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<JobEvent>>;
    /// The job's result events before `before_seq` (None = the newest), newest first, and the
    /// seq of the job's newest event of any kind (0 when none): what the Run page opens with,
    /// instead of replaying the whole log.
    async fn latest_results(
        &self,
        team_id: i64,
        job_id: &str,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<(Vec<JobEvent>, i64)>;
    /// Every final result of the job (settled rows included), in input order. Users still
    /// without a result are absent: compare with [`JobRecord::total`].
    async fn job_results(&self, team_id: i64, job_id: &str) -> Result<Vec<ItemResult>>;
}

/// The team everything belongs to until accounts and teams arrive.
pub const DEFAULT_TEAM: i64 = 1;

/// An opened database: the records, plus the pool the session store shares.
pub struct Database {
    pub storage: Arc<dyn Storage>,
    pub sqlite: SqlitePool,
}

/// Opens (creating if needed) the database at `url` and applies migrations.
pub async fn open(url: &str) -> Result<Database> {
    open_with_clock(url, Arc::new(SystemClock)).await
}

/// [`open`], with the clock that stamps job state changes and results.
pub async fn open_with_clock(url: &str, clock: Arc<dyn Clock>) -> Result<Database> {
    if !(url.starts_with("sqlite:")) {
        return Err(StorageError::UnsupportedUrl(redact_url(url)));
    }
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        // WAL lets the console read while a job writes; NORMAL is durable across process
        // crashes (what resuming a job needs), only an OS crash can lose the last commit.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        // A large preview is one big transaction; without a limit its WAL file would keep
        // that size on disk after the checkpoint.
        .pragma("journal_size_limit", "67108864")
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options.clone())
        .await?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    // SQLite writes one transaction at a time anyway; one connection of their own means the
    // jobs' writes queue in order here, never behind readers holding the other connections,
    // and never in SQLite's busy-wait sleeps.
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    Ok(Database {
        storage: Arc::new(SqliteStorage {
            pool: pool.clone(),
            writer,
            clock,
        }),
        sqlite: pool,
    })
}

/// Database URLs can carry passwords (postgres://user:pw@host): never print them whole.
fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, _)) => format!("{scheme}://…"),
        None => "(unrecognised URL)".to_string(),
    }
}

/// Fixed fraction digits, so stored times sort correctly as text.
fn stamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_stamp(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StorageError::Damaged(format!("unreadable time {text:?}")))
}

fn parse_optional_stamp(text: Option<String>) -> Result<Option<DateTime<Utc>>> {
    text.as_deref().map(parse_stamp).transpose()
}

/// Enums are stored by their serde name ("Delete", "Deleted"), the same text JSON carries.
fn enum_name<T: Serialize>(value: &T) -> Result<String> {
    match serde_json::to_value(value)? {
        serde_json::Value::String(name) => Ok(name),
        other => Err(StorageError::Damaged(format!(
            "expected a plain name, got {other}"
        ))),
    }
}

fn enum_from_name<T: serde::de::DeserializeOwned>(what: &str, name: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map_err(|_| StorageError::Damaged(format!("unknown {what} {name:?}")))
}

fn parse_job_state(text: &str) -> Result<JobState> {
    JobState::parse(text)
        .ok_or_else(|| StorageError::Damaged(format!("unknown job state {text:?}")))
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Writes a preview and its rows inside `tx`.
async fn insert_preview(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    team_id: i64,
    preview: &PreviewRecord,
    rows: &[PreviewRow],
) -> Result<()> {
    sqlx::query(
        "INSERT INTO previews (id, team_id, created_at, action, preview_json, listing_json, \
         phrase, source_id, summary_json, total_rows) VALUES (?, ?, ?, ?, '', '', ?, ?, ?, ?)",
    )
    .bind(&preview.id)
    .bind(team_id)
    .bind(stamp(preview.created_at))
    .bind(enum_name(&preview.action)?)
    .bind(&preview.phrase)
    .bind(&preview.source_id)
    .bind(&preview.summary_json)
    .bind(to_i64(rows.len() as u64))
    .execute(&mut **tx)
    .await?;
    // Many rows per statement: a 100,000-row preview is 200 statements, not 100,000.
    for (chunk_index, chunk) in rows.chunks(PREVIEW_ROWS_PER_INSERT).enumerate() {
        let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO preview_rows (preview_id, position, outcome, row_json) ",
        );
        let mut encoded = Vec::with_capacity(chunk.len());
        for (i, row) in chunk.iter().enumerate() {
            let position = chunk_index * PREVIEW_ROWS_PER_INSERT + i;
            encoded.push((
                to_i64(position as u64),
                enum_name(&row.outcome)?,
                serde_json::to_string(row)?,
            ));
        }
        insert.push_values(encoded, |mut values, (position, outcome, json)| {
            values
                .push_bind(&preview.id)
                .push_bind(position)
                .push_bind(outcome)
                .push_bind(json);
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Preview rows written per INSERT statement (4 values each; SQLite allows 32,766).
const PREVIEW_ROWS_PER_INSERT: usize = 500;

const ITEM_PENDING: &str = "pending";
const ITEM_SENDING: &str = "sending";
const ITEM_DONE: &str = "done";

const JOB_COLUMNS: &str = "id, team_id, created_by, created_at, site_url, action, preview_id, \
                           state, reason, started_at, finished_at, users_url, token_fingerprint";

const ITEM_RESULT_COLUMNS: &str =
    "account_id, email, outcome, message, attempts, elapsed_ms, demoted";

pub struct SqliteStorage {
    pool: SqlitePool,
    /// The jobs' writes (creation, states, sending marks, results).
    writer: SqlitePool,
    clock: Arc<dyn Clock>,
}

impl SqliteStorage {
    async fn job_record(&self, row: &SqliteRow) -> Result<JobRecord> {
        let id: String = row.try_get("id")?;
        let action: String = row.try_get("action")?;
        let state: String = row.try_get("state")?;
        let created_at: String = row.try_get("created_at")?;

        let tallies = sqlx::query(
            "SELECT state, outcome, COUNT(*) AS n FROM job_items WHERE job_id = ? \
             GROUP BY state, outcome",
        )
        .bind(&id)
        .fetch_all(&self.pool)
        .await?;
        let (mut total, mut done, mut counts) = (0u64, 0u64, BTreeMap::new());
        for tally in &tallies {
            let n = to_u64(tally.try_get("n")?);
            total += n;
            let item_state: String = tally.try_get("state")?;
            if item_state == ITEM_DONE {
                done += n;
                let outcome: Option<String> = tally.try_get("outcome")?;
                let outcome = outcome.ok_or_else(|| {
                    StorageError::Damaged(format!("a finished user of job {id} has no outcome"))
                })?;
                *counts
                    .entry(enum_from_name::<ItemOutcome>("outcome", &outcome)?)
                    .or_insert(0) += n;
            }
        }

        Ok(JobRecord {
            team_id: row.try_get("team_id")?,
            created_by: row.try_get("created_by")?,
            created_at: parse_stamp(&created_at)?,
            site_url: row.try_get("site_url")?,
            action: enum_from_name("action", &action)?,
            preview_id: row.try_get("preview_id")?,
            connection: match (
                row.try_get::<Option<String>, _>("users_url")?,
                row.try_get::<Option<String>, _>("token_fingerprint")?,
            ) {
                (Some(users_url), Some(token_fingerprint)) => Some(JobConnection {
                    users_url,
                    token_fingerprint,
                }),
                _ => None,
            },
            state: parse_job_state(&state)?,
            reason: row.try_get("reason")?,
            started_at: parse_optional_stamp(row.try_get("started_at")?)?,
            finished_at: parse_optional_stamp(row.try_get("finished_at")?)?,
            total,
            done,
            counts,
            id,
        })
    }

    async fn job_records(&self, rows: Vec<SqliteRow>) -> Result<Vec<JobRecord>> {
        let mut jobs = Vec::with_capacity(rows.len());
        for row in &rows {
            jobs.push(self.job_record(row).await?);
        }
        Ok(jobs)
    }

    /// The job's state, or why it cannot be found.
    async fn current_state(&self, job_id: &str) -> Result<JobState> {
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM jobs WHERE id = ?")
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?;
        match state {
            Some(state) => parse_job_state(&state),
            None => Err(StorageError::JobNotFound(job_id.to_string())),
        }
    }

    /// Why an item update touched no row.
    async fn item_refusal(&self, job_id: &str, account_id: &str) -> StorageError {
        let state: std::result::Result<Option<String>, sqlx::Error> =
            sqlx::query_scalar("SELECT state FROM job_items WHERE job_id = ? AND account_id = ?")
                .bind(job_id)
                .bind(account_id)
                .fetch_optional(&self.pool)
                .await;
        match state {
            Err(e) => e.into(),
            Ok(Some(state)) if state == ITEM_DONE => StorageError::ItemFinished {
                job_id: job_id.to_string(),
                account_id: account_id.to_string(),
            },
            Ok(_) => StorageError::UnknownItem {
                job_id: job_id.to_string(),
                account_id: account_id.to_string(),
            },
        }
    }
}

/// Takes the job's next event number. Run it first in a transaction: the write lock it takes
/// makes concurrent writers of the same database wait instead of failing mid-transaction.
async fn next_seq(tx: &mut sqlx::SqliteConnection, job_id: &str) -> Result<i64> {
    let seq: Option<i64> = sqlx::query_scalar(
        "UPDATE jobs SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq",
    )
    .bind(job_id)
    .fetch_optional(&mut *tx)
    .await?;
    seq.ok_or_else(|| StorageError::JobNotFound(job_id.to_string()))
}

async fn append_result_event(
    tx: &mut sqlx::SqliteConnection,
    job_id: &str,
    seq: i64,
    at: DateTime<Utc>,
    result: &ItemResult,
) -> Result<JobEvent> {
    sqlx::query("INSERT INTO job_events (job_id, seq, at, result_json) VALUES (?, ?, ?, ?)")
        .bind(job_id)
        .bind(seq)
        .bind(stamp(at))
        .bind(serde_json::to_string(result)?)
        .execute(&mut *tx)
        .await?;
    Ok(JobEvent {
        seq,
        at,
        result: Some(result.clone()),
        state_change: None,
        reason: None,
    })
}

/// Sets a not-yet-finished item's final result; false when it is unknown or already finished.
async fn finish_item(
    tx: &mut sqlx::SqliteConnection,
    job_id: &str,
    result: &ItemResult,
    at: DateTime<Utc>,
) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE job_items SET state = ?, outcome = ?, message = ?, attempts = ?, \
         elapsed_ms = ?, demoted = ?, email = COALESCE(?, email), finished_at = ? \
         WHERE job_id = ? AND account_id = ? AND state <> ?",
    )
    .bind(ITEM_DONE)
    .bind(enum_name(&result.outcome)?)
    .bind(&result.message)
    .bind(i64::from(result.attempts))
    .bind(to_i64(result.elapsed_ms))
    .bind(i64::from(result.demoted))
    .bind(&result.email)
    .bind(stamp(at))
    .bind(job_id)
    .bind(&result.account_id)
    .bind(ITEM_DONE)
    .execute(&mut *tx)
    .await?;
    Ok(updated.rows_affected() == 1)
}

fn item_result(row: &SqliteRow) -> Result<ItemResult> {
    let outcome: Option<String> = row.try_get("outcome")?;
    let account_id: String = row.try_get("account_id")?;
    let outcome = outcome.ok_or_else(|| {
        StorageError::Damaged(format!("finished user {account_id} has no outcome"))
    })?;
    let attempts: i64 = row.try_get("attempts")?;
    let elapsed_ms: i64 = row.try_get("elapsed_ms")?;
    let demoted: i64 = row.try_get("demoted")?;
    Ok(ItemResult {
        account_id,
        email: row.try_get("email")?,
        outcome: enum_from_name("outcome", &outcome)?,
        message: row.try_get("message")?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        elapsed_ms: to_u64(elapsed_ms),
        demoted: demoted != 0,
    })
}

fn job_event(row: &SqliteRow) -> Result<JobEvent> {
    let at: String = row.try_get("at")?;
    let result_json: Option<String> = row.try_get("result_json")?;
    let state_change: Option<String> = row.try_get("state_change")?;
    Ok(JobEvent {
        seq: row.try_get("seq")?,
        at: parse_stamp(&at)?,
        result: result_json
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| StorageError::Damaged(format!("unreadable result in the job log: {e}")))?,
        state_change: state_change.as_deref().map(parse_job_state).transpose()?,
        reason: row.try_get("reason")?,
    })
}

#[async_trait]
impl Storage for SqliteStorage {
    async fn health(&self, team_id: i64) -> Result<StorageHealth> {
        let migrations: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = 1")
                .fetch_one(&self.pool)
                .await?;
        let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE team_id = ?")
            .bind(team_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(StorageHealth {
            database: "SQLite",
            migrations,
            jobs,
        })
    }

    async fn save_connection(&self, team_id: i64, record: &ConnectionRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO connections (team_id, site_url, scim_base_url, token_ciphertext, \
             token_hint, operator_email, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (team_id) DO UPDATE SET site_url = excluded.site_url, \
             scim_base_url = excluded.scim_base_url, token_ciphertext = excluded.token_ciphertext, \
             token_hint = excluded.token_hint, operator_email = excluded.operator_email, \
             updated_at = excluded.updated_at",
        )
        .bind(team_id)
        .bind(&record.site_url)
        .bind(&record.scim_base_url)
        .bind(&record.token_ciphertext)
        .bind(&record.token_hint)
        .bind(&record.operator_email)
        .bind(stamp(record.updated_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn connection(&self, team_id: i64) -> Result<Option<ConnectionRecord>> {
        let row = sqlx::query(
            "SELECT site_url, scim_base_url, token_ciphertext, token_hint, operator_email, \
             updated_at FROM connections WHERE team_id = ?",
        )
        .bind(team_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let updated_at: String = row.try_get("updated_at")?;
        Ok(Some(ConnectionRecord {
            site_url: row.try_get("site_url")?,
            scim_base_url: row.try_get("scim_base_url")?,
            token_ciphertext: row.try_get("token_ciphertext")?,
            token_hint: row.try_get("token_hint")?,
            operator_email: row.try_get("operator_email")?,
            updated_at: parse_stamp(&updated_at)?,
        }))
    }

    async fn forget_token(&self, team_id: i64) -> Result<()> {
        sqlx::query(
            "UPDATE connections SET token_ciphertext = NULL, token_hint = '', updated_at = ? \
             WHERE team_id = ?",
        )
        .bind(stamp(self.clock.now()))
        .bind(team_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn save_preview_source(&self, team_id: i64, source: &PreviewSourceRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO preview_sources (id, team_id, created_at, users_url, token_fingerprint, \
             input_json, listing_json) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&source.id)
        .bind(team_id)
        .bind(stamp(source.created_at))
        .bind(&source.users_url)
        .bind(&source.token_fingerprint)
        .bind(&source.input_json)
        .bind(&source.listing_json)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn preview_source(
        &self,
        team_id: i64,
        source_id: &str,
    ) -> Result<Option<PreviewSourceRecord>> {
        let row = sqlx::query(
            "SELECT id, created_at, users_url, token_fingerprint, input_json, listing_json \
             FROM preview_sources WHERE team_id = ? AND id = ?",
        )
        .bind(team_id)
        .bind(source_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let created_at: String = row.try_get("created_at")?;
        Ok(Some(PreviewSourceRecord {
            id: row.try_get("id")?,
            created_at: parse_stamp(&created_at)?,
            users_url: row.try_get("users_url")?,
            token_fingerprint: row.try_get("token_fingerprint")?,
            input_json: row.try_get("input_json")?,
            listing_json: row.try_get("listing_json")?,
        }))
    }

    async fn save_preview(
        &self,
        team_id: i64,
        preview: &PreviewRecord,
        rows: &[PreviewRow],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_preview(&mut tx, team_id, preview, rows).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn replace_preview(
        &self,
        team_id: i64,
        replaced: &str,
        revision: &PreviewRecord,
        rows: &[PreviewRow],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_preview(&mut tx, team_id, revision, rows).await?;
        let unclaimed = sqlx::query(
            "UPDATE previews SET replaced_by = ? WHERE team_id = ? AND id = ? \
             AND claimed_at IS NULL",
        )
        .bind(&revision.id)
        .bind(team_id)
        .bind(replaced)
        .execute(&mut *tx)
        .await?;
        if unclaimed.rows_affected() == 1 {
            sqlx::query("DELETE FROM preview_rows WHERE preview_id = ?")
                .bind(replaced)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn preview(&self, team_id: i64, preview_id: &str) -> Result<Option<PreviewRecord>> {
        let row = sqlx::query(
            "SELECT id, created_at, action, phrase, source_id, summary_json, total_rows, \
             claimed_at IS NOT NULL AS claimed, replaced_by FROM previews \
             WHERE team_id = ? AND id = ?",
        )
        .bind(team_id)
        .bind(preview_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let created_at: String = row.try_get("created_at")?;
        let action: String = row.try_get("action")?;
        let source_id: Option<String> = row.try_get("source_id")?;
        Ok(Some(PreviewRecord {
            id: row.try_get("id")?,
            created_at: parse_stamp(&created_at)?,
            action: enum_from_name("action", &action)?,
            source_id: source_id.unwrap_or_default(),
            summary_json: row.try_get("summary_json")?,
            total_rows: to_u64(row.try_get("total_rows")?) as usize,
            phrase: row.try_get("phrase")?,
            claimed: row.try_get("claimed")?,
            replaced_by: row.try_get("replaced_by")?,
        }))
    }

    async fn preview_rows(
        &self,
        team_id: i64,
        preview_id: &str,
        outcome: Option<PreviewOutcome>,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<PreviewRow>, usize)> {
        let outcome = outcome.map(|o| enum_name(&o)).transpose()?;
        // `?3 IS NULL` keeps one statement for "all rows" and "rows of one outcome"; the
        // (preview_id, outcome, position) index serves the filtered case.
        let matching: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM preview_rows r JOIN previews p ON p.id = r.preview_id \
             WHERE p.team_id = ?1 AND r.preview_id = ?2 AND (?3 IS NULL OR r.outcome = ?3)",
        )
        .bind(team_id)
        .bind(preview_id)
        .bind(&outcome)
        .fetch_one(&self.pool)
        .await?;
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT r.row_json FROM preview_rows r JOIN previews p ON p.id = r.preview_id \
             WHERE p.team_id = ?1 AND r.preview_id = ?2 AND (?3 IS NULL OR r.outcome = ?3) \
             ORDER BY r.position LIMIT ?4 OFFSET ?5",
        )
        .bind(team_id)
        .bind(preview_id)
        .bind(&outcome)
        .bind(to_i64(limit as u64))
        .bind(to_i64(offset as u64))
        .fetch_all(&self.pool)
        .await?;
        let rows = rows
            .iter()
            .map(|json| serde_json::from_str(json))
            .collect::<std::result::Result<Vec<PreviewRow>, _>>()?;
        Ok((rows, to_u64(matching) as usize))
    }

    async fn all_preview_rows(&self, team_id: i64, preview_id: &str) -> Result<Vec<PreviewRow>> {
        use futures::TryStreamExt;
        // Each row is parsed as it arrives: collecting the JSON texts first would hold a
        // large preview twice (texts and rows) when a run starts.
        let mut texts = sqlx::query_scalar::<_, String>(
            "SELECT r.row_json FROM preview_rows r JOIN previews p ON p.id = r.preview_id \
             WHERE p.team_id = ? AND r.preview_id = ? ORDER BY r.position",
        )
        .bind(team_id)
        .bind(preview_id)
        .fetch(&self.pool);
        let mut rows = Vec::new();
        while let Some(json) = texts.try_next().await? {
            rows.push(serde_json::from_str(&json)?);
        }
        Ok(rows)
    }

    async fn expire_previews(&self, before: DateTime<Utc>) -> Result<Expired> {
        let before = stamp(before);
        let mut tx = self.pool.begin().await?;
        // Rows go with their preview (ON DELETE CASCADE).
        let previews =
            sqlx::query("DELETE FROM previews WHERE claimed_at IS NULL AND created_at < ?")
                .bind(&before)
                .execute(&mut *tx)
                .await?;
        let sources = sqlx::query(
            "DELETE FROM preview_sources WHERE created_at < ? AND id NOT IN \
             (SELECT source_id FROM previews WHERE claimed_at IS NULL AND source_id IS NOT NULL)",
        )
        .bind(&before)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Expired {
            previews: previews.rows_affected(),
            sources: sources.rows_affected(),
        })
    }

    async fn claim_preview(&self, team_id: i64, preview_id: &str) -> Result<bool> {
        let claimed = sqlx::query(
            "UPDATE previews SET claimed_at = ? WHERE team_id = ? AND id = ? \
             AND claimed_at IS NULL",
        )
        .bind(stamp(self.clock.now()))
        .bind(team_id)
        .bind(preview_id)
        .execute(&self.pool)
        .await?;
        Ok(claimed.rows_affected() == 1)
    }

    async fn create_job(&self, job: &NewJob) -> Result<()> {
        let mut seen = HashSet::new();
        for item in &job.items {
            if !seen.insert(item.account_id()) {
                return Err(StorageError::DuplicateAccount(
                    item.account_id().to_string(),
                ));
            }
            if let PlannedItem::Settled(result) = item {
                if result.outcome.is_success() {
                    return Err(StorageError::SettledAsSuccess(result.account_id.clone()));
                }
            }
        }
        let settled = job
            .items
            .iter()
            .filter(|i| matches!(i, PlannedItem::Settled(_)))
            .count();
        let queued_seq = 1i64;
        let at = job.created_at;

        let mut tx = self.writer.begin().await?;
        // The job row is written only if its preview is this team's, of the same action and
        // claimed: a job can never start from an unconfirmed preview.
        let inserted = sqlx::query(
            "INSERT INTO jobs (id, team_id, created_at, state, created_by, site_url, action, \
             users_url, token_fingerprint, preview_id, last_seq) \
             SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, id, ? FROM previews \
             WHERE id = ? AND team_id = ? AND action = ? AND claimed_at IS NOT NULL",
        )
        .bind(&job.id)
        .bind(job.team_id)
        .bind(stamp(at))
        .bind(JobState::Queued.as_str())
        .bind(&job.created_by)
        .bind(&job.site_url)
        .bind(enum_name(&job.action)?)
        .bind(&job.connection.users_url)
        .bind(&job.connection.token_fingerprint)
        .bind(queued_seq + to_i64(settled as u64))
        .bind(&job.preview_id)
        .bind(job.team_id)
        .bind(enum_name(&job.action)?)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() != 1 {
            return Err(StorageError::PreviewNotConfirmed(job.preview_id.clone()));
        }
        sqlx::query("INSERT INTO job_events (job_id, seq, at, state_change) VALUES (?, ?, ?, ?)")
            .bind(&job.id)
            .bind(queued_seq)
            .bind(stamp(at))
            .bind(JobState::Queued.as_str())
            .execute(&mut *tx)
            .await?;

        let mut seq = queued_seq;
        for (position, item) in job.items.iter().enumerate() {
            let (account_id, email) = match item {
                PlannedItem::Run(t) => (&t.account_id, &t.email),
                PlannedItem::Settled(r) => (&r.account_id, &r.email),
            };
            sqlx::query(
                "INSERT INTO job_items (job_id, position, account_id, email, state) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&job.id)
            .bind(to_i64(position as u64))
            .bind(account_id)
            .bind(email)
            .bind(ITEM_PENDING)
            .execute(&mut *tx)
            .await?;
            if let PlannedItem::Settled(result) = item {
                finish_item(&mut tx, &job.id, result, at).await?;
                seq += 1;
                append_result_event(&mut tx, &job.id, seq, at, result).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_job_state(
        &self,
        job_id: &str,
        state: JobState,
        reason: Option<String>,
    ) -> Result<JobEvent> {
        let at = self.clock.now();
        let started = (state == JobState::Running).then(|| stamp(at));
        let finished = state.has_ended().then(|| stamp(at));
        let mut tx = self.writer.begin().await?;
        let seq: Option<i64> = sqlx::query_scalar(
            "UPDATE jobs SET state = ?, reason = ?, last_seq = last_seq + 1, \
             started_at = COALESCE(started_at, ?), finished_at = COALESCE(?, finished_at) \
             WHERE id = ? AND state NOT IN (?, ?, ?) RETURNING last_seq",
        )
        .bind(state.as_str())
        .bind(&reason)
        .bind(started)
        .bind(finished)
        .bind(job_id)
        .bind(JobState::Finished.as_str())
        .bind(JobState::Stopped.as_str())
        .bind(JobState::Failed.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(seq) = seq else {
            drop(tx);
            let current = self.current_state(job_id).await?;
            return Err(StorageError::JobEnded {
                job_id: job_id.to_string(),
                state: current,
            });
        };
        sqlx::query(
            "INSERT INTO job_events (job_id, seq, at, state_change, reason) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(job_id)
        .bind(seq)
        .bind(stamp(at))
        .bind(state.as_str())
        .bind(&reason)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(JobEvent {
            seq,
            at,
            result: None,
            state_change: Some(state),
            reason,
        })
    }

    async fn job(&self, team_id: i64, job_id: &str) -> Result<Option<JobRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE team_id = ? AND id = ?"
        ))
        .bind(team_id)
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Some(self.job_record(&row).await?)),
            None => Ok(None),
        }
    }

    async fn list_jobs(&self, team_id: i64, limit: u32) -> Result<Vec<JobRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE team_id = ? \
             ORDER BY created_at DESC, id DESC LIMIT ?"
        ))
        .bind(team_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        self.job_records(rows).await
    }

    async fn unfinished_jobs(&self) -> Result<Vec<JobRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE state IN (?, ?, ?) \
             ORDER BY created_at, id"
        ))
        .bind(JobState::Queued.as_str())
        .bind(JobState::Running.as_str())
        .bind(JobState::Cancelling.as_str())
        .fetch_all(&self.pool)
        .await?;
        self.job_records(rows).await
    }

    async fn job_targets(&self, job_id: &str) -> Result<Vec<RunTarget>> {
        let rows = sqlx::query(
            "SELECT account_id, email, state FROM job_items WHERE job_id = ? AND state <> ? \
             ORDER BY position",
        )
        .bind(job_id)
        .bind(ITEM_DONE)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let state: String = row.try_get("state")?;
                Ok(RunTarget {
                    account_id: row.try_get("account_id")?,
                    email: row.try_get("email")?,
                    state: match state.as_str() {
                        ITEM_PENDING => TargetState::Pending,
                        ITEM_SENDING => TargetState::Sending,
                        other => {
                            return Err(StorageError::Damaged(format!(
                                "unknown user state {other:?} in job {job_id}"
                            )))
                        }
                    },
                })
            })
            .collect()
    }

    async fn mark_sending(&self, job_id: &str, account_id: &str) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE job_items SET state = ? WHERE job_id = ? AND account_id = ? \
             AND state IN (?, ?) AND EXISTS (SELECT 1 FROM jobs WHERE id = ? AND state = ?)",
        )
        .bind(ITEM_SENDING)
        .bind(job_id)
        .bind(account_id)
        .bind(ITEM_PENDING)
        .bind(ITEM_SENDING)
        .bind(job_id)
        .bind(JobState::Running.as_str())
        .execute(&self.writer)
        .await?;
        if updated.rows_affected() == 1 {
            return Ok(());
        }
        let state = self.current_state(job_id).await?;
        if state != JobState::Running {
            return Err(StorageError::JobNotRunning {
                job_id: job_id.to_string(),
                state,
            });
        }
        Err(self.item_refusal(job_id, account_id).await)
    }

    async fn record_result(&self, job_id: &str, result: &ItemResult) -> Result<JobEvent> {
        let at = self.clock.now();
        let mut tx = self.writer.begin().await?;
        if !finish_item(&mut tx, job_id, result, at).await? {
            drop(tx);
            return Err(self.item_refusal(job_id, &result.account_id).await);
        }
        let seq = next_seq(&mut tx, job_id).await?;
        let event = append_result_event(&mut tx, job_id, seq, at, result).await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn record_not_attempted(&self, job_id: &str, message: &str) -> Result<Vec<JobEvent>> {
        let at = self.clock.now();
        let mut tx = self.writer.begin().await?;
        // Take the lock first (see next_seq), then read what is still pending.
        let first = next_seq(&mut tx, job_id).await?;
        let pending = sqlx::query(
            "SELECT account_id, email FROM job_items WHERE job_id = ? AND state = ? \
             ORDER BY position",
        )
        .bind(job_id)
        .bind(ITEM_PENDING)
        .fetch_all(&mut *tx)
        .await?;
        if pending.is_empty() {
            // Nothing to log: leave the sequence where it was.
            return Ok(Vec::new());
        }
        let mut events = Vec::with_capacity(pending.len());
        for (offset, row) in pending.iter().enumerate() {
            let result = ItemResult {
                account_id: row.try_get("account_id")?,
                email: row.try_get("email")?,
                outcome: ItemOutcome::NotAttempted,
                message: message.to_string(),
                attempts: 0,
                elapsed_ms: 0,
                demoted: false,
            };
            finish_item(&mut tx, job_id, &result, at).await?;
            let seq = first + to_i64(offset as u64);
            events.push(append_result_event(&mut tx, job_id, seq, at, &result).await?);
        }
        sqlx::query("UPDATE jobs SET last_seq = ? WHERE id = ?")
            .bind(first + to_i64(pending.len() as u64) - 1)
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(events)
    }

    async fn events_since(
        &self,
        team_id: i64,
        job_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<JobEvent>> {
        let rows = sqlx::query(
            "SELECT e.seq, e.at, e.result_json, e.state_change, e.reason \
             FROM job_events e JOIN jobs j ON j.id = e.job_id \
             WHERE j.team_id = ? AND e.job_id = ? AND e.seq > ? ORDER BY e.seq LIMIT ?",
        )
        .bind(team_id)
        .bind(job_id)
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_event).collect()
    }

    async fn latest_results(
        &self,
        team_id: i64,
        job_id: &str,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<(Vec<JobEvent>, i64)> {
        // Read together so no event can fall between the page and the resume point.
        let mut tx = self.pool.begin().await?;
        let last_seq: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(e.seq), 0) FROM job_events e JOIN jobs j ON j.id = e.job_id \
             WHERE j.team_id = ? AND e.job_id = ?",
        )
        .bind(team_id)
        .bind(job_id)
        .fetch_one(&mut *tx)
        .await?;
        let rows = sqlx::query(
            "SELECT e.seq, e.at, e.result_json, e.state_change, e.reason \
             FROM job_events e JOIN jobs j ON j.id = e.job_id \
             WHERE j.team_id = ? AND e.job_id = ? AND e.seq < ? AND e.result_json IS NOT NULL \
             ORDER BY e.seq DESC LIMIT ?",
        )
        .bind(team_id)
        .bind(job_id)
        .bind(before_seq.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let events = rows.iter().map(job_event).collect::<Result<Vec<_>>>()?;
        Ok((events, last_seq))
    }

    async fn job_results(&self, team_id: i64, job_id: &str) -> Result<Vec<ItemResult>> {
        let rows = sqlx::query(&format!(
            "SELECT {ITEM_RESULT_COLUMNS} FROM job_items \
             WHERE job_id = (SELECT id FROM jobs WHERE id = ? AND team_id = ?) AND state = ? \
             ORDER BY position"
        ))
        .bind(job_id)
        .bind(team_id)
        .bind(ITEM_DONE)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(item_result).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::ScimToken;
    use crate::secret::SecretBox;
    use chrono::TimeZone;

    struct FixedClock(DateTime<Utc>);

    impl Clock for FixedClock {
        fn now(&self) -> DateTime<Utc> {
            self.0
        }
    }

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, 12, minute, 0)
            .single()
            .expect("valid time")
    }

    fn now() -> DateTime<Utc> {
        at(30)
    }

    struct TestDb {
        _dir: tempfile::TempDir,
        url: String,
        db: Database,
    }

    impl TestDb {
        async fn new() -> TestDb {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!("sqlite://{}", dir.path().join("offboard.db").display());
            let db = open_with_clock(&url, Arc::new(FixedClock(now())))
                .await
                .expect("open");
            sqlx::query("INSERT INTO teams (id, name, created_at) VALUES (2, 'Other team', ?)")
                .bind(stamp(now()))
                .execute(&db.sqlite)
                .await
                .expect("second team");
            TestDb { _dir: dir, url, db }
        }

        fn storage(&self) -> &dyn Storage {
            self.db.storage.as_ref()
        }

        /// Closes every connection and opens the same file again, as a restart would.
        async fn restart(&mut self) {
            self.db.sqlite.close().await;
            self.db = open_with_clock(&self.url, Arc::new(FixedClock(now())))
                .await
                .expect("reopen");
        }

        async fn count(&self, sql: &str) -> i64 {
            sqlx::query_scalar(sql)
                .fetch_one(&self.db.sqlite)
                .await
                .expect("count")
        }
    }

    fn preview_record(id: &str, action: Action) -> PreviewRecord {
        PreviewRecord {
            id: id.to_string(),
            created_at: at(1),
            action,
            source_id: "source-1".to_string(),
            summary_json: r#"{"counts":{}}"#.to_string(),
            total_rows: 0,
            phrase: "DELETE 3 USERS".to_string(),
            claimed: false,
            replaced_by: None,
        }
    }

    async fn confirmed_preview(storage: &dyn Storage, team_id: i64, id: &str) {
        storage
            .save_preview(team_id, &preview_record(id, Action::Delete), &[])
            .await
            .expect("save preview");
        assert!(storage.claim_preview(team_id, id).await.expect("claim"));
    }

    fn run(account_id: &str) -> PlannedItem {
        PlannedItem::Run(RunTarget {
            account_id: account_id.to_string(),
            email: Some(format!("{account_id}@example.com")),
            state: TargetState::Pending,
        })
    }

    fn result(account_id: &str, outcome: ItemOutcome) -> ItemResult {
        ItemResult {
            account_id: account_id.to_string(),
            email: Some(format!("{account_id}@example.com")),
            outcome,
            message: format!("{} ({account_id})", outcome.label()),
            attempts: 2,
            elapsed_ms: 1234,
            demoted: outcome == ItemOutcome::Deleted,
        }
    }

    fn changed(account_id: &str) -> PlannedItem {
        PlannedItem::Settled(ItemResult {
            attempts: 0,
            elapsed_ms: 0,
            demoted: false,
            ..result(account_id, ItemOutcome::ChangedSincePreview)
        })
    }

    fn new_job(id: &str, team_id: i64, preview_id: &str, items: Vec<PlannedItem>) -> NewJob {
        NewJob {
            id: id.to_string(),
            team_id,
            created_by: "admin@example.com".to_string(),
            created_at: at(2),
            site_url: "https://acme.stackenterprise.co".to_string(),
            action: Action::Delete,
            preview_id: preview_id.to_string(),
            connection: JobConnection {
                users_url: "https://acme.stackenterprise.co/api/scim/v2/users".to_string(),
                token_fingerprint: "fp-1".to_string(),
            },
            items,
        }
    }

    /// A confirmed preview and a queued job: a1, a2 (changed since preview), a3, a4.
    async fn queued_job(storage: &dyn Storage, job_id: &str) {
        let preview_id = format!("preview-of-{job_id}");
        confirmed_preview(storage, DEFAULT_TEAM, &preview_id).await;
        storage
            .create_job(&new_job(
                job_id,
                DEFAULT_TEAM,
                &preview_id,
                vec![run("a1"), changed("a2"), run("a3"), run("a4")],
            ))
            .await
            .expect("create job");
    }

    async fn running_job(storage: &dyn Storage, job_id: &str) {
        queued_job(storage, job_id).await;
        storage
            .set_job_state(job_id, JobState::Running, None)
            .await
            .expect("start");
    }

    fn account_ids(targets: &[RunTarget]) -> Vec<&str> {
        targets.iter().map(|t| t.account_id.as_str()).collect()
    }

    #[tokio::test]
    async fn opens_a_real_file_applies_migrations_and_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested").join("offboard.db");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let url = format!("sqlite://{}", path.display());

        let db = open(&url).await.expect("open");
        let health = db.storage.health(DEFAULT_TEAM).await.expect("health");
        assert_eq!(health.database, "SQLite");
        assert!(health.migrations >= 2);
        assert_eq!(health.jobs, 0);
        assert!(path.exists(), "the SQLite file is created");
        db.sqlite.close().await;

        // Opening again must not re-run (or fail on) applied migrations.
        let again = open(&url).await.expect("reopen");
        let health2 = again.storage.health(DEFAULT_TEAM).await.expect("health");
        assert_eq!(health2.migrations, health.migrations);
    }

    #[tokio::test]
    async fn rejects_other_databases_without_leaking_credentials() {
        let err = match open("postgres://admin:hunter2@db.internal/offboard").await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("postgres is not built in yet"),
        };
        assert!(err.contains("unsupported database URL"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[tokio::test]
    async fn health_counts_only_the_teams_jobs() {
        let t = TestDb::new().await;
        queued_job(t.storage(), "job-1").await;
        assert_eq!(
            t.storage().health(DEFAULT_TEAM).await.expect("health").jobs,
            1
        );
        assert_eq!(t.storage().health(2).await.expect("health").jobs, 0);
    }

    #[test]
    fn job_states_read_back_as_written() {
        for state in JobState::ALL {
            assert_eq!(JobState::parse(state.as_str()), Some(state));
            let json = serde_json::to_string(&state).expect("json");
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
        assert_eq!(JobState::parse("Running"), None);
        assert_eq!(JobState::parse(""), None);
        let resumed: Vec<_> = JobState::ALL
            .into_iter()
            .filter(|s| s.resumes_at_start())
            .collect();
        assert_eq!(
            resumed,
            vec![JobState::Queued, JobState::Running, JobState::Cancelling]
        );
    }

    #[test]
    fn stored_times_sort_as_text() {
        let earlier = Utc
            .with_ymd_and_hms(2025, 6, 1, 12, 0, 9)
            .single()
            .expect("time");
        let later = earlier + chrono::Duration::milliseconds(1500);
        assert!(stamp(earlier) < stamp(later));
        assert_eq!(parse_stamp(&stamp(later)).expect("parse"), later);
        assert!(parse_stamp("yesterday").is_err());
    }

    #[tokio::test]
    async fn connection_is_saved_replaced_and_its_token_forgotten() {
        let t = TestDb::new().await;
        let s = t.storage();
        assert_eq!(s.connection(DEFAULT_TEAM).await.expect("read"), None);

        let dir = tempfile::tempdir().expect("tempdir");
        let secrets = SecretBox::load_or_create(dir.path(), None).expect("key");
        let token = ScimToken::new("a-long-scim-token-ending-x7Q9");
        let record = ConnectionRecord {
            site_url: "https://acme.stackenterprise.co".to_string(),
            scim_base_url: None,
            token_ciphertext: Some(secrets.encrypt(DEFAULT_TEAM, &token).expect("encrypt")),
            token_hint: token.hint(),
            operator_email: Some("me@acme.example".to_string()),
            updated_at: at(3),
        };
        s.save_connection(DEFAULT_TEAM, &record)
            .await
            .expect("save");
        let stored = s
            .connection(DEFAULT_TEAM)
            .await
            .expect("read")
            .expect("saved");
        assert_eq!(stored, record);
        let ciphertext = stored.token_ciphertext.clone().expect("token");
        assert_eq!(
            secrets.decrypt(DEFAULT_TEAM, &ciphertext).expect("decrypt"),
            token
        );
        assert_eq!(s.connection(2).await.expect("read"), None, "other team");

        let shown = format!("{stored:?}");
        assert!(!shown.contains(&ciphertext[3..13]), "{shown}");
        assert!(shown.contains("<hidden>"), "{shown}");

        let replaced = ConnectionRecord {
            scim_base_url: Some("http://127.0.0.1:9/v2".to_string()),
            operator_email: None,
            updated_at: at(4),
            ..record.clone()
        };
        s.save_connection(DEFAULT_TEAM, &replaced)
            .await
            .expect("save");
        assert_eq!(
            s.connection(DEFAULT_TEAM).await.expect("read"),
            Some(replaced.clone())
        );

        s.forget_token(DEFAULT_TEAM).await.expect("forget");
        let forgotten = s
            .connection(DEFAULT_TEAM)
            .await
            .expect("read")
            .expect("kept");
        assert_eq!(forgotten.token_ciphertext, None);
        assert_eq!(forgotten.token_hint, "");
        assert_eq!(forgotten.site_url, replaced.site_url);
        assert_eq!(forgotten.scim_base_url, replaced.scim_base_url);
        assert_eq!(forgotten.updated_at, now());
        assert_eq!(t.count("SELECT COUNT(*) FROM connections").await, 1);
    }

    #[tokio::test]
    async fn preview_is_kept_per_team_and_claimed_once() {
        let t = TestDb::new().await;
        let s = t.storage();
        let record = preview_record("p-1", Action::Deactivate);
        s.save_preview(DEFAULT_TEAM, &record, &[])
            .await
            .expect("save");
        assert_eq!(
            s.preview(DEFAULT_TEAM, "p-1").await.expect("read"),
            Some(record.clone())
        );
        assert_eq!(s.preview(2, "p-1").await.expect("read"), None);
        assert_eq!(s.preview(DEFAULT_TEAM, "p-2").await.expect("read"), None);

        assert!(
            !s.claim_preview(2, "p-1").await.expect("claim"),
            "other team"
        );
        assert!(!s.claim_preview(DEFAULT_TEAM, "nope").await.expect("claim"));
        assert!(s.claim_preview(DEFAULT_TEAM, "p-1").await.expect("claim"));
        assert!(!s.claim_preview(DEFAULT_TEAM, "p-1").await.expect("replay"));
        assert!(
            s.save_preview(DEFAULT_TEAM, &record, &[]).await.is_err(),
            "an id is never reused"
        );
    }

    fn preview_row(position: usize, outcome: PreviewOutcome) -> PreviewRow {
        PreviewRow {
            line: Some(position + 2),
            input: format!("user{position}@example.com"),
            outcome,
            account_id: Some(format!("{}", 1000 + position)),
            user_name: None,
            display_name: Some(format!("User {position}")),
            emails: vec![format!("user{position}@example.com")],
            active: Some(true),
            role: None,
            reason: String::new(),
            candidates: Vec::new(),
        }
    }

    fn source_record(id: &str) -> PreviewSourceRecord {
        PreviewSourceRecord {
            id: id.to_string(),
            created_at: at(1),
            users_url: "https://acme.stackenterprise.co/api/scim/v2/users".to_string(),
            token_fingerprint: "fp-1".to_string(),
            input_json: r#"{"kind":"picked","account_ids":["secret-listing-a1"]}"#.to_string(),
            listing_json: r#"[{"id":"secret-listing-a1"}]"#.to_string(),
        }
    }

    #[tokio::test]
    async fn preview_rows_are_paged_and_filtered_by_sql_per_team() {
        let t = TestDb::new().await;
        let s = t.storage();
        let source = source_record("source-1");
        s.save_preview_source(DEFAULT_TEAM, &source)
            .await
            .expect("source");
        assert_eq!(
            s.preview_source(DEFAULT_TEAM, "source-1")
                .await
                .expect("read"),
            Some(source.clone())
        );
        assert_eq!(s.preview_source(2, "source-1").await.expect("read"), None);
        assert!(
            !format!("{source:?}").contains("secret-listing"),
            "sizes, not contents"
        );

        // 1,203 rows (more than one INSERT batch): every third is "not found".
        let rows: Vec<PreviewRow> = (0..1203)
            .map(|i| {
                let outcome = if i % 3 == 0 {
                    PreviewOutcome::NotFound
                } else {
                    PreviewOutcome::Selected
                };
                preview_row(i, outcome)
            })
            .collect();
        let record = PreviewRecord {
            total_rows: rows.len(),
            ..preview_record("p-rows", Action::Delete)
        };
        s.save_preview(DEFAULT_TEAM, &record, &rows)
            .await
            .expect("save");
        assert_eq!(
            s.preview(DEFAULT_TEAM, "p-rows").await.expect("read"),
            Some(record)
        );

        let (page, matching) = s
            .preview_rows(DEFAULT_TEAM, "p-rows", None, 500, 3)
            .await
            .expect("page");
        assert_eq!(matching, 1203);
        assert_eq!(page, rows[500..503].to_vec());
        let (page, matching) = s
            .preview_rows(DEFAULT_TEAM, "p-rows", Some(PreviewOutcome::NotFound), 2, 2)
            .await
            .expect("filtered page");
        assert_eq!(matching, 401);
        assert_eq!(page, vec![rows[6].clone(), rows[9].clone()]);
        let (page, matching) = s
            .preview_rows(
                DEFAULT_TEAM,
                "p-rows",
                Some(PreviewOutcome::Ambiguous),
                0,
                10,
            )
            .await
            .expect("empty filter");
        assert_eq!((page.len(), matching), (0, 0));
        let (page, _) = s
            .preview_rows(DEFAULT_TEAM, "p-rows", None, 5000, 10)
            .await
            .expect("past the end");
        assert!(page.is_empty());
        assert_eq!(
            s.all_preview_rows(DEFAULT_TEAM, "p-rows")
                .await
                .expect("all"),
            rows
        );
        // Another team sees nothing of it.
        let (page, matching) = s
            .preview_rows(2, "p-rows", None, 0, 10)
            .await
            .expect("other team");
        assert_eq!((page.len(), matching), (0, 0));
        assert!(s
            .all_preview_rows(2, "p-rows")
            .await
            .expect("other team")
            .is_empty());
    }

    #[tokio::test]
    async fn a_revision_replaces_an_unconfirmed_preview_and_keeps_a_confirmed_one() {
        let t = TestDb::new().await;
        let s = t.storage();
        let rows = vec![
            preview_row(0, PreviewOutcome::Selected),
            preview_row(1, PreviewOutcome::Privileged),
        ];
        s.save_preview(
            DEFAULT_TEAM,
            &preview_record("first", Action::Delete),
            &rows,
        )
        .await
        .expect("save");
        for (replaced, revision) in [("first", "second"), ("second", "third")] {
            s.replace_preview(
                DEFAULT_TEAM,
                replaced,
                &preview_record(revision, Action::Delete),
                &rows,
            )
            .await
            .expect("revise");
        }
        let first = s
            .preview(DEFAULT_TEAM, "first")
            .await
            .expect("read")
            .expect("kept");
        assert_eq!(first.replaced_by.as_deref(), Some("second"));
        assert!(s
            .all_preview_rows(DEFAULT_TEAM, "first")
            .await
            .expect("rows")
            .is_empty());
        assert_eq!(
            t.count("SELECT COUNT(*) FROM preview_rows").await,
            2,
            "one set of rows"
        );

        // A confirmed preview is left whole: its run cites it.
        assert!(s.claim_preview(DEFAULT_TEAM, "third").await.expect("claim"));
        s.replace_preview(
            DEFAULT_TEAM,
            "third",
            &preview_record("fourth", Action::Delete),
            &rows,
        )
        .await
        .expect("revise");
        let third = s
            .preview(DEFAULT_TEAM, "third")
            .await
            .expect("read")
            .expect("kept");
        assert_eq!(third.replaced_by, None);
        assert_eq!(
            s.all_preview_rows(DEFAULT_TEAM, "third")
                .await
                .expect("rows"),
            rows
        );
    }

    #[tokio::test]
    async fn unconfirmed_previews_and_unused_sources_expire() {
        let t = TestDb::new().await;
        let s = t.storage();
        s.save_preview_source(DEFAULT_TEAM, &source_record("source-1"))
            .await
            .expect("source");
        let rows = vec![preview_row(0, PreviewOutcome::Selected)];
        let old = PreviewRecord {
            created_at: at(1),
            ..preview_record("old", Action::Delete)
        };
        let young = PreviewRecord {
            created_at: at(30),
            ..preview_record("young", Action::Delete)
        };
        let confirmed = PreviewRecord {
            created_at: at(1),
            ..preview_record("confirmed", Action::Delete)
        };
        for record in [&old, &young, &confirmed] {
            s.save_preview(DEFAULT_TEAM, record, &rows)
                .await
                .expect("save");
        }
        assert!(s
            .claim_preview(DEFAULT_TEAM, "confirmed")
            .await
            .expect("claim"));

        // The young revision still uses the source: only the old preview goes.
        let gone = s.expire_previews(at(10)).await.expect("sweep");
        assert_eq!(
            gone,
            Expired {
                previews: 1,
                sources: 0
            }
        );
        assert_eq!(s.preview(DEFAULT_TEAM, "old").await.expect("read"), None);
        assert!(s
            .all_preview_rows(DEFAULT_TEAM, "old")
            .await
            .expect("rows")
            .is_empty());
        assert!(s
            .preview(DEFAULT_TEAM, "young")
            .await
            .expect("read")
            .is_some());
        assert!(s
            .preview_source(DEFAULT_TEAM, "source-1")
            .await
            .expect("read")
            .is_some());

        // Later the young one expires too, and its source with it; the confirmed preview and
        // its rows stay with the run.
        let gone = s.expire_previews(at(40)).await.expect("sweep");
        assert_eq!(
            gone,
            Expired {
                previews: 1,
                sources: 1
            }
        );
        assert_eq!(
            s.preview_source(DEFAULT_TEAM, "source-1")
                .await
                .expect("read"),
            None
        );
        assert!(s
            .preview(DEFAULT_TEAM, "confirmed")
            .await
            .expect("read")
            .is_some());
        assert_eq!(
            s.all_preview_rows(DEFAULT_TEAM, "confirmed")
                .await
                .expect("rows"),
            rows
        );
        assert_eq!(t.count("SELECT COUNT(*) FROM preview_rows").await, 1);
    }

    #[tokio::test]
    async fn a_job_keeps_the_connection_it_was_confirmed_on() {
        let t = TestDb::new().await;
        let s = t.storage();
        queued_job(s, "job-1").await;
        let job = s
            .job(DEFAULT_TEAM, "job-1")
            .await
            .expect("read")
            .expect("job");
        assert_eq!(
            job.connection,
            Some(JobConnection {
                users_url: "https://acme.stackenterprise.co/api/scim/v2/users".to_string(),
                token_fingerprint: "fp-1".to_string(),
            })
        );
    }

    /// Previews written whole by the earlier schema are split into source, summary and rows
    /// by migration 0003 (run here on a database left at migration 0002).
    #[tokio::test]
    async fn previews_stored_whole_by_earlier_versions_are_split_by_the_migration() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("offboard.db").display());
        let options = SqliteConnectOptions::from_str(&url)
            .expect("url")
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .connect_with(options)
            .await
            .expect("pool");
        let mut migrator = sqlx::migrate!("./migrations");
        let all = migrator.migrations.to_vec();
        migrator.migrations =
            std::borrow::Cow::Owned(all.iter().filter(|m| m.version < 3).cloned().collect());
        migrator.run(&pool).await.expect("migrations 1 and 2");
        let rows = vec![
            preview_row(0, PreviewOutcome::Selected),
            preview_row(1, PreviewOutcome::NotFound),
        ];
        let whole = serde_json::json!({
            "preview": {
                "source": "Picked",
                "rows": rows,
                "counts": {"selected": 1, "not_found": 1, "ambiguous": 0, "invalid": 0,
                           "duplicate": 0, "privileged": 0, "protected": 0, "system_account": 0},
                "demote_privileged": true
            },
            "input": {"kind": "picked", "account_ids": ["1000", "1001"]},
            "users_url": "https://acme.stackenterprise.co/api/scim/v2/users"
        });
        sqlx::query(
            "INSERT INTO previews (id, team_id, created_at, action, preview_json, listing_json, \
             phrase) VALUES ('legacy', 1, ?, 'Delete', ?, '[{\"id\":\"1000\"}]', 'DELETE 1 USER')",
        )
        .bind(stamp(at(1)))
        .bind(whole.to_string())
        .execute(&pool)
        .await
        .expect("legacy preview");
        pool.close().await;

        let db = open_with_clock(&url, Arc::new(FixedClock(now())))
            .await
            .expect("upgrade");
        let s = db.storage.as_ref();
        let record = s
            .preview(DEFAULT_TEAM, "legacy")
            .await
            .expect("read")
            .expect("kept");
        assert_eq!(record.total_rows, 2);
        assert_eq!(record.phrase, "DELETE 1 USER");
        let summary: serde_json::Value =
            serde_json::from_str(&record.summary_json).expect("summary");
        assert_eq!(summary["demote_privileged"], serde_json::json!(true));
        assert_eq!(summary["counts"]["selected"], serde_json::json!(1));
        assert_eq!(summary["source"], serde_json::json!("Picked"));
        assert_eq!(
            s.all_preview_rows(DEFAULT_TEAM, "legacy")
                .await
                .expect("rows"),
            rows
        );
        let (page, matching) = s
            .preview_rows(
                DEFAULT_TEAM,
                "legacy",
                Some(PreviewOutcome::NotFound),
                0,
                10,
            )
            .await
            .expect("page");
        assert_eq!((page, matching), (vec![rows[1].clone()], 1));
        let source = s
            .preview_source(DEFAULT_TEAM, &record.source_id)
            .await
            .expect("read")
            .expect("source");
        assert_eq!(
            source.users_url,
            "https://acme.stackenterprise.co/api/scim/v2/users"
        );
        assert_eq!(source.token_fingerprint, "", "unknown for old previews");
        assert_eq!(source.listing_json, r#"[{"id":"1000"}]"#);
        let input: serde_json::Value = serde_json::from_str(&source.input_json).expect("input");
        assert_eq!(input["account_ids"], serde_json::json!(["1000", "1001"]));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_confirmations_claim_a_preview_exactly_once() {
        let t = TestDb::new().await;
        t.storage()
            .save_preview(DEFAULT_TEAM, &preview_record("p-1", Action::Delete), &[])
            .await
            .expect("save");
        let claims = (0..8).map(|_| {
            let storage = t.db.storage.clone();
            tokio::spawn(async move { storage.claim_preview(DEFAULT_TEAM, "p-1").await })
        });
        let mut won = 0;
        for claim in futures::future::join_all(claims).await {
            if claim.expect("task").expect("claim") {
                won += 1;
            }
        }
        assert_eq!(won, 1);
    }

    #[tokio::test]
    async fn a_new_job_is_queued_with_its_users_and_first_events() {
        let t = TestDb::new().await;
        let s = t.storage();
        queued_job(s, "job-1").await;

        let job = s
            .job(DEFAULT_TEAM, "job-1")
            .await
            .expect("read")
            .expect("job");
        assert_eq!(job.state, JobState::Queued);
        assert_eq!(job.total, 4);
        assert_eq!(job.done, 1);
        assert_eq!(job.count(ItemOutcome::ChangedSincePreview), 1);
        assert_eq!(job.count(ItemOutcome::Deleted), 0);
        assert_eq!(job.created_by, "admin@example.com");
        assert_eq!(job.created_at, at(2));
        assert_eq!(job.action, Action::Delete);
        assert_eq!(job.preview_id.as_deref(), Some("preview-of-job-1"));
        assert_eq!((job.started_at, job.finished_at), (None, None));

        let targets = s.job_targets("job-1").await.expect("targets");
        assert_eq!(account_ids(&targets), vec!["a1", "a3", "a4"]);
        assert!(targets.iter().all(|t| t.state == TargetState::Pending));
        assert_eq!(targets[0].email.as_deref(), Some("a1@example.com"));

        let events = s
            .events_since(DEFAULT_TEAM, "job-1", 0, 100)
            .await
            .expect("events");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].seq, 1);
        assert_eq!(events[0].state_change, Some(JobState::Queued));
        assert_eq!(events[1].seq, 2);
        let settled = events[1].result.as_ref().expect("settled row");
        assert_eq!(settled.account_id, "a2");
        assert_eq!(settled.outcome, ItemOutcome::ChangedSincePreview);
    }

    #[tokio::test]
    async fn a_job_starts_only_from_this_teams_confirmed_preview_of_the_same_action() {
        let t = TestDb::new().await;
        let s = t.storage();
        s.save_preview(
            DEFAULT_TEAM,
            &preview_record("unclaimed", Action::Delete),
            &[],
        )
        .await
        .expect("save");
        confirmed_preview(s, 2, "other-team").await;
        s.save_preview(
            DEFAULT_TEAM,
            &preview_record("deactivate", Action::Deactivate),
            &[],
        )
        .await
        .expect("save");
        assert!(s
            .claim_preview(DEFAULT_TEAM, "deactivate")
            .await
            .expect("claim"));

        for preview_id in ["unclaimed", "other-team", "deactivate", "missing"] {
            let err = s
                .create_job(&new_job("job-x", DEFAULT_TEAM, preview_id, vec![run("a1")]))
                .await
                .expect_err(preview_id);
            assert!(
                matches!(err, StorageError::PreviewNotConfirmed(_)),
                "{preview_id}: {err:?}"
            );
        }
        assert_eq!(t.count("SELECT COUNT(*) FROM jobs").await, 0);
        assert_eq!(t.count("SELECT COUNT(*) FROM job_items").await, 0);
        assert_eq!(t.count("SELECT COUNT(*) FROM job_events").await, 0);
    }

    #[tokio::test]
    async fn a_preview_starts_at_most_one_job() {
        let t = TestDb::new().await;
        let s = t.storage();
        queued_job(s, "job-1").await;
        let again = new_job("job-2", DEFAULT_TEAM, "preview-of-job-1", vec![run("a9")]);
        assert!(s.create_job(&again).await.is_err());
        assert_eq!(s.job(DEFAULT_TEAM, "job-2").await.expect("read"), None);
        assert_eq!(
            t.count("SELECT COUNT(*) FROM job_items WHERE job_id = 'job-2'")
                .await,
            0
        );
    }

    #[tokio::test]
    async fn a_job_refuses_duplicate_users_and_settled_successes() {
        let t = TestDb::new().await;
        let s = t.storage();
        confirmed_preview(s, DEFAULT_TEAM, "p").await;
        let err = s
            .create_job(&new_job(
                "j",
                DEFAULT_TEAM,
                "p",
                vec![run("a1"), changed("a1")],
            ))
            .await
            .expect_err("duplicate");
        assert!(
            matches!(err, StorageError::DuplicateAccount(ref a) if a == "a1"),
            "{err:?}"
        );
        let err = s
            .create_job(&new_job(
                "j",
                DEFAULT_TEAM,
                "p",
                vec![PlannedItem::Settled(result("a1", ItemOutcome::Deleted))],
            ))
            .await
            .expect_err("success before sending");
        assert!(matches!(err, StorageError::SettledAsSuccess(_)), "{err:?}");
        assert_eq!(t.count("SELECT COUNT(*) FROM jobs").await, 0);
    }

    #[tokio::test]
    async fn creating_a_job_is_all_or_nothing() {
        let t = TestDb::new().await;
        let s = t.storage();
        confirmed_preview(s, DEFAULT_TEAM, "p").await;
        sqlx::query(
            "CREATE TRIGGER fail_on_boom BEFORE INSERT ON job_items WHEN NEW.account_id = 'boom' \
             BEGIN SELECT RAISE(ABORT, 'boom'); END",
        )
        .execute(&t.db.sqlite)
        .await
        .expect("trigger");
        let job = new_job(
            "j",
            DEFAULT_TEAM,
            "p",
            vec![run("a1"), changed("a2"), run("boom")],
        );
        assert!(s.create_job(&job).await.is_err());
        assert_eq!(t.count("SELECT COUNT(*) FROM jobs").await, 0);
        assert_eq!(t.count("SELECT COUNT(*) FROM job_items").await, 0);
        assert_eq!(t.count("SELECT COUNT(*) FROM job_events").await, 0);
    }

    #[tokio::test]
    async fn state_changes_are_stamped_logged_and_final_states_stay_final() {
        let t = TestDb::new().await;
        let s = t.storage();
        queued_job(s, "job-1").await;

        let started = s
            .set_job_state("job-1", JobState::Running, None)
            .await
            .expect("start");
        assert_eq!(started.seq, 3);
        assert_eq!(started.state_change, Some(JobState::Running));
        let why = "Deletion is not enabled for this site".to_string();
        let paused = s
            .set_job_state("job-1", JobState::Paused, Some(why.clone()))
            .await
            .expect("pause");
        assert_eq!(paused.reason.as_deref(), Some(why.as_str()));
        let job = s
            .job(DEFAULT_TEAM, "job-1")
            .await
            .expect("read")
            .expect("job");
        assert_eq!(job.state, JobState::Paused);
        assert_eq!(job.reason, Some(why));
        assert_eq!(job.started_at, Some(now()));
        assert_eq!(job.finished_at, None);

        s.set_job_state("job-1", JobState::Running, None)
            .await
            .expect("resume");
        assert_eq!(
            s.job(DEFAULT_TEAM, "job-1")
                .await
                .expect("read")
                .expect("job")
                .reason,
            None,
            "resuming clears the pause reason"
        );
        let stopped = s
            .set_job_state("job-1", JobState::Stopped, Some("cancelled".to_string()))
            .await
            .expect("stop");
        assert_eq!(stopped.seq, 6);
        let job = s
            .job(DEFAULT_TEAM, "job-1")
            .await
            .expect("read")
            .expect("job");
        assert_eq!(job.state, JobState::Stopped);
        assert_eq!(job.finished_at, Some(now()));

        let err = s
            .set_job_state("job-1", JobState::Running, None)
            .await
            .expect_err("ended");
        assert!(
            matches!(
                err,
                StorageError::JobEnded {
                    state: JobState::Stopped,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = s
            .set_job_state("nope", JobState::Running, None)
            .await
            .expect_err("missing");
        assert!(matches!(err, StorageError::JobNotFound(_)), "{err:?}");

        let changes: Vec<_> = s
            .events_since(DEFAULT_TEAM, "job-1", 0, 100)
            .await
            .expect("events")
            .into_iter()
            .filter_map(|e| e.state_change)
            .collect();
        use JobState::*;
        assert_eq!(changes, vec![Queued, Running, Paused, Running, Stopped]);
    }

    #[tokio::test]
    async fn sending_is_refused_unless_the_job_runs_and_the_user_is_unfinished() {
        let t = TestDb::new().await;
        let s = t.storage();
        queued_job(s, "job-1").await;
        let err = s.mark_sending("job-1", "a1").await.expect_err("queued");
        assert!(
            matches!(
                err,
                StorageError::JobNotRunning {
                    state: JobState::Queued,
                    ..
                }
            ),
            "{err:?}"
        );

        s.set_job_state("job-1", JobState::Running, None)
            .await
            .expect("start");
        s.mark_sending("job-1", "a1").await.expect("send");
        s.mark_sending("job-1", "a1")
            .await
            .expect("again after a retry");
        let err = s.mark_sending("job-1", "zz").await.expect_err("unknown");
        assert!(matches!(err, StorageError::UnknownItem { .. }), "{err:?}");
        let err = s.mark_sending("job-1", "a2").await.expect_err("settled");
        assert!(matches!(err, StorageError::ItemFinished { .. }), "{err:?}");

        s.set_job_state("job-1", JobState::Cancelling, None)
            .await
            .expect("cancel");
        let err = s.mark_sending("job-1", "a3").await.expect_err("cancelling");
        assert!(matches!(err, StorageError::JobNotRunning { .. }), "{err:?}");
        let targets = s.job_targets("job-1").await.expect("targets");
        assert_eq!(
            targets[1].state,
            TargetState::Pending,
            "a3 was never marked"
        );
        let err = s.mark_sending("nope", "a1").await.expect_err("no job");
        assert!(matches!(err, StorageError::JobNotFound(_)), "{err:?}");
    }

    #[tokio::test]
    async fn a_result_is_recorded_once_with_its_event() {
        let t = TestDb::new().await;
        let s = t.storage();
        running_job(s, "job-1").await;
        s.mark_sending("job-1", "a1").await.expect("send");
        let first = result("a1", ItemOutcome::Deleted);
        let event = s.record_result("job-1", &first).await.expect("record");
        assert_eq!(event.seq, 4);
        assert_eq!(event.at, now());
        assert_eq!(event.result.as_ref(), Some(&first));

        let second = result("a1", ItemOutcome::Failed);
        let err = s.record_result("job-1", &second).await.expect_err("twice");
        assert!(matches!(err, StorageError::ItemFinished { .. }), "{err:?}");
        let err = s
            .record_result("job-1", &result("a2", ItemOutcome::Deleted))
            .await
            .expect_err("settled at creation");
        assert!(matches!(err, StorageError::ItemFinished { .. }), "{err:?}");
        let err = s
            .record_result("job-1", &result("zz", ItemOutcome::Deleted))
            .await
            .expect_err("unknown");
        assert!(matches!(err, StorageError::UnknownItem { .. }), "{err:?}");

        let results = s.job_results(DEFAULT_TEAM, "job-1").await.expect("results");
        assert_eq!(results[0], first, "the first result stands");
        let events = s
            .events_since(DEFAULT_TEAM, "job-1", 3, 100)
            .await
            .expect("events");
        assert_eq!(events.len(), 1, "refused results leave no event");
        let job = s
            .job(DEFAULT_TEAM, "job-1")
            .await
            .expect("read")
            .expect("job");
        assert_eq!((job.done, job.total), (2, 4));
        assert_eq!(job.count(ItemOutcome::Deleted), 1);
        assert_eq!(job.count(ItemOutcome::Failed), 0);
        assert_eq!(
            account_ids(&s.job_targets("job-1").await.expect("targets")),
            vec!["a3", "a4"]
        );
    }

    #[tokio::test]
    async fn a_result_and_its_event_are_written_together_or_not_at_all() {
        let t = TestDb::new().await;
        let s = t.storage();
        running_job(s, "job-1").await;
        sqlx::query(
            "CREATE TRIGGER fail_event BEFORE INSERT ON job_events WHEN NEW.result_json IS NOT NULL \
             BEGIN SELECT RAISE(ABORT, 'no events'); END",
        )
        .execute(&t.db.sqlite)
        .await
        .expect("trigger");
        assert!(s
            .record_result("job-1", &result("a1", ItemOutcome::Deleted))
            .await
            .is_err());
        let targets = s.job_targets("job-1").await.expect("targets");
        assert_eq!(
            account_ids(&targets),
            vec!["a1", "a3", "a4"],
            "a1 still unfinished"
        );
        let job = s
            .job(DEFAULT_TEAM, "job-1")
            .await
            .expect("read")
            .expect("job");
        assert_eq!(job.done, 1);
        assert_eq!(
            t.count("SELECT last_seq FROM jobs").await,
            3,
            "no number was used"
        );
    }

    #[tokio::test]
    async fn a_restart_resumes_unfinished_users_and_flags_those_left_sending() {
        let mut t = TestDb::new().await;
        running_job(t.storage(), "job-1").await;
        let s = t.storage();
        s.mark_sending("job-1", "a1").await.expect("send a1");
        s.record_result("job-1", &result("a1", ItemOutcome::Deleted))
            .await
            .expect("a1 done");
        s.mark_sending("job-1", "a3").await.expect("send a3");
        // The process dies here, mid-request for a3.
        t.restart().await;

        let s = t.storage();
        let unfinished = s.unfinished_jobs().await.expect("unfinished");
        assert_eq!(unfinished.len(), 1);
        assert_eq!(unfinished[0].id, "job-1");
        assert_eq!(unfinished[0].state, JobState::Running);
        let targets = s.job_targets("job-1").await.expect("targets");
        assert_eq!(
            targets,
            vec![
                RunTarget {
                    account_id: "a3".to_string(),
                    email: Some("a3@example.com".to_string()),
                    state: TargetState::Sending,
                },
                RunTarget {
                    account_id: "a4".to_string(),
                    email: Some("a4@example.com".to_string()),
                    state: TargetState::Pending,
                },
            ]
        );
        // The log continues where it stopped.
        let event = s
            .record_result("job-1", &result("a3", ItemOutcome::AlreadyGone))
            .await
            .expect("settle a3");
        assert_eq!(event.seq, 5);
    }

    #[tokio::test]
    async fn only_queued_running_and_cancelling_jobs_resume_at_start() {
        let t = TestDb::new().await;
        let s = t.storage();
        for (job_id, state) in [
            ("j-queued", None),
            ("j-running", Some(JobState::Running)),
            ("j-paused", Some(JobState::Paused)),
            ("j-cancelling", Some(JobState::Cancelling)),
            ("j-finished", Some(JobState::Finished)),
            ("j-stopped", Some(JobState::Stopped)),
            ("j-failed", Some(JobState::Failed)),
        ] {
            queued_job(s, job_id).await;
            if let Some(state) = state {
                s.set_job_state(job_id, state, None).await.expect("state");
            }
        }
        confirmed_preview(s, 2, "p-2").await;
        s.create_job(&new_job("j-team-2", 2, "p-2", vec![run("b1")]))
            .await
            .expect("team 2 job");

        let mut ids: Vec<_> = s
            .unfinished_jobs()
            .await
            .expect("unfinished")
            .into_iter()
            .map(|j| j.id)
            .collect();
        ids.sort();
        assert_eq!(
            ids,
            vec!["j-cancelling", "j-queued", "j-running", "j-team-2"]
        );
    }

    #[tokio::test]
    async fn cancelling_gives_pending_users_not_attempted_and_leaves_sending_ones() {
        let t = TestDb::new().await;
        let s = t.storage();
        running_job(s, "job-1").await;
        s.mark_sending("job-1", "a3").await.expect("send");
        let events = s
            .record_not_attempted("job-1", "The run was cancelled before this user.")
            .await
            .expect("not attempted");
        let settled: Vec<_> = events
            .iter()
            .map(|e| {
                let r = e.result.as_ref().expect("result");
                (e.seq, r.account_id.as_str(), r.outcome)
            })
            .collect();
        assert_eq!(
            settled,
            vec![
                (4, "a1", ItemOutcome::NotAttempted),
                (5, "a4", ItemOutcome::NotAttempted)
            ]
        );
        let targets = s.job_targets("job-1").await.expect("targets");
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].state, TargetState::Sending);

        assert!(s
            .record_not_attempted("job-1", "again")
            .await
            .expect("nothing left")
            .is_empty());
        let next = s
            .record_result("job-1", &result("a3", ItemOutcome::Deleted))
            .await
            .expect("a3");
        assert_eq!(next.seq, 6, "no gap in the log");
        let job = s
            .job(DEFAULT_TEAM, "job-1")
            .await
            .expect("read")
            .expect("job");
        assert_eq!((job.done, job.total), (4, 4));
        assert_eq!(job.count(ItemOutcome::NotAttempted), 2);
        let err = s
            .record_not_attempted("nope", "cancelled")
            .await
            .expect_err("no such job");
        assert!(matches!(err, StorageError::JobNotFound(_)), "{err:?}");
    }

    #[tokio::test]
    async fn results_come_back_in_input_order_with_settled_rows() {
        let t = TestDb::new().await;
        let s = t.storage();
        running_job(s, "job-1").await;
        for (account, outcome) in [
            ("a4", ItemOutcome::Failed),
            ("a1", ItemOutcome::Deleted),
            ("a3", ItemOutcome::CommunityCreator),
        ] {
            s.record_result("job-1", &result(account, outcome))
                .await
                .expect("record");
        }
        let results = s.job_results(DEFAULT_TEAM, "job-1").await.expect("results");
        let order: Vec<_> = results
            .iter()
            .map(|r| (r.account_id.as_str(), r.outcome))
            .collect();
        assert_eq!(
            order,
            vec![
                ("a1", ItemOutcome::Deleted),
                ("a2", ItemOutcome::ChangedSincePreview),
                ("a3", ItemOutcome::CommunityCreator),
                ("a4", ItemOutcome::Failed),
            ]
        );
        assert_eq!(
            results[0],
            result("a1", ItemOutcome::Deleted),
            "every field kept"
        );
        assert!(results[0].demoted);
    }

    #[tokio::test]
    async fn watchers_resume_from_the_last_event_they_saw() {
        let t = TestDb::new().await;
        let s = t.storage();
        running_job(s, "job-1").await;
        for account in ["a1", "a3", "a4"] {
            s.record_result("job-1", &result(account, ItemOutcome::Deleted))
                .await
                .expect("record");
        }
        s.set_job_state("job-1", JobState::Finished, None)
            .await
            .expect("finish");
        let all = s
            .events_since(DEFAULT_TEAM, "job-1", 0, 100)
            .await
            .expect("all");
        let seqs: Vec<_> = all.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(all[6].state_change, Some(JobState::Finished));

        let page = s
            .events_since(DEFAULT_TEAM, "job-1", 3, 2)
            .await
            .expect("page");
        assert_eq!(page, all[3..5].to_vec());
        assert!(s
            .events_since(DEFAULT_TEAM, "job-1", 7, 100)
            .await
            .expect("none")
            .is_empty());
        let json = serde_json::to_string(&all).expect("events serialize");
        let back: Vec<JobEvent> = serde_json::from_str(&json).expect("and read back");
        assert_eq!(back, all);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers_get_distinct_consecutive_event_numbers() {
        let t = TestDb::new().await;
        let preview_id = "p";
        confirmed_preview(t.storage(), DEFAULT_TEAM, preview_id).await;
        let accounts: Vec<String> = (0..40).map(|i| format!("u{i}")).collect();
        t.storage()
            .create_job(&new_job(
                "job-1",
                DEFAULT_TEAM,
                preview_id,
                accounts.iter().map(|a| run(a)).collect(),
            ))
            .await
            .expect("create");
        t.storage()
            .set_job_state("job-1", JobState::Running, None)
            .await
            .expect("start");
        let writes = accounts.iter().map(|account| {
            let storage = t.db.storage.clone();
            let item = result(account, ItemOutcome::Deleted);
            tokio::spawn(async move { storage.record_result("job-1", &item).await })
        });
        let mut seqs: Vec<i64> = futures::future::join_all(writes)
            .await
            .into_iter()
            .map(|w| w.expect("task").expect("record").seq)
            .collect();
        seqs.sort();
        assert_eq!(seqs, (3..43).collect::<Vec<i64>>());
        let job = t
            .storage()
            .job(DEFAULT_TEAM, "job-1")
            .await
            .expect("read")
            .expect("job");
        assert_eq!((job.done, job.total), (40, 40));
    }

    #[tokio::test]
    async fn jobs_are_listed_newest_first_and_only_to_their_team() {
        let t = TestDb::new().await;
        let s = t.storage();
        for (minute, job_id) in [(5, "older"), (9, "newest"), (7, "middle")] {
            let preview_id = format!("p-{job_id}");
            confirmed_preview(s, DEFAULT_TEAM, &preview_id).await;
            let mut job = new_job(job_id, DEFAULT_TEAM, &preview_id, vec![run("a1")]);
            job.created_at = at(minute);
            s.create_job(&job).await.expect("create");
        }
        let ids = |jobs: Vec<JobRecord>| jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
        assert_eq!(
            ids(s.list_jobs(DEFAULT_TEAM, 10).await.expect("list")),
            vec!["newest", "middle", "older"]
        );
        assert_eq!(
            ids(s.list_jobs(DEFAULT_TEAM, 2).await.expect("list")),
            vec!["newest", "middle"]
        );

        // Team 2 sees none of it.
        assert!(s.list_jobs(2, 10).await.expect("list").is_empty());
        assert_eq!(s.job(2, "newest").await.expect("read"), None);
        assert!(s
            .events_since(2, "newest", 0, 100)
            .await
            .expect("events")
            .is_empty());
        assert!(s
            .job_results(2, "newest")
            .await
            .expect("results")
            .is_empty());
        assert_eq!(s.preview(2, "p-newest").await.expect("read"), None);
        let err = s
            .create_job(&new_job("stolen", 2, "p-newest", vec![run("a1")]))
            .await
            .expect_err("another team's preview");
        assert!(
            matches!(err, StorageError::PreviewNotConfirmed(_)),
            "{err:?}"
        );
    }
}
