//! A team's saved connection to its site and what the console used against it: the
//! connection and its encrypted token ([`ConnectionStorage`]), the hourly usage
//! ([`UsageStorage`]) and the health check, written once for both databases.

use super::column::Stamp;
use super::store::{Affected, Dialect, Store};
use super::*;

/// The team's connection. Every method but the key rotation's sees only `team_id`'s.
#[async_trait]
pub trait ConnectionStorage: Send + Sync {
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
}

/// The hourly limits, shared by every replica.
#[async_trait]
pub trait UsageStorage: Send + Sync {
    /// How many `what` ("preview", "run") the team used after `since`, and when the oldest of
    /// those was.
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
}

#[async_trait]
impl<DB: Dialect> ConnectionStorage for Store<DB> {
    async fn health(&self, team_id: TeamId) -> Result<StorageHealth> {
        let (migrations, jobs): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM _sqlx_migrations WHERE success), \
             (SELECT COUNT(*) FROM jobs WHERE team_id = $1)",
        )
        .bind(team_id)
        .fetch_one(self.read())
        .await?;
        Ok(StorageHealth {
            database: DB::LABEL,
            migrations,
            jobs,
        })
    }

    async fn save_connection(&self, team_id: TeamId, record: &ConnectionRecord) -> Result<()> {
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
        .bind(record.token_ciphertext.as_ref().map(|t| t.expose().clone()))
        .bind(&record.token_hint)
        .bind(&record.operator_email)
        .bind(Stamp(record.updated_at))
        .execute(self.read())
        .await?;
        Ok(())
    }

    async fn connection(&self, team_id: TeamId) -> Result<Option<ConnectionRecord>> {
        Ok(sqlx::query_as(
            "SELECT site_url, scim_base_url, token_ciphertext, token_hint, operator_email, \
             updated_at FROM connections WHERE team_id = $1",
        )
        .bind(team_id)
        .fetch_optional(self.read())
        .await?)
    }

    async fn forget_token(&self, team_id: TeamId) -> Result<()> {
        sqlx::query(
            "UPDATE connections SET token_ciphertext = NULL, token_hint = '', updated_at = $1 \
             WHERE team_id = $2",
        )
        .bind(Stamp(self.clock.now()))
        .bind(team_id)
        .execute(self.read())
        .await?;
        Ok(())
    }

    async fn saved_tokens(&self) -> Result<Vec<SavedToken>> {
        Ok(sqlx::query_as(
            "SELECT team_id, token_ciphertext AS ciphertext FROM connections \
             WHERE token_ciphertext IS NOT NULL ORDER BY team_id",
        )
        .fetch_all(self.read())
        .await?)
    }

    async fn replace_saved_tokens(&self, replacements: &[TokenReplacement]) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        for r in replacements {
            let changed = sqlx::query(
                "UPDATE connections SET token_ciphertext = $1 \
                 WHERE team_id = $2 AND token_ciphertext = $3",
            )
            .bind(r.new_ciphertext.expose())
            .bind(r.saved.team_id)
            .bind(r.saved.ciphertext.expose())
            .execute(DB::on(&mut *tx))
            .await?
            .rows_affected();
            if changed != 1 {
                // Dropping the transaction rolls back every replacement made so far.
                return Err(StorageError::Damaged(format!(
                    "team {}'s saved token changed while it was being re-encrypted",
                    r.saved.team_id
                )));
            }
            for table in ["jobs", "preview_sources"] {
                sqlx::query(&format!(
                    "UPDATE {table} SET token_fingerprint = $1 \
                     WHERE team_id = $2 AND token_fingerprint = $3"
                ))
                .bind(&r.new_fingerprint)
                .bind(r.saved.team_id)
                .bind(&r.old_fingerprint)
                .execute(DB::on(&mut *tx))
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl<DB: Dialect> UsageStorage for Store<DB> {
    async fn usage_since(
        &self,
        team_id: TeamId,
        what: &str,
        since: DateTime<Utc>,
    ) -> Result<(usize, Option<DateTime<Utc>>)> {
        let (count, oldest): (i64, Option<Stamp>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(at) FROM team_usage WHERE team_id = $1 AND what = $2 \
             AND at > $3",
        )
        .bind(team_id)
        .bind(what)
        .bind(Stamp(since))
        .fetch_one(self.read())
        .await?;
        Ok((
            usize::try_from(count).unwrap_or(usize::MAX),
            oldest.map(|t| t.0),
        ))
    }

    async fn record_usage(
        &self,
        team_id: TeamId,
        what: &str,
        at: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM team_usage WHERE team_id = $1 AND at <= $2")
            .bind(team_id)
            .bind(Stamp(forget_before))
            .execute(DB::on(&mut *tx))
            .await?;
        sqlx::query("INSERT INTO team_usage (team_id, what, at) VALUES ($1, $2, $3)")
            .bind(team_id)
            .bind(what)
            .bind(Stamp(at))
            .execute(DB::on(&mut *tx))
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
