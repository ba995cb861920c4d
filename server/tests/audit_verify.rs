//! `offboard audit verify`, the real binary, on the database a real `offboard serve` wrote
//! while an admin connected, previewed and ran a deletion against the project's Stack-shaped
//! fault server (a FAKE Stack site): intact first (exit 0, "N entries, chain intact"), then broken after one row
//! is edited with plain SQL, as someone holding the database file would (exit 1, which entry
//! and why). Also the trail's CSV download from the running console.

mod support;

use serde_json::json;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::console_process::ConsoleProcess;
use support::fault_server::{FaultServer, TOKEN};

/// Runs `offboard audit verify` with `args`, the environment cleared of the console's settings.
fn verify(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_offboard"))
        .args(["audit", "verify"])
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("OFFBOARD_DATA_DIR")
        .env_remove("OFFBOARD_AUDIT_KEY")
        .output()
        .expect("run offboard audit verify")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A connection, a preview and a finished run of three users, through the server functions.
async fn one_finished_run(console: &ConsoleProcess, site: &FaultServer) -> String {
    let diagnosis = console
        .save_connection(&site.base, "", "admin@acme.example")
        .await;
    assert_eq!(diagnosis["ok"], serde_json::json!(true), "{diagnosis}");
    let preview = console
        .preview_text(
            "Email\nuser20@example.com\nuser21@example.com\nuser22@example.com\n",
            "delete",
        )
        .await;
    let started = console
        .call(
            "start_job",
            &[
                ("preview_id", preview["id"].as_str().unwrap()),
                ("typed", preview["phrase"].as_str().unwrap()),
            ],
        )
        .await
        .expect("start");
    let job_id = started["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = console
            .call("job", &[("job_id", &job_id)])
            .await
            .expect("job");
        if job["state"] == json!("finished") {
            break;
        }
        assert!(Instant::now() < deadline, "timed out; job is {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The run's end is recorded just after its state: wait for the entry.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = console
            .call(
                "audit_page",
                &[
                    ("action", "run_ended"),
                    ("from", ""),
                    ("to", ""),
                    ("before", "0"),
                ],
            )
            .await
            .expect("audit page");
        if page["entries"].as_array().is_some_and(|e| !e.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "no run_ended entry: {page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    job_id
}

async fn run_sql(db: &Path, statements: &[&str]) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let url = format!("sqlite://{}", db.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await?;
    for statement in statements {
        sqlx::query(statement).execute(&mut conn).await?;
    }
    conn.close().await
}

#[tokio::test]
async fn verify_passes_on_a_real_trail_then_names_the_edited_entry() {
    let site = FaultServer::start(&["--users", "30"]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut console = ConsoleProcess::start(&data).await;
    let job_id = one_finished_run(&console, &site).await;

    // The CSV the Audit page offers, from the running console.
    let reply = console
        .http
        .get(console.url("/downloads/audit.csv"))
        .send()
        .await
        .expect("download");
    assert_eq!(reply.status(), 200);
    let csv = reply.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    // Newest first: the run's end, its confirmation, the preview, the connection, and the
    // first owner joining the built-in team through the setup link.
    assert_eq!(lines.len(), 1 + 5, "{csv}");
    assert!(
        lines[1].contains("\"run_ended\"") && lines[1].contains(&job_id),
        "{csv}"
    );
    assert!(lines[4].contains("\"connection_saved\""), "{csv}");
    // Named by the signed-in account, not by the email typed on Connect.
    assert!(
        lines[4].contains("\"Olive Owner <olive@offboard.test>\""),
        "{csv}"
    );
    assert!(!lines[4].contains("admin@acme.example"), "{csv}");
    assert!(lines[5].contains("\"member_added\""), "{csv}");
    assert!(!csv.contains(TOKEN), "the token is in the CSV: {csv}");
    console.kill();

    let data_arg = data.to_str().unwrap();
    let intact = verify(&["--data-dir", data_arg]);
    let out = text(&intact.stdout);
    assert_eq!(
        intact.status.code(),
        Some(0),
        "{out}{}",
        text(&intact.stderr)
    );
    assert!(out.starts_with("5 entries, chain intact\n"), "{out}");
    assert!(out.contains("audit head: team 1 entry 5 hash "), "{out}");

    // The same through --database-url (the audit key still from the data folder).
    let db = data.join("offboard.db");
    let by_url = verify(&[
        "--data-dir",
        data_arg,
        "--database-url",
        &format!("sqlite://{}", db.display()),
    ]);
    assert_eq!(by_url.status.code(), Some(0), "{}", text(&by_url.stderr));

    // Offboard's own triggers refuse an edit; whoever drops them can edit, and is caught.
    let refused = run_sql(
        &db,
        &["UPDATE audit_entries SET actor = 'someone else' WHERE seq = 2"],
    )
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");
    run_sql(
        &db,
        &[
            "DROP TRIGGER audit_entries_never_change",
            "UPDATE audit_entries SET actor = 'someone else' WHERE team_id = 1 AND seq = 2",
        ],
    )
    .await
    .expect("tamper");
    let broken = verify(&["--data-dir", data_arg]);
    let out = text(&broken.stdout);
    assert_eq!(
        broken.status.code(),
        Some(1),
        "{out}{}",
        text(&broken.stderr)
    );
    assert!(
        out.contains("The audit trail is broken: entry 2 of team 1 was changed"),
        "{out}"
    );
    assert!(!out.contains("chain intact"), "{out}");
}

#[tokio::test]
async fn verify_explains_itself_and_refuses_a_missing_database() {
    let help = Command::new(env!("CARGO_BIN_EXE_offboard"))
        .args(["audit", "verify", "--help"])
        .output()
        .expect("help");
    let out = text(&help.stdout);
    assert_eq!(help.status.code(), Some(0));
    for words in [
        "--data-dir",
        "--database-url",
        "--audit-key",
        "--expect-heads",
        "audit head: team T entry S hash H",
        "chain intact",
        "Exit status",
    ] {
        assert!(out.contains(words), "{words} missing from:\n{out}");
    }

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let refused = verify(&["--data-dir", missing.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("there is no console database"));
    // Nothing was created on the way.
    assert!(!missing.exists());
}
