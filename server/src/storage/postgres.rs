//! The PostgreSQL implementation of [`Storage`]: one database shared by every console replica
//! of a hosted Offboard. Same records and rules as SQLite; the rows read back through the same
//! `rows.rs` shapes (the schema in migrations-postgres/ keeps SQLite's column kinds).
//!
//! Where SQLite relies on its single writer, this file relies on row locks: every write that
//! hands out a job's event number locks the job's row first (`UPDATE jobs … RETURNING
//! last_seq`), then the users' rows, always in that order, so two writers of one job queue
//! instead of deadlocking or taking the same number.

use super::rows::{enum_name, stamp, to_u64, JobEventRow, JobRow, TallyRow};
use super::*;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgConnection;
use std::collections::HashMap;
use std::str::FromStr;

/// Connections one console keeps open for its work. Several replicas share the server's
/// `max_connections` (100 by default): 16 each (plus one listening for the others' run events)
/// leaves room for a handful of replicas.
const MAX_CONNECTIONS: u32 = 16;

/// Preview rows sent per INSERT (as four arrays): bounds what one statement holds in memory.
const PREVIEW_ROWS_PER_INSERT: usize = 5000;

/// Opens the PostgreSQL database at `url` and applies its migrations.
pub(super) async fn open(
    url: &str,
    clock: Arc<dyn Clock>,
    audit_key: AuditKey,
) -> Result<Database> {
    let options = PgConnectOptions::from_str(url)?.application_name("offboard");
    // The LISTEN connection stays checked out for good: a pool of its own, so the work keeps
    // all 16 (opened only if `job_event_notices` is asked for).
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
    // Two replicas starting together both try to migrate: sqlx takes an advisory lock first,
    // so one applies the migrations and the other then finds them applied.
    sqlx::migrate!("./migrations-postgres").run(&pool).await?;
    Ok(Database {
        storage: Arc::new(PostgresStorage {
            pool: pool.clone(),
            listening,
            clock,
            audit_key,
        }),
        sqlite: Pool::Postgres(pool),
    })
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

const JOB_COLUMNS: &str = "id, team_id, created_by, created_at, site_url, action, preview_id, \
                           state, reason, started_at, finished_at, users_url, token_fingerprint, \
                           approved_by, approved_at";

/// A tally row of one of several jobs (see [`PostgresStorage::job_records`]).
#[derive(sqlx::FromRow)]
struct JobTally {
    job_id: JobId,
    #[sqlx(flatten)]
    tally: TallyRow,
}

pub struct PostgresStorage {
    pub(super) pool: PgPool,
    /// Where `job_event_notices` listens (one connection, apart from `pool`).
    listening: PgPool,
    pub(super) clock: Arc<dyn Clock>,
    /// Signs the audit trail's entries (storage/audit.rs).
    pub(super) audit_key: AuditKey,
}

impl PostgresStorage {
    /// The jobs of `rows`, with their users counted by one query for all of them.
    async fn job_records(&self, rows: Vec<JobRow>) -> Result<Vec<JobRecord>> {
        let ids: Vec<String> = rows.iter().map(|r| r.id.to_string()).collect();
        let tallies: Vec<JobTally> = sqlx::query_as(
            "SELECT job_id, state, outcome, COUNT(*) AS n FROM job_items \
             WHERE job_id = ANY($1) GROUP BY job_id, state, outcome",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        let mut by_job: HashMap<JobId, Vec<TallyRow>> = HashMap::new();
        for t in tallies {
            by_job.entry(t.job_id).or_default().push(t.tally);
        }
        rows.into_iter()
            .map(|row| {
                let tallies = by_job.remove(&row.id).unwrap_or_default();
                row.into_record(tallies)
            })
            .collect()
    }

    /// Why a state change found no job to change: it ended, or it does not exist.
    async fn ended(&self, job_id: &JobId) -> StorageError {
        let state: std::result::Result<Option<JobState>, sqlx::Error> =
            sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1")
                .bind(job_id)
                .fetch_optional(&self.pool)
                .await;
        match state {
            Err(e) => e.into(),
            Ok(None) => StorageError::JobNotFound(job_id.clone()),
            Ok(Some(state)) => StorageError::JobEnded {
                job_id: job_id.clone(),
                state,
            },
        }
    }
}

/// Checks inside the caller's transaction that `lease` still holds its job, and share-locks
/// the lease row until the transaction ends: a claim (which locks it for update) cannot slip
/// between this check and the write that follows.
async fn hold_lease(conn: &mut PgConnection, lease: &JobLease) -> Result<()> {
    let held: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM job_leases WHERE job_id = $1 AND fence = $2 FOR SHARE")
            .bind(&lease.job_id)
            .bind(lease.fence)
            .fetch_optional(&mut *conn)
            .await?;
    match held {
        Some(_) => Ok(()),
        None => Err(StorageError::LeaseLost(lease.job_id.clone())),
    }
}

/// A lease's length in whole milliseconds, as the interval arithmetic takes it.
fn lease_ms(lease: Duration) -> f64 {
    lease.as_millis() as f64
}

/// Locks the job's row and takes its next `count` event numbers; returns the first.
async fn take_seqs(conn: &mut PgConnection, job_id: &JobId, count: i64) -> Result<i64> {
    let last: Option<i64> = sqlx::query_scalar(
        "UPDATE jobs SET last_seq = last_seq + $2 WHERE id = $1 RETURNING last_seq",
    )
    .bind(job_id)
    .bind(count)
    .fetch_optional(&mut *conn)
    .await?;
    last.map(|last| last - count + 1)
        .ok_or_else(|| StorageError::JobNotFound(job_id.clone()))
}

/// Logs results as consecutive events from `first`, in one statement.
async fn log_results(
    conn: &mut PgConnection,
    job_id: &JobId,
    first: i64,
    at: DateTime<Utc>,
    results: &[ItemResult],
) -> Result<Vec<JobEvent>> {
    let mut seqs = Vec::with_capacity(results.len());
    let mut texts = Vec::with_capacity(results.len());
    for (offset, result) in results.iter().enumerate() {
        seqs.push(first + to_i64(offset as u64));
        texts.push(serde_json::to_string(result)?);
    }
    sqlx::query(
        "INSERT INTO job_events (job_id, seq, at, result_json) \
         SELECT $1, e.seq, $2, e.result_json FROM UNNEST($3::bigint[], $4::text[]) \
         AS e(seq, result_json)",
    )
    .bind(job_id)
    .bind(stamp(at))
    .bind(&seqs)
    .bind(&texts)
    .execute(&mut *conn)
    .await?;
    Ok(seqs
        .into_iter()
        .zip(results)
        .map(|(seq, result)| JobEvent {
            seq,
            at,
            result: Some(result.clone()),
            state_change: None,
            reason: None,
        })
        .collect())
}

/// Writes a preview and its rows on `conn` (inside the caller's transaction).
async fn insert_preview(
    conn: &mut PgConnection,
    team_id: TeamId,
    preview: &PreviewRecord,
    rows: &[PreviewRow],
) -> Result<()> {
    sqlx::query(
        "INSERT INTO previews (id, team_id, created_at, action, phrase, source_id, \
         summary_json, total_rows) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&preview.id)
    .bind(team_id)
    .bind(stamp(preview.created_at))
    .bind(enum_name(&preview.action)?)
    .bind(&preview.phrase)
    .bind(&preview.source_id)
    .bind(&preview.summary_json)
    .bind(to_i64(rows.len() as u64))
    .execute(&mut *conn)
    .await?;
    for (chunk_index, chunk) in rows.chunks(PREVIEW_ROWS_PER_INSERT).enumerate() {
        let first = chunk_index * PREVIEW_ROWS_PER_INSERT;
        let positions: Vec<i64> = (0..chunk.len())
            .map(|i| to_i64((first + i) as u64))
            .collect();
        let outcomes = chunk
            .iter()
            .map(|row| enum_name(&row.outcome))
            .collect::<Result<Vec<_>>>()?;
        let texts = chunk
            .iter()
            .map(serde_json::to_string)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        sqlx::query(
            "INSERT INTO preview_rows (preview_id, position, outcome, row_json) \
             SELECT $1, r.position, r.outcome, r.row_json \
             FROM UNNEST($2::bigint[], $3::text[], $4::text[]) AS r(position, outcome, row_json)",
        )
        .bind(&preview.id)
        .bind(&positions)
        .bind(&outcomes)
        .bind(&texts)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The users of a new job as columns (one array each), settled ones with their result.
#[derive(Default)]
struct ItemColumns {
    positions: Vec<i64>,
    account_ids: Vec<String>,
    emails: Vec<Option<String>>,
    outcomes: Vec<Option<String>>,
    messages: Vec<String>,
    attempts: Vec<i64>,
    elapsed_ms: Vec<i64>,
    demoted: Vec<bool>,
}

impl ItemColumns {
    fn of(items: &[PlannedItem]) -> Result<ItemColumns> {
        let mut c = ItemColumns::default();
        for (position, item) in items.iter().enumerate() {
            c.positions.push(to_i64(position as u64));
            match item {
                PlannedItem::Run(t) => {
                    c.account_ids.push(t.account_id.clone());
                    c.emails.push(t.email.clone());
                    c.outcomes.push(None);
                    c.messages.push(String::new());
                    c.attempts.push(0);
                    c.elapsed_ms.push(0);
                    c.demoted.push(false);
                }
                PlannedItem::Settled(r) => {
                    c.account_ids.push(r.account_id.clone());
                    c.emails.push(r.email.clone());
                    c.outcomes.push(Some(enum_name(&r.outcome)?));
                    c.messages.push(r.message.clone());
                    c.attempts.push(i64::from(r.attempts));
                    c.elapsed_ms.push(to_i64(r.elapsed_ms));
                    c.demoted.push(r.demoted);
                }
            }
        }
        Ok(c)
    }
}

/// The runner's writes on one connection, inside the caller's transaction: the trait's plain
/// methods run them alone, the `_fenced` ones after [`hold_lease`] in the same transaction.
impl PostgresStorage {
    async fn set_job_state_on(
        &self,
        conn: &mut PgConnection,
        job_id: &JobId,
        state: JobState,
        reason: Option<String>,
    ) -> Result<JobEvent> {
        let at = self.clock.now();
        let started = (state == JobState::Running).then(|| stamp(at));
        let finished = state.has_ended().then(|| stamp(at));
        // The change and its event in one statement; a final state is never left.
        let seq: Option<i64> = sqlx::query_scalar(
            "WITH changed AS (UPDATE jobs SET state = $2, reason = $3, \
             last_seq = last_seq + 1, started_at = COALESCE(started_at, $4), \
             finished_at = COALESCE($5, finished_at) \
             WHERE id = $1 AND state NOT IN ('finished', 'stopped', 'failed') \
             RETURNING id, last_seq) \
             INSERT INTO job_events (job_id, seq, at, state_change, reason) \
             SELECT id, last_seq, $6, $2, $3 FROM changed RETURNING seq",
        )
        .bind(job_id)
        .bind(state)
        .bind(&reason)
        .bind(started)
        .bind(finished)
        .bind(stamp(at))
        .fetch_optional(&mut *conn)
        .await?;
        match seq {
            Some(seq) => Ok(JobEvent {
                seq,
                at,
                result: None,
                state_change: Some(state),
                reason,
            }),
            None => Err(self.ended(job_id).await),
        }
    }
    async fn mark_sending_on(
        &self,
        conn: &mut PgConnection,
        job_id: &JobId,
        account_id: &str,
    ) -> Result<()> {
        // The job's row is share-locked first: a concurrent cancel either lands before (and
        // this refuses) or waits until the mark is written (and the runner sees the cancel).
        let updated = sqlx::query(
            "UPDATE job_items SET state = 'sending' WHERE job_id = $1 AND account_id = $2 \
             AND state IN ('pending', 'sending') \
             AND EXISTS (SELECT 1 FROM jobs WHERE id = $1 AND state = 'running' FOR SHARE)",
        )
        .bind(job_id)
        .bind(account_id)
        .execute(&mut *conn)
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
        .fetch_optional(&self.pool)
        .await?;
        match found {
            None => Err(StorageError::JobNotFound(job_id.clone())),
            Some((state, _)) if state != JobState::Running => Err(StorageError::JobNotRunning {
                job_id: job_id.clone(),
                state,
            }),
            Some((_, item)) => Err(item_refusal(job_id, account_id, item)),
        }
    }

    async fn record_result_on(
        &self,
        tx: &mut PgConnection,
        job_id: &JobId,
        result: &ItemResult,
    ) -> Result<JobEvent> {
        let at = self.clock.now();
        let seq = match take_seqs(tx, job_id, 1).await {
            // As on SQLite: a result for a job that does not exist names the unknown user.
            Err(StorageError::JobNotFound(_)) => {
                return Err(item_refusal(job_id, &result.account_id, None))
            }
            taken => taken?,
        };
        let item: Option<ItemState> = sqlx::query_scalar(
            "UPDATE job_items SET state = 'done', outcome = $3, message = $4, attempts = $5, \
             elapsed_ms = $6, demoted = $7, email = COALESCE($8, email), finished_at = $9 \
             WHERE job_id = $1 AND account_id = $2 AND state <> 'done' RETURNING state",
        )
        .bind(job_id)
        .bind(&result.account_id)
        .bind(enum_name(&result.outcome)?)
        .bind(&result.message)
        .bind(i64::from(result.attempts))
        .bind(to_i64(result.elapsed_ms))
        .bind(result.demoted)
        .bind(&result.email)
        .bind(stamp(at))
        .fetch_optional(&mut *tx)
        .await?;
        if item.is_none() {
            // Nothing written: the sequence number goes back with the rollback.
            let state: Option<ItemState> = sqlx::query_scalar(
                "SELECT state FROM job_items WHERE job_id = $1 AND account_id = $2",
            )
            .bind(job_id)
            .bind(&result.account_id)
            .fetch_optional(&mut *tx)
            .await?;
            return Err(item_refusal(job_id, &result.account_id, state));
        }
        let mut events = log_results(tx, job_id, seq, at, std::slice::from_ref(result)).await?;
        events
            .pop()
            .ok_or_else(|| StorageError::Damaged("a logged result has no event".into()))
    }

    async fn record_not_attempted_on(
        &self,
        tx: &mut PgConnection,
        job_id: &JobId,
        message: &str,
    ) -> Result<Vec<JobEvent>> {
        let at = self.clock.now();
        // The job's row first (see the module comment), then every pending user at once.
        take_seqs(tx, job_id, 0).await?;
        let mut pending: Vec<(i64, String, Option<String>)> = sqlx::query_as(
            "UPDATE job_items SET state = 'done', outcome = $2, message = $3, attempts = 0, \
             elapsed_ms = 0, demoted = FALSE, finished_at = $4 \
             WHERE job_id = $1 AND state = 'pending' RETURNING position, account_id, email",
        )
        .bind(job_id)
        .bind(enum_name(&ItemOutcome::NotAttempted)?)
        .bind(message)
        .bind(stamp(at))
        .fetch_all(&mut *tx)
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
        let first = take_seqs(tx, job_id, to_i64(results.len() as u64)).await?;
        log_results(tx, job_id, first, at, &results).await
    }
}

#[async_trait]
impl Storage for PostgresStorage {
    async fn job_event_notices(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<JobId>> {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&self.listening).await {
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

    async fn append_audit(&self, team_id: TeamId, entry: &NewAuditEntry) -> Result<AuditEntry> {
        super::audit::on_postgres::append(
            &self.pool,
            &self.audit_key,
            team_id,
            self.clock.now(),
            entry,
        )
        .await
    }

    async fn audit_entries(&self, team_id: TeamId, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        super::audit::on_postgres::entries(&self.pool, team_id, query).await
    }

    async fn verify_audit_against(&self, recorded: &ExpectedHeads) -> Result<ChainReport> {
        super::audit::on_postgres::verify(&self.pool, &self.audit_key, recorded).await
    }

    async fn audit_heads(&self) -> Result<Vec<(TeamId, i64, String)>> {
        super::audit::on_postgres::heads(&self.pool).await
    }

    async fn seal_old_audit_entries(&self) -> Result<u64> {
        super::audit::on_postgres::seal_old_entries(&self.pool, &self.audit_key).await
    }

    async fn health(&self, team_id: TeamId) -> Result<StorageHealth> {
        let (migrations, jobs): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM _sqlx_migrations WHERE success), \
             (SELECT COUNT(*) FROM jobs WHERE team_id = $1)",
        )
        .bind(team_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(StorageHealth {
            database: "PostgreSQL",
            migrations,
            jobs,
        })
    }

    async fn save_connection(&self, team_id: TeamId, record: &ConnectionRecord) -> Result<()> {
        super::portable::on_postgres::save_connection(&self.pool, team_id, record).await
    }

    async fn connection(&self, team_id: TeamId) -> Result<Option<ConnectionRecord>> {
        super::portable::on_postgres::connection(&self.pool, team_id).await
    }

    async fn forget_token(&self, team_id: TeamId) -> Result<()> {
        super::portable::on_postgres::forget_token(&self.pool, team_id, self.clock.now()).await
    }

    async fn saved_tokens(&self) -> Result<Vec<SavedToken>> {
        super::portable::on_postgres::saved_tokens(&self.pool).await
    }

    async fn replace_saved_tokens(&self, replacements: &[TokenReplacement]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for r in replacements {
            // One statement per team: the fingerprints move only if the ciphertext was still
            // the one read.
            let replaced: i64 = sqlx::query_scalar(
                "WITH token AS (UPDATE connections SET token_ciphertext = $2 \
                 WHERE team_id = $1 AND token_ciphertext = $3 RETURNING team_id), \
                 runs AS (UPDATE jobs SET token_fingerprint = $5 \
                 WHERE team_id IN (SELECT team_id FROM token) AND token_fingerprint = $4), \
                 sources AS (UPDATE preview_sources SET token_fingerprint = $5 \
                 WHERE team_id IN (SELECT team_id FROM token) AND token_fingerprint = $4) \
                 SELECT COUNT(*) FROM token",
            )
            .bind(r.team_id)
            .bind(r.new_ciphertext.expose())
            .bind(r.old_ciphertext.expose())
            .bind(&r.old_fingerprint)
            .bind(&r.new_fingerprint)
            .fetch_one(&mut *tx)
            .await?;
            if replaced != 1 {
                // Dropping the transaction rolls back every replacement made so far.
                return Err(StorageError::Damaged(format!(
                    "team {}'s saved token changed while it was being re-encrypted",
                    r.team_id
                )));
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn save_preview_source(
        &self,
        team_id: TeamId,
        source: &PreviewSourceRecord,
    ) -> Result<()> {
        super::portable::on_postgres::save_preview_source(&self.pool, team_id, source).await
    }

    async fn preview_source(
        &self,
        team_id: TeamId,
        source_id: &str,
    ) -> Result<Option<PreviewSourceRecord>> {
        super::portable::on_postgres::preview_source(&self.pool, team_id, source_id).await
    }

    async fn save_preview(
        &self,
        team_id: TeamId,
        preview: &PreviewRecord,
        rows: &[PreviewRow],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_preview(&mut tx, team_id, preview, rows).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn preview(
        &self,
        team_id: TeamId,
        preview_id: &PreviewId,
    ) -> Result<Option<PreviewRecord>> {
        super::portable::on_postgres::preview(&self.pool, team_id, preview_id).await
    }

    async fn replace_preview(
        &self,
        team_id: TeamId,
        replaced: &PreviewId,
        revision: &PreviewRecord,
        rows: &[PreviewRow],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_preview(&mut tx, team_id, revision, rows).await?;
        // An unconfirmed preview points at its revision and loses its rows, in one statement.
        sqlx::query(
            "WITH replaced AS (UPDATE previews SET replaced_by = $3 \
             WHERE team_id = $1 AND id = $2 AND claimed_at IS NULL RETURNING id) \
             DELETE FROM preview_rows WHERE preview_id IN (SELECT id FROM replaced)",
        )
        .bind(team_id)
        .bind(replaced)
        .bind(&revision.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn preview_rows(
        &self,
        team_id: TeamId,
        preview_id: &PreviewId,
        outcome: Option<PreviewOutcome>,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<PreviewRow>, usize)> {
        let outcome = outcome.map(|o| enum_name(&o)).transpose()?;
        // The page and the count in one statement; the count rides on every row, so an
        // empty page (past the end) asks for it separately.
        let page: Vec<(String, i64)> = sqlx::query_as(
            "SELECT r.row_json, COUNT(*) OVER () FROM preview_rows r \
             JOIN previews p ON p.id = r.preview_id \
             WHERE p.team_id = $1 AND r.preview_id = $2 AND ($3::text IS NULL OR r.outcome = $3) \
             ORDER BY r.position LIMIT $4 OFFSET $5",
        )
        .bind(team_id)
        .bind(preview_id)
        .bind(&outcome)
        .bind(to_i64(limit as u64))
        .bind(to_i64(offset as u64))
        .fetch_all(&self.pool)
        .await?;
        let matching =
            match page.first() {
                Some((_, total)) => *total,
                None => sqlx::query_scalar(
                    "SELECT COUNT(*) FROM preview_rows r JOIN previews p ON p.id = r.preview_id \
                     WHERE p.team_id = $1 AND r.preview_id = $2 \
                     AND ($3::text IS NULL OR r.outcome = $3)",
                )
                .bind(team_id)
                .bind(preview_id)
                .bind(&outcome)
                .fetch_one(&self.pool)
                .await?,
            };
        let rows = page
            .iter()
            .map(|(json, _)| serde_json::from_str(json))
            .collect::<std::result::Result<Vec<PreviewRow>, _>>()?;
        Ok((rows, to_u64(matching) as usize))
    }

    async fn all_preview_rows(
        &self,
        team_id: TeamId,
        preview_id: &PreviewId,
    ) -> Result<Vec<PreviewRow>> {
        super::portable::on_postgres::all_preview_rows(&self.pool, team_id, preview_id).await
    }

    async fn expire_previews(&self, before: DateTime<Utc>) -> Result<Expired> {
        super::portable::on_postgres::expire_previews(&self.pool, before).await
    }

    async fn claim_preview(&self, team_id: TeamId, preview_id: &PreviewId) -> Result<bool> {
        super::portable::on_postgres::claim_preview(
            &self.pool,
            team_id,
            preview_id,
            self.clock.now(),
        )
        .await
    }

    async fn release_preview(&self, team_id: TeamId, preview_id: &PreviewId) -> Result<()> {
        super::portable::on_postgres::release_preview(&self.pool, team_id, preview_id).await
    }

    async fn usage_since(
        &self,
        team_id: TeamId,
        what: &str,
        since: DateTime<Utc>,
    ) -> Result<(usize, Option<DateTime<Utc>>)> {
        super::portable::on_postgres::usage_since(&self.pool, team_id, what, since).await
    }

    async fn record_usage(
        &self,
        team_id: TeamId,
        what: &str,
        at: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> Result<()> {
        super::portable::on_postgres::record_usage(&self.pool, team_id, what, at, forget_before)
            .await
    }

    async fn save_listing(&self, job_id: &JobId, users_json: &[u8]) -> Result<()> {
        super::portable::on_postgres::save_listing(&self.pool, job_id, users_json).await
    }

    async fn listing(&self, team_id: TeamId, job_id: &JobId) -> Result<Option<Vec<u8>>> {
        super::portable::on_postgres::listing(&self.pool, team_id, job_id).await
    }

    async fn runs_on_site(&self, site_url: &str) -> Result<usize> {
        super::portable::on_postgres::runs_on_site(&self.pool, site_url).await
    }

    async fn create_job(&self, job: &NewJob) -> Result<()> {
        let settled = job.check_items()?;
        let at = job.created_at;
        let columns = ItemColumns::of(&job.items)?;
        let mut tx = self.pool.begin().await?;
        // Approving is creating the run: the request turns approved here (its row locked
        // until the commit, so a decline waits and then finds it decided) or nothing is written.
        if let Some(approval) = &job.approval {
            super::approval_step::on_postgres::approve_in(
                &mut tx,
                job.team_id,
                &job.preview_id,
                approval,
            )
            .await?;
        }
        // Replicas may start runs on the same site at the same moment: a lock per site, held
        // until this transaction ends, makes them count and write one after the other.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('offboard site ' || $1, 0))")
            .bind(&job.site_url)
            .execute(&mut *tx)
            .await?;
        super::portable::on_postgres::site_has_room(&mut tx, job).await?;
        // Written only if its preview is this team's, of the same action and claimed: a job
        // can never start from an unconfirmed preview. Its log starts with `queued` (seq 1).
        let inserted = sqlx::query(
            "WITH job AS (INSERT INTO jobs (id, team_id, created_at, state, created_by, \
             site_url, action, users_url, token_fingerprint, preview_id, last_seq, \
             approved_by, approved_at) \
             SELECT $1, $2, $3, 'queued', $4, $5, $6, $7, $8, id, 1 + $9, $11, $12 FROM previews \
             WHERE id = $10 AND team_id = $2 AND action = $6 AND claimed_at IS NOT NULL \
             RETURNING id) \
             INSERT INTO job_events (job_id, seq, at, state_change) \
             SELECT id, 1, $3, 'queued' FROM job",
        )
        .bind(&job.id)
        .bind(job.team_id)
        .bind(stamp(at))
        .bind(&job.created_by)
        .bind(&job.site_url)
        .bind(enum_name(&job.action)?)
        .bind(&job.connection.users_url)
        .bind(&job.connection.token_fingerprint)
        .bind(to_i64(settled as u64))
        .bind(&job.preview_id)
        .bind(job.approval.as_ref().map(|a| &a.by))
        .bind(job.approval.as_ref().map(|a| stamp(a.at)))
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() != 1 {
            return Err(StorageError::PreviewNotConfirmed(job.preview_id.clone()));
        }
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
        .bind(&job.id)
        .bind(stamp(at))
        .bind(&columns.positions)
        .bind(&columns.account_ids)
        .bind(&columns.emails)
        .bind(&columns.outcomes)
        .bind(&columns.messages)
        .bind(&columns.attempts)
        .bind(&columns.elapsed_ms)
        .bind(&columns.demoted)
        .execute(&mut *tx)
        .await?;
        let results: Vec<ItemResult> = job
            .items
            .iter()
            .filter_map(|item| match item {
                PlannedItem::Settled(r) => Some(r.clone()),
                PlannedItem::Run(_) => None,
            })
            .collect();
        // Settled users' results follow `queued`: seq 2, 3, …
        log_results(&mut tx, &job.id, 2, at, &results).await?;
        for entry in &job.audit {
            super::audit::on_postgres::append_in(
                &mut tx,
                &self.audit_key,
                job.team_id,
                self.clock.now(),
                entry,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_job_state(
        &self,
        job_id: &JobId,
        state: JobState,
        reason: Option<String>,
    ) -> Result<JobEvent> {
        let mut conn = self.pool.acquire().await?;
        self.set_job_state_on(&mut conn, job_id, state, reason)
            .await
    }

    async fn mark_sending(&self, job_id: &JobId, account_id: &str) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        self.mark_sending_on(&mut conn, job_id, account_id).await
    }

    async fn record_result(&self, job_id: &JobId, result: &ItemResult) -> Result<JobEvent> {
        let mut tx = self.pool.begin().await?;
        let event = self.record_result_on(&mut tx, job_id, result).await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn record_not_attempted(&self, job_id: &JobId, message: &str) -> Result<Vec<JobEvent>> {
        let mut tx = self.pool.begin().await?;
        let events = self
            .record_not_attempted_on(&mut tx, job_id, message)
            .await?;
        tx.commit().await?;
        Ok(events)
    }

    async fn claim_jobs(
        &self,
        holder: &str,
        lease: Duration,
        driving: &[JobId],
        only: Option<&JobId>,
    ) -> Result<Vec<(JobRecord, JobLease)>> {
        let driving: Vec<String> = driving.iter().map(|id| id.to_string()).collect();
        // Every unfinished job gets its lease row first (free, fence 0), so the claim below
        // locks lease rows only, never a job's row: a holder's fenced write (lease row
        // share-locked, then the job's row) and a claim cannot wait on each other in a cycle.
        sqlx::query(
            "INSERT INTO job_leases (job_id, holder, fence, expires_at) \
             SELECT id, '', 0, '-infinity' FROM jobs \
             WHERE (state IN ('queued', 'running', 'cancelling') \
             OR (state = 'paused' AND $1::text IS NOT NULL)) \
             AND ($1::text IS NULL OR id = $1) ON CONFLICT (job_id) DO NOTHING",
        )
        .bind(only)
        .execute(&self.pool)
        .await?;
        // A lease row locked by another claim, or share-locked by its holder writing right
        // now, is skipped: that job is somebody's this instant.
        let claimed: Vec<(JobId, i64)> = sqlx::query_as(
            "WITH free AS (SELECT l.job_id FROM job_leases l JOIN jobs j ON j.id = l.job_id \
             WHERE (j.state IN ('queued', 'running', 'cancelling') \
             OR (j.state = 'paused' AND $3::text IS NOT NULL)) \
             AND ($3::text IS NULL OR l.job_id = $3) AND NOT (l.job_id = ANY($4)) \
             AND l.expires_at < now() \
             ORDER BY j.created_at, j.id FOR UPDATE OF l SKIP LOCKED) \
             UPDATE job_leases l SET holder = $1, fence = l.fence + 1, \
             expires_at = now() + $2 * interval '1 millisecond' \
             FROM free WHERE l.job_id = free.job_id RETURNING l.job_id, l.fence",
        )
        .bind(holder)
        .bind(lease_ms(lease))
        .bind(only)
        .bind(&driving)
        .fetch_all(&self.pool)
        .await?;
        let fences: HashMap<JobId, i64> = claimed.into_iter().collect();
        if fences.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = fences.keys().map(|id| id.to_string()).collect();
        let rows: Vec<JobRow> = sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id = ANY($1) ORDER BY created_at, id"
        ))
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(self
            .job_records(rows)
            .await?
            .into_iter()
            .filter_map(|job| {
                let fence = *fences.get(&job.id)?;
                let lease = JobLease {
                    job_id: job.id.clone(),
                    fence,
                };
                Some((job, lease))
            })
            .collect())
    }

    async fn renew_lease(&self, lease: &JobLease, duration: Duration) -> Result<bool> {
        let renewed = sqlx::query(
            "UPDATE job_leases SET expires_at = now() + $3 * interval '1 millisecond' \
             WHERE job_id = $1 AND fence = $2",
        )
        .bind(&lease.job_id)
        .bind(lease.fence)
        .bind(lease_ms(duration))
        .execute(&self.pool)
        .await?;
        Ok(renewed.rows_affected() == 1)
    }

    async fn release_lease(&self, lease: &JobLease) -> Result<()> {
        sqlx::query(
            "UPDATE job_leases SET expires_at = '-infinity' WHERE job_id = $1 AND fence = $2",
        )
        .bind(&lease.job_id)
        .bind(lease.fence)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn release_leases(&self, holder: &str) -> Result<u64> {
        let released = sqlx::query(
            "UPDATE job_leases SET expires_at = '-infinity' WHERE holder = $1 \
             AND expires_at > '-infinity'",
        )
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(released.rows_affected())
    }

    async fn mark_sending_fenced(&self, lease: &JobLease, account_id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        hold_lease(&mut tx, lease).await?;
        self.mark_sending_on(&mut tx, &lease.job_id, account_id)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record_result_fenced(
        &self,
        lease: &JobLease,
        result: &ItemResult,
    ) -> Result<JobEvent> {
        let mut tx = self.pool.begin().await?;
        hold_lease(&mut tx, lease).await?;
        let event = self
            .record_result_on(&mut tx, &lease.job_id, result)
            .await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn record_not_attempted_fenced(
        &self,
        lease: &JobLease,
        message: &str,
    ) -> Result<Vec<JobEvent>> {
        let mut tx = self.pool.begin().await?;
        hold_lease(&mut tx, lease).await?;
        let events = self
            .record_not_attempted_on(&mut tx, &lease.job_id, message)
            .await?;
        tx.commit().await?;
        Ok(events)
    }

    async fn set_job_state_fenced(
        &self,
        lease: &JobLease,
        state: JobState,
        reason: Option<String>,
    ) -> Result<JobEvent> {
        let mut tx = self.pool.begin().await?;
        hold_lease(&mut tx, lease).await?;
        let event = self
            .set_job_state_on(&mut tx, &lease.job_id, state, reason)
            .await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn job(&self, team_id: TeamId, job_id: &JobId) -> Result<Option<JobRecord>> {
        let rows: Vec<JobRow> = sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE team_id = $1 AND id = $2"
        ))
        .bind(team_id)
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(self.job_records(rows).await?.pop())
    }

    async fn list_jobs(&self, team_id: TeamId, limit: u32) -> Result<Vec<JobRecord>> {
        let rows: Vec<JobRow> = sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE team_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(team_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        self.job_records(rows).await
    }

    async fn unfinished_jobs(&self) -> Result<Vec<JobRecord>> {
        let rows: Vec<JobRow> = sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE state IN ('queued', 'running', 'cancelling') \
             ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        self.job_records(rows).await
    }

    async fn job_targets(&self, job_id: &JobId) -> Result<Vec<RunTarget>> {
        super::portable::on_postgres::job_targets(&self.pool, job_id).await
    }

    async fn events_since(
        &self,
        team_id: TeamId,
        job_id: &JobId,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<JobEvent>> {
        super::portable::on_postgres::events_since(&self.pool, team_id, job_id, after_seq, limit)
            .await
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
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let last_seq: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(e.seq), 0)::bigint FROM job_events e \
             JOIN jobs j ON j.id = e.job_id WHERE j.team_id = $1 AND e.job_id = $2",
        )
        .bind(team_id)
        .bind(job_id)
        .fetch_one(&mut *tx)
        .await?;
        let rows: Vec<JobEventRow> = sqlx::query_as(
            "SELECT e.seq, e.at, e.result_json, e.state_change, e.reason \
             FROM job_events e JOIN jobs j ON j.id = e.job_id \
             WHERE j.team_id = $1 AND e.job_id = $2 AND e.seq < $3 \
             AND e.result_json IS NOT NULL ORDER BY e.seq DESC LIMIT $4",
        )
        .bind(team_id)
        .bind(job_id)
        .bind(before_seq.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let events = rows
            .into_iter()
            .map(JobEvent::try_from)
            .collect::<Result<Vec<_>>>()?;
        Ok((events, last_seq))
    }

    async fn job_results(&self, team_id: TeamId, job_id: &JobId) -> Result<Vec<ItemResult>> {
        super::portable::on_postgres::job_results(&self.pool, team_id, job_id).await
    }
}
