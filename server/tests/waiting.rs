//! "Waiting for you" through the real `offboard serve` binary, on SQLite and on PostgreSQL,
//! against the project's Stack-shaped fault server (a FAKE Stack site: it holds DELETEs and
//! refuses one user on purpose). Olive (owner), Carol (operator) and Vera (viewer):
//!
//! - Carol's request waits for Olive (with who asked and the counts), not for Carol herself
//!   nor for Vera; the header counts it, with its words for a screen reader;
//! - a decline leaves Olive's list and shows Carol the reason; an approval leaves both;
//! - a paused run waits for the operators, not the viewer; resumed, it leaves; ended with a
//!   failure, it waits for everyone (a viewer reads its report).

mod support;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::console_process::ConsoleProcess;
use support::fault_server::FaultServer;
use support::pg_cluster::PgCluster;

const CAROL: &str = "Carol <carol@offboard.test>";

struct Team {
    console: ConsoleProcess,
    site: FaultServer,
    olive: Client,
    carol: Client,
    vera: Client,
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
        let vera =
            support::people::invited(&console, &olive, "viewer", "vera@offboard.test", "Vera")
                .await;
        Team {
            console,
            site,
            olive,
            carol,
            vera,
        }
    }

    async fn json(&self, who: &Client, name: &str, fields: &[(&str, &str)]) -> Value {
        let (status, body) = self.console.call_as(who, name, fields).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        serde_json::from_str(&body).expect("json")
    }

    async fn waiting(&self, who: &Client) -> Value {
        self.json(who, "waiting_for_you", &[]).await
    }

    /// The header's count, as whoami gives it.
    async fn count(&self, who: &Client) -> u64 {
        let me = self.json(who, "whoami", &[]).await;
        me["waiting"].as_u64().unwrap_or_else(|| panic!("{me}"))
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
        let id = preview["id"].as_str().expect("id").to_string();
        let phrase = preview["phrase"].as_str().expect("phrase").to_string();
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

    /// Waits until the run's state is `state` (the witness), failing after a minute.
    async fn until_state(&self, job_id: &str, state: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let job = self.json(&self.olive, "job", &[("job_id", job_id)]).await;
            if job["state"] == json!(state) {
                return job;
            }
            assert!(Instant::now() < deadline, "never {state}: {job}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The page a signed-in person gets at `path`, served whole by the server.
    async fn html(&self, who: &Client, path: &str) -> String {
        let page = who.get(self.console.url(path)).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        page.text().await.unwrap()
    }
}

fn empty() -> Value {
    json!({"to_approve": [], "yours": [], "to_decide": [], "with_failures": [], "prepared": [], "deletions_due": []})
}

async fn everything_waits_for_whom_it_concerns(t: &Team) {
    for who in [&t.olive, &t.carol, &t.vera] {
        assert_eq!(t.waiting(who).await, empty());
        assert_eq!(t.count(who).await, 0);
    }

    // Carol asks: it waits for Olive, with who asked and the counts.
    let (first, _) = t
        .requested(&["user1@example.com", "user2@example.com"])
        .await;
    let olive = t.waiting(&t.olive).await;
    let asks = olive["to_approve"].as_array().expect("list");
    assert_eq!(asks.len(), 1, "{olive}");
    assert_eq!(asks[0]["preview_id"], json!(first));
    assert_eq!(asks[0]["users"], json!(2));
    assert_eq!(asks[0]["approval"]["requested_by"], json!(CAROL));
    assert_eq!(asks[0]["approval"]["yours"], json!(false));
    assert_eq!(t.count(&t.olive).await, 1);
    let page = t.html(&t.olive, "/history").await;
    assert!(
        page.contains(r#"aria-label="1 thing waiting for you""#),
        "the header's count: {page}"
    );
    // Carol sees her own request waiting, and nothing to approve; Vera nothing at all.
    let carol = t.waiting(&t.carol).await;
    assert_eq!(carol["to_approve"], json!([]), "{carol}");
    assert_eq!(carol["yours"][0]["approval"]["state"], json!("awaiting"));
    assert_eq!(t.waiting(&t.vera).await, empty());
    let page = t.html(&t.vera, "/history").await;
    assert!(!page.contains("waiting for you"), "{page}");

    // Olive declines: it leaves her list, and Carol sees why.
    t.json(
        &t.olive,
        "decline_approval",
        &[("preview_id", &first), ("reason", "wrong list")],
    )
    .await;
    assert_eq!(t.waiting(&t.olive).await, empty());
    let carol = t.waiting(&t.carol).await;
    assert_eq!(carol["yours"].as_array().map(Vec::len), Some(1), "{carol}");
    assert_eq!(carol["yours"][0]["approval"]["state"], json!("declined"));
    assert_eq!(carol["yours"][0]["approval"]["reason"], json!("wrong list"));

    // Carol asks again (the site will refuse user4: 1004); Olive approves by starting it.
    t.site
        .control(
            "/_control/faults",
            json!({"account_id": "1004", "script": ["409:The user is locked by an edit."]}),
        )
        .await;
    let (second, phrase) = t
        .requested(&[
            "user3@example.com",
            "user4@example.com",
            "user5@example.com",
        ])
        .await;
    assert_eq!(t.count(&t.olive).await, 1);
    t.site.hold_deletes().await;
    let job = t
        .json(
            &t.olive,
            "start_job",
            &[("preview_id", &second), ("typed", &phrase)],
        )
        .await;
    let job_id = job["id"].as_str().expect("job id").to_string();
    // Approved: nothing left to approve, and Carol's approved request leaves her list.
    assert_eq!(t.waiting(&t.olive).await, empty());
    let carol = t.waiting(&t.carol).await;
    let yours: Vec<&Value> = carol["yours"].as_array().unwrap().iter().collect();
    assert_eq!(yours.len(), 1, "only the declined one: {carol}");
    assert_eq!(yours[0]["preview_id"], json!(first));

    // Paused: it waits for the operators to decide, not for the viewer.
    t.json(
        &t.olive,
        "control_job",
        &[("job_id", &job_id), ("command", "pause")],
    )
    .await;
    t.site.release_deletes().await;
    t.until_state(&job_id, "paused").await;
    for who in [&t.olive, &t.carol] {
        let w = t.waiting(who).await;
        assert_eq!(w["to_decide"][0]["id"], json!(job_id), "{w}");
    }
    assert_eq!(t.waiting(&t.vera).await, empty());

    // Resumed and ended with a failure: nothing to decide, and everyone sees the failure.
    t.json(
        &t.carol,
        "control_job",
        &[("job_id", &job_id), ("command", "resume")],
    )
    .await;
    let ended = t.until_state(&job_id, "finished").await;
    assert_eq!(
        ended["counts"],
        json!([["Deleted", 2], ["Failed", 1]]),
        "user4 was refused: {ended}"
    );
    for who in [&t.olive, &t.carol, &t.vera] {
        let w = t.waiting(who).await;
        assert_eq!(w["to_decide"], json!([]), "{w}");
        let failed = w["with_failures"].as_array().expect("list");
        assert_eq!(failed.len(), 1, "{w}");
        assert_eq!(failed[0]["id"], json!(job_id));
        assert_eq!(failed[0]["created_by"], json!(CAROL));
    }
    assert_eq!(t.count(&t.vera).await, 1);
    assert_eq!(t.count(&t.olive).await, 1);
    assert_eq!(t.count(&t.carol).await, 2);
}

async fn both(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let t = Team::start(&dir.path().join("data"), database_url).await;
    everything_waits_for_whom_it_concerns(&t).await;
}

#[tokio::test]
async fn waiting_for_you_on_sqlite() {
    both(None).await;
}

#[tokio::test]
async fn waiting_for_you_on_postgres() {
    let cluster = PgCluster::start().unwrap_or_else(|why| panic!("{why}"));
    let url = cluster.fresh_database().await;
    both(Some(&url)).await;
}
