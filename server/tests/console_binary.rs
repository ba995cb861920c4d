//! The real `offboard serve` binary, driven over HTTP as the browser drives it, against the
//! project's Stack-shaped fault server (a FAKE Stack site): what a careless second admin can do between a pause
//! and a Resume, what the data folder looks like on disk, and what an address can make the
//! Choose page say.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::console_process::ConsoleProcess;
use support::fault_server::{at_most_one_delete_each, deleted, FaultServer, TOKEN};

async fn job(console: &ConsoleProcess, id: &str) -> Value {
    console.call("job", &[("job_id", id)]).await.expect("job")
}

async fn wait_for(console: &ConsoleProcess, id: &str, what: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = job(console, id).await;
        if what(&job) {
            return job;
        }
        assert!(Instant::now() < deadline, "timed out; job is {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn connect(console: &ConsoleProcess, site: &FaultServer, scim_base_url: &str) {
    let diagnosis = console.save_connection(&site.base, scim_base_url, "").await;
    assert_eq!(diagnosis["ok"], json!(true), "{diagnosis}");
}

/// The reviewer's reproduction: preview on `/api/scim/v2/users`, pause, save the same site
/// with another SCIM base under Advanced, press Resume. Before the fix the remaining DELETEs
/// went to the other endpoint; now Resume is refused in plain words, across a restart too.
#[tokio::test]
async fn resume_after_the_scim_address_changed_is_refused_through_the_real_binary() {
    let site = FaultServer::start(&["--users", "40"]);
    site.control("/_control/settings", json!({"latency_ms": 150}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut console = ConsoleProcess::start(&data).await;
    connect(&console, &site, "").await;

    let mut text = String::from("Email\n");
    for i in 20..=39 {
        text.push_str(&format!("user{i}@example.com\n"));
    }
    let preview = console
        .call(
            "preview_text",
            &[
                ("file_name", "leavers.csv"),
                ("text", &text),
                ("action", "delete"),
                ("demote", "false"),
            ],
        )
        .await
        .expect("preview");
    assert_eq!(preview["counts"]["selected"], json!(20));
    let phrase = preview["phrase"].as_str().unwrap().to_string();
    let started = console
        .call(
            "start_job",
            &[
                ("preview_id", preview["id"].as_str().unwrap()),
                ("typed", &phrase),
            ],
        )
        .await
        .expect("start");
    let job_id = started["id"].as_str().unwrap().to_string();
    wait_for(&console, &job_id, |j| j["done"].as_u64() >= Some(2)).await;
    console
        .call("control_job", &[("job_id", &job_id), ("command", "pause")])
        .await
        .expect("pause");
    // What was in flight lands (the site says when none is left).
    let sent = site.settled().await["requests"]["DELETE"].as_u64().unwrap();

    // A second admin saves the same site with the RFC base under Advanced, and resumes.
    connect(&console, &site, &format!("{}/v2", site.base)).await;
    let refused = console
        .call("control_job", &[("job_id", &job_id), ("command", "resume")])
        .await
        .unwrap_err();
    assert!(refused.contains("another SCIM address"), "{refused}");
    // Across a crash and restart, it still waits for the admin, with the reason.
    console.kill();
    console = ConsoleProcess::start(&data).await;
    let refused = console
        .call("control_job", &[("job_id", &job_id), ("command", "resume")])
        .await
        .unwrap_err();
    assert!(refused.contains("another SCIM address"), "{refused}");
    assert_eq!(
        site.no_delete_during(Duration::from_millis(300)).await["requests"]["DELETE"]
            .as_u64()
            .unwrap(),
        sent,
        "no DELETE was sent after the pause"
    );

    // The confirmed address again: the run finishes, each user deleted once.
    connect(&console, &site, "").await;
    console
        .call("control_job", &[("job_id", &job_id), ("command", "resume")])
        .await
        .expect("resume on the confirmed address");
    let done = wait_for(&console, &job_id, |j| j["state"] == json!("finished")).await;
    assert_eq!(done["done"], json!(20));
    let state = site.state().await;
    let expected: BTreeSet<String> = (20..=39).map(|i| (1000 + i).to_string()).collect();
    assert_eq!(deleted(&state), expected);
    at_most_one_delete_each(&state);
    assert!(!console.log_text().contains(TOKEN), "token in the log");
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_folder_and_its_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The SQLite file's own modes: on SQLite even when the suite runs on PostgreSQL.
    let sqlite = format!("sqlite://{}", data.join("offboard.db").display());
    let console = ConsoleProcess::start_with(&data, &["--database-url", &sqlite]).await;
    assert_eq!(mode(&data), 0o700);
    for file in ["offboard.db", "offboard.db-wal", "secret.key"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    drop(console);

    // An existing folder that others can read is reported at start (and left as it is).
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let console = ConsoleProcess::start(&data).await;
    let log = console.log_text();
    assert!(log.contains("can be read by other users"), "{log}");
    assert_eq!(mode(&data), 0o755);
}

#[tokio::test]
async fn the_choose_page_shows_only_words_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start(&dir.path().join("data")).await;
    let page = |query: &str| {
        let url = console.url(&format!("/choose?error={query}"));
        let http = console.http.clone();
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let forged = page("Your%20token%20expired%2C%20paste%20it%20at%20evil.example").await;
    assert!(!forged.contains("token expired"), "{forged}");
    assert!(!forged.contains("evil.example"), "{forged}");
    let known = page("no_file").await;
    assert!(known.contains("Choose a file, or paste a list"), "{known}");
}

#[tokio::test]
async fn request_logs_name_the_route_never_the_ids_or_the_query() {
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start(&dir.path().join("data")).await;
    let private = "/downloads/jobs/private-job-7f3a/results.csv?email=jane.doe%40acme.example";
    let answer = console.http.get(console.url(private)).send().await.unwrap();
    assert_eq!(answer.status(), 404);
    let answer = console
        .http
        .get(console.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    // The log line is written as the answer goes out; give the writer a moment.
    let log = console.log_once_it_says("status=404").await;
    let served: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("request served"))
        .collect();
    assert!(
        served
            .iter()
            .any(|l| l.contains("route=/downloads/jobs/{job_id}/{file}")
                && l.contains("method=GET")
                && l.contains("status=404")
                && l.contains("latency_ms=")),
        "{log}"
    );
    assert!(
        served
            .iter()
            .any(|l| l.contains("route=/healthz") && l.contains("status=200")),
        "{log}"
    );
    for secret in ["private-job-7f3a", "jane.doe", "acme.example", "email="] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

/// Issue 23 item 3, through the real binary against the FAKE fault server: the site goes down
/// mid-run (`down: true`, every request 503). The run pauses itself and says so, the trail and
/// the log say the site stopped answering, a restart keeps the pause; once the site is back,
/// Resume finishes it exactly: every chosen user deleted once, one result each, none failed.
#[tokio::test]
async fn a_site_that_stops_answering_pauses_the_run_and_resume_finishes_it_exactly() {
    let site = FaultServer::start(&["--users", "60"]);
    site.control("/_control/settings", json!({"latency_ms": 100}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut console = ConsoleProcess::start(&data).await;
    connect(&console, &site, "").await;
    let mut text = String::from("Email\n");
    // 30 plain users: 42 is a community creator the site refuses to delete.
    let chosen: Vec<u32> = (20..=50).filter(|i| *i != 42).collect();
    for i in &chosen {
        text.push_str(&format!("user{i}@example.com\n"));
    }
    let preview = console.preview_text(&text, "delete").await;
    assert_eq!(preview["counts"]["selected"], json!(30), "{preview}");
    let job_id = console.start_run(&preview).await;
    wait_for(&console, &job_id, |j| j["done"].as_u64() >= Some(3)).await;

    site.control("/_control/settings", json!({"down": true}))
        .await;
    let paused = wait_for(&console, &job_id, |j| j["state"] == json!("paused")).await;
    let reason = paused["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("your site stopped answering at ")
            && reason.ends_with("UTC. Resume when it is back."),
        "{paused}"
    );
    // Nobody is on record as failed: the users the outage reached have no result yet.
    assert!(!paused["counts"].to_string().contains("failed"), "{paused}");
    let done_before = paused["done"].as_u64().unwrap();
    assert!(done_before < 30, "{paused}");
    let (_, trail) = console
        .call_as(
            &console.http,
            "audit_page",
            &[
                ("action", "run_paused"),
                ("from", ""),
                ("to", ""),
                ("before", "0"),
            ],
        )
        .await;
    assert!(trail.contains("the site stopped answering"), "{trail}");
    console
        .log_once_it_says("paused: the site stopped answering")
        .await;

    // A restart keeps the pause and its words; nothing is sent while paused.
    console.kill();
    console = ConsoleProcess::start(&data).await;
    let after_restart = job(&console, &job_id).await;
    assert_eq!(after_restart["state"], json!("paused"), "{after_restart}");
    assert_eq!(after_restart["reason"], paused["reason"]);

    // The site is back: Resume finishes the run, each user deleted once, one result each.
    site.control("/_control/settings", json!({"down": false}))
        .await;
    console
        .call("control_job", &[("job_id", &job_id), ("command", "resume")])
        .await
        .expect("resume");
    let done = wait_for(&console, &job_id, |j| j["state"] == json!("finished")).await;
    assert_eq!(done["done"], json!(30), "{done}");
    assert_eq!(done["counts"], json!([["Deleted", 30]]), "{done}");
    let state = site.state().await;
    let expected: BTreeSet<String> = chosen.iter().map(|i| (1000 + i).to_string()).collect();
    assert_eq!(deleted(&state), expected);
    at_most_one_delete_each(&state);
}

/// Issue 23 item 4, through the real binary against the FAKE fault server: after a cancelled
/// run, "Preview the N users not yet removed" (`POST /run/not-removed`) leads to a new preview
/// of exactly the users without a deleted or already-gone result, and starts nothing.
#[tokio::test]
async fn after_a_cancel_a_new_preview_takes_exactly_the_users_not_yet_removed() {
    let site = FaultServer::start(&["--users", "60"]);
    site.control("/_control/settings", json!({"latency_ms": 100}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start(&dir.path().join("data")).await;
    connect(&console, &site, "").await;
    // 20 users, 42 among them: a community creator the site refuses (not removed either).
    let chosen: Vec<u32> = (30..=49).collect();
    let mut text = String::from("Email\n");
    for i in &chosen {
        text.push_str(&format!("user{i}@example.com\n"));
    }
    let preview = console.preview_text(&text, "delete").await;
    let job_id = console.start_run(&preview).await;
    wait_for(&console, &job_id, |j| j["done"].as_u64() >= Some(4)).await;
    console
        .call("control_job", &[("job_id", &job_id), ("command", "cancel")])
        .await
        .expect("cancel");
    let ended = wait_for(&console, &job_id, |j| j["state"] == json!("stopped")).await;
    let state = site.settled().await;
    let gone = deleted(&state);
    assert!(gone.len() < chosen.len(), "cancelled mid-run: {ended}");
    let left: BTreeSet<String> = chosen
        .iter()
        .map(|i| (1000 + i).to_string())
        .filter(|id| !gone.contains(id))
        .collect();
    assert!(left.contains("1042"), "the refused user stays: {ended}");
    let deletes_before = delete_requests(&state);

    let reply = console
        .post_form(&console.http, "/run/not-removed", &[("job", &job_id)])
        .await;
    assert_eq!(reply.status(), reqwest::StatusCode::SEE_OTHER);
    let to = reply.headers()["location"].to_str().unwrap().to_string();
    let new_id = to.strip_prefix("/preview?id=").expect(&to).to_string();
    let summary = console
        .call("preview", &[("preview_id", &new_id)])
        .await
        .expect("preview");
    assert_eq!(
        summary["counts"]["selected"],
        json!(left.len()),
        "{summary}"
    );
    let rows = console
        .call(
            "preview_rows",
            &[
                ("preview_id", &new_id),
                ("outcome", ""),
                ("offset", "0"),
                ("limit", "500"),
            ],
        )
        .await
        .expect("rows");
    let listed: BTreeSet<String> = rows["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["account_id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(listed, left, "{rows}");
    // A preview starts nothing.
    assert_eq!(
        delete_requests(&site.no_delete_during(Duration::from_millis(300)).await),
        deletes_before
    );
}

fn delete_requests(state: &Value) -> u64 {
    state["requests"]["DELETE"].as_u64().unwrap_or(0)
}
