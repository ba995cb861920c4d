//! Two real `offboard serve` replicas on one PostgreSQL database (a throwaway cluster,
//! tests/support/pg_cluster.rs), each with its own data folder and the same token key, and
//! the project's Stack-shaped fault server (a real HTTP server, slowed with `--latency-ms`):
//! the replica driving a run is killed with SIGKILL mid-run; the other takes the run over
//! once its lease expires and finishes it, with no DELETE sent twice and one result per user.

mod support;

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use support::console_process::ConsoleProcess;
use support::fault_server::{at_most_one_delete_each, deleted, FaultServer};
use support::pg_cluster::PgCluster;

/// A fixed token key (base64 of 32 bytes): both replicas must decrypt the saved token.
const SECRET_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// Short, so the test waits seconds for the take-over, not the default 30.
const LEASE_SECONDS: &str = "3";

async fn job(console: &ConsoleProcess, id: &str) -> Value {
    console.call("job", &[("job_id", id)]).await.expect("job")
}

/// Polls the job through `console` until `what` holds (at most `seconds`).
async fn wait_for_job(
    console: &ConsoleProcess,
    id: &str,
    seconds: u64,
    what: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let now = job(console, id).await;
        if what(&now) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "{now}; log:\n{}",
            console.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_replica_is_killed_is_finished_by_the_other_with_nothing_sent_twice() {
    let cluster = PgCluster::start().unwrap_or_else(|e| panic!("{e}"));
    let url = cluster.fresh_database().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let args = [
        "--database-url",
        url.as_str(),
        "--secret-key",
        SECRET_KEY,
        "--job-lease-seconds",
        LEASE_SECONDS,
    ];
    let mut a = ConsoleProcess::start_with(&dir.path().join("replica-a"), &args).await;
    let b = ConsoleProcess::start_with(&dir.path().join("replica-b"), &args).await;

    // Every request waits 400 ms, so the run of 57 users lasts seconds, not milliseconds.
    let site = FaultServer::start(&["--users", "180", "--latency-ms", "400"]);
    let diagnosis = a.save_connection(&site.base, "", "").await;
    assert_eq!(diagnosis["ok"], json!(true), "{diagnosis}");
    // Users 120..=179, less the moderator (157), the admin (167) and the community creator
    // (142, whose DELETE the site refuses): 57 users the run deletes.
    let chosen: Vec<u32> = (120..=179)
        .filter(|i| ![142, 157, 167].contains(i))
        .collect();
    let mut text = String::from("Email\n");
    for i in &chosen {
        text.push_str(&format!("user{i}@example.com\n"));
    }
    let preview = a.preview_text(&text, "delete").await;
    assert_eq!(
        preview["counts"]["selected"],
        json!(chosen.len()),
        "{preview}"
    );
    let phrase = preview["phrase"].as_str().expect("phrase").to_string();
    let started = a
        .call(
            "start_job",
            &[
                ("preview_id", preview["id"].as_str().expect("id")),
                ("typed", &phrase),
            ],
        )
        .await
        .expect("start");
    let job_id = started["id"].as_str().expect("job id").to_string();

    // Killed mid-run, as a crash would: some users done, not all.
    let before = wait_for_job(&a, &job_id, 60, |j| j["done"].as_u64().unwrap_or(0) >= 5).await;
    a.kill();
    let at_kill = job(&b, &job_id).await;
    let done_at_kill = at_kill["done"].as_u64().expect("done");
    assert!(
        done_at_kill < chosen.len() as u64,
        "the run ended before replica A was killed: {before}"
    );
    assert!(
        !a.log_text().contains("job ended"),
        "replica A finished the run before it was killed"
    );

    // Replica B takes it over once A's lease expires, and finishes it.
    let finished = wait_for_job(&b, &job_id, 120, |j| j["state"] == json!("finished")).await;
    assert_eq!(finished["done"], json!(chosen.len()), "{finished}");
    assert_eq!(finished["total"], json!(chosen.len()), "{finished}");
    let log_b = b.log_text();
    assert!(
        log_b.contains("resuming job") && log_b.contains("lease expired"),
        "replica B did not take the run over; log:\n{log_b}"
    );
    assert!(log_b.contains("job ended"), "{log_b}");

    // The site saw every chosen user deleted, none twice.
    let state = site.state().await;
    at_most_one_delete_each(&state);
    let expected: BTreeSet<String> = chosen.iter().map(|i| (1000 + i).to_string()).collect();
    assert_eq!(deleted(&state), expected);

    // The report (read through B) is complete: exactly one result per user, each deleted.
    let results: Value = b
        .http
        .get(b.url(&format!("/downloads/jobs/{job_id}/results.json")))
        .send()
        .await
        .expect("results")
        .json()
        .await
        .expect("results JSON");
    let mut per_user: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in results.as_array().expect("an array of results") {
        per_user
            .entry(r["account_id"].as_str().expect("account").to_string())
            .or_default()
            .push(r["outcome"].as_str().expect("outcome").to_string());
    }
    assert_eq!(
        per_user.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "{results}"
    );
    for (account, outcomes) in &per_user {
        assert_eq!(outcomes.len(), 1, "{account}: {outcomes:?}");
    }
    // The "all users" listing was kept in A's data folder only: B says it does not have it.
    let listing = b
        .http
        .get(b.url(&format!("/downloads/jobs/{job_id}/all_users.json")))
        .send()
        .await
        .expect("listing");
    assert_eq!(listing.status().as_u16(), 404);
}
