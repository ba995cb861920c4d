//! The server's side of the console contract: implements `app::backend::ConsoleBackend` on top
//! of storage, the engine and the clock. Detail goes to the log; the admin sees plain words.

use crate::engine::Clock;
use crate::storage::{Storage, DEFAULT_TEAM};
use app::backend::{ConsoleBackend, ConsoleError, StorageStatus};
use async_trait::async_trait;
use std::sync::Arc;

pub struct Console {
    pub storage: Arc<dyn Storage>,
    pub clock: Arc<dyn Clock>,
}

#[async_trait]
impl ConsoleBackend for Console {
    async fn storage_status(&self) -> Result<StorageStatus, ConsoleError> {
        let health = self.storage.health(DEFAULT_TEAM).await.map_err(|e| {
            tracing::error!(error = %e, "storage check failed");
            ConsoleError::new("The console's database is not answering. Check the server log.")
        })?;
        Ok(StorageStatus {
            database: health.database.to_string(),
            migrations: health.migrations,
            jobs: health.jobs,
            checked_at: self
                .clock
                .now()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
    }
}
