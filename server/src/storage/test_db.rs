//! What the storage tests run on: a real database of either kind, fresh for each test (a
//! SQLite file in a temporary folder, or a new database on the test binary's throwaway
//! PostgreSQL cluster), and [`on_both_databases!`], which runs each test on both.

use super::column::Stamp;
use super::*;

/// The database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Backend {
    Sqlite,
    Postgres,
}

/// The test's clock: a fixed instant, so stamps can be compared.
pub(super) struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

pub(super) struct TestDb {
    pub backend: Backend,
    /// Holds the SQLite file (None on PostgreSQL: the cluster goes at the binary's exit).
    _dir: Option<tempfile::TempDir>,
    pub url: String,
    pub db: Database,
    now: DateTime<Utc>,
}

impl TestDb {
    /// A fresh database with migrations applied, the built-in team and team 2.
    pub async fn new(backend: Backend, now: DateTime<Utc>) -> TestDb {
        let (dir, url) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}", dir.path().join("offboard.db").display());
                (Some(dir), url)
            }
            Backend::Postgres => (None, super::pg_cluster::shared().fresh_database().await),
        };
        let db = open_with_clock(&url, Arc::new(FixedClock(now)))
            .await
            .expect("open");
        let t = TestDb {
            backend,
            _dir: dir,
            url,
            db,
            now,
        };
        t.execute(&format!(
            "INSERT INTO teams (id, name, created_at) VALUES (2, 'Other team', '{}')",
            Stamp::text(now)
        ))
        .await;
        if backend == Backend::Postgres {
            // A team numbered by hand: new ones are numbered after it, as the migration does
            // for the built-in team.
            t.execute(
                "SELECT setval(pg_get_serial_sequence('teams', 'id'), (SELECT MAX(id) FROM teams))",
            )
            .await;
        }
        t
    }

    pub fn storage(&self) -> &dyn Storage {
        self.db.storage.as_ref()
    }

    /// Closes every connection and opens the same database again, as a restart would.
    pub async fn restart(&mut self) {
        self.db.pool.close().await;
        self.db = open_with_clock(&self.url, Arc::new(FixedClock(self.now)))
            .await
            .expect("reopen");
    }

    /// Runs one statement as plain SQL, as someone with the database (not Offboard) would.
    /// Another console on the same database, with pools of its own (as another replica has).
    pub async fn second_console(&self) -> Database {
        open_with_clock(&self.url, Arc::new(FixedClock(self.now)))
            .await
            .expect("second console")
    }

    /// This console's storage and a [`TestDb::second_console`]'s, and that console (to close).
    pub async fn two_consoles(&self) -> ([Arc<dyn Storage>; 2], Database) {
        let other = self.second_console().await;
        ([self.db.storage.clone(), other.storage.clone()], other)
    }

    pub async fn try_execute(&self, sql: &str) -> std::result::Result<(), sqlx::Error> {
        match &self.db.pool {
            Pool::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop),
            Pool::Postgres(pool) => sqlx::raw_sql(sql).execute(pool).await.map(drop),
        }
    }

    pub async fn execute(&self, sql: &str) {
        self.try_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The one number `sql` selects.
    pub async fn count(&self, sql: &str) -> i64 {
        let n = match &self.db.pool {
            Pool::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Pool::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        };
        n.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Makes every insert into `table` whose new row matches `condition` fail: a write that
    /// breaks half-way, to check the other half is not kept.
    pub async fn fail_inserts(&self, name: &str, table: &str, condition: &str) {
        let sql = match self.backend {
            Backend::Sqlite => format!(
                "CREATE TRIGGER {name} BEFORE INSERT ON {table} WHEN {condition} \
                 BEGIN SELECT RAISE(ABORT, '{name}'); END"
            ),
            Backend::Postgres => format!(
                "CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION '{name}'; END $$; \
                 CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW \
                 WHEN ({condition}) EXECUTE FUNCTION {name}()"
            ),
        };
        self.execute(&sql).await;
    }

    /// Drops a trigger of `table` (the audit trail's append-only guards, for tampering).
    pub async fn drop_trigger(&self, name: &str, table: &str) {
        self.execute(&match self.backend {
            Backend::Sqlite => format!("DROP TRIGGER IF EXISTS {name}"),
            Backend::Postgres => format!("DROP TRIGGER IF EXISTS {name} ON {table}"),
        })
        .await;
    }
}

/// Runs each named `async fn name(backend: Backend)` as two tests, `on_sqlite::name` and
/// `on_postgres::name`; those listed after `multi_thread:` get a 4-thread runtime.
macro_rules! on_both_databases {
    ($($name:ident),* $(,)? $(; multi_thread: $($threaded:ident),* $(,)?)?) => {
        on_both_databases!(@one on_sqlite, Sqlite, [$($name),*], [$($($threaded),*)?]);
        on_both_databases!(@one on_postgres, Postgres, [$($name),*], [$($($threaded),*)?]);
    };
    (@one $module:ident, $backend:ident, [$($name:ident),*], [$($threaded:ident),*]) => {
        mod $module {
            use super::super::test_db::Backend;
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(Backend::$backend).await
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $threaded() {
                    super::$threaded(Backend::$backend).await
                }
            )*
        }
    };
}
pub(super) use on_both_databases;
