//! Single sign-on through the real `offboard serve` binary and a real OpenID provider (the npm
//! `oidc-provider`, started on loopback by `end2end/oidc/provider.mjs`): a verified email gets
//! in only once a team has added it, lands in that team with its role, and what the provider
//! or the allowed domains refuse is said in plain words. The client secret never shows.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::console_process::{client_with, session_cookie, ConsoleProcess};
use support::oidc_provider::{OidcProvider, CLIENT_ID};
use support::scim2_server::free_port;

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
    let browser = console.anonymous();
    let start = browser
        .get(console.url("/sign-in/sso"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let pending = session_cookie(&start).expect("a session for the pending sign-in");
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

#[tokio::test]
async fn a_verified_email_signs_on_once_a_team_has_added_it() {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let provider = OidcProvider::start(SECRET, &format!("{base}/sign-in/sso/callback"));
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start_at(
        port,
        &dir.path().join("data"),
        &[
            "--public-url",
            &base,
            "--oidc-issuer",
            provider.issuer(),
            "--oidc-client-id",
            CLIENT_ID,
            "--oidc-client-secret",
            SECRET,
            "--oidc-allowed-domain",
            "example.com",
        ],
    )
    .await;
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
