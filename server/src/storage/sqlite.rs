//! SQLite's side of [`Dialect`]: the embedded default (one file in the data folder, one
//! process). Its one writer connection queues every write of the runs in order, so nothing
//! here locks rows; a lease not driven by this process belongs to nobody alive.

use super::column::{to_i64, Stamp};
use super::jobs::claimable;
use super::leases::{add_claimable, add_free_leases, unbindable};
use super::store::{Claim, Dialect, NewRows, Store};
use super::*;
use crate::engine::ItemState;
use sqlx::sqlite::SqliteArguments;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::Arguments;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use std::str::FromStr;

/// Rows written per INSERT statement (a preview row has 4 values, a job's user 11; SQLite
/// allows 32,766): a 100,000-row preview is 200 statements, not 100,000.
const ROWS_PER_INSERT: usize = 500;

/// A lease's end, `lease` from now, as stored text.
fn lease_until(store: &Store<Sqlite>, lease: Duration) -> Stamp {
    let ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    Stamp(store.clock.now() + chrono::Duration::milliseconds(ms))
}

#[async_trait]
impl Dialect for Sqlite {
    const LABEL: &'static str = "SQLite";
    const FOR_UPDATE: &'static str = "";
    const FOR_SHARE: &'static str = "";
    const LEASE_ENDED: &'static str = "''";
    const SNAPSHOT: &'static str = "";
    // preview_json and listing_json are the first schema's, '' since migration 0003.
    const INSERT_PREVIEW: &'static str = "INSERT INTO previews (id, team_id, created_at, \
        action, preview_json, listing_json, phrase, source_id, summary_json, total_rows) \
        VALUES ($1, $2, $3, $4, '', '', $5, $6, $7, $8)";
    type Extra = ();

    fn pooled(pool: &sqlx::Pool<Sqlite>) -> impl sqlx::Executor<'_, Database = Sqlite> {
        pool
    }

    async fn open(url: &str, clock: Arc<dyn Clock>, audit_key: AuditKey) -> Result<Database> {
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
        // SQLite writes one transaction at a time anyway; one connection of their own means
        // the jobs' writes queue in order here, never behind readers holding the other
        // connections, and never in SQLite's busy-wait sleeps.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        Ok(Database {
            storage: Arc::new(Store {
                pool: pool.clone(),
                writer,
                clock,
                audit_key,
                emails_on: Default::default(),
                extra: (),
            }),
            pool: Pool::Sqlite(pool),
        })
    }

    fn on(conn: &mut SqliteConnection) -> impl sqlx::Executor<'_, Database = Sqlite> {
        conn
    }

    // One process writes an SQLite file and its runs queue on one writer connection: the
    // count that follows cannot change before the transaction ends.
    async fn lock_site(_conn: &mut SqliteConnection, _site_url: &str) -> Result<()> {
        Ok(())
    }

    async fn insert_preview_rows(conn: &mut SqliteConnection, new: &NewRows<'_>) -> Result<()> {
        let (preview_id, rows) = (new.preview_id, new.rows);
        for (chunk_index, chunk) in rows.chunks(ROWS_PER_INSERT).enumerate() {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO preview_rows (preview_id, position, outcome, row_json) ",
            );
            let mut encoded = Vec::with_capacity(chunk.len());
            for (i, row) in chunk.iter().enumerate() {
                let position = to_i64(chunk_index * ROWS_PER_INSERT + i);
                encoded.push((position, row.outcome, serde_json::to_string(row)?));
            }
            insert.push_values(encoded, |mut values, (position, outcome, json)| {
                values
                    .push_bind(preview_id)
                    .push_bind(position)
                    .push_bind(outcome)
                    .push_bind(json);
            });
            insert.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    async fn insert_job_items(
        conn: &mut SqliteConnection,
        job_id: &JobId,
        at: DateTime<Utc>,
        items: &[PlannedItem],
    ) -> Result<()> {
        for (chunk_index, chunk) in items.chunks(ROWS_PER_INSERT).enumerate() {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO job_items (job_id, position, account_id, email, state, outcome, \
                 message, attempts, elapsed_ms, demoted, finished_at) ",
            );
            insert.push_values(chunk.iter().enumerate(), |mut values, (i, item)| {
                let position = to_i64(chunk_index * ROWS_PER_INSERT + i);
                let (account_id, email, result) = item.parts();
                let state = result.map_or(ItemState::Pending, |_| ItemState::Done);
                values
                    .push_bind(job_id)
                    .push_bind(position)
                    .push_bind(account_id)
                    .push_bind(email)
                    .push_bind(state)
                    .push_bind(result.map(|r| r.outcome))
                    .push_bind(result.map_or("", |r| r.message.as_str()))
                    .push_bind(result.map_or(0, |r| i64::from(r.attempts)))
                    .push_bind(
                        result.map_or(0, |r| i64::try_from(r.elapsed_ms).unwrap_or(i64::MAX)),
                    )
                    .push_bind(result.is_some_and(|r| r.demoted))
                    .push_bind(result.map(|_| Stamp(at)));
            });
            insert.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    async fn log_results(
        conn: &mut SqliteConnection,
        job_id: &JobId,
        first: i64,
        at: DateTime<Utc>,
        results: &[ItemResult],
    ) -> Result<Vec<JobEvent>> {
        for (seq, result) in (first..).zip(results) {
            sqlx::query(
                "INSERT INTO job_events (job_id, seq, at, result_json) VALUES ($1, $2, $3, $4)",
            )
            .bind(job_id)
            .bind(seq)
            .bind(Stamp(at))
            .bind(serde_json::to_string(result)?)
            .execute(&mut *conn)
            .await?;
        }
        Ok(JobEvent::logged(first, at, results))
    }

    async fn claim_leases(store: &Store<Sqlite>, claim: &Claim<'_>) -> Result<Vec<(JobId, i64)>> {
        // One process: a lease this process is not driving belongs to nobody alive (an
        // earlier run of this console that stopped), so it is taken at once, whatever its
        // holder and expiry. The fence still goes up, as on PostgreSQL.
        let driving = serde_json::to_string(
            &claim
                .driving
                .iter()
                .map(|id| id.as_str())
                .collect::<Vec<_>>(),
        )?;
        let mut tx = store.writer.begin().await?;
        add_free_leases::<Sqlite>(&mut tx, claim.only).await?;
        let update = format!(
            "UPDATE job_leases SET holder = $1, fence = fence + 1, expires_at = $2 \
             WHERE job_id IN (SELECT id FROM jobs WHERE {}) \
             AND job_id NOT IN (SELECT value FROM json_each($3)) RETURNING job_id, fence",
            claimable("", 4)
        );
        let mut args = SqliteArguments::default();
        args.add(claim.holder).map_err(unbindable)?;
        args.add(lease_until(store, claim.lease))
            .map_err(unbindable)?;
        args.add(driving).map_err(unbindable)?;
        add_claimable::<Sqlite>(&mut args, claim.only)?;
        let claimed = sqlx::query_as_with(&update, args)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn renew_lease(
        store: &Store<Sqlite>,
        lease: &JobLease,
        duration: Duration,
    ) -> Result<bool> {
        let renewed =
            sqlx::query("UPDATE job_leases SET expires_at = $1 WHERE job_id = $2 AND fence = $3")
                .bind(lease_until(store, duration))
                .bind(&lease.job_id)
                .bind(lease.fence)
                .execute(&store.writer)
                .await?;
        Ok(renewed.rows_affected() == 1)
    }
}
