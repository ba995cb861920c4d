//! Who gets in, and as whom, through the real `offboard serve` binary (SQLite, and PostgreSQL
//! where storage decides): each test replays an attack a hostile review reproduced and sees it
//! refused. An invitation is for one email; a membership granted by email goes only to a
//! sign-in that proves the email; an invitation dies with its maker's ownership and can be
//! revoked; two owners demoting each other never leave a team without an owner; attempts sent
//! at once get no more tries than one after another; strangers failing from one address slow
//! it down but lock nobody out. No site is needed: nothing here reaches one.

mod support;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use support::console_process::{client_with, session_cookie, ConsoleProcess, FIRST_OWNER};
use support::people::PASSWORD;

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

/// The console on SQLite, or on a fresh PostgreSQL database of the shared test cluster.
async fn console_on(postgres: bool, dir: &std::path::Path, extra: &[&str]) -> ConsoleProcess {
    let mut args: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
    if postgres {
        args.push("--database-url".into());
        args.push(support::pg_cluster::shared().fresh_database().await);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ConsoleProcess::start_with(&dir.join("data"), &args).await
}

/// The first owner makes a team and switches to it; its id.
async fn new_team(console: &ConsoleProcess, name: &str) -> String {
    let made = console
        .post_form(&console.http, "/teams", &[("name", name)])
        .await;
    assert!(location(&made).contains("problem=done"), "{made:?}");
    let teams = json_of(console, &console.http, "console_teams").await;
    teams[0]
        .as_array()
        .expect("teams")
        .iter()
        .find(|t| t["name"] == json!(name))
        .expect("the new team")["id"]
        .to_string()
}

async fn switch_to(console: &ConsoleProcess, client: &Client, team: &str) -> String {
    location(
        &console
            .post_form(client, "/account/team", &[("team", team)])
            .await,
    )
}

/// An invitation's code, made by `owner` in their current team.
async fn invitation(console: &ConsoleProcess, owner: &Client, role: &str, email: &str) -> String {
    support::people::invitation(console, owner, role, email).await
}

/// `POST /join` as a new account: the answer.
async fn join_as_new(console: &ConsoleProcess, code: &str, email: &str) -> reqwest::Response {
    console
        .post_form(
            &console.anonymous(),
            "/join",
            &[
                ("code", code),
                ("email", email),
                ("name", "Someone"),
                ("password", PASSWORD),
                ("again", PASSWORD),
            ],
        )
        .await
}

async fn sign_in(console: &ConsoleProcess, email: &str, password: &str) -> reqwest::Response {
    console
        .post_form(
            &console.anonymous(),
            "/sign-in",
            &[("email", email), ("password", password), ("next", "/")],
        )
        .await
}

/// The names of the teams `client`'s person belongs to.
async fn teams_of(console: &ConsoleProcess, client: &Client) -> Vec<String> {
    let me = json_of(console, client, "whoami").await;
    me["teams"]
        .as_array()
        .expect("teams")
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Issue item 1: team Alpha's viewer invitation, used with someone else's email, made an
/// account that inherited team Bravo's by-email operator grant. Now the invitation opens only
/// for its own email, and even an account made for that email by an invitation (which proves
/// only that its holder has the link) takes up no grant made by email.
async fn an_invitation_is_a_way_in_for_its_email_only(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let console = console_on(postgres, dir.path(), &[]).await;
    let bravo = new_team(&console, "Bravo").await;
    assert_eq!(switch_to(&console, &console.http, &bravo).await, "/");
    let granted = console
        .post_form(
            &console.http,
            "/team/members",
            &[("email", "carol@corp.example"), ("role", "operator")],
        )
        .await;
    assert!(location(&granted).contains("problem=done"));
    assert_eq!(switch_to(&console, &console.http, "1").await, "/");

    // Mallory's own invitation, used under Carol's email: refused, nothing made.
    let mallorys = invitation(&console, &console.http, "viewer", "mallory@corp.example").await;
    let refused = join_as_new(&console, &mallorys, "carol@corp.example").await;
    assert_eq!(
        location(&refused),
        format!("/join?code={mallorys}&problem=invitation-for-another-email")
    );
    assert!(session_cookie(&refused).is_none());
    let nobody = sign_in(&console, "carol@corp.example", PASSWORD).await;
    assert!(location(&nobody).contains("problem=wrong-password"));
    // It still works for Mallory, who gets Alpha and nothing else.
    let mallory = join_as_new(&console, &mallorys, "mallory@corp.example").await;
    let mallory = client_with(Some(&session_cookie(&mallory).expect("joined")));
    assert_eq!(teams_of(&console, &mallory).await, vec!["Default team"]);

    // An Alpha owner makes an invitation for Carol's email and accepts it: Alpha only. Bravo's
    // grant waits for a sign-in that proves the email.
    let for_carol = invitation(&console, &console.http, "viewer", "carol@corp.example").await;
    let squatter = join_as_new(&console, &for_carol, "carol@corp.example").await;
    let squatter = client_with(Some(&session_cookie(&squatter).expect("joined")));
    assert_eq!(teams_of(&console, &squatter).await, vec!["Default team"]);
    assert_eq!(
        switch_to(&console, &squatter, &bravo).await,
        "/account",
        "Bravo is not theirs"
    );
    let (status, _) = console.call_as(&squatter, "jobs", &[]).await;
    assert_eq!(status, StatusCode::OK, "their own team's history only");
    // Bravo's owner sees the grant still waiting.
    assert_eq!(switch_to(&console, &console.http, &bravo).await, "/");
    let page = json_of(&console, &console.http, "team_page").await;
    let carol = page["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == json!("carol@corp.example"))
        .expect("carol listed")
        .clone();
    assert_eq!(carol["joined"], json!(false), "{carol}");
}

#[tokio::test]
async fn an_invitation_is_a_way_in_for_its_email_only_on_sqlite() {
    an_invitation_is_a_way_in_for_its_email_only(false).await
}

#[tokio::test]
async fn an_invitation_is_a_way_in_for_its_email_only_on_postgres() {
    an_invitation_is_a_way_in_for_its_email_only(true).await
}

/// Issue item 2: an owner demoted (or removed) could still use an owner invitation they had
/// made. Now owners see every open invitation (for whom, role, maker, expiry), can revoke one,
/// and a maker's invitations die when they stop being an owner (and are checked at use).
async fn invitations_are_listed_revocable_and_die_with_their_maker(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let console = console_on(postgres, dir.path(), &[]).await;
    let olive = &console.http;
    let bob = support::people::invited(&console, olive, "owner", "bob@corp.example", "Bob").await;
    // Bob, an owner, makes an owner invitation for an address he controls.
    let bobs = invitation(&console, &bob, "owner", "bob-again@corp.example").await;
    let for_dan = invitation(&console, olive, "operator", "dan@corp.example").await;
    let page = json_of(&console, olive, "team_page").await;
    let mut listed: Vec<(String, String, String)> = page["invitations"]
        .as_array()
        .expect("owners see the invitations")
        .iter()
        .map(|i| {
            assert!(i["expires"].as_str().is_some_and(|e| !e.is_empty()), "{i}");
            (
                i["email"].as_str().unwrap().to_string(),
                i["role"].as_str().unwrap().to_string(),
                i["made_by"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        vec![
            (
                "bob-again@corp.example".into(),
                "owner".into(),
                "bob@corp.example".into()
            ),
            (
                "dan@corp.example".into(),
                "operator".into(),
                FIRST_OWNER.0.into()
            ),
        ]
    );
    // The page never carries a link's code.
    assert!(!page.to_string().contains(&bobs) && !page.to_string().contains(&for_dan));

    // Olive demotes Bob: his invitation dies, and he cannot become owner again with it.
    let demoted = console
        .post_form(
            olive,
            "/team/members",
            &[("email", "bob@corp.example"), ("role", "viewer")],
        )
        .await;
    assert!(location(&demoted).contains("problem=done"));
    let back = join_as_new(&console, &bobs, "bob-again@corp.example").await;
    assert!(location(&back).contains("problem=link-invalid"), "{back:?}");
    assert!(session_cookie(&back).is_none());
    let page = json_of(&console, olive, "team_page").await;
    let open: Vec<&str> = page["invitations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["email"].as_str().unwrap())
        .collect();
    assert_eq!(open, vec!["dan@corp.example"]);
    // A viewer sees no invitations.
    let bobs_view = json_of(&console, &bob, "team_page").await;
    assert_eq!(bobs_view["invitations"], json!([]));

    // Revoked: it opens for nobody, and the trail says who revoked it.
    let id = page["invitations"][0]["id"].as_str().unwrap().to_string();
    let revoked = console
        .post_form(olive, "/team/invitations/revoke", &[("id", id.as_str())])
        .await;
    assert!(location(&revoked).contains("problem=done"));
    let dan = join_as_new(&console, &for_dan, "dan@corp.example").await;
    assert!(location(&dan).contains("problem=link-invalid"));
    // Revoking again, or as a viewer, changes nothing.
    let again = console
        .post_form(olive, "/team/invitations/revoke", &[("id", id.as_str())])
        .await;
    assert_eq!(location(&again), "/team");
    let forged = console
        .post_form(&bob, "/team/invitations/revoke", &[("id", id.as_str())])
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let fields = [
        ("action", "invitation_revoked"),
        ("from", ""),
        ("to", ""),
        ("before", "0"),
    ];
    let (_, trail) = console.call_as(olive, "audit_page", &fields).await;
    assert!(trail.contains("dan@corp.example"), "{trail}");
}

#[tokio::test]
async fn invitations_are_listed_revocable_and_die_with_their_maker_on_sqlite() {
    invitations_are_listed_revocable_and_die_with_their_maker(false).await
}

#[tokio::test]
async fn invitations_are_listed_revocable_and_die_with_their_maker_on_postgres() {
    invitations_are_listed_revocable_and_die_with_their_maker(true).await
}

/// Issue item 3: two owners demoting each other at the same moment left the team ownerless
/// in 2 of 8 tries. Now the rule holds inside the write: in every try exactly one demotion
/// passes and the team keeps one owner. A console owner can give an ownerless team (one left
/// so by hand in the database) an owner, and nobody else can.
async fn two_owners_demoting_each_other_leave_one_owner(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let console = console_on(postgres, dir.path(), &[]).await;
    let olive = console.http.clone();
    for round in 0..8 {
        let email = format!("bob{round}@corp.example");
        let bob = support::people::invited(&console, &olive, "owner", &email, "Bob").await;
        let demote = |client: Client, who: String| {
            let console_url = console.url("/team/members");
            async move {
                let reply = client
                    .post(console_url)
                    .form(&[("email", who.as_str()), ("role", "operator")])
                    .send()
                    .await
                    .expect("answered");
                location(&reply)
            }
        };
        let (olive_demotes_bob, bob_demotes_olive) = tokio::join!(
            demote(olive.clone(), email.clone()),
            demote(bob.clone(), FIRST_OWNER.0.to_string())
        );
        let page = json_of(&console, &olive, "team_page").await;
        let owners: Vec<&str> = page["members"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == json!("owner"))
            .map(|m| m["email"].as_str().unwrap())
            .collect();
        assert_eq!(
            owners.len(),
            1,
            "round {round}: {olive_demotes_bob} / {bob_demotes_olive}"
        );
        let passed = [&olive_demotes_bob, &bob_demotes_olive]
            .iter()
            .filter(|l| l.contains("problem=done"))
            .count();
        assert_eq!(passed, 1, "round {round}");
        // Put Olive back as the owner for the next round (from whichever owner is left).
        if owners[0] != FIRST_OWNER.0 {
            let restored = console
                .post_form(
                    &bob,
                    "/team/members",
                    &[("email", FIRST_OWNER.0), ("role", "owner")],
                )
                .await;
            assert!(location(&restored).contains("problem=done"));
        }
        let gone = console
            .post_form(
                &olive,
                "/team/members/remove",
                &[("email", email.as_str()), ("confirm", "yes")],
            )
            .await;
        assert!(location(&gone).contains("problem=done"), "{gone:?}");
    }
}

#[tokio::test]
async fn two_owners_demoting_each_other_leave_one_owner_on_sqlite() {
    two_owners_demoting_each_other_leave_one_owner(false).await
}

#[tokio::test]
async fn two_owners_demoting_each_other_leave_one_owner_on_postgres() {
    two_owners_demoting_each_other_leave_one_owner(true).await
}

#[tokio::test]
async fn a_console_owner_gives_an_ownerless_team_an_owner() {
    let dir = tempfile::tempdir().unwrap();
    let console = console_on(false, dir.path(), &[]).await;
    let olive = console.http.clone();
    let bravo = new_team(&console, "Bravo").await;
    let viewer =
        support::people::invited(&console, &olive, "viewer", "vic@corp.example", "Vic").await;
    // A team with an owner: a console owner does not reach into it.
    let refused = console
        .post_form(
            &olive,
            "/teams/owner",
            &[("team", bravo.as_str()), ("email", "vic@corp.example")],
        )
        .await;
    assert_eq!(location(&refused), "/teams");
    let (_, notice) = console.call_as(&olive, "account_notice", &[]).await;
    assert!(notice.contains("has an owner"), "{notice}");
    // Left ownerless behind the console's back (an old bug, or a hand edit).
    console
        .sql(
            "UPDATE team_members SET role = 'operator' WHERE team_id = CAST($1 AS INTEGER) \
             RETURNING email",
            &[bravo.as_str()],
        )
        .await;
    let teams = json_of(&console, &olive, "console_teams").await;
    let listed = teams[0]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == json!("Bravo"))
        .unwrap()
        .clone();
    assert_eq!(listed["owners"], json!([]));
    // A member who is not a console owner cannot.
    let forged = console
        .post_form(
            &viewer,
            "/teams/owner",
            &[("team", bravo.as_str()), ("email", "vic@corp.example")],
        )
        .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let given = console
        .post_form(
            &olive,
            "/teams/owner",
            &[("team", bravo.as_str()), ("email", FIRST_OWNER.0)],
        )
        .await;
    assert!(location(&given).contains("problem=done"), "{given:?}");
    let teams = json_of(&console, &olive, "console_teams").await;
    let listed = teams[0]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == json!("Bravo"))
        .unwrap()
        .clone();
    assert_eq!(listed["owners"], json!([FIRST_OWNER.0]));
}

/// Issue item 6: 60 sign-ins for one account at once (59 wrong passwords) got past the limit
/// of 5. Now each attempt is reserved before its password is checked: exactly 5 are checked,
/// the rest are told to wait, and then even the right password is refused.
async fn simultaneous_sign_ins_get_no_more_tries(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let console = console_on(postgres, dir.path(), &[]).await;
    let attempts =
        (0..59).map(|i| {
            let console = &console;
            async move {
                location(&sign_in(console, FIRST_OWNER.0, &format!("wrong password {i}")).await)
            }
        });
    let answers = futures::future::join_all(attempts).await;
    let checked = answers
        .iter()
        .filter(|a| a.contains("problem=wrong-password"))
        .count();
    let throttled = answers
        .iter()
        .filter(|a| a.contains("problem=throttled"))
        .count();
    assert_eq!((checked, throttled), (5, 54), "{answers:?}");
    let right = sign_in(&console, FIRST_OWNER.0, FIRST_OWNER.2).await;
    assert!(location(&right).contains("problem=throttled"), "{right:?}");
    assert!(session_cookie(&right).is_none());
}

#[tokio::test]
async fn simultaneous_sign_ins_get_no_more_tries_on_sqlite() {
    simultaneous_sign_ins_get_no_more_tries(false).await
}

#[tokio::test]
async fn simultaneous_sign_ins_get_no_more_tries_on_postgres() {
    simultaneous_sign_ins_get_no_more_tries(true).await
}

/// Issue item 7: after many failed sign-ins with random emails from one address (everyone
/// behind one proxy), the owner's right password was answered "throttled". Now strangers'
/// failures only slow that address down: the owner still gets in, and one account's limit
/// counts that account's failures only.
#[tokio::test]
async fn strangers_failing_from_one_address_lock_nobody_out() {
    let dir = tempfile::tempdir().unwrap();
    let console = console_on(false, dir.path(), &[]).await;
    // 40 accounts' worth of guesses from this address, twice the address's allowance.
    let strangers =
        (0..40).map(|i| {
            let console = &console;
            async move {
                location(&sign_in(console, &format!("stranger{i}@corp.example"), "guess").await)
            }
        });
    let answers = futures::future::join_all(strangers).await;
    assert!(
        answers.iter().all(|a| a.contains("problem=wrong-password")),
        "each stranger's own limit is untouched: {answers:?}"
    );
    let owner = sign_in(&console, FIRST_OWNER.0, FIRST_OWNER.2).await;
    assert_eq!(location(&owner), "/", "{owner:?}");
    assert!(session_cookie(&owner).is_some());
}

/// Issue item 9 (what a test can show without timing): while 30 sign-ins are checked at
/// once, the console keeps answering its health check and every sign-in gets its answer (the
/// hashes wait their turn off the request threads; how fast is measured in the benchmark).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_sign_ins_leaves_the_console_answering() {
    let dir = tempfile::tempdir().unwrap();
    let console = console_on(false, dir.path(), &[]).await;
    let burst = (0..30).map(|i| {
        let console = &console;
        async move { location(&sign_in(console, &format!("burst{i}@corp.example"), "guess").await) }
    });
    let health = async {
        let mut answered = 0;
        for _ in 0..5 {
            let reply = console
                .anonymous()
                .get(console.url("/healthz"))
                .send()
                .await
                .expect("health answers during the burst");
            assert_eq!(reply.status(), StatusCode::OK);
            answered += 1;
        }
        answered
    };
    let (answers, answered) = tokio::join!(futures::future::join_all(burst), health);
    assert_eq!(answered, 5);
    assert_eq!(answers.len(), 30);
    assert!(
        answers.iter().all(|a| a.contains("problem=wrong-password")),
        "{:?}",
        answers
            .iter()
            .find(|a| !a.contains("problem=wrong-password"))
    );
}
