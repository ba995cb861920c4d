//! The keyed audit trail against the real binaries: `offboard serve` (SQLite, and PostgreSQL
//! with JSON logs) writes a trail for two teams and logs each team's head every second; then,
//! with the console stopped, the database is tampered with by plain SQL, as someone holding it
//! but not the audit key would, and `offboard audit verify` (a process) must say so:
//! (a) team 2's newest entries deleted and its head moved back: intact in the database alone,
//!     caught with `--expect-heads` and the console's own log, naming team 2;
//! (b) team 1's entries and head erased: caught, naming team 1;
//! (c) (SQLite) an entry edited and the chain recomputed with plain SHA-256: caught;
//! (d) the intact trail: exit 0, also after `offboard rotate-key` replaced the token key.
//! Also: a trail written before the key, sealed at the console's first keyed start, keeps
//! verifying; two replicas on one PostgreSQL database verify only with one shared audit key.

mod support;

use sha2::{Digest, Sha256};
use sqlx::Connection;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::console_process::{client_with, ConsoleProcess, FIRST_OWNER};

/// Where the console keeps its records, and how to reach them with plain SQL.
enum Db {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Db {
    /// `--database-url` for the console and `verify`, on PostgreSQL.
    fn url_args(&self) -> Vec<String> {
        match self {
            Db::Sqlite(_) => Vec::new(),
            Db::Postgres(url) => vec!["--database-url".into(), url.clone()],
        }
    }

    /// Runs `statements` as the database's owner would.
    async fn run(&self, statements: &[String]) {
        match self {
            Db::Sqlite(path) => {
                let url = format!("sqlite://{}", path.display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open");
                for s in statements {
                    sqlx::raw_sql(s).execute(&mut conn).await.expect(s);
                }
                conn.close().await.expect("close");
            }
            Db::Postgres(url) => {
                let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
                for s in statements {
                    sqlx::raw_sql(s).execute(&mut conn).await.expect(s);
                }
                conn.close().await.expect("close");
            }
        }
    }

    /// Drops Offboard's append-only guards (anyone with the database can).
    async fn drop_guards(&self) {
        let on = match self {
            Db::Sqlite(_) => "",
            Db::Postgres(_) => " ON audit_entries",
        };
        self.run(&[
            format!("DROP TRIGGER IF EXISTS audit_entries_never_change{on}"),
            format!("DROP TRIGGER IF EXISTS audit_entries_never_removed{on}"),
        ])
        .await;
    }
}

/// `offboard audit verify` with the console's data folder (its audit key) and `more`.
fn verify(data: &Path, db: &Db, more: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_offboard"))
        .args(["audit", "verify", "--data-dir"])
        .arg(data)
        .args(db.url_args())
        .args(more)
        .env_remove("DATABASE_URL")
        .env_remove("OFFBOARD_DATA_DIR")
        .env_remove("OFFBOARD_AUDIT_KEY")
        .output()
        .expect("run offboard audit verify")
}

/// Stdout and stderr, for assertions and their messages.
fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_exit(out: &Output, code: i32) -> String {
    let text = said(out);
    assert_eq!(out.status.code(), Some(code), "{text}");
    text
}

/// A console with two teams whose trails have three entries each, its heads logged every
/// second; stopped once its log holds both teams' newest heads. Returns the log's path.
async fn console_with_two_trails(data: &Path, db: &Db, log_format: &str) -> PathBuf {
    let mut args = vec![
        "--audit-head-log-seconds".to_string(),
        "1".to_string(),
        "--log-format".to_string(),
        log_format.to_string(),
    ];
    args.extend(db.url_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut console = ConsoleProcess::start_with(data, &args).await;
    // Team 1: the first owner joined (setup). Team 2: created. Then two sign-ins, each
    // recorded in both teams' trails.
    let made = console
        .post_form(&console.http, "/teams", &[("name", "Team B")])
        .await;
    assert!(made.status().is_redirection(), "{}", made.status());
    let (email, _, password) = FIRST_OWNER;
    for _ in 0..2 {
        let signed_in = console
            .post_form(
                &client_with(None),
                "/sign-in",
                &[("email", email), ("password", password), ("next", "/")],
            )
            .await;
        assert!(
            signed_in.status().is_redirection(),
            "{}",
            signed_in.status()
        );
    }
    for team in [1, 2] {
        let line = format!("audit head: team {team} entry 3 hash ");
        let log = console.log_once_it_says(&line).await;
        assert!(log.contains(&line), "no {line:?} in the log:\n{log}");
    }
    console.kill();
    console.log.clone()
}

/// (a), (b) and (d) on `db`; the console's log kept as the expected heads.
async fn cut_back_and_erased_trails_are_caught(data: &Path, db: &Db, log_format: &str) {
    let log = console_with_two_trails(data, db, log_format).await;
    let expect = ["--expect-heads", log.to_str().expect("utf-8 path")];

    // (d) Intact: alone and against the log.
    let out = assert_exit(&verify(data, db, &[]), 0);
    assert!(out.starts_with("6 entries, chain intact\n"), "{out}");
    assert!(out.contains("audit head: team 2 entry 3 hash "), "{out}");
    let out = assert_exit(&verify(data, db, &expect), 0);
    assert!(out.contains("recorded head(s) from"), "{out}");

    // (a) Team 2's entries 2 and 3 deleted, its head moved back to entry 1.
    db.drop_guards().await;
    db.run(&[
        "DELETE FROM audit_entries WHERE team_id = 2 AND seq > 1".to_string(),
        "UPDATE audit_heads SET last_seq = 1, last_hash = (SELECT hash FROM audit_entries \
         WHERE team_id = 2 AND seq = 1) WHERE team_id = 2"
            .to_string(),
    ])
    .await;
    // The database alone holds a shorter trail that is intact in itself…
    assert_exit(&verify(data, db, &[]), 0);
    // …which the heads the console logged earlier tell apart.
    let out = assert_exit(&verify(data, db, &expect), 1);
    assert!(
        out.contains(
            "team 2's trail ends at entry 1, but entry 3 was recorded earlier: the newest \
             entries were removed and the head moved back"
        ),
        "{out}"
    );
    assert!(!out.contains("chain intact"), "{out}");

    // (b) Team 1's whole trail erased, head and all.
    db.run(&[
        "DELETE FROM audit_entries WHERE team_id = 1".to_string(),
        "DELETE FROM audit_heads WHERE team_id = 1".to_string(),
    ])
    .await;
    for more in [&[][..], &expect[..]] {
        let out = assert_exit(&verify(data, db, more), 1);
        assert!(
            out.contains("team 1 exists but its trail has neither entries nor a head"),
            "{out}"
        );
    }
    // Even with an empty head put back, the logged heads say the trail was longer.
    db.run(&[format!(
        "INSERT INTO audit_heads (team_id, last_seq, last_hash) VALUES (1, 0, '{}')",
        "0".repeat(64)
    )])
    .await;
    let out = assert_exit(&verify(data, db, &expect), 1);
    assert!(out.contains("team 1's trail ends at entry 0"), "{out}");
}

#[tokio::test]
async fn on_sqlite_cut_back_and_erased_trails_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = Db::Sqlite(data.join("offboard.db"));
    cut_back_and_erased_trails_are_caught(&data, &db, "text").await;
}

#[tokio::test]
async fn on_postgres_cut_back_and_erased_trails_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = Db::Postgres(support::pg_cluster::shared().fresh_database().await);
    // JSON log lines this time: the expected heads are read from those too.
    cut_back_and_erased_trails_are_caught(&data, &db, "json").await;
}

/// One stored entry, as text.
#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    at: String,
    actor: String,
    action: String,
    target: String,
    details: String,
}

/// The chain's old seal: SHA-256 of the `offboard-audit-v1` form (anyone can compute it).
fn sha256_seal(team: i64, row: &Row, prev_hash: &str) -> String {
    let form = serde_json::json!([
        "offboard-audit-v1",
        team.to_string(),
        row.seq.to_string(),
        row.at,
        row.actor,
        row.action,
        row.target,
        row.details,
        prev_hash
    ])
    .to_string();
    Sha256::digest(form.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Edits entry `edited` of team 1 and recomputes every seal from entry `from` on, and the
/// head, with plain SHA-256, marking them as old entries: all one can do without the key.
async fn rewrite_with_sha256(db_path: &Path, edited: i64, from: i64) {
    let url = format!("sqlite://{}", db_path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open");
    let mut rows: Vec<Row> = sqlx::query_as(
        "SELECT seq, at, actor, action, target, details FROM audit_entries \
         WHERE team_id = 1 ORDER BY seq",
    )
    .fetch_all(&mut conn)
    .await
    .expect("rows");
    let hashes: Vec<String> =
        sqlx::query_scalar("SELECT hash FROM audit_entries WHERE team_id = 1 ORDER BY seq")
            .fetch_all(&mut conn)
            .await
            .expect("hashes");
    rows[(edited - 1) as usize].actor = "someone else".into();
    let mut prev = if from == 1 {
        "0".repeat(64)
    } else {
        hashes[(from - 2) as usize].clone()
    };
    for row in rows.iter().filter(|r| r.seq >= from) {
        let hash = sha256_seal(1, row, &prev);
        sqlx::query(
            "UPDATE audit_entries SET actor = ?, prev_hash = ?, hash = ?, chain = 1 \
             WHERE team_id = 1 AND seq = ?",
        )
        .bind(&row.actor)
        .bind(&prev)
        .bind(&hash)
        .bind(row.seq)
        .execute(&mut conn)
        .await
        .expect("rewrite");
        prev = hash;
    }
    sqlx::query("UPDATE audit_heads SET last_hash = ? WHERE team_id = 1")
        .bind(&prev)
        .execute(&mut conn)
        .await
        .expect("head");
    conn.close().await.expect("close");
}

#[tokio::test]
async fn a_chain_recomputed_without_the_key_is_caught_and_rotate_key_leaves_the_trail_verifiable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db_path = data.join("offboard.db");
    let db = Db::Sqlite(db_path.clone());
    console_with_two_trails(&data, &db, "text").await;
    assert!(data.join("audit.key").exists());

    // (d) `rotate-key` replaces the token key, not the audit key: still intact.
    let rotated = Command::new(env!("CARGO_BIN_EXE_offboard"))
        .args(["rotate-key", "--data-dir"])
        .arg(&data)
        .env_remove("OFFBOARD_SECRET_KEY")
        .env_remove("DATABASE_URL")
        .output()
        .expect("rotate-key");
    assert_exit(&rotated, 0);
    let out = assert_exit(&verify(&data, &db, &[]), 0);
    assert!(out.starts_with("6 entries, chain intact\n"), "{out}");

    // Without the key file, verify checks nothing and says why.
    let elsewhere = dir.path().join("elsewhere");
    let out = assert_exit(
        &verify(
            &elsewhere,
            &db,
            &["--database-url", &format!("sqlite://{}", db_path.display())],
        ),
        2,
    );
    assert!(out.contains("no audit key"), "{out}");

    // (c) Entry 2 edited, entries 2 and 3 and the head recomputed with SHA-256.
    db.drop_guards().await;
    rewrite_with_sha256(&db_path, 2, 2).await;
    let out = assert_exit(&verify(&data, &db, &[]), 1);
    assert!(
        out.contains("entry 2 of team 1 is sealed without the audit key"),
        "{out}"
    );

    // The whole trail recomputed from entry 1, as if it were written before the key.
    rewrite_with_sha256(&db_path, 2, 1).await;
    let out = assert_exit(&verify(&data, &db, &[]), 1);
    assert!(
        out.contains("entry 1 of team 1 is not signed with the audit key"),
        "{out}"
    );
}

/// Two consoles on one PostgreSQL database: with one `OFFBOARD_AUDIT_KEY` between them, the
/// trail both append to verifies; each with a key file of its own, it does not (so the key
/// must be shared, docs/deployment.md).
#[tokio::test]
async fn replicas_on_postgres_must_share_the_audit_key() {
    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    for shared in [true, false] {
        let url = support::pg_cluster::shared().fresh_database().await;
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["--database-url", url.as_str()];
        if shared {
            args.extend(["--audit-key", KEY]);
        }
        // Each signs the first owner in: A through the setup link, B with the password.
        let a = ConsoleProcess::start_with(&dir.path().join("replica-a"), &args).await;
        let b = ConsoleProcess::start_with(&dir.path().join("replica-b"), &args).await;
        drop((a, b));
        let db = Db::Postgres(url.clone());
        let out = if shared {
            verify(&dir.path().join("nowhere"), &db, &["--audit-key", KEY])
        } else {
            verify(&dir.path().join("replica-a"), &db, &[])
        };
        if shared {
            let text = assert_exit(&out, 0);
            assert!(text.starts_with("2 entries, chain intact\n"), "{text}");
        } else {
            let text = assert_exit(&out, 1);
            assert!(text.contains("entry 2 of team 1 was changed"), "{text}");
        }
    }
}

/// A database as migration 0013 finds one written before the key: every entry sealed with
/// SHA-256 (`chain` 1), each head noting its last old entry, nothing sealed with the key yet.
/// The console's first start seals the old entries; they verify, and the keyed entries after
/// them link to them.
#[tokio::test]
async fn an_old_trail_is_sealed_at_the_first_keyed_start_and_keeps_verifying() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db_path = data.join("offboard.db");
    let db = Db::Sqlite(db_path.clone());
    console_with_two_trails(&data, &db, "text").await;
    db.drop_guards().await;
    // Both trails as the old version wrote them, and the heads as the migration leaves them.
    for team in [1, 2] {
        rewrite_team_with_sha256(&db_path, team).await;
    }
    db.run(&["UPDATE audit_heads SET legacy_until = last_seq, legacy_seal = ''".to_string()])
        .await;
    // Unsealed, the old entries are held to the strict rule.
    let out = assert_exit(&verify(&data, &db, &[]), 1);
    assert!(out.contains("start it once"), "{out}");

    // The first keyed start seals them, then appends keyed entries after them.
    let console = ConsoleProcess::start(&data).await;
    let log = console.log_once_it_says("older entries are sealed").await;
    assert!(
        log.contains("older entries are sealed with the key"),
        "{log}"
    );
    drop(console);
    let out = assert_exit(&verify(&data, &db, &[]), 0);
    assert!(
        out.contains("6 of them were written before the trail was keyed"),
        "{out}"
    );
    assert!(
        !out.starts_with("6 entries"),
        "a keyed sign-in follows: {out}"
    );
}

/// Team `team`'s entries as they are, each sealed again with SHA-256 and chained from the
/// first, its head moved along (what an old version would have stored).
async fn rewrite_team_with_sha256(db_path: &Path, team: i64) {
    let url = format!("sqlite://{}", db_path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open");
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT seq, at, actor, action, target, details FROM audit_entries \
         WHERE team_id = ? ORDER BY seq",
    )
    .bind(team)
    .fetch_all(&mut conn)
    .await
    .expect("rows");
    let mut prev = "0".repeat(64);
    for row in &rows {
        let hash = sha256_seal(team, row, &prev);
        sqlx::query(
            "UPDATE audit_entries SET prev_hash = ?, hash = ?, chain = 1 \
             WHERE team_id = ? AND seq = ?",
        )
        .bind(&prev)
        .bind(&hash)
        .bind(team)
        .bind(row.seq)
        .execute(&mut conn)
        .await
        .expect("rewrite");
        prev = hash;
    }
    sqlx::query("UPDATE audit_heads SET last_hash = ?, legacy_hash = ? WHERE team_id = ?")
        .bind(&prev)
        .bind(&prev)
        .bind(team)
        .execute(&mut conn)
        .await
        .expect("head");
    conn.close().await.expect("close");
}
