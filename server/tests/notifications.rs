//! Team webhooks through the real `offboard serve` binary, on SQLite and on PostgreSQL, with a
//! real HTTP receiver in this test that checks every signature (as a team's own receiver
//! would), and the project's Stack-shaped fault server as the site (a FAKE Stack site).
//!
//! - only an owner saves a webhook; its signing secret is shown once, its address's path never;
//! - an invitation accepted, a request for approval and its decline each reach the receiver,
//!   signed, with a stable delivery id, a link from --public-url, counts and no user's email;
//! - a receiver that answers 500 is tried again, the delivery log says why, and the message
//!   arrives once the receiver is back;
//! - a console killed while the receiver holds its request: another process started on the
//!   same database delivers it after the claim lapses, with the same delivery id.

mod support;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use hmac::{Hmac, Mac};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::console_process::ConsoleProcess;
use support::fault_server::FaultServer;
use support::pg_cluster::PgCluster;
use support::scim2_server::free_port;

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    delivery: String,
    event: String,
    body: Value,
    raw: String,
    /// Whether its signature checked out with the secret the Team page showed.
    signed: bool,
}

/// How the receiver answers the next requests.
#[derive(Default)]
struct Receiver {
    secret: Mutex<String>,
    got: Mutex<Vec<Received>>,
    /// Answer 500 to this many requests first.
    fail_next: Mutex<u32>,
    /// Hold every request without answering (a receiver that hangs).
    hang: Mutex<bool>,
}

/// Checks `t=<seconds>,v1=<hex>` as a receiver of ours would, in a few lines.
fn verify(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    want == v1
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> AxumStatus {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let secret = r.secret.lock().unwrap().clone();
    let got = Received {
        delivery: header("x-offboard-delivery"),
        event: header("x-offboard-event"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: String::from_utf8_lossy(&body).into_owned(),
        signed: verify(&secret, &header("x-offboard-signature"), &body),
    };
    r.got.lock().unwrap().push(got);
    if *r.hang.lock().unwrap() {
        tokio::time::sleep(Duration::from_secs(600)).await;
    }
    let mut fail = r.fail_next.lock().unwrap();
    if *fail > 0 {
        *fail -= 1;
        return AxumStatus::INTERNAL_SERVER_ERROR;
    }
    AxumStatus::NO_CONTENT
}

/// Starts the receiver on 127.0.0.1; its address and state.
async fn start_receiver() -> (String, Arc<Receiver>) {
    let state = Arc::new(Receiver::default());
    let app = axum::Router::new()
        .route("/hooks/offboard", post(receive))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}/hooks/offboard", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (address, state)
}

impl Receiver {
    /// The requests got so far for `event`.
    fn of(&self, event: &str) -> Vec<Received> {
        let got = self.got.lock().unwrap();
        got.iter().filter(|r| r.event == event).cloned().collect()
    }

    /// Waits (up to `limit`) until `n` requests for `event` arrived.
    async fn until(&self, event: &str, n: usize, limit: Duration) -> Vec<Received> {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.of(event);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{event}: {} of {n} arrived; all: {:?}",
                got.len(),
                self.got.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

struct Stage {
    console: ConsoleProcess,
    _site: FaultServer,
    public_url: String,
    args: Vec<String>,
}

async fn stage(data: &std::path::Path, database_url: Option<&str>) -> Stage {
    let site = FaultServer::start(&["--users", "20"]);
    let port = free_port();
    let public_url = format!("http://127.0.0.1:{port}");
    let mut args: Vec<String> = vec![
        "--allow-http-loopback-sites".into(),
        "--public-url".into(),
        public_url.clone(),
    ];
    if let Some(url) = database_url {
        args.extend(["--database-url".into(), url.to_string()]);
    }
    let flags: Vec<&str> = args.iter().map(String::as_str).collect();
    let console = ConsoleProcess::start_at(port, data, &flags).await;
    let diagnosis = console.save_connection(&site.base, "", "").await;
    assert_eq!(diagnosis["ok"], json!(true), "{diagnosis}");
    Stage {
        console,
        _site: site,
        public_url,
        args,
    }
}

/// The delivery log's newest line once its state is `state` (failing after `seconds`).
async fn newest_delivery_once(
    console: &ConsoleProcess,
    owner: &Client,
    state: &str,
    seconds: u64,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let page = console.json_as(owner, "webhook_page", &[]).await;
        let line = page["deliveries"][0].clone();
        if line["state"] == json!(state) {
            return line;
        }
        assert!(Instant::now() < deadline, "never {state}: {page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Olive saves the receiver's address; the secret the page shows once.
async fn save_webhook(console: &ConsoleProcess, olive: &Client, address: &str) -> String {
    let saved = console
        .post_form(olive, "/team/webhook", &[("address", address)])
        .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let back = saved.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(back, "/team?problem=done#notifications");
    let page = console.json_as(olive, "webhook_page", &[]).await;
    let secret = page["new_secret"]
        .as_str()
        .expect("the secret, once")
        .to_string();
    assert!(secret.starts_with("whsec_"), "{page}");
    let again = console.json_as(olive, "webhook_page", &[]).await;
    assert_eq!(again["new_secret"], Value::Null, "shown once: {again}");
    assert_eq!(
        again["webhook"]["address"],
        json!(address.rsplit_once("/hooks").unwrap().0.to_string() + "/…"),
        "the path is never shown: {again}"
    );
    secret
}

async fn webhooks_reach_the_team_signed(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let s = stage(&dir.path().join("data"), database_url).await;
    let console = &s.console;
    let olive = console.http.clone();
    let (address, receiver) = start_receiver().await;
    let secret = save_webhook(console, &olive, &address).await;
    *receiver.secret.lock().unwrap() = secret.clone();

    // Carol accepts her invitation: Olive's team hears of it.
    let carol =
        support::people::invited(console, &olive, "operator", "carol@offboard.test", "Carol").await;
    let vera =
        support::people::invited(console, &olive, "viewer", "vera@offboard.test", "Vera").await;
    let joined = receiver
        .until("invitation_accepted", 2, Duration::from_secs(30))
        .await;
    assert!(joined.iter().all(|r| r.signed), "{joined:?}");
    assert!(joined[0].body["text"]
        .as_str()
        .unwrap()
        .contains("joined team"));

    // Nobody but an owner may change or even see the webhook.
    for who in [&carol, &vera] {
        for path in [
            "/team/webhook",
            "/team/webhook/test",
            "/team/webhook/remove",
        ] {
            let refused = console
                .post_form(who, path, &[("address", "http://127.0.0.1:9/evil")])
                .await;
            assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{path}");
        }
        assert_eq!(console.json_as(who, "webhook_page", &[]).await, Value::Null);
    }
    // An internal address is refused when a hosted console (no loopback allowance) checks
    // it: here loopback is allowed for the test, so a non-https, non-loopback one is tried.
    let refused = console
        .post_form(
            &olive,
            "/team/webhook",
            &[("address", "http://10.1.2.3/hook")],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::SEE_OTHER);
    let page = console.json_as(&olive, "webhook_page", &[]).await;
    assert_eq!(page["new_secret"], Value::Null, "nothing was saved: {page}");

    // Carol asks for approval of deleting three users.
    let emails = [
        "user1@example.com",
        "user2@example.com",
        "user3@example.com",
    ];
    let text = format!("Email\n{}\n", emails.join("\n"));
    let preview = console.preview_text_as(&carol, &text).await;
    let preview_id = preview["id"].as_str().unwrap().to_string();
    let phrase = preview["phrase"].as_str().unwrap().to_string();
    console
        .json_as(
            &carol,
            "request_approval",
            &[("preview_id", &preview_id), ("typed", &phrase)],
        )
        .await;
    let asked = receiver
        .until("approval_requested", 1, Duration::from_secs(30))
        .await;
    let asked = &asked[0];
    assert!(asked.signed, "{asked:?}");
    assert_eq!(asked.body["id"], json!(asked.delivery));
    assert_eq!(
        asked.body["link"],
        json!(format!("{}/preview?id={preview_id}", s.public_url))
    );
    assert!(
        asked.body["text"].as_str().unwrap().contains("Carol"),
        "{:?}",
        asked.body
    );
    assert!(
        asked.body["text"]
            .as_str()
            .unwrap()
            .contains("delete 3 users"),
        "{:?}",
        asked.body
    );
    for email in emails {
        assert!(
            !asked.raw.contains(email),
            "no user's email leaves: {}",
            asked.raw
        );
    }
    // Olive declines it, with a reason.
    console
        .json_as(
            &olive,
            "decline_approval",
            &[("preview_id", &preview_id), ("reason", "Wrong list")],
        )
        .await;
    let declined = receiver
        .until("approval_declined", 1, Duration::from_secs(30))
        .await;
    assert!(declined[0].signed);
    assert!(declined[0].body["text"]
        .as_str()
        .unwrap()
        .contains("Wrong list"));

    // Carol asks again; Olive approves by starting it: "approved and started", then the end.
    let preview = console.preview_text_as(&carol, &text).await;
    let again_id = preview["id"].as_str().unwrap().to_string();
    let phrase = preview["phrase"].as_str().unwrap().to_string();
    console
        .json_as(
            &carol,
            "request_approval",
            &[("preview_id", &again_id), ("typed", &phrase)],
        )
        .await;
    let job = console
        .json_as(
            &olive,
            "start_job",
            &[("preview_id", &again_id), ("typed", &phrase)],
        )
        .await;
    let job_id = job["id"].as_str().unwrap().to_string();
    let given = receiver
        .until("approval_given", 1, Duration::from_secs(30))
        .await;
    assert!(given[0].signed);
    assert!(
        given[0].body["text"]
            .as_str()
            .unwrap()
            .contains("approved Carol"),
        "{:?}",
        given[0].body
    );
    assert_eq!(
        given[0].body["link"],
        json!(format!("{}/run?id={job_id}", s.public_url))
    );
    let ended = receiver
        .until("run_ended", 1, Duration::from_secs(60))
        .await;
    assert!(ended[0].signed);
    assert_eq!(
        ended[0].body["title"],
        json!("Run finished"),
        "{:?}",
        ended[0].body
    );
    assert!(
        ended[0].body["text"]
            .as_str()
            .unwrap()
            .contains("3 of 3 users processed (3 deleted)"),
        "{:?}",
        ended[0].body
    );

    // A receiver that fails: tried again, the log says why, and it arrives once back.
    *receiver.fail_next.lock().unwrap() = 1;
    let test = console.post_form(&olive, "/team/webhook/test", &[]).await;
    assert_eq!(test.status(), StatusCode::SEE_OTHER);
    receiver.until("test", 1, Duration::from_secs(30)).await;
    let line = newest_delivery_once(console, &olive, "Will try again", 30).await;
    assert!(
        line["detail"]
            .as_str()
            .unwrap()
            .starts_with("The receiver answered 500"),
        "{line}"
    );
    // The first retry comes 30 s later.
    let tries = receiver.until("test", 2, Duration::from_secs(60)).await;
    assert_eq!(
        tries[0].delivery, tries[1].delivery,
        "one delivery id for every try"
    );
    let line = newest_delivery_once(console, &olive, "Delivered", 10).await;
    assert_eq!(line["detail"], json!("after 2 tries"));
    // Every delivery was sent once (the test message twice, by design), none to anyone else.
    let got = receiver.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2 + 1 + 1 + 2 + 1 + 2, "{got:?}");
    assert!(
        !console.log_text().contains(&secret[6..]),
        "the secret is never logged"
    );
}

async fn a_killed_console_s_delivery_is_sent_after_take_over(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut s = stage(&data, database_url).await;
    let olive = s.console.http.clone();
    let (address, receiver) = start_receiver().await;
    let secret = save_webhook(&s.console, &olive, &address).await;
    *receiver.secret.lock().unwrap() = secret;
    *receiver.hang.lock().unwrap() = true;
    let test = s.console.post_form(&olive, "/team/webhook/test", &[]).await;
    assert_eq!(test.status(), StatusCode::SEE_OTHER);
    let first = receiver.until("test", 1, Duration::from_secs(30)).await;
    // Killed while the receiver holds its request: nothing was recorded.
    s.console.kill();
    *receiver.hang.lock().unwrap() = false;
    let flags: Vec<&str> = s.args.iter().map(String::as_str).collect();
    // On the same port: --public-url names it.
    let port: u16 = s.public_url.rsplit(':').next().unwrap().parse().unwrap();
    let again = ConsoleProcess::start_at(port, &data, &flags).await;
    // Its claim lapses (45 s) and the new process sends the same delivery.
    let tries = receiver.until("test", 2, Duration::from_secs(90)).await;
    assert_eq!(tries[1].delivery, first[0].delivery, "the same delivery id");
    assert!(tries[1].signed);
    newest_delivery_once(&again, &again.http, "Delivered", 10).await;
    // Nothing more comes: delivered is delivered.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.of("test").len(), 2);
}

#[tokio::test]
async fn webhooks_reach_the_team_signed_on_sqlite() {
    webhooks_reach_the_team_signed(None).await;
}

#[tokio::test]
async fn webhooks_reach_the_team_signed_on_postgres() {
    let cluster = PgCluster::start().unwrap_or_else(|why| panic!("{why}"));
    let url = cluster.fresh_database().await;
    webhooks_reach_the_team_signed(Some(&url)).await;
}

#[tokio::test]
async fn a_killed_console_s_delivery_is_sent_after_take_over_on_sqlite() {
    a_killed_console_s_delivery_is_sent_after_take_over(None).await;
}

#[tokio::test]
async fn a_killed_console_s_delivery_is_sent_after_take_over_on_postgres() {
    let cluster = PgCluster::start().unwrap_or_else(|why| panic!("{why}"));
    let url = cluster.fresh_database().await;
    a_killed_console_s_delivery_is_sent_after_take_over(Some(&url)).await;
}
