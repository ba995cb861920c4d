//! A rolling restart, as a supervisor does it: two real `offboard serve` replicas on one
//! PostgreSQL database (the test binary's throwaway cluster), a run going on on replica A
//! against the project's fault server (a FAKE Stack site over real HTTP, slowed), a browser's
//! live-progress stream open on A, and A told to stop (SIGTERM). A must end the stream with a
//! reconnect hint, hand its leases back, and exit by itself with status 0; B takes the run
//! over (the lease is an hour: only a hand-back lets it) and finishes it exactly; the stream,
//! resumed on B from the last event A sent, carries the rest.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::console_process::ConsoleProcess;
use support::fault_server::{at_most_one_delete_each, deleted, FaultServer};

/// A fixed token key (base64 of 32 bytes): both replicas must decrypt the saved token.
const SECRET_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Polls the job through `console` until `what` holds (at most `seconds`, a safety net).
async fn wait_for_job(
    console: &ConsoleProcess,
    id: &str,
    seconds: u64,
    what: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let now = console.call("job", &[("job_id", id)]).await.expect("job");
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

/// One SSE stream as a browser reads it: the text so far.
struct Stream {
    reply: reqwest::Response,
    text: String,
}

impl Stream {
    /// Opens `/jobs/{id}/events` on `console`, resuming after `last_event_id` if given (as a
    /// browser's EventSource does when it reconnects).
    async fn open(console: &ConsoleProcess, job_id: &str, last_event_id: Option<&str>) -> Stream {
        let mut request = console
            .http
            .get(console.url(&format!("/jobs/{job_id}/events")))
            .header("Accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let reply = request.send().await.expect("events");
        assert_eq!(reply.status().as_u16(), 200);
        Stream {
            reply,
            text: String::new(),
        }
    }

    /// Reads until `until` holds of the text or the stream ends (120 s safety net); whether
    /// the stream ended.
    async fn read(&mut self, until: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !until(&self.text) {
            assert!(Instant::now() < deadline, "stream stalled:\n{}", self.text);
            match tokio::time::timeout(Duration::from_secs(10), self.reply.chunk()).await {
                Ok(Ok(Some(chunk))) => self.text.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(Ok(None)) => return true,
                Ok(Err(e)) => panic!("the stream failed: {e}\n{}", self.text),
                Err(_) => {}
            }
        }
        false
    }

    /// The `id:` of every event, in order.
    fn ids(&self) -> Vec<i64> {
        self.text
            .lines()
            .filter_map(|l| l.strip_prefix("id: "))
            .filter_map(|id| id.trim().parse().ok())
            .collect()
    }

    /// The users whose result the stream carried.
    fn results(&self) -> Vec<String> {
        self.text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|e| e["result"]["account_id"].as_str().map(str::to_string))
            .collect()
    }
}

/// The users of a pasted list, with its header line.
fn pasted(users: &[u32]) -> String {
    let mut text = String::from("Email\n");
    for i in users {
        text.push_str(&format!("user{i}@example.com\n"));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_told_to_stop_ends_its_streams_hands_its_runs_over_and_exits_cleanly() {
    let url = support::pg_cluster::shared().fresh_database().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // An hour's lease: B can take the run over during the test only if A hands it back.
    let args = [
        "--database-url",
        url.as_str(),
        "--secret-key",
        SECRET_KEY,
        "--job-lease-seconds",
        "3600",
    ];
    let a = ConsoleProcess::start_with(&dir.path().join("replica-a"), &args).await;
    let b = ConsoleProcess::start_with(&dir.path().join("replica-b"), &args).await;
    let site = FaultServer::start(&["--users", "180", "--latency-ms", "300"]);
    let diagnosis = a.save_connection(&site.base, "", "").await;
    assert_eq!(diagnosis["ok"], json!(true), "{diagnosis}");

    // 57 users the run deletes (the moderator 157, the admin 167 and the community creator
    // 142, whose DELETE the site refuses, left out).
    let chosen: Vec<u32> = (120..=179)
        .filter(|i| ![142, 157, 167].contains(i))
        .collect();
    let preview = a.preview_text(&pasted(&chosen), "delete").await;
    assert_eq!(preview["counts"]["selected"], json!(chosen.len()));
    let job_id = a.start_run(&preview).await;
    // The replica that starts a run claims it right after writing it; the other one's
    // periodic claim can take it in that gap (JobSupervisor::start allows it). From here on,
    // "A" is whichever replica drives the run, the one told to stop.
    let holder: String = {
        use sqlx::Connection;
        let mut db = sqlx::PgConnection::connect(&url)
            .await
            .expect("the database");
        sqlx::query_scalar("SELECT holder FROM job_leases WHERE job_id = $1")
            .bind(&job_id)
            .fetch_one(&mut db)
            .await
            .expect("the run's lease")
    };
    let (mut a, b) = if holder.starts_with(&format!("{}-", b.pid())) {
        (b, a)
    } else {
        (a, b)
    };

    // A browser follows the run on A; some users are done.
    let mut on_a = Stream::open(&a, &job_id, None).await;
    on_a.read(|t| t.matches("\"result\"").count() >= 3).await;
    assert!(!on_a.text.contains("event: end"), "the run ended too soon");

    a.ask_to_stop();
    // A's stream ends (by itself: the read stops only at its end) with the hint to come back.
    let ended = on_a.read(|_| false).await;
    assert!(ended);
    assert!(
        on_a.text.contains("event: reconnect\n") && on_a.text.contains("retry: 500\n"),
        "no reconnect hint on A's stream:\n{}",
        on_a.text
    );
    assert!(!on_a.text.contains("event: end"), "{}", on_a.text);
    // A exits by itself, cleanly, with the stream that used to hold it open gone.
    let status = a.wait_for_exit().expect("replica A did not exit by itself");
    assert!(status.success(), "replica A exited with {status}");
    let log_a = a.log_text();
    assert!(
        log_a.contains("handed the running jobs back") && !log_a.contains("job ended"),
        "{log_a}"
    );
    // Nothing of A's is still leased once it is gone (read behind the consoles' backs).
    let still_held: Vec<String> = {
        use sqlx::Connection;
        let mut db = sqlx::PgConnection::connect(&url)
            .await
            .expect("the database");
        sqlx::query_scalar(
            "SELECT job_id FROM job_leases WHERE holder LIKE $1 AND expires_at > '-infinity'",
        )
        .bind(format!("{}-%", a.pid()))
        .fetch_all(&mut db)
        .await
        .expect("the leases")
    };
    assert!(still_held.is_empty(), "A still holds {still_held:?}");

    // The browser comes back, to B, after the last event it saw: nothing missed, nothing twice.
    let seen_on_a = on_a.ids();
    let last = seen_on_a.last().expect("A sent events").to_string();
    let mut on_b = Stream::open(&b, &job_id, Some(&last)).await;
    on_b.read(|t| t.contains("event: end")).await;
    let ids: Vec<i64> = seen_on_a.iter().chain(&on_b.ids()).copied().collect();
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "events missed or repeated across the hand-over: {ids:?}"
    );
    let finished = wait_for_job(&b, &job_id, 120, |j| j["state"] == json!("finished")).await;
    assert_eq!(finished["done"], json!(chosen.len()), "{finished}");

    // Exactly once: every chosen user deleted, none twice, nobody else; each result once.
    let expected: BTreeSet<String> = chosen.iter().map(|i| (1000 + i).to_string()).collect();
    let state = site.state().await;
    at_most_one_delete_each(&state);
    assert_eq!(deleted(&state), expected);
    let mut results = on_a.results();
    results.extend(on_b.results());
    assert_eq!(results.len(), chosen.len(), "{results:?}");
    assert_eq!(results.into_iter().collect::<BTreeSet<_>>(), expected);
    let log_b = b.log_once_it_says("job ended").await;
    assert!(log_b.contains("resuming job"), "{log_b}");
}
