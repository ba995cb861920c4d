//! The statements both databases run word for word, written once: reads by key, plain
//! inserts and updates. `$n` placeholders work on SQLite and PostgreSQL alike, and the rows
//! read back through `rows.rs`. What differs (how writes queue, batching, locking) stays in
//! sqlite.rs and postgres.rs.

use super::rows::{
    stamp, ConnectionRow, ItemResultRow, JobEventRow, PreviewRecordRow, PreviewSourceRow, TargetRow,
};
use super::*;
use crate::engine::ItemState;

const ITEM_RESULT_COLUMNS: &str =
    "account_id, email, outcome, message, attempts, elapsed_ms, demoted";

/// The shared statements as functions on one driver's pool, in module `$module`.
macro_rules! portable_queries {
    ($module:ident, $db:ty) => {
        pub(super) mod $module {
            use super::*;

            type Pool = sqlx::Pool<$db>;

            pub async fn save_connection(pool: &Pool, team_id: TeamId, record: &ConnectionRecord) -> Result<()> {
                    sqlx::query(
                        "INSERT INTO connections (team_id, site_url, scim_base_url, token_ciphertext, \
                         token_hint, operator_email, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (team_id) DO UPDATE SET site_url = excluded.site_url, \
                         scim_base_url = excluded.scim_base_url, token_ciphertext = excluded.token_ciphertext, \
                         token_hint = excluded.token_hint, operator_email = excluded.operator_email, \
                         updated_at = excluded.updated_at",
                    )
                    .bind(team_id)
                    .bind(&record.site_url)
                    .bind(&record.scim_base_url)
                    .bind(record.token_ciphertext.as_ref().map(|t| t.expose()))
                    .bind(&record.token_hint)
                    .bind(&record.operator_email)
                    .bind(stamp(record.updated_at))
                    .execute(pool)
                    .await?;
                    Ok(())
                }

            pub async fn connection(pool: &Pool, team_id: TeamId) -> Result<Option<ConnectionRecord>> {
                    let row: Option<ConnectionRow> = sqlx::query_as(
                        "SELECT site_url, scim_base_url, token_ciphertext, token_hint, operator_email, \
                         updated_at FROM connections WHERE team_id = $1",
                    )
                    .bind(team_id)
                    .fetch_optional(pool)
                    .await?;
                    row.map(ConnectionRecord::try_from).transpose()
                }

            pub async fn forget_token(pool: &Pool, team_id: TeamId, now: DateTime<Utc>) -> Result<()> {
                    sqlx::query(
                        "UPDATE connections SET token_ciphertext = NULL, token_hint = '', updated_at = $1 \
                         WHERE team_id = $2",
                    )
                    .bind(stamp(now))
                    .bind(team_id)
                    .execute(pool)
                    .await?;
                    Ok(())
                }

            pub async fn saved_tokens(pool: &Pool) -> Result<Vec<SavedToken>> {
                    let rows: Vec<(TeamId, String)> = sqlx::query_as(
                        "SELECT team_id, token_ciphertext FROM connections \
                         WHERE token_ciphertext IS NOT NULL ORDER BY team_id",
                    )
                    .fetch_all(pool)
                    .await?;
                    Ok(rows
                        .into_iter()
                        .map(|(team_id, ciphertext)| SavedToken {
                            team_id,
                            ciphertext: Hidden::new(ciphertext),
                        })
                        .collect())
                }

            pub async fn save_preview_source(pool: &Pool, team_id: TeamId, source: &PreviewSourceRecord) -> Result<()> {
                    sqlx::query(
                        "INSERT INTO preview_sources (id, team_id, created_at, users_url, token_fingerprint, \
                         input_json, listing_json) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&source.id)
                    .bind(team_id)
                    .bind(stamp(source.created_at))
                    .bind(&source.users_url)
                    .bind(&source.token_fingerprint)
                    .bind(&source.input_json)
                    .bind(&source.listing_json)
                    .execute(pool)
                    .await?;
                    Ok(())
                }

            pub async fn preview_source(pool: &Pool, team_id: TeamId, source_id: &str) -> Result<Option<PreviewSourceRecord>> {
                    let row: Option<PreviewSourceRow> = sqlx::query_as(
                        "SELECT id, created_at, users_url, token_fingerprint, input_json, listing_json \
                         FROM preview_sources WHERE team_id = $1 AND id = $2",
                    )
                    .bind(team_id)
                    .bind(source_id)
                    .fetch_optional(pool)
                    .await?;
                    row.map(PreviewSourceRecord::try_from).transpose()
                }

            pub async fn preview(pool: &Pool, team_id: TeamId, preview_id: &PreviewId) -> Result<Option<PreviewRecord>> {
                    let row: Option<PreviewRecordRow> = sqlx::query_as(
                        "SELECT id, created_at, action, phrase, source_id, summary_json, total_rows, \
                         claimed_at IS NOT NULL AS claimed, replaced_by FROM previews \
                         WHERE team_id = $1 AND id = $2",
                    )
                    .bind(team_id)
                    .bind(preview_id)
                    .fetch_optional(pool)
                    .await?;
                    row.map(PreviewRecord::try_from).transpose()
                }

            pub async fn all_preview_rows(pool: &Pool, team_id: TeamId, preview_id: &PreviewId) -> Result<Vec<PreviewRow>> {
                    use futures::TryStreamExt;
                    // Each row is parsed as it arrives: collecting the JSON texts first would hold a
                    // large preview twice (texts and rows) when a run starts.
                    let mut texts = sqlx::query_scalar::<_, String>(
                        "SELECT r.row_json FROM preview_rows r JOIN previews p ON p.id = r.preview_id \
                         WHERE p.team_id = $1 AND r.preview_id = $2 ORDER BY r.position",
                    )
                    .bind(team_id)
                    .bind(preview_id)
                    .fetch(pool);
                    let mut rows = Vec::new();
                    while let Some(json) = texts.try_next().await? {
                        rows.push(serde_json::from_str(&json)?);
                    }
                    Ok(rows)
                }

            pub async fn expire_previews(pool: &Pool, before: DateTime<Utc>) -> Result<Expired> {
                    let before = stamp(before);
                    let mut tx = pool.begin().await?;
                    // Rows go with their preview (ON DELETE CASCADE).
                    let previews =
                        sqlx::query("DELETE FROM previews WHERE claimed_at IS NULL AND created_at < $1")
                            .bind(&before)
                            .execute(&mut *tx)
                            .await?;
                    let sources = sqlx::query(
                        "DELETE FROM preview_sources WHERE created_at < $1 AND id NOT IN \
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

            pub async fn claim_preview(pool: &Pool, team_id: TeamId, preview_id: &PreviewId, now: DateTime<Utc>) -> Result<bool> {
                    let claimed = sqlx::query(
                        "UPDATE previews SET claimed_at = $1 WHERE team_id = $2 AND id = $3 \
                         AND claimed_at IS NULL",
                    )
                    .bind(stamp(now))
                    .bind(team_id)
                    .bind(preview_id)
                    .execute(pool)
                    .await?;
                    Ok(claimed.rows_affected() == 1)
                }

            pub async fn release_preview(pool: &Pool, team_id: TeamId, preview_id: &PreviewId) -> Result<()> {
                    sqlx::query(
                        "UPDATE previews SET claimed_at = NULL WHERE team_id = $1 AND id = $2 \
                         AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.preview_id = previews.id)",
                    )
                    .bind(team_id)
                    .bind(preview_id)
                    .execute(pool)
                    .await?;
                    Ok(())
                }

            pub async fn usage_since(pool: &Pool, team_id: TeamId, what: &str, since: DateTime<Utc>) -> Result<(usize, Option<DateTime<Utc>>)> {
                    let (count, oldest): (i64, Option<String>) = sqlx::query_as(
                        "SELECT count(*), min(at) FROM team_usage WHERE team_id = $1 AND what = $2 \
                         AND at > $3",
                    )
                    .bind(team_id)
                    .bind(what)
                    .bind(stamp(since))
                    .fetch_one(pool)
                    .await?;
                    let oldest = oldest.as_deref().map(super::super::rows::parse_stamp).transpose()?;
                    Ok((usize::try_from(count).unwrap_or(usize::MAX), oldest))
                }

            pub async fn record_usage(pool: &Pool, team_id: TeamId, what: &str, at: DateTime<Utc>, forget_before: DateTime<Utc>) -> Result<()> {
                    let mut tx = pool.begin().await?;
                    sqlx::query("DELETE FROM team_usage WHERE team_id = $1 AND at <= $2")
                        .bind(team_id)
                        .bind(stamp(forget_before))
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("INSERT INTO team_usage (team_id, what, at) VALUES ($1, $2, $3)")
                        .bind(team_id)
                        .bind(what)
                        .bind(stamp(at))
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                }

            pub async fn save_listing(pool: &Pool, job_id: &JobId, users_json: &[u8]) -> Result<()> {
                    sqlx::query("INSERT INTO job_listings (job_id, users_json) VALUES ($1, $2)")
                        .bind(job_id)
                        .bind(users_json)
                        .execute(pool)
                        .await?;
                    Ok(())
                }

            pub async fn listing(pool: &Pool, team_id: TeamId, job_id: &JobId) -> Result<Option<Vec<u8>>> {
                    Ok(sqlx::query_scalar(
                        "SELECT l.users_json FROM job_listings l JOIN jobs j ON j.id = l.job_id \
                         WHERE l.job_id = $1 AND j.team_id = $2",
                    )
                    .bind(job_id)
                    .bind(team_id)
                    .fetch_optional(pool)
                    .await?)
                }

            /// The site's runs not ended yet (queued, running, paused or cancelling), all teams
            /// together: a paused run will go on, so it keeps its place.
            pub async fn runs_on_site<'c, E>(executor: E, site_url: &str) -> Result<usize>
            where
                E: sqlx::Executor<'c, Database = $db>,
            {
                    let running: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM jobs WHERE site_url = $1 AND state IN ($2, $3, $4, $5)",
                    )
                    .bind(site_url)
                    .bind(JobState::Queued)
                    .bind(JobState::Running)
                    .bind(JobState::Paused)
                    .bind(JobState::Cancelling)
                    .fetch_one(executor)
                    .await?;
                    Ok(usize::try_from(running).unwrap_or(usize::MAX))
                }

            /// Refuses `job` when its site has `job.runs_per_site` unfinished runs already. Run
            /// inside the transaction that writes the job, after whatever makes that
            /// transaction the only one writing a job for this site.
            pub async fn site_has_room(conn: &mut <$db as sqlx::Database>::Connection, job: &NewJob) -> Result<()> {
                    let running = runs_on_site(&mut *conn, &job.site_url).await?;
                    if running >= job.runs_per_site.max(1) {
                        return Err(StorageError::SiteBusy { site_url: job.site_url.clone(), running });
                    }
                    Ok(())
                }

            pub async fn job_targets(pool: &Pool, job_id: &JobId) -> Result<Vec<RunTarget>> {
                    let rows: Vec<TargetRow> = sqlx::query_as(
                        "SELECT account_id, email, state FROM job_items WHERE job_id = $1 AND state <> $2 \
                         ORDER BY position",
                    )
                    .bind(job_id)
                    .bind(ItemState::Done)
                    .fetch_all(pool)
                    .await?;
                    Ok(rows.into_iter().map(RunTarget::from).collect())
                }

            pub async fn events_since(pool: &Pool, team_id: TeamId, job_id: &JobId, after_seq: i64, limit: u32) -> Result<Vec<JobEvent>> {
                    let rows: Vec<JobEventRow> = sqlx::query_as(
                        "SELECT e.seq, e.at, e.result_json, e.state_change, e.reason \
                         FROM job_events e JOIN jobs j ON j.id = e.job_id \
                         WHERE j.team_id = $1 AND e.job_id = $2 AND e.seq > $3 ORDER BY e.seq LIMIT $4",
                    )
                    .bind(team_id)
                    .bind(job_id)
                    .bind(after_seq)
                    .bind(i64::from(limit))
                    .fetch_all(pool)
                    .await?;
                    rows.into_iter().map(JobEvent::try_from).collect()
                }

            pub async fn job_results(pool: &Pool, team_id: TeamId, job_id: &JobId) -> Result<Vec<ItemResult>> {
                    let rows: Vec<ItemResultRow> = sqlx::query_as(&format!(
                        "SELECT {ITEM_RESULT_COLUMNS} FROM job_items \
                         WHERE job_id = (SELECT id FROM jobs WHERE id = $1 AND team_id = $2) AND state = $3 \
                         ORDER BY position"
                    ))
                    .bind(job_id)
                    .bind(team_id)
                    .bind(ItemState::Done)
                    .fetch_all(pool)
                    .await?;
                    rows.into_iter().map(ItemResult::try_from).collect()
                }
        }
    };
}

portable_queries!(on_sqlite, sqlx::Sqlite);
portable_queries!(on_postgres, sqlx::Postgres);
