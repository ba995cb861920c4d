//! The storage tests, run on both databases: a real SQLite file and a real PostgreSQL server (see test_db.rs).

use super::column::Stamp;
use super::*;
use crate::engine::ItemState;
use model::audit::AuditAction;
use model::hidden::Hidden;

/// The team the tests' records belong to, and another one that must never see them.
const DEFAULT_TEAM: TeamId = TeamId::BUILT_IN;
const OTHER_TEAM: TeamId = TeamId::new(2);

pub(super) fn jid(id: &str) -> JobId {
    JobId::new(id)
}

fn pid(id: &str) -> PreviewId {
    PreviewId::new(id)
}
use super::test_db::{on_both_databases, Backend, FixedClock, TestDb};
use crate::scim::ScimToken;
use crate::secret::SecretBox;
use chrono::TimeZone;
use model::Named;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use std::str::FromStr;

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 12, minute, 0)
        .single()
        .expect("valid time")
}

pub(super) fn now() -> DateTime<Utc> {
    at(30)
}

pub(super) fn preview_record(id: &str, action: Action) -> PreviewRecord {
    PreviewRecord {
        id: pid(id),
        created_at: at(1),
        action,
        source_id: "source-1".to_string(),
        summary_json: r#"{"counts":{}}"#.to_string(),
        total_rows: 0,
        phrase: "DELETE 3 USERS".to_string(),
        claimed: false,
        replaced_by: None,
    }
}

/// Saves the team's preview `id` (no rows), not confirmed.
async fn unconfirmed_preview(storage: &dyn Storage, team_id: TeamId, id: &str, action: Action) {
    let record = preview_record(id, action);
    ok(storage.save_preview(team_id, &record, &[])).await;
}

pub(super) async fn confirmed_preview(storage: &dyn Storage, team_id: TeamId, id: &str) {
    unconfirmed_preview(storage, team_id, id, Action::Delete).await;
    assert!(storage
        .claim_preview(team_id, &pid(id))
        .await
        .expect("claim"));
}

pub(super) fn run(account_id: &str) -> PlannedItem {
    PlannedItem::Run(RunTarget {
        account_id: account_id.to_string(),
        email: Some(format!("{account_id}@example.com")),
        state: ItemState::Pending,
    })
}

fn result(account_id: &str, outcome: ItemOutcome) -> ItemResult {
    ItemResult {
        account_id: account_id.to_string(),
        email: Some(format!("{account_id}@example.com")),
        outcome,
        message: format!("{} ({account_id})", outcome.label()),
        attempts: 2,
        elapsed_ms: 1234,
        demoted: outcome == ItemOutcome::Deleted,
    }
}

fn changed(account_id: &str) -> PlannedItem {
    PlannedItem::Settled(ItemResult {
        attempts: 0,
        elapsed_ms: 0,
        demoted: false,
        ..result(account_id, ItemOutcome::ChangedSincePreview)
    })
}

pub(super) fn new_job(
    id: &str,
    team_id: TeamId,
    preview_id: &str,
    items: Vec<PlannedItem>,
) -> NewJob {
    NewJob {
        id: jid(id),
        team_id,
        created_by: "admin@example.com".to_string(),
        created_at: at(2),
        site_url: "https://acme.stackenterprise.co".to_string(),
        action: Action::Delete,
        preview_id: pid(preview_id),
        connection: JobConnection {
            users_url: "https://acme.stackenterprise.co/api/scim/v2/users".to_string(),
            token_fingerprint: "fp-1".to_string(),
        },
        items,
        // The per-site limit has its own tests; the others start as many jobs as they need.
        runs_per_site: usize::MAX,
        audit: vec![NewAuditEntry {
            actor: "admin@example.com".to_string(),
            action: AuditAction::RunConfirmed,
            target: Some(id.to_string()),
            details: serde_json::json!({ "users": 1 }),
        }],
        approval: None,
        undo: None,
    }
}

/// A confirmed preview and a queued job: a1, a2 (changed since preview), a3, a4.
pub(super) async fn queued_job(storage: &dyn Storage, job_id: &str) {
    let preview_id = format!("preview-of-{job_id}");
    confirmed_preview(storage, DEFAULT_TEAM, &preview_id).await;
    storage
        .create_job(&new_job(
            job_id,
            DEFAULT_TEAM,
            &preview_id,
            vec![run("a1"), changed("a2"), run("a3"), run("a4")],
        ))
        .await
        .expect("create job");
}

async fn running_job(storage: &dyn Storage, job_id: &str) {
    queued_job(storage, job_id).await;
    set_state(storage, job_id, JobState::Running).await;
}

/// Moves the job to `state` as the service does (without a lease), and returns the logged change.
pub(super) async fn set_state(s: &dyn Storage, job_id: &str, state: JobState) -> JobEvent {
    let changed = s.set_job_state(&jid(job_id), None, state, None).await;
    changed.expect("change the job's state")
}

/// A queued job (see [`queued_job`]) for each id, then moved to its state (None: left queued).
pub(super) async fn jobs_in(s: &dyn Storage, jobs: &[(&str, Option<JobState>)]) {
    for (job_id, state) in jobs {
        queued_job(s, job_id).await;
        if let Some(state) = state {
            set_state(s, job_id, *state).await;
        }
    }
}

/// The default team's job, as the console lists it.
pub(super) async fn job_of(s: &dyn Storage, job_id: &str) -> JobRecord {
    let found = s
        .job(DEFAULT_TEAM, &jid(job_id))
        .await
        .expect("read the job");
    found.expect("the job exists")
}

/// The default team's preview, which must exist.
async fn preview_of(s: &dyn Storage, id: &str) -> PreviewRecord {
    let found = s.preview(DEFAULT_TEAM, &pid(id)).await;
    found
        .expect("read the preview")
        .expect("the preview exists")
}

/// What a storage call that must succeed returns.
async fn ok<T>(call: impl std::future::Future<Output = Result<T>>) -> T {
    call.await.expect("the storage call succeeds")
}

/// The error a write or read that must be refused returns.
fn refused<T: fmt::Debug>(result: Result<T>) -> StorageError {
    result.expect_err("refused")
}

/// Nothing of a job was kept: no job, user, event or audit entry.
async fn assert_no_job_written(t: &TestDb) {
    for table in ["jobs", "job_items", "job_events", "audit_entries"] {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        assert_eq!(t.count(&sql).await, 0, "{table}");
    }
}

/// A fresh database (see [`TestDb::new`]) with a running job, "job-1" (see [`queued_job`]).
async fn with_running_job(backend: Backend) -> TestDb {
    let t = TestDb::new(backend, now()).await;
    running_job(t.storage(), "job-1").await;
    t
}

fn account_ids(targets: &[RunTarget]) -> Vec<&str> {
    targets.iter().map(|t| t.account_id.as_str()).collect()
}

/// Opening `url` again neither re-runs nor fails on the `migrations` applied already.
async fn assert_reopens(url: &str, migrations: i64) {
    let again = open(url).await.expect("reopen");
    let health = again.storage.health(DEFAULT_TEAM).await.expect("health");
    assert_eq!(health.migrations, migrations);
}

#[tokio::test]
async fn opens_a_real_file_applies_migrations_and_reopens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested").join("offboard.db");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let url = format!("sqlite://{}", path.display());

    let db = open(&url).await.expect("open");
    let health = db.storage.health(DEFAULT_TEAM).await.expect("health");
    assert_eq!(health.database, "SQLite");
    assert!(health.migrations >= 2);
    assert_eq!(health.jobs, 0);
    assert!(path.exists(), "the SQLite file is created");
    db.pool.close().await;

    assert_reopens(&url, health.migrations).await;
}

#[tokio::test]
async fn postgres_applies_its_migrations_once_and_reopens() {
    let url = super::pg_cluster::shared().fresh_database().await;
    let db = open(&url).await.expect("open");
    let health = db.storage.health(DEFAULT_TEAM).await.expect("health");
    assert_eq!(health.database, "PostgreSQL");
    assert_eq!(
        health.migrations,
        sqlx::migrate!("./migrations-postgres").migrations.len() as i64
    );
    db.pool.close().await;
    assert_reopens(&url, health.migrations).await;
}

#[tokio::test]
async fn rejects_other_databases_without_leaking_credentials() {
    let err = match open("mysql://admin:hunter2@db.internal/offboard").await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("mysql is not supported"),
    };
    assert!(err.contains("unsupported database URL"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    // A PostgreSQL server that does not answer: the error says so, without the password.
    let err = match open("postgres://admin:hunter2@127.0.0.1:1/offboard").await {
        Err(e) => e.to_string(),
        Ok(_) => panic!("nothing listens on port 1"),
    };
    assert!(!err.contains("hunter2"), "{err}");
}

async fn health_counts_only_the_teams_jobs(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    queued_job(t.storage(), "job-1").await;
    assert_eq!(
        t.storage().health(DEFAULT_TEAM).await.expect("health").jobs,
        1
    );
    assert_eq!(
        t.storage().health(OTHER_TEAM).await.expect("health").jobs,
        0
    );
}

#[test]
fn job_states_read_back_as_written() {
    for state in JobState::ALL {
        assert_eq!(JobState::from_key(state.key()), Some(state));
        let json = serde_json::to_string(&state).expect("json");
        assert_eq!(json, format!("\"{}\"", state.key()));
    }
    assert_eq!(JobState::from_key("Running"), None);
    assert_eq!(JobState::from_key(""), None);
    let resumed: Vec<_> = JobState::ALL
        .into_iter()
        .filter(|s| s.resumes_at_start())
        .collect();
    assert_eq!(
        resumed,
        vec![JobState::Queued, JobState::Running, JobState::Cancelling]
    );
}

#[test]
fn stored_times_sort_as_text() {
    let earlier = Utc
        .with_ymd_and_hms(2025, 6, 1, 12, 0, 9)
        .single()
        .expect("time");
    let later = earlier + chrono::Duration::milliseconds(1500);
    assert!(Stamp::text(earlier) < Stamp::text(later));
    assert_eq!(Stamp::parse(&Stamp::text(later)).expect("parse").0, later);
    assert!(Stamp::parse("yesterday").is_err());
}

async fn connection_is_saved_replaced_and_its_token_forgotten(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    assert_eq!(s.connection(DEFAULT_TEAM).await.expect("read"), None);

    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = SecretBox::load_or_create(dir.path(), None).expect("key");
    let token = ScimToken::new("a-long-scim-token-ending-x7Q9");
    let record = ConnectionRecord {
        site_url: "https://acme.stackenterprise.co".to_string(),
        scim_base_url: None,
        token_ciphertext: Some(Hidden::new(
            secrets.encrypt(DEFAULT_TEAM, &token).expect("encrypt"),
        )),
        token_hint: token.hint(),
        operator_email: Some("me@acme.example".to_string()),
        updated_at: at(3),
    };
    s.save_connection(DEFAULT_TEAM, &record)
        .await
        .expect("save");
    let stored = s
        .connection(DEFAULT_TEAM)
        .await
        .expect("read")
        .expect("saved");
    assert_eq!(stored, record);
    let ciphertext = stored
        .token_ciphertext
        .as_ref()
        .map(|t| t.expose().clone())
        .expect("token");
    assert_eq!(
        secrets.decrypt(DEFAULT_TEAM, &ciphertext).expect("decrypt"),
        token
    );
    assert_eq!(
        s.connection(OTHER_TEAM).await.expect("read"),
        None,
        "other team"
    );

    let shown = format!("{stored:?}");
    assert!(!shown.contains(&ciphertext[3..13]), "{shown}");
    assert!(shown.contains("<hidden>"), "{shown}");

    let replaced = ConnectionRecord {
        scim_base_url: Some("http://127.0.0.1:9/v2".to_string()),
        operator_email: None,
        updated_at: at(4),
        ..record.clone()
    };
    s.save_connection(DEFAULT_TEAM, &replaced)
        .await
        .expect("save");
    assert_eq!(
        s.connection(DEFAULT_TEAM).await.expect("read"),
        Some(replaced.clone())
    );

    s.forget_token(DEFAULT_TEAM).await.expect("forget");
    let forgotten = s
        .connection(DEFAULT_TEAM)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(forgotten.token_ciphertext, None);
    assert_eq!(forgotten.token_hint, "");
    assert_eq!(forgotten.site_url, replaced.site_url);
    assert_eq!(forgotten.scim_base_url, replaced.scim_base_url);
    assert_eq!(forgotten.updated_at, now());
    assert_eq!(t.count("SELECT COUNT(*) FROM connections").await, 1);
}

async fn preview_is_kept_per_team_and_claimed_once(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    let record = preview_record("p-1", Action::Deactivate);
    s.save_preview(DEFAULT_TEAM, &record, &[])
        .await
        .expect("save");
    assert_eq!(
        ok(s.preview(DEFAULT_TEAM, &pid("p-1"))).await,
        Some(record.clone())
    );
    assert_eq!(ok(s.preview(OTHER_TEAM, &pid("p-1"))).await, None);
    assert_eq!(ok(s.preview(DEFAULT_TEAM, &pid("p-2"))).await, None);

    assert!(
        !ok(s.claim_preview(OTHER_TEAM, &pid("p-1"))).await,
        "other team"
    );
    assert!(!ok(s.claim_preview(DEFAULT_TEAM, &pid("nope"))).await);
    assert!(ok(s.claim_preview(DEFAULT_TEAM, &pid("p-1"))).await);
    assert!(!ok(s.claim_preview(DEFAULT_TEAM, &pid("p-1"))).await);
    assert!(
        s.save_preview(DEFAULT_TEAM, &record, &[]).await.is_err(),
        "an id is never reused"
    );
}

fn preview_row(position: usize, outcome: PreviewOutcome) -> PreviewRow {
    PreviewRow {
        line: Some(position + 2),
        input: format!("user{position}@example.com"),
        outcome,
        account_id: Some(format!("{}", 1000 + position)),
        user_name: None,
        display_name: Some(format!("User {position}")),
        emails: vec![format!("user{position}@example.com")],
        active: Some(true),
        role: None,
        reason: String::new(),
        candidates: Vec::new(),
        earlier_run: None,
        may_be_refused: None,
        chosen: None,
    }
}

fn source_record(id: &str) -> PreviewSourceRecord {
    PreviewSourceRecord {
        id: id.to_string(),
        created_at: at(1),
        users_url: "https://acme.stackenterprise.co/api/scim/v2/users".to_string(),
        token_fingerprint: "fp-1".to_string(),
        input_json: r#"{"kind":"picked","account_ids":["secret-listing-a1"]}"#.to_string(),
        listing_json: r#"[{"id":"secret-listing-a1"}]"#.to_string(),
    }
}

async fn preview_rows_are_paged_and_filtered_by_sql_per_team(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    let source = source_record("source-1");
    s.save_preview_source(DEFAULT_TEAM, &source)
        .await
        .expect("source");
    assert_eq!(
        s.preview_source(DEFAULT_TEAM, "source-1")
            .await
            .expect("read"),
        Some(source.clone())
    );
    assert_eq!(
        s.preview_source(OTHER_TEAM, "source-1")
            .await
            .expect("read"),
        None
    );
    assert!(
        !format!("{source:?}").contains("secret-listing"),
        "sizes, not contents"
    );

    // 1,203 rows (more than one INSERT batch): every third is "not found".
    let rows: Vec<PreviewRow> = (0..1203)
        .map(|i| {
            let outcome = if i % 3 == 0 {
                PreviewOutcome::NotFound
            } else {
                PreviewOutcome::Selected
            };
            preview_row(i, outcome)
        })
        .collect();
    let record = PreviewRecord {
        total_rows: rows.len(),
        ..preview_record("p-rows", Action::Delete)
    };
    s.save_preview(DEFAULT_TEAM, &record, &rows)
        .await
        .expect("save");
    assert_eq!(
        ok(s.preview(DEFAULT_TEAM, &pid("p-rows"))).await,
        Some(record)
    );

    let (page, matching) = ok(s.preview_rows(DEFAULT_TEAM, &pid("p-rows"), None, 500, 3)).await;
    assert_eq!(matching, 1203);
    assert_eq!(page, rows[500..503].to_vec());
    let only = Some(PreviewOutcome::NotFound);
    let (page, matching) = ok(s.preview_rows(DEFAULT_TEAM, &pid("p-rows"), only, 2, 2)).await;
    assert_eq!(matching, 401);
    assert_eq!(page, vec![rows[6].clone(), rows[9].clone()]);
    let only = Some(PreviewOutcome::Ambiguous);
    let (page, matching) = ok(s.preview_rows(DEFAULT_TEAM, &pid("p-rows"), only, 0, 10)).await;
    assert_eq!((page.len(), matching), (0, 0));
    let (page, _) = ok(s.preview_rows(DEFAULT_TEAM, &pid("p-rows"), None, 5000, 10)).await;
    assert!(page.is_empty());
    assert_eq!(
        ok(s.all_preview_rows(DEFAULT_TEAM, &pid("p-rows"))).await,
        rows
    );
    // Another team sees nothing of it.
    let (page, matching) = s
        .preview_rows(OTHER_TEAM, &"p-rows".into(), None, 0, 10)
        .await
        .expect("other team");
    assert_eq!((page.len(), matching), (0, 0));
    assert!(ok(s.all_preview_rows(OTHER_TEAM, &pid("p-rows")))
        .await
        .is_empty());
}

async fn a_revision_replaces_an_unconfirmed_preview_and_keeps_a_confirmed_one(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    let rows = vec![
        preview_row(0, PreviewOutcome::Selected),
        preview_row(1, PreviewOutcome::Privileged),
    ];
    s.save_preview(
        DEFAULT_TEAM,
        &preview_record("first", Action::Delete),
        &rows,
    )
    .await
    .expect("save");
    for (replaced, revision) in [("first", "second"), ("second", "third")] {
        s.replace_preview(
            DEFAULT_TEAM,
            &pid(replaced),
            &preview_record(revision, Action::Delete),
            &rows,
        )
        .await
        .expect("revise");
    }
    let first = preview_of(s, "first").await;
    assert_eq!(
        first.replaced_by.as_ref().map(PreviewId::as_str),
        Some("second")
    );
    assert!(ok(s.all_preview_rows(DEFAULT_TEAM, &pid("first")))
        .await
        .is_empty());
    assert_eq!(
        t.count("SELECT COUNT(*) FROM preview_rows").await,
        2,
        "one set of rows"
    );

    // A confirmed preview is left whole: its run cites it.
    assert!(ok(s.claim_preview(DEFAULT_TEAM, &pid("third"))).await);
    s.replace_preview(
        DEFAULT_TEAM,
        &"third".into(),
        &preview_record("fourth", Action::Delete),
        &rows,
    )
    .await
    .expect("revise");
    assert_eq!(preview_of(s, "third").await.replaced_by, None);
    assert_eq!(
        ok(s.all_preview_rows(DEFAULT_TEAM, &pid("third"))).await,
        rows
    );
}

async fn unconfirmed_previews_and_unused_sources_expire(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    s.save_preview_source(DEFAULT_TEAM, &source_record("source-1"))
        .await
        .expect("source");
    let rows = vec![preview_row(0, PreviewOutcome::Selected)];
    let old = PreviewRecord {
        created_at: at(1),
        ..preview_record("old", Action::Delete)
    };
    let young = PreviewRecord {
        created_at: at(30),
        ..preview_record("young", Action::Delete)
    };
    let confirmed = PreviewRecord {
        created_at: at(1),
        ..preview_record("confirmed", Action::Delete)
    };
    for record in [&old, &young, &confirmed] {
        s.save_preview(DEFAULT_TEAM, record, &rows)
            .await
            .expect("save");
    }
    assert!(ok(s.claim_preview(DEFAULT_TEAM, &pid("confirmed"))).await);

    // The young revision still uses the source: only the old preview goes.
    let gone = s.expire_previews(at(10)).await.expect("sweep");
    assert_eq!(
        gone,
        Expired {
            previews: 1,
            sources: 0
        }
    );
    assert_eq!(ok(s.preview(DEFAULT_TEAM, &pid("old"))).await, None);
    assert!(ok(s.all_preview_rows(DEFAULT_TEAM, &pid("old")))
        .await
        .is_empty());
    assert!(ok(s.preview(DEFAULT_TEAM, &pid("young"))).await.is_some());
    assert!(s
        .preview_source(DEFAULT_TEAM, "source-1")
        .await
        .expect("read")
        .is_some());

    // Later the young one expires too, and its source with it; the confirmed preview and
    // its rows stay with the run.
    let gone = s.expire_previews(at(40)).await.expect("sweep");
    assert_eq!(
        gone,
        Expired {
            previews: 1,
            sources: 1
        }
    );
    assert_eq!(
        s.preview_source(DEFAULT_TEAM, "source-1")
            .await
            .expect("read"),
        None
    );
    assert!(ok(s.preview(DEFAULT_TEAM, &pid("confirmed")))
        .await
        .is_some());
    assert_eq!(
        ok(s.all_preview_rows(DEFAULT_TEAM, &pid("confirmed"))).await,
        rows
    );
    assert_eq!(t.count("SELECT COUNT(*) FROM preview_rows").await, 1);
}

async fn a_job_keeps_the_connection_it_was_confirmed_on(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    queued_job(s, "job-1").await;
    let job = job_of(s, "job-1").await;
    assert_eq!(
        job.connection,
        Some(JobConnection {
            users_url: "https://acme.stackenterprise.co/api/scim/v2/users".to_string(),
            token_fingerprint: "fp-1".to_string(),
        })
    );
}

/// Previews written whole by the earlier schema are split into source, summary and rows
/// by migration 0003 (run here on a database left at migration 0002).
#[tokio::test]
async fn previews_stored_whole_by_earlier_versions_are_split_by_the_migration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("offboard.db").display());
    let options = SqliteConnectOptions::from_str(&url)
        .expect("url")
        .create_if_missing(true);
    let pool = SqlitePoolOptions::new()
        .connect_with(options)
        .await
        .expect("pool");
    let mut migrator = sqlx::migrate!("./migrations");
    let all = migrator.migrations.to_vec();
    migrator.migrations =
        std::borrow::Cow::Owned(all.iter().filter(|m| m.version < 3).cloned().collect());
    migrator.run(&pool).await.expect("migrations 1 and 2");
    let rows = vec![
        preview_row(0, PreviewOutcome::Selected),
        preview_row(1, PreviewOutcome::NotFound),
    ];
    let whole = serde_json::json!({
        "preview": {
            "source": "Picked",
            "rows": rows,
            "counts": {"selected": 1, "not_found": 1, "ambiguous": 0, "invalid": 0,
                       "duplicate": 0, "privileged": 0, "protected": 0, "system_account": 0},
            "demote_privileged": true
        },
        "input": {"kind": "picked", "account_ids": ["1000", "1001"]},
        "users_url": "https://acme.stackenterprise.co/api/scim/v2/users"
    });
    sqlx::query(
        "INSERT INTO previews (id, team_id, created_at, action, preview_json, listing_json, \
         phrase) VALUES ('legacy', 1, ?, 'Delete', ?, '[{\"id\":\"1000\"}]', 'DELETE 1 USER')",
    )
    .bind(Stamp::text(at(1)))
    .bind(whole.to_string())
    .execute(&pool)
    .await
    .expect("legacy preview");
    pool.close().await;

    let db = open_with_clock(&url, Arc::new(FixedClock(now())))
        .await
        .expect("upgrade");
    let s = db.storage.as_ref();
    let record = preview_of(s, "legacy").await;
    assert_eq!(record.total_rows, 2);
    assert_eq!(record.phrase, "DELETE 1 USER");
    let summary: serde_json::Value = serde_json::from_str(&record.summary_json).expect("summary");
    assert_eq!(summary["demote_privileged"], serde_json::json!(true));
    assert_eq!(summary["counts"]["selected"], serde_json::json!(1));
    assert_eq!(summary["source"], serde_json::json!("Picked"));
    assert_eq!(
        ok(s.all_preview_rows(DEFAULT_TEAM, &pid("legacy"))).await,
        rows
    );
    let only = Some(PreviewOutcome::NotFound);
    let (page, matching) = ok(s.preview_rows(DEFAULT_TEAM, &pid("legacy"), only, 0, 10)).await;
    assert_eq!((page, matching), (vec![rows[1].clone()], 1));
    let source = s
        .preview_source(DEFAULT_TEAM, &record.source_id)
        .await
        .expect("read")
        .expect("source");
    assert_eq!(
        source.users_url,
        "https://acme.stackenterprise.co/api/scim/v2/users"
    );
    assert_eq!(source.token_fingerprint, "", "unknown for old previews");
    assert_eq!(source.listing_json, r#"[{"id":"1000"}]"#);
    let input: serde_json::Value = serde_json::from_str(&source.input_json).expect("input");
    assert_eq!(input["account_ids"], serde_json::json!(["1000", "1001"]));
}

async fn concurrent_confirmations_claim_a_preview_exactly_once(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    t.storage()
        .save_preview(DEFAULT_TEAM, &preview_record("p-1", Action::Delete), &[])
        .await
        .expect("save");
    let claims = (0..8).map(|_| {
        let storage = t.db.storage.clone();
        tokio::spawn(async move { storage.claim_preview(DEFAULT_TEAM, &"p-1".into()).await })
    });
    let mut won = 0;
    for claim in futures::future::join_all(claims).await {
        if claim.expect("task").expect("claim") {
            won += 1;
        }
    }
    assert_eq!(won, 1);
}

/// An account chosen on a preview row: the row, summary and phrase change together, only
/// from the summary the change was computed from, only on the team's unconfirmed preview; of
/// eight changes computed from one reading, exactly one is written.
async fn a_row_change_is_written_once_from_the_summary_it_was_made_from(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    let rows = [
        preview_row(0, PreviewOutcome::Selected),
        preview_row(1, PreviewOutcome::Ambiguous),
    ];
    s.save_preview(DEFAULT_TEAM, &preview_record("p-1", Action::Delete), &rows)
        .await
        .expect("save");
    let (id, chosen) = (pid("p-1"), preview_row(1, PreviewOutcome::Selected));
    const READ: &str = r#"{"counts":{}}"#;
    assert!(!s
        .change_preview_row(OTHER_TEAM, &row_change(&id, &chosen, READ, "other"))
        .await
        .expect("other team"));
    let changes = (0..8).map(|i| {
        let storage = t.db.storage.clone();
        let (id, chosen) = (id.clone(), chosen.clone());
        let summary = if i % 2 == 0 { "even" } else { "odd" };
        tokio::spawn(async move {
            let change = row_change(&id, &chosen, READ, summary);
            storage.change_preview_row(DEFAULT_TEAM, &change).await
        })
    });
    let mut won = 0;
    for written in futures::future::join_all(changes).await {
        if written.expect("task").expect("change") {
            won += 1;
        }
    }
    assert_eq!(won, 1);
    let record = s.preview(DEFAULT_TEAM, &id).await.expect("read");
    let record = record.expect("kept");
    assert_eq!(record.phrase, "DELETE 2 USERS");
    assert!(["even", "odd"].contains(&record.summary_json.as_str()));
    let (selected, _) = s
        .preview_rows(DEFAULT_TEAM, &id, Some(PreviewOutcome::Selected), 0, 10)
        .await
        .expect("rows");
    assert_eq!(selected, [rows[0].clone(), chosen.clone()]);
    // Once confirmed, nothing changes, even from the summary as it is now.
    assert!(s.claim_preview(DEFAULT_TEAM, &id).await.expect("claim"));
    let late = row_change(&id, &chosen, &record.summary_json, "late");
    assert!(!s
        .change_preview_row(DEFAULT_TEAM, &late)
        .await
        .expect("after the claim"));
}

fn row_change<'a>(
    preview_id: &'a PreviewId,
    row: &'a PreviewRow,
    expected_summary: &'a str,
    summary: &'a str,
) -> PreviewRowChange<'a> {
    PreviewRowChange {
        preview_id,
        expected_summary,
        summary,
        phrase: "DELETE 2 USERS",
        position: 1,
        row,
    }
}

async fn a_new_job_is_queued_with_its_users_and_first_events(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    queued_job(s, "job-1").await;

    let job = job_of(s, "job-1").await;
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.total, 4);
    assert_eq!(job.done, 1);
    assert_eq!(job.count(ItemOutcome::ChangedSincePreview), 1);
    assert_eq!(job.count(ItemOutcome::Deleted), 0);
    assert_eq!(job.created_by, "admin@example.com");
    assert_eq!(job.created_at, at(2));
    assert_eq!(job.action, Action::Delete);
    assert_eq!(
        job.preview_id.as_ref().map(PreviewId::as_str),
        Some("preview-of-job-1")
    );
    assert_eq!((job.started_at, job.finished_at), (None, None));

    // Its confirmation is in the team's trail, written with it.
    let trail = s
        .audit_entries(
            DEFAULT_TEAM,
            &AuditQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .expect("trail");
    let trail: Vec<_> = trail
        .iter()
        .map(|e| (e.action, e.target.as_deref()))
        .collect();
    assert_eq!(trail, vec![(AuditAction::RunConfirmed, Some("job-1"))]);

    let targets = s.job_targets(&jid("job-1")).await.expect("targets");
    assert_eq!(account_ids(&targets), vec!["a1", "a3", "a4"]);
    assert!(targets.iter().all(|t| t.state == ItemState::Pending));
    assert_eq!(targets[0].email.as_deref(), Some("a1@example.com"));

    let events = s
        .events_since(DEFAULT_TEAM, &"job-1".into(), 0, 100)
        .await
        .expect("events");
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].seq, 1);
    assert_eq!(events[0].state_change, Some(JobState::Queued));
    assert_eq!(events[1].seq, 2);
    let settled = events[1].result.as_ref().expect("settled row");
    assert_eq!(settled.account_id, "a2");
    assert_eq!(settled.outcome, ItemOutcome::ChangedSincePreview);
}

async fn a_job_starts_only_from_this_teams_confirmed_preview_of_the_same_action(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    unconfirmed_preview(s, DEFAULT_TEAM, "unclaimed", Action::Delete).await;
    confirmed_preview(s, OTHER_TEAM, "other-team").await;
    unconfirmed_preview(s, DEFAULT_TEAM, "deactivate", Action::Deactivate).await;
    assert!(ok(s.claim_preview(DEFAULT_TEAM, &pid("deactivate"))).await);

    for preview_id in ["unclaimed", "other-team", "deactivate", "missing"] {
        let err = s
            .create_job(&new_job("job-x", DEFAULT_TEAM, preview_id, vec![run("a1")]))
            .await
            .expect_err(preview_id);
        assert!(
            matches!(err, StorageError::PreviewNotConfirmed(_)),
            "{preview_id}: {err:?}"
        );
    }
    assert_no_job_written(&t).await;
}

async fn a_preview_starts_at_most_one_job(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    queued_job(s, "job-1").await;
    let again = new_job("job-2", DEFAULT_TEAM, "preview-of-job-1", vec![run("a9")]);
    assert!(s.create_job(&again).await.is_err());
    assert_eq!(
        s.job(DEFAULT_TEAM, &"job-2".into()).await.expect("read"),
        None
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM job_items WHERE job_id = 'job-2'")
            .await,
        0
    );
}

async fn a_job_refuses_duplicate_users_and_settled_successes(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    confirmed_preview(s, DEFAULT_TEAM, "p").await;
    let err = refused(
        s.create_job(&new_job(
            "j",
            DEFAULT_TEAM,
            "p",
            vec![run("a1"), changed("a1")],
        ))
        .await,
    );
    assert!(
        matches!(err, StorageError::DuplicateAccount(ref a) if a == "a1"),
        "{err:?}"
    );
    let err = refused(
        s.create_job(&new_job(
            "j",
            DEFAULT_TEAM,
            "p",
            vec![PlannedItem::Settled(result("a1", ItemOutcome::Deleted))],
        ))
        .await,
    );
    assert!(matches!(err, StorageError::SettledAsSuccess(_)), "{err:?}");
    assert_eq!(t.count("SELECT COUNT(*) FROM jobs").await, 0);
}

async fn creating_a_job_is_all_or_nothing(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    confirmed_preview(s, DEFAULT_TEAM, "p").await;
    t.fail_inserts("fail_on_boom", "job_items", "NEW.account_id = 'boom'")
        .await;
    let job = new_job(
        "j",
        DEFAULT_TEAM,
        "p",
        vec![run("a1"), changed("a2"), run("boom")],
    );
    assert!(s.create_job(&job).await.is_err());
    assert_no_job_written(&t).await;
}

async fn state_changes_are_stamped_logged_and_final_states_stay_final(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    queued_job(s, "job-1").await;

    let started = set_state(s, "job-1", JobState::Running).await;
    assert_eq!(started.seq, 3);
    assert_eq!(started.state_change, Some(JobState::Running));
    let why = "Deletion is not enabled for this site".to_string();
    let paused = s
        .set_job_state(&jid("job-1"), None, JobState::Paused, Some(why.clone()))
        .await
        .expect("pause");
    assert_eq!(paused.reason.as_deref(), Some(why.as_str()));
    let job = job_of(s, "job-1").await;
    assert_eq!(job.state, JobState::Paused);
    assert_eq!(job.reason, Some(why));
    assert_eq!(job.started_at, Some(now()));
    assert_eq!(job.finished_at, None);

    set_state(s, "job-1", JobState::Running).await;
    assert_eq!(
        job_of(s, "job-1").await.reason,
        None,
        "resuming clears the pause reason"
    );
    let stopped = s
        .set_job_state(
            &jid("job-1"),
            None,
            JobState::Stopped,
            Some("cancelled".to_string()),
        )
        .await
        .expect("stop");
    assert_eq!(stopped.seq, 6);
    let job = job_of(s, "job-1").await;
    assert_eq!(job.state, JobState::Stopped);
    assert_eq!(job.finished_at, Some(now()));

    let err = refused(
        s.set_job_state(&jid("job-1"), None, JobState::Running, None)
            .await,
    );
    assert!(
        matches!(
            err,
            StorageError::JobEnded {
                state: JobState::Stopped,
                ..
            }
        ),
        "{err:?}"
    );
    let err = refused(
        s.set_job_state(&jid("nope"), None, JobState::Running, None)
            .await,
    );
    assert!(matches!(err, StorageError::JobNotFound(_)), "{err:?}");

    let changes: Vec<_> = s
        .events_since(DEFAULT_TEAM, &"job-1".into(), 0, 100)
        .await
        .expect("events")
        .into_iter()
        .filter_map(|e| e.state_change)
        .collect();
    use JobState::*;
    assert_eq!(changes, vec![Queued, Running, Paused, Running, Stopped]);
}

async fn sending_is_refused_unless_the_job_runs_and_the_user_is_unfinished(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    queued_job(s, "job-1").await;
    let err = refused(s.mark_sending(&jid("job-1"), None, "a1").await);
    assert!(
        matches!(
            err,
            StorageError::JobNotRunning {
                state: JobState::Queued,
                ..
            }
        ),
        "{err:?}"
    );

    set_state(s, "job-1", JobState::Running).await;
    ok(s.mark_sending(&jid("job-1"), None, "a1")).await;
    ok(s.mark_sending(&jid("job-1"), None, "a1")).await;
    let err = refused(s.mark_sending(&jid("job-1"), None, "zz").await);
    assert!(matches!(err, StorageError::UnknownItem { .. }), "{err:?}");
    let err = refused(s.mark_sending(&jid("job-1"), None, "a2").await);
    assert!(matches!(err, StorageError::ItemFinished { .. }), "{err:?}");

    set_state(s, "job-1", JobState::Cancelling).await;
    let err = refused(s.mark_sending(&jid("job-1"), None, "a3").await);
    assert!(matches!(err, StorageError::JobNotRunning { .. }), "{err:?}");
    let targets = s.job_targets(&jid("job-1")).await.expect("targets");
    assert_eq!(targets[1].state, ItemState::Pending, "a3 was never marked");
    let err = refused(s.mark_sending(&jid("nope"), None, "a1").await);
    assert!(matches!(err, StorageError::JobNotFound(_)), "{err:?}");
}

async fn a_result_is_recorded_once_with_its_event(backend: Backend) {
    let t = with_running_job(backend).await;
    let s = t.storage();
    ok(s.mark_sending(&jid("job-1"), None, "a1")).await;
    let first = result("a1", ItemOutcome::Deleted);
    let event = s
        .record_result(&jid("job-1"), None, &first)
        .await
        .expect("record");
    assert_eq!(event.seq, 4);
    assert_eq!(event.at, now());
    assert_eq!(event.result.as_ref(), Some(&first));

    let second = result("a1", ItemOutcome::Failed);
    let err = refused(s.record_result(&jid("job-1"), None, &second).await);
    assert!(matches!(err, StorageError::ItemFinished { .. }), "{err:?}");
    let err = refused(
        s.record_result(&jid("job-1"), None, &result("a2", ItemOutcome::Deleted))
            .await,
    );
    assert!(matches!(err, StorageError::ItemFinished { .. }), "{err:?}");
    let err = refused(
        s.record_result(&jid("job-1"), None, &result("zz", ItemOutcome::Deleted))
            .await,
    );
    assert!(matches!(err, StorageError::UnknownItem { .. }), "{err:?}");

    let results = ok(s.job_results(DEFAULT_TEAM, &jid("job-1"))).await;
    assert_eq!(results[0], first, "the first result stands");
    let events = s
        .events_since(DEFAULT_TEAM, &"job-1".into(), 3, 100)
        .await
        .expect("events");
    assert_eq!(events.len(), 1, "refused results leave no event");
    let job = job_of(s, "job-1").await;
    assert_eq!((job.done, job.total), (2, 4));
    assert_eq!(job.count(ItemOutcome::Deleted), 1);
    assert_eq!(job.count(ItemOutcome::Failed), 0);
    assert_eq!(
        account_ids(&s.job_targets(&jid("job-1")).await.expect("targets")),
        vec!["a3", "a4"]
    );
}

async fn a_result_and_its_event_are_written_together_or_not_at_all(backend: Backend) {
    let t = with_running_job(backend).await;
    let s = t.storage();
    t.fail_inserts("fail_event", "job_events", "NEW.result_json IS NOT NULL")
        .await;
    assert!(s
        .record_result(&jid("job-1"), None, &result("a1", ItemOutcome::Deleted))
        .await
        .is_err());
    let targets = s.job_targets(&jid("job-1")).await.expect("targets");
    assert_eq!(
        account_ids(&targets),
        vec!["a1", "a3", "a4"],
        "a1 still unfinished"
    );
    let job = job_of(s, "job-1").await;
    assert_eq!(job.done, 1);
    assert_eq!(
        t.count("SELECT last_seq FROM jobs").await,
        3,
        "no number was used"
    );
}

async fn a_restart_resumes_unfinished_users_and_flags_those_left_sending(backend: Backend) {
    let mut t = TestDb::new(backend, now()).await;
    running_job(t.storage(), "job-1").await;
    let s = t.storage();
    ok(s.mark_sending(&jid("job-1"), None, "a1")).await;
    s.record_result(&jid("job-1"), None, &result("a1", ItemOutcome::Deleted))
        .await
        .expect("a1 done");
    ok(s.mark_sending(&jid("job-1"), None, "a3")).await;
    // The process dies here, mid-request for a3.
    t.restart().await;

    let s = t.storage();
    let unfinished = claim_all(s).await;
    assert_eq!(unfinished.len(), 1);
    assert_eq!(unfinished[0].id, "job-1");
    assert_eq!(unfinished[0].state, JobState::Running);
    let targets = s.job_targets(&jid("job-1")).await.expect("targets");
    assert_eq!(
        targets,
        vec![
            RunTarget {
                account_id: "a3".to_string(),
                email: Some("a3@example.com".to_string()),
                state: ItemState::Sending,
            },
            RunTarget {
                account_id: "a4".to_string(),
                email: Some("a4@example.com".to_string()),
                state: ItemState::Pending,
            },
        ]
    );
    // The log continues where it stopped.
    let event = s
        .record_result(&jid("job-1"), None, &result("a3", ItemOutcome::AlreadyGone))
        .await
        .expect("settle a3");
    assert_eq!(event.seq, 5);
}

/// What a console starting up claims to drive: every run not paused or ended, all teams.
async fn claim_all(s: &dyn Storage) -> Vec<JobRecord> {
    let lease = Duration::from_secs(60);
    let claim = Claim {
        holder: "starting",
        lease,
        driving: &[],
        only: None,
    };
    let claimed = s.claim_jobs(&claim);
    let claimed = claimed.await.expect("claim");
    claimed.into_iter().map(|(job, _)| job).collect()
}

async fn only_queued_running_and_cancelling_jobs_resume_at_start(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    jobs_in(
        s,
        &[
            ("j-queued", None),
            ("j-running", Some(JobState::Running)),
            ("j-paused", Some(JobState::Paused)),
            ("j-cancelling", Some(JobState::Cancelling)),
            ("j-finished", Some(JobState::Finished)),
            ("j-stopped", Some(JobState::Stopped)),
            ("j-failed", Some(JobState::Failed)),
        ],
    )
    .await;
    confirmed_preview(s, OTHER_TEAM, "p-2").await;
    s.create_job(&new_job("j-team-2", OTHER_TEAM, "p-2", vec![run("b1")]))
        .await
        .expect("team 2 job");

    let mut ids: Vec<_> = claim_all(s).await.into_iter().map(|j| j.id).collect();
    ids.sort();
    assert_eq!(
        ids,
        vec!["j-cancelling", "j-queued", "j-running", "j-team-2"]
    );
}

async fn cancelling_gives_pending_users_not_attempted_and_leaves_sending_ones(backend: Backend) {
    let t = with_running_job(backend).await;
    let s = t.storage();
    ok(s.mark_sending(&jid("job-1"), None, "a3")).await;
    let events = s
        .record_not_attempted(
            &jid("job-1"),
            None,
            "The run was cancelled before this user.",
        )
        .await
        .expect("not attempted");
    let settled: Vec<_> = events
        .iter()
        .map(|e| {
            let r = e.result.as_ref().expect("result");
            (e.seq, r.account_id.as_str(), r.outcome)
        })
        .collect();
    assert_eq!(
        settled,
        vec![
            (4, "a1", ItemOutcome::NotAttempted),
            (5, "a4", ItemOutcome::NotAttempted)
        ]
    );
    let targets = s.job_targets(&jid("job-1")).await.expect("targets");
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].state, ItemState::Sending);

    assert!(s
        .record_not_attempted(&jid("job-1"), None, "again")
        .await
        .expect("nothing left")
        .is_empty());
    let next = s
        .record_result(&jid("job-1"), None, &result("a3", ItemOutcome::Deleted))
        .await
        .expect("a3");
    assert_eq!(next.seq, 6, "no gap in the log");
    let job = job_of(s, "job-1").await;
    assert_eq!((job.done, job.total), (4, 4));
    assert_eq!(job.count(ItemOutcome::NotAttempted), 2);
    let err = refused(
        s.record_not_attempted(&jid("nope"), None, "cancelled")
            .await,
    );
    assert!(matches!(err, StorageError::JobNotFound(_)), "{err:?}");
}

async fn results_come_back_in_input_order_with_settled_rows(backend: Backend) {
    let t = with_running_job(backend).await;
    let s = t.storage();
    // Recorded out of input order, as concurrent workers finish.
    let finished = [
        ("a4", ItemOutcome::Failed),
        ("a1", ItemOutcome::Deleted),
        ("a3", ItemOutcome::CommunityCreator),
    ];
    for (account, outcome) in finished {
        s.record_result(&jid("job-1"), None, &result(account, outcome))
            .await
            .expect("record");
    }
    let results = ok(s.job_results(DEFAULT_TEAM, &jid("job-1"))).await;
    let order: Vec<_> = results
        .iter()
        .map(|r| (r.account_id.as_str(), r.outcome))
        .collect();
    assert_eq!(
        order,
        vec![
            ("a1", ItemOutcome::Deleted),
            ("a2", ItemOutcome::ChangedSincePreview),
            ("a3", ItemOutcome::CommunityCreator),
            ("a4", ItemOutcome::Failed),
        ]
    );
    assert_eq!(
        results[0],
        result("a1", ItemOutcome::Deleted),
        "every field kept"
    );
    assert!(results[0].demoted);
}

async fn watchers_resume_from_the_last_event_they_saw(backend: Backend) {
    let t = with_running_job(backend).await;
    let s = t.storage();
    for account in ["a1", "a3", "a4"] {
        s.record_result(&jid("job-1"), None, &result(account, ItemOutcome::Deleted))
            .await
            .expect("record");
    }
    set_state(s, "job-1", JobState::Finished).await;
    let all = s
        .events_since(DEFAULT_TEAM, &"job-1".into(), 0, 100)
        .await
        .expect("all");
    let seqs: Vec<_> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(all[6].state_change, Some(JobState::Finished));

    let page = s
        .events_since(DEFAULT_TEAM, &"job-1".into(), 3, 2)
        .await
        .expect("page");
    assert_eq!(page, all[3..5].to_vec());
    assert!(s
        .events_since(DEFAULT_TEAM, &"job-1".into(), 7, 100)
        .await
        .expect("none")
        .is_empty());
    let json = serde_json::to_string(&all).expect("events serialize");
    let back: Vec<JobEvent> = serde_json::from_str(&json).expect("and read back");
    assert_eq!(back, all);
}

/// Job `job-1`, running, of users u0…u39 (events 1 and 2: queued, running); their ids.
async fn running_job_of_40(storage: &dyn Storage, preview_id: &str) -> Vec<String> {
    confirmed_preview(storage, DEFAULT_TEAM, preview_id).await;
    let accounts: Vec<String> = (0..40).map(|i| format!("u{i}")).collect();
    storage
        .create_job(&new_job(
            "job-1",
            DEFAULT_TEAM,
            preview_id,
            accounts.iter().map(|a| run(a)).collect(),
        ))
        .await
        .expect("create");
    set_state(storage, "job-1", JobState::Running).await;
    accounts
}

async fn concurrent_writers_get_distinct_consecutive_event_numbers(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let accounts = running_job_of_40(t.storage(), "p").await;
    let writes = accounts.iter().map(|account| {
        let storage = t.db.storage.clone();
        let item = result(account, ItemOutcome::Deleted);
        tokio::spawn(async move { storage.record_result(&jid("job-1"), None, &item).await })
    });
    let mut seqs: Vec<i64> = futures::future::join_all(writes)
        .await
        .into_iter()
        .map(|w| w.expect("task").expect("record").seq)
        .collect();
    seqs.sort();
    assert_eq!(seqs, (3..43).collect::<Vec<i64>>());
    let job = t
        .storage()
        .job(DEFAULT_TEAM, &"job-1".into())
        .await
        .expect("read")
        .expect("job");
    assert_eq!((job.done, job.total), (40, 40));
}

async fn jobs_are_listed_newest_first_and_only_to_their_team(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    for (minute, job_id) in [(5, "older"), (9, "newest"), (7, "middle")] {
        let preview_id = format!("p-{job_id}");
        confirmed_preview(s, DEFAULT_TEAM, &preview_id).await;
        let mut job = new_job(job_id, DEFAULT_TEAM, &preview_id, vec![run("a1")]);
        job.created_at = at(minute);
        s.create_job(&job).await.expect("create");
    }
    let ids = |jobs: Vec<JobRecord>| jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.list_jobs(DEFAULT_TEAM, 10).await.expect("list")),
        vec!["newest", "middle", "older"]
    );
    assert_eq!(
        ids(s.list_jobs(DEFAULT_TEAM, 2).await.expect("list")),
        vec!["newest", "middle"]
    );

    // Team 2 sees none of it.
    assert!(s.list_jobs(OTHER_TEAM, 10).await.expect("list").is_empty());
    assert_eq!(
        s.job(OTHER_TEAM, &"newest".into()).await.expect("read"),
        None
    );
    assert!(s
        .events_since(OTHER_TEAM, &"newest".into(), 0, 100)
        .await
        .expect("events")
        .is_empty());
    assert!(ok(s.job_results(OTHER_TEAM, &jid("newest")))
        .await
        .is_empty());
    assert_eq!(ok(s.preview(OTHER_TEAM, &pid("p-newest"))).await, None);
    let err = refused(
        s.create_job(&new_job("stolen", OTHER_TEAM, "p-newest", vec![run("a1")]))
            .await,
    );
    assert!(
        matches!(err, StorageError::PreviewNotConfirmed(_)),
        "{err:?}"
    );
}

/// The hourly limits' records: counted per team and kind after a moment, the oldest named,
/// and a team's old ones forgotten as a new one is written.
async fn team_usage_is_counted_per_team_and_kind_and_forgotten_after(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    let other = s.create_team("Support").await.expect("team").id;
    for minute in [1, 2, 3] {
        ok(s.record_usage(DEFAULT_TEAM, "run", at(minute), at(0))).await;
    }
    ok(s.record_usage(DEFAULT_TEAM, "preview", at(4), at(0))).await;
    ok(s.record_usage(other, "run", at(4), at(0))).await;
    assert_eq!(
        ok(s.usage_since(DEFAULT_TEAM, "run", at(0))).await,
        (3, Some(at(1)))
    );
    assert_eq!(
        ok(s.usage_since(DEFAULT_TEAM, "run", at(1))).await,
        (2, Some(at(2))),
        "after the moment, not at it"
    );
    assert_eq!(
        ok(s.usage_since(other, "run", at(0))).await,
        (1, Some(at(4)))
    );
    assert_eq!(ok(s.usage_since(other, "preview", at(0))).await, (0, None));
    // Writing at minute 5 with everything up to minute 2 forgotten: the team's 1 and 2 go.
    ok(s.record_usage(DEFAULT_TEAM, "run", at(5), at(2))).await;
    assert_eq!(
        ok(s.usage_since(DEFAULT_TEAM, "run", at(0))).await,
        (2, Some(at(3)))
    );
    assert_eq!(
        ok(s.usage_since(other, "run", at(0))).await.0,
        1,
        "another team's records stay"
    );
}

/// A run's "all users" listing is kept as given, and read back by its own team only.
async fn listing_is_kept_with_its_run_for_its_team_only(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    queued_job(s, "job-1").await;
    assert_eq!(
        s.listing(DEFAULT_TEAM, &jid("job-1")).await.expect("read"),
        None
    );
    let json = "[{\"account_id\":\"1001\",\"display_name\":\"Zoë\"}]".as_bytes();
    s.save_listing(&jid("job-1"), json).await.expect("keep");
    assert_eq!(
        s.listing(DEFAULT_TEAM, &jid("job-1"))
            .await
            .expect("read")
            .as_deref(),
        Some(json)
    );
    assert_eq!(
        s.listing(OTHER_TEAM, &jid("job-1")).await.expect("read"),
        None
    );
    assert!(
        s.save_listing(&jid("no-such-job"), json).await.is_err(),
        "a listing belongs to a run"
    );
}

/// What a new preview cites: the team's finished users on the site with the asked outcomes,
/// with the run's id, author and time; never another team's, another site's or a pending one.
async fn earlier_results_are_the_teams_finished_ones_on_the_site(backend: Backend) {
    use crate::engine::earlier::CITED_OUTCOMES;
    let t = with_running_job(backend).await;
    let s = t.storage();
    for (id, outcome) in [
        ("a1", ItemOutcome::Deleted),
        ("a3", ItemOutcome::CommunityCreator),
    ] {
        ok(s.mark_sending(&jid("job-1"), None, id)).await;
        s.record_result(&jid("job-1"), None, &result(id, outcome))
            .await
            .expect("record");
    }
    let site = "https://acme.stackenterprise.co";
    let mut found = s
        .earlier_results(DEFAULT_TEAM, site, &CITED_OUTCOMES)
        .await
        .expect("read");
    found.sort_by(|a, b| a.account_id.cmp(&b.account_id));
    let seen: Vec<_> = found
        .iter()
        .map(|r| {
            (
                r.account_id.as_str(),
                r.email.as_deref(),
                r.outcome,
                r.job_id.as_str(),
            )
        })
        .collect();
    // a2 was settled "changed since preview", a4 is still pending: neither is cited.
    assert_eq!(
        seen,
        vec![
            ("a1", Some("a1@example.com"), ItemOutcome::Deleted, "job-1"),
            (
                "a3",
                Some("a3@example.com"),
                ItemOutcome::CommunityCreator,
                "job-1"
            ),
        ]
    );
    assert_eq!(found[0].started_by, "admin@example.com");
    assert_eq!(found[0].at, now());
    assert_eq!(
        s.earlier_results(DEFAULT_TEAM, site, &[ItemOutcome::Deleted])
            .await
            .expect("read")
            .len(),
        1
    );
    for (team, site) in [
        (OTHER_TEAM, site),
        (DEFAULT_TEAM, "https://other.stackenterprise.co"),
    ] {
        assert!(s
            .earlier_results(team, site, &CITED_OUTCOMES)
            .await
            .expect("read")
            .is_empty());
    }
    assert!(s
        .earlier_results(DEFAULT_TEAM, site, &[])
        .await
        .expect("read")
        .is_empty());
}

on_both_databases!(
    earlier_results_are_the_teams_finished_ones_on_the_site,
    listing_is_kept_with_its_run_for_its_team_only,
    team_usage_is_counted_per_team_and_kind_and_forgotten_after,
    health_counts_only_the_teams_jobs,
    connection_is_saved_replaced_and_its_token_forgotten,
    preview_is_kept_per_team_and_claimed_once,
    preview_rows_are_paged_and_filtered_by_sql_per_team,
    a_revision_replaces_an_unconfirmed_preview_and_keeps_a_confirmed_one,
    unconfirmed_previews_and_unused_sources_expire,
    a_job_keeps_the_connection_it_was_confirmed_on,
    a_new_job_is_queued_with_its_users_and_first_events,
    a_job_starts_only_from_this_teams_confirmed_preview_of_the_same_action,
    a_preview_starts_at_most_one_job,
    a_job_refuses_duplicate_users_and_settled_successes,
    creating_a_job_is_all_or_nothing,
    state_changes_are_stamped_logged_and_final_states_stay_final,
    sending_is_refused_unless_the_job_runs_and_the_user_is_unfinished,
    a_result_is_recorded_once_with_its_event,
    a_result_and_its_event_are_written_together_or_not_at_all,
    a_restart_resumes_unfinished_users_and_flags_those_left_sending,
    only_queued_running_and_cancelling_jobs_resume_at_start,
    cancelling_gives_pending_users_not_attempted_and_leaves_sending_ones,
    results_come_back_in_input_order_with_settled_rows,
    watchers_resume_from_the_last_event_they_saw,
    jobs_are_listed_newest_first_and_only_to_their_team;
    multi_thread: concurrent_confirmations_claim_a_preview_exactly_once, concurrent_writers_get_distinct_consecutive_event_numbers,
    a_row_change_is_written_once_from_the_summary_it_was_made_from
);

/// Two consoles on one PostgreSQL database (two connection pools, as two replicas have): row
/// locks, not one process's writer, must keep a preview claimed once, every user of a job
/// finished once with distinct consecutive event numbers while results and a cancel race, and
/// one audit chain. (PostgreSQL only: two SQLite consoles never share a file.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_consoles_on_one_postgres_database_keep_the_same_rules() {
    let t = TestDb::new(Backend::Postgres, now()).await;
    let (consoles, other) = t.two_consoles().await;

    t.storage()
        .save_preview(DEFAULT_TEAM, &preview_record("p-1", Action::Delete), &[])
        .await
        .expect("save");
    let claims = futures::future::join_all((0..8).map(|i| {
        let storage = consoles[i % 2].clone();
        async move { storage.claim_preview(DEFAULT_TEAM, &pid("p-1")).await }
    }))
    .await;
    let won = claims
        .into_iter()
        .filter(|c| *c.as_ref().expect("claim"))
        .count();
    assert_eq!(won, 1, "claimed once across both consoles");

    let accounts = running_job_of_40(t.storage(), "p-2").await;
    // Results through both consoles, racing a cancel on the second one.
    let results = accounts.iter().enumerate().map(|(i, account)| {
        let storage = consoles[i % 2].clone();
        let item = result(account, ItemOutcome::Deleted);
        tokio::spawn(async move { storage.record_result(&jid("job-1"), None, &item).await })
    });
    let canceller = consoles[1].clone();
    let cancel = tokio::spawn(async move {
        canceller
            .set_job_state(&jid("job-1"), None, JobState::Cancelling, None)
            .await
            .expect("cancel");
        canceller
            .record_not_attempted(&jid("job-1"), None, "cancelled")
            .await
            .expect("not attempted")
    });
    for written in futures::future::join_all(results).await {
        match written.expect("task") {
            Ok(_) | Err(StorageError::ItemFinished { .. }) => {}
            Err(e) => panic!("a result failed: {e}"),
        }
    }
    cancel.await.expect("cancel task");
    let job = t
        .storage()
        .job(DEFAULT_TEAM, &jid("job-1"))
        .await
        .expect("read")
        .expect("job");
    assert_eq!((job.done, job.total), (40, 40));
    assert_eq!(
        job.count(ItemOutcome::Deleted) + job.count(ItemOutcome::NotAttempted),
        40
    );
    let events = t
        .storage()
        .events_since(DEFAULT_TEAM, &jid("job-1"), 0, 1000)
        .await
        .expect("events");
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    // queued, running, cancelling and one result per user: no number skipped or repeated.
    assert_eq!(seqs, (1..=43).collect::<Vec<i64>>());

    let appends = futures::future::join_all((0..20).map(|n| {
        let storage = consoles[n % 2].clone();
        async move {
            storage
                .append_audit(
                    DEFAULT_TEAM,
                    &NewAuditEntry {
                        actor: "me".into(),
                        action: model::audit::AuditAction::RunPaused,
                        target: None,
                        details: serde_json::json!({ "n": n }),
                    },
                )
                .await
        }
    }))
    .await;
    assert!(appends.iter().all(Result::is_ok), "{appends:?}");
    let report = other.storage.verify_audit().await.expect("verify");
    // The 20 appends and the run's confirmation, written with it.
    assert_eq!((report.broken, report.entries), (None, 21));
}

/// The two migration folders: every old file is in [`MIGRATION_PAIRS`] (a pair names the same
/// migration in both), and from [`SHARED_MIGRATION_NUMBERS_FROM`] on each migration has one
/// number and one name in both folders.
#[test]
fn migration_numbers_agree() {
    fn folder(name: &str) -> BTreeMap<u32, String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
        std::fs::read_dir(&dir)
            .expect("migrations folder")
            .map(|entry| {
                let file = entry
                    .expect("entry")
                    .file_name()
                    .into_string()
                    .expect("utf-8");
                let (number, rest) = file.split_once('_').expect("NNNN_name.sql");
                let name = rest.strip_suffix(".sql").expect(".sql").to_string();
                (number.parse().expect("a number"), name)
            })
            .collect()
    }
    let (sqlite, postgres) = (folder("migrations"), folder("migrations-postgres"));
    let mut paired = (HashSet::new(), HashSet::new());
    for (on_sqlite, on_postgres) in MIGRATION_PAIRS {
        let a = on_sqlite.map(|n| (n, sqlite.get(&n).expect("listed SQLite migration")));
        let b = on_postgres.map(|n| (n, postgres.get(&n).expect("listed PostgreSQL migration")));
        if let (Some((_, a)), Some((_, b))) = (a, b) {
            assert_eq!(a, b, "a pair names one migration");
        }
        assert!(on_sqlite.is_none_or(|n| n < SHARED_MIGRATION_NUMBERS_FROM));
        assert!(on_postgres.is_none_or(|n| n < SHARED_MIGRATION_NUMBERS_FROM));
        paired.0.extend(*on_sqlite);
        paired.1.extend(*on_postgres);
    }
    for (numbers, paired) in [(&sqlite, &paired.0), (&postgres, &paired.1)] {
        for n in numbers
            .keys()
            .filter(|n| **n < SHARED_MIGRATION_NUMBERS_FROM)
        {
            assert!(
                paired.contains(n),
                "migration {n:04} is missing from MIGRATION_PAIRS"
            );
        }
    }
    let newer = |numbers: &BTreeMap<u32, String>| -> Vec<(u32, String)> {
        let newer = numbers.range(SHARED_MIGRATION_NUMBERS_FROM..);
        newer.map(|(n, name)| (*n, name.clone())).collect()
    };
    assert_eq!(
        newer(&sqlite),
        newer(&postgres),
        "newer migrations share number and name"
    );
}
