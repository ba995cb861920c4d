//! Two-person approval through the real `offboard serve` binary, on SQLite and on PostgreSQL,
//! against the project's Stack-shaped fault server (a FAKE Stack site) slowed to seconds a request:
//!
//! - a request withdrawn while the approver's start is listing the site starts nothing: no
//!   run, no DELETE at the site, the approver told it was declined, no `approval_given`;
//! - a run approved by typing the phrase names both people on its Run page from the first
//!   render, and keeps both when its end reaches the page; a decline after the start is
//!   refused, saying the run was approved and started.

mod support;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::console_process::ConsoleProcess;
use support::fault_server::{deleted, FaultServer};
use support::pg_cluster::PgCluster;

const CAROL: &str = "Carol <carol@offboard.test>";
const OLIVE: &str = "Olive Owner <olive@offboard.test>";
/// How slow the site is while a start lists it: the window the decline lands in.
const SLOW_SITE_MS: u64 = 2_000;

/// A console whose team has two operators: Olive (its first owner) and Carol, whose runs need
/// Olive's approval (the default for two operators).
struct Team {
    console: ConsoleProcess,
    site: FaultServer,
    olive: Client,
    carol: Client,
}

impl Team {
    async fn start(data: &std::path::Path, database_url: Option<&str>) -> Team {
        let site = FaultServer::start(&["--users", "20"]);
        let args: Vec<&str> = database_url
            .map(|url| vec!["--database-url", url])
            .unwrap_or_default();
        let console = ConsoleProcess::start_with(data, &args).await;
        let diagnosis = console.save_connection(&site.base, "", "").await;
        assert_eq!(diagnosis["ok"], json!(true), "{diagnosis}");
        let olive = console.http.clone();
        let carol =
            support::people::invited(&console, &olive, "operator", "carol@offboard.test", "Carol")
                .await;
        Team {
            console,
            site,
            olive,
            carol,
        }
    }

    async fn call(
        &self,
        who: &Client,
        name: &str,
        fields: &[(&str, &str)],
    ) -> (StatusCode, String) {
        self.console.call_as(who, name, fields).await
    }

    async fn json(&self, who: &Client, name: &str, fields: &[(&str, &str)]) -> Value {
        let (status, body) = self.call(who, name, fields).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        serde_json::from_str(&body).expect("json")
    }

    /// Carol's preview of deleting `emails`, asked for approval: its id and phrase.
    async fn requested(&self, emails: &[&str]) -> (String, String) {
        let text = format!("Email\n{}\n", emails.join("\n"));
        let preview = self
            .json(
                &self.carol,
                "preview_text",
                &[
                    ("file_name", "leavers.csv"),
                    ("text", &text),
                    ("action", "delete"),
                    ("demote", "false"),
                ],
            )
            .await;
        assert_eq!(
            preview["counts"]["selected"],
            json!(emails.len()),
            "{preview}"
        );
        let (id, phrase) = (
            preview["id"].as_str().unwrap().to_string(),
            preview["phrase"].as_str().unwrap().to_string(),
        );
        let asked = self
            .json(
                &self.carol,
                "request_approval",
                &[("preview_id", &id), ("typed", &phrase)],
            )
            .await;
        assert_eq!(asked["state"], json!("awaiting"), "{asked}");
        (id, phrase)
    }

    /// The entries of the team's trail of one kind, as Olive reads them.
    async fn trail(&self, action: &str) -> Vec<Value> {
        let page = self
            .json(
                &self.olive,
                "audit_page",
                &[
                    ("action", action),
                    ("from", ""),
                    ("to", ""),
                    ("before", "0"),
                ],
            )
            .await;
        page["entries"].as_array().cloned().unwrap_or_default()
    }

    async fn slow_site(&self, latency_ms: u64) {
        self.site
            .control("/_control/settings", json!({ "latency_ms": latency_ms }))
            .await;
    }

    /// Waits until the site has a request in flight: with nothing else talking to it, the
    /// approver's start is listing it now (a slowed request is counted in flight as it
    /// arrives, and by kind only once answered).
    async fn until_listing(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state = self.site.state().await;
            if state["in_flight"].as_u64().unwrap_or(0) > 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the start never listed the site: {state}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Carol withdraws her request while Olive's start is listing the slowed site: the decline
/// wins, Olive is told so, and nothing runs or is deleted.
async fn a_request_withdrawn_while_the_start_lists_the_site_starts_nothing(t: &Team) {
    let (id, phrase) = t
        .requested(&[
            "user1@example.com",
            "user2@example.com",
            "user3@example.com",
            "user4@example.com",
            "user5@example.com",
        ])
        .await;
    t.slow_site(SLOW_SITE_MS).await;
    let fields = [("preview_id", id.as_str()), ("typed", phrase.as_str())];
    let start = t.call(&t.olive, "start_job", &fields);
    let withdraw = async {
        t.until_listing().await;
        t.call(
            &t.carol,
            "decline_approval",
            &[("preview_id", &id), ("reason", "wrong list")],
        )
        .await
    };
    let ((started, start_answer), (declined, decline_answer)) = tokio::join!(start, withdraw);
    assert_eq!(declined, StatusCode::OK, "{decline_answer}");
    let view: Value = serde_json::from_str(&decline_answer).unwrap();
    assert_eq!(view["state"], json!("declined"), "{view}");
    assert!(!started.is_success(), "the start went on: {start_answer}");
    assert!(
        start_answer.contains("declined") && start_answer.contains("Nothing was started"),
        "{start_answer}"
    );
    assert!(start_answer.contains("withdrawn"), "{start_answer}");
    t.slow_site(0).await;
    let state = t.site.state().await;
    assert!(
        state["requests"]["LIST"].as_u64().unwrap_or(0) >= 2,
        "it was listed: {state}"
    );

    // No run, no DELETE at the site, and the trail has the decline only.
    let runs = t.json(&t.olive, "jobs", &[]).await;
    assert_eq!(runs, json!([]), "{runs}");
    let state = t.site.state().await;
    assert_eq!(
        state["requests"]["DELETE"].as_u64().unwrap_or(0),
        0,
        "{state}"
    );
    assert!(deleted(&state).is_empty(), "{state}");
    assert_eq!(t.trail("approval_given").await, Vec::<Value>::new());
    assert_eq!(t.trail("run_confirmed").await, Vec::<Value>::new());
    let declines = t.trail("approval_declined").await;
    assert_eq!(declines.len(), 1, "{declines:?}");
    assert_eq!(declines[0]["actor"], json!(CAROL));
    // The preview stays declined: typing its phrase again starts nothing either.
    let (again, refused) = t
        .call(
            &t.olive,
            "start_job",
            &[("preview_id", &id), ("typed", &phrase)],
        )
        .await;
    assert!(!again.is_success(), "{refused}");
    assert!(
        refused.contains("declined this run: wrong list"),
        "{refused}"
    );
    assert_eq!(t.json(&t.olive, "jobs", &[]).await, json!([]));
}

/// Olive approves Carol's request by typing the phrase: the Run page opened at once names
/// both, and so does the run's end as the page receives it; Carol's late decline is refused.
async fn an_approved_run_names_both_people_from_its_first_render(t: &Team) {
    let (id, phrase) = t
        .requested(&["user11@example.com", "user12@example.com"])
        .await;
    let job = t
        .json(
            &t.olive,
            "start_job",
            &[("preview_id", &id), ("typed", &phrase)],
        )
        .await;
    assert_eq!(job["created_by"], json!(CAROL), "{job}");
    assert_eq!(job["approved_by"], json!(OLIVE), "{job}");
    let job_id = job["id"].as_str().unwrap().to_string();

    // The server-rendered page, opened right after the start by the requester.
    let page = t
        .carol
        .get(t.console.url(&format!("/run?id={job_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("started by Carol &lt;carol@offboard.test&gt; · approved by Olive Owner"),
        "{html}"
    );

    // Too late to decline: the run was approved and started.
    let (status, refused) = t
        .call(
            &t.carol,
            "decline_approval",
            &[("preview_id", &id), ("reason", "changed my mind")],
        )
        .await;
    assert!(!status.is_success(), "{refused}");
    assert!(
        refused.contains("already approved by Olive Owner"),
        "{refused}"
    );
    assert!(refused.contains("and started"), "{refused}");
    assert_eq!(
        t.trail("approval_declined").await.len(),
        1,
        "only the earlier one"
    );
    let given = t.trail("approval_given").await;
    assert_eq!(given.len(), 1, "{given:?}");
    assert_eq!(given[0]["actor"], json!(OLIVE));

    // Once the run ends, its live page receives the run as it ended: still with both names.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = t.json(&t.olive, "job", &[("job_id", &job_id)]).await;
        if now["state"] == json!("finished") {
            assert_eq!(now["approved_by"], json!(OLIVE), "{now}");
            break;
        }
        assert!(Instant::now() < deadline, "the run did not finish: {now}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = tokio::time::timeout(
        Duration::from_secs(30),
        t.carol
            .get(t.console.url(&format!("/jobs/{job_id}/events?after=0")))
            .send(),
    )
    .await
    .expect("the events stream answers")
    .unwrap();
    assert_eq!(events.status(), StatusCode::OK);
    let stream = tokio::time::timeout(Duration::from_secs(30), events.text())
        .await
        .expect("an ended run's stream closes after its end")
        .unwrap();
    let end = stream
        .split("event: end")
        .nth(1)
        .unwrap_or_else(|| panic!("no end event: {stream}"));
    let data = end
        .lines()
        .find_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
        .expect("the end's data");
    let ended: Value = serde_json::from_str(data).unwrap();
    assert_eq!(
        (ended["created_by"].clone(), ended["approved_by"].clone()),
        (json!(CAROL), json!(OLIVE)),
        "{ended}"
    );
}

async fn both(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let t = Team::start(&dir.path().join("data"), database_url).await;
    a_request_withdrawn_while_the_start_lists_the_site_starts_nothing(&t).await;
    an_approved_run_names_both_people_from_its_first_render(&t).await;
}

#[tokio::test]
async fn approval_and_run_are_one_write_on_sqlite() {
    both(None).await;
}

#[tokio::test]
async fn approval_and_run_are_one_write_on_postgres() {
    let cluster = PgCluster::start().unwrap_or_else(|why| panic!("{why}"));
    let url = cluster.fresh_database().await;
    both(Some(&url)).await;
}
