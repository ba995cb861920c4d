//! People in a running console's team, for tests that need more than its first owner: an
//! invitation made by an owner and a new local account joining through it.

use super::console_process::{client_with, session_cookie, ConsoleProcess};
use reqwest::{Client, StatusCode};
use serde_json::Value;

/// The password every invited test account gets.
pub const PASSWORD: &str = "a long enough password";

/// An invitation code made by `owner` for their current team, for `role`, that only `email`
/// can accept.
pub async fn invitation(
    console: &ConsoleProcess,
    owner: &Client,
    role: &str,
    email: &str,
) -> String {
    let made = console
        .post_form(
            owner,
            "/team/invitations",
            &[("role", role), ("email", email)],
        )
        .await;
    assert_eq!(made.status(), StatusCode::SEE_OTHER);
    let (status, body) = console.call_as(owner, "team_page", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let page: Value = serde_json::from_str(&body).expect("team page");
    let url = page["new_link"]["url"].as_str().expect("a new link");
    url.rsplit('=').next().expect("a code").to_string()
}

/// A new member of `owner`'s current team with `role`, signed in: their client.
pub async fn invited(
    console: &ConsoleProcess,
    owner: &Client,
    role: &str,
    email: &str,
    name: &str,
) -> Client {
    let code = invitation(console, owner, role, email).await;
    let joined = console
        .post_form(
            &console.anonymous(),
            "/join",
            &[
                ("code", code.as_str()),
                ("email", email),
                ("name", name),
                ("password", PASSWORD),
                ("again", PASSWORD),
            ],
        )
        .await;
    let cookie = session_cookie(&joined).unwrap_or_else(|| panic!("join refused: {joined:?}"));
    client_with(Some(&cookie))
}
