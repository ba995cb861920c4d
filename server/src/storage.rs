//! Offboard's own records (teams, jobs, settings), behind the [`Storage`] trait so callers
//! do not care which database holds them. SQLite is built in; the URL scheme picks the driver,
//! so PostgreSQL can be added as a second implementation without touching callers.

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("unsupported database URL (expected sqlite://...): {0}")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

pub type Result<T> = std::result::Result<T, StorageError>;

/// What a health check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageHealth {
    pub database: &'static str,
    pub migrations: i64,
    pub jobs: i64,
}

/// The records Offboard keeps. One implementation a database kind.
#[async_trait]
pub trait Storage: Send + Sync {
    /// A real round trip: counts applied migrations and the team's jobs.
    async fn health(&self, team_id: i64) -> Result<StorageHealth>;
}

/// The team everything belongs to until accounts and teams arrive.
pub const DEFAULT_TEAM: i64 = 1;

/// An opened database: the records, plus the pool the session store shares.
pub struct Database {
    pub storage: Arc<dyn Storage>,
    pub sqlite: SqlitePool,
}

/// Opens (creating if needed) the database at `url` and applies migrations.
pub async fn open(url: &str) -> Result<Database> {
    if !(url.starts_with("sqlite:")) {
        return Err(StorageError::UnsupportedUrl(redact_url(url)));
    }
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        // WAL lets the console read while a job writes; NORMAL is durable across process
        // crashes (what resuming a job needs), only an OS crash can lose the last commit.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    Ok(Database {
        storage: Arc::new(SqliteStorage { pool: pool.clone() }),
        sqlite: pool,
    })
}

/// Database URLs can carry passwords (postgres://user:pw@host): never print them whole.
fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, _)) => format!("{scheme}://…"),
        None => "(unrecognised URL)".to_string(),
    }
}

pub struct SqliteStorage {
    pool: SqlitePool,
}

#[async_trait]
impl Storage for SqliteStorage {
    async fn health(&self, team_id: i64) -> Result<StorageHealth> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn opens_a_real_file_applies_migrations_and_reopens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested").join("offboard.db");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let url = format!("sqlite://{}", path.display());

        let db = open(&url).await.expect("open");
        let health = db.storage.health(DEFAULT_TEAM).await.expect("health");
        assert_eq!(health.database, "SQLite");
        assert!(health.migrations >= 1);
        assert_eq!(health.jobs, 0);
        assert!(path.exists(), "the SQLite file is created");
        db.sqlite.close().await;

        // Opening again must not re-run (or fail on) applied migrations.
        let again = open(&url).await.expect("reopen");
        let health2 = again.storage.health(DEFAULT_TEAM).await.expect("health");
        assert_eq!(health2.migrations, health.migrations);
    }

    #[tokio::test]
    async fn rejects_other_databases_without_leaking_credentials() {
        let err = match open("postgres://admin:hunter2@db.internal/offboard").await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("postgres is not built in yet"),
        };
        assert!(err.contains("unsupported database URL"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
