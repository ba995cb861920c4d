//! Sign-in, teams, roles and two-person approval through the real `offboard serve` binary over
//! HTTP: the setup link, password sign-in and its throttling, the session cookie and its
//! endings, invitations, the role matrix on every server function and route, one team never
//! seeing another's records, and a delete run that waits for a second operator. The site is
//! the project's fault server, a FAKE Stack site (a Stack-shaped test double, not Stack); the
//! console is the real binary.

mod support;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use support::console_process::{client_with, session_cookie, ConsoleProcess, FIRST_OWNER};
use support::fault_server::FaultServer;

const PASSWORD: &str = "a long enough password";

/// Someone signed in: their client and cookie.
struct Person {
    client: Client,
    cookie: String,
}

fn location(reply: &reqwest::Response) -> String {
    reply
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

async fn json_of(console: &ConsoleProcess, client: &Client, name: &str) -> Value {
    let (status, body) = console.call_as(client, name, &[]).await;
    assert_eq!(status, StatusCode::OK, "{name}: {body}");
    serde_json::from_str(&body).expect("json")
}

/// An invitation link's code, made by `owner` for their current team, for `email`.
async fn invite(console: &ConsoleProcess, owner: &Client, role: &str, email: &str) -> String {
    let made = console
        .post_form(
            owner,
            "/team/invitations",
            &[("role", role), ("email", email)],
        )
        .await;
    assert_eq!(made.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&made), "/team");
    let page = json_of(console, owner, "team_page").await;
    let url = page["new_link"]["url"]
        .as_str()
        .expect("a new link")
        .to_string();
    assert!(
        url.starts_with(&format!("{}/join?code=", console.base)),
        "{url}"
    );
    // Shown once: the next visit to the page no longer has it.
    assert_eq!(
        json_of(console, owner, "team_page").await["new_link"],
        Value::Null
    );
    url.rsplit('=').next().unwrap().to_string()
}

/// A new local account joining through an invitation.
async fn join(console: &ConsoleProcess, code: &str, email: &str, name: &str) -> Person {
    let joined = console
        .post_form(
            &console.anonymous(),
            "/join",
            &[
                ("code", code),
                ("email", email),
                ("name", name),
                ("password", PASSWORD),
                ("again", PASSWORD),
            ],
        )
        .await;
    let cookie = session_cookie(&joined)
        .unwrap_or_else(|| panic!("join refused: {} {}", joined.status(), location(&joined)));
    Person {
        client: client_with(Some(&cookie)),
        cookie,
    }
}

/// A new member of `owner`'s current team, joined through an invitation with `role`.
async fn invited(
    console: &ConsoleProcess,
    owner: &Client,
    role: &str,
    email: &str,
    name: &str,
) -> Person {
    join(
        console,
        &invite(console, owner, role, email).await,
        email,
        name,
    )
    .await
}

async fn sign_in(console: &ConsoleProcess, email: &str, password: &str) -> reqwest::Response {
    console
        .post_form(
            &console.anonymous(),
            "/sign-in",
            &[
                ("email", email),
                ("password", password),
                ("next", "/history"),
            ],
        )
        .await
}

#[tokio::test]
async fn the_setup_link_works_once_and_nothing_else_is_open_before_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start(&dir.path().join("data")).await;
    let log = console.log_text();
    assert!(
        log.contains("No one can sign in yet. Open http://127.0.0.1:"),
        "{log}"
    );
    // Used by the harness: a second use is refused and creates nobody.
    let code = console.setup_code().unwrap();
    let again = console
        .post_form(
            &console.anonymous(),
            "/setup",
            &[
                ("code", code.as_str()),
                ("email", "mallory@evil.example"),
                ("name", "Mallory"),
                ("password", PASSWORD),
                ("again", PASSWORD),
            ],
        )
        .await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    assert!(
        location(&again).ends_with("problem=link-invalid"),
        "{}",
        location(&again)
    );
    assert!(session_cookie(&again).is_none());
    let refused = sign_in(&console, "mallory@evil.example", PASSWORD).await;
    assert!(location(&refused).contains("problem=wrong-password"));

    // Anonymous: pages send to the sign-in page (and back), calls and downloads get 401.
    let anonymous = console.anonymous();
    let page = anonymous
        .get(console.url("/history?x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&page), "/sign-in?next=%2Fhistory%3Fx%3D1");
    let (status, body) = console.call_as(&anonymous, "jobs", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("Sign in first"), "{body}");
    let csv = anonymous
        .get(console.url("/downloads/audit.csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), StatusCode::UNAUTHORIZED);
    // The sign-in page itself is open, and the header asks who is there without an error.
    let sign_in_page = anonymous.get(console.url("/sign-in")).send().await.unwrap();
    assert_eq!(sign_in_page.status(), StatusCode::OK);
    assert_eq!(json_of(&console, &anonymous, "whoami").await, Value::Null);

    // A restart of a console that has an owner prints no new link.
    drop(console);
    let console = ConsoleProcess::start(&dir.path().join("data")).await;
    let second_start = console.log_text();
    assert_eq!(
        second_start.matches("/setup?code=").count(),
        1,
        "{second_start}"
    );
}

#[tokio::test]
async fn sign_in_sets_a_fresh_lax_cookie_and_failed_attempts_are_throttled() {
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start(&dir.path().join("data")).await;
    let (email, _, password) = FIRST_OWNER;

    let first = sign_in(&console, email, password).await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&first), "/history");
    let set_cookie = first
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    // Plain http on loopback: not Secure (the browser would drop it).
    assert!(!set_cookie.contains("Secure"), "{set_cookie}");
    // Every sign-in gets a new session id.
    let second = sign_in(&console, email, password).await;
    assert_ne!(session_cookie(&first), session_cookie(&second));
    assert_ne!(session_cookie(&first).unwrap(), console.cookie);

    // Wrong passwords: the same words as an unknown account; after five, even the right
    // password is refused for a while.
    for _ in 0..5 {
        let wrong = sign_in(&console, email, "not the password").await;
        assert!(
            location(&wrong).contains("problem=wrong-password"),
            "{}",
            location(&wrong)
        );
        assert!(session_cookie(&wrong).is_none());
    }
    let throttled = sign_in(&console, email, password).await;
    assert!(
        location(&throttled).contains("problem=throttled"),
        "{}",
        location(&throttled)
    );
    assert!(session_cookie(&throttled).is_none());
    // Sessions made before are not affected.
    assert!(json_of(&console, &console.http, "whoami").await["email"] == json!(email));
    // The trail of the owner's team records the failures and the successes.
    let fields = [("action", ""), ("from", ""), ("to", ""), ("before", "0")];
    let (_, text) = console.call_as(&console.http, "audit_page", &fields).await;
    assert!(text.contains("sign_in_failed"), "{text}");
    assert!(!text.contains("not the password"), "{text}");
    let log = console.log_text();
    assert!(
        !log.contains("not the password") && !log.contains(password),
        "a password is in the log"
    );
}

#[tokio::test]
async fn a_public_https_address_makes_the_cookie_secure() {
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start_with(
        &dir.path().join("data"),
        &["--public-url", "https://offboard.example.com"],
    )
    .await;
    let reply = console
        .anonymous()
        .post(console.url("/sign-in"))
        .header("Host", "offboard.example.com")
        .form(&[("email", FIRST_OWNER.0), ("password", FIRST_OWNER.2)])
        .send()
        .await
        .unwrap();
    let set_cookie = reply.headers()[reqwest::header::SET_COOKIE]
        .to_str()
        .unwrap();
    assert!(set_cookie.contains("Secure"), "{set_cookie}");
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
}

#[tokio::test]
async fn changing_the_password_or_signing_out_everywhere_ends_the_other_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start(&dir.path().join("data")).await;
    let (email, _, password) = FIRST_OWNER;
    let laptop = client_with(Some(
        &session_cookie(&sign_in(&console, email, password).await).unwrap(),
    ));
    assert_eq!(
        json_of(&console, &laptop, "whoami").await["email"],
        json!(email)
    );

    // A new password that is too short is refused and changes nothing.
    let short = console
        .post_form(
            &console.http,
            "/account/password",
            &[
                ("current", password),
                ("password", "short"),
                ("again", "short"),
            ],
        )
        .await;
    assert!(location(&short).contains("problem=weak-password"));
    // A wrong current password is named as such, not as a failed sign-in, and changes nothing.
    let wrong = console
        .post_form(
            &console.http,
            "/account/password",
            &[
                ("current", "not the current password"),
                ("password", PASSWORD),
                ("again", PASSWORD),
            ],
        )
        .await;
    assert!(
        location(&wrong).ends_with("/account?problem=current-password-wrong"),
        "{}",
        location(&wrong)
    );
    let changed = console
        .post_form(
            &console.http,
            "/account/password",
            &[
                ("current", password),
                ("password", PASSWORD),
                ("again", PASSWORD),
            ],
        )
        .await;
    assert!(
        location(&changed).contains("problem=password-changed"),
        "{}",
        location(&changed)
    );
    // This browser goes on (with a new session id); the laptop's session has ended.
    let here = client_with(Some(&session_cookie(&changed).expect("a new session")));
    assert_eq!(
        json_of(&console, &here, "whoami").await["email"],
        json!(email)
    );
    assert_eq!(json_of(&console, &laptop, "whoami").await, Value::Null);
    assert!(location(&sign_in(&console, email, password).await).contains("wrong-password"));

    let phone = client_with(Some(
        &session_cookie(&sign_in(&console, email, PASSWORD).await).unwrap(),
    ));
    let out = console
        .post_form(&here, "/account/sign-out-everywhere", &[])
        .await;
    assert!(location(&out).contains("problem=signed-out"));
    for client in [&here, &phone] {
        let (status, _) = console.call_as(client, "jobs", &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}

/// A console owner's reset link lets someone who forgot their password back in, once.
#[tokio::test]
async fn a_reset_link_sets_a_new_password_once() {
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start(&dir.path().join("data")).await;
    let code = invite(&console, &console.http, "viewer", "vera@example.com").await;
    let vera = join(&console, &code, "Vera@Example.com", "Vera Viewer").await;
    let made = console
        .post_form(
            &console.http,
            "/teams/reset-links",
            &[("email", "vera@example.com")],
        )
        .await;
    assert_eq!(location(&made), "/teams");
    let (_, body) = console.call_as(&console.http, "console_teams", &[]).await;
    let teams: Value = serde_json::from_str(&body).unwrap();
    let url = teams[1]["url"].as_str().expect("reset link").to_string();
    let reset_code = url.rsplit('=').next().unwrap();
    // Only a console owner makes them.
    let by_vera = console
        .post_form(
            &vera.client,
            "/teams/reset-links",
            &[("email", "olive@offboard.test")],
        )
        .await;
    assert_eq!(by_vera.status(), StatusCode::FORBIDDEN);

    let new_password = "vera's brand new password";
    let fields = [
        ("code", reset_code),
        ("password", new_password),
        ("again", new_password),
    ];
    let reset = console
        .post_form(&console.anonymous(), "/reset", &fields)
        .await;
    assert!(session_cookie(&reset).is_some(), "{}", location(&reset));
    let replay = console
        .post_form(&console.anonymous(), "/reset", &fields)
        .await;
    assert!(location(&replay).contains("problem=link-invalid"));
    // The old session ended with the old password.
    assert_eq!(json_of(&console, &vera.client, "whoami").await, Value::Null);
    assert!(session_cookie(&sign_in(&console, "vera@example.com", new_password).await).is_some());
    let _ = vera.cookie;
}

/// One team's records, seen from inside and from another team.
struct TwoTeams {
    site: FaultServer,
    console: ConsoleProcess,
    owner: Client,
    viewer_a: Person,
    operator_a: Person,
    operator_b: Person,
    /// Signed in, member of no team.
    loner: Person,
    preview_a: String,
    phrase_a: String,
    job_a: String,
}

async fn two_teams(dir: &std::path::Path) -> TwoTeams {
    let site = FaultServer::start(&["--users", "12"]);
    let console = ConsoleProcess::start(&dir.join("data")).await;
    let owner = console.http.clone();
    // Team A is the built-in team the first owner owns.
    let diagnosis = console.save_connection(&site.base, "", "").await;
    assert_eq!(diagnosis["ok"], json!(true), "{diagnosis}");
    // A run in team A by the owner, while they are its only operator (no approval needed).
    let (_, body) = console
        .call_as(
            &owner,
            "preview_text",
            &[
                ("file_name", "one.csv"),
                ("text", "Email\nuser3@example.com\n"),
                ("action", "delete"),
                ("demote", "false"),
            ],
        )
        .await;
    let other: Value = serde_json::from_str(&body).unwrap();
    let (status, body) = console
        .call_as(
            &owner,
            "start_job",
            &[
                ("preview_id", other["id"].as_str().unwrap()),
                ("typed", other["phrase"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let job: Value = serde_json::from_str(&body).unwrap();
    let job_a = job["id"].as_str().unwrap().to_string();
    let viewer_a = invited(&console, &owner, "viewer", "vic@a.example", "Vic").await;
    // The operator is one of the site's own users (user2), as an admin of a real site is.
    let operator_a = invited(&console, &owner, "operator", "user2@example.com", "Opal").await;
    let loner = invited(&console, &owner, "viewer", "lone@a.example", "Lone").await;
    let removed = console
        .post_form(
            &owner,
            "/team/members/remove",
            &[("email", "lone@a.example"), ("confirm", "yes")],
        )
        .await;
    assert!(
        location(&removed).contains("problem=done"),
        "{}",
        location(&removed)
    );

    // A preview by the operator, not started.
    let (status, body) = console
        .call_as(
            &operator_a.client,
            "preview_text",
            &[
                ("file_name", "leavers.csv"),
                ("text", "Email\nuser1@example.com\nuser2@example.com\n"),
                ("action", "delete"),
                ("demote", "false"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let preview: Value = serde_json::from_str(&body).unwrap();
    let preview_a = preview["id"].as_str().unwrap().to_string();
    let phrase_a = preview["phrase"].as_str().unwrap().to_string();

    // Team B, made by the console owner, with an operator of its own.
    let made = console
        .post_form(&owner, "/teams", &[("name", "Team B")])
        .await;
    assert!(location(&made).contains("problem=done"));
    let teams: Value =
        serde_json::from_str(&console.call_as(&owner, "console_teams", &[]).await.1).unwrap();
    let team_b = teams[0]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == json!("Team B"))
        .expect("team B")["id"]
        .to_string();
    let switched = console
        .post_form(&owner, "/account/team", &[("team", &team_b)])
        .await;
    assert_eq!(location(&switched), "/");
    let operator_b = invited(&console, &owner, "operator", "otto@b.example", "Otto").await;
    let back = console
        .post_form(&owner, "/account/team", &[("team", "1")])
        .await;
    assert_eq!(location(&back), "/");
    TwoTeams {
        site,
        console,
        owner,
        viewer_a,
        operator_a,
        operator_b,
        loner,
        preview_a,
        phrase_a,
        job_a,
    }
}

#[tokio::test]
async fn a_member_of_team_b_gets_404_for_everything_of_team_a() {
    let dir = tempfile::tempdir().unwrap();
    let t = two_teams(dir.path()).await;
    let c = &t.console;
    let b = &t.operator_b.client;
    let me = json_of(c, b, "whoami").await;
    assert_eq!(me["team"]["name"], json!("Team B"), "{me}");
    assert_eq!(me["teams"].as_array().unwrap().len(), 1);

    for (name, fields) in [
        ("job", vec![("job_id", t.job_a.as_str())]),
        (
            "job_events",
            vec![
                ("job_id", t.job_a.as_str()),
                ("after_seq", "0"),
                ("limit", "10"),
            ],
        ),
        (
            "job_results_page",
            vec![
                ("job_id", t.job_a.as_str()),
                ("before_seq", "0"),
                ("limit", "10"),
            ],
        ),
        (
            "control_job",
            vec![("job_id", t.job_a.as_str()), ("command", "cancel")],
        ),
        ("preview", vec![("preview_id", t.preview_a.as_str())]),
        (
            "preview_rows",
            vec![
                ("preview_id", t.preview_a.as_str()),
                ("outcome", ""),
                ("offset", "0"),
                ("limit", "10"),
            ],
        ),
        (
            "start_job",
            vec![
                ("preview_id", t.preview_a.as_str()),
                ("typed", t.phrase_a.as_str()),
            ],
        ),
        (
            "revise_preview",
            vec![
                ("preview_id", t.preview_a.as_str()),
                ("action", "delete"),
                ("demote", "false"),
            ],
        ),
    ] {
        let (status, body) = c.call_as(b, name, &fields).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{name}: {body}");
    }
    for path in [
        format!("/downloads/jobs/{}/results.csv", t.job_a),
        format!("/downloads/jobs/{}/failures.json", t.job_a),
        format!("/downloads/previews/{}/preview.csv", t.preview_a),
        format!("/jobs/{}/events", t.job_a),
    ] {
        let reply = b.get(c.url(&path)).send().await.unwrap();
        assert_eq!(reply.status(), StatusCode::NOT_FOUND, "{path}");
    }
    // Team B's own lists are empty, and its connection is not team A's.
    assert_eq!(json_of(c, b, "jobs").await, json!([]));
    assert_eq!(json_of(c, b, "connection").await["site_url"], Value::Null);
    // Asking to be shown team A does not work either.
    let switched = c.post_form(b, "/account/team", &[("team", "1")]).await;
    assert_eq!(location(&switched), "/account");
    assert_eq!(
        json_of(c, b, "whoami").await["team"]["name"],
        json!("Team B")
    );
    // Nothing of team A changed: its run is intact, its preview still starts.
    let job = json_of(c, &t.owner, "jobs").await;
    assert_eq!(job[0]["id"], json!(t.job_a));
    let (status, body) = c
        .call_as(
            &t.operator_a.client,
            "preview",
            &[("preview_id", &t.preview_a)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let preview: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(preview["used"], json!(false), "{preview}");
    assert_eq!(preview["phrase"], json!(t.phrase_a), "{preview}");
    // Team A has two operators, so its phrase starts the run by asking for approval.
    let (status, body) = c
        .call_as(
            &t.operator_a.client,
            "request_approval",
            &[("preview_id", &t.preview_a), ("typed", &t.phrase_a)],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "team A's preview no longer starts: {body}"
    );
}

#[tokio::test]
async fn a_viewer_cannot_start_a_run_and_an_operator_cannot_delete_their_own_account() {
    let dir = tempfile::tempdir().unwrap();
    let t = two_teams(dir.path()).await;
    let c = &t.console;
    let fields = [
        ("preview_id", t.preview_a.as_str()),
        ("typed", t.phrase_a.as_str()),
    ];
    let (status, body) = c.call_as(&t.viewer_a.client, "start_job", &fields).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body.contains("You are a viewer in Default team: only operators may"),
        "{body}"
    );
    assert_eq!(
        json_of(c, &t.owner, "jobs").await.as_array().unwrap().len(),
        1
    );
    // The viewer still sees the team's history.
    assert_eq!(
        json_of(c, &t.viewer_a.client, "jobs")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The operator's own Stack account (their sign-in email) was left out of their preview,
    // though the file named it.
    let (_, rows) = c
        .call_as(
            &t.operator_a.client,
            "preview_rows",
            &[
                ("preview_id", t.preview_a.as_str()),
                ("outcome", "protected"),
                ("offset", "0"),
                ("limit", "10"),
            ],
        )
        .await;
    let rows: Value = serde_json::from_str(&rows).unwrap();
    assert_eq!(rows["matching"], json!(1), "{rows}");
    assert!(rows.to_string().contains("user2@example.com"), "{rows}");
    // Two may run in team A, so Opal asks and the owner approves.
    let (status, body) = c
        .call_as(&t.operator_a.client, "request_approval", &fields)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = c.call_as(&t.owner, "start_job", &fields).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let job: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        job["created_by"],
        json!("Opal <user2@example.com>"),
        "{job}"
    );
    assert_eq!(job["total"], json!(1), "{job}");
}

/// What a request needs of its sender.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Need {
    /// Anyone, signed in or not.
    Public,
    /// Someone signed in, with or without a team.
    Person,
    /// A console owner (checked by the service: others get 403).
    ConsoleOwner,
    /// A member of a team, any role.
    Member,
    View,
    Operate,
    Own,
}

/// Every server function, with what it needs and arguments that reach its check.
/// Form fields: (name, value).
type Fields = &'static [(&'static str, &'static str)];

const SERVER_FUNCTIONS: &[(&str, Need, Fields)] = &[
    ("whoami", Need::Public, &[]),
    ("sign_in_options", Need::Public, &[]),
    (
        "link_info",
        Need::Public,
        &[("purpose", "invitation"), ("code", "x")],
    ),
    ("account_notice", Need::Public, &[]),
    ("email_choices", Need::Person, &[]),
    ("console_teams", Need::ConsoleOwner, &[]),
    ("team_page", Need::Member, &[]),
    ("webhook_page", Need::Member, &[]),
    ("retention_page", Need::Member, &[]),
    ("choose_problem", Need::Member, &[("code", "no-file")]),
    ("choose_pasted", Need::Member, &[]),
    ("connection", Need::View, &[]),
    ("jobs", Need::View, &[]),
    ("approval_requests", Need::View, &[]),
    ("waiting_for_you", Need::View, &[]),
    ("job", Need::View, &[("job_id", "nope")]),
    (
        "job_events",
        Need::View,
        &[("job_id", "nope"), ("after_seq", "0"), ("limit", "1")],
    ),
    (
        "job_results_page",
        Need::View,
        &[("job_id", "nope"), ("before_seq", "0"), ("limit", "1")],
    ),
    ("preview", Need::View, &[("preview_id", "nope")]),
    (
        "preview_rows",
        Need::View,
        &[
            ("preview_id", "nope"),
            ("outcome", ""),
            ("offset", "0"),
            ("limit", "1"),
        ],
    ),
    (
        "audit_page",
        Need::View,
        &[("action", ""), ("from", ""), ("to", ""), ("before", "0")],
    ),
    ("check_connection", Need::Operate, &[]),
    ("deactivated_since", Need::Operate, &[]),
    ("deactivated_users", Need::Operate, &[]),
    (
        "preview_text",
        Need::Operate,
        &[
            ("file_name", "x.csv"),
            ("text", "Email\nnobody@example.com\n"),
            ("action", "delete"),
            ("demote", "false"),
        ],
    ),
    (
        "preview_picked",
        Need::Operate,
        &[
            ("account_ids", "1"),
            ("action", "delete"),
            ("demote", "false"),
        ],
    ),
    (
        "revise_preview",
        Need::Operate,
        &[
            ("preview_id", "nope"),
            ("action", "delete"),
            ("demote", "false"),
        ],
    ),
    (
        "start_job",
        Need::Operate,
        &[("preview_id", "nope"), ("typed", "x")],
    ),
    (
        "control_job",
        Need::Operate,
        &[("job_id", "nope"), ("command", "pause")],
    ),
    (
        "request_approval",
        Need::Operate,
        &[("preview_id", "nope"), ("typed", "x")],
    ),
    (
        "decline_approval",
        Need::Operate,
        &[("preview_id", "nope"), ("reason", "no")],
    ),
    (
        "save_connection",
        Need::Own,
        &[
            ("site_url", "not a url"),
            ("scim_base_url", ""),
            ("token", ""),
            ("operator_email", ""),
        ],
    ),
    ("forget_token", Need::Own, &[]),
];

/// Every plain route: method, path (with sample ids), what it needs, and form fields.
const ROUTES: &[(&str, &str, Need, Fields)] = &[
    ("GET", "/healthz", Need::Public, &[]),
    ("GET", "/readyz", Need::Public, &[]),
    (
        "POST",
        "/sign-in",
        Need::Public,
        &[("email", "x@y.example"), ("password", "x")],
    ),
    ("POST", "/setup", Need::Public, &[("code", "x")]),
    ("POST", "/join", Need::Public, &[("code", "x")]),
    ("POST", "/reset", Need::Public, &[("code", "x")]),
    (
        "POST",
        "/account/password",
        Need::Person,
        &[("current", "wrong")],
    ),
    ("POST", "/account/team", Need::Person, &[("team", "999")]),
    (
        "POST",
        "/account/email",
        Need::Person,
        &[("approval_requested", "on")],
    ),
    ("POST", "/account/confirm-email/send", Need::Person, &[]),
    (
        "POST",
        "/account/confirm-email",
        Need::Person,
        &[("code", "x")],
    ),
    ("POST", "/teams", Need::ConsoleOwner, &[("name", "")]),
    (
        "POST",
        "/teams/reset-links",
        Need::ConsoleOwner,
        &[("email", "nobody@example.com")],
    ),
    (
        "POST",
        "/teams/owner",
        Need::ConsoleOwner,
        &[("team", "999"), ("email", "nobody@example.com")],
    ),
    (
        "POST",
        "/choose/picked",
        Need::Operate,
        &[("account_id", "1"), ("action", "delete")],
    ),
    ("POST", "/choose/upload", Need::Operate, &[]),
    (
        "POST",
        "/run/undo/restore",
        Need::Operate,
        &[("job", "nope"), ("account", "1")],
    ),
    (
        "POST",
        "/run/undo/cancel",
        Need::Operate,
        &[("job", "nope")],
    ),
    (
        "POST",
        "/run/undo/delete-now",
        Need::Own,
        &[("job", "nope"), ("phrase", "DELETE 1 USER")],
    ),
    (
        "POST",
        "/preview/again",
        Need::Operate,
        &[("preview", "nope")],
    ),
    (
        "POST",
        "/run/not-removed",
        Need::Operate,
        &[("job", "nope")],
    ),
    (
        "POST",
        "/preview/choose",
        Need::Operate,
        &[("preview", "nope"), ("line", "3"), ("account", "1")],
    ),
    ("GET", "/jobs/nope/events", Need::View, &[]),
    (
        "GET",
        "/downloads/previews/nope/preview.csv",
        Need::View,
        &[],
    ),
    ("GET", "/downloads/jobs/nope/results.csv", Need::View, &[]),
    ("GET", "/downloads/audit.csv", Need::View, &[]),
    (
        "POST",
        "/team/invitations",
        Need::Own,
        &[("role", "viewer"), ("email", "new@a.example")],
    ),
    (
        "POST",
        "/team/invitations/revoke",
        Need::Own,
        &[("id", "nope")],
    ),
    (
        "POST",
        "/team/members",
        Need::Own,
        &[("email", "new@a.example"), ("role", "viewer")],
    ),
    (
        "POST",
        "/team/members/remove",
        Need::Own,
        &[("email", "nobody@a.example")],
    ),
    ("GET", "/sign-in/sso", Need::Public, &[]),
    ("GET", "/sign-in/sso/callback", Need::Public, &[]),
    (
        "POST",
        "/team/settings",
        Need::Own,
        &[("approval", "sometimes")],
    ),
    (
        "POST",
        "/team/webhook",
        Need::Own,
        &[("address", "not an address")],
    ),
    ("POST", "/team/webhook/test", Need::Own, &[]),
    ("POST", "/team/webhook/remove", Need::Own, &[]),
    (
        "POST",
        "/team/retention",
        Need::Own,
        &[("time_zone", "Mars/Olympus")],
    ),
];

/// Routes the matrix does not send as signed-in people, with why: they end the sender's
/// sessions. Their anonymous case is still checked.
const ENDS_SESSIONS: [&str; 2] = ["/sign-out", "/account/sign-out-everywhere"];

/// The template of each route the server registers, read from its source: a route added
/// without a row in [`ROUTES`] fails [`every_endpoint_obeys_the_role_matrix`].
fn registered_routes() -> std::collections::BTreeSet<String> {
    let mut found = std::collections::BTreeSet::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    for entry in std::fs::read_dir(dir).unwrap() {
        let whole = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        // A module's own tests build little routers of their own.
        let text = whole.split("#[cfg(test)]").next().unwrap_or_default();
        for piece in text.split(".route(\n").chain(text.split(".route(")).skip(1) {
            let piece = piece.trim_start();
            if let Some(rest) = piece.strip_prefix('"') {
                if let Some(end) = rest.find('"') {
                    found.insert(rest[..end].to_string());
                }
            }
        }
    }
    found
}

/// The route template a sample path stands for.
fn template(path: &str) -> String {
    match path {
        p if p.starts_with("/jobs/") => "/jobs/{id}/events".into(),
        p if p.starts_with("/downloads/previews/") => {
            "/downloads/previews/{preview_id}/preview.csv".into()
        }
        p if p.starts_with("/downloads/jobs/") => "/downloads/jobs/{job_id}/{file}".into(),
        p => p.into(),
    }
}

#[tokio::test]
async fn every_endpoint_obeys_the_role_matrix() {
    // The tables list everything there is.
    let listing = std::process::Command::new(env!("CARGO_BIN_EXE_offboard"))
        .arg("endpoints")
        .output()
        .expect("offboard endpoints");
    let registered: std::collections::BTreeSet<String> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .filter_map(|line| line.split_once(" /api/").map(|(_, name)| name.to_string()))
        .collect();
    assert!(registered.contains("start_job"), "{registered:?}");
    let listed: std::collections::BTreeSet<String> = SERVER_FUNCTIONS
        .iter()
        .map(|(n, _, _)| n.to_string())
        .collect();
    assert_eq!(
        registered, listed,
        "a server function is missing from the role matrix"
    );
    let mut routes: std::collections::BTreeSet<String> =
        ROUTES.iter().map(|(_, p, _, _)| template(p)).collect();
    routes.extend(ENDS_SESSIONS.iter().map(|p| p.to_string()));
    // The server functions' own route: each one is a row of SERVER_FUNCTIONS.
    routes.insert("/api/{*fn_name}".to_string());
    let in_source = registered_routes();
    assert!(in_source.contains("/choose/upload"), "{in_source:?}");
    let missing: Vec<_> = in_source.difference(&routes).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the role matrix: {missing:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let t = two_teams(dir.path()).await;
    let c = &t.console;
    let anonymous = c.anonymous();
    // Who asks, and the highest need each one meets.
    let people: [(&str, &Client, &[Need]); 5] = [
        ("anonymous", &anonymous, &[Need::Public]),
        (
            "member of no team",
            &t.loner.client,
            &[Need::Public, Need::Person],
        ),
        (
            "viewer",
            &t.viewer_a.client,
            &[Need::Public, Need::Person, Need::Member, Need::View],
        ),
        (
            "operator",
            &t.operator_a.client,
            &[
                Need::Public,
                Need::Person,
                Need::Member,
                Need::View,
                Need::Operate,
            ],
        ),
        (
            "console owner",
            &t.owner,
            &[
                Need::Public,
                Need::Person,
                Need::ConsoleOwner,
                Need::Member,
                Need::View,
                Need::Operate,
                Need::Own,
            ],
        ),
    ];
    let mut checked = 0;
    for (who, client, meets) in people {
        for (name, need, fields) in SERVER_FUNCTIONS {
            let (status, body) = c.call_as(client, name, fields).await;
            expect(who, name, *need, meets, status, &body);
            checked += 1;
        }
        for (method, path, need, fields) in ROUTES {
            let request = match *method {
                "GET" => client.get(c.url(path)),
                _ if *path == "/choose/upload" => client
                    .post(c.url(path))
                    .header("Content-Type", "multipart/form-data; boundary=XyZ")
                    .body(
                        "--XyZ\r\nContent-Disposition: form-data; name=\"pasted\"\r\n\r\n\
                         Email\nnobody@example.com\n\r\n--XyZ\r\nContent-Disposition: form-data; \
                         name=\"action\"\r\n\r\ndelete\r\n--XyZ--\r\n",
                    ),
                _ => client.post(c.url(path)).form(fields),
            };
            let reply = request.send().await.unwrap();
            let status = reply.status();
            let body = reply.text().await.unwrap_or_default();
            expect(who, path, *need, meets, status, &body);
            checked += 1;
        }
    }
    assert_eq!(checked, 5 * (SERVER_FUNCTIONS.len() + ROUTES.len()));
    for path in ENDS_SESSIONS {
        let reply = anonymous.post(c.url(path)).send().await.unwrap();
        // Signing out needs nobody; signing out everywhere needs someone signed in.
        assert!(
            matches!(
                reply.status(),
                StatusCode::SEE_OTHER | StatusCode::UNAUTHORIZED
            ),
            "{path}"
        );
    }
}

/// What each endpoint answers anyone allowed to ask, given the sample fields of its row: 200
/// for what reads or succeeds, 404 for a made-up id ("nope"), 303 for a form (it redirects with
/// its notice, done or refused in words).
const ALLOWED: &[(&str, u16)] = &[
    ("/account/password", 303),
    ("/account/team", 303),
    ("/account/email", 303),
    ("/account/confirm-email/send", 303),
    ("/account/confirm-email", 303),
    ("/choose/picked", 303),
    ("/choose/upload", 303),
    ("/preview/again", 303),
    ("/run/not-removed", 303),
    ("/preview/choose", 404),
    ("/run/undo/restore", 404),
    ("/run/undo/cancel", 404),
    ("/run/undo/delete-now", 404),
    ("/downloads/audit.csv", 200),
    ("/downloads/jobs/nope/results.csv", 404),
    ("/downloads/previews/nope/preview.csv", 404),
    ("/healthz", 200),
    ("/jobs/nope/events", 404),
    ("/join", 303),
    ("/readyz", 200),
    ("/reset", 303),
    ("/setup", 303),
    ("/sign-in", 303),
    ("/sign-in/sso", 303),
    ("/sign-in/sso/callback", 303),
    ("/team/invitations", 303),
    ("/team/invitations/revoke", 303),
    ("/team/members", 303),
    ("/team/members/remove", 303),
    ("/team/retention", 303),
    ("/team/settings", 303),
    ("/team/webhook", 303),
    ("/team/webhook/remove", 303),
    ("/team/webhook/test", 303),
    ("/teams", 303),
    ("/teams/owner", 303),
    ("/teams/reset-links", 303),
    ("account_notice", 200),
    ("audit_page", 200),
    ("check_connection", 200),
    ("choose_problem", 200),
    ("choose_pasted", 200),
    ("connection", 200),
    ("console_teams", 200),
    ("control_job", 404),
    ("deactivated_since", 200),
    ("deactivated_users", 200),
    ("decline_approval", 404),
    ("forget_token", 200),
    ("job", 404),
    ("job_events", 404),
    ("job_results_page", 404),
    ("jobs", 200),
    ("approval_requests", 200),
    ("waiting_for_you", 200),
    ("link_info", 200),
    ("preview", 404),
    ("preview_picked", 200),
    ("preview_rows", 404),
    ("preview_text", 200),
    ("request_approval", 404),
    ("retention_page", 200),
    ("revise_preview", 404),
    ("save_connection", 200),
    ("sign_in_options", 200),
    ("start_job", 404),
    ("team_page", 200),
    ("webhook_page", 200),
    ("whoami", 200),
    ("email_choices", 200),
];

/// What `who` must get from `what`, given the need and what they meet.
fn expect(who: &str, what: &str, need: Need, meets: &[Need], status: StatusCode, body: &str) {
    let case = format!("{who} → {what} ({need:?}): {status} {body}");
    if meets.contains(&need) {
        // Allowed: the endpoint's own answer to the sample fields, for everyone allowed. Not
        // merely "not refused": an operator wrongly getting 404 or 500 fails here.
        let wanted = ALLOWED
            .iter()
            .find(|(name, _)| *name == what)
            .map(|(_, status)| *status)
            .unwrap_or_else(|| panic!("no expected answer in ALLOWED for {what}"));
        assert_eq!(
            status.as_u16(),
            wanted,
            "allowed, but not answered as expected: {case}"
        );
        return;
    }
    let expected = if !meets.contains(&Need::Person) {
        StatusCode::UNAUTHORIZED
    } else if !meets.contains(&Need::Member) && need != Need::ConsoleOwner {
        // Signed in, but in no team: nothing of any team exists for them.
        StatusCode::NOT_FOUND
    } else {
        StatusCode::FORBIDDEN
    };
    assert_eq!(status, expected, "refused the wrong way: {case}");
}

/// A fresh preview of `emails` by `who`: its id and phrase.
async fn preview_as(console: &ConsoleProcess, who: &Client, emails: &[&str]) -> (String, String) {
    let text = format!("Email\n{}\n", emails.join("\n"));
    let (status, body) = console
        .call_as(
            who,
            "preview_text",
            &[
                ("file_name", "leavers.csv"),
                ("text", &text),
                ("action", "delete"),
                ("demote", "false"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let preview: Value = serde_json::from_str(&body).unwrap();
    (
        preview["id"].as_str().unwrap().to_string(),
        preview["phrase"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn a_delete_run_waits_for_a_second_operator_who_types_the_phrase() {
    let dir = tempfile::tempdir().unwrap();
    let t = two_teams(dir.path()).await;
    let c = &t.console;
    let opal = &t.operator_a.client;
    // Team A has two who may run (the owner and Opal): approval is on by default.
    let (id, phrase) = preview_as(c, opal, &["user5@example.com", "user6@example.com"]).await;
    let summary = json_of_with(c, opal, "preview", &[("preview_id", &id)]).await;
    assert_eq!(summary["needs_approval"], json!(true), "{summary}");
    // Typing the phrase alone does not start it.
    let (status, body) = c
        .call_as(
            opal,
            "start_job",
            &[("preview_id", &id), ("typed", &phrase)],
        )
        .await;
    assert!(
        status.is_server_error() || status == StatusCode::CONFLICT,
        "{status} {body}"
    );
    assert!(
        body.contains("needs a second operator's approval"),
        "{body}"
    );
    let (status, body) = c
        .call_as(
            opal,
            "request_approval",
            &[("preview_id", &id), ("typed", "DELETE 1 USERS")],
        )
        .await;
    assert!(
        !status.is_success() && body.contains("does not match"),
        "{body}"
    );
    let (status, body) = c
        .call_as(
            opal,
            "request_approval",
            &[("preview_id", &id), ("typed", &phrase)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let asked: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(asked["state"], json!("awaiting"));
    assert_eq!(asked["yours"], json!(true));
    assert_eq!(asked["requested_by"], json!("Opal <user2@example.com>"));
    // The requester cannot approve their own request; a viewer cannot approve at all.
    let (_, own) = c
        .call_as(
            opal,
            "start_job",
            &[("preview_id", &id), ("typed", &phrase)],
        )
        .await;
    assert!(own.contains("You asked for this run yourself"), "{own}");
    let (status, _) = c
        .call_as(
            &t.viewer_a.client,
            "start_job",
            &[("preview_id", &id), ("typed", &phrase)],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        json_of(c, &t.owner, "jobs").await.as_array().unwrap().len(),
        1,
        "nothing started yet"
    );
    // On the site, only the earlier run's user is gone.
    let before = support::fault_server::deleted(&t.site.state().await);
    assert_eq!(before.len(), 1, "{before:?}");

    // The owner sees the request on the same preview and approves it by typing the phrase.
    let seen = json_of_with(c, &t.owner, "preview", &[("preview_id", &id)]).await;
    assert_eq!(seen["approval"]["state"], json!("awaiting"), "{seen}");
    assert_eq!(seen["approval"]["yours"], json!(false));
    let (status, body) = c
        .call_as(
            &t.owner,
            "start_job",
            &[("preview_id", &id), ("typed", &phrase)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let job: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(job["created_by"], json!("Opal <user2@example.com>"));
    assert_eq!(
        job["approved_by"],
        json!("Olive Owner <olive@offboard.test>")
    );
    let listed = json_of(c, &t.viewer_a.client, "jobs").await;
    assert_eq!(
        listed[0]["approved_by"],
        json!("Olive Owner <olive@offboard.test>"),
        "{listed}"
    );
    // …and in the run's own report.
    let summary: Value = t
        .viewer_a
        .client
        .get(c.url(&format!(
            "/downloads/jobs/{}/run.json",
            job["id"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        summary["created_by"],
        json!("Opal <user2@example.com>"),
        "{summary}"
    );
    assert_eq!(
        summary["approved_by"],
        json!("Olive Owner <olive@offboard.test>"),
        "{summary}"
    );
    // Both names are in the trail.
    let fields = [
        ("action", "approval_given"),
        ("from", ""),
        ("to", ""),
        ("before", "0"),
    ];
    let (_, trail) = c.call_as(&t.owner, "audit_page", &fields).await;
    assert!(
        trail.contains("Opal <user2@example.com>") && trail.contains("Olive Owner"),
        "{trail}"
    );
    // A second approval of the same request starts nothing more.
    let (status, again) = c
        .call_as(
            &t.owner,
            "start_job",
            &[("preview_id", &id), ("typed", &phrase)],
        )
        .await;
    assert!(!status.is_success(), "{again}");
    // The approved run deletes its two users, once each.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let state = t.site.state().await;
        if support::fault_server::deleted(&state).len() == 3 {
            support::fault_server::at_most_one_delete_each(&state);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the approved run did not finish: {state}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_declined_request_never_starts_and_owners_can_turn_approval_off() {
    let dir = tempfile::tempdir().unwrap();
    let t = two_teams(dir.path()).await;
    let c = &t.console;
    let opal = &t.operator_a.client;
    let (id, phrase) = preview_as(c, opal, &["user5@example.com"]).await;
    let (status, body) = c
        .call_as(
            opal,
            "request_approval",
            &[("preview_id", &id), ("typed", &phrase)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = c
        .call_as(
            &t.viewer_a.client,
            "decline_approval",
            &[("preview_id", &id), ("reason", "no")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, blank) = c
        .call_as(
            &t.owner,
            "decline_approval",
            &[("preview_id", &id), ("reason", "  ")],
        )
        .await;
    assert!(blank.contains("Say why"), "{blank}");
    let (status, body) = c
        .call_as(
            &t.owner,
            "decline_approval",
            &[("preview_id", &id), ("reason", "user5 stays until Friday")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, refused) = c
        .call_as(
            &t.owner,
            "start_job",
            &[("preview_id", &id), ("typed", &phrase)],
        )
        .await;
    assert!(
        refused.contains("declined this run: user5 stays until Friday"),
        "{refused}"
    );
    assert_eq!(
        json_of(c, &t.owner, "jobs").await.as_array().unwrap().len(),
        1
    );

    // An operator cannot change the setting; the owner can, and then one operator suffices.
    let tried = c
        .post_form(opal, "/team/settings", &[("approval", "never")])
        .await;
    assert_eq!(tried.status(), StatusCode::FORBIDDEN);
    let saved = c
        .post_form(&t.owner, "/team/settings", &[("approval", "never")])
        .await;
    assert!(
        location(&saved).contains("problem=done"),
        "{}",
        location(&saved)
    );
    let (id, phrase) = preview_as(c, opal, &["user6@example.com"]).await;
    let (status, body) = c
        .call_as(
            opal,
            "start_job",
            &[("preview_id", &id), ("typed", &phrase)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let job: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(job["approved_by"], Value::Null);
}

async fn json_of_with(
    console: &ConsoleProcess,
    client: &Client,
    name: &str,
    fields: &[(&str, &str)],
) -> Value {
    let (status, body) = console.call_as(client, name, fields).await;
    assert_eq!(status, StatusCode::OK, "{name}: {body}");
    serde_json::from_str(&body).expect("json")
}

/// Passwords, their hashes and the SCIM token never reach a page, a server function's answer,
/// a download or the log, whoever asks.
#[tokio::test]
async fn passwords_hashes_and_tokens_never_reach_a_page_an_answer_or_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let t = two_teams(dir.path()).await;
    let c = &t.console;
    let hashes: Vec<(String,)> = c
        .sql(
            "SELECT password_hash FROM accounts WHERE password_hash IS NOT NULL",
            &[],
        )
        .await
        .into_iter()
        .map(|h| (h,))
        .collect();
    assert_eq!(hashes.len(), 5, "every local account has a hash");
    let secrets: Vec<String> = hashes
        .into_iter()
        .map(|(h,)| h)
        .chain([
            FIRST_OWNER.2.to_string(),
            PASSWORD.to_string(),
            support::fault_server::TOKEN.to_string(),
            "$argon2id$".to_string(),
        ])
        .collect();

    let (status, body) = c
        .call_as(&t.owner, "job", &[("job_id", t.job_a.as_str())])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut seen = vec![body];
    for who in [&t.owner, &t.operator_a.client, &t.viewer_a.client] {
        for page in [
            "/".to_string(),
            "/connect".to_string(),
            "/account".to_string(),
            "/team".to_string(),
            "/teams".to_string(),
            "/history".to_string(),
            "/audit".to_string(),
            format!("/preview?id={}", t.preview_a),
            format!("/run?id={}", t.job_a),
            "/downloads/audit.csv".to_string(),
            format!("/downloads/jobs/{}/results.csv", t.job_a),
            format!("/downloads/jobs/{}/failures.json", t.job_a),
            format!("/downloads/previews/{}/preview.csv", t.preview_a),
        ] {
            let reply = who.get(c.url(&page)).send().await.unwrap();
            seen.push(reply.text().await.unwrap());
        }
        for (name, fields) in [
            ("whoami", vec![]),
            ("team_page", vec![]),
            ("webhook_page", vec![]),
            ("retention_page", vec![]),
            ("console_teams", vec![]),
            ("connection", vec![]),
            ("jobs", vec![]),
            (
                "audit_page",
                vec![("action", ""), ("from", ""), ("to", ""), ("before", "0")],
            ),
        ] {
            seen.push(c.call_as(who, name, &fields).await.1);
        }
    }
    seen.push(c.log_text());
    assert!(seen.len() > 40);
    for text in &seen {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a secret reached an answer: {text}"
            );
        }
    }
}
