//! PostgreSQL's side of [`Dialect`]: one database shared by every console replica of a
//! hosted Offboard. The schema in migrations-postgres/ keeps SQLite's column kinds (times
//! and names as text) but for the run and user states (`jobstate`, `itemstate` enum types)
//! and the leases' `timestamptz` expiry, which `now()` compares.
//!
//! Where SQLite relies on its single writer, PostgreSQL relies on row locks: the shared
//! writes lock the job's row first, then the users' rows, always in that order (jobs.rs);
//! a claim locks lease rows only, and skips those others hold.

use super::column::{to_i64, Stamp};
use super::jobs::claimable;
use super::leases::{add_claimable, add_free_leases, unbindable};
use super::store::{Claim, Dialect, NewRows, Notices, Store};
use super::*;
use sqlx::postgres::PgArguments;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::Arguments;
use sqlx::{PgConnection, Postgres};
use std::str::FromStr;

/// Connections one console keeps open for its work. Several replicas share the server's
/// `max_connections` (100 by default): 16 each (plus one listening for the others' run events)
/// leaves room for a handful of replicas.
const MAX_CONNECTIONS: u32 = 16;

/// Preview rows sent per INSERT (as four arrays): bounds what one statement holds in memory.
const PREVIEW_ROWS_PER_INSERT: usize = 5000;

/// A lease's length in whole milliseconds, as the interval arithmetic takes it.
fn lease_ms(lease: Duration) -> f64 {
    lease.as_millis() as f64
}

/// The users of a new job as columns (one array each), settled ones with their result.
#[derive(Default)]
struct ItemColumns {
    positions: Vec<i64>,
    account_ids: Vec<String>,
    emails: Vec<Option<String>>,
    outcomes: Vec<Option<ItemOutcome>>,
    messages: Vec<String>,
    attempts: Vec<i64>,
    elapsed_ms: Vec<i64>,
    demoted: Vec<bool>,
}

impl ItemColumns {
    fn of(items: &[PlannedItem]) -> ItemColumns {
        let mut c = ItemColumns::default();
        for (position, item) in items.iter().enumerate() {
            c.positions.push(to_i64(position));
            let (account_id, email, result) = item.parts();
            c.account_ids.push(account_id.to_string());
            c.emails.push(email.clone());
            c.outcomes.push(result.map(|r| r.outcome));
            c.messages
                .push(result.map(|r| r.message.clone()).unwrap_or_default());
            c.attempts.push(result.map_or(0, |r| i64::from(r.attempts)));
            c.elapsed_ms
                .push(result.map_or(0, |r| i64::try_from(r.elapsed_ms).unwrap_or(i64::MAX)));
            c.demoted.push(result.is_some_and(|r| r.demoted));
        }
        c
    }
}

#[async_trait]
impl Dialect for Postgres {
    const LABEL: &'static str = "PostgreSQL";
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const FOR_SHARE: &'static str = " FOR SHARE";
    const LEASE_ENDED: &'static str = "'-infinity'";
    const SNAPSHOT: &'static str = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY";
    const INSERT_PREVIEW: &'static str = "INSERT INTO previews (id, team_id, created_at, \
        action, phrase, source_id, summary_json, total_rows) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    /// Where `job_event_notices` listens (one connection, apart from the pool).
    type Extra = PgPool;

    fn pooled(pool: &sqlx::Pool<Postgres>) -> impl sqlx::Executor<'_, Database = Postgres> {
        pool
    }

    async fn open(url: &str, clock: Arc<dyn Clock>, audit_key: AuditKey) -> Result<Database> {
        let options = PgConnectOptions::from_str(url)?.application_name("offboard");
        // The LISTEN connection stays checked out for good: a pool of its own, so the work
        // keeps all 16 (opened only if `job_event_notices` is asked for).
        let listening = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options.clone());
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            // A database that does not answer fails a request (or the readiness check) in
            // seconds, instead of holding it for sqlx's default 30 s.
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        // Two replicas starting together both try to migrate: sqlx takes an advisory lock
        // first, so one applies the migrations and the other then finds them applied.
        sqlx::migrate!("./migrations-postgres").run(&pool).await?;
        Ok(Database {
            storage: Arc::new(Store {
                pool: pool.clone(),
                writer: pool.clone(),
                clock,
                audit_key,
                emails_on: Default::default(),
                extra: listening,
            }),
            pool: Pool::Postgres(pool),
        })
    }

    fn on(conn: &mut PgConnection) -> impl sqlx::Executor<'_, Database = Postgres> {
        conn
    }

    async fn lock_site(conn: &mut PgConnection, site_url: &str) -> Result<()> {
        // A lock per site, held until the transaction ends.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('offboard site ' || $1, 0))")
            .bind(site_url)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn insert_preview_rows(conn: &mut PgConnection, new: &NewRows<'_>) -> Result<()> {
        let (preview_id, rows) = (new.preview_id, new.rows);
        for (chunk_index, chunk) in rows.chunks(PREVIEW_ROWS_PER_INSERT).enumerate() {
            let first = chunk_index * PREVIEW_ROWS_PER_INSERT;
            let positions: Vec<i64> = (0..chunk.len()).map(|i| to_i64(first + i)).collect();
            let outcomes: Vec<PreviewOutcome> = chunk.iter().map(|row| row.outcome).collect();
            let texts = chunk
                .iter()
                .map(serde_json::to_string)
                .collect::<std::result::Result<Vec<_>, _>>()?;
            sqlx::query(
                "INSERT INTO preview_rows (preview_id, position, outcome, row_json) \
                 SELECT $1, r.position, r.outcome, r.row_json \
                 FROM UNNEST($2::bigint[], $3::text[], $4::text[]) AS r(position, outcome, row_json)",
            )
            .bind(preview_id)
            .bind(&positions)
            .bind(&outcomes)
            .bind(&texts)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    async fn insert_job_items(
        conn: &mut PgConnection,
        job_id: &JobId,
        at: DateTime<Utc>,
        items: &[PlannedItem],
    ) -> Result<()> {
        let columns = ItemColumns::of(items);
        // Every user in one statement; settled ones are written finished, with their result.
        sqlx::query(
            "INSERT INTO job_items (job_id, position, account_id, email, state, outcome, \
             message, attempts, elapsed_ms, demoted, finished_at) \
             SELECT $1, i.position, i.account_id, i.email, \
             CASE WHEN i.outcome IS NULL THEN 'pending'::itemstate ELSE 'done'::itemstate END, \
             i.outcome, i.message, i.attempts, i.elapsed_ms, i.demoted, \
             CASE WHEN i.outcome IS NULL THEN NULL ELSE $2 END \
             FROM UNNEST($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], \
             $8::bigint[], $9::bigint[], $10::boolean[]) \
             AS i(position, account_id, email, outcome, message, attempts, elapsed_ms, demoted)",
        )
        .bind(job_id)
        .bind(Stamp(at))
        .bind(&columns.positions)
        .bind(&columns.account_ids)
        .bind(&columns.emails)
        .bind(&columns.outcomes)
        .bind(&columns.messages)
        .bind(&columns.attempts)
        .bind(&columns.elapsed_ms)
        .bind(&columns.demoted)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn log_results(
        conn: &mut PgConnection,
        job_id: &JobId,
        first: i64,
        at: DateTime<Utc>,
        results: &[ItemResult],
    ) -> Result<Vec<JobEvent>> {
        if results.is_empty() {
            return Ok(Vec::new());
        }
        let seqs: Vec<i64> = (first..).take(results.len()).collect();
        let texts = results
            .iter()
            .map(serde_json::to_string)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        // One statement for all of them.
        sqlx::query(
            "INSERT INTO job_events (job_id, seq, at, result_json) \
             SELECT $1, e.seq, $2, e.result_json FROM UNNEST($3::bigint[], $4::text[]) \
             AS e(seq, result_json)",
        )
        .bind(job_id)
        .bind(Stamp(at))
        .bind(&seqs)
        .bind(&texts)
        .execute(&mut *conn)
        .await?;
        Ok(JobEvent::logged(first, at, results))
    }

    async fn claim_leases(store: &Store<Postgres>, claim: &Claim<'_>) -> Result<Vec<(JobId, i64)>> {
        let driving: Vec<String> = claim.driving.iter().map(|id| id.to_string()).collect();
        add_free_leases::<Postgres>(&mut *store.pool.acquire().await?, claim.only).await?;
        // A lease row locked by another claim, or share-locked by its holder writing right
        // now, is skipped: that job is somebody's this instant.
        let update = format!(
            "WITH free AS (SELECT l.job_id FROM job_leases l JOIN jobs j ON j.id = l.job_id \
             WHERE {} AND NOT (l.job_id = ANY($3)) AND l.expires_at < now() \
             ORDER BY j.created_at, j.id FOR UPDATE OF l SKIP LOCKED) \
             UPDATE job_leases l SET holder = $1, fence = l.fence + 1, \
             expires_at = now() + $2 * interval '1 millisecond' \
             FROM free WHERE l.job_id = free.job_id RETURNING l.job_id, l.fence",
            claimable("j.", 4)
        );
        let mut args = PgArguments::default();
        args.add(claim.holder).map_err(unbindable)?;
        args.add(lease_ms(claim.lease)).map_err(unbindable)?;
        args.add(driving).map_err(unbindable)?;
        add_claimable::<Postgres>(&mut args, claim.only)?;
        Ok(sqlx::query_as_with(&update, args)
            .fetch_all(&store.pool)
            .await?)
    }

    async fn renew_lease(
        store: &Store<Postgres>,
        lease: &JobLease,
        duration: Duration,
    ) -> Result<bool> {
        let renewed = sqlx::query(
            "UPDATE job_leases SET expires_at = now() + $3 * interval '1 millisecond' \
             WHERE job_id = $1 AND fence = $2",
        )
        .bind(&lease.job_id)
        .bind(lease.fence)
        .bind(lease_ms(duration))
        .execute(&store.pool)
        .await?;
        Ok(renewed.rows_affected() == 1)
    }

    async fn job_event_notices(store: &Store<Postgres>) -> Notices {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&store.extra).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "could not listen for other replicas' run events");
                return None;
            }
        };
        if let Err(e) = listener.listen("offboard_job_events").await {
            tracing::warn!(error = %e, "could not listen for other replicas' run events");
            return None;
        }
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                // `recv` reconnects by itself after a lost connection (notices sent meanwhile
                // are lost: the watchers' periodic look at the database covers them).
                match listener.recv().await {
                    Ok(notice) => {
                        if sender.send(JobId::new(notice.payload())).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "listening for run events failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Some(receiver)
    }
}
