//! `offboard delete` end to end: the real binary against a REAL `scim2-server` process (RFC
//! replies, `/Users`) and against the project's Stack-shaped fault server (a test double for
//! what a real server cannot be made to do: throttling, 503 bursts, unanswered requests, the
//! demote rule, deletion disabled, ignored filters). Every test checks the exact set of users
//! deleted on the server itself, and that the token appears in no output and no report.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use support::fault_server::{FaultServer, TOKEN as FAULT_TOKEN};
use support::Scim2Server;

const SCIM2_TOKEN: &str = "scim2-secret-token-a1b2c3d4e5";

/// Runs `offboard delete ARGS` with the token in the environment and stdin closed.
fn offboard_delete(token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_offboard"))
        .arg("delete")
        .args(args)
        .env("OFFBOARD_TOKEN", token)
        .env_remove("OFFBOARD_URL")
        .env_remove("OFFBOARD_SCIM_BASE_URL")
        .stdin(Stdio::null())
        .output()
        .expect("run offboard")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The token must not appear in the command's output nor in any report it wrote.
fn assert_token_absent(token: &str, output: &Output, out_dir: &Path) {
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!all.contains(token), "token printed:\n{all}");
    for entry in std::fs::read_dir(out_dir).expect("out dir") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(!text.contains(token), "token in {}", path.display());
    }
}

fn failures_report(out_dir: &Path) -> (String, Value) {
    let entry = std::fs::read_dir(out_dir)
        .expect("out dir")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("failed_deletions_"))
        })
        .expect("a failed_deletions_*.json report");
    let name = entry
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let json = serde_json::from_str(&std::fs::read_to_string(&entry).expect("read")).expect("json");
    (name, json)
}

fn results(out_dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(out_dir.join("results.json")).expect("results.json");
    let value: Value = serde_json::from_str(&text).expect("json");
    value.as_array().cloned().unwrap_or_default()
}

fn outcome_of(results: &[Value], account_id: &str) -> String {
    results
        .iter()
        .find(|r| r["account_id"] == account_id)
        .map(|r| r["outcome"].as_str().unwrap_or_default().to_string())
        .unwrap_or_else(|| panic!("no result for {account_id}: {results:?}"))
}

async fn scim2_user_ids(server: &Scim2Server) -> BTreeSet<String> {
    let body: Value = reqwest::Client::new()
        .get(format!("{}/Users?count=1000", server.base_url()))
        .bearer_auth(SCIM2_TOKEN)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    body["Resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["id"].as_str().map(str::to_string))
        .collect()
}

/// 40 users on a real scim2-server: `user{i}@corp.test`; every 7th inactive; user 13 also
/// holds `alias13@corp.test`; users 20 and 21 share `shared@corp.test`.
async fn seeded_scim2() -> (Scim2Server, Vec<String>) {
    let server = Scim2Server::start(SCIM2_TOKEN);
    let ids = server
        .seed_users(40, |i| {
            let mut emails = vec![json!({"value": format!("user{i}@corp.test"), "primary": true})];
            if i == 13 {
                emails.push(json!({"value": "alias13@corp.test"}));
            }
            if i == 20 || i == 21 {
                emails.push(json!({"value": "shared@corp.test"}));
            }
            json!({
                "userName": format!("user{i}"),
                "emails": emails,
                "active": i % 7 != 0,
            })
        })
        .await;
    (server, ids)
}

fn temp_out() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Excel's "Unicode Text": UTF-16LE with a BOM, tab-separated.
fn utf16le_with_bom(text: &str) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xFE];
    for unit in text.encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    bytes
}

#[tokio::test]
async fn a_utf16_excel_file_deletes_exactly_the_resolved_users_on_scim2_server() {
    let (server, ids) = seeded_scim2().await;
    let before = scim2_user_ids(&server).await;
    let out = temp_out();
    let csv = out.path().join("leavers.txt");
    let rows = [
        "Name\tEmail",
        "One\t  USER1@corp.test ",
        "Two\tuser2@CORP.test",
        "Three\tuser3@corp.test",
        "Thirteen\talias13@corp.test",
        "Shared\tshared@corp.test",
        "Nobody\tnobody@corp.test",
        "Bad\tnot-an-email",
        "One again\tuser1@corp.test",
        "",
    ];
    std::fs::write(&csv, utf16le_with_bom(&rows.join("\r\n"))).expect("write csv");
    let out_dir = out.path().join("reports");

    let output = offboard_delete(
        SCIM2_TOKEN,
        &[
            "--scim-base-url",
            &server.base_url(),
            "--csv",
            csv.to_str().expect("path"),
            "--yes",
            "--out",
            out_dir.to_str().expect("path"),
        ],
    );
    // Rows were skipped (ambiguous, not found, invalid): not everything asked was deleted.
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));

    let expected: BTreeSet<String> = [1, 2, 3, 13].iter().map(|&i| ids[i].clone()).collect();
    let after = scim2_user_ids(&server).await;
    let deleted: BTreeSet<String> = before.difference(&after).cloned().collect();
    assert_eq!(deleted, expected, "{}", stderr(&output));

    let (name, failures) = failures_report(&out_dir);
    assert!(
        name.len() == "failed_deletions_2026-01-01_00-00-00.json".len() && name.ends_with(".json"),
        "{name}"
    );
    let list = failures.as_array().expect("a list of failures");
    for entry in list {
        let keys: BTreeSet<&str> = entry
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from(["account_id", "account_url", "email", "status", "message"])
        );
    }
    let emails: BTreeSet<&str> = list.iter().filter_map(|e| e["email"].as_str()).collect();
    for skipped in ["shared@corp.test", "nobody@corp.test"] {
        assert!(
            emails.contains(skipped),
            "{skipped} missing from {failures}"
        );
    }
    assert!(out_dir.join("all_users.json").exists());
    assert!(out_dir.join("preview.csv").exists());
    assert!(out_dir.join("results.csv").exists());
    assert_token_absent(SCIM2_TOKEN, &output, &out_dir);
}

#[tokio::test]
async fn deactivated_mode_deletes_only_inactive_users_on_scim2_server() {
    let (server, ids) = seeded_scim2().await;
    let before = scim2_user_ids(&server).await;
    let out = temp_out();
    let output = offboard_delete(
        SCIM2_TOKEN,
        &[
            "--scim-base-url",
            &server.base_url(),
            "--deactivated",
            "--yes",
            "--out",
            out.path().to_str().expect("path"),
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let expected: BTreeSet<String> = (0..40)
        .filter(|i| i % 7 == 0)
        .map(|i| ids[i].clone())
        .collect();
    let after = scim2_user_ids(&server).await;
    let deleted: BTreeSet<String> = before.difference(&after).cloned().collect();
    assert_eq!(deleted, expected);
    let (_, failures) = failures_report(out.path());
    assert_eq!(
        failures,
        json!({"status": "success", "message": "All selected users were deleted successfully."})
    );
    assert_token_absent(SCIM2_TOKEN, &output, out.path());
}

#[tokio::test]
async fn dry_run_and_missing_confirmation_delete_nothing() {
    let (server, _) = seeded_scim2().await;
    let before = scim2_user_ids(&server).await;
    let out = temp_out();
    let base = server.base_url();
    let out_path = out.path().to_str().expect("path").to_string();

    let dry = offboard_delete(
        SCIM2_TOKEN,
        &[
            "--scim-base-url",
            &base,
            "--deactivated",
            "--dry-run",
            "--out",
            &out_path,
        ],
    );
    assert_eq!(dry.status.code(), Some(0), "{}", stderr(&dry));
    assert!(out.path().join("preview.csv").exists());

    // Standard input is not a terminal and --yes is missing: nobody confirmed.
    let unconfirmed = offboard_delete(
        SCIM2_TOKEN,
        &[
            "--scim-base-url",
            &base,
            "--deactivated",
            "--out",
            &out_path,
        ],
    );
    assert_eq!(
        unconfirmed.status.code(),
        Some(4),
        "{}",
        stderr(&unconfirmed)
    );
    assert!(stderr(&unconfirmed).contains("--yes"));

    assert_eq!(scim2_user_ids(&server).await, before);
}

#[tokio::test]
async fn bad_token_dead_server_and_bad_file_are_clear_errors() {
    let (server, _) = seeded_scim2().await;
    let before = scim2_user_ids(&server).await;
    let out = temp_out();
    let out_path = out.path().to_str().expect("path").to_string();

    let wrong = offboard_delete(
        "wrong-token-zzzzzzzzzz",
        &[
            "--scim-base-url",
            &server.base_url(),
            "--deactivated",
            "--yes",
            "--out",
            &out_path,
        ],
    );
    assert_eq!(wrong.status.code(), Some(3));
    assert!(
        stderr(&wrong).contains("refused the SCIM token"),
        "{}",
        stderr(&wrong)
    );
    assert_token_absent("wrong-token-zzzzzzzzzz", &wrong, out.path());

    let dead_port = support::scim2_server::free_port();
    let dead = offboard_delete(
        SCIM2_TOKEN,
        &[
            "--scim-base-url",
            &format!("http://127.0.0.1:{dead_port}/v2"),
            "--deactivated",
            "--yes",
            "--out",
            &out_path,
        ],
    );
    assert_eq!(dead.status.code(), Some(3), "{}", stderr(&dead));

    let empty = out.path().join("empty.csv");
    std::fs::write(&empty, "\r\n\r\n").expect("write");
    let bad_file = offboard_delete(
        SCIM2_TOKEN,
        &[
            "--scim-base-url",
            &server.base_url(),
            "--csv",
            empty.to_str().expect("path"),
            "--yes",
            "--out",
            &out_path,
        ],
    );
    assert_eq!(bad_file.status.code(), Some(2), "{}", stderr(&bad_file));

    assert_eq!(scim2_user_ids(&server).await, before);
}

fn fault_state_set(state: &Value, key: &str) -> BTreeSet<String> {
    state[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

fn run_against_fault_server(server: &FaultServer, out_dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "--url".to_string(),
        server.base.clone(),
        "--scim-base-url".to_string(),
        format!("{}/v2", server.base),
        "--yes".to_string(),
        "--out".to_string(),
        out_dir.to_string_lossy().into_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    offboard_delete(FAULT_TOKEN, &args)
}

#[tokio::test]
async fn throttling_bursts_and_unanswered_deletes_lose_nothing_and_repeat_nothing() {
    // 300 users, every 4th deactivated; the server ignores filters, allows 40 requests/s,
    // starts with a burst of 503s, and some accounts get scripted faults.
    let server = FaultServer::start(&[
        "--users",
        "300",
        "--deactivated-every",
        "4",
        "--ignore-filter",
        "--rate-limit",
        "40",
        "--burst-503",
        "4",
        "--latency-ms",
        "5",
    ]);
    for (account, script) in [
        ("1004", json!(["503", "503"])),
        ("1008", json!(["timeout_after_delete:2500"])),
        ("1012", json!(["429-date"])),
        ("1016", json!(["502", "timeout_before_delete:1500"])),
    ] {
        server
            .control(
                "/_control/faults",
                json!({"account_id": account, "script": script}),
            )
            .await;
    }
    let out = temp_out();
    let output = run_against_fault_server(
        &server,
        out.path(),
        &["--deactivated", "--timeout", "1", "--concurrency", "8"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));

    let state = server.state().await;
    let expected: BTreeSet<String> = (1..=300)
        .filter(|i| i % 4 == 0)
        .map(|i| (1000 + i).to_string())
        .collect();
    let deleted_list: Vec<String> = fault_state_set(&state, "deleted").into_iter().collect();
    let deleted: BTreeSet<String> = deleted_list.iter().cloned().collect();
    assert_eq!(deleted, expected);
    assert_eq!(deleted_list.len(), expected.len(), "nothing deleted twice");
    // The unanswered DELETE was settled with a GET, not sent again.
    assert_eq!(
        state["delete_requests_by_account"]["1008"],
        json!(1),
        "{state}"
    );
    // No account outside the selection received a DELETE.
    let touched: BTreeSet<String> = state["delete_requests_by_account"]
        .as_object()
        .expect("map")
        .keys()
        .cloned()
        .collect();
    assert!(touched.is_subset(&expected), "{touched:?}");
    assert!(
        state["replies_by_status"]["429"].as_u64().unwrap_or(0) > 0,
        "{state}"
    );
    assert_token_absent(FAULT_TOKEN, &output, out.path());
}

/// Four deactivated accounts with Stack's special rules, loaded into the fault server.
fn special_users() -> Value {
    let user = |id: &str, extra: Value| {
        let mut u = json!({
            "id": id,
            "userName": format!("u{id}"),
            "emails": [{"value": format!("u{id}@corp.test"), "primary": true}],
            "active": false,
        });
        if let (Some(obj), Some(more)) = (u.as_object_mut(), extra.as_object()) {
            obj.extend(more.clone());
        }
        u
    };
    json!([
        {"id": "1", "userName": "Community", "active": false, "systemAccount": true},
        user("2001", json!({"userType": "Moderator"})),
        user("2002", json!({"userType": "Admin"})),
        user("2003", json!({"communityCreator": true})),
        user("2004", json!({})),
        user("2005", json!({"active": true})),
    ])
}

#[tokio::test]
async fn moderators_are_deleted_only_after_a_confirmed_demotion() {
    let server = FaultServer::start(&["--users", "0"]);
    server.control("/_control/users", special_users()).await;
    let out = temp_out();

    // Promotion via userType is not allowed on this site: demotion is silently ignored.
    let output = run_against_fault_server(
        &server,
        out.path(),
        &["--deactivated", "--demote-privileged"],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let state = server.state().await;
    assert_eq!(
        fault_state_set(&state, "deleted"),
        BTreeSet::from(["2004".to_string()])
    );
    let res = results(out.path());
    assert_eq!(outcome_of(&res, "2001"), "moderator/admin");
    assert_eq!(outcome_of(&res, "2003"), "community creator");
    let message = res
        .iter()
        .find(|r| r["account_id"] == "2001")
        .and_then(|r| r["message"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(message.contains("Promotion"), "{message}");
    // The system account and the active user were never sent anything.
    assert!(state["delete_requests_by_account"].get("1").is_none());
    assert!(state["delete_requests_by_account"].get("2005").is_none());

    // Now the site allows it: the moderators are demoted, then deleted.
    server
        .control("/_control/settings", json!({"promotion_allowed": true}))
        .await;
    let out2 = temp_out();
    let output = run_against_fault_server(
        &server,
        out2.path(),
        &["--deactivated", "--demote-privileged"],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let deleted = fault_state_set(&server.state().await, "deleted");
    assert_eq!(
        deleted,
        BTreeSet::from(["2001".to_string(), "2002".to_string(), "2004".to_string()])
    );
}

#[tokio::test]
async fn a_site_without_scim_deletion_stops_the_run_and_says_how_to_enable_it() {
    let server = FaultServer::start(&[
        "--users",
        "40",
        "--deactivated-every",
        "2",
        "--deletion-disabled",
    ]);
    let out = temp_out();
    let output = run_against_fault_server(
        &server,
        out.path(),
        &["--deactivated", "--concurrency", "2"],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("not enabled"), "{err}");
    let state = server.state().await;
    assert!(fault_state_set(&state, "deleted").is_empty());
    let deletes = state["requests"]["DELETE"].as_u64().unwrap_or(0);
    assert!(
        deletes < 20,
        "the run should stop early, sent {deletes} DELETEs"
    );
    let res = results(out.path());
    assert!(
        res.iter().any(|r| r["outcome"] == "not attempted"),
        "{res:?}"
    );
}

/// `offboard delete` with the token read from a file only (no OFFBOARD_TOKEN) and stdin
/// closed.
fn offboard_delete_with_token_file(token_file: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_offboard"))
        .arg("delete")
        .arg("--token-file")
        .arg(token_file)
        .args(args)
        .env_remove("OFFBOARD_TOKEN")
        .env_remove("OFFBOARD_TOKEN_FILE")
        .env_remove("OFFBOARD_URL")
        .env_remove("OFFBOARD_SCIM_BASE_URL")
        .env_remove("OFFBOARD_CA_BUNDLE")
        .stdin(Stdio::null())
        .output()
        .expect("run offboard")
}

/// `active` of user `id` on scim2-server, read from it directly; None once it is gone.
async fn scim2_active(server: &Scim2Server, id: &str) -> Option<bool> {
    let reply = reqwest::Client::new()
        .get(format!("{}/Users/{id}", server.base_url()))
        .bearer_auth(SCIM2_TOKEN)
        .send()
        .await
        .expect("get user");
    if reply.status() == reqwest::StatusCode::NOT_FOUND {
        return None;
    }
    let user: Value = reply.json().await.expect("json");
    Some(user["active"].as_bool().unwrap_or(true))
}

/// `--token-file` (the token only in a file, with whitespace around it), `--column 2` (the
/// header would pick column 1, "Email"), `--protect` (user 2, listed, is never touched) and
/// `--action deactivate` (users 1 and 4 set inactive, nobody deleted), on a real scim2-server.
#[tokio::test]
async fn token_file_column_protect_and_deactivate_on_scim2_server() {
    let (server, ids) = seeded_scim2().await;
    let before = scim2_user_ids(&server).await;
    let out = temp_out();
    let token_file = out.path().join("token.txt");
    std::fs::write(&token_file, format!("  {SCIM2_TOKEN}\n")).expect("token file");
    let csv = out.path().join("leavers.csv");
    std::fs::write(
        &csv,
        "Email,Leaving\n\
         user5@corp.test,user1@corp.test\n\
         user6@corp.test,user2@corp.test\n\
         user8@corp.test,user4@corp.test\n",
    )
    .expect("csv");
    let out_dir = out.path().join("reports");
    let output = offboard_delete_with_token_file(
        &token_file,
        &[
            "--scim-base-url",
            &server.base_url(),
            "--csv",
            csv.to_str().expect("path"),
            "--column",
            "2",
            "--protect",
            "USER2@corp.test",
            "--action",
            "deactivate",
            "--yes",
            "--out",
            out_dir.to_str().expect("path"),
        ],
    );
    let err = stderr(&output);
    // User 2 was asked for and skipped (protected): not everything asked was done.
    assert_eq!(output.status.code(), Some(1), "{err}");
    // Nobody deleted; 1 and 4 inactive; 2 (protected) and the first column's 5, 6, 8 untouched.
    assert_eq!(scim2_user_ids(&server).await, before, "{err}");
    for i in [1, 4] {
        assert_eq!(
            scim2_active(&server, &ids[i]).await,
            Some(false),
            "user {i}"
        );
    }
    for i in [2, 5, 6, 8] {
        assert_eq!(scim2_active(&server, &ids[i]).await, Some(true), "user {i}");
    }
    let results = results(&out_dir);
    assert_eq!(outcome_of(&results, &ids[1]), outcome_of(&results, &ids[4]));
    assert!(
        results.iter().all(|r| r["account_id"] != ids[5].as_str()),
        "the first column was read: {results:?}"
    );
    assert_token_absent(SCIM2_TOKEN, &output, &out_dir);
}

/// `--ca-bundle`: a site behind a private CA is refused without it (TLS is always verified)
/// and read with it. The site is a stand-in HTTPS server (not a SCIM implementation: it answers
/// every GET with one user), enough for a dry run's listing.
#[tokio::test]
async fn ca_bundle_lets_the_command_reach_a_site_behind_a_private_ca() {
    let site = support::TlsStandIn::start();
    let out = temp_out();
    let token_file = out.path().join("token.txt");
    std::fs::write(&token_file, SCIM2_TOKEN).expect("token file");
    let base = site.base_url();
    let args = |out_dir: &Path| {
        vec![
            "--scim-base-url".to_string(),
            base.clone(),
            "--deactivated".to_string(),
            "--dry-run".to_string(),
            "--out".to_string(),
            out_dir.to_str().expect("path").to_string(),
        ]
    };
    let refused_dir = out.path().join("refused");
    let refused_args = args(&refused_dir);
    let refused = offboard_delete_with_token_file(
        &token_file,
        &refused_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_ne!(refused.status.code(), Some(0), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("UnknownIssuer"),
        "{}",
        stderr(&refused)
    );

    let trusted_dir = out.path().join("trusted");
    let mut trusted_args = args(&trusted_dir);
    trusted_args.push("--ca-bundle".to_string());
    trusted_args.push(
        support::TlsStandIn::ca_bundle()
            .to_str()
            .expect("path")
            .to_string(),
    );
    let trusted = offboard_delete_with_token_file(
        &token_file,
        &trusted_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(trusted.status.code(), Some(0), "{}", stderr(&trusted));
    let listing =
        std::fs::read_to_string(trusted_dir.join("all_users.json")).expect("all_users.json");
    assert!(listing.contains("tls-1"), "{listing}");
    assert_token_absent(SCIM2_TOKEN, &trusted, &trusted_dir);
}
