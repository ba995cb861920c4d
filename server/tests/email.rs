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
//! - a mail has a plain text and an HTML part, a link from --public-url, and no user's email;
//! - a local account confirms its address by the link mailed to it, and only then takes up the
//!   membership a team gave that address by email; the link works only for its account, once.

mod support;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::console_process::ConsoleProcess;
use support::fault_server::FaultServer;
use support::pg_cluster::PgCluster;
use support::scim2_server::free_port;
use support::smtp_sink::SmtpSink;

const OLIVE: &str = "olive@offboard.test";
const CAROL: &str = "carol@offboard.test";
const OTTO: &str = "otto@offboard.test";
const VERA: &str = "vera@offboard.test";
/// Longer than the first retry (30 s) and the second (60 s) after a failed try.
const RETRIED: Duration = Duration::from_secs(150);

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
        let page = console.json_as(owner, "webhook_page", &[]).await;
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
    let choices = console.json_as(&olive, "email_choices", &[]).await;
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
    let choices = console.json_as(&olive, "email_choices", &[]).await;
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
    let job = console
        .json_as(
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

fn location(reply: &reqwest::Response) -> String {
    reply.headers()["location"].to_str().unwrap().to_string()
}

/// The team names `who` belongs to, sorted.
async fn teams_of(console: &ConsoleProcess, who: &Client) -> Vec<String> {
    let me = console.json_as(who, "whoami", &[]).await;
    let mut names: Vec<String> = me["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{} ({})",
                t["name"].as_str().unwrap(),
                t["role"].as_str().unwrap()
            )
        })
        .collect();
    names.sort();
    names
}

async fn a_local_account_confirms_its_address(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let mail = SmtpSink::start_on(free_port());
    let port = free_port();
    let public_url = format!("http://127.0.0.1:{port}");
    let smtp_url = format!("smtp://127.0.0.1:{}", mail.port);
    let mut flags = vec![
        "--public-url",
        public_url.as_str(),
        "--smtp-url",
        smtp_url.as_str(),
        "--smtp-from",
        "offboard@offboard.test",
    ];
    if let Some(url) = database_url {
        flags.extend(["--database-url", url]);
    }
    let console = ConsoleProcess::start_at(port, &dir.path().join("data"), &flags).await;
    let olive = console.http.clone();
    // Team B, where Pat and Mallory join by invitation (local accounts: nothing proven).
    let made = console
        .post_form(&olive, "/teams", &[("name", "Team B")])
        .await;
    assert!(location(&made).contains("problem=done"), "{made:?}");
    let teams = console.json_as(&olive, "console_teams", &[]).await;
    let team_b = teams[0]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == json!("Team B"))
        .expect("team B")["id"]
        .to_string();
    console
        .post_form(&olive, "/account/team", &[("team", &team_b)])
        .await;
    let pat =
        support::people::invited(&console, &olive, "viewer", "pat@offboard.test", "Pat").await;
    let mallory = support::people::invited(
        &console,
        &olive,
        "viewer",
        "mallory@offboard.test",
        "Mallory",
    )
    .await;
    // Olive's first team gives pat@ a membership by email: it waits for a proof.
    console
        .post_form(&olive, "/account/team", &[("team", "1")])
        .await;
    let first = console.json_as(&olive, "whoami", &[]).await["team"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let granted = console
        .post_form(
            &olive,
            "/team/members",
            &[("email", "pat@offboard.test"), ("role", "operator")],
        )
        .await;
    assert_eq!(granted.status(), StatusCode::SEE_OTHER);
    assert_eq!(teams_of(&console, &pat).await, vec!["Team B (viewer)"]);
    let choices = console.json_as(&pat, "email_choices", &[]).await;
    assert_eq!(
        (choices["mail_on"].clone(), choices["confirmed"].clone()),
        (json!(true), json!(false))
    );

    // Pat asks for a link; it arrives, for her only.
    let sent = console
        .post_form(&pat, "/account/confirm-email/send", &[])
        .await;
    assert_eq!(location(&sent), "/account?problem=confirmation-sent");
    let got = mail
        .until(
            "pat@offboard.test",
            "Confirm your email address",
            1,
            Duration::from_secs(20),
        )
        .await;
    let text = got[0]["text"].as_str().unwrap();
    let link = text
        .split_whitespace()
        .find(|w| w.starts_with(&format!("{public_url}/account?confirm=")))
        .unwrap_or_else(|| panic!("a link in {text}"));
    let code = link
        .split("confirm=")
        .nth(1)
        .and_then(|c| c.split('#').next())
        .unwrap()
        .to_string();
    // The code lands nowhere but in the mail: not in the console's log.
    assert!(
        !console.log_text().contains(&code),
        "the code stays out of the log"
    );

    // Mallory, holding Pat's link, is refused, and the link stays good for Pat.
    let stolen = console
        .post_form(&mallory, "/account/confirm-email", &[("code", &code)])
        .await;
    assert_eq!(location(&stolen), "/account");
    assert_eq!(teams_of(&console, &mallory).await, vec!["Team B (viewer)"]);
    let confirmed = console
        .post_form(&pat, "/account/confirm-email", &[("code", &code)])
        .await;
    assert_eq!(location(&confirmed), "/account?problem=email-confirmed");
    assert_eq!(
        teams_of(&console, &pat).await,
        vec![format!("{first} (operator)"), "Team B (viewer)".to_string()]
    );
    let choices = console.json_as(&pat, "email_choices", &[]).await;
    assert_eq!(choices["confirmed"], json!(true), "{choices}");
    // Once: the same link again, or a new one for a proven address, is refused.
    let again = console
        .post_form(&pat, "/account/confirm-email", &[("code", &code)])
        .await;
    assert_eq!(location(&again), "/account");
    let resend = console
        .post_form(&pat, "/account/confirm-email/send", &[])
        .await;
    assert_eq!(location(&resend), "/account");
    assert_eq!(
        mail.messages()
            .iter()
            .filter(|m| m["to"][0] == json!("pat@offboard.test"))
            .count(),
        1
    );
}

#[tokio::test]
async fn a_local_account_confirms_its_address_on_sqlite() {
    a_local_account_confirms_its_address(None).await;
}

#[tokio::test]
async fn a_local_account_confirms_its_address_on_postgres() {
    let cluster = PgCluster::start().unwrap_or_else(|why| panic!("{why}"));
    let url = cluster.fresh_database().await;
    a_local_account_confirms_its_address(Some(&url)).await;
}
