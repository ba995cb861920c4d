//! The contract between the console's server functions and the server's engine: the server
//! puts an `Arc<dyn ConsoleBackend>` in Leptos context; server functions authorise, call it,
//! and map its errors. Also the plain values that cross to the browser.

use serde::{Deserialize, Serialize};

/// What the storage check reports (shown on the overview and by /healthz).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageStatus {
    /// "SQLite" (PostgreSQL later).
    pub database: String,
    /// Number of schema migrations applied.
    pub migrations: i64,
    /// Jobs recorded for this team.
    pub jobs: i64,
    /// Server time of the check, RFC 3339.
    pub checked_at: String,
}

#[cfg(feature = "ssr")]
pub use server_side::*;

#[cfg(feature = "ssr")]
mod server_side {
    use super::*;
    use std::sync::Arc;

    /// An error the console may show: `message` is plain words for the admin; internal
    /// detail is logged by the backend, never returned.
    #[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
    #[error("{message}")]
    pub struct ConsoleError {
        pub message: String,
    }

    impl ConsoleError {
        pub fn new(message: impl Into<String>) -> ConsoleError {
            ConsoleError {
                message: message.into(),
            }
        }
    }

    /// Everything the console's server functions need from the server.
    #[async_trait::async_trait]
    pub trait ConsoleBackend: Send + Sync {
        async fn storage_status(&self) -> Result<StorageStatus, ConsoleError>;
    }

    /// The backend from Leptos context, as a server function sees it.
    pub fn backend() -> Result<Arc<dyn ConsoleBackend>, leptos::prelude::ServerFnError> {
        leptos::prelude::use_context::<Arc<dyn ConsoleBackend>>().ok_or_else(|| {
            leptos::prelude::ServerFnError::new("The console is not wired to its backend.")
        })
    }
}
