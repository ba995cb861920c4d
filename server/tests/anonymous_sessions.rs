//! Sessions against the real binary: visitors who are not signed in store no session (single
//! sign-on off, failed forms, made-up cookies and callbacks), and ended sessions are deleted
//! by the sweep, on SQLite and on PostgreSQL. The session table is read straight from the
//! console's database.

mod support;

use reqwest::StatusCode;
use sqlx::Connection;
use std::time::{Duration, Instant};
use support::console_process::{client_with, ConsoleProcess};
use support::pg_cluster;

/// The console's SQLite database, for reading its session table beside the running console.
async fn sqlite(console: &ConsoleProcess) -> sqlx::SqliteConnection {
    use sqlx::sqlite::SqliteConnectOptions;
    use std::str::FromStr;
    let path = console.data_dir.join("offboard.db");
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .expect("sqlite url")
        .busy_timeout(Duration::from_secs(10));
    sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("open the console's database")
}

async fn sqlite_sessions(db: &mut sqlx::SqliteConnection) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM tower_sessions")
        .fetch_one(db)
        .await
        .expect("count sessions")
}

async fn pg_sessions(db: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM tower_sessions.session")
        .fetch_one(db)
        .await
        .expect("count sessions")
}

fn location(reply: &reqwest::Response) -> String {
    reply
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn visitors_who_are_not_signed_in_store_no_session() {
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start(&dir.path().join("data")).await;
    let mut db = sqlite(&console).await;
    let before = sqlite_sessions(&mut db).await;
    assert_eq!(before, 1, "the first owner's session");

    let anonymous = console.anonymous();
    // Each of these stored a session (a notice, "single sign-on is not set up") before.
    for _ in 0..200 {
        let reply = anonymous
            .get(console.url("/sign-in/sso"))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::SEE_OTHER);
        assert!(location(&reply).contains("problem=sso-off"), "{reply:?}");
    }
    for _ in 0..200 {
        let reply = anonymous.get(console.url("/sign-in")).send().await.unwrap();
        assert_eq!(reply.status(), StatusCode::OK);
    }
    // The page says it in words, from the code alone.
    let page = anonymous
        .get(console.url("/sign-in?problem=sso-off"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Single sign-on is not set up"), "{page}");
    let failed = console
        .post_form(
            &anonymous,
            "/sign-in",
            &[("email", "nobody@example.com"), ("password", "wrong")],
        )
        .await;
    assert!(location(&failed).contains("problem=wrong-password"));
    // A made-up session cookie, and a callback no sign-in started.
    let forged = client_with(Some("offboard_session=made-up-session-id-000000"));
    for path in [
        "/sign-in/sso",
        "/sign-in/sso/callback?code=x&state=y",
        "/sign-in",
    ] {
        let reply = forged.get(console.url(path)).send().await.unwrap();
        assert!(reply.status().is_success() || reply.status().is_redirection());
    }
    let reply = console
        .post_form(&forged, "/sign-in", &[("email", "x@example.com")])
        .await;
    assert_eq!(reply.status(), StatusCode::SEE_OTHER);

    assert_eq!(
        sqlite_sessions(&mut db).await,
        before,
        "sessions were stored"
    );
    // The first owner's own session still works.
    let whoami = console.call("whoami", &[]).await.expect("whoami");
    assert!(
        whoami.to_string().contains("olive@offboard.test"),
        "{whoami}"
    );
}

#[tokio::test]
async fn ended_sessions_are_swept_from_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let console =
        ConsoleProcess::start_with(&dir.path().join("data"), &["--session-sweep-seconds", "1"])
            .await;
    let mut db = sqlite(&console).await;
    sqlx::query(
        "INSERT INTO tower_sessions (id, data, expiry_date) \
         VALUES ('ended-session-test', x'80', '2020-01-01 00:00:00+00:00')",
    )
    .execute(&mut db)
    .await
    .expect("an ended session");
    let gone = async {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM tower_sessions WHERE id = 'ended-session-test'",
            )
            .fetch_one(&mut db)
            .await
            .unwrap();
            if left == 0 || Instant::now() >= deadline {
                return left == 0;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert!(gone.await, "the ended session was not swept");
    // A live session is kept.
    assert_eq!(sqlite_sessions(&mut db).await, 1);
    assert!(console.call("whoami", &[]).await.is_ok());
}

#[tokio::test]
async fn ended_sessions_are_swept_from_postgres_and_anonymous_visitors_store_none() {
    let url = pg_cluster::shared().fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start_with(
        &dir.path().join("data"),
        &["--database-url", &url, "--session-sweep-seconds", "1"],
    )
    .await;
    let mut db = sqlx::PgConnection::connect(&url).await.expect("connect");
    let before = pg_sessions(&mut db).await;
    assert_eq!(before, 1, "the first owner's session");
    let anonymous = console.anonymous();
    for _ in 0..50 {
        anonymous
            .get(console.url("/sign-in/sso"))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(pg_sessions(&mut db).await, before);

    sqlx::query(
        "INSERT INTO tower_sessions.session (id, data, expiry_date) \
         VALUES ('ended-session-test', '\\x80', '2020-01-01T00:00:00Z')",
    )
    .execute(&mut db)
    .await
    .expect("an ended session");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM tower_sessions.session WHERE id = 'ended-session-test'",
        )
        .fetch_one(&mut db)
        .await
        .unwrap();
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the ended session was not swept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pg_sessions(&mut db).await, 1, "the live session is kept");
}

#[tokio::test]
async fn started_single_sign_ons_are_bounded_per_address_and_short_lived() {
    let dir = tempfile::tempdir().unwrap();
    let (console, provider) = support::oidc_provider::console_signing_on_with(
        "bounded-sso-test-secret-7c2d",
        &dir.path().join("data"),
        &[],
    )
    .await;
    let mut db = sqlite(&console).await;
    let before = sqlite_sessions(&mut db).await;

    // A real sign-on first: its session, started as a short pending one, ends up with the
    // standard 8 idle hours.
    let added = console
        .post_form(
            &console.http,
            "/team/members",
            &[("email", "alice@example.com"), ("role", "operator")],
        )
        .await;
    assert!(location(&added).contains("problem=done"), "{added:?}");
    let browser = console.anonymous();
    let start = browser
        .get(console.url("/sign-in/sso"))
        .send()
        .await
        .unwrap();
    let pending = support::console_process::session_cookie(&start).expect("pending session");
    let to_provider = url::Url::parse(&location(&start)).unwrap();
    let back = provider.browse(&to_provider, "alice", false).await;
    let welcome = client_with(Some(&pending))
        .get(back.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(location(&welcome), "/", "{welcome:?}");
    let long: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM tower_sessions WHERE datetime(expiry_date) > datetime('now', '+7 hours')",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(long, before + 1, "the signed-on session lasts 8 idle hours");

    let (mut started, mut refused) = (0, 0);
    for _ in 0..100 {
        // A new browser each time, as a flood would be: no cookie kept.
        let reply = console
            .anonymous()
            .get(console.url("/sign-in/sso"))
            .send()
            .await
            .unwrap();
        match reply.status() {
            StatusCode::SEE_OTHER => started += 1,
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("{other}"),
        }
    }
    // One address may have 30 sign-ins under way (http::sign_on::PENDING_PER_ADDRESS), the
    // finished one above among them.
    assert_eq!((started, refused), (29, 71));
    assert_eq!(sqlite_sessions(&mut db).await, before + 1 + 29);
    // Each lasts the pending sign-in's 10 minutes, not a signed-in session's 8 hours.
    let short: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM tower_sessions WHERE datetime(expiry_date) < datetime('now', '+11 minutes')",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(short, 29);
}
