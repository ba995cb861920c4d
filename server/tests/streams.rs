//! Live-progress streams (`GET /jobs/{id}/events`) through the real `offboard serve` binary:
//! a stream ends, saying why, once its viewer is removed from the team, signs out everywhere
//! or signs out, and delivers nothing more; one person cannot take every place of a run.
//! The site is the project's fault server, a FAKE Stack site (a Stack-shaped test double, not
//! Stack), slowed so the run goes on meanwhile.

mod support;

use reqwest::{Client, StatusCode};
use serde_json::Value;
use std::time::{Duration, Instant};
use support::console_process::{client_with, session_cookie, ConsoleProcess};
use support::fault_server::FaultServer;

const PASSWORD: &str = "a long enough password";
const VIEWER: &str = "vic@a.example";
/// Generous: a stream must end within a couple of re-check periods; this bound only stops a
/// test that would otherwise hang.
const BOUND: Duration = Duration::from_secs(30);

/// A console with a site slow enough (one request at a time, 300 ms each) that a run of 150
/// users lasts long after every check here, and that run started by the first owner.
struct Stage {
    _site: FaultServer,
    console: ConsoleProcess,
    job_id: String,
}

async fn stage(database_url: Option<&str>) -> (Stage, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let site = FaultServer::start(&["--users", "200", "--latency-ms", "300"]);
    let mut args = vec!["--site-concurrency", "1"];
    if let Some(url) = database_url {
        args.extend(["--database-url", url]);
    }
    let console = ConsoleProcess::start_with(&dir.path().join("data"), &args).await;
    let diagnosis = console.save_connection(&site.base, "", "").await;
    assert_eq!(diagnosis["ok"], Value::Bool(true), "{diagnosis}");
    let list: String = (1..=150)
        .map(|i| format!("user{i}@example.com\n"))
        .collect();
    let preview = console
        .preview_text(&format!("Email\n{list}"), "deactivate")
        .await;
    let job_id = console.start_run(&preview).await;
    (
        Stage {
            _site: site,
            console,
            job_id,
        },
        dir,
    )
}

/// A viewer of the first owner's team, joined through a one-time invitation link, signed in
/// with their own cookie.
async fn viewer(console: &ConsoleProcess) -> Client {
    support::people::invited(console, &console.http, "viewer", VIEWER, "Vic").await
}

/// One open SSE stream and the text it delivered so far.
struct Stream {
    reply: reqwest::Response,
    text: String,
    closed: bool,
}

impl Stream {
    async fn open(console: &ConsoleProcess, who: &Client, job_id: &str) -> Stream {
        let reply = request(console, who, job_id).await;
        assert_eq!(reply.status(), StatusCode::OK, "{:?}", reply.text().await);
        Stream {
            reply,
            text: String::new(),
            closed: false,
        }
    }

    /// Reads until `what` holds of the text, or the stream closes, or [`BOUND`] passed.
    async fn read_until(&mut self, what: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + BOUND;
        while !what(&self.text) && !self.closed && Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(1), self.reply.chunk()).await {
                Ok(Ok(Some(chunk))) => self.text.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(Ok(None)) | Ok(Err(_)) => self.closed = true,
                Err(_) => {}
            }
        }
    }

    /// The `id:` of every event delivered, in order.
    fn ids(&self) -> Vec<i64> {
        self.text
            .lines()
            .filter_map(|l| l.strip_prefix("id: "))
            .filter_map(|id| id.trim().parse().ok())
            .collect()
    }
}

async fn request(console: &ConsoleProcess, who: &Client, job_id: &str) -> reqwest::Response {
    who.get(console.url(&format!("/jobs/{job_id}/events")))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .expect("events request")
}

/// The viewer follows the run while the owner does too; `end_access` ends the viewer's access.
/// Their stream then ends with `words` and closes, nothing after; the run goes on (the owner's
/// stream gets later events); and the viewer's stream cannot be opened again (`refused`).
async fn a_stream_ends_when_access_does<F, Fut>(
    stage: &Stage,
    end_access: F,
    words: &str,
    refused: StatusCode,
) where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let console = &stage.console;
    let viewer = viewer(console).await;
    let mut theirs = Stream::open(console, &viewer, &stage.job_id).await;
    let mut owners = Stream::open(console, &console.http, &stage.job_id).await;
    theirs.read_until(|t| t.contains("\"result\":{")).await;
    assert!(
        theirs.text.contains("\"result\":{") && !theirs.closed,
        "the viewer follows the run's results: {}",
        theirs.text
    );

    end_access(viewer.clone()).await;
    theirs.read_until(|_| false).await;
    assert!(theirs.closed, "the stream did not end: {}", theirs.text);
    let (before, after) = theirs
        .text
        .split_once("event: ended")
        .unwrap_or_else(|| panic!("no ending event: {}", theirs.text));
    assert!(after.contains(words), "{after}");
    assert!(
        !after.contains("event: job") && !after.contains("id: "),
        "delivered after the end: {after}"
    );
    assert!(before.contains("event: job"));
    assert!(
        !theirs.text.contains("event: end\n"),
        "the run itself ended"
    );

    // The run went on: the owner's stream gets events the viewer's never carried.
    let last_seen = *theirs.ids().last().expect("the viewer saw events");
    owners
        .read_until(|t| {
            t.lines()
                .filter_map(|l| l.strip_prefix("id: "))
                .any(|id| id.trim().parse::<i64>().is_ok_and(|id| id > last_seen))
        })
        .await;
    assert!(
        owners.ids().iter().any(|&id| id > last_seen),
        "the owner's stream: {}",
        owners.text
    );
    assert!(!owners.closed, "{}", owners.text);
    // The browser's reconnection is refused too.
    let again = request(console, &viewer, &stage.job_id).await;
    assert_eq!(again.status(), refused, "{:?}", again.text().await);
}

async fn removed_from_the_team(stage: &Stage) {
    let console = &stage.console;
    a_stream_ends_when_access_does(
        stage,
        |_| async {
            let removed = console
                .post_form(
                    &console.http,
                    "/team/members/remove",
                    &[("email", VIEWER), ("confirm", "yes")],
                )
                .await;
            let to = removed
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            assert!(to.contains("problem=done"), "{to}");
        },
        "no longer a member of its team",
        // Someone in no team gets 404 for team routes.
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn a_viewer_removed_from_the_team_stops_receiving_results() {
    let (stage, _dir) = stage(None).await;
    removed_from_the_team(&stage).await;
}

#[tokio::test]
async fn a_viewer_removed_from_the_team_stops_receiving_results_on_postgres() {
    let url = support::pg_cluster::shared().fresh_database().await;
    let (stage, _dir) = stage(Some(&url)).await;
    removed_from_the_team(&stage).await;
}

#[tokio::test]
async fn signing_out_everywhere_from_another_browser_ends_the_stream() {
    let (stage, _dir) = stage(None).await;
    let console = &stage.console;
    a_stream_ends_when_access_does(
        &stage,
        |_| async {
            let signed_in = console
                .post_form(
                    &console.anonymous(),
                    "/sign-in",
                    &[("email", VIEWER), ("password", PASSWORD), ("next", "/")],
                )
                .await;
            let phone = client_with(Some(&session_cookie(&signed_in).expect("signed in")));
            let out = console
                .post_form(&phone, "/account/sign-out-everywhere", &[])
                .await;
            assert_eq!(out.status(), StatusCode::SEE_OTHER);
        },
        "your session ended",
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn signing_out_ends_the_stream() {
    let (stage, _dir) = stage(None).await;
    let console = &stage.console;
    a_stream_ends_when_access_does(
        &stage,
        |viewer| async move {
            let out = console.post_form(&viewer, "/sign-out", &[]).await;
            assert_eq!(out.status(), StatusCode::SEE_OTHER);
        },
        "you signed out",
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn one_viewer_cannot_take_every_place_of_a_run() {
    let (stage, _dir) = stage(None).await;
    let console = &stage.console;
    let viewer = viewer(console).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(Stream::open(console, &viewer, &stage.job_id).await);
    }
    let sixth = request(console, &viewer, &stage.job_id).await;
    assert_eq!(sixth.status(), StatusCode::TOO_MANY_REQUESTS);
    let words = sixth.text().await.unwrap();
    assert!(
        words.contains("too many tabs or windows (5 at most)"),
        "{words}"
    );
    // The owner still follows their run, and the viewer's streams are still open.
    let mut owners = Stream::open(console, &console.http, &stage.job_id).await;
    owners.read_until(|t| t.contains("event: job")).await;
    assert!(owners.text.contains("event: job"), "{}", owners.text);
    for stream in &mut held {
        stream.read_until(|t| t.contains("event: job")).await;
        assert!(
            stream.text.contains("event: job") && !stream.closed,
            "{}",
            stream.text
        );
    }
    // A closed stream gives its place back.
    held.pop();
    let deadline = Instant::now() + BOUND;
    loop {
        let reply = request(console, &viewer, &stage.job_id).await;
        if reply.status() == StatusCode::OK {
            break;
        }
        assert_eq!(reply.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(Instant::now() < deadline, "the place was not given back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
