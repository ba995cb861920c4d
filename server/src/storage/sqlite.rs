//! The SQLite implementation of [`Storage`]: the embedded default (one file in the data folder).

use super::rows::{enum_name, stamp, to_u64, JobEventRow, JobRow, TallyRow};
use super::*;
use crate::engine::ItemState;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;

/// Opens (creating if needed) the SQLite database at `url` and applies its migrations.
pub(super) async fn open(
    url: &str,
    clock: Arc<dyn Clock>,
    audit_key: AuditKey,
) -> Result<Database> {
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
            audit_key,
        }),
        sqlite: Pool::Sqlite(pool),
    })
}

/// A lease's length in whole milliseconds.
fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Writes a preview and its rows inside `tx`.
async fn insert_preview(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    team_id: TeamId,
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

const JOB_COLUMNS: &str = "id, team_id, created_by, created_at, site_url, action, preview_id, \
                           state, reason, started_at, finished_at, users_url, token_fingerprint, \
                           approved_by, approved_at";

pub struct SqliteStorage {
    pub(super) pool: SqlitePool,
    /// The jobs' writes (creation, states, sending marks, results), and the accounts'.
    pub(super) writer: SqlitePool,
    pub(super) clock: Arc<dyn Clock>,
    /// Signs the audit trail's entries (storage/audit.rs).
    pub(super) audit_key: AuditKey,
}

impl SqliteStorage {
    /// The jobs of `rows`, each with its users counted.
    async fn job_records(&self, rows: Vec<JobRow>) -> Result<Vec<JobRecord>> {
        let mut jobs = Vec::with_capacity(rows.len());
        for row in rows {
            let tallies: Vec<TallyRow> = sqlx::query_as(
                "SELECT state, outcome, COUNT(*) AS n FROM job_items WHERE job_id = ? \
                 GROUP BY state, outcome",
            )
            .bind(&row.id)
            .fetch_all(&self.pool)
            .await?;
            jobs.push(row.into_record(tallies)?);
        }
        Ok(jobs)
    }

    /// Refuses with [`StorageError::LeaseLost`] unless `lease` still holds its job.
    async fn hold_lease(&self, lease: &JobLease) -> Result<()> {
        let held: Option<i64> =
            sqlx::query_scalar("SELECT fence FROM job_leases WHERE job_id = ? AND fence = ?")
                .bind(&lease.job_id)
                .bind(lease.fence)
                .fetch_optional(&self.writer)
                .await?;
        match held {
            Some(_) => Ok(()),
            None => Err(StorageError::LeaseLost(lease.job_id.clone())),
        }
    }

    /// The job's state, or why it cannot be found.
    async fn current_state(&self, job_id: &JobId) -> Result<JobState> {
        let state: Option<JobState> = sqlx::query_scalar("SELECT state FROM jobs WHERE id = ?")
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?;
        state.ok_or_else(|| StorageError::JobNotFound(job_id.clone()))
    }

    /// Why an item update touched no row.
    async fn item_refusal(&self, job_id: &JobId, account_id: &str) -> StorageError {
        let state: std::result::Result<Option<ItemState>, sqlx::Error> =
            sqlx::query_scalar("SELECT state FROM job_items WHERE job_id = ? AND account_id = ?")
                .bind(job_id)
                .bind(account_id)
                .fetch_optional(&self.pool)
                .await;
        match state {
            Err(e) => e.into(),
            Ok(state) => super::item_refusal(job_id, account_id, state),
        }
    }
}

/// Takes the job's next event number. Run it first in a transaction: the write lock it takes
/// makes concurrent writers of the same database wait instead of failing mid-transaction.
async fn next_seq(tx: &mut sqlx::SqliteConnection, job_id: &JobId) -> Result<i64> {
    let seq: Option<i64> = sqlx::query_scalar(
        "UPDATE jobs SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq",
    )
    .bind(job_id)
    .fetch_optional(&mut *tx)
    .await?;
    seq.ok_or_else(|| StorageError::JobNotFound(job_id.clone()))
}

async fn append_result_event(
    tx: &mut sqlx::SqliteConnection,
    job_id: &JobId,
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
    job_id: &JobId,
    result: &ItemResult,
    at: DateTime<Utc>,
) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE job_items SET state = ?, outcome = ?, message = ?, attempts = ?, \
         elapsed_ms = ?, demoted = ?, email = COALESCE(?, email), finished_at = ? \
         WHERE job_id = ? AND account_id = ? AND state <> ?",
    )
    .bind(ItemState::Done)
    .bind(enum_name(&result.outcome)?)
    .bind(&result.message)
    .bind(i64::from(result.attempts))
    .bind(to_i64(result.elapsed_ms))
    .bind(i64::from(result.demoted))
    .bind(&result.email)
    .bind(stamp(at))
    .bind(job_id)
    .bind(&result.account_id)
    .bind(ItemState::Done)
    .execute(&mut *tx)
    .await?;
    Ok(updated.rows_affected() == 1)
}

#[async_trait]
impl Storage for SqliteStorage {
    // The audit trail's appends share the jobs' writer: one queue of writes, in order.
    async fn append_audit(&self, team_id: TeamId, entry: &NewAuditEntry) -> Result<AuditEntry> {
        super::audit::append(
            &self.writer,
            &self.audit_key,
            team_id,
            self.clock.now(),
            entry,
        )
        .await
    }

    async fn audit_entries(&self, team_id: TeamId, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        super::audit::entries(&self.pool, team_id, query).await
    }

    async fn verify_audit_against(&self, recorded: &ExpectedHeads) -> Result<ChainReport> {
        super::audit::verify(&self.pool, &self.audit_key, recorded).await
    }

    async fn audit_heads(&self) -> Result<Vec<(TeamId, i64, String)>> {
        super::audit::heads(&self.pool).await
    }

    async fn seal_old_audit_entries(&self) -> Result<u64> {
        super::audit::seal_old_entries(&self.writer, &self.audit_key).await
    }

    async fn health(&self, team_id: TeamId) -> Result<StorageHealth> {
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

    async fn save_connection(&self, team_id: TeamId, record: &ConnectionRecord) -> Result<()> {
        super::portable::on_sqlite::save_connection(&self.pool, team_id, record).await
    }

    async fn connection(&self, team_id: TeamId) -> Result<Option<ConnectionRecord>> {
        super::portable::on_sqlite::connection(&self.pool, team_id).await
    }

    async fn forget_token(&self, team_id: TeamId) -> Result<()> {
        super::portable::on_sqlite::forget_token(&self.pool, team_id, self.clock.now()).await
    }

    async fn saved_tokens(&self) -> Result<Vec<SavedToken>> {
        super::portable::on_sqlite::saved_tokens(&self.pool).await
    }

    async fn replace_saved_tokens(&self, replacements: &[TokenReplacement]) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        for r in replacements {
            let changed = sqlx::query(
                "UPDATE connections SET token_ciphertext = ? \
                 WHERE team_id = ? AND token_ciphertext = ?",
            )
            .bind(r.new_ciphertext.expose())
            .bind(r.team_id)
            .bind(r.old_ciphertext.expose())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed != 1 {
                // Dropping the transaction rolls back every replacement made so far.
                return Err(StorageError::Damaged(format!(
                    "team {}'s saved token changed while it was being re-encrypted",
                    r.team_id
                )));
            }
            for table in ["jobs", "preview_sources"] {
                sqlx::query(&format!(
                    "UPDATE {table} SET token_fingerprint = ? \
                     WHERE team_id = ? AND token_fingerprint = ?"
                ))
                .bind(&r.new_fingerprint)
                .bind(r.team_id)
                .bind(&r.old_fingerprint)
                .execute(&mut *tx)
                .await?;
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
        super::portable::on_sqlite::save_preview_source(&self.pool, team_id, source).await
    }

    async fn preview_source(
        &self,
        team_id: TeamId,
        source_id: &str,
    ) -> Result<Option<PreviewSourceRecord>> {
        super::portable::on_sqlite::preview_source(&self.pool, team_id, source_id).await
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

    async fn replace_preview(
        &self,
        team_id: TeamId,
        replaced: &PreviewId,
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

    async fn preview(
        &self,
        team_id: TeamId,
        preview_id: &PreviewId,
    ) -> Result<Option<PreviewRecord>> {
        super::portable::on_sqlite::preview(&self.pool, team_id, preview_id).await
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

    async fn all_preview_rows(
        &self,
        team_id: TeamId,
        preview_id: &PreviewId,
    ) -> Result<Vec<PreviewRow>> {
        super::portable::on_sqlite::all_preview_rows(&self.pool, team_id, preview_id).await
    }

    async fn expire_previews(&self, before: DateTime<Utc>) -> Result<Expired> {
        super::portable::on_sqlite::expire_previews(&self.pool, before).await
    }

    async fn claim_preview(&self, team_id: TeamId, preview_id: &PreviewId) -> Result<bool> {
        super::portable::on_sqlite::claim_preview(&self.pool, team_id, preview_id, self.clock.now())
            .await
    }

    async fn release_preview(&self, team_id: TeamId, preview_id: &PreviewId) -> Result<()> {
        super::portable::on_sqlite::release_preview(&self.writer, team_id, preview_id).await
    }

    async fn usage_since(
        &self,
        team_id: TeamId,
        what: &str,
        since: DateTime<Utc>,
    ) -> Result<(usize, Option<DateTime<Utc>>)> {
        super::portable::on_sqlite::usage_since(&self.pool, team_id, what, since).await
    }

    async fn record_usage(
        &self,
        team_id: TeamId,
        what: &str,
        at: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> Result<()> {
        super::portable::on_sqlite::record_usage(&self.writer, team_id, what, at, forget_before)
            .await
    }

    async fn save_listing(&self, job_id: &JobId, users_json: &[u8]) -> Result<()> {
        super::portable::on_sqlite::save_listing(&self.writer, job_id, users_json).await
    }

    async fn listing(&self, team_id: TeamId, job_id: &JobId) -> Result<Option<Vec<u8>>> {
        super::portable::on_sqlite::listing(&self.pool, team_id, job_id).await
    }

    async fn runs_on_site(&self, site_url: &str) -> Result<usize> {
        super::portable::on_sqlite::runs_on_site(&self.pool, site_url).await
    }

    async fn create_job(&self, job: &NewJob) -> Result<()> {
        let settled = job.check_items()?;
        let queued_seq = 1i64;
        let at = job.created_at;

        let mut tx = self.writer.begin().await?;
        // Approving is creating the run: the request turns approved here or nothing is written.
        if let Some(approval) = &job.approval {
            super::approval_step::on_sqlite::approve_in(
                &mut tx,
                job.team_id,
                &job.preview_id,
                approval,
            )
            .await?;
        }
        // One process writes an SQLite file and its jobs queue on one writer connection: the
        // count below cannot change before this transaction ends.
        super::portable::on_sqlite::site_has_room(&mut tx, job).await?;
        // The job row is written only if its preview is this team's, of the same action and
        // claimed: a job can never start from an unconfirmed preview.
        let inserted = sqlx::query(
            "INSERT INTO jobs (id, team_id, created_at, state, created_by, site_url, action, \
             users_url, token_fingerprint, preview_id, last_seq, approved_by, approved_at) \
             SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, id, ?, ?, ? FROM previews \
             WHERE id = ? AND team_id = ? AND action = ? AND claimed_at IS NOT NULL",
        )
        .bind(&job.id)
        .bind(job.team_id)
        .bind(stamp(at))
        .bind(JobState::Queued)
        .bind(&job.created_by)
        .bind(&job.site_url)
        .bind(enum_name(&job.action)?)
        .bind(&job.connection.users_url)
        .bind(&job.connection.token_fingerprint)
        .bind(queued_seq + to_i64(settled as u64))
        .bind(job.approval.as_ref().map(|a| &a.by))
        .bind(job.approval.as_ref().map(|a| stamp(a.at)))
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
            .bind(JobState::Queued)
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
            .bind(ItemState::Pending)
            .execute(&mut *tx)
            .await?;
            if let PlannedItem::Settled(result) = item {
                finish_item(&mut tx, &job.id, result, at).await?;
                seq += 1;
                append_result_event(&mut tx, &job.id, seq, at, result).await?;
            }
        }
        for entry in &job.audit {
            super::audit::on_sqlite::append_in(
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
        let at = self.clock.now();
        let started = (state == JobState::Running).then(|| stamp(at));
        let finished = state.has_ended().then(|| stamp(at));
        let mut tx = self.writer.begin().await?;
        let seq: Option<i64> = sqlx::query_scalar(
            "UPDATE jobs SET state = ?, reason = ?, last_seq = last_seq + 1, \
             started_at = COALESCE(started_at, ?), finished_at = COALESCE(?, finished_at) \
             WHERE id = ? AND state NOT IN (?, ?, ?) RETURNING last_seq",
        )
        .bind(state)
        .bind(&reason)
        .bind(started)
        .bind(finished)
        .bind(job_id)
        .bind(JobState::Finished)
        .bind(JobState::Stopped)
        .bind(JobState::Failed)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(seq) = seq else {
            drop(tx);
            let current = self.current_state(job_id).await?;
            return Err(StorageError::JobEnded {
                job_id: job_id.clone(),
                state: current,
            });
        };
        sqlx::query(
            "INSERT INTO job_events (job_id, seq, at, state_change, reason) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(job_id)
        .bind(seq)
        .bind(stamp(at))
        .bind(state)
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

    async fn job(&self, team_id: TeamId, job_id: &JobId) -> Result<Option<JobRecord>> {
        let rows: Vec<JobRow> = sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE team_id = ? AND id = ?"
        ))
        .bind(team_id)
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(self.job_records(rows).await?.pop())
    }

    async fn list_jobs(&self, team_id: TeamId, limit: u32) -> Result<Vec<JobRecord>> {
        let rows: Vec<JobRow> = sqlx::query_as(&format!(
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
        let rows: Vec<JobRow> = sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE state IN (?, ?, ?) \
             ORDER BY created_at, id"
        ))
        .bind(JobState::Queued)
        .bind(JobState::Running)
        .bind(JobState::Cancelling)
        .fetch_all(&self.pool)
        .await?;
        self.job_records(rows).await
    }

    async fn job_targets(&self, job_id: &JobId) -> Result<Vec<RunTarget>> {
        super::portable::on_sqlite::job_targets(&self.pool, job_id).await
    }

    async fn mark_sending(&self, job_id: &JobId, account_id: &str) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE job_items SET state = ? WHERE job_id = ? AND account_id = ? \
             AND state IN (?, ?) AND EXISTS (SELECT 1 FROM jobs WHERE id = ? AND state = ?)",
        )
        .bind(ItemState::Sending)
        .bind(job_id)
        .bind(account_id)
        .bind(ItemState::Pending)
        .bind(ItemState::Sending)
        .bind(job_id)
        .bind(JobState::Running)
        .execute(&self.writer)
        .await?;
        if updated.rows_affected() == 1 {
            return Ok(());
        }
        let state = self.current_state(job_id).await?;
        if state != JobState::Running {
            return Err(StorageError::JobNotRunning {
                job_id: job_id.clone(),
                state,
            });
        }
        Err(self.item_refusal(job_id, account_id).await)
    }

    async fn record_result(&self, job_id: &JobId, result: &ItemResult) -> Result<JobEvent> {
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

    async fn record_not_attempted(&self, job_id: &JobId, message: &str) -> Result<Vec<JobEvent>> {
        let at = self.clock.now();
        let mut tx = self.writer.begin().await?;
        // Take the lock first (see next_seq), then read what is still pending.
        let first = next_seq(&mut tx, job_id).await?;
        let pending: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT account_id, email FROM job_items WHERE job_id = ? AND state = ? \
             ORDER BY position",
        )
        .bind(job_id)
        .bind(ItemState::Pending)
        .fetch_all(&mut *tx)
        .await?;
        if pending.is_empty() {
            // Nothing to log: leave the sequence where it was.
            return Ok(Vec::new());
        }
        let mut events = Vec::with_capacity(pending.len());
        let count = pending.len();
        for (offset, (account_id, email)) in pending.into_iter().enumerate() {
            let result = ItemResult {
                account_id,
                email,
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
            .bind(first + to_i64(count as u64) - 1)
            .bind(job_id)
            .execute(&mut *tx)
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
        // One process: a lease this process is not driving belongs to nobody alive (an
        // earlier run of this console that stopped), so it is taken at once, whatever its
        // holder and expiry. The fence still goes up, as on PostgreSQL.
        let driving =
            serde_json::to_string(&driving.iter().map(|id| id.as_str()).collect::<Vec<_>>())?;
        let until = self.clock.now() + chrono::Duration::milliseconds(lease_ms(lease));
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO job_leases (job_id, holder, fence, expires_at) \
             SELECT id, '', 0, '' FROM jobs \
             WHERE (state IN ($1, $2, $3) OR (state = $5 AND $4 IS NOT NULL)) \
             AND ($4 IS NULL OR id = $4) ON CONFLICT (job_id) DO NOTHING",
        )
        .bind(JobState::Queued)
        .bind(JobState::Running)
        .bind(JobState::Cancelling)
        .bind(only)
        .bind(JobState::Paused)
        .execute(&mut *tx)
        .await?;
        let claimed: Vec<(JobId, i64)> = sqlx::query_as(
            "UPDATE job_leases SET holder = $5, fence = fence + 1, expires_at = $6 \
             WHERE job_id IN (SELECT id FROM jobs \
             WHERE (state IN ($1, $2, $3) OR (state = $8 AND $4 IS NOT NULL)) \
             AND ($4 IS NULL OR id = $4)) \
             AND job_id NOT IN (SELECT value FROM json_each($7)) RETURNING job_id, fence",
        )
        .bind(JobState::Queued)
        .bind(JobState::Running)
        .bind(JobState::Cancelling)
        .bind(only)
        .bind(holder)
        .bind(stamp(until))
        .bind(&driving)
        .bind(JobState::Paused)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut claims = Vec::with_capacity(claimed.len());
        for (job_id, fence) in claimed {
            let rows: Vec<JobRow> =
                sqlx::query_as(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"))
                    .bind(&job_id)
                    .fetch_all(&self.pool)
                    .await?;
            if let Some(job) = self.job_records(rows).await?.pop() {
                claims.push((job, JobLease { job_id, fence }));
            }
        }
        claims.sort_by(|(a, _), (b, _)| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(claims)
    }

    async fn renew_lease(&self, lease: &JobLease, duration: Duration) -> Result<bool> {
        let until = self.clock.now() + chrono::Duration::milliseconds(lease_ms(duration));
        let renewed =
            sqlx::query("UPDATE job_leases SET expires_at = ? WHERE job_id = ? AND fence = ?")
                .bind(stamp(until))
                .bind(&lease.job_id)
                .bind(lease.fence)
                .execute(&self.writer)
                .await?;
        Ok(renewed.rows_affected() == 1)
    }

    async fn release_lease(&self, lease: &JobLease) -> Result<()> {
        sqlx::query("UPDATE job_leases SET expires_at = '' WHERE job_id = ? AND fence = ?")
            .bind(&lease.job_id)
            .bind(lease.fence)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn release_leases(&self, holder: &str) -> Result<u64> {
        let released = sqlx::query(
            "UPDATE job_leases SET expires_at = '' WHERE holder = ? AND expires_at <> ''",
        )
        .bind(holder)
        .execute(&self.writer)
        .await?;
        Ok(released.rows_affected())
    }

    // One process, one writer connection: the fence is checked just before the write (no
    // other process can claim between the two), then the plain write runs.
    async fn mark_sending_fenced(&self, lease: &JobLease, account_id: &str) -> Result<()> {
        self.hold_lease(lease).await?;
        self.mark_sending(&lease.job_id, account_id).await
    }

    async fn record_result_fenced(
        &self,
        lease: &JobLease,
        result: &ItemResult,
    ) -> Result<JobEvent> {
        self.hold_lease(lease).await?;
        self.record_result(&lease.job_id, result).await
    }

    async fn record_not_attempted_fenced(
        &self,
        lease: &JobLease,
        message: &str,
    ) -> Result<Vec<JobEvent>> {
        self.hold_lease(lease).await?;
        self.record_not_attempted(&lease.job_id, message).await
    }

    async fn set_job_state_fenced(
        &self,
        lease: &JobLease,
        state: JobState,
        reason: Option<String>,
    ) -> Result<JobEvent> {
        self.hold_lease(lease).await?;
        self.set_job_state(&lease.job_id, state, reason).await
    }

    async fn events_since(
        &self,
        team_id: TeamId,
        job_id: &JobId,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<JobEvent>> {
        super::portable::on_sqlite::events_since(&self.pool, team_id, job_id, after_seq, limit)
            .await
    }

    async fn latest_results(
        &self,
        team_id: TeamId,
        job_id: &JobId,
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
        let rows: Vec<JobEventRow> = sqlx::query_as(
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
        let events = rows
            .into_iter()
            .map(JobEvent::try_from)
            .collect::<Result<Vec<_>>>()?;
        Ok((events, last_seq))
    }

    async fn job_results(&self, team_id: TeamId, job_id: &JobId) -> Result<Vec<ItemResult>> {
        super::portable::on_sqlite::job_results(&self.pool, team_id, job_id).await
    }
}
