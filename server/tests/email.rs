//! Email notifications through the real `offboard serve` binary, on SQLite and on PostgreSQL,
//! with a real mail server (PyPI aiosmtpd, `support/smtp_sink.py`) and the project's
//! Stack-shaped fault server as the site (a FAKE Stack site):
//!
//! - a mail server that is down, then refuses ("451 try again later"): the console keeps
//!   working, the Team page's delivery log says why in words, and every mail goes out once the
//!   server takes it;
//! - each event reaches the people it concerns, and only them: a request for approval the
//!   other operators and owners (not the one who asked, not a viewer); the approval the one who
//!   asked; the run's end whoever started and approved it, unless they turned that off on their
//!   Account page; an accepted invitation the owner who made it;
//! - a mail has a plain text and an HTML part, a link from --public-url, and no user's email.

mod support;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::console_process::ConsoleProcess;
use support::fault_server::FaultServer;
use support::pg_cluster::PgCluster;
use support::smtp_sink::SmtpSink;

const OLIVE: &str = "olive@offboard.test";
const CAROL: &str = "carol@offboard.test";
const OTTO: &str = "otto@offboard.test";
const VERA: &str = "vera@offboard.test";
/// Longer than the first retry (30 s) and the second (60 s) after a failed try.
const RETRIED: Duration = Duration::from_secs(150);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn json_of(
    console: &ConsoleProcess,
    who: &Client,
    name: &str,
    fields: &[(&str, &str)],
) -> Value {
    let (status, body) = console.call_as(who, name, fields).await;
    assert_eq!(status, StatusCode::OK, "{name}: {body}");
    serde_json::from_str(&body).expect("json")
}

/// The delivery log's line about `what` to `to`, once its detail contains `words` (failing
/// after `limit`).
async fn logged(
    console: &ConsoleProcess,
    owner: &Client,
    what: &str,
    to: &str,
    words: &str,
    limit: Duration,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let page = json_of(console, owner, "webhook_page", &[]).await;
        let line = page["deliveries"].as_array().and_then(|lines| {
            lines
                .iter()
                .find(|l| {
                    l["what"] == json!(what)
                        && l["to"] == json!(format!("Email to {to}"))
                        && l["detail"].as_str().is_some_and(|d| d.contains(words))
                })
                .cloned()
        });
        if let Some(line) = line {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} to {to} saying {words:?}: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn email_reaches_the_people_concerned(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let site = FaultServer::start(&["--users", "20"]);
    let (port, mail_port) = (free_port(), free_port());
    let public_url = format!("http://127.0.0.1:{port}");
    let smtp_url = format!("smtp://127.0.0.1:{mail_port}");
    let mut flags = vec![
        "--allow-http-loopback-sites",
        "--public-url",
        public_url.as_str(),
        "--smtp-url",
        smtp_url.as_str(),
        "--smtp-from",
        "Offboard <offboard@offboard.test>",
    ];
    if let Some(url) = database_url {
        flags.extend(["--database-url", url]);
    }
    // The mail server is not there yet.
    let console = ConsoleProcess::start_at(port, &dir.path().join("data"), &flags).await;
    let diagnosis = console.save_connection(&site.base, "", "").await;
    assert_eq!(diagnosis["ok"], json!(true), "{diagnosis}");
    let olive = console.http.clone();
    let carol = support::people::invited(&console, &olive, "operator", CAROL, "Carol").await;
    let _otto = support::people::invited(&console, &olive, "operator", OTTO, "Otto").await;
    let _vera = support::people::invited(&console, &olive, "viewer", VERA, "Vera").await;
    // Olive made the invitations: the mail about each could not go out, and the log says why.
    let down = logged(
        &console,
        &olive,
        "Invitation accepted",
        OLIVE,
        "Could not reach the mail server.",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(down["state"], json!("Will try again"), "{down}");

    // The mail server comes up, but says "try again later" for now; the console keeps working.
    let mail = SmtpSink::start_on(mail_port);
    mail.refuse(true);
    let emails = ["user1@example.com", "user2@example.com"];
    let text = format!("Email\n{}\n", emails.join("\n"));
    let preview = json_of(
        &console,
        &carol,
        "preview_text",
        &[
            ("file_name", "leavers.csv"),
            ("text", &text),
            ("action", "delete"),
            ("demote", "false"),
        ],
    )
    .await;
    let preview_id = preview["id"].as_str().unwrap().to_string();
    let phrase = preview["phrase"].as_str().unwrap().to_string();
    json_of(
        &console,
        &carol,
        "request_approval",
        &[("preview_id", &preview_id), ("typed", &phrase)],
    )
    .await;
    let refused = logged(
        &console,
        &olive,
        "Approval requested",
        OTTO,
        "The mail server refused the message (451",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(refused["state"], json!("Will try again"), "{refused}");
    mail.refuse(false);

    // Once the server takes mail: the request reaches the other operators and the owner.
    for to in [OLIVE, OTTO] {
        let got = mail.until(to, "Approval requested", 1, RETRIED).await;
        let m = &got[0];
        assert_eq!(m["subject"], json!("Offboard: Approval requested"), "{m}");
        assert_eq!(m["content_type"], json!("multipart/alternative"), "{m}");
        let link = format!("{public_url}/preview?id={preview_id}");
        assert!(m["text"].as_str().unwrap().contains(&link), "{m}");
        assert!(
            m["html"]
                .as_str()
                .unwrap()
                .contains(&format!("<a href=\"{link}\">Open it in Offboard</a>")),
            "{m}"
        );
        assert!(
            m["text"].as_str().unwrap().contains("delete 2 users"),
            "{m}"
        );
        for user in emails {
            assert!(!m.to_string().contains(user), "no user's email leaves: {m}");
        }
    }
    mail.until(OLIVE, "Invitation accepted", 3, RETRIED).await;
    let delivered = logged(
        &console,
        &olive,
        "Approval requested",
        OTTO,
        "after 2 tries",
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(delivered["state"], json!("Delivered"), "{delivered}");

    // Olive turns off mail about runs ending, on her Account page.
    let choices = json_of(&console, &olive, "email_choices", &[]).await;
    assert_eq!(choices["mail_on"], json!(true), "{choices}");
    assert_eq!(choices["email"], json!(OLIVE));
    assert!(
        choices["choices"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["on"] == json!(true)),
        "every event is on until turned off: {choices}"
    );
    let saved = console
        .post_form(
            &olive,
            "/account/email",
            &[
                ("approval_requested", "on"),
                ("approval_given", "on"),
                ("approval_declined", "on"),
                ("invitation_accepted", "on"),
            ],
        )
        .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let choices = json_of(&console, &olive, "email_choices", &[]).await;
    let run_ended = choices["choices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["event"] == json!("run_ended"))
        .cloned()
        .unwrap();
    assert_eq!(run_ended["on"], json!(false), "{choices}");

    // Olive approves: Carol hears it started, then that it finished; Olive (the approver) does
    // not, as she chose.
    let job = json_of(
        &console,
        &olive,
        "start_job",
        &[("preview_id", &preview_id), ("typed", &phrase)],
    )
    .await;
    let job_id = job["id"].as_str().unwrap().to_string();
    let started = mail
        .until(CAROL, "Approved and started", 1, Duration::from_secs(30))
        .await;
    assert!(
        started[0]["text"]
            .as_str()
            .unwrap()
            .contains(&format!("{public_url}/run?id={job_id}")),
        "{}",
        started[0]
    );
    let ended = mail
        .until(CAROL, "Run finished", 1, Duration::from_secs(60))
        .await;
    assert!(
        ended[0]["text"].as_str().unwrap().contains("2 of 2 users"),
        "{}",
        ended[0]
    );
    // Nothing else went out: not the request to Carol who asked, nothing to the viewer, no
    // run end to Olive, and no mail twice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut sent: Vec<(String, String)> = mail
        .messages()
        .iter()
        .map(|m| {
            (
                m["to"][0].as_str().unwrap().to_string(),
                m["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    sent.sort();
    let want = |to: &str, what: &str| (to.to_string(), format!("Offboard: {what}"));
    assert_eq!(
        sent,
        vec![
            want(CAROL, "Approved and started"),
            want(CAROL, "Run finished"),
            want(OLIVE, "Approval requested"),
            want(OLIVE, "Invitation accepted"),
            want(OLIVE, "Invitation accepted"),
            want(OLIVE, "Invitation accepted"),
            want(OTTO, "Approval requested"),
        ]
    );
}

#[tokio::test]
async fn email_reaches_the_people_concerned_on_sqlite() {
    email_reaches_the_people_concerned(None).await;
}

#[tokio::test]
async fn email_reaches_the_people_concerned_on_postgres() {
    let cluster = PgCluster::start().unwrap_or_else(|why| panic!("{why}"));
    let url = cluster.fresh_database().await;
    email_reaches_the_people_concerned(Some(&url)).await;
}
