//! The retention policy through the real `offboard serve` binary against a REAL SCIM server
//! (PyPI `scim2-server`), on SQLite and on PostgreSQL, with the console's clock jumped ahead
//! by Debian's libfaketime (`faketime`'s library, preloaded): the owner turns the policy on,
//! the daily listing records who is deactivated, users change at the site, and the console,
//! restarted 40 days later, lists the site again, prepares one delete preview of exactly the
//! users deactivated for at least 30 days, puts it in "Waiting for you", tells a real webhook
//! receiver once (not once per missed week), and deletes nobody.

mod support;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::console_process::ConsoleProcess;
use support::pg_cluster::PgCluster;
use support::Scim2Server;

const TOKEN: &str = "retention-scim2-token-7c8d9e0f1a";
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The events a webhook receiver got, by their `X-Offboard-Event` header.
type Events = Arc<Mutex<Vec<String>>>;

async fn receive(State(events): State<Events>, headers: HeaderMap) -> axum::http::StatusCode {
    let event = headers
        .get("x-offboard-event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    events.lock().unwrap().push(event);
    axum::http::StatusCode::NO_CONTENT
}

/// A webhook receiver on 127.0.0.1: its address and what it got.
async fn start_receiver() -> (String, Events) {
    let events = Events::default();
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(events.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, events)
}

fn count(events: &Events, event: &str) -> usize {
    events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| *e == event)
        .count()
}

/// Sets a user's `active` at the site, as an admin would in Stack.
async fn set_active(server: &Scim2Server, id: &str, active: bool) {
    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": active}],
    });
    let reply = reqwest::Client::new()
        .patch(format!("{}/Users/{id}", server.base_url()))
        .bearer_auth(server.token())
        .json(&patch)
        .send()
        .await
        .expect("PATCH");
    assert!(reply.status().is_success(), "{}", reply.status());
}

/// Waits (up to a minute) until `check` holds for the server function `name`'s answer.
async fn until(console: &ConsoleProcess, name: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = console.call(name, &[]).await.expect(name);
        if check(&answer) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never got there: {answer}\nlog:\n{}",
            console.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn a_policy_fires_once_after_a_clock_jump(database_url: Option<&str>) {
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "Debian's faketime is needed (make deps-test installs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Scim2Server::start(TOKEN);
    // u0, u1, u2 deactivated; u3, u4, u5 active.
    let ids = server
        .seed_users(6, |i| {
            json!({
                "userName": format!("u{i}"),
                "emails": [{"value": format!("u{i}@corp.test"), "primary": true}],
                "active": i >= 3,
            })
        })
        .await;
    let (hook, events) = start_receiver().await;
    let mut args = vec!["--allow-http-loopback-sites".to_string()];
    if let Some(url) = database_url {
        args.extend(["--database-url".to_string(), url.to_string()]);
    }
    let flags: Vec<&str> = args.iter().map(String::as_str).collect();

    let mut console = ConsoleProcess::start_with_only(&data, &flags).await;
    let diagnosis = console.connect_scim2(&server).await;
    assert_eq!(diagnosis["ok"], json!(true), "{diagnosis}");
    let saved = console
        .post_form(
            &console.http,
            "/team/webhook",
            &[("address", hook.as_str())],
        )
        .await;
    assert!(saved.status().is_redirection());
    let policy = [
        ("time_zone", "Europe/Berlin"),
        ("enabled", "on"),
        ("min_days", "30"),
        ("weekday", "0"),
        ("at", "09:00"),
    ];
    let saved = console
        .post_form(&console.http, "/team/retention", &policy)
        .await;
    assert!(saved.status().is_redirection());
    // The first listing follows within seconds of turning it on.
    let page = until(&console, "retention_page", |p| {
        p["seen_deactivated"] == json!(3)
    })
    .await;
    assert_eq!(page["enabled"], json!(true), "{page}");
    assert_eq!(page["time_zone"], json!("Europe/Berlin"), "{page}");
    assert_eq!(page["long_enough"], json!(0), "{page}");
    let next = page["next_time"].as_str().unwrap_or_default().to_string();
    assert!(
        next.starts_with("Monday ") && next.ends_with(", 09:00 Europe/Berlin"),
        "{next}"
    );

    // At the site: u1 is reactivated, u3 deactivated.
    set_active(&server, &ids[1], true).await;
    set_active(&server, &ids[3], false).await;

    // The console is down for 40 days: five Mondays pass.
    console.terminate();
    let env = [
        ("LD_PRELOAD", LIBFAKETIME),
        ("FAKETIME", "+40d"),
        ("DONT_FAKE_MONOTONIC", "1"),
    ];
    let console = ConsoleProcess::start_with_env(&data, &flags, &env).await;
    let waiting = until(&console, "waiting_for_you", |w| {
        w["prepared"].as_array().is_some_and(|p| !p.is_empty())
    })
    .await;
    let prepared = waiting["prepared"].as_array().unwrap();
    assert_eq!(prepared.len(), 1, "{waiting}");
    assert_eq!(prepared[0]["users"], json!(2), "{waiting}");
    let preview_id = prepared[0]["preview_id"].as_str().unwrap().to_string();
    let rows = console
        .call(
            "preview_rows",
            &[
                ("preview_id", preview_id.as_str()),
                ("outcome", ""),
                ("offset", "0"),
                ("limit", "50"),
            ],
        )
        .await
        .expect("preview_rows");
    let mut chosen: Vec<&str> = rows["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == json!("Selected"))
        .filter_map(|r| r["account_id"].as_str())
        .collect();
    chosen.sort();
    let mut expected = vec![ids[0].as_str(), ids[2].as_str()];
    expected.sort();
    assert_eq!(chosen, expected, "{rows}");
    let summary = console
        .call("preview", &[("preview_id", preview_id.as_str())])
        .await
        .expect("preview");
    assert_eq!(summary["phrase"], json!("DELETE 2 USERS"), "{summary}");

    // The listing after the jump saw u3 deactivated (not long enough) and u1 active again.
    let page = console.call("retention_page", &[]).await.expect("page");
    assert_eq!(page["seen_deactivated"], json!(3), "{page}");
    assert_eq!(page["long_enough"], json!(2), "{page}");
    // The Choose page's list: since when, and who is deactivated long enough.
    let since = console.call("deactivated_since", &[]).await.expect("since");
    assert_eq!(since["min_days"], json!(30), "{since}");
    let mut long: Vec<&str> = since["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["long_enough"] == json!(true))
        .filter_map(|u| u["account_id"].as_str())
        .collect();
    long.sort();
    assert_eq!(long, expected, "{since}");

    // The team is told once, and only once, however many Mondays were missed.
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&events, "deletion_prepared") == 0 {
        assert!(Instant::now() < deadline, "no notification: {events:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(count(&events, "deletion_prepared"), 1, "{events:?}");
    let waiting = console.call("waiting_for_you", &[]).await.expect("waiting");
    assert_eq!(waiting["prepared"].as_array().map(Vec::len), Some(1));
    let trail = console
        .call(
            "audit_page",
            &[
                ("action", "deletion_prepared"),
                ("from", ""),
                ("to", ""),
                ("before", "0"),
            ],
        )
        .await
        .expect("audit_page");
    assert!(
        trail.to_string().contains("Offboard (retention policy)"),
        "{trail}"
    );

    // Nobody was deleted: the site has all six users.
    assert_eq!(server.ids().await.len(), 6);
}

#[tokio::test]
async fn a_retention_policy_fires_once_after_a_clock_jump_on_sqlite() {
    a_policy_fires_once_after_a_clock_jump(None).await;
}

#[tokio::test]
async fn a_retention_policy_fires_once_after_a_clock_jump_on_postgres() {
    let cluster = PgCluster::start().unwrap_or_else(|why| panic!("{why}"));
    let url = cluster.fresh_database().await;
    a_policy_fires_once_after_a_clock_jump(Some(&url)).await;
}
