//! Where browser sessions are kept: in the console's own database, whichever driver it runs
//! on (SQLite or PostgreSQL), so every replica of a hosted console knows every session. The
//! table itself belongs to tower-sessions' stores; this picks the one for the driver.

use super::Pool;
use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{ExpiredDeletion, Result, SessionStore};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

/// The session table of the database the console opened.
#[derive(Clone, Debug)]
pub enum SessionTable {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl SessionTable {
    /// The session store on `pool`'s database, its table created if missing.
    pub(super) async fn open(pool: &Pool) -> sqlx::Result<SessionTable> {
        let table = match pool {
            Pool::Sqlite(pool) => SessionTable::Sqlite(SqliteStore::new(pool.clone())),
            Pool::Postgres(pool) => SessionTable::Postgres(PostgresStore::new(pool.clone())),
        };
        match &table {
            SessionTable::Sqlite(store) => store.migrate().await?,
            SessionTable::Postgres(store) => store.migrate().await?,
        }
        Ok(table)
    }

    fn store(&self) -> &dyn SessionStore {
        match self {
            SessionTable::Sqlite(store) => store,
            SessionTable::Postgres(store) => store,
        }
    }
}

#[async_trait]
impl SessionStore for SessionTable {
    async fn create(&self, record: &mut Record) -> Result<()> {
        self.store().create(record).await
    }

    async fn save(&self, record: &Record) -> Result<()> {
        self.store().save(record).await
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        self.store().load(id).await
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        self.store().delete(id).await
    }
}

/// Ended sessions are deleted by the console's sweep (`http::serve`), not only ignored.
#[async_trait]
impl ExpiredDeletion for SessionTable {
    async fn delete_expired(&self) -> Result<()> {
        match self {
            SessionTable::Sqlite(store) => store.delete_expired().await,
            SessionTable::Postgres(store) => store.delete_expired().await,
        }
    }
}
