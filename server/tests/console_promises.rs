//! Promises the console's flags and documentation make, checked on the real `offboard serve`
//! binary: it refuses to start on a database it cannot open (and says why), `--secure-cookies`
//! marks the session cookie Secure, `--previews-per-hour` / `--runs-per-hour` refuse one more
//! through the console in plain words, and a session ends 12 hours after sign-in (8 idle). The site is the project's fault server, a FAKE
//! Stack site (a Stack-shaped test double).

mod support;

use reqwest::StatusCode;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::console_process::{client_with, ConsoleProcess, FIRST_OWNER};
use support::fault_server::{deleted, FaultServer};

#[tokio::test]
async fn serve_refuses_to_start_when_its_database_cannot_be_opened() {
    let dir = tempfile::tempdir().unwrap();
    let port = support::scim2_server::free_port();
    // The database's folder does not exist (and SQLite does not make folders).
    let url = format!(
        "sqlite://{}",
        dir.path().join("no-such-folder/offboard.db").display()
    );
    let log = dir.path().join("serve.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_offboard"))
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--database-url", &url])
        .env_remove("OFFBOARD_SECRET_KEY")
        .env_remove("OFFBOARD_AUDIT_KEY")
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start offboard serve");
    // It ends on its own: waited for (with a bound), not guessed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "serve kept running on a database it cannot open; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!status.success(), "{status}; log:\n{text}");
    assert!(text.contains("could not open the database"), "{text}");
    // Nothing is left listening.
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something still answers on the console's port"
    );
}

/// The session cookie set by signing in as the first owner on `console`.
async fn sign_in_cookie_header(console: &ConsoleProcess) -> String {
    let (email, _, password) = FIRST_OWNER;
    let reply = console
        .post_form(
            &client_with(None),
            "/sign-in",
            &[("email", email), ("password", password), ("next", "/")],
        )
        .await;
    assert_eq!(reply.status(), StatusCode::SEE_OTHER);
    reply
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("offboard_session="))
        .expect("a session cookie")
        .to_string()
}

#[tokio::test]
async fn secure_cookies_marks_the_session_cookie_secure() {
    let dir = tempfile::tempdir().unwrap();
    let plain = ConsoleProcess::start(&dir.path().join("plain")).await;
    let cookie = sign_in_cookie_header(&plain).await;
    // Plain http on loopback (a developer's console): not Secure, or the browser drops it.
    assert!(!cookie.to_ascii_lowercase().contains("secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");

    let secure =
        ConsoleProcess::start_with(&dir.path().join("secure"), &["--secure-cookies"]).await;
    let cookie = sign_in_cookie_header(&secure).await;
    let attributes: Vec<String> = cookie
        .split(';')
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    assert!(attributes.iter().any(|a| a == "secure"), "{cookie}");
    assert!(attributes.iter().any(|a| a == "httponly"), "{cookie}");
}

#[tokio::test]
async fn previews_and_runs_per_hour_are_refused_through_the_console() {
    let site = FaultServer::start(&["--users", "12"]);
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start_with(
        &dir.path().join("data"),
        &["--previews-per-hour", "2", "--runs-per-hour", "1"],
    )
    .await;
    let diagnosis = console.save_connection(&site.base, "", "").await;
    assert_eq!(diagnosis["ok"], json!(true), "{diagnosis}");

    let first = console
        .preview_text("Email\nuser1@example.com\n", "delete")
        .await;
    let job = console.start_run(&first).await;
    assert!(!job.is_empty());
    let second = console
        .preview_text("Email\nuser2@example.com\n", "delete")
        .await;
    // The second run in the hour is refused, and starts nothing.
    let refused = console
        .call(
            "start_job",
            &[
                ("preview_id", second["id"].as_str().unwrap()),
                ("typed", second["phrase"].as_str().unwrap()),
            ],
        )
        .await
        .expect_err("a second run in the hour");
    assert!(
        refused.contains("1 runs in the last hour") && refused.contains("--runs-per-hour"),
        "{refused}"
    );
    // The third preview in the hour is refused too, in words.
    let third = console
        .call(
            "preview_text",
            &[
                ("file_name", "leavers.csv"),
                ("text", "Email\nuser4@example.com\n"),
                ("action", "delete"),
                ("demote", "false"),
            ],
        )
        .await
        .expect_err("a third preview in the hour");
    assert!(
        third.contains("2 previews in the last hour") && third.contains("--previews-per-hour"),
        "{third}"
    );
    // Only the first run's user is ever deleted.
    let state = site.state_once(|s| !deleted(s).is_empty()).await;
    assert_eq!(deleted(&state), ["1001".to_string()].into_iter().collect());
    let state = site.no_delete_during(Duration::from_millis(300)).await;
    assert_eq!(deleted(&state).len(), 1);
}

/// Sets the sign-in time of the session behind `cookie` (`offboard_session=ID`) to `hours_ago`
/// hours before now, as the console's own session table holds it (the clock cannot be wound
/// forward in a running binary; the stored sign-in time can be wound back). On SQLite, or on
/// PostgreSQL when the suite runs there (support/console_process.rs keeps its URL).
async fn signed_in_hours_ago(console: &ConsoleProcess, cookie: &str, hours_ago: i64) {
    use std::str::FromStr;
    let id = cookie
        .strip_prefix("offboard_session=")
        .expect("a session cookie");
    let id = tower_sessions::session::Id::from_str(id).expect("a session id");
    let since = chrono::Utc::now() - chrono::Duration::hours(hours_ago);
    match std::fs::read_to_string(console.data_dir.with_extension("database-url")) {
        Ok(url) => {
            let pool = sqlx::PgPool::connect(&url)
                .await
                .expect("the console's database");
            let store = tower_sessions_sqlx_store::PostgresStore::new(pool.clone());
            wind_back(&store, &id, since).await;
            pool.close().await;
        }
        Err(_) => {
            let url = format!(
                "sqlite://{}",
                console.data_dir.join("offboard.db").display()
            );
            let pool = sqlx::SqlitePool::connect(&url)
                .await
                .expect("the console's database");
            let store = tower_sessions_sqlx_store::SqliteStore::new(pool.clone());
            wind_back(&store, &id, since).await;
            pool.close().await;
        }
    }
}

async fn wind_back(
    store: &impl tower_sessions::SessionStore,
    id: &tower_sessions::session::Id,
    since: chrono::DateTime<chrono::Utc>,
) {
    let mut record = store
        .load(id)
        .await
        .expect("load")
        .expect("a stored session");
    let signed_in = record.data.get_mut("signed_in").expect("signed in");
    signed_in["since"] = json!(since);
    store.save(&record).await.expect("save");
}

/// A session ends 12 hours after sign-in however busy it is (the absolute lifetime), and
/// its cookie is set to last 8 hours (Max-Age; the idle limit, `Expiry::OnInactivity`).
#[tokio::test]
async fn a_session_ends_twelve_hours_after_sign_in_and_its_cookie_lasts_eight_idle_hours() {
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start(&dir.path().join("data")).await;
    let header = sign_in_cookie_header(&console).await;
    let max_age = header
        .split(';')
        .find_map(|a| a.trim().strip_prefix("Max-Age="))
        .unwrap_or_else(|| panic!("no Max-Age: {header}"));
    assert_eq!(max_age, (8 * 3600).to_string(), "{header}");
    let cookie = header.split(';').next().unwrap().to_string();
    let client = client_with(Some(&cookie));
    let jobs = |client: reqwest::Client| {
        let console = &console;
        async move { console.call_as(&client, "jobs", &[]).await.0 }
    };
    assert_eq!(jobs(client.clone()).await, StatusCode::OK);
    // Signed in 11 hours ago and busy since: still in.
    signed_in_hours_ago(&console, &cookie, 11).await;
    assert_eq!(jobs(client.clone()).await, StatusCode::OK);
    // Past 12 hours: out, however busy, and for good.
    signed_in_hours_ago(&console, &cookie, 13).await;
    assert_eq!(jobs(client.clone()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(jobs(client).await, StatusCode::UNAUTHORIZED);
}
