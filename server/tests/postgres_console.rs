//! The real `offboard serve` binary on PostgreSQL (`--database-url postgres://…`), on a
//! throwaway cluster of its own (tests/support/pg_cluster.rs) and the project's Stack-shaped
//! fault server (a FAKE Stack site): readiness while migrations run, a whole run stored in PostgreSQL and found
//! again after a restart, its audit trail verified (and an edit caught), and readiness once
//! the database is gone.

mod support;

use serde_json::{json, Value};
use sqlx::Connection;
use std::time::{Duration, Instant};
use support::console_process::ConsoleProcess;
use support::fault_server::{at_most_one_delete_each, deleted, FaultServer};
use support::pg_cluster::PgCluster;

/// `GET path`'s status and JSON body; None while nothing answers.
async fn get(console: &ConsoleProcess, path: &str) -> Option<(u16, Value)> {
    let reply = console.http.get(console.url(path)).send().await.ok()?;
    let status = reply.status().as_u16();
    Some((status, reply.json().await.unwrap_or(Value::Null)))
}

/// Polls `path` until `what` holds for its answer (at most `seconds`).
async fn wait_for(
    console: &ConsoleProcess,
    path: &str,
    seconds: u64,
    what: impl Fn(u16, &Value) -> bool,
) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let answer = get(console, path).await;
        if let Some((status, body)) = &answer {
            if what(*status, body) {
                return (*status, body.clone());
            }
        }
        assert!(
            Instant::now() < deadline,
            "{path} answered {answer:?}; log:\n{}",
            console.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `offboard audit verify` on the database at `url`, with the audit key in `data`.
fn verify_audit(url: &str, data: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_offboard"))
        .args(["audit", "verify", "--database-url", url, "--data-dir"])
        .arg(data)
        .env_remove("DATABASE_URL")
        .output()
        .expect("offboard audit verify")
}

async fn job(console: &ConsoleProcess, id: &str) -> Value {
    console.call("job", &[("job_id", id)]).await.expect("job")
}

#[tokio::test]
async fn a_console_on_postgres_is_ready_only_when_migrated_and_its_database_answers() {
    let cluster = PgCluster::start().unwrap_or_else(|why| panic!("{why}"));
    let url = cluster.fresh_database().await;

    // Hold the migrations back: their first step creates `_sqlx_migrations`, and a
    // transaction creating the same table makes it wait until that transaction ends.
    let mut blocker = sqlx::PgConnection::connect(&url).await.expect("connect");
    sqlx::raw_sql("BEGIN; CREATE TABLE _sqlx_migrations (held_by_the_test INTEGER)")
        .execute(&mut blocker)
        .await
        .expect("hold the migrations");

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = ["--allow-http-loopback-sites", "--database-url", &url];
    let mut console = ConsoleProcess::launch(&data, &args);
    let (status, body) = wait_for(&console, "/readyz", 30, |_, _| true).await;
    assert_eq!(status, 503);
    // The body names the check that fails: the migrations.
    assert_eq!(
        (body["status"].clone(), body["check"].clone()),
        (json!("starting"), json!("migrations")),
        "{body}"
    );
    // Pages wait too, and say so with the same status, and when to ask again.
    for path in ["/readyz", "/"] {
        let reply = console
            .http
            .get(console.url(path))
            .send()
            .await
            .expect(path);
        assert_eq!(reply.status().as_u16(), 503, "{path}");
        assert_eq!(
            reply.headers().get("retry-after").map(|v| v.as_bytes()),
            Some(&b"1"[..]),
            "{path} while starting"
        );
    }
    // The migration is really waiting on the test's lock (PostgreSQL says so), not merely slow.
    // Asked on a connection of its own: inside the blocker's transaction the statistics would
    // stay as first read.
    let mut watcher = sqlx::PgConnection::connect(&url).await.expect("connect");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut watcher)
        .await
        .expect("pg_stat_activity");
        if waiting > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the migration never waited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        get(&console, "/readyz").await.map(|(s, _)| s),
        Some(503),
        "still migrating"
    );

    sqlx::raw_sql("ROLLBACK")
        .execute(&mut blocker)
        .await
        .expect("release the migrations");
    let (_, ready) = wait_for(&console, "/readyz", 30, |s, _| s == 200).await;
    assert_eq!(ready, json!({"status": "ready"}));
    let (status, health) = get(&console, "/healthz").await.expect("healthz");
    assert_eq!(status, 200);
    assert_eq!(health["database"]["kind"], json!("PostgreSQL"));
    // Ready: the first owner's account, from the setup link the log printed.
    console.set_up_first_owner(&args).await;

    // A whole run, stored in PostgreSQL: each user deleted once, the job found after a crash.
    let site = FaultServer::start(&["--users", "40"]);
    let diagnosis = console.save_connection(&site.base, "", "").await;
    assert_eq!(diagnosis["ok"], json!(true), "{diagnosis}");
    let mut text = String::from("Email\n");
    for i in 20..=27 {
        text.push_str(&format!("user{i}@example.com\n"));
    }
    let preview = console.preview_text(&text, "delete").await;
    assert_eq!(preview["counts"]["selected"], json!(8), "{preview}");
    let job_id = console.start_run(&preview).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while job(&console, &job_id).await["state"] != json!("finished") {
        assert!(
            Instant::now() < deadline,
            "{}",
            job(&console, &job_id).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let state = site.state().await;
    let expected: std::collections::BTreeSet<String> =
        (20..=27).map(|i| (1000 + i).to_string()).collect();
    assert_eq!(deleted(&state), expected);
    at_most_one_delete_each(&state);
    drop(console);
    let console = ConsoleProcess::start_with(&data, &["--database-url", &url]).await;
    let again = job(&console, &job_id).await;
    assert_eq!(
        (again["state"].clone(), again["done"].clone()),
        (json!("finished"), json!(8))
    );

    // The run's audit trail, kept in PostgreSQL, verifies; an edit made behind Offboard's
    // back (its append-only triggers dropped first) is caught.
    let intact = verify_audit(&url, &data);
    let out = String::from_utf8_lossy(&intact.stdout).into_owned();
    assert!(intact.status.success(), "{out}");
    assert!(out.contains("entries, chain intact"), "{out}");
    let mut owner = sqlx::PgConnection::connect(&url).await.expect("connect");
    sqlx::raw_sql(
        "DROP TRIGGER audit_entries_never_change ON audit_entries; \
         UPDATE audit_entries SET actor = 'someone else' WHERE seq = 1",
    )
    .execute(&mut owner)
    .await
    .expect("tamper");
    let broken = verify_audit(&url, &data);
    assert!(
        !broken.status.success(),
        "{}",
        String::from_utf8_lossy(&broken.stdout)
    );

    // The database goes away: not ready any more, in seconds, while the process lives on.
    cluster.stop();
    let (_, gone) = wait_for(&console, "/readyz", 30, |s, _| s == 503).await;
    assert_eq!(
        (gone["status"].clone(), gone["check"].clone()),
        (json!("database unreachable"), json!("database")),
        "{gone}"
    );
    assert_eq!(get(&console, "/healthz").await.map(|(s, _)| s), Some(503));
}

/// A PostgreSQL URL can carry a password: `--help` names the variable, never its value.
#[test]
fn help_never_shows_the_database_urls_password() {
    for command in [&["serve", "--help"][..], &["audit", "verify", "--help"][..]] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_offboard"))
            .args(command)
            .env(
                "DATABASE_URL",
                "postgres://offboard:hunter2@db.internal/offboard",
            )
            .output()
            .expect("offboard --help");
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{command:?}: {help}");
        assert!(help.contains("DATABASE_URL"), "{command:?}: {help}");
        assert!(
            !help.contains("hunter2"),
            "{command:?} shows the password: {help}"
        );
    }
}
