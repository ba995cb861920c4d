//! The console backend end to end: real SQLite in a temporary folder, the real HTTP client,
//! and the project's Stack-shaped fault server (a FAKE Stack site). Every run checks the exact set of users the
//! server deleted, and how many DELETEs each got.

mod support;

use app::backend::{ConnectionForm, ConsoleBackend, JobCommand, JobView};
use app::hidden::Hidden;
use app::ids::AccountId;
use app::ids::{JobId, TeamId};
use app::model::{Action, DiagnosisKind, ItemOutcome, ItemResult, JobState, PreviewOutcome};
use app::team::Role;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use model::Named;
use serde_json::{json, Value};
use server::engine::runner::RunOptions;
use server::http::{AppState, Caller, WatcherSlots};
use server::scim::http::HttpOptions;
use server::secret::SecretBox;
use server::service::jobs::JobSupervisor;
use server::service::{self, Console, Member, Person, Settings, TeamConsole};
use server::storage;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::fault_server::{at_most_one_delete_each, deleted, FaultServer, TOKEN};
use tower::ServiceExt;

struct Setup {
    /// The service as the built-in team's requests see it.
    console: TeamConsole,
    service: Arc<Console>,
    jobs: Arc<JobSupervisor>,
    storage: Arc<dyn storage::Storage>,
}

async fn setup(dir: &Path) -> Setup {
    let db = storage::open(&format!("sqlite://{}", dir.join("offboard.db").display()))
        .await
        .expect("open db");
    let secrets = SecretBox::load_or_create(dir, None).expect("key");
    let service = service::build(
        db.storage.clone(),
        secrets,
        Settings {
            http: HttpOptions {
                timeout: Duration::from_secs(5),
                extra_ca_bundle: None,
                site_guard: None,
            },
            run: RunOptions {
                concurrency: 2,
                max_backoff: Duration::from_millis(200),
                ..RunOptions::default()
            },
            ..Settings::new(dir.to_path_buf())
        },
    );
    Setup {
        console: service.for_team(TeamId::BUILT_IN, service::Actor::ConsoleAdmin),
        jobs: service.jobs.clone(),
        service,
        storage: db.storage,
    }
}

/// The console's plain routes on `s`, with room for `per_run` watchers of a run and `total`
/// in all.
fn plain_routes(s: &Setup, per_run: usize, total: usize) -> axum::Router {
    let state = AppState {
        leptos_options: leptos::prelude::LeptosOptions::builder()
            .output_name("offboard")
            .build(),
        service: s.service.clone(),
        watchers: WatcherSlots::new(per_run, total),
        public_url: None,
        sso: None,
    };
    // The routes alone have no sign-in in front of them: every request comes from an owner
    // of the built-in team, as `http::caller::identify` would say for a signed-in owner.
    let owner = Caller {
        member: Member {
            person: Person {
                account: AccountId::new(1),
                email: "olive@offboard.test".into(),
                name: "Olive Owner".into(),
                console_owner: true,
                has_password: true,
            },
            team: TeamId::BUILT_IN,
            team_name: "Default team".into(),
            role: Role::Owner,
        },
    };
    server::http::plain_routes()
        .layer(axum::Extension(owner))
        .with_state(state)
}

async fn connect(console: &TeamConsole, site: &FaultServer) {
    let (view, found) = console
        .save_connection(ConnectionForm {
            site_url: site.base.clone(),
            scim_base_url: None,
            token: Some(Hidden::new(TOKEN.to_string())),
            operator_email: Some("user3@example.com".to_string()),
            keep_token: false,
        })
        .await
        .expect("save");
    assert!(found.ok, "{found:?}");
    assert!(view.token_saved);
}

fn file_of(emails: &[&str]) -> Vec<u8> {
    let mut text = String::from("Email\n");
    for e in emails {
        text.push_str(e);
        text.push('\n');
    }
    text.into_bytes()
}

fn emails(range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range.map(|i| format!("user{i}@example.com")).collect()
}

async fn wait_for(
    console: &TeamConsole,
    job_id: &JobId,
    what: impl Fn(&JobView) -> bool,
) -> JobView {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let job = console.job(job_id.clone()).await.expect("job");
        if what(&job) {
            return job;
        }
        assert!(Instant::now() < deadline, "timed out; job is {job:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A delete run of `user{range}@example.com`, started from a file preview; checks that the
/// preview selected `selected` of them.
async fn started_run(
    console: &TeamConsole,
    range: std::ops::RangeInclusive<u32>,
    demote: bool,
    selected: usize,
) -> JobView {
    let list = emails(range);
    let refs: Vec<&str> = list.iter().map(String::as_str).collect();
    let preview = console
        .preview_file("l.csv".into(), file_of(&refs), None, Action::Delete, demote)
        .await
        .unwrap();
    assert_eq!(preview.counts.selected, selected);
    console
        .start_job(preview.id.clone(), preview.phrase.clone())
        .await
        .unwrap()
}

fn ids(range: std::ops::RangeInclusive<u32>) -> BTreeSet<String> {
    range.map(|i| (1000 + i).to_string()).collect()
}

#[tokio::test]
async fn connecting_keeps_the_token_hidden_and_only_for_its_site() {
    let site = FaultServer::start(&["--users", "5"]);
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    let console = &s.console;

    assert_eq!(
        console.check_connection().await.unwrap().kind,
        DiagnosisKind::NotConnected
    );
    let (view, found) = console
        .save_connection(ConnectionForm {
            site_url: site.base.clone(),
            scim_base_url: None,
            token: Some(Hidden::new(format!("  {TOKEN} "))),
            operator_email: Some(" ".to_string()),
            keep_token: false,
        })
        .await
        .unwrap();
    assert!(found.ok, "{found:?}");
    assert_eq!(found.kind, DiagnosisKind::Ok);
    assert_eq!(found.user_count, Some(6));
    assert!(view.token_saved);
    assert_eq!(view.token_hint, "oken");
    assert_eq!(view.operator_email, None);
    for text in [
        format!("{view:?}"),
        format!("{found:?}"),
        serde_json::to_string(&view).unwrap(),
        format!(
            "{:?}",
            s.storage.connection(TeamId::BUILT_IN).await.unwrap()
        ),
    ] {
        assert!(!text.contains(TOKEN), "token leaked: {text}");
    }
    let stored = s
        .storage
        .connection(TeamId::BUILT_IN)
        .await
        .unwrap()
        .unwrap();
    assert!(!stored.token_ciphertext.unwrap().expose().contains(TOKEN));

    // An empty token keeps the saved one for the same site.
    let (view, found) = console
        .save_connection(ConnectionForm {
            site_url: site.base.clone(),
            scim_base_url: None,
            token: Some(Hidden::new(String::new())),
            operator_email: Some("me@example.com".into()),
            keep_token: false,
        })
        .await
        .unwrap();
    assert!(view.token_saved && found.ok, "{found:?}");
    assert_eq!(view.operator_email.as_deref(), Some("me@example.com"));

    // A wrong token is diagnosed, not an error, and not kept: the working one stays.
    let before = console.connection().await.unwrap();
    let (view, found) = console
        .save_connection(ConnectionForm {
            site_url: site.base.clone(),
            scim_base_url: None,
            token: Some(Hidden::new("wrong-token-0000000".into())),
            operator_email: None,
            keep_token: false,
        })
        .await
        .unwrap();
    assert_eq!(found.kind, DiagnosisKind::BadToken);
    assert_eq!(view, before);
    assert_eq!(console.connection().await.unwrap(), before);
    assert!(before.token_saved && !before.token_hint.is_empty());

    // An unusable address is a diagnosis, and nothing is saved.
    let (view, found) = console
        .save_connection(ConnectionForm {
            site_url: "http://acme.example.com".into(),
            scim_base_url: None,
            token: None,
            operator_email: None,
            keep_token: false,
        })
        .await
        .unwrap();
    assert!(!found.ok);
    assert_eq!(found.kind, DiagnosisKind::BadUrl);
    assert!(found.message.contains("plain http"), "{}", found.message);
    assert_eq!(view.site_url.as_deref(), Some(site.base.as_str()));

    // Another site without a new token: the old token is forgotten, never sent there.
    let other = FaultServer::start(&["--users", "1"]);
    let (view, found) = console
        .save_connection(ConnectionForm {
            site_url: other.base.clone(),
            scim_base_url: None,
            token: None,
            operator_email: None,
            keep_token: false,
        })
        .await
        .unwrap();
    assert!(!view.token_saved);
    assert_eq!(found.kind, DiagnosisKind::NotConnected);
    assert_eq!(other.state().await["unauthorized"], 0);
    assert_eq!(other.state().await["requests"]["LIST"], 0);

    let view = console.forget_token().await.unwrap();
    assert!(!view.token_saved && view.token_hint.is_empty());
    assert_eq!(
        console.check_connection().await.unwrap().kind,
        DiagnosisKind::NotConnected
    );
    let err = console.deactivated_users().await.unwrap_err();
    assert!(err.message.contains("Connect"), "{}", err.message);
}

/// The site moved: asked by Connect, the owner keeps the saved token for the new address, which
/// then receives it (and the trail says so); without that answer the token is forgotten.
#[tokio::test]
async fn a_token_is_kept_for_a_new_address_only_when_the_owner_says_so() {
    let site = FaultServer::start(&["--users", "2"]);
    let moved = FaultServer::start(&["--users", "3"]);
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    let console = &s.console;
    connect(console, &site).await;
    let hint = console.connection().await.unwrap().token_hint;

    let (view, found) = console
        .save_connection(ConnectionForm {
            site_url: moved.base.clone(),
            scim_base_url: None,
            token: None,
            operator_email: None,
            keep_token: true,
        })
        .await
        .unwrap();
    assert!(found.ok, "{found:?}");
    // The new site answered (its 3 users and its system account), not the old one (2 + 1).
    assert_eq!(found.user_count, Some(4));
    assert!(view.token_saved);
    assert_eq!(view.token_hint, hint);
    assert_eq!(moved.state().await["unauthorized"], 0);
    assert!(moved.state().await["requests"]["LIST"].as_u64().unwrap() > 0);
    let trail = console
        .audit_page(app::audit::AuditFilter::default(), None, 1)
        .await
        .unwrap()
        .entries;
    assert!(
        trail[0]
            .details
            .contains(r#""token_kept_for_new_site":true"#),
        "{}",
        trail[0].details
    );

    // Saving the same address again keeps it too, whatever the answer (there was no question).
    let (view, _) = console
        .save_connection(ConnectionForm {
            site_url: moved.base.clone(),
            scim_base_url: None,
            token: None,
            operator_email: None,
            keep_token: false,
        })
        .await
        .unwrap();
    assert!(view.token_saved);

    // Back to the first address without keeping it: forgotten, nothing sent there.
    let before = site.state().await["requests"]["LIST"].as_u64().unwrap_or(0);
    let (view, found) = console
        .save_connection(ConnectionForm {
            site_url: site.base.clone(),
            scim_base_url: None,
            token: None,
            operator_email: None,
            keep_token: false,
        })
        .await
        .unwrap();
    assert!(!view.token_saved);
    assert_eq!(found.kind, DiagnosisKind::NotConnected);
    assert_eq!(
        site.state().await["requests"]["LIST"].as_u64().unwrap_or(0),
        before
    );
}

#[tokio::test]
async fn a_confirmed_file_preview_runs_once_and_deletes_exactly_its_users() {
    let site = FaultServer::start(&["--users", "12"]);
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    let console = &s.console;
    connect(console, &site).await;

    let bad = console
        .preview_file("x.csv".into(), Vec::new(), None, Action::Delete, false)
        .await
        .unwrap_err();
    assert!(bad.message.contains("empty"), "{}", bad.message);

    // user7 is a Moderator (skipped), user3 the operator (protected), nobody@ unknown.
    let file = file_of(&[
        "user2@example.com",
        "user1@example.com",
        "nobody@example.com",
        "user7@example.com",
        "user3@example.com",
        "user4@example.com",
    ]);
    let preview = console
        .preview_file("leavers.csv".into(), file, None, Action::Delete, false)
        .await
        .unwrap();
    assert_eq!(preview.counts.selected, 3);
    assert_eq!(preview.counts.not_found, 1);
    assert_eq!(preview.counts.privileged, 1);
    assert_eq!(preview.counts.protected, 1);
    assert_eq!(preview.phrase, "DELETE 3 USERS");
    assert!(!preview.used);
    let page = console
        .preview_rows(preview.id.clone(), Some(PreviewOutcome::Selected), 1, 1)
        .await
        .unwrap();
    assert_eq!(page.matching, 3);
    assert_eq!(page.rows.len(), 1);
    assert_eq!(page.rows[0].input, "user1@example.com");

    // Revising makes a new preview with the new options, which replaces the old one.
    let revised = console
        .revise_preview(preview.id.clone(), Action::Delete, true, None)
        .await
        .unwrap();
    assert_ne!(revised.id, preview.id);
    assert_eq!(revised.counts.selected, 4);
    assert_eq!(revised.phrase, "DELETE 4 USERS");
    let back = console
        .revise_preview(revised.id.clone(), Action::Delete, false, None)
        .await
        .unwrap();
    assert_eq!(back.phrase, "DELETE 3 USERS");
    // An old address shows the newest revision; its phrase no longer starts anything.
    assert_eq!(
        console.preview(preview.id.clone()).await.unwrap().id,
        back.id
    );
    let replaced = console
        .start_job(preview.id.clone(), "DELETE 3 USERS".into())
        .await
        .unwrap_err();
    assert!(
        replaced.message.contains("replaced by a newer one"),
        "{}",
        replaced.message
    );

    let wrong = console
        .start_job(back.id.clone(), "DELETE 4 USERS".into())
        .await
        .unwrap_err();
    assert!(
        wrong.message.contains("does not match"),
        "{}",
        wrong.message
    );
    assert!(deleted(&site.state().await).is_empty());

    // The phrase must be typed in capitals: a lower-case one is refused like a wrong count.
    let lower = console
        .start_job(back.id.clone(), "delete 3 users".into())
        .await
        .unwrap_err();
    assert!(
        lower.message.contains("does not match"),
        "{}",
        lower.message
    );
    assert!(deleted(&site.state().await).is_empty());

    let job = console
        .start_job(back.id.clone(), " DELETE  3 USERS ".into())
        .await
        .unwrap();
    assert_eq!(job.total, 3);
    let replay = console
        .start_job(back.id.clone(), "DELETE 3 USERS".into())
        .await
        .unwrap_err();
    assert!(
        replay.message.contains("already used"),
        "{}",
        replay.message
    );
    assert!(console.preview(back.id.clone()).await.unwrap().used);

    let done = wait_for(console, &job.id, |j| j.state == JobState::Finished).await;
    assert_eq!(done.done, 3);
    assert_eq!(done.counts, vec![(ItemOutcome::Deleted, 3)]);
    let state = site.state().await;
    assert_eq!(
        deleted(&state),
        ids(1..=2).into_iter().chain(["1004".to_string()]).collect()
    );
    at_most_one_delete_each(&state);

    let events = console.job_events(job.id.clone(), 0, 100).await.unwrap();
    let results: Vec<_> = events.iter().filter_map(|e| e.result.clone()).collect();
    assert_eq!(results.len(), 3);
    assert_eq!(events.last().unwrap().state, Some(JobState::Finished));
    let later = console
        .job_events(job.id.clone(), events[1].seq, 100)
        .await
        .unwrap();
    assert_eq!(later.len(), events.len() - 2);
    assert_eq!(console.jobs().await.unwrap()[0].id, job.id);
}

#[tokio::test]
async fn a_run_pauses_resumes_and_cancels_without_touching_anyone_twice() {
    let site = FaultServer::start(&["--users", "30"]);
    site.control("/_control/settings", json!({"latency_ms": 120}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    let console = &s.console;
    connect(console, &site).await;
    // 20..=29 has no Moderator/Admin (27 would be i % 50 == 27? no: 7 and 17 only).
    let job = started_run(console, 20..=29, false, 10).await;

    wait_for(console, &job.id, |j| j.done >= 2).await;
    let paused = console
        .control_job(job.id.clone(), JobCommand::Pause)
        .await
        .unwrap();
    assert_eq!(paused.state, JobState::Paused);
    // Requests in flight finish (the site says when none is left); then nothing moves while
    // paused.
    // The site answering is not the console storing the answer: wait until the console has a
    // result for every DELETE the site carried out.
    let landed = deleted(&site.settled().await).len() as u64;
    let still = wait_for(console, &job.id, |j| j.done == landed).await;
    site.no_delete_during(Duration::from_millis(600)).await;
    let later = console.job(job.id.clone()).await.unwrap();
    assert_eq!(still.done, later.done);
    assert_eq!(later.state, JobState::Paused);
    assert!(later.done < 10);

    let resumed = console
        .control_job(job.id.clone(), JobCommand::Resume)
        .await
        .unwrap();
    assert_eq!(resumed.state, JobState::Running);
    wait_for(console, &job.id, |j| j.done > later.done).await;
    console
        .control_job(job.id.clone(), JobCommand::Cancel)
        .await
        .unwrap();
    let ended = wait_for(console, &job.id, |j| j.state == JobState::Stopped).await;
    assert_eq!(ended.done, 10);
    // The end names who cancelled and when (the console's own admin is named by the
    // connection's operator email), and so does every row the run did not reach.
    let reason = ended.reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("user3@example.com cancelled the run at ") && reason.ends_with(" UTC."),
        "{reason}"
    );

    let events = console.job_events(job.id.clone(), 0, 1000).await.unwrap();
    let gone: BTreeSet<String> = events
        .iter()
        .filter_map(|e| e.result.as_ref())
        .filter(|r| r.outcome == ItemOutcome::Deleted)
        .map(|r| r.account_id.clone())
        .collect();
    let not_attempted: Vec<&ItemResult> = events
        .iter()
        .filter_map(|e| e.result.as_ref())
        .filter(|r| r.outcome == ItemOutcome::NotAttempted)
        .collect();
    assert!(
        !not_attempted.is_empty(),
        "the cancel came too late to test anything"
    );
    for row in &not_attempted {
        assert!(
            row.message == format!("Not attempted: {reason}"),
            "{}",
            row.message
        );
    }
    let not_attempted = not_attempted.len();
    assert_eq!(gone.len() + not_attempted, 10);
    let state = site.state().await;
    assert_eq!(deleted(&state), gone);
    at_most_one_delete_each(&state);
    let err = console
        .control_job(job.id.clone(), JobCommand::Resume)
        .await
        .unwrap_err();
    assert!(err.message.contains("already ended"), "{}", err.message);
}

#[tokio::test]
async fn a_job_cut_off_mid_run_resumes_after_a_restart_and_deletes_nobody_twice() {
    let site = FaultServer::start(&["--users", "40"]);
    site.control("/_control/settings", json!({"latency_ms": 100}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let list = emails(20..=39);
    let refs: Vec<&str> = list.iter().map(String::as_str).collect();
    let job_id = {
        let s = setup(dir.path()).await;
        connect(&s.console, &site).await;
        let preview = s
            .console
            .preview_file("l.csv".into(), file_of(&refs), None, Action::Delete, true)
            .await
            .unwrap();
        assert_eq!(preview.counts.selected, 20);
        let job = s
            .console
            .start_job(preview.id.clone(), preview.phrase.clone())
            .await
            .unwrap();
        wait_for(&s.console, &job.id, |j| j.done >= 4).await;
        // As a crash would: the runner vanishes with requests in flight.
        s.jobs.abort_all();
        let cut = s.console.job(job.id.clone()).await.unwrap();
        assert_eq!(cut.state, JobState::Running);
        assert!(cut.done < 20);
        job.id
    };
    // What the cut-off runner had in flight lands before the restart reads the run back.
    site.settled().await;

    let s = setup(dir.path()).await;
    s.jobs.resume_unfinished().await;
    let done = wait_for(&s.console, &job_id, |j| j.state == JobState::Finished).await;
    assert_eq!(done.done, 20);
    let state = site.state().await;
    // Everyone asked for is gone, each with one DELETE at most.
    assert_eq!(deleted(&state), ids(20..=39));
    at_most_one_delete_each(&state);
    let results = s
        .storage
        .job_results(TeamId::BUILT_IN, &job_id)
        .await
        .unwrap();
    assert_eq!(results.len(), 20);
    assert!(
        results.iter().all(|r| r.outcome.is_success()),
        "{results:?}"
    );
    let order: Vec<String> = results.iter().map(|r| r.account_id.clone()).collect();
    assert_eq!(order, ids(20..=39).into_iter().collect::<Vec<_>>());
}

async fn body_text(response: axum::response::Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn the_plain_routes_upload_stream_and_download() {
    let site = FaultServer::start(&["--users", "6"]);
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    connect(&s.console, &site).await;
    let app = plain_routes(&s, 250, 500);

    let boundary = "XBOUNDARYX";
    let form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"pasted\"\r\n\r\n\
         user1@example.com\r\nuser2@example.com\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"action\"\r\n\r\ndelete\r\n\
         --{boundary}--\r\n"
    );
    let response = app
        .clone()
        .oneshot(
            Request::post("/choose/upload")
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(Body::from(form))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let preview_id = location
        .strip_prefix("/preview?id=")
        .unwrap_or_else(|| panic!("{location}"))
        .to_string();

    let response = app
        .clone()
        .oneshot(
            Request::post("/choose/picked")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from("action=explode"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(response.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/choose?error="));

    let response = app
        .clone()
        .oneshot(
            Request::get(format!("/downloads/previews/{preview_id}/preview.csv"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(body_text(response).await.contains("user2@example.com"));

    let job = s
        .console
        .start_job(preview_id.as_str().into(), "DELETE 2 USERS".into())
        .await
        .unwrap();
    wait_for(&s.console, &job.id, |j| j.state == JobState::Finished).await;

    let response = app
        .clone()
        .oneshot(
            Request::get(format!("/jobs/{}/events?after=1", job.id))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = body_text(response).await;
    assert!(!text.contains("id: 1\n"), "{text}");
    assert!(
        text.contains("id: 2\n") && text.contains("event: job"),
        "{text}"
    );
    assert!(text.contains("event: end"), "{text}");
    assert!(!text.contains(TOKEN));

    for (file, kind) in [
        ("failures.json", "application/json"),
        ("results.csv", "text/csv; charset=utf-8"),
        ("results.json", "application/json"),
        ("all_users.json", "application/json"),
    ] {
        let response = app
            .clone()
            .oneshot(
                Request::get(format!("/downloads/jobs/{}/{file}", job.id))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{file}");
        assert_eq!(response.headers()["content-type"], kind, "{file}");
        let disposition = response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_string();
        if file == "failures.json" {
            assert!(disposition.contains("failed_deletions_"), "{disposition}");
        }
        assert!(!body_text(response).await.contains(TOKEN));
    }

    // A run started before listings were kept in the database has its listing in the data
    // folder of the console that started it: still served from there.
    let all_users = format!("/downloads/jobs/{}/all_users.json", job.id);
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("offboard.db").display()
    ))
    .await
    .unwrap();
    sqlx::query("DELETE FROM job_listings")
        .execute(&db)
        .await
        .unwrap();
    let older = dir.path().join("jobs").join(job.id.as_str());
    std::fs::create_dir_all(&older).unwrap();
    std::fs::write(
        older.join("all_users.json"),
        "[\"kept in the data folder\"]",
    )
    .unwrap();
    let download = |path: String| {
        app.clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
    };
    let response = download(all_users.clone()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_text(response).await, "[\"kept in the data folder\"]");
    std::fs::remove_file(older.join("all_users.json")).unwrap();
    let response = download(all_users).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let response = app
        .oneshot(
            Request::get("/downloads/jobs/nope/results.csv")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_site_without_scim_deletion_stops_the_run_with_the_reason() {
    let site = FaultServer::start(&["--users", "12", "--deletion-disabled"]);
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    connect(&s.console, &site).await;
    let list = emails(1..=2)
        .into_iter()
        .chain(emails(4..=6))
        .collect::<Vec<_>>();
    let refs: Vec<&str> = list.iter().map(String::as_str).collect();
    let preview = s
        .console
        .preview_file("l.csv".into(), file_of(&refs), None, Action::Delete, false)
        .await
        .unwrap();
    assert_eq!(preview.counts.selected, 5);
    let job = s
        .console
        .start_job(preview.id.clone(), preview.phrase.clone())
        .await
        .unwrap();
    let ended = wait_for(&s.console, &job.id, |j| j.state == JobState::Stopped).await;
    assert_eq!(ended.done, 5);
    let reason = ended.reason.unwrap_or_default();
    assert!(reason.contains("not enabled"), "{reason}");
    assert!(deleted(&site.state().await).is_empty());
}

async fn save(console: &TeamConsole, site: &FaultServer, scim_base_url: Option<String>) {
    let (_, found) = console
        .save_connection(ConnectionForm {
            site_url: site.base.clone(),
            scim_base_url,
            token: Some(Hidden::new(TOKEN.to_string())),
            operator_email: Some("user3@example.com".to_string()),
            keep_token: false,
        })
        .await
        .expect("save");
    assert!(found.ok, "{found:?}");
}

fn delete_requests(state: &Value) -> u64 {
    state["requests"]["DELETE"].as_u64().unwrap_or(0)
}

/// A paused run, the connection saved again with another SCIM address for the same site (the
/// fault server serves the same users at `/api/scim/v2/users` and `/v2/Users`): Resume is
/// refused and nothing is sent anywhere; back on the confirmed address it resumes, re-reading
/// each remaining user, and leaves alone the ones changed while it was paused.
#[tokio::test]
async fn a_paused_run_resumes_only_on_its_own_connection_and_rereads_its_users() {
    let site = FaultServer::start(&["--users", "40", "--promotion-allowed"]);
    site.control("/_control/settings", json!({"latency_ms": 120}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    let console = &s.console;
    connect(console, &site).await;
    let job = started_run(console, 20..=39, false, 20).await;
    wait_for(console, &job.id, |j| j.done >= 2).await;
    console
        .control_job(job.id.clone(), JobCommand::Pause)
        .await
        .unwrap();
    site.settled().await;
    let paused = console.job(job.id.clone()).await.unwrap();
    assert!(paused.done < 15, "{paused:?}");
    let sent = delete_requests(&site.state().await);

    // The same site, another SCIM address (the RFC path), the same token.
    save(console, &site, Some(format!("{}/v2", site.base))).await;
    let refused = console
        .control_job(job.id.clone(), JobCommand::Resume)
        .await
        .unwrap_err();
    assert!(
        refused.message.contains("another SCIM address"),
        "{}",
        refused.message
    );
    assert_eq!(
        console.job(job.id.clone()).await.unwrap().state,
        JobState::Paused
    );

    // Meanwhile, on the site: 39 becomes a Moderator and 38 is deleted by someone else.
    site.patch_user_type(support::fault_server::ENTERPRISE_USERS, "1039", "Moderator")
        .await;
    assert_eq!(site.delete("1038").await.0, reqwest::StatusCode::NO_CONTENT);
    site.no_delete_during(Duration::from_millis(300)).await;
    assert_eq!(
        delete_requests(&site.state().await),
        sent + 1,
        "only the test's own DELETE"
    );

    // Back on the confirmed address: the run resumes and re-reads the users left.
    save(console, &site, None).await;
    let resumed = console
        .control_job(job.id.clone(), JobCommand::Resume)
        .await
        .unwrap();
    assert_eq!(resumed.state, JobState::Running);
    let done = wait_for(console, &job.id, |j| j.state == JobState::Finished).await;
    assert_eq!(done.done, 20);
    let results = s
        .storage
        .job_results(TeamId::BUILT_IN, &job.id)
        .await
        .unwrap();
    let of = |id: &str| {
        results
            .iter()
            .find(|r| r.account_id == id)
            .unwrap_or_else(|| panic!("{id} in {results:?}"))
    };
    assert_eq!(of("1039").outcome, ItemOutcome::ChangedSincePreview);
    assert!(
        of("1039").message.contains("Moderator"),
        "{}",
        of("1039").message
    );
    assert_eq!(of("1038").outcome, ItemOutcome::AlreadyGone);
    let state = site.state().await;
    at_most_one_delete_each(&state);
    assert_eq!(deleted(&state), ids(20..=38));
}

/// A run cut off by a crash, and the connection changed before the server comes back: the
/// restarted server pauses the run with the reason instead of resuming it elsewhere.
#[tokio::test]
async fn after_a_restart_a_run_whose_connection_changed_waits_with_the_reason() {
    let site = FaultServer::start(&["--users", "40"]);
    site.control("/_control/settings", json!({"latency_ms": 100}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let job_id = {
        let s = setup(dir.path()).await;
        connect(&s.console, &site).await;
        let job = started_run(&s.console, 20..=39, true, 20).await;
        wait_for(&s.console, &job.id, |j| j.done >= 3).await;
        s.jobs.abort_all();
        save(&s.console, &site, Some(format!("{}/v2", site.base))).await;
        job.id
    };
    let sent = delete_requests(&site.settled().await);

    let s = setup(dir.path()).await;
    s.jobs.resume_unfinished().await;
    let job = s.console.job(job_id.clone()).await.unwrap();
    assert_eq!(job.state, JobState::Paused);
    let reason = job.reason.unwrap_or_default();
    assert!(reason.contains("another SCIM address"), "{reason}");
    assert_eq!(
        delete_requests(&site.no_delete_during(Duration::from_millis(300)).await),
        sent
    );

    // Another token for the confirmed address is refused too (the fingerprint differs): the
    // site's admin issues a new one, which the site accepts (a token the site refuses is never
    // saved), and the run still waits.
    site.control(
        "/_control/settings",
        json!({"token": "another-token-for-the-same-site"}),
    )
    .await;
    s.console
        .save_connection(ConnectionForm {
            site_url: site.base.clone(),
            scim_base_url: None,
            token: Some(Hidden::new("another-token-for-the-same-site".to_string())),
            operator_email: None,
            keep_token: false,
        })
        .await
        .unwrap();
    let refused = s
        .console
        .control_job(job_id.clone(), JobCommand::Resume)
        .await
        .unwrap_err();
    assert!(
        refused.message.contains("token was changed"),
        "{}",
        refused.message
    );
    for text in [refused.message.clone(), reason] {
        assert!(
            !text.contains(TOKEN) && !text.contains("another-token"),
            "{text}"
        );
    }
    assert_eq!(delete_requests(&site.state().await), sent);
}

/// Revising a preview shares its file and listing and replaces its rows: ten revisions cost
/// what one does.
#[tokio::test]
async fn revisions_share_the_file_and_the_listing() {
    let site = FaultServer::start(&["--users", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    connect(&s.console, &site).await;
    let list = emails(1..=40);
    let refs: Vec<&str> = list.iter().map(String::as_str).collect();
    let mut preview = s
        .console
        .preview_file("l.csv".into(), file_of(&refs), None, Action::Delete, false)
        .await
        .unwrap();
    for i in 0..10 {
        preview = s
            .console
            .revise_preview(preview.id.clone(), Action::Delete, i % 2 == 0, None)
            .await
            .unwrap();
    }
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("offboard.db").display()
    ))
    .await
    .unwrap();
    let count = |sql: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    assert_eq!(count("SELECT COUNT(*) FROM preview_sources").await, 1);
    assert_eq!(count("SELECT COUNT(*) FROM previews").await, 11);
    assert_eq!(
        count("SELECT COUNT(*) FROM preview_rows").await,
        40,
        "the newest revision's rows only"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM previews WHERE preview_json <> '' OR listing_json <> ''").await,
        0
    );
    // A preview older than a day is gone with its source; a page of it says so plainly.
    s.service.expire_previews(chrono::Duration::zero()).await;
    let err = s.console.preview(preview.id.clone()).await.unwrap_err();
    assert!(
        err.message.contains("make a new preview"),
        "{}",
        err.message
    );
    assert_eq!(count("SELECT COUNT(*) FROM preview_sources").await, 0);
    assert_eq!(count("SELECT COUNT(*) FROM preview_rows").await, 0);
}

/// The Choose page's problems travel as codes; live-progress streams are capped.
#[tokio::test]
async fn the_plain_routes_speak_in_codes_and_cap_watchers() {
    use app::backend::ChooseProblem;
    let site = FaultServer::start(&["--users", "5"]);
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    connect(&s.console, &site).await;
    let app = plain_routes(&s, 1, 2);
    let post = |path: &'static str, body: &'static str| {
        let app = app.clone();
        async move {
            let response = app
                .oneshot(
                    Request::post(path)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(Body::from(body))
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::SEE_OTHER);
            response.headers()["location"].to_str().unwrap().to_string()
        }
    };
    // A missing action is refused, never taken for Delete.
    assert_eq!(
        post("/choose/picked", "account_id=1001").await,
        format!("/choose?error={}", ChooseProblem::NoAction.key())
    );
    assert_eq!(
        post("/choose/picked", "action=delete").await,
        format!("/choose?error={}", ChooseProblem::NoneTicked.key())
    );
    // A failed preview (no token saved): a code in the address, never the words.
    s.console.forget_token().await.unwrap();
    assert_eq!(
        post("/choose/picked", "action=deactivate&account_id=1001").await,
        "/choose?error=preview_failed"
    );
    connect(&s.console, &site).await;
    // A file one byte over the limit is refused with the too-large code, whose words name the
    // limit the server really applies.
    let limit = server::http::MAX_UPLOAD_BYTES;
    let boundary = "XBOUNDARYX";
    let mut form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"action\"\r\n\r\ndelete\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n\
         Content-Type: text/csv\r\n\r\n"
    )
    .into_bytes();
    form.extend(std::iter::repeat_n(b'a', limit + 1));
    form.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
    let response = app
        .clone()
        .oneshot(
            Request::post("/choose/upload")
                .header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(Body::from(form))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()["location"].to_str().unwrap(),
        format!("/choose?error={}", ChooseProblem::TooLarge.key())
    );
    let mib = format!("{} MiB", limit / (1024 * 1024));
    assert!(
        ChooseProblem::TooLarge.words().contains(&mib),
        "the words say another size than {mib}: {}",
        ChooseProblem::TooLarge.words()
    );

    // Watchers: one per run here; the second gets a plain 503.
    let preview = s
        .console
        .preview_file(
            "l.csv".into(),
            file_of(&["user1@example.com"]),
            None,
            Action::Deactivate,
            false,
        )
        .await
        .unwrap();
    let job = s
        .console
        .start_job(preview.id.clone(), preview.phrase.clone())
        .await
        .unwrap();
    let watch = || {
        app.clone().oneshot(
            Request::get(format!("/jobs/{}/events", job.id))
                .body(Body::empty())
                .unwrap(),
        )
    };
    let first = watch().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let second = watch().await.unwrap();
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(body_text(second).await.contains("Too many browsers"));
    drop(first);
    let again = watch().await.unwrap();
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "a closed stream gives its place back"
    );
}

/// The `id:` lines of an SSE text, in order.
fn event_ids(text: &str) -> Vec<i64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|id| id.trim().parse().unwrap())
        .collect()
}

#[tokio::test]
async fn a_watcher_that_reconnects_with_last_event_id_resumes_where_it_left_off() {
    // Slow enough that the run is still going when the first watcher leaves.
    let site = FaultServer::start(&["--users", "40", "--latency-ms", "40"]);
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    connect(&s.console, &site).await;
    let app = plain_routes(&s, 250, 500);
    let job = started_run(&s.console, 20..=39, false, 20).await;

    // The first watcher reads a few events as they are pushed, then its connection drops.
    let response = app
        .clone()
        .oneshot(
            Request::get(format!("/jobs/{}/events", job.id))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = response.into_body().into_data_stream();
    let mut seen = String::new();
    while event_ids(&seen).len() < 5 {
        use futures::StreamExt;
        let chunk = tokio::time::timeout(Duration::from_secs(20), body.next())
            .await
            .expect("events keep coming")
            .expect("the stream is open")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(body);
    let first = event_ids(&seen);
    assert_eq!(first, (1..=first.len() as i64).collect::<Vec<_>>());
    let last = *first.last().unwrap();

    // The browser reconnects with the last id it saw; the rest comes once each, then the end.
    let response = app
        .oneshot(
            Request::get(format!("/jobs/{}/events", job.id))
                .header("last-event-id", last.to_string())
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let rest = body_text(response).await;
    let resumed = event_ids(&rest);
    let total = resumed.last().copied().unwrap_or(last);
    assert_eq!(resumed, ((last + 1)..=total).collect::<Vec<_>>(), "{rest}");
    assert!(rest.contains("event: end"), "{rest}");
    let finished = wait_for(&s.console, &job.id, |j| j.state == JobState::Finished).await;
    // queued, running, one result per user, finished.
    assert_eq!(total, 2 + finished.total as i64 + 1);
    assert_eq!(deleted(&site.state().await), ids(20..=39));
}

/// The audit entries a team's work leaves: Connect, a preview and its revision, a run that
/// finishes, a run paused, resumed and cancelled, the token forgotten. Each names who did it
/// (the email saved on Connect, or Offboard for a run's end), carries counts and ids (never
/// the token, never a user), and the chain verifies; the CSV download filters like the page.
#[tokio::test]
async fn a_preview_and_runs_leave_their_audit_entries() {
    use app::audit::{AuditAction, AuditFilter};
    let site = FaultServer::start(&["--users", "30"]);
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    let console = &s.console;
    connect(console, &site).await;

    let list = emails(20..=22);
    let refs: Vec<&str> = list.iter().map(String::as_str).collect();
    let preview = console
        .preview_file("l.csv".into(), file_of(&refs), None, Action::Delete, false)
        .await
        .unwrap();
    let revised = console
        .revise_preview(preview.id.clone(), Action::Delete, true, None)
        .await
        .unwrap();
    let finished = console
        .start_job(revised.id.clone(), revised.phrase.clone())
        .await
        .unwrap();
    wait_for(console, &finished.id, |j| j.state == JobState::Finished).await;

    // A second run, slowed down so it can be paused, resumed and cancelled.
    site.control("/_control/settings", json!({"latency_ms": 120}))
        .await;
    let controlled = started_run(console, 23..=29, false, 7).await;
    wait_for(console, &controlled.id, |j| j.done >= 1).await;
    for command in [JobCommand::Pause, JobCommand::Resume, JobCommand::Cancel] {
        console
            .control_job(controlled.id.clone(), command)
            .await
            .unwrap();
    }
    wait_for(console, &controlled.id, |j| j.state == JobState::Stopped).await;
    console.forget_token().await.unwrap();

    let page = console
        .audit_page(AuditFilter::default(), None, 100)
        .await
        .unwrap();
    assert!(!page.more);
    // Newest first; read oldest first here.
    let entries: Vec<_> = page.entries.iter().rev().collect();
    let actions: Vec<AuditAction> = entries.iter().map(|e| e.action).collect();
    use AuditAction::*;
    assert_eq!(
        actions,
        [
            ConnectionSaved,
            PreviewMade,
            PreviewRevised,
            RunConfirmed,
            RunEnded,
            PreviewMade,
            RunConfirmed,
            RunPaused,
            RunResumed,
            RunCancelled,
            RunEnded,
            TokenForgotten,
        ]
    );
    let seqs: Vec<i64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=12).collect::<Vec<i64>>());
    for e in &entries {
        let expected = match e.action {
            RunEnded => "Offboard",
            _ => "user3@example.com",
        };
        assert_eq!(e.actor, expected, "{e:?}");
        assert!(!e.details.contains(TOKEN), "the token leaked: {e:?}");
        // The run's users never appear; the operator who acted may be named (a cancelled
        // run's ending says who cancelled it), and this harness names them by email.
        let others = e.details.replace("user3@example.com", "");
        assert!(!others.contains("@example.com"), "a user leaked: {e:?}");
    }
    let details = |i: usize| -> Value { serde_json::from_str(&entries[i].details).unwrap() };
    assert_eq!(details(0)["token_replaced"], json!(true));
    assert_eq!(details(0)["site_changed"], json!(true));
    assert_eq!(entries[1].target.as_deref(), Some(preview.id.as_str()));
    assert_eq!(details(1)["counts"]["selected"], json!(3));
    assert_eq!(entries[2].target.as_deref(), Some(revised.id.as_str()));
    assert_eq!(details(2)["revises"], json!(preview.id.as_str()));
    assert_eq!(details(2)["demote_privileged"], json!(true));
    assert_eq!(entries[3].target.as_deref(), Some(finished.id.as_str()));
    assert_eq!(details(3)["users"], json!(3));
    assert_eq!(details(3)["preview"], json!(revised.id.as_str()));
    assert_eq!(entries[4].target.as_deref(), Some(finished.id.as_str()));
    assert_eq!(details(4)["state"], json!("finished"));
    assert_eq!(
        details(4)["counts"]["Deleted"],
        json!(3),
        "{}",
        entries[4].details
    );
    assert_eq!(details(7)["state"], json!("paused"));
    assert_eq!(details(8)["state"], json!("running"));
    assert_eq!(entries[10].target.as_deref(), Some(controlled.id.as_str()));
    assert_eq!(details(10)["state"], json!("stopped"));
    assert_eq!(details(10)["users"], json!(7));
    assert_eq!(details(10)["done"], json!(7));

    let report = s.storage.verify_audit().await.unwrap();
    assert_eq!(report.broken, None);
    assert_eq!(report.entries, 12);

    // Filtered pages and paging.
    let ended = console
        .audit_page(AuditFilter::from_query("run_ended", "", ""), None, 100)
        .await
        .unwrap();
    assert_eq!(
        ended.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [11, 5]
    );
    let first = console
        .audit_page(AuditFilter::default(), None, 5)
        .await
        .unwrap();
    assert!(first.more);
    let next = console
        .audit_page(AuditFilter::default(), Some(first.entries[4].seq), 5)
        .await
        .unwrap();
    assert_eq!(next.entries[0].seq, 7);

    // The CSV download, through the plain route, with the page's filter.
    let response = plain_routes(&s, 4, 4)
        .oneshot(
            Request::get("/downloads/audit.csv?action=run_ended")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let csv = body_text(response).await;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[0].starts_with("\"seq\",\"at (UTC)\",\"actor\",\"action\""),
        "{csv}"
    );
    assert!(lines[1].starts_with("\"11\","), "{csv}");
    assert!(lines[1].contains("\"run_ended\""), "{csv}");
}

/// One run at a time per site (the default `--runs-per-site 1`): a second run is refused in
/// plain words while the first goes on, deletes nothing, and starts once the first has ended.
#[tokio::test]
async fn a_second_run_against_a_busy_site_waits_for_the_first() {
    let site = FaultServer::start(&["--users", "12"]);
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    let console = &s.console;
    connect(console, &site).await;
    // The first run's DELETEs are held at the site, so it is certainly still going while the
    // second is asked for. user3 is the operator (protected), user7 a moderator: 4, 5 and 6
    // are plain users.
    site.hold_deletes().await;
    let first = started_run(console, 4..=6, false, 3).await;
    site.state_once(|s| s["deletes_in_flight"].as_u64() >= Some(1))
        .await;
    let list = emails(8..=9);
    let refs: Vec<&str> = list.iter().map(String::as_str).collect();
    let second = console
        .preview_file("l.csv".into(), file_of(&refs), None, Action::Delete, false)
        .await
        .unwrap();
    let busy = console
        .start_job(second.id.clone(), second.phrase.clone())
        .await
        .unwrap_err();
    assert!(
        busy.message.contains("A run is already going on against"),
        "{}",
        busy.message
    );
    // Refused before anything was claimed: the same preview starts once the site is free.
    assert!(!console.preview(second.id.clone()).await.unwrap().used);
    site.release_deletes().await;
    wait_for(console, &first.id, |j| j.state == JobState::Finished).await;
    let job = console
        .start_job(second.id.clone(), second.phrase.clone())
        .await
        .unwrap();
    wait_for(console, &job.id, |j| j.state == JobState::Finished).await;
    let state = site.state().await;
    assert_eq!(
        deleted(&state),
        ids(4..=6).into_iter().chain(ids(8..=9)).collect()
    );
    at_most_one_delete_each(&state);
}

/// Another replica claims a job while this one drives it (here: a claim made straight on the
/// storage, which on SQLite takes any lease this process is not driving, as a replica would
/// after the lease expired): the runner's next write is refused, so it stops at once and does
/// not write the run's end. The claim's new holder then finishes the run through the restart
/// path, each user deleted once.
#[tokio::test]
async fn a_runner_whose_lease_was_taken_stops_without_ending_the_run() {
    let site = FaultServer::start(&["--users", "40"]);
    site.control("/_control/settings", json!({"latency_ms": 100}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let s = setup(dir.path()).await;
    connect(&s.console, &site).await;
    let job = started_run(&s.console, 20..=39, true, 20).await;
    wait_for(&s.console, &job.id, |j| j.done >= 4).await;
    let stolen = s
        .storage
        .claim_jobs(&storage::Claim {
            holder: "another replica",
            lease: Duration::from_secs(60),
            driving: &[],
            only: Some(&job.id),
        })
        .await
        .expect("claim");
    assert_eq!(stolen.len(), 1, "the job is claimed away");
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.jobs.is_live(&job.id) {
        assert!(
            Instant::now() < deadline,
            "the runner kept going after losing its lease"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cut = s.console.job(job.id.clone()).await.unwrap();
    assert_eq!(cut.state, JobState::Running, "the old runner wrote no end");
    assert!(cut.done < 20, "{cut:?}");

    // Whoever holds the job now drives it to its end (here this process again, through the
    // same path as a restart: users left "sending" are read back before anything is re-sent).
    s.jobs.resume_unfinished().await;
    let done = wait_for(&s.console, &job.id, |j| j.state == JobState::Finished).await;
    assert_eq!(done.done, 20);
    let state = site.state().await;
    assert_eq!(deleted(&state), ids(20..=39));
    at_most_one_delete_each(&state);
    let ends: Vec<JobState> = s
        .storage
        .events_since(TeamId::BUILT_IN, &job.id, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| e.state_change)
        .filter(|state| state.has_ended())
        .collect();
    assert_eq!(
        ends,
        [JobState::Finished],
        "one end, written by the new holder"
    );
}
