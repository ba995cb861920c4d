//! Offboard's own records (accounts, teams, connections, previews, jobs, the audit trail),
//! behind the [`Storage`] trait so callers do not care which database holds them. The URL
//! scheme picks the driver: SQLite (`sqlite://`, the embedded default) or PostgreSQL
//! (`postgres://`, for a hosted console).

mod accounts;
mod approval_step;
mod approvals;
mod audit;
mod portable;
mod postgres;
mod rows;
mod sessions;
mod sqlite;

pub use accounts::{
    AccountRecord, AccountStorage, Joiner, LinkPurpose, LinkRecord, MemberChange, MemberRecord,
    NewAccount, TeamRecord,
};
pub use approval_step::RunApproval;
pub use approvals::{ApprovalRecord, ApprovalStorage, Decision};
pub use audit::{
    head_line, AuditEntry, AuditQuery, BreakKind, ChainBreak, ChainReport, ExpectedHeads,
    NewAuditEntry,
};
pub use postgres::PostgresStorage;
pub use sessions::SessionTable;
pub use sqlite::SqliteStorage;

use crate::engine::{Clock, ItemState, RunTarget, SystemClock};
use crate::secret::AuditKey;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
pub use model::deletion::JobState;
use model::deletion::{Action, ItemOutcome, ItemResult, PreviewOutcome, PreviewRow};
use model::hidden::Hidden;
use model::ids::{JobId, PreviewId, TeamId};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, SqlitePool};
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("unsupported database URL (expected sqlite://... or postgres://...): {0}")]
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
    JobNotFound(JobId),
    #[error("job {job_id} has already ended ({state}); its state cannot change any more")]
    JobEnded { job_id: JobId, state: JobState },
    #[error("job {job_id} is {state}, not running: no request may be sent for it")]
    JobNotRunning { job_id: JobId, state: JobState },
    #[error("user {account_id} is not part of job {job_id}")]
    UnknownItem { job_id: JobId, account_id: String },
    #[error(
        "user {account_id} already has a result in job {job_id}; nothing is sent or recorded twice"
    )]
    ItemFinished { job_id: JobId, account_id: String },
    #[error("user {0} appears twice in the job; each user is planned once")]
    DuplicateAccount(String),
    #[error("user {0} cannot have succeeded before any request was sent")]
    SettledAsSuccess(String),
    #[error("an account with this email exists already")]
    EmailTaken,
    #[error("this single sign-on identity belongs to another account")]
    IdentityTaken,
    /// Checked inside the transaction that changes the role, so two owners demoting each
    /// other at once cannot both pass.
    #[error("a team needs at least one owner")]
    LastOwner,
    #[error(
        "another console replica now drives job {0}: this one stops and writes nothing more for it"
    )]
    LeaseLost(JobId),
    /// As many runs as the console allows go on against the site already (checked in the same
    /// transaction that writes the job, so two consoles starting at once cannot both pass).
    #[error("{running} runs already go on against {site_url}, the most allowed at once")]
    SiteBusy { site_url: String, running: usize },
    #[error("preview {0} was not confirmed for this team and action, or it does not exist: a job starts only from a confirmed preview")]
    PreviewNotConfirmed(PreviewId),
    /// The run's request for approval was declined, withdrawn, expired or approved already
    /// when the run was about to be created: nothing was written.
    #[error(
        "the request for approval of preview {0} no longer awaits approval: no run was created"
    )]
    ApprovalNotAwaiting(PreviewId),
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// A team's saved token as stored (encrypted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedToken {
    pub team_id: TeamId,
    pub ciphertext: Hidden<String>,
}

/// One saved token re-encrypted under a new key: what replaces what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenReplacement {
    pub team_id: TeamId,
    pub old_ciphertext: Hidden<String>,
    pub new_ciphertext: Hidden<String>,
    /// The fingerprints depend on the key, so previews and runs recorded under the old one are
    /// moved to the new one (a paused run still resumes only with the same token).
    pub old_fingerprint: String,
    pub new_fingerprint: String,
}

/// What a health check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageHealth {
    pub database: &'static str,
    pub migrations: i64,
    pub jobs: i64,
}

/// A team's saved connection to its site. `Debug` hides the encrypted token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionRecord {
    pub site_url: String,
    /// An explicit SCIM base URL, when the admin overrides the one derived from `site_url`.
    pub scim_base_url: Option<String>,
    /// The token as [`crate::secret::SecretBox::encrypt`] stored it; None when no token is saved.
    pub token_ciphertext: Option<Hidden<String>>,
    /// The token's last characters ([`crate::scim::ScimToken::hint`]), to show "ends in …x7Q9".
    pub token_hint: String,
    /// The admin's own email: the run never touches this account.
    pub operator_email: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// A preview as the admin saw it, kept so the server (not the browser) checks the typed phrase
/// and runs exactly what was shown. Its rows are stored beside it, one by one
/// ([`Storage::preview_rows`]); what it was made from is its [`PreviewSourceRecord`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviewRecord {
    /// A UUID.
    pub id: PreviewId,
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
    pub replaced_by: Option<PreviewId>,
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
    pub id: JobId,
    pub team_id: TeamId,
    /// Who started it, as the console names the admin.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub site_url: String,
    pub action: Action,
    /// Must be a preview of the same team and action, already claimed with
    /// [`Storage::claim_preview`].
    pub preview_id: PreviewId,
    /// The connection the admin confirmed it on.
    pub connection: JobConnection,
    /// Every selected user of the preview, in input order.
    pub items: Vec<PlannedItem>,
    /// Most runs that may be queued, running or cancelling at once against `site_url`, this one
    /// included, all teams together: the job is refused with [`StorageError::SiteBusy`] when
    /// as many go on already.
    pub runs_per_site: usize,
    /// What the team's audit trail records about the start (the confirmation, an approval),
    /// appended in the transaction that writes the job: the trail holds them exactly when the
    /// run exists, and before anything its runner (here or on another replica) records.
    pub audit: Vec<NewAuditEntry>,
    /// The second operator's approval it starts under, if the team needs one: in the same
    /// transaction, the preview's request goes from awaiting to approved, or, if it no longer
    /// awaits, nothing is written ([`StorageError::ApprovalNotAwaiting`]). The job keeps it
    /// ([`JobRecord::approved_by`]).
    pub approval: Option<RunApproval>,
}

/// A job as the console lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: JobId,
    pub team_id: TeamId,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub site_url: String,
    pub action: Action,
    pub preview_id: Option<PreviewId>,
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
    /// Who approved it, written with the job (None without approval, and for runs approved
    /// before Offboard kept it here: their approver is on the request, see `approvers`).
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
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

/// The right to drive one job, as claimed with [`Storage::claim_jobs`]. Every write the runner
/// makes for the job carries it, and is refused ([`StorageError::LeaseLost`]) once another
/// replica has claimed the job since: its `fence` went up by one at that claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobLease {
    pub job_id: JobId,
    pub fence: i64,
}

/// The records Offboard keeps. One implementation a database kind.
///
/// Methods taking a `team_id` only ever see that team's records. The runner-side methods
/// (`set_job_state`, `job_targets`, `mark_sending`, `record_result`, `record_not_attempted`)
/// take a job id the server got from `create_job` or `unfinished_jobs`.
#[async_trait]
pub trait Storage: AccountStorage + ApprovalStorage + Send + Sync {
    /// A real round trip: counts applied migrations and the team's jobs.
    async fn health(&self, team_id: TeamId) -> Result<StorageHealth>;

    /// Replaces the team's connection with `record` as given (a None token means no token).
    async fn save_connection(&self, team_id: TeamId, record: &ConnectionRecord) -> Result<()>;
    async fn connection(&self, team_id: TeamId) -> Result<Option<ConnectionRecord>>;
    /// Drops the saved token (and its hint); the site settings stay.
    async fn forget_token(&self, team_id: TeamId) -> Result<()>;
    /// Every saved token's ciphertext, with its team (for `offboard rotate-key`).
    async fn saved_tokens(&self) -> Result<Vec<SavedToken>>;
    /// Puts every replacement in place in one transaction: the connection's ciphertext, and
    /// the token fingerprint recorded with the team's preview sources and runs. Fails, changing
    /// nothing, when a ciphertext is no longer the one read ([`StorageError::Damaged`]).
    async fn replace_saved_tokens(&self, replacements: &[TokenReplacement]) -> Result<()>;

    async fn save_preview_source(
        &self,
        team_id: TeamId,
        source: &PreviewSourceRecord,
    ) -> Result<()>;
    async fn preview_source(
        &self,
        team_id: TeamId,
        source_id: &str,
    ) -> Result<Option<PreviewSourceRecord>>;
    /// Stores a preview and its rows together (or neither).
    async fn save_preview(
        &self,
        team_id: TeamId,
        preview: &PreviewRecord,
        rows: &[PreviewRow],
    ) -> Result<()>;
    async fn preview(
        &self,
        team_id: TeamId,
        preview_id: &PreviewId,
    ) -> Result<Option<PreviewRecord>>;
    /// Stores `revision` (with its rows) as the replacement of `replaced`: an unconfirmed
    /// `replaced` loses its rows and points at the revision; a confirmed one stays as it is
    /// (its run cites it).
    async fn replace_preview(
        &self,
        team_id: TeamId,
        replaced: &PreviewId,
        revision: &PreviewRecord,
        rows: &[PreviewRow],
    ) -> Result<()>;
    /// One page of a preview's rows in input order, optionally of one outcome, and how many
    /// rows match in all.
    async fn preview_rows(
        &self,
        team_id: TeamId,
        preview_id: &PreviewId,
        outcome: Option<PreviewOutcome>,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<PreviewRow>, usize)>;
    /// Every row of a preview, in input order (to start a run or write a report).
    async fn all_preview_rows(
        &self,
        team_id: TeamId,
        preview_id: &PreviewId,
    ) -> Result<Vec<PreviewRow>>;
    /// Removes previews nobody confirmed that were made before `before`, with their rows, and
    /// the sources no remaining unclaimed preview uses that were made before `before`.
    async fn expire_previews(&self, before: DateTime<Utc>) -> Result<Expired>;
    /// Marks the preview used. True exactly once per preview: a replayed confirmation gets false.
    async fn claim_preview(&self, team_id: TeamId, preview_id: &PreviewId) -> Result<bool>;
    /// Makes a claimed preview usable again, if no job was written from it (its run was
    /// refused after the claim, e.g. because the site was busy).
    async fn release_preview(&self, team_id: TeamId, preview_id: &PreviewId) -> Result<()>;

    /// How many `what` ("preview", "run") the team used after `since`, and when the oldest of
    /// those was: the hourly limits, shared by every replica.
    async fn usage_since(
        &self,
        team_id: TeamId,
        what: &str,
        since: DateTime<Utc>,
    ) -> Result<(usize, Option<DateTime<Utc>>)>;
    /// Records one `what` of the team at `at`, and forgets the team's records made at or
    /// before `forget_before` (those `usage_since(forget_before)` no longer counts).
    async fn record_usage(
        &self,
        team_id: TeamId,
        what: &str,
        at: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> Result<()>;
    /// Keeps the site's user list taken when the run started (the "all users" report; the
    /// service stores it gzipped, storage keeps the bytes as given).
    async fn save_listing(&self, job_id: &JobId, users_json: &[u8]) -> Result<()>;
    /// The run's kept user list, if the team has that run and the list was kept here.
    async fn listing(&self, team_id: TeamId, job_id: &JobId) -> Result<Option<Vec<u8>>>;
    /// The runs against `site_url` that have not ended (paused ones included), all teams.
    async fn runs_on_site(&self, site_url: &str) -> Result<usize>;
    /// Creates the job (queued), its users and their first events in one transaction.
    async fn create_job(&self, job: &NewJob) -> Result<()>;
    /// Changes the job's state (a final state is never left) and logs the change.
    async fn set_job_state(
        &self,
        job_id: &JobId,
        state: JobState,
        reason: Option<String>,
    ) -> Result<JobEvent>;
    async fn job(&self, team_id: TeamId, job_id: &JobId) -> Result<Option<JobRecord>>;
    /// The team's jobs, newest first.
    async fn list_jobs(&self, team_id: TeamId, limit: u32) -> Result<Vec<JobRecord>>;
    /// Every team's queued, running or cancelling jobs, oldest first: resumed at server start.
    async fn unfinished_jobs(&self) -> Result<Vec<JobRecord>>;

    /// The users still without a result, in input order; one left `Sending` by a crash comes
    /// back as [`ItemState::Sending`] so it is checked before anything is re-sent.
    async fn job_targets(&self, job_id: &JobId) -> Result<Vec<RunTarget>>;
    /// Persists "a request is about to be sent for this user". Refused unless the job is
    /// running and the user has no result yet, so a cancel or a finished user stops the send.
    async fn mark_sending(&self, job_id: &JobId, account_id: &str) -> Result<()>;
    /// Stores the user's final result and logs it, in one transaction. A second result for
    /// the same user is refused with [`StorageError::ItemFinished`].
    async fn record_result(&self, job_id: &JobId, result: &ItemResult) -> Result<JobEvent>;
    /// Gives every user still pending (never sent) the outcome `NotAttempted`, e.g. after a
    /// cancel. Users left `Sending` are untouched: their outcome is unknown until checked.
    async fn record_not_attempted(&self, job_id: &JobId, message: &str) -> Result<Vec<JobEvent>>;

    /// Claims the unfinished jobs (queued, running, cancelling) nobody holds, oldest first:
    /// those without a lease or with an expired (or released) one, leaving out the jobs
    /// `holder` is `driving`. With `only`, just that job, paused ones too (a new run
    /// about to start, or a paused one the admin resumes). Each claimed lease
    /// gets the next fence and lasts `lease`. PostgreSQL locks the leases it takes with
    /// `FOR UPDATE SKIP LOCKED`, so replicas claiming together never wait on each other or
    /// take the same job; SQLite (one process) takes every lease but those `driving`.
    async fn claim_jobs(
        &self,
        holder: &str,
        lease: Duration,
        driving: &[JobId],
        only: Option<&JobId>,
    ) -> Result<Vec<(JobRecord, JobLease)>>;
    /// The holder's heartbeat: the lease lasts `lease` from now. False when it was lost (the
    /// fence changed: another replica claimed the job), and then the runner must stop.
    async fn renew_lease(&self, lease: &JobLease, duration: Duration) -> Result<bool>;
    /// Ends one lease now (its job ended, or cannot go on here); the fence stays.
    async fn release_lease(&self, lease: &JobLease) -> Result<()>;
    /// Ends every lease `holder` has (the replica is stopping): others claim them at once.
    async fn release_leases(&self, holder: &str) -> Result<u64>;
    /// [`Storage::mark_sending`], only while `lease` still holds the job.
    async fn mark_sending_fenced(&self, lease: &JobLease, account_id: &str) -> Result<()>;
    /// [`Storage::record_result`], only while `lease` still holds the job.
    async fn record_result_fenced(&self, lease: &JobLease, result: &ItemResult)
        -> Result<JobEvent>;
    /// [`Storage::record_not_attempted`], only while `lease` still holds the job.
    async fn record_not_attempted_fenced(
        &self,
        lease: &JobLease,
        message: &str,
    ) -> Result<Vec<JobEvent>>;
    /// [`Storage::set_job_state`], only while `lease` still holds the job.
    async fn set_job_state_fenced(
        &self,
        lease: &JobLease,
        state: JobState,
        reason: Option<String>,
    ) -> Result<JobEvent>;

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

    /// Appends an entry to the team's audit trail: numbered, timed and chained here.
    async fn append_audit(&self, team_id: TeamId, entry: &NewAuditEntry) -> Result<AuditEntry>;
    /// The team's audit entries matching `query`, newest first.
    async fn audit_entries(&self, team_id: TeamId, query: &AuditQuery) -> Result<Vec<AuditEntry>>;
    /// Walks every team's audit chain and says where the first break is, if any.
    async fn verify_audit(&self) -> Result<ChainReport> {
        self.verify_audit_against(&ExpectedHeads::default()).await
    }
    /// [`Storage::verify_audit`], also comparing each trail with heads `recorded` earlier.
    async fn verify_audit_against(&self, recorded: &ExpectedHeads) -> Result<ChainReport>;
    /// Each team's newest audit entry number and hash, as the trail's heads keep them.
    async fn audit_heads(&self) -> Result<Vec<(TeamId, i64, String)>>;
    /// Seals, with this storage's audit key, the entries each team wrote before the trail was
    /// keyed; once per database (see `audit::on_sqlite::seal_old_entries`). Teams sealed.
    async fn seal_old_audit_entries(&self) -> Result<u64>;

    /// The runs whose events other console processes store, as they are stored (PostgreSQL:
    /// `LISTEN offboard_job_events`); None where one process writes everything (SQLite).
    async fn job_event_notices(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<JobId>> {
        None
    }
}

/// An opened database: the records, plus the connections the session store shares.
pub struct Database {
    pub storage: Arc<dyn Storage>,
    /// Either driver's connections. The field keeps its first name because
    /// `service::audit::verify_database` closes it as `db.sqlite`.
    pub sqlite: Pool,
}

/// The connections of an opened database, for what lives beside the records (the sessions).
#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Pool {
    /// Waits for the connections in use to be returned, then closes them all.
    pub async fn close(&self) {
        match self {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }

    /// Reads the pool's connections and idle connections, for the metrics.
    pub fn usage_reader(&self) -> Box<dyn Fn() -> (u32, usize) + Send + Sync> {
        let pool = self.clone();
        Box::new(move || match &pool {
            Pool::Sqlite(p) => (p.size(), p.num_idle()),
            Pool::Postgres(p) => (p.size(), p.num_idle()),
        })
    }

    /// The browser sessions' store in this database, its table created if missing.
    pub async fn session_store(&self) -> Result<SessionTable> {
        Ok(SessionTable::open(self).await?)
    }
}

/// Opens (creating if needed) the database at `url` and applies migrations.
pub async fn open(url: &str) -> Result<Database> {
    open_with_clock(url, Arc::new(SystemClock)).await
}

/// [`open`], with the clock that stamps job state changes and results. The audit trail is
/// signed with a key that lives as long as this process ([`AuditKey::this_process`]): the
/// console passes its own key to [`open_keyed`].
pub async fn open_with_clock(url: &str, clock: Arc<dyn Clock>) -> Result<Database> {
    open_keyed(url, clock, AuditKey::this_process()).await
}

/// [`open_with_clock`], signing the audit trail with `audit_key`.
pub async fn open_keyed(url: &str, clock: Arc<dyn Clock>, audit_key: AuditKey) -> Result<Database> {
    match url.split_once(':').map(|(scheme, _)| scheme) {
        Some("sqlite") => sqlite::open(url, clock, audit_key).await,
        Some("postgres" | "postgresql") => postgres::open(url, clock, audit_key).await,
        _ => Err(StorageError::UnsupportedUrl(redact_url(url))),
    }
}

impl NewJob {
    /// Checks the planned users before anything is written: each user once, and no settled
    /// success (nothing was sent yet). Returns how many are settled.
    fn check_items(&self) -> Result<usize> {
        let mut seen = HashSet::new();
        let mut settled = 0;
        for item in &self.items {
            if !seen.insert(item.account_id()) {
                return Err(StorageError::DuplicateAccount(
                    item.account_id().to_string(),
                ));
            }
            if let PlannedItem::Settled(result) = item {
                if result.outcome.is_success() {
                    return Err(StorageError::SettledAsSuccess(result.account_id.clone()));
                }
                settled += 1;
            }
        }
        Ok(settled)
    }
}

/// Why a change to a user of a job touched no row, from the user's state (None: not found).
fn item_refusal(job_id: &JobId, account_id: &str, state: Option<ItemState>) -> StorageError {
    let (job_id, account_id) = (job_id.clone(), account_id.to_string());
    match state {
        Some(ItemState::Done) => StorageError::ItemFinished { job_id, account_id },
        _ => StorageError::UnknownItem { job_id, account_id },
    }
}

/// Database URLs can carry passwords (postgres://user:pw@host): never print them whole.
fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, _)) => format!("{scheme}://…"),
        None => "(unrecognised URL)".to_string(),
    }
}

#[cfg(test)]
mod accounts_tests;
#[cfg(test)]
mod approval_tests;
#[cfg(test)]
mod audit_tests;
#[cfg(test)]
mod lease_tests;
#[cfg(test)]
#[path = "../../tests/support/pg_cluster.rs"]
mod pg_cluster;
#[cfg(test)]
mod test_db;
#[cfg(test)]
mod tests;
