//! Choosing one of the accounts an ambiguous row could mean (issue 23 item 9), with the real
//! `offboard serve` binary against a REAL SCIM server (PyPI `scim2-server`): two "Bob Ito"
//! accounts share one email; the admin chooses one on the Preview (`POST /preview/choose`, the
//! plain form), the run deletes exactly that one and the other stays on the site. Around it,
//! what must be refused: an account that is not one of the row's, a viewer, another team, a
//! choice once approval was asked or the run started; and two choices at once for one row end
//! with exactly one recorded.

mod support;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use support::console_process::{ConsoleProcess, FIRST_OWNER};
use support::Scim2Server;

const TOKEN: &str = "console-choice-token-1a2b3c4d5e";
const BOB: &str = "bob.ito235@example.com";

/// scim2-server with Ann and two Bob Itos sharing one email (one active, one deactivated);
/// their ids: Ann, the active Bob, the deactivated Bob.
async fn twins() -> (Scim2Server, [String; 3]) {
    let server = Scim2Server::start(TOKEN);
    let ids = server
        .seed_users(3, |i| {
            let (user_name, email, active) = match i {
                0 => ("ann", "ann@corp.test", true),
                1 => ("bob.ito", BOB, true),
                _ => ("bob.ito.old", BOB, false),
            };
            json!({
                "userName": user_name,
                "displayName": if i == 0 { "Ann Lee" } else { "Bob Ito" },
                "emails": [{"value": email, "primary": true}],
                "active": active,
            })
        })
        .await;
    let ids: [String; 3] = ids.try_into().expect("three users");
    (server, ids)
}

async fn connect(console: &ConsoleProcess, server: &Scim2Server) {
    let site = format!("http://127.0.0.1:{}", server.port());
    let answer = console
        .call(
            "save_connection",
            &[
                ("site_url", site.as_str()),
                ("scim_base_url", server.base_url().as_str()),
                ("token", TOKEN),
                ("operator_email", ""),
            ],
        )
        .await
        .expect("save_connection");
    assert_eq!(answer[1]["ok"], json!(true), "{answer}");
}

/// Ann on line 2, the shared email on line 3.
const LIST: &str = "Email\nann@corp.test\nbob.ito235@example.com\n";

/// `POST /preview/choose` as `client`: the status and the body (or where it leads).
async fn choose(
    console: &ConsoleProcess,
    client: &Client,
    preview: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut form = vec![("preview", preview), ("line", "3")];
    form.extend_from_slice(fields);
    let reply = console.post_form(client, "/preview/choose", &form).await;
    let status = reply.status();
    let location = reply
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(str::to_string);
    let body = reply.text().await.unwrap_or_default();
    (status, location.unwrap_or(body))
}

async fn summary(console: &ConsoleProcess, preview: &str) -> Value {
    console
        .call("preview", &[("preview_id", preview)])
        .await
        .expect("preview")
}

/// The preview's row for line 3.
async fn bob_row(console: &ConsoleProcess, preview: &str) -> Value {
    let page = console
        .call(
            "preview_rows",
            &[
                ("preview_id", preview),
                ("outcome", ""),
                ("offset", "0"),
                ("limit", "10"),
            ],
        )
        .await
        .expect("rows");
    page["rows"][1].clone()
}

async fn audit_text(console: &ConsoleProcess) -> String {
    let fields = [("action", ""), ("from", ""), ("to", ""), ("before", "0")];
    let (status, page) = console.call_as(&console.http, "audit_page", &fields).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page
}

#[tokio::test]
async fn the_run_deletes_exactly_the_chosen_account_and_leaves_its_twin() {
    let (server, [ann, bob, old_bob]) = twins().await;
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start(&dir.path().join("data")).await;
    connect(&console, &server).await;
    let owner = &console.http;

    let preview = console.preview_text(LIST, "delete").await;
    let id = preview["id"].as_str().expect("id").to_string();
    assert_eq!(preview["counts"]["ambiguous"], json!(1), "{preview}");
    assert_eq!(preview["phrase"], json!("DELETE 1 USER"));

    // Ann's account is not one Bob's row could mean.
    let (status, body) = choose(&console, owner, &id, &[("account", &ann)]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("is not one of the accounts line 3"), "{body}");

    // A viewer may look, not choose.
    let viewer = support::people::invited(
        &console,
        owner,
        "viewer",
        "vera@offboard.test",
        "Vera Viewer",
    )
    .await;
    let (status, body) = choose(&console, &viewer, &id, &[("account", &bob)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // Another team (the owner's own second team) does not see this preview.
    let other_team = other_team_of_owner(&console).await;
    let switched = console
        .post_form(owner, "/account/team", &[("team", &other_team)])
        .await;
    assert_eq!(switched.status(), StatusCode::SEE_OTHER);
    let (status, body) = choose(&console, owner, &id, &[("account", &bob)]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let back = console
        .post_form(owner, "/account/team", &[("team", "1")])
        .await;
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        summary(&console, &id).await["counts"]["ambiguous"],
        json!(1)
    );

    // Two choices at once for the same row: exactly one is recorded.
    let (pick_bob, pick_old_bob) = ([("account", bob.as_str())], [("account", old_bob.as_str())]);
    let (first, second) = tokio::join!(
        choose(&console, owner, &id, &pick_bob),
        choose(&console, owner, &id, &pick_old_bob),
    );
    let won: Vec<_> = [&first, &second]
        .into_iter()
        .filter(|(s, _)| *s == StatusCode::SEE_OTHER)
        .collect();
    assert_eq!(won.len(), 1, "{first:?} {second:?}");
    let lost = if first.0 == StatusCode::SEE_OTHER {
        &second
    } else {
        &first
    };
    assert_eq!(lost.0, StatusCode::CONFLICT, "{lost:?}");
    assert!(lost.1.contains("was already chosen for line 3"), "{lost:?}");
    assert_eq!(won[0].1, format!("/preview?id={id}#line-3"));
    let trail = audit_text(&console).await;
    assert_eq!(trail.matches("Chose account").count(), 1, "{trail}");

    // Undo puts the row back; then the active Bob is chosen.
    let (status, _) = choose(&console, owner, &id, &[("undo", "yes")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(bob_row(&console, &id).await["outcome"], json!("Ambiguous"));
    let (status, body) = choose(&console, owner, &id, &[("account", &bob)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let row = bob_row(&console, &id).await;
    assert_eq!(row["outcome"], json!("Selected"), "{row}");
    assert_eq!(row["account_id"], json!(bob), "{row}");
    assert_eq!(row["chosen"]["by"], json!(FIRST_OWNER.1), "{row}");
    let now = summary(&console, &id).await;
    assert_eq!(now["counts"]["selected"], json!(2), "{now}");
    assert_eq!(now["counts"]["ambiguous"], json!(0), "{now}");
    assert_eq!(now["phrase"], json!("DELETE 2 USERS"), "{now}");
    let trail = audit_text(&console).await;
    assert!(
        trail.contains(&format!("Chose account {bob} for line 3 ({BOB})")),
        "{trail}"
    );
    assert!(trail.contains("Undid the choice of account"), "{trail}");

    // The run deletes Ann and the chosen Bob; the other Bob stays.
    let job_id = console.start_run(&now).await;
    let job = console.run_ended(&job_id).await;
    assert_eq!(job["state"], json!("finished"), "{job}");
    let left = server.ids().await;
    assert_eq!(left, BTreeSet::from([old_bob.clone()]));

    // Once the run started, the preview's rows no longer change.
    let (status, body) = choose(&console, owner, &id, &[("undo", "yes")]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("A run was already started"), "{body}");

    // The reports: deleted, "chosen by" its chooser; the failures file keeps its keys.
    let csv = owner
        .get(console.url(&format!("/downloads/jobs/{job_id}/results.csv")))
        .send()
        .await
        .expect("results.csv")
        .text()
        .await
        .expect("csv");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let line_3 = reader
        .records()
        .map(|r| r.expect("row"))
        .find(|r| &r[0] == "3")
        .expect("line 3");
    assert_eq!(&line_3[3], bob.as_str(), "{csv}");
    assert_eq!(&line_3[5], "deleted", "{csv}");
    // The site's word on the deletion, then why the row was acted on.
    assert!(
        line_3[6].ends_with(&format!("(chosen by {})", FIRST_OWNER.1)),
        "{csv}"
    );
    let failures: Value = owner
        .get(console.url(&format!("/downloads/jobs/{job_id}/failures.json")))
        .send()
        .await
        .expect("failures.json")
        .json()
        .await
        .expect("json");
    // Every row was deleted: the old script's success object, as before.
    assert_eq!(failures["status"], json!("success"), "{failures}");
}

#[tokio::test]
async fn no_choice_once_a_second_operator_was_asked() {
    let (server, [_, bob, _]) = twins().await;
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start(&dir.path().join("data")).await;
    connect(&console, &server).await;
    let owner = &console.http;
    let set = console
        .post_form(owner, "/team/settings", &[("approval", "always")])
        .await;
    assert_eq!(set.status(), StatusCode::SEE_OTHER);
    let preview = console.preview_text(LIST, "delete").await;
    let id = preview["id"].as_str().expect("id");
    let phrase = preview["phrase"].as_str().expect("phrase");
    console
        .call("request_approval", &[("preview_id", id), ("typed", phrase)])
        .await
        .expect("request approval");
    let (status, body) = choose(&console, owner, id, &[("account", &bob)]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body.contains("A second operator was already asked to approve this preview"),
        "{body}"
    );
    let after = summary(&console, id).await;
    assert_eq!(after["phrase"], json!(phrase), "{after}");
    assert_eq!(bob_row(&console, id).await["outcome"], json!("Ambiguous"));
}

/// Makes a second team as the console owner; its id.
async fn other_team_of_owner(console: &ConsoleProcess) -> String {
    let made = console
        .post_form(&console.http, "/teams", &[("name", "Team B")])
        .await;
    assert_eq!(made.status(), StatusCode::SEE_OTHER);
    let (status, body) = console.call_as(&console.http, "console_teams", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let teams: Value = serde_json::from_str(&body).expect("teams");
    teams[0]
        .as_array()
        .expect("teams")
        .iter()
        .find(|t| t["name"] == json!("Team B"))
        .expect("team B")["id"]
        .to_string()
}
