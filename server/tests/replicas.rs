//! Two real `offboard serve` replicas on one PostgreSQL database (the test binary's throwaway
//! cluster, tests/support/pg_cluster.rs), each with its own data folder and the same token key,
//! and the project's Stack-shaped fault server (a FAKE Stack site over real HTTP, slowed with
//! `--latency-ms`): the replica driving a run is stopped mid-run, killed with SIGKILL (the
//! other takes the run over once the lease expires) or told to stop with SIGTERM (it hands the
//! run back at once); either way the other finishes the run, with no DELETE sent twice and one
//! result per user, and serves its reports (the "all users" listing A took included).

mod support;

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use support::console_process::ConsoleProcess;
use support::fault_server::{at_most_one_delete_each, deleted, FaultServer};

/// A fixed token key (base64 of 32 bytes): both replicas must decrypt the saved token.
const SECRET_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

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

/// Two replicas on a fresh database of the shared cluster (each with its own data folder, both
/// with `flags` too) and a fault server started with `site_flags`, saved as the team's site
/// through replica A.
struct TwoReplicas {
    a: ConsoleProcess,
    b: ConsoleProcess,
    site: FaultServer,
    /// Holds the data folders until the test ends.
    _dir: tempfile::TempDir,
}

async fn two_replicas(flags: &[&str], site_flags: &[&str]) -> TwoReplicas {
    let url = support::pg_cluster::shared().fresh_database().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = vec!["--database-url", url.as_str(), "--secret-key", SECRET_KEY];
    args.extend_from_slice(flags);
    let a = ConsoleProcess::start_with(&dir.path().join("replica-a"), &args).await;
    let b = ConsoleProcess::start_with(&dir.path().join("replica-b"), &args).await;
    let site = FaultServer::start(site_flags);
    let diagnosis = a.save_connection(&site.base, "", "").await;
    assert_eq!(diagnosis["ok"], json!(true), "{diagnosis}");
    TwoReplicas {
        a,
        b,
        site,
        _dir: dir,
    }
}

/// How replica A stops in the middle of the run.
enum Stop {
    /// SIGKILL: nothing handed back; B waits for the lease to expire.
    Crash,
    /// SIGTERM: A hands the run back as it stops.
    Told,
}

/// Starts a run of 57 users on replica A, stops A mid-run as `stop` says, and checks that
/// replica B finishes it: each user deleted once, one result each. `lease` is
/// `--job-lease-seconds` for both replicas.
async fn run_outlives_its_replica(stop: Stop, lease: &str) {
    // Every request waits 400 ms, so the run lasts seconds, not milliseconds.
    let TwoReplicas {
        mut a,
        b,
        site,
        _dir,
    } = two_replicas(
        &["--job-lease-seconds", lease],
        &["--users", "180", "--latency-ms", "400"],
    )
    .await;
    // Users 120..=179, less the moderator (157), the admin (167) and the community creator
    // (142, whose DELETE the site refuses): 57 users the run deletes.
    let chosen: Vec<u32> = (120..=179)
        .filter(|i| ![142, 157, 167].contains(i))
        .collect();
    let preview = a.preview_text(&pasted(chosen.clone()), "delete").await;
    assert_eq!(
        preview["counts"]["selected"],
        json!(chosen.len()),
        "{preview}"
    );
    let job_id = a.start_run(&preview).await;

    // Stopped mid-run: some users done, not all.
    let before = wait_for_job(&a, &job_id, 60, |j| j["done"].as_u64().unwrap_or(0) >= 5).await;
    // The site holds every DELETE from here until A's stop is checked: since the graceful
    // hand-over B takes the run at once, and without the hold it could finish all 57 before
    // the check below reads the job. A held DELETE whose sender stops is dropped uncounted.
    site.hold_deletes().await;
    match stop {
        Stop::Crash => a.kill(),
        Stop::Told => a.terminate(),
    }
    let at_stop = job(&b, &job_id).await;
    assert!(
        at_stop["done"].as_u64().expect("done") < chosen.len() as u64,
        "the run ended before replica A stopped: {before}"
    );
    let log_a = a.log_text();
    assert!(
        !log_a.contains("job ended"),
        "replica A finished the run before it stopped"
    );
    if let Stop::Told = stop {
        assert!(
            log_a.contains("handed the running jobs back"),
            "replica A did not hand the run back; log:\n{log_a}"
        );
    }
    site.release_deletes().await;

    // Replica B takes the run over and finishes it.
    let finished = wait_for_job(&b, &job_id, 120, |j| j["state"] == json!("finished")).await;
    assert_eq!(finished["done"], json!(chosen.len()), "{finished}");
    assert_eq!(finished["total"], json!(chosen.len()), "{finished}");
    // The end is logged just after it is stored: give the line a moment under load.
    let log_b = b.log_once_it_says("job ended").await;
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

    // The report (read through B) is complete: exactly one result per user.
    let results = downloaded_json(&b, &job_id, "results.json").await;
    let mut per_user: BTreeMap<String, usize> = BTreeMap::new();
    for r in results.as_array().expect("an array of results") {
        *per_user
            .entry(r["account_id"].as_str().expect("account").to_string())
            .or_default() += 1;
    }
    assert_eq!(
        per_user.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "{results}"
    );
    assert!(per_user.values().all(|n| *n == 1), "{per_user:?}");
    // The "all users" listing A took at the start is kept in the database: B serves it, the
    // whole site as it was then (the system account and the 180 users, deleted ones included).
    let listing = downloaded_json(&b, &job_id, "all_users.json").await;
    let listed: BTreeSet<&str> = listing
        .as_array()
        .expect("an array of users")
        .iter()
        .filter_map(|u| u["account_id"].as_str())
        .collect();
    assert_eq!(listed.len(), 181, "{listing}");
    assert!(expected.iter().all(|id| listed.contains(id.as_str())));
}

/// SIGKILL: B takes the run over once A's lease (3 s here) expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_replica_is_killed_is_finished_by_the_other_with_nothing_sent_twice() {
    run_outlives_its_replica(Stop::Crash, "3").await;
}

/// SIGTERM: A hands the run back as it stops. The lease is an hour, so B can only finish the
/// run within the test's two minutes if A released it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_told_to_stop_hands_its_run_back_to_the_other_at_once() {
    run_outlives_its_replica(Stop::Told, "3600").await;
}

/// Pause, resume and cancel pressed on replica B act on the run replica A drives: A stops
/// sending while paused, goes on after the resume (re-reading the users not yet acted on),
/// and settles the rest itself on the cancel, so every user ends with exactly one result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_cancel_on_one_replica_act_on_the_run_the_other_drives() {
    // A one-second lease: the replicas look at the stored state every ~330 ms.
    let TwoReplicas { a, b, site, _dir } = two_replicas(
        &["--job-lease-seconds", "1"],
        &["--users", "180", "--latency-ms", "300"],
    )
    .await;
    let chosen: Vec<u32> = (120..=179)
        .filter(|i| ![142, 157, 167].contains(i))
        .collect();
    let preview = a.preview_text(&pasted(chosen.clone()), "delete").await;
    let job_id = a.start_run(&preview).await;
    wait_for_job(&a, &job_id, 120, |j| j["done"].as_u64().unwrap_or(0) >= 3).await;

    let command = |name: &'static str| {
        let job_id = job_id.clone();
        let b = &b;
        async move {
            b.call(
                "control_job",
                &[("job_id", job_id.as_str()), ("command", name)],
            )
            .await
            .unwrap_or_else(|e| panic!("{name} on B: {e}"))
        }
    };
    // Pause on B: A stops sending (what was in flight settles first).
    assert_eq!(command("pause").await["state"], json!("paused"));
    // A says when it saw the pause; then what it had in flight lands (the site says when none
    // is left), and after that it sends nothing more (watched for a while, as a check).
    let log_a = a.log_once_it_says("paused on another replica").await;
    assert!(log_a.contains("paused on another replica"), "{log_a}");
    let settled = deleted(&site.settled().await).len();
    assert_eq!(
        deleted(&site.no_delete_during(Duration::from_secs(1)).await).len(),
        settled,
        "replica A went on deleting while paused on B"
    );
    assert!(settled < chosen.len(), "the run ended before the pause");

    // Resume on B: A goes on.
    assert_eq!(command("resume").await["state"], json!("running"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while deleted(&site.state().await).len() < settled + 3 {
        assert!(
            Instant::now() < deadline,
            "A did not go on after the resume on B"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log_a = a.log_once_it_says("resumed on another replica").await;
    assert!(log_a.contains("resumed on another replica"), "{log_a}");

    // Cancel on B: A settles the rest; every user has one result, none deleted twice.
    command("cancel").await;
    let ended = wait_for_job(&b, &job_id, 120, |j| j["state"] == json!("stopped")).await;
    assert_eq!(ended["done"], json!(chosen.len()), "{ended}");
    let state = site.state().await;
    at_most_one_delete_each(&state);
    assert!(
        deleted(&state).len() < chosen.len(),
        "the cancel came too late to test"
    );
    let results = downloaded_json(&b, &job_id, "results.json").await;
    let accounts: Vec<&str> = results
        .as_array()
        .expect("an array of results")
        .iter()
        .filter_map(|r| r["account_id"].as_str())
        .collect();
    let unique: BTreeSet<&str> = accounts.iter().copied().collect();
    assert_eq!(accounts.len(), chosen.len(), "{results}");
    assert_eq!(unique.len(), chosen.len(), "{results}");
    // The end names who cancelled on B and when, and so does every user A did not reach:
    // never "could not record its progress" (A met the cancel as a refused "sending" mark).
    let reason = ended["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(" cancelled the run at ") && reason.ends_with(" UTC."),
        "{ended}"
    );
    let not_attempted: Vec<&Value> = results
        .as_array()
        .expect("an array of results")
        .iter()
        .filter(|r| r["outcome"] == json!("not attempted"))
        .collect();
    assert!(!not_attempted.is_empty(), "{results}");
    for row in not_attempted {
        assert_eq!(
            row["message"],
            json!(format!("Not attempted: {reason}")),
            "{row}"
        );
    }
}

/// A browser on replica B follows, live, a run replica A drives: B's `/jobs/{id}/events`
/// stream carries every result and ends with the run's end, though no runner of B's wrote them
/// (B reads them from the shared database).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_on_one_replica_follows_a_run_the_other_drives() {
    let TwoReplicas { a, b, site, _dir } =
        two_replicas(&[], &["--users", "60", "--latency-ms", "100"]).await;
    let preview = a.preview_text(&pasted(20..=39), "delete").await;
    assert_eq!(preview["counts"]["selected"], json!(20), "{preview}");
    let job_id = a.start_run(&preview).await;

    let mut stream = b
        .http
        .get(b.url(&format!("/jobs/{job_id}/events")))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .expect("events on B");
    assert_eq!(stream.status().as_u16(), 200);
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !text.contains("event: end") {
        assert!(Instant::now() < deadline, "no end on B's stream:\n{text}");
        match tokio::time::timeout(Duration::from_secs(10), stream.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(Ok(None)) => break,
            Ok(Err(e)) => panic!("B's stream failed: {e}"),
            Err(_) => {}
        }
    }
    // Every user's result came through B, once, and the end says finished.
    let results: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|e| e["result"]["account_id"].as_str().map(str::to_string))
        .collect();
    let expected: BTreeSet<String> = (20..=39).map(|i| (1000 + i).to_string()).collect();
    assert_eq!(results, expected, "{text}");
    let end = text
        .split("event: end")
        .nth(1)
        .and_then(|rest| rest.lines().find_map(|l| l.strip_prefix("data: ")))
        .and_then(|d| serde_json::from_str::<Value>(d).ok())
        .expect("the end event");
    assert_eq!(end["state"], json!("finished"), "{end}");
    // A drove it: B's log has no run of its own.
    assert!(!b.log_text().contains("job ended"), "{}", b.log_text());
    at_most_one_delete_each(&site.state().await);
}

/// The report `file` of run `job_id`, downloaded through `console` and read as JSON.
async fn downloaded_json(console: &ConsoleProcess, job_id: &str, file: &str) -> Value {
    console
        .http
        .get(console.url(&format!("/downloads/jobs/{job_id}/{file}")))
        .send()
        .await
        .expect(file)
        .json()
        .await
        .expect(file)
}

/// A pasted list of the fault server's users `user{i}@example.com`.
fn pasted(users: impl IntoIterator<Item = u32>) -> String {
    let mut text = String::from("Email\n");
    for i in users {
        text.push_str(&format!("user{i}@example.com\n"));
    }
    text
}

/// Two runs against one site at once, one driven by each replica (`--runs-per-site 2`): the
/// site never has more than its 8 DELETEs in flight from both together (each run gets 4), a
/// third run is refused in plain words while both go on, and starts once they have ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_sites_request_limit() {
    // The site holds every DELETE until both runs have theirs in flight, so the two runs
    // certainly overlap however slowly either replica starts.
    let TwoReplicas { a, b, site, _dir } = two_replicas(
        &["--runs-per-site", "2"],
        &["--users", "200", "--latency-ms", "50"],
    )
    .await;
    // Plain users only: no moderator (i % 50 == 7 or 17), no community creator (i % 100 ==
    // 42), no shared email (user98@example.com is held by 1098 and 1099).
    let plain = |range: std::ops::RangeInclusive<u32>| -> Vec<u32> {
        range
            .filter(|i| ![7, 17].contains(&(i % 50)) && ![42, 98, 99].contains(&(i % 100)))
            .take(40)
            .collect()
    };
    let (first, second, third) = (plain(1..=60), plain(61..=120), plain(121..=190));
    let on_a = a.preview_text(&pasted(first.clone()), "delete").await;
    let on_b = b.preview_text(&pasted(second.clone()), "delete").await;
    let later = a.preview_text(&pasted(third.clone()), "delete").await;

    site.hold_deletes().await;
    let (job_a, job_b) = tokio::join!(a.start_run(&on_a), b.start_run(&on_b));
    // Each run's 4 DELETEs wait at the site together: both runs are sending at once.
    site.state_once(|s| s["deletes_in_flight"] == 8).await;
    let refused = a
        .call(
            "start_job",
            &[
                ("preview_id", later["id"].as_str().expect("id")),
                ("typed", later["phrase"].as_str().expect("phrase")),
            ],
        )
        .await
        .expect_err("a third run on the site");
    assert!(
        refused.contains("A run is already going on against") && refused.contains("2 at a time"),
        "{refused}"
    );
    site.release_deletes().await;
    for (console, job_id, users) in [(&a, &job_a, &first), (&b, &job_b, &second)] {
        let done = wait_for_job(console, job_id, 120, |j| j["state"] == json!("finished")).await;
        assert_eq!(done["done"], json!(users.len()), "{done}");
    }
    // Each replica drove the run it started (it logs the run's end, a moment after storing it).
    for (console, job_id) in [(&a, &job_a), (&b, &job_b)] {
        let ended = format!("job_id={job_id} state=finished");
        let log = console.log_once_it_says(&ended).await;
        assert!(log.contains(&ended), "{log}");
    }
    let state = site.state().await;
    at_most_one_delete_each(&state);
    let peak = state["peak_deletes_in_flight"].as_u64().expect("peak");
    assert!(peak <= 8, "the site had {peak} DELETEs in flight at once");
    assert!(
        peak > 4,
        "the two runs never sent at the same time (peak {peak}): nothing was shared"
    );

    // Both ended: the third run starts, and deletes its users.
    let job_c = a.start_run(&later).await;
    wait_for_job(&a, &job_c, 120, |j| j["state"] == json!("finished")).await;
    let expected: BTreeSet<String> = [first, second, third]
        .concat()
        .iter()
        .map(|i| (1000 + i).to_string())
        .collect();
    assert_eq!(deleted(&site.state().await), expected);
}
