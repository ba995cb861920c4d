//! The one implementation of every storage trait, generic over the database, and the narrow
//! seam ([`Dialect`]) where SQLite and PostgreSQL truly differ.
//!
//! Decision: a generic over `sqlx::Database`, not sqlx's `Any` driver and not an enum of
//! pools. `Any` would lose what the two schemas need as themselves: PostgreSQL's `jobstate`
//! and `itemstate` enum types and its arrays (`UNNEST`, `= ANY`), SQLite's connection pragmas
//! and the typed pools tower-sessions' stores take. An enum of pools would still need every
//! statement written for both arms. With the generic, each shared statement is an ordinary
//! function, checked by the compiler and seen by rustfmt; its cost is that a statement runs
//! on `DB::on(conn)` or `self.read()`/`self.write()` rather than on `&mut *conn` or `&pool`:
//! Rust carries to a trait's users the bounds on its `Self` and associated types only, so
//! the executor bounds are named as [`Dialect`]'s associated types, and every `impl` head is
//! `impl<DB: Dialect> … for Store<DB>` with no where-clause.
//!
//! What differs stays behind [`Dialect`], implemented in sqlite.rs and postgres.rs: opening,
//! batch inserts, claiming jobs (`FOR UPDATE SKIP LOCKED` on PostgreSQL), lease times
//! (`now()` and `timestamptz` there), the per-site lock (an advisory lock), LISTEN/NOTIFY,
//! and the row-locking clauses a few shared statements append (`FOR UPDATE`, `FOR SHARE`,
//! and REPEATABLE READ for reads that must see one snapshot): SQLite needs none of those,
//! since one connection of its own writes everything in order.

use super::column::{Columns, Plain, Typed};
use super::*;
use sqlx::Database as SqlxDatabase;

/// Offboard's records on one database: `SqliteStorage` or `PostgresStorage`.
pub struct Store<DB: Dialect> {
    pub(super) pool: sqlx::Pool<DB>,
    /// Where the runs', accounts' and audit trail's writes run: on SQLite a pool of one
    /// connection of its own, so those writes queue in order (never behind readers, never in
    /// SQLite's busy-wait); on PostgreSQL the same pool as `pool` (its transactions lock
    /// rows instead).
    pub(super) writer: sqlx::Pool<DB>,
    pub(super) clock: Arc<dyn Clock>,
    /// Signs the audit trail's entries (storage/audit.rs).
    pub(super) audit_key: AuditKey,
    /// Whether notifications are also queued as emails to the people they concern (the
    /// console has a mail server: `OutboxStorage::email_people`).
    pub(super) emails_on: std::sync::atomic::AtomicBool,
    /// What only this database needs (PostgreSQL: the connection LISTEN uses).
    pub(super) extra: DB::Extra,
}

impl<DB: Dialect> Store<DB> {
    /// Where a read runs: any connection of the pool.
    pub(super) fn read(&self) -> impl sqlx::Executor<'_, Database = DB> {
        DB::pooled(&self.pool)
    }

    /// Where a write runs alone: the writer (see `writer`).
    pub(super) fn write(&self) -> impl sqlx::Executor<'_, Database = DB> {
        DB::pooled(&self.writer)
    }

    /// A read transaction whose statements all see one snapshot (see [`Dialect::SNAPSHOT`]).
    pub(super) async fn snapshot(&self) -> Result<sqlx::Transaction<'static, DB>> {
        let mut tx = self.pool.begin().await?;
        if !DB::SNAPSHOT.is_empty() {
            sqlx::query(DB::SNAPSHOT).execute(DB::on(&mut tx)).await?;
        }
        Ok(tx)
    }
}

pub type SqliteStorage = Store<sqlx::Sqlite>;
pub type PostgresStorage = Store<sqlx::Postgres>;

/// What one database does its own way. Each method is small; everything else is shared.
#[async_trait]
pub trait Dialect:
    SqlxDatabase<QueryResult: Affected>
    + for<'q> SqlxDatabase<Arguments<'q>: sqlx::IntoArguments<'q, Self>>
    + Typed<Names = Plain>
    + Typed<Names: Columns<Self>>
    + Sized
{
    /// As the health check names it.
    const LABEL: &'static str;
    /// Appended to a `SELECT` whose rows must stay locked for update until the transaction
    /// ends (PostgreSQL: " FOR UPDATE"; SQLite: nothing, its writer is alone).
    const FOR_UPDATE: &'static str;
    /// Appended to a `SELECT` that must keep its rows from changing until the transaction
    /// ends (PostgreSQL: " FOR SHARE").
    const FOR_SHARE: &'static str;
    /// `job_leases.expires_at` of a lease that has ended (released, never claimed): before
    /// any time.
    const LEASE_ENDED: &'static str;
    /// Run first in a read transaction that must see one snapshot (PostgreSQL: REPEATABLE
    /// READ; empty on SQLite, whose WAL read transactions see one anyway).
    const SNAPSHOT: &'static str;
    /// What only this database's storage keeps.
    type Extra: Send + Sync;

    /// Where a statement runs on `conn` (a transaction's or an acquired connection): `conn`
    /// itself. Through this method, and not as `&mut *conn`, so that "a borrowed connection
    /// executes statements" is said once, by the return type, and travels with `DB: Dialect`
    /// (a where-clause on the trait would have to be repeated on every `impl`).
    fn on(conn: &mut Self::Connection) -> impl sqlx::Executor<'_, Database = Self>;
    /// Where a statement runs on any connection of `pool` ([`Store::read`], [`Store::write`]).
    fn pooled(pool: &sqlx::Pool<Self>) -> impl sqlx::Executor<'_, Database = Self>;

    /// Opens (creating if needed) the database at `url`, applies its migrations and returns
    /// its storage and the pool the sessions share.
    async fn open(url: &str, clock: Arc<dyn Clock>, audit_key: AuditKey) -> Result<Database>;

    /// Makes runs starting on `site_url` write one after the other until the transaction ends.
    async fn lock_site(conn: &mut Self::Connection, site_url: &str) -> Result<()>;

    /// Writes a preview (binds: id, team, created, action, phrase, source, summary, rows).
    const INSERT_PREVIEW: &'static str;
    /// Writes a preview's rows, in order, in as few statements as the database allows.
    async fn insert_preview_rows(conn: &mut Self::Connection, new: &NewRows<'_>) -> Result<()>;

    /// Writes a new job's users, in input order; settled ones finished, with their result.
    async fn insert_job_items(
        conn: &mut Self::Connection,
        job_id: &JobId,
        at: DateTime<Utc>,
        items: &[PlannedItem],
    ) -> Result<()>;

    /// Logs `results` as the job's events `first`, `first + 1`, ….
    async fn log_results(
        conn: &mut Self::Connection,
        job_id: &JobId,
        first: i64,
        at: DateTime<Utc>,
        results: &[ItemResult],
    ) -> Result<Vec<JobEvent>>;

    /// Claims leases as [`LeaseStorage::claim_jobs`] says; returns each claimed job's fence.
    async fn claim_leases(store: &Store<Self>, claim: &Claim<'_>) -> Result<Vec<(JobId, i64)>>;

    /// [`LeaseStorage::renew_lease`].
    async fn renew_lease(store: &Store<Self>, lease: &JobLease, duration: Duration)
        -> Result<bool>;

    /// [`JobStorage::job_event_notices`]: none where one process writes everything.
    async fn job_event_notices(_store: &Store<Self>) -> Notices {
        None
    }
}

/// A preview's rows about to be written, in input order.
pub struct NewRows<'a> {
    pub preview_id: &'a PreviewId,
    pub rows: &'a [PreviewRow],
}

/// What [`LeaseStorage::claim_jobs`] was asked, as the dialects' claims take it.
pub struct Claim<'a> {
    pub holder: &'a str,
    pub lease: Duration,
    pub driving: &'a [JobId],
    pub only: Option<&'a JobId>,
}

/// The runs other console processes stored events of, as they store them.
pub type Notices = Option<tokio::sync::mpsc::UnboundedReceiver<JobId>>;

/// How many rows a statement changed (each driver has its own result type).
pub trait Affected {
    fn rows_affected(&self) -> u64;
}

impl Affected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

impl Affected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}
