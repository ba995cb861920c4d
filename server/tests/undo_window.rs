//! "Deactivate now, delete after N days" (issue 21, the undo window) with the real
//! `offboard serve` binary against a REAL SCIM server (PyPI `scim2-server`), on SQLite (and on
//! PostgreSQL when `OFFBOARD_TEST_DATABASE=postgres`): the run deactivates everyone; one user
//! is restored from the run's page (reactivated at the site), another is reactivated at the
//! site outside Offboard; the console restarted under Debian's `faketime` past the date
//! deletes exactly the others and reports the rest by name. And an owner's "Delete now".

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::console_process::ConsoleProcess;
use support::Scim2Server;

const TOKEN: &str = "undo-window-token-9f8e7d6c5b";
const NAMES: [&str; 4] = ["ann", "bob", "cat", "dan"];
const LIST: &str = "Email\nann@corp.test\nbob@corp.test\ncat@corp.test\ndan@corp.test\n";
/// Where Debian's `faketime` keeps its library: the console runs under it with the clock
/// moved forward (monotonic time left alone, so its timers behave).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

async fn site() -> (Scim2Server, Vec<String>) {
    let server = Scim2Server::start(TOKEN);
    let ids = server
        .seed_users(NAMES.len(), |i| {
            json!({
                "userName": NAMES[i],
                "displayName": format!("{} Test", NAMES[i]),
                "emails": [{"value": format!("{}@corp.test", NAMES[i]), "primary": true}],
                "active": true,
            })
        })
        .await;
    (server, ids)
}

/// The user `id` as the site has it now (None once deleted).
async fn at_site(server: &Scim2Server, id: &str) -> Option<Value> {
    let reply = reqwest::Client::new()
        .get(format!("{}/Users/{id}", server.base_url()))
        .bearer_auth(server.token())
        .send()
        .await
        .expect("get user");
    if reply.status() == StatusCode::NOT_FOUND {
        return None;
    }
    Some(reply.json().await.expect("user json"))
}

async fn active(server: &Scim2Server, id: &str) -> Option<bool> {
    at_site(server, id)
        .await
        .map(|u| u["active"].as_bool().unwrap_or(true))
}

/// Someone reactivates `id` at the site, outside Offboard.
async fn reactivate_at_site(server: &Scim2Server, id: &str) {
    let reply = reqwest::Client::new()
        .patch(format!("{}/Users/{id}", server.base_url()))
        .bearer_auth(server.token())
        .json(&json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": true}]
        }))
        .send()
        .await
        .expect("patch");
    assert!(reply.status().is_success(), "{}", reply.status());
}

async fn connect(console: &ConsoleProcess, server: &Scim2Server) {
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
    assert_eq!(answer[1]["ok"], json!(true), "{answer}");
}

/// An undo-window run of the four users, ended; (its id, its view).
async fn undo_run(console: &ConsoleProcess) -> (String, Value) {
    let preview = console.preview_text(LIST, "deactivate_then_delete").await;
    let phrase = preview["phrase"].as_str().expect("phrase").to_string();
    let date = preview["delete_on"].as_str().expect("a date").to_string();
    assert_eq!(phrase, format!("DEACTIVATE 4 USERS, DELETE ON {date}"));
    let expected = (chrono::Utc::now() + chrono::Duration::days(30))
        .format("%Y-%m-%d")
        .to_string();
    assert_eq!(date, expected, "the team's default: 30 days");
    let job = console.start_run(&preview).await;
    console.run_ended(&job).await;
    let view = console.call("job", &[("job_id", &job)]).await.expect("job");
    (job, view)
}

fn outcomes(view: &Value) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = view["undo"]["users"]
        .as_array()
        .expect("undo users")
        .iter()
        .map(|u| {
            (
                u["name"].as_str().unwrap_or("").to_string(),
                u["outcome"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    all.sort();
    all
}

#[tokio::test]
async fn at_the_date_only_the_users_still_deactivated_and_unchanged_are_deleted() {
    let (server, ids) = site().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut console = ConsoleProcess::start(&data).await;
    connect(&console, &server).await;
    let (job, view) = undo_run(&console).await;
    assert_eq!(view["state"], json!("finished"), "{view}");
    for id in &ids {
        assert_eq!(active(&server, id).await, Some(false), "deactivated now");
    }
    let status = view["undo"]["status"].as_str().unwrap_or("");
    assert!(status.starts_with("Deactivated — deletion on "), "{view}");

    // Ann is restored from the run's page: active again at once.
    let reply = console
        .post_form(
            &console.http,
            "/run/undo/restore",
            &[("job", job.as_str()), ("account", ids[0].as_str())],
        )
        .await;
    assert_eq!(reply.status(), StatusCode::SEE_OTHER);
    assert_eq!(active(&server, &ids[0]).await, Some(true));
    // Dan is reactivated at the site, outside Offboard.
    reactivate_at_site(&server, &ids[3]).await;

    // 31 days later (the console was down at the date): it carries the date out at start.
    console.kill();
    let later = [
        ("LD_PRELOAD", LIBFAKETIME),
        ("FAKETIME", "+31d"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let console =
        ConsoleProcess::start_with_env(&data, &["--allow-http-loopback-sites"], &later).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let view = loop {
        let view = console.call("job", &[("job_id", &job)]).await.expect("job");
        if !view["undo"]["delete_job"].is_null() {
            break view;
        }
        assert!(
            Instant::now() < deadline,
            "the date was not carried out: {view}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let deletion = view["undo"]["delete_job"].as_str().expect("deletion run");
    let ended = console.run_ended(deletion).await;
    assert_eq!(ended["state"], json!("finished"), "{ended}");
    assert!(
        ended["created_by"]
            .as_str()
            .unwrap_or("")
            .starts_with("Offboard, on behalf of Olive Owner"),
        "{ended}"
    );
    assert_eq!(active(&server, &ids[0]).await, Some(true), "Ann restored");
    assert_eq!(at_site(&server, &ids[1]).await, None, "Bob deleted");
    assert_eq!(at_site(&server, &ids[2]).await, None, "Cat deleted");
    assert_eq!(
        active(&server, &ids[3]).await,
        Some(true),
        "Dan reactivated"
    );
    assert_eq!(
        outcomes(&view),
        vec![
            ("ann Test".into(), "restored — not deleted".into()),
            ("bob Test".into(), "deleted at the date".into()),
            ("cat Test".into(), "deleted at the date".into()),
            ("dan Test".into(), "restored — not deleted".into()),
        ]
    );
    assert!(view["undo"]["status"]
        .as_str()
        .unwrap_or("")
        .starts_with("Deleted on "));
    // Another pass of the clock (or another start) does nothing more: the window is closed.
    let fields = [
        ("action", "deletion_due"),
        ("from", ""),
        ("to", ""),
        ("before", "0"),
    ];
    let (status, trail) = console.call_as(&console.http, "audit_page", &fields).await;
    assert_eq!(status, StatusCode::OK, "{trail}");
    let trail: Value = serde_json::from_str(&trail).expect("trail json");
    let entries = trail["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{trail}");
    assert_eq!(
        entries[0]["actor"],
        json!("Offboard, on behalf of Olive Owner <olive@offboard.test>")
    );
    let details: Value =
        serde_json::from_str(entries[0]["details"].as_str().unwrap_or("{}")).expect("details");
    assert_eq!(
        (details["deleted"].clone(), details["restored"].clone()),
        (json!(2), json!(2))
    );
}

#[tokio::test]
async fn an_owner_deletes_now_after_typing_the_phrase_again() {
    let (server, ids) = site().await;
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start(&dir.path().join("data")).await;
    connect(&console, &server).await;
    let (job, _) = undo_run(&console).await;
    let restore = [("job", job.as_str()), ("account", ids[1].as_str())];
    let reply = console
        .post_form(&console.http, "/run/undo/restore", &restore)
        .await;
    assert_eq!(reply.status(), StatusCode::SEE_OTHER);
    let wrong = [("job", job.as_str()), ("phrase", "DELETE 4 USERS")];
    let reply = console
        .post_form(&console.http, "/run/undo/delete-now", &wrong)
        .await;
    assert_eq!(reply.status(), StatusCode::CONFLICT);
    assert!(reply
        .text()
        .await
        .unwrap()
        .contains("type DELETE 3 USERS exactly"));
    assert!(at_site(&server, &ids[0]).await.is_some(), "nothing deleted");
    let right = [("job", job.as_str()), ("phrase", "DELETE 3 USERS")];
    let reply = console
        .post_form(&console.http, "/run/undo/delete-now", &right)
        .await;
    assert_eq!(reply.status(), StatusCode::SEE_OTHER);
    let location = reply.headers()["location"].to_str().unwrap().to_string();
    let deletion = location
        .trim_start_matches("/run?id=")
        .trim_end_matches("#undo-window")
        .to_string();
    assert_ne!(deletion, job, "leads to the deletion run");
    let ended = console.run_ended(&deletion).await;
    assert!(ended["created_by"]
        .as_str()
        .unwrap_or("")
        .starts_with("Olive Owner"));
    assert_eq!(active(&server, &ids[1]).await, Some(true), "Bob restored");
    for i in [0, 2, 3] {
        assert_eq!(
            at_site(&server, &ids[i]).await,
            None,
            "{} deleted",
            NAMES[i]
        );
    }
    let again = console
        .post_form(&console.http, "/run/undo/delete-now", &right)
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT, "the window is closed");
}
