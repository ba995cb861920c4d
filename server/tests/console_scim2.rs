//! The web console (the real `offboard serve` binary, over HTTP as the browser drives it)
//! against a REAL SCIM server, PyPI `scim2-server` (RFC replies at `/v2/Users`, plain http on
//! loopback, hence `--allow-http-loopback-sites`): connect through the Advanced SCIM base URL,
//! preview a pasted list, run it, read every report of the run, and find the users really gone
//! from scim2-server. Then a second team: it can read nothing of the first team's run (404 for
//! each report, nothing of it on its Audit page or in its audit CSV). No fake anywhere here.

mod support;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::console_process::{client_with, session_cookie, ConsoleProcess};
use support::Scim2Server;

const TOKEN: &str = "console-scim2-token-5e6f7a8b9c";
const PASSWORD: &str = "a long enough password";

/// scim2-server with 12 users, `user{i}@corp.test` for i in 0..12; their ids in order of i.
async fn seeded() -> (Scim2Server, Vec<String>) {
    let server = Scim2Server::start(TOKEN);
    let ids = server
        .seed_users(12, |i| {
            json!({
                "userName": format!("user{i}"),
                "emails": [{"value": format!("user{i}@corp.test"), "primary": true}],
                "active": true,
            })
        })
        .await;
    (server, ids)
}

/// The list `finished_run` pastes: a header, a blank line, user 1 twice and an unknown address
/// beside users 1, 2 and 3.
const PASTED: &str =
    "Email\nuser1@corp.test\n\nUSER2@corp.test\nuser3@corp.test\nuser1@corp.test\nnobody@corp.test\n";

/// A console whose first owner connected to `server` (through the Advanced SCIM base URL),
/// previewed `PASTED` (users 1, 2 and 3, one unknown address) and ran the deletion to its end;
/// the run's id.
async fn finished_run(console: &ConsoleProcess, server: &Scim2Server) -> String {
    let site = format!("http://127.0.0.1:{}", server.port());
    let answer = console
        .call(
            "save_connection",
            &[
                ("site_url", site.as_str()),
                ("scim_base_url", server.base_url().as_str()),
                ("token", TOKEN),
                ("operator_email", ""),
            ],
        )
        .await
        .expect("save_connection");
    let (_view, diagnosis) = serde_json::from_value::<(Value, Value)>(answer).expect("diagnosis");
    assert_eq!(diagnosis["ok"], json!(true), "{diagnosis}");
    assert_eq!(diagnosis["user_count"], json!(12), "{diagnosis}");

    let preview = console.preview_text(PASTED, "delete").await;
    assert_eq!(preview["counts"]["selected"], json!(3), "{preview}");
    assert_eq!(preview["counts"]["duplicate"], json!(1), "{preview}");
    assert_eq!(preview["counts"]["not_found"], json!(1), "{preview}");
    assert_eq!(preview["phrase"], json!("DELETE 3 USERS"), "{preview}");
    let job_id = console.start_run(&preview).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = console
            .call("job", &[("job_id", job_id.as_str())])
            .await
            .expect("job");
        if job["state"] == json!("finished") {
            assert_eq!(job["done"], json!(3), "{job}");
            break;
        }
        assert!(
            job["state"] == json!("running") || job["state"] == json!("queued"),
            "{job}"
        );
        assert!(Instant::now() < deadline, "the run did not finish: {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    job_id
}

/// `GET path` as `client`: status and body.
async fn get(console: &ConsoleProcess, client: &Client, path: &str) -> (StatusCode, String) {
    let reply = client.get(console.url(path)).send().await.expect(path);
    let status = reply.status();
    (status, reply.text().await.unwrap_or_default())
}

#[tokio::test]
async fn the_console_deletes_on_scim2_server_and_reports_the_run() {
    let (server, ids) = seeded().await;
    let before = server.ids().await;
    assert_eq!(before.len(), 12);
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start(&dir.path().join("data")).await;
    // The database it runs on: SQLite, or PostgreSQL when the suite is run on it
    // (OFFBOARD_TEST_DATABASE=postgres, see support/console_process.rs).
    let (_, health) = get(&console, &console.http, "/healthz").await;
    let health: Value = serde_json::from_str(&health).expect("healthz");
    let expected = match std::env::var("OFFBOARD_TEST_DATABASE").as_deref() {
        Ok("postgres") => "PostgreSQL",
        _ => "SQLite",
    };
    assert_eq!(health["database"]["kind"], json!(expected), "{health}");
    let job_id = finished_run(&console, &server).await;

    // Really gone from scim2-server, and nobody else.
    let gone: BTreeSet<String> = before.difference(&server.ids().await).cloned().collect();
    let asked: BTreeSet<String> = [1, 2, 3].iter().map(|&i| ids[i].clone()).collect();
    assert_eq!(gone, asked);

    let owner = &console.http;
    let report = |file: &str| format!("/downloads/jobs/{job_id}/{file}");
    let reply = owner
        .get(console.url(&report("results.csv")))
        .send()
        .await
        .expect("results.csv");
    assert_eq!(reply.status(), StatusCode::OK);
    let saved_as = reply
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let csv = reply.text().await.expect("results.csv");
    // Named with the day and the site.
    let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(
        saved_as,
        format!(
            "attachment; filename=\"offboard-{day}-127.0.0.1-{}-results.csv\"",
            server.port()
        )
    );
    // Every line of the pasted list, in order, read back from the spreadsheet.
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(
        reader.headers().expect("header").iter().collect::<Vec<_>>(),
        [
            "Line",
            "Input",
            "Name",
            "Account ID",
            "Email",
            "Outcome",
            "Reason"
        ]
    );
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.expect("row").iter().map(str::to_string).collect())
        .collect();
    let expected = [
        ("1", "", "", "", "skipped"),
        ("2", "user1@corp.test", "user1", ids[1].as_str(), "deleted"),
        ("3", "", "", "", "skipped"),
        ("4", "USER2@corp.test", "user2", ids[2].as_str(), "deleted"),
        ("5", "user3@corp.test", "user3", ids[3].as_str(), "deleted"),
        (
            "6",
            "user1@corp.test",
            "user1",
            ids[1].as_str(),
            "duplicate",
        ),
        ("7", "nobody@corp.test", "", "", "not deleted"),
    ];
    let read_back: Vec<(&str, &str, &str, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r[0].as_str(),
                r[1].as_str(),
                r[2].as_str(),
                r[3].as_str(),
                r[5].as_str(),
            )
        })
        .collect();
    assert_eq!(read_back, expected, "{csv}");
    for (line, text) in PASTED.lines().enumerate() {
        let row = &rows[line];
        assert_eq!(row[0], (line + 1).to_string());
        if !text.is_empty() && line > 0 {
            assert_eq!(row[1], text, "line {}", line + 1);
        }
    }
    assert_eq!(rows[0][6], "the header row: the names of the columns");
    assert_eq!(rows[2][6], "a blank line");
    assert!(rows[6][6].starts_with("not found"), "{csv}");
    assert!(
        !csv.contains("elapsed") && !csv.contains("attempts"),
        "{csv}"
    );

    let (status, body) = get(&console, owner, &report("results.json")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results: Value = serde_json::from_str(&body).expect("results.json");
    let results = results.as_array().expect("a list");
    assert_eq!(results.len(), 3, "{body}");
    let reported: BTreeSet<String> = results
        .iter()
        .map(|r| {
            assert!(
                r["outcome"]
                    .as_str()
                    .is_some_and(|o| o.eq_ignore_ascii_case("deleted")),
                "{r}"
            );
            r["account_id"].as_str().expect("account_id").to_string()
        })
        .collect();
    assert_eq!(reported, asked);

    let (status, body) = get(&console, owner, &report("failures.json")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Only the unknown address is reported, in the old script's format: every run user went.
    let failures: Value = serde_json::from_str(&body).expect("failures.json");
    let failures = failures.as_array().expect("a list of failures");
    assert_eq!(failures.len(), 1, "{body}");
    assert_eq!(failures[0]["email"], json!("nobody@corp.test"), "{body}");
    assert_eq!(failures[0]["status"], json!("failed"), "{body}");

    // The listing taken before deleting: all 12.
    let (status, body) = get(&console, owner, &report("all_users.json")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for id in &before {
        assert!(body.contains(id.as_str()), "{id} not in all_users.json");
    }

    let (status, body) = get(&console, owner, &report("run.json")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let run: Value = serde_json::from_str(&body).expect("run.json");
    assert_eq!(run["id"], json!(job_id), "{run}");
    assert_eq!(run["state"], json!("finished"), "{run}");

    // No report carries the token.
    for file in [
        "results.csv",
        "results.json",
        "failures.json",
        "all_users.json",
        "run.json",
    ] {
        assert!(!get(&console, owner, &report(file)).await.1.contains(TOKEN));
    }
    assert!(
        !console.log_text().contains(TOKEN),
        "the token is in the log"
    );
}

/// Makes team B (as the console owner), invites `email` into it as an operator (the
/// invitation names the email and the role; only that email may join), and switches the
/// owner back to their first team; the new operator's signed-in client.
async fn team_b_operator(console: &ConsoleProcess, email: &str) -> Client {
    let owner = &console.http;
    let made = console
        .post_form(owner, "/teams", &[("name", "Team B")])
        .await;
    assert_eq!(made.status(), StatusCode::SEE_OTHER);
    let (status, body) = console.call_as(owner, "console_teams", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let teams: Value = serde_json::from_str(&body).expect("teams");
    let team_b = teams[0]
        .as_array()
        .expect("teams")
        .iter()
        .find(|t| t["name"] == json!("Team B"))
        .expect("team B")["id"]
        .to_string();
    let switched = console
        .post_form(owner, "/account/team", &[("team", &team_b)])
        .await;
    assert_eq!(switched.status(), StatusCode::SEE_OTHER);
    let invited = console
        .post_form(
            owner,
            "/team/invitations",
            &[("email", email), ("role", "operator")],
        )
        .await;
    assert_eq!(invited.status(), StatusCode::SEE_OTHER);
    let (status, body) = console.call_as(owner, "team_page", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let page: Value = serde_json::from_str(&body).expect("team page");
    let url = page["new_link"]["url"].as_str().expect("a new link");
    let code = url.rsplit('=').next().expect("a code").to_string();
    let joined = console
        .post_form(
            &console.anonymous(),
            "/join",
            &[
                ("code", code.as_str()),
                ("email", email),
                ("name", "Otto"),
                ("password", PASSWORD),
                ("again", PASSWORD),
            ],
        )
        .await;
    let cookie = session_cookie(&joined).unwrap_or_else(|| panic!("join refused: {joined:?}"));
    let back = console
        .post_form(owner, "/account/team", &[("team", "1")])
        .await;
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    client_with(Some(&cookie))
}

#[tokio::test]
async fn another_team_reads_nothing_of_a_run_its_reports_or_its_audit_entries() {
    let (server, _) = seeded().await;
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start(&dir.path().join("data")).await;
    let job_id = finished_run(&console, &server).await;
    let b = team_b_operator(&console, "otto@b.example").await;
    let (status, body) = console.call_as(&b, "whoami", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("Team B"), "{body}");

    // Every report of team A's run: 404 for team B, 200 for team A (the same addresses).
    for file in [
        "results.json",
        "all_users.json",
        "run.json",
        "results.csv",
        "failures.json",
    ] {
        let path = format!("/downloads/jobs/{job_id}/{file}");
        let (status, body) = get(&console, &b, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert!(!body.contains("corp.test"), "{path}: {body}");
        assert_eq!(get(&console, &console.http, &path).await.0, StatusCode::OK);
    }

    // The audit trail: team A's has the run; team B's page and CSV show nothing of it.
    let fields = [("action", ""), ("from", ""), ("to", ""), ("before", "0")];
    let (status, a_page) = console.call_as(&console.http, "audit_page", &fields).await;
    assert_eq!(status, StatusCode::OK, "{a_page}");
    assert!(a_page.contains(&job_id), "team A's own trail lacks the run");
    let (status, b_page) = console.call_as(&b, "audit_page", &fields).await;
    assert_eq!(status, StatusCode::OK, "{b_page}");
    assert!(!b_page.contains(&job_id), "{b_page}");
    assert!(!b_page.contains("corp.test"), "{b_page}");
    let (status, a_csv) = get(&console, &console.http, "/downloads/audit.csv").await;
    assert_eq!(status, StatusCode::OK);
    assert!(a_csv.contains(&job_id));
    let (status, b_csv) = get(&console, &b, "/downloads/audit.csv").await;
    assert_eq!(status, StatusCode::OK, "{b_csv}");
    assert!(!b_csv.contains(&job_id), "{b_csv}");
    assert!(!b_csv.contains("corp.test"), "{b_csv}");
    // Asking for team A's entries by their kind changes nothing.
    let (_, b_csv) = get(&console, &b, "/downloads/audit.csv?action=run_ended").await;
    assert!(!b_csv.contains(&job_id), "{b_csv}");
}

/// Runs `program` with `args`; panics with its output when it fails.
fn run_tool(program: &std::path::Path, args: &[&std::ffi::OsStr]) {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("could not run {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} failed: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Copies the data folder `from` to `to` (keys, `jobs/`…), leaving out the SQLite database
/// and its WAL files: "the rest of the folder" docs/deployment.md says to keep with a backup.
fn copy_rest_of_data_folder(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("restore folder");
    std::fs::set_permissions(to, std::fs::metadata(from).unwrap().permissions()).unwrap();
    for entry in std::fs::read_dir(from).expect("data folder") {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("offboard.db") {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_rest_of_data_folder(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).expect("copy a data file");
        }
    }
}

/// Backup and restore exactly as docs/deployment.md ("Backup and restore") says, on the
/// database the suite runs on: SQLite's `.backup` through the sqlite3 program, or `pg_dump`
/// then `pg_restore` into a fresh database; both taken while the console runs. The real binary
/// started on the restored copy (with the data folder's keys) shows the finished run, serves
/// its report, and still holds the saved connection, whose token it can decrypt and use.
#[tokio::test]
async fn a_backup_restored_as_the_deployment_guide_says_keeps_the_run_its_report_and_the_connection(
) {
    let (server, ids) = seeded().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut console = ConsoleProcess::start(&data).await;
    let job_id = finished_run(&console, &server).await;
    let source = console.database_url();

    // The backup, taken while the console runs.
    let restored = dir.path().join("restored");
    let restored_url = if let Some(file) = source.strip_prefix("sqlite://") {
        let copy = dir.path().join("offboard-backup.db");
        let mut backup = std::ffi::OsString::from(".backup ");
        backup.push(&copy);
        run_tool(
            std::path::Path::new("sqlite3"),
            &[file.as_ref(), backup.as_os_str()],
        );
        console.terminate();
        // Restored: the copy becomes the database file of a fresh data folder.
        copy_rest_of_data_folder(&data, &restored);
        std::fs::copy(&copy, restored.join("offboard.db")).expect("put the backup in place");
        None
    } else {
        let dump = dir.path().join("offboard.dump");
        let pg = |name: &str| support::pg_cluster::program(name).unwrap_or_else(|e| panic!("{e}"));
        let mut file = std::ffi::OsString::from("--file=");
        file.push(&dump);
        run_tool(
            &pg("pg_dump"),
            &[
                "--format=custom".as_ref(),
                file.as_os_str(),
                source.as_ref(),
            ],
        );
        console.terminate();
        // Restored into an empty database, with no console running on it.
        let fresh = support::pg_cluster::shared().fresh_database().await;
        let mut into = std::ffi::OsString::from("--dbname=");
        into.push(&fresh);
        run_tool(
            &pg("pg_restore"),
            &[
                into.as_os_str(),
                "--no-owner".as_ref(),
                "--role=offboard".as_ref(),
                "--exit-on-error".as_ref(),
                dump.as_os_str(),
            ],
        );
        copy_rest_of_data_folder(&data, &restored);
        Some(fresh)
    };

    let args: Vec<&str> = match &restored_url {
        Some(url) => vec!["--database-url", url.as_str()],
        None => vec![],
    };
    // The same keys, from the copied folder; the first owner signs in with their password.
    let restored_console = ConsoleProcess::start_with(&restored, &args).await;

    let job = restored_console
        .call("job", &[("job_id", job_id.as_str())])
        .await
        .expect("the run is there");
    assert_eq!(job["state"], json!("finished"), "{job}");
    assert_eq!(job["done"], json!(3), "{job}");
    let (status, csv) = get(
        &restored_console,
        &restored_console.http,
        &format!("/downloads/jobs/{job_id}/results.csv"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{csv}");
    for i in [1, 2, 3] {
        assert!(
            csv.contains(ids[i].as_str()),
            "{} not in results.csv:\n{csv}",
            ids[i]
        );
    }

    let connection = restored_console
        .call("connection", &[])
        .await
        .expect("connection");
    assert!(
        connection.to_string().contains(&server.base_url()),
        "{connection}"
    );
    // The token was saved encrypted: the restored console decrypts it with the copied key and
    // lists the users left on scim2-server.
    let check = restored_console
        .call("check_connection", &[])
        .await
        .expect("check_connection");
    assert_eq!(check["ok"], json!(true), "{check}");
    assert_eq!(check["user_count"], json!(9), "{check}");
}
