//! Single sign-on through the real `offboard serve` binary and a real OpenID provider (the npm
//! `oidc-provider`, started on loopback by `end2end/oidc/provider.mjs`): a verified email gets
//! in only once a team has added it, lands in that team with its role, and what the provider
//! or the allowed domains refuse is said in plain words. The client secret never shows.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::console_process::{client_with, session_cookie, ConsoleProcess};
use support::oidc_provider::{console_signing_on_with, OidcProvider};

const SECRET: &str = "console-test-secret-5b1e";

fn location(reply: &reqwest::Response) -> String {
    reply
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// One trip: the console sends the browser to the provider, `login` signs in there, the
/// browser comes back. The answer to the callback, and the cookie it was sent with.
async fn sign_on(
    console: &ConsoleProcess,
    provider: &OidcProvider,
    login: &str,
) -> (reqwest::Response, String) {
    sign_on_from(console, provider, login, None).await
}

/// [`sign_on`] from a browser that holds `cookie` already (someone signed in here).
async fn sign_on_from(
    console: &ConsoleProcess,
    provider: &OidcProvider,
    login: &str,
    cookie: Option<&str>,
) -> (reqwest::Response, String) {
    let browser = client_with(cookie);
    let start = browser
        .get(console.url("/sign-in/sso"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let pending = session_cookie(&start)
        .or_else(|| cookie.map(str::to_string))
        .expect("a session for the pending sign-in");
    let to_provider = url::Url::parse(&location(&start)).unwrap();
    assert!(
        to_provider.as_str().starts_with(provider.issuer()),
        "{to_provider}"
    );
    let back = provider.browse(&to_provider, login, false).await;
    assert!(back.path().ends_with("/sign-in/sso/callback"), "{back}");
    let answer = client_with(Some(&pending))
        .get(back.as_str())
        .send()
        .await
        .unwrap();
    (answer, pending)
}

/// The words a refused sign-on left for the sign-in page.
async fn notice(console: &ConsoleProcess, cookie: &str) -> String {
    let (_, body) = console
        .call_as(&client_with(Some(cookie)), "account_notice", &[])
        .await;
    body
}

/// A console with single sign-on through `provider`'s test accounts (example.com allowed).
async fn console_with_sso(dir: &std::path::Path) -> (ConsoleProcess, OidcProvider) {
    console_signing_on_with(
        SECRET,
        &dir.join("data"),
        &["--oidc-allowed-domain", "example.com"],
    )
    .await
}

async fn whoami(console: &ConsoleProcess, cookie: &str) -> Value {
    let (_, me) = console
        .call_as(&client_with(Some(cookie)), "whoami", &[])
        .await;
    serde_json::from_str(&me).unwrap()
}

/// Issue 18, item 1: a sign-on used to land in whatever account had its email, a password
/// account made by someone else included, and that someone could still sign in as the person.
/// Now a sign-on never lands in a password account: the person signs in with the password
/// and links the two while signed in to both; from then on the sign-on opens that account, and
/// the memberships granted to the email are taken up only then (the email is proven).
#[tokio::test]
async fn a_sign_on_never_lands_in_a_password_account_unless_linked_by_its_holder() {
    let dir = tempfile::tempdir().unwrap();
    let (console, provider) = console_with_sso(dir.path()).await;
    // Team B grants alice@example.com operator, by email.
    let made = console
        .post_form(&console.http, "/teams", &[("name", "Team B")])
        .await;
    assert!(location(&made).contains("problem=done"));
    let (_, teams) = console.call_as(&console.http, "console_teams", &[]).await;
    let teams: Value = serde_json::from_str(&teams).unwrap();
    let team_b = teams[0]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == json!("Team B"))
        .unwrap()["id"]
        .to_string();
    console
        .post_form(&console.http, "/account/team", &[("team", &team_b)])
        .await;
    let granted = console
        .post_form(
            &console.http,
            "/team/members",
            &[("email", "alice@example.com"), ("role", "operator")],
        )
        .await;
    assert!(location(&granted).contains("problem=done"));
    console
        .post_form(&console.http, "/account/team", &[("team", "1")])
        .await;
    // A password account for alice@example.com (someone holding an invitation for it).
    let password_account = support::people::invited(
        &console,
        &console.http,
        "viewer",
        "alice@example.com",
        "Alice Password",
    )
    .await;
    let (_, me) = console.call_as(&password_account, "whoami", &[]).await;
    let me: Value = serde_json::from_str(&me).unwrap();
    assert_eq!(
        me["teams"].as_array().unwrap().len(),
        1,
        "no by-email grant: {me}"
    );

    // Alice's sign-on does not open that account.
    let (refused, cookie) = sign_on(&console, &provider, "alice").await;
    assert_eq!(
        location(&refused),
        "/sign-in?problem=password-account-exists"
    );
    assert_eq!(whoami(&console, &cookie).await, Value::Null);

    // Signed in with the password, she links her sign-on (same email): now the account is
    // proven, and Team B's grant is hers.
    let signed_in = console
        .post_form(
            &console.anonymous(),
            "/sign-in",
            &[
                ("email", "alice@example.com"),
                ("password", support::people::PASSWORD),
                ("next", "/account"),
            ],
        )
        .await;
    let password_cookie = session_cookie(&signed_in).expect("signed in");
    let (linked, linked_cookie) =
        sign_on_from(&console, &provider, "alice", Some(&password_cookie)).await;
    assert_eq!(location(&linked), "/", "{linked:?}");
    let linked_cookie = session_cookie(&linked).unwrap_or(linked_cookie);
    let me = whoami(&console, &linked_cookie).await;
    assert_eq!(me["email"], json!("alice@example.com"));
    let teams: Vec<&str> = me["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(teams, vec!["Default team", "Team B"]);
    let (_, trail) = console
        .call_as(
            &console.http,
            "audit_page",
            &[
                ("action", "sign_on_linked"),
                ("from", ""),
                ("to", ""),
                ("before", "0"),
            ],
        )
        .await;
    assert!(trail.contains("alice@example.com"), "{trail}");
    // From a fresh browser, her sign-on now opens the same account.
    let (again, _) = sign_on(&console, &provider, "alice").await;
    assert_eq!(location(&again), "/");
    let me = whoami(&console, &session_cookie(&again).unwrap()).await;
    assert_eq!(me["has_password"], json!(true));
    assert_eq!(me["name"], json!("Alice Password"));

    // Another subject the provider later gave the same email does not get in.
    let (other, cookie) = sign_on(&console, &provider, "alice2").await;
    assert_eq!(location(&other), "/sign-in?problem=password-account-exists");
    assert_eq!(whoami(&console, &cookie).await, Value::Null);
}

/// A sign-on account (no password) never gets one by a side way: no reset link is made for it,
/// and another subject with its email is refused.
#[tokio::test]
async fn a_sign_on_account_stays_its_subjects() {
    let dir = tempfile::tempdir().unwrap();
    let (console, provider) = console_with_sso(dir.path()).await;
    let added = console
        .post_form(
            &console.http,
            "/team/members",
            &[("email", "alice@example.com"), ("role", "viewer")],
        )
        .await;
    assert!(location(&added).contains("problem=done"));
    let (welcome, _) = sign_on(&console, &provider, "alice").await;
    assert_eq!(location(&welcome), "/");
    let (other, cookie) = sign_on(&console, &provider, "alice2").await;
    assert_eq!(location(&other), "/sign-in?problem=sso-failed");
    let words = notice(&console, &cookie).await;
    assert!(words.contains("already uses this email"), "{words}");
    assert_eq!(whoami(&console, &cookie).await, Value::Null);
    let reset = console
        .post_form(
            &console.http,
            "/teams/reset-links",
            &[("email", "alice@example.com")],
        )
        .await;
    assert_eq!(location(&reset), "/teams");
    let words = notice(&console, &console.cookie).await;
    assert!(words.contains("has no password here"), "{words}");
}

#[tokio::test]
async fn a_verified_email_signs_on_once_a_team_has_added_it() {
    let dir = tempfile::tempdir().unwrap();
    let (console, provider) = console_with_sso(dir.path()).await;
    // The sign-in page offers it.
    let (_, options) = console
        .call_as(&console.anonymous(), "sign_in_options", &[])
        .await;
    assert!(
        options.contains("your company's sign-in (127.0.0.1)"),
        "{options}"
    );

    // Alice is verified at the provider, but no team has added her: not let in.
    let (refused, cookie) = sign_on(&console, &provider, "alice").await;
    assert_eq!(location(&refused), "/sign-in?problem=sso-failed");
    assert!(
        session_cookie(&refused).is_none() || {
            let c = session_cookie(&refused).unwrap();
            c == cookie
        }
    );
    let words = notice(&console, &cookie).await;
    assert!(
        words.contains("alice@example.com is not a member of any team"),
        "{words}"
    );
    let (_, me) = console
        .call_as(&client_with(Some(&cookie)), "whoami", &[])
        .await;
    assert_eq!(me, "null");

    // The owner adds her by email as an operator; now she gets in, into that team.
    let added = console
        .post_form(
            &console.http,
            "/team/members",
            &[("email", "Alice@Example.com"), ("role", "operator")],
        )
        .await;
    assert!(
        location(&added).contains("problem=done"),
        "{}",
        location(&added)
    );
    let (welcome, pending) = sign_on(&console, &provider, "alice").await;
    assert_eq!(welcome.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&welcome), "/");
    let signed_in = session_cookie(&welcome).expect("a new session");
    assert_ne!(signed_in, pending, "the session id changes at sign-in");
    let (_, me) = console
        .call_as(&client_with(Some(&signed_in)), "whoami", &[])
        .await;
    let me: Value = serde_json::from_str(&me).unwrap();
    assert_eq!(me["email"], json!("alice@example.com"));
    assert_eq!(me["name"], json!("Alice Admin"));
    assert_eq!(me["has_password"], json!(false));
    assert_eq!(me["team"]["role"], json!("operator"));
    // Her sign-in is in the team's trail.
    let fields = [
        ("action", "sign_in"),
        ("from", ""),
        ("to", ""),
        ("before", "0"),
    ];
    let (_, trail) = console.call_as(&console.http, "audit_page", &fields).await;
    assert!(trail.contains("Alice Admin <alice@example.com>"), "{trail}");

    // Another domain, an unverified email, a cancelled sign-in: each said plainly.
    let (carol, cookie) = sign_on(&console, &provider, "carol").await;
    assert_eq!(location(&carol), "/sign-in?problem=sso-failed");
    let words = notice(&console, &cookie).await;
    assert!(words.contains("example.org is not allowed"), "{words}");
    let (bob, cookie) = sign_on(&console, &provider, "bob").await;
    assert_eq!(location(&bob), "/sign-in?problem=sso-failed");
    let words = notice(&console, &cookie).await;
    assert!(words.to_lowercase().contains("verified"), "{words}");

    // A callback nobody started (no pending sign-in in this browser) starts nothing and
    // stores nothing: no session, the problem in the address.
    let stray = console
        .anonymous()
        .get(console.url("/sign-in/sso/callback?code=abc&state=xyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&stray), "/sign-in?problem=session-expired");
    assert!(session_cookie(&stray).is_none());

    let log = console.log_text();
    assert!(!log.contains(SECRET), "the client secret is in the log");
}
