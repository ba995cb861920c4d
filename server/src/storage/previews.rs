//! Previews as the admin saw them, their rows and what they were made from
//! ([`PreviewStorage`]), written once for both databases.

use super::column::{to_i64, to_u64, JsonText, Stamp};
use super::store::{Affected, Dialect, NewRows, Store};
use super::*;

/// Previews, their rows and sources. Every method sees only `team_id`'s records.
#[async_trait]
pub trait PreviewStorage: Send + Sync {
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
    /// Replaces one row of a preview with its new summary and phrase, together, only while
    /// the preview is unconfirmed, not replaced, has no request for approval, and its summary
    /// is still `expected_summary` (the one the change was computed from: every change writes
    /// a new one). False, with nothing written, otherwise.
    async fn change_preview_row(
        &self,
        team_id: TeamId,
        change: &PreviewRowChange<'_>,
    ) -> Result<bool>;
}

/// One row of a preview changed by the admin (an account chosen, or the choice undone).
pub struct PreviewRowChange<'a> {
    pub preview_id: &'a PreviewId,
    pub expected_summary: &'a str,
    pub summary: &'a str,
    pub phrase: &'a str,
    /// The row's place in the preview (0 for the first row).
    pub position: usize,
    pub row: &'a PreviewRow,
}

/// Which rows of a preview a page reads: the team's preview, of one outcome or all.
const ROWS_OF: &str = "FROM preview_rows r JOIN previews p ON p.id = r.preview_id \
                       WHERE p.team_id = $1 AND r.preview_id = $2 \
                       AND ($3 IS NULL OR r.outcome = $3)";

/// Writes a preview and its rows (the statement is the dialect's: SQLite's table keeps two
/// columns of the first schema).
async fn insert_preview<DB: Dialect>(
    conn: &mut DB::Connection,
    team_id: TeamId,
    preview: &PreviewRecord,
    rows: &[PreviewRow],
) -> Result<()> {
    sqlx::query(DB::INSERT_PREVIEW)
        .bind(&preview.id)
        .bind(team_id)
        .bind(Stamp(preview.created_at))
        .bind(preview.action)
        .bind(&preview.phrase)
        .bind(&preview.source_id)
        .bind(&preview.summary_json)
        .bind(to_i64(rows.len()))
        .execute(DB::on(&mut *conn))
        .await?;
    let preview_id = &preview.id;
    DB::insert_preview_rows(conn, &NewRows { preview_id, rows }).await
}

#[async_trait]
impl<DB: Dialect> PreviewStorage for Store<DB> {
    async fn save_preview_source(
        &self,
        team_id: TeamId,
        source: &PreviewSourceRecord,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO preview_sources (id, team_id, created_at, users_url, token_fingerprint, \
             input_json, listing_json) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&source.id)
        .bind(team_id)
        .bind(Stamp(source.created_at))
        .bind(&source.users_url)
        .bind(&source.token_fingerprint)
        .bind(&source.input_json)
        .bind(&source.listing_json)
        .execute(self.read())
        .await?;
        Ok(())
    }

    async fn preview_source(
        &self,
        team_id: TeamId,
        source_id: &str,
    ) -> Result<Option<PreviewSourceRecord>> {
        Ok(sqlx::query_as(
            "SELECT id, created_at, users_url, token_fingerprint, input_json, listing_json \
             FROM preview_sources WHERE team_id = $1 AND id = $2",
        )
        .bind(team_id)
        .bind(source_id)
        .fetch_optional(self.read())
        .await?)
    }

    async fn save_preview(
        &self,
        team_id: TeamId,
        preview: &PreviewRecord,
        rows: &[PreviewRow],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_preview::<DB>(&mut tx, team_id, preview, rows).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn preview(
        &self,
        team_id: TeamId,
        preview_id: &PreviewId,
    ) -> Result<Option<PreviewRecord>> {
        Ok(sqlx::query_as(
            "SELECT id, created_at, action, phrase, COALESCE(source_id, '') AS source_id, \
             summary_json, total_rows, claimed_at IS NOT NULL AS claimed, replaced_by \
             FROM previews WHERE team_id = $1 AND id = $2",
        )
        .bind(team_id)
        .bind(preview_id)
        .fetch_optional(self.read())
        .await?)
    }

    async fn replace_preview(
        &self,
        team_id: TeamId,
        replaced: &PreviewId,
        revision: &PreviewRecord,
        rows: &[PreviewRow],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_preview::<DB>(&mut tx, team_id, revision, rows).await?;
        let unclaimed = sqlx::query(
            "UPDATE previews SET replaced_by = $1 WHERE team_id = $2 AND id = $3 \
             AND claimed_at IS NULL",
        )
        .bind(&revision.id)
        .bind(team_id)
        .bind(replaced)
        .execute(DB::on(&mut *tx))
        .await?;
        if unclaimed.rows_affected() == 1 {
            sqlx::query("DELETE FROM preview_rows WHERE preview_id = $1")
                .bind(replaced)
                .execute(DB::on(&mut *tx))
                .await?;
        }
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
        // `$3 IS NULL` keeps one statement for "all rows" and "rows of one outcome"; the
        // (preview_id, outcome, position) index serves the filtered case.
        let matching: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) {ROWS_OF}"))
            .bind(team_id)
            .bind(preview_id)
            .bind(outcome)
            .fetch_one(self.read())
            .await?;
        let rows: Vec<JsonText<PreviewRow>> = sqlx::query_scalar(&format!(
            "SELECT r.row_json {ROWS_OF} ORDER BY r.position LIMIT $4 OFFSET $5"
        ))
        .bind(team_id)
        .bind(preview_id)
        .bind(outcome)
        .bind(to_i64(limit))
        .bind(to_i64(offset))
        .fetch_all(self.read())
        .await?;
        let rows = rows.into_iter().map(|row| row.0).collect();
        Ok((
            rows,
            usize::try_from(to_u64(matching)).unwrap_or(usize::MAX),
        ))
    }

    async fn all_preview_rows(
        &self,
        team_id: TeamId,
        preview_id: &PreviewId,
    ) -> Result<Vec<PreviewRow>> {
        use futures::TryStreamExt;
        // Each row is parsed as it arrives: collecting the JSON texts first would hold a
        // large preview twice (texts and rows) when a run starts.
        let rows = sqlx::query_scalar::<_, JsonText<PreviewRow>>(
            "SELECT r.row_json FROM preview_rows r JOIN previews p ON p.id = r.preview_id \
             WHERE p.team_id = $1 AND r.preview_id = $2 ORDER BY r.position",
        )
        .bind(team_id)
        .bind(preview_id)
        .fetch(self.read())
        .map_ok(|row| row.0)
        .try_collect()
        .await?;
        Ok(rows)
    }

    async fn expire_previews(&self, before: DateTime<Utc>) -> Result<Expired> {
        let mut tx = self.pool.begin().await?;
        // Rows go with their preview (ON DELETE CASCADE).
        let previews =
            sqlx::query("DELETE FROM previews WHERE claimed_at IS NULL AND created_at < $1")
                .bind(Stamp(before))
                .execute(DB::on(&mut *tx))
                .await?;
        let sources = sqlx::query(
            "DELETE FROM preview_sources WHERE created_at < $1 AND id NOT IN \
             (SELECT source_id FROM previews WHERE claimed_at IS NULL AND source_id IS NOT NULL)",
        )
        .bind(Stamp(before))
        .execute(DB::on(&mut *tx))
        .await?;
        tx.commit().await?;
        Ok(Expired {
            previews: previews.rows_affected(),
            sources: sources.rows_affected(),
        })
    }

    async fn claim_preview(&self, team_id: TeamId, preview_id: &PreviewId) -> Result<bool> {
        let claimed = sqlx::query(
            "UPDATE previews SET claimed_at = $1 WHERE team_id = $2 AND id = $3 \
             AND claimed_at IS NULL",
        )
        .bind(Stamp(self.clock.now()))
        .bind(team_id)
        .bind(preview_id)
        .execute(self.read())
        .await?;
        Ok(claimed.rows_affected() == 1)
    }

    async fn change_preview_row(
        &self,
        team_id: TeamId,
        change: &PreviewRowChange<'_>,
    ) -> Result<bool> {
        // The preview's own row is written first: on PostgreSQL a second change waits for its
        // lock and then finds another summary; SQLite's single writer queues them anyway.
        let mut tx = self.writer.begin().await?;
        let preview = sqlx::query(
            "UPDATE previews SET summary_json = $1, phrase = $2 WHERE team_id = $3 AND id = $4 \
             AND summary_json = $5 AND claimed_at IS NULL AND replaced_by IS NULL \
             AND NOT EXISTS (SELECT 1 FROM approvals a WHERE a.preview_id = previews.id)",
        )
        .bind(change.summary)
        .bind(change.phrase)
        .bind(team_id)
        .bind(change.preview_id)
        .bind(change.expected_summary)
        .execute(DB::on(&mut tx))
        .await?;
        if preview.rows_affected() != 1 {
            return Ok(false);
        }
        let row = sqlx::query(
            "UPDATE preview_rows SET outcome = $1, row_json = $2 \
             WHERE preview_id = $3 AND position = $4",
        )
        .bind(change.row.outcome)
        .bind(serde_json::to_string(change.row)?)
        .bind(change.preview_id)
        .bind(to_i64(change.position))
        .execute(DB::on(&mut tx))
        .await?;
        if row.rows_affected() != 1 {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn release_preview(&self, team_id: TeamId, preview_id: &PreviewId) -> Result<()> {
        sqlx::query(
            "UPDATE previews SET claimed_at = NULL WHERE team_id = $1 AND id = $2 \
             AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.preview_id = previews.id)",
        )
        .bind(team_id)
        .bind(preview_id)
        .execute(self.write())
        .await?;
        Ok(())
    }
}
