//! Starts the real `stack-fault-server` binary (the project's FAKE Stack site, a test double)
//! and checks the Stack behaviours tests rely on it to imitate.

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

mod support;

use support::fault_server::{FaultServer, ENTERPRISE_USERS, TOKEN};

fn error_message(body: &str) -> String {
    let value: Value = serde_json::from_str(body).unwrap();
    value["ErrorMessage"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn listing_is_capped_and_needs_the_token() {
    let server = FaultServer::start(&["--users", "250", "--deactivated-every", "4"]);
    let page: Value = server
        .scim(
            reqwest::Method::GET,
            &format!("{ENTERPRISE_USERS}?startIndex=1&count=500"),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["totalResults"], 251);
    assert_eq!(page["itemsPerPage"], 100);
    assert_eq!(page["Resources"].as_array().unwrap().len(), 100);
    assert_eq!(page["Resources"][0]["userName"], "Community");
    assert_eq!(
        page["Resources"][4]["active"], false,
        "user 4 is deactivated"
    );

    let last: Value = server
        .scim(reqwest::Method::GET, "/v2/Users?startIndex=201&count=100")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(last["itemsPerPage"], 51);

    for bad in [Some("wrong"), None] {
        let mut request = server.http.get(server.url(ENTERPRISE_USERS));
        if let Some(token) = bad {
            request = request.bearer_auth(token);
        }
        let reply = request.send().await.unwrap();
        assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            reply.json::<Value>().await.unwrap(),
            json!({"ErrorMessage": "Unauthorized"})
        );
    }
    let state = server.state().await;
    assert_eq!(state["unauthorized"], 2);
    assert_eq!(state["requests"]["LIST"], 2);

    let html = server
        .scim(reqwest::Method::GET, "/c/team/auth/scim/v2/users")
        .await;
    assert_eq!(html.status(), StatusCode::NOT_FOUND, "business path is off");
}

#[tokio::test]
async fn delete_answers_like_stack() {
    let server = FaultServer::start(&["--users", "60"]);
    assert_eq!(server.delete("1002").await.0, StatusCode::NO_CONTENT);
    let (status, body) = server.delete("1002").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(error_message(&body).contains("not found"));

    let (status, body) = server.delete("1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_message(&body),
        "You cannot delete or destroy System Accounts."
    );
    let (status, body) = server.delete("1017").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(error_message(&body).contains("Adjust role to User"));
    let (status, body) = server.delete("1042").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(error_message(&body).contains("FK_CommunityMemberships_CreationUser"));

    let state = server.state().await;
    assert_eq!(state["deleted"], json!(["1002"]));
    assert_eq!(state["requests"]["DELETE"], 5);
    assert_eq!(state["delete_requests_by_account"]["1002"], 2);
    assert_eq!(state["replies_by_status"]["500"], 2);
    assert_eq!(state["users"].as_array().unwrap().len(), 60);
}

#[tokio::test]
async fn demotion_is_ignored_until_promotion_is_allowed() {
    let server = FaultServer::start(&["--users", "10"]);
    let user = server
        .patch_user_type(ENTERPRISE_USERS, "1007", "Registered")
        .await;
    assert_eq!(user["userType"], "Moderator", "silently ignored with 200");
    assert_eq!(
        server.delete("1007").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );

    server
        .control("/_control/settings", json!({"promotion_allowed": true}))
        .await;
    let user = server
        .patch_user_type(ENTERPRISE_USERS, "1007", "Registered")
        .await;
    assert!(user.get("userType").is_none());
    assert_eq!(server.delete("1007").await.0, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn business_edition_with_promotion_allowed() {
    let server = FaultServer::start(&[
        "--users",
        "10",
        "--edition",
        "business",
        "--promotion-allowed",
    ]);
    let path = "/c/acme/auth/scim/v2/users";
    let user = server.patch_user_type(path, "1007", "Registered").await;
    assert!(user.get("userType").is_none());
    let reply = server
        .scim(reqwest::Method::DELETE, &format!("{path}/1007"))
        .await;
    assert_eq!(reply.status(), StatusCode::NO_CONTENT);
    let enterprise = server.scim(reqwest::Method::GET, ENTERPRISE_USERS).await;
    assert_eq!(enterprise.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn scripted_faults_play_in_order() {
    let server = FaultServer::start(&["--users", "5"]);
    server
        .control(
            "/_control/faults",
            json!({"account_id": "1003", "script": ["429", "503", "timeout_after_delete:1500"]}),
        )
        .await;
    let reply = server
        .scim(reqwest::Method::DELETE, &format!("{ENTERPRISE_USERS}/1003"))
        .await;
    assert_eq!(reply.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.headers()["retry-after"], "1");
    assert_eq!(
        server.delete("1003").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(server.state().await["deleted"], json!([]));

    let timed_out = server
        .http
        .delete(server.url(&format!("{ENTERPRISE_USERS}/1003")))
        .bearer_auth(TOKEN)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    // The client gave up (its own timeout) while the site stayed silent after the work.
    assert!(timed_out.unwrap_err().is_timeout());
    let state = server.state().await;
    assert_eq!(
        state["deleted"],
        json!(["1003"]),
        "deleted despite the timeout"
    );
    assert_eq!(state["delete_requests_by_account"]["1003"], 3);
    assert_eq!(server.delete("1003").await.0, StatusCode::NOT_FOUND);

    let refused = server
        .http
        .post(server.url("/_control/faults"))
        .json(&json!({"account_id": "1004", "script": ["soon"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn throttling_by_rate_and_date_form() {
    let server = FaultServer::start(&["--users", "3", "--rate-limit", "2", "--retry-after-date"]);
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..4 {
        let reply = server.scim(reqwest::Method::GET, ENTERPRISE_USERS).await;
        statuses.push(reply.status().as_u16());
        if reply.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = reply
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
        }
    }
    assert_eq!(&statuses[..2], &[200, 200]);
    assert!(statuses[2..].contains(&429), "{statuses:?}");
    let date = retry_after.expect("Retry-After on 429");
    assert!(httpdate::parse_http_date(&date).is_ok(), "{date}");
}

#[tokio::test]
async fn deletion_disabled_keeps_the_user() {
    let server = FaultServer::start(&["--users", "3", "--deletion-disabled"]);
    assert_eq!(server.delete("1002").await.0, StatusCode::NOT_FOUND);
    let still_there = server
        .scim(reqwest::Method::GET, &format!("{ENTERPRISE_USERS}/1002"))
        .await;
    assert_eq!(still_there.status(), StatusCode::OK);
    assert_eq!(server.state().await["deleted"], json!([]));
}

#[tokio::test]
async fn burst_seed_users_and_peak_in_flight() {
    let server = FaultServer::start(&["--burst-503", "2"]);
    for expected in [503, 503, 200] {
        let reply = server.scim(reqwest::Method::GET, ENTERPRISE_USERS).await;
        assert_eq!(reply.status().as_u16(), expected);
    }
    server
        .control(
            "/_control/users",
            json!([
                {"id": "501", "userName": "a", "emails": [{"value": "A@x.com"}]},
                {"id": "502", "userName": "b", "communityCreator": true},
            ]),
        )
        .await;
    server
        .control("/_control/settings", json!({"latency_ms": 300}))
        .await;
    let gets = (0..5).map(|_| server.scim(reqwest::Method::GET, "/v2/Users/501"));
    for reply in futures::future::join_all(gets).await {
        assert_eq!(reply.status(), StatusCode::OK);
    }
    let state = server.state().await;
    assert_eq!(state["users"], json!(["501", "502"]));
    assert_eq!(state["peak_in_flight"], 5);
    assert_eq!(state["in_flight"], 0);
    assert_eq!(state["peak_deletes_in_flight"], 0, "GETs are not DELETEs");
    let deletes = (0..3).map(|_| server.scim(reqwest::Method::DELETE, "/v2/Users/999"));
    for reply in futures::future::join_all(deletes).await {
        assert_eq!(reply.status(), StatusCode::NOT_FOUND);
    }
    let state = server.state().await;
    assert_eq!(state["peak_deletes_in_flight"], 3);
    assert_eq!(state["deletes_in_flight"], 0);
    assert_eq!(state["requests"]["GET"], 5);
    assert_eq!(state["requests"]["LIST"], 3);
    assert_eq!(state["replies_by_status"]["503"], 2);

    let reset = server.control("/_control/reset", json!({})).await;
    assert_eq!(reset["users"], json!(["1"]));
    assert_eq!(reset["requests"]["GET"], 0);
    assert_eq!(reset["burst_remaining"], 2);
}

#[cfg(unix)]
#[tokio::test]
async fn stops_cleanly_on_sigterm() {
    let mut server = FaultServer::start(&["--users", "1"]);
    server
        .control(
            "/_control/faults",
            json!({"account_id": "1001", "script": ["timeout_after_delete:60000"]}),
        )
        .await;
    // A request stuck in scripted silence must not hold shutdown up.
    let stuck = tokio::spawn(
        server
            .http
            .delete(server.url(&format!("{ENTERPRISE_USERS}/1001")))
            .bearer_auth(TOKEN)
            .send(),
    );
    server.state_once(|s| s["in_flight"] == 1).await;
    let pid = server.child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    // A bound far below the 60 s silence, not a speed: only a stop that waited for it fails.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = stuck.await;
}

/// `hold_deletes`: a DELETE waits, counted in flight and with nothing done, until the hold is
/// released; then it is carried out as usual. Other requests are not held.
#[tokio::test]
async fn held_deletes_wait_until_released() {
    let server = FaultServer::start(&["--users", "2"]);
    server.hold_deletes().await;
    let held = tokio::spawn({
        let request = server
            .http
            .delete(server.url(&format!("{ENTERPRISE_USERS}/1001")))
            .bearer_auth(TOKEN);
        async move { request.send().await.map(|r| r.status()) }
    });
    let state = server.state_once(|s| s["deletes_in_flight"] == 1).await;
    assert_eq!(state["deleted"], json!([]));
    // A listing goes through meanwhile.
    let listing = server.scim(reqwest::Method::GET, ENTERPRISE_USERS).await;
    assert_eq!(listing.status(), StatusCode::OK);
    assert!(!held.is_finished(), "the DELETE was answered while held");
    server.release_deletes().await;
    assert_eq!(held.await.unwrap().unwrap(), StatusCode::NO_CONTENT);
    let state = server.settled().await;
    assert_eq!(state["deleted"], json!(["1001"]));
}
