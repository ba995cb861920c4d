//! `--metrics-addr`: the real `offboard serve` binary serves Prometheus figures on their own
//! address; a preview and a run against the FAKE Stack site (stack-fault-server) move them, a
//! throttled request is counted, and no email nor token appears anywhere in them.

mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::console_process::{client_with, ConsoleProcess};
use support::fault_server::TOKEN;
use support::scim2_server::free_port;
use support::FaultServer;

async fn scrape(port: u16) -> String {
    let reply = client_with(None)
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .expect("metrics answer");
    assert_eq!(reply.status().as_u16(), 200);
    reply.text().await.expect("metrics body")
}

/// The value of one series (`name{labels}` exactly as written), 0 when it is not there yet.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let rest = line.strip_prefix(series)?;
            rest.strip_prefix(' ')?.split(' ').next()?.parse().ok()
        })
        .unwrap_or(0.0)
}

const FINISHED: &str = "offboard_runs_ended_total{state=\"finished\"}";
const DELETED: &str = "offboard_users_processed_total{outcome=\"deleted\"}";
const SCIM_COUNT: &str = "offboard_scim_request_seconds_count{site=\"127.0.0.1\"}";
const THROTTLED: &str = "offboard_scim_throttled_total{site=\"127.0.0.1\"}";
const ANSWERS_204: &str = "offboard_scim_answers_total{site=\"127.0.0.1\",status=\"204\"}";
const WAITS: &str = "offboard_backoff_waits_total{reason=\"throttled\"}";

#[tokio::test]
async fn a_run_moves_the_figures_and_no_person_nor_token_appears() {
    let site = FaultServer::start(&["--users", "12"]);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let console =
        ConsoleProcess::start_with(&dir.path().join("data"), &["--metrics-addr", &metrics_addr])
            .await;

    // The console's own port does not serve them.
    let own = console
        .http
        .get(console.url("/metrics"))
        .send()
        .await
        .unwrap();
    let own_text = own.text().await.unwrap_or_default();
    assert!(!own_text.contains("offboard_runs"), "{own_text}");

    let before = scrape(port).await;
    assert!(
        before.contains("offboard_database_pool_connections"),
        "{before}"
    );
    assert!(
        value(&before, "offboard_database_pool_connections") >= 1.0,
        "{before}"
    );

    let diagnosis = console.save_connection(&site.base, "", "").await;
    assert_eq!(diagnosis["ok"], json!(true), "{diagnosis}");
    let preview = console
        .preview_text(
            "Email\nuser1@example.com\nuser2@example.com\nuser3@example.com\n",
            "delete",
        )
        .await;
    // The site asks Offboard to slow down once, during the run.
    site.control("/_control/burst", json!({"count": 1, "status": 429}))
        .await;
    let _job = console.start_run(&preview).await;

    let deadline = Instant::now() + Duration::from_secs(60);
    let after = loop {
        let now = scrape(port).await;
        if value(&now, FINISHED) >= value(&before, FINISHED) + 1.0 {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "the run never ended; figures:\n{now}\nlog:\n{}",
            console.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    assert_eq!(value(&after, FINISHED) - value(&before, FINISHED), 1.0);
    assert_eq!(
        value(&after, DELETED) - value(&before, DELETED),
        3.0,
        "{after}"
    );
    assert_eq!(
        value(&after, ANSWERS_204) - value(&before, ANSWERS_204),
        3.0,
        "{after}"
    );
    // The connection check, the preview's listing, the run's listing and its deletes.
    assert!(
        value(&after, SCIM_COUNT) >= value(&before, SCIM_COUNT) + 6.0,
        "{after}"
    );
    assert_eq!(
        value(&after, THROTTLED) - value(&before, THROTTLED),
        1.0,
        "{after}"
    );
    assert!(
        value(&after, WAITS) + value(&after, "offboard_backoff_waits_total{reason=\"listing\"}")
            >= 1.0,
        "{after}"
    );
    assert!(
        value(&after, "offboard_runs_started_total") >= 1.0,
        "{after}"
    );
    assert_eq!(value(&after, "offboard_runs_live"), 0.0, "{after}");

    // No person nor secret: no email, no token, no site path, no account id.
    for text in [&before, &after] {
        for never in ["@", TOKEN, "example.com", "olive", "/api/scim", "1001"] {
            assert!(!text.contains(never), "{never} in the metrics:\n{text}");
        }
    }
}

#[tokio::test]
async fn sign_ins_are_counted_by_result_without_the_email() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let console =
        ConsoleProcess::start_with(&dir.path().join("data"), &["--metrics-addr", &metrics_addr])
            .await;
    let failed = "offboard_sign_ins_total{method=\"password\",result=\"failed\"}";
    let ok = "offboard_sign_ins_total{method=\"password\",result=\"ok\"}";
    let before = scrape(port).await;
    let (email, _, password) = support::console_process::FIRST_OWNER;
    let anonymous = console.anonymous();
    for (pass, _) in [("wrong password, surely", false), (password, true)] {
        let reply = console
            .post_form(
                &anonymous,
                "/sign-in",
                &[("email", email), ("password", pass), ("next", "/")],
            )
            .await;
        assert!(reply.status().is_redirection(), "{}", reply.status());
    }
    let after = scrape(port).await;
    assert_eq!(
        value(&after, failed) - value(&before, failed),
        1.0,
        "{after}"
    );
    assert_eq!(value(&after, ok) - value(&before, ok), 1.0, "{after}");
    assert!(!after.contains(email) && !after.contains("wrong password"));
}
