//! Offboard's own records (accounts, teams, connections, previews, jobs, the audit trail),
//! behind the [`Storage`] traits so callers do not care which database holds them. The URL
//! scheme picks the driver: SQLite (`sqlite://`, the embedded default) or PostgreSQL
//! (`postgres://`, for a hosted console). One implementation serves both (store.rs); what
//! differs sits behind its `Dialect` (sqlite.rs, postgres.rs).
//!
//! Migrations: migrations/ (SQLite) and migrations-postgres/ were numbered apart before
//! they were numbered together; see [`MIGRATION_PAIRS`].

mod accounts;
mod approvals;
mod audit;
mod column;
mod connection;
mod inbox;
mod jobs;
mod kinds;
mod leases;
mod outbox;
mod postgres;
mod previews;
mod retention;
mod sessions;
mod sqlite;
mod store;
mod undo;

pub use accounts::{
    AccountRecord, AccountStorage, Joiner, LinkPurpose, LinkRecord, MemberChange, MemberRecord,
    NewAccount, TeamRecord,
};
pub use approvals::{ApprovalRecord, ApprovalStorage, Decision, RunApproval};
pub use audit::{
    head_line, AuditEntry, AuditQuery, AuditStorage, BreakKind, ChainBreak, ChainReport,
    ExpectedHeads, NewAuditEntry,
};
pub use column::Stamp;
pub use connection::{ConnectionStorage, UsageStorage};
pub use inbox::InboxStorage;
pub use jobs::JobStorage;
pub use leases::{LeaseStorage, OFFBOARD_ACTOR};
pub use outbox::{
    email_in, Concerned, DeliveryClaim, DeliveryRecord, DueDelivery, FailedAttempt, OutboxStorage,
    StoredWebhook, NOTIFYING, TEST_EVENT,
};
pub use previews::{PreviewRowChange, PreviewStorage};
pub use retention::{
    Deactivated, DueTime, PreparedDeletion, RetentionPolicyRecord, RetentionStorage, Sighting,
    SightingChanges,
};
pub use sessions::SessionTable;
pub use store::{Claim, PostgresStorage, SqliteStorage};
pub use undo::{
    undo_states, NewUndoWindow, UndoClaim, UndoClosing, UndoStorage, UndoUser, UndoUserRecord,
    UndoWindowRecord,
};

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
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct SavedToken {
    pub team_id: TeamId,
    #[sqlx(try_from = "String")]
    pub ciphertext: Hidden<String>,
}

/// One saved token re-encrypted under a new key: what replaces what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenReplacement {
    /// The token as it was read ([`ConnectionStorage::saved_tokens`]): replaced only if it is
    /// still the one saved.
    pub saved: SavedToken,
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
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ConnectionRecord {
    pub site_url: String,
    /// An explicit SCIM base URL, when the admin overrides the one derived from `site_url`.
    pub scim_base_url: Option<String>,
    /// The token as [`crate::secret::SecretBox::encrypt`] stored it; None when no token is saved.
    #[sqlx(try_from = "column::Maybe<String>")]
    pub token_ciphertext: Option<Hidden<String>>,
    /// The token's last characters ([`crate::scim::ScimToken::hint`]), to show "ends in …x7Q9".
    pub token_hint: String,
    /// The admin's own email: the run never touches this account.
    pub operator_email: Option<String>,
    #[sqlx(try_from = "Stamp")]
    pub updated_at: DateTime<Utc>,
}

/// A preview as the admin saw it, kept so the server (not the browser) checks the typed phrase
/// and runs exactly what was shown. Its rows are stored beside it, one by one
/// ([`PreviewStorage::preview_rows`]); what it was made from is its [`PreviewSourceRecord`].
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct PreviewRecord {
    /// A UUID.
    pub id: PreviewId,
    #[sqlx(try_from = "Stamp")]
    pub created_at: DateTime<Utc>,
    pub action: Action,
    /// The source it was resolved from (shared with its revisions).
    pub source_id: String,
    /// What the pages show above the rows (source, counts, options), as JSON.
    pub summary_json: String,
    #[sqlx(try_from = "i64")]
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
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PreviewSourceRecord {
    /// A UUID.
    pub id: String,
    #[sqlx(try_from = "Stamp")]
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
        self.parts().0
    }

    /// What its row stores: the account, the email, and a settled user's result.
    fn parts(&self) -> (&str, &Option<String>, Option<&ItemResult>) {
        match self {
            PlannedItem::Run(t) => (&t.account_id, &t.email, None),
            PlannedItem::Settled(r) => (&r.account_id, &r.email, Some(r)),
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
    /// [`PreviewStorage::claim_preview`].
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
    /// "Deactivate now, delete after N days": the window opened with the run, in the same
    /// transaction (so a run of that action always has its window).
    pub undo: Option<NewUndoWindow>,
}

/// A job as the console lists it. Read from its row (`jobs::JobRow`); the connection and the
/// counts are filled in after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct JobRecord {
    pub id: JobId,
    pub team_id: TeamId,
    pub created_by: String,
    #[sqlx(try_from = "Stamp")]
    pub created_at: DateTime<Utc>,
    pub site_url: String,
    pub action: Action,
    pub preview_id: Option<PreviewId>,
    /// None for runs started before Offboard recorded it.
    #[sqlx(skip)]
    pub connection: Option<JobConnection>,
    pub state: JobState,
    /// Why it paused, stopped or failed, in plain words.
    pub reason: Option<String>,
    /// When it first ran.
    #[sqlx(try_from = "column::Maybe<Stamp>")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    #[sqlx(try_from = "column::Maybe<Stamp>")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Users in the job.
    #[sqlx(skip)]
    pub total: u64,
    /// Users with a final result.
    #[sqlx(skip)]
    pub done: u64,
    /// Final results per outcome (outcomes with no users are absent).
    #[sqlx(skip)]
    pub counts: BTreeMap<ItemOutcome, u64>,
    /// Who approved it, written with the job (None without approval, and for runs approved
    /// before Offboard kept it here: their approver is on the request, see `approvers`).
    pub approved_by: Option<String>,
    #[sqlx(try_from = "column::Maybe<Stamp>")]
    pub approved_at: Option<DateTime<Utc>>,
}

impl JobRecord {
    pub fn count(&self, outcome: ItemOutcome) -> u64 {
        self.counts.get(&outcome).copied().unwrap_or(0)
    }
}

/// One entry of a job's log, in `seq` order: either a user's result or a change of state.
/// Watchers resume with the last `seq` they saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct JobEvent {
    /// Increases by one per event within a job, starting at 1.
    pub seq: i64,
    #[sqlx(try_from = "Stamp")]
    pub at: DateTime<Utc>,
    #[sqlx(
        rename = "result_json",
        try_from = "column::Maybe<column::JsonText<ItemResult>>"
    )]
    pub result: Option<ItemResult>,
    pub state_change: Option<JobState>,
    /// Why the state changed, when it says.
    pub reason: Option<String>,
}

impl JobEvent {
    /// The events that log `results` as `first`, `first + 1`, … at `at` (what
    /// `Dialect::log_results` wrote).
    fn logged(first: i64, at: DateTime<Utc>, results: &[ItemResult]) -> Vec<JobEvent> {
        let event = |(seq, result): (i64, &ItemResult)| JobEvent {
            seq,
            at,
            result: Some(result.clone()),
            state_change: None,
            reason: None,
        };
        (first..).zip(results).map(event).collect()
    }
}

/// The right to drive one job, as claimed with [`LeaseStorage::claim_jobs`]. Every write the runner
/// makes for the job carries it, and is refused ([`StorageError::LeaseLost`]) once another
/// replica has claimed the job since: its `fence` went up by one at that claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobLease {
    pub job_id: JobId,
    pub fence: i64,
}

/// Every record Offboard keeps, one trait per area; implemented once for both databases
/// ([`store::Store`]). Callers hold an `Arc<dyn Storage>`.
pub trait Storage:
    ConnectionStorage
    + UsageStorage
    + PreviewStorage
    + JobStorage
    + LeaseStorage
    + AuditStorage
    + AccountStorage
    + ApprovalStorage
    + InboxStorage
    + OutboxStorage
    + RetentionStorage
    + UndoStorage
    + Send
    + Sync
{
}

impl<DB: store::Dialect> Storage for store::Store<DB> {}

/// An opened database: the records, plus the connections the session store shares.
pub struct Database {
    pub storage: Arc<dyn Storage>,
    /// Either driver's connections.
    pub pool: Pool,
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
        Some("sqlite") => <sqlx::Sqlite as store::Dialect>::open(url, clock, audit_key).await,
        Some("postgres" | "postgresql") => {
            <sqlx::Postgres as store::Dialect>::open(url, clock, audit_key).await
        }
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

/// How the two migration folders number the same migration. They were numbered apart
/// until 0014: PostgreSQL has one SQLite does not (0009, the triggers that NOTIFY other
/// replicas of run events), so each later PostgreSQL number is SQLite's plus one. sqlx keeps
/// the applied versions in `_sqlx_migrations`, so renaming files of a deployed database
/// would make it refuse to start (or re-run them): the old files keep their numbers, and
/// from 0015 on a migration has the same number in both folders (each folder skips the
/// numbers the other used alone). Tested by `storage::tests::migration_numbers_agree`.
///
/// Pairs (SQLite, PostgreSQL) of the same migration up to 0014; `None` where one folder has
/// none.
pub const MIGRATION_PAIRS: &[(Option<u32>, Option<u32>)] = &[
    (Some(1), Some(1)),
    (Some(2), Some(2)),
    (Some(3), Some(3)),
    (Some(5), Some(5)),
    (Some(6), Some(6)),
    (Some(7), Some(7)),
    (Some(8), Some(8)),
    (None, Some(9)),
    (Some(9), Some(10)),
    (Some(10), Some(11)),
    (Some(11), Some(12)),
    (Some(12), Some(13)),
    (Some(13), Some(14)),
];

/// The first migration number both folders share: each later migration has the same number
/// on both databases.
pub const SHARED_MIGRATION_NUMBERS_FROM: u32 = 15;

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
mod inbox_tests;
#[cfg(test)]
mod lease_tests;
#[cfg(test)]
mod outbox_email_tests;
#[cfg(test)]
mod outbox_tests;
#[cfg(test)]
#[path = "../../tests/support/pg_cluster.rs"]
mod pg_cluster;
#[cfg(test)]
mod retention_tests;
#[cfg(test)]
mod test_db;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod undo_tests;
