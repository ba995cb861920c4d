//! The job lease's storage tests (claim, expiry, renewal, fencing, release) and the limit of
//! runs per site, run on both databases (see test_db.rs), and two consoles claiming jobs and
//! starting runs on one PostgreSQL database.

use super::test_db::{on_both_databases, Backend, TestDb};
use super::tests::set_state;
use super::*;
use crate::engine::ItemState;
use chrono::TimeZone;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 12, 30, 0)
        .single()
        .expect("valid time")
}

fn jid(id: &str) -> JobId {
    JobId::new(id)
}

fn deleted(account_id: &str) -> ItemResult {
    ItemResult {
        account_id: account_id.to_string(),
        email: None,
        outcome: ItemOutcome::Deleted,
        message: "Deleted".to_string(),
        attempts: 1,
        elapsed_ms: 10,
        demoted: false,
    }
}

/// A confirmed preview and a queued job of users a1, a2, a3.
async fn queued_job(storage: &dyn Storage, job_id: &str) {
    start_job(
        storage,
        job_id,
        "https://acme.stackenterprise.co",
        usize::MAX,
    )
    .await
    .expect("create job");
}

/// A confirmed preview and, if the site has room, a queued job of users a1, a2, a3 on
/// `site_url`, as the service writes them.
async fn start_job(
    storage: &dyn Storage,
    job_id: &str,
    site_url: &str,
    runs_per_site: usize,
) -> Result<()> {
    let preview_id = PreviewId::new(format!("preview-of-{job_id}"));
    super::tests::confirmed_preview(storage, TeamId::BUILT_IN, preview_id.as_str()).await;
    let items = ["a1", "a2", "a3"]
        .iter()
        .map(|a| {
            PlannedItem::Run(RunTarget {
                account_id: a.to_string(),
                email: None,
                state: ItemState::Pending,
            })
        })
        .collect();
    storage
        .create_job(&NewJob {
            id: jid(job_id),
            team_id: TeamId::BUILT_IN,
            created_by: "admin@example.com".to_string(),
            created_at: now(),
            site_url: site_url.to_string(),
            action: Action::Delete,
            preview_id,
            connection: JobConnection {
                users_url: format!("{site_url}/api/scim/v2/users"),
                token_fingerprint: "fp-1".to_string(),
            },
            items,
            runs_per_site,
            audit: Vec::new(),
            approval: None,
            undo: None,
        })
        .await
}

fn job_ids(claims: &[(JobRecord, JobLease)]) -> Vec<&str> {
    claims.iter().map(|(job, _)| job.id.as_str()).collect()
}

const LONG: Duration = Duration::from_secs(60);

/// What `holder` claims, for leases of [`LONG`], leaving out the jobs it is `driving`.
async fn claim(
    s: &dyn Storage,
    holder: &str,
    driving: &[JobId],
    only: Option<&JobId>,
) -> Vec<(JobRecord, JobLease)> {
    let lease = LONG;
    let claim = Claim {
        holder,
        lease,
        driving,
        only,
    };
    s.claim_jobs(&claim).await.expect("claim")
}

/// A stale holder (its lease expired and another replica claimed the job) can write nothing
/// for the job: not a sending mark, a result, a settlement or a state.
async fn a_stale_holder_is_refused_every_write(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    queued_job(s, "job-1").await;
    // A long lease, expired below on purpose: a short one could run out on a loaded machine
    // before the checks that need it still held.
    let a = claim(s, "replica-a", &[], None).await;
    assert_eq!(job_ids(&a), ["job-1"]);
    let (job, lease_a) = &a[0];
    assert_eq!(
        job.state,
        JobState::Queued,
        "the claim returns the job as it is"
    );
    assert_eq!(lease_a.fence, 1);
    s.set_job_state(&lease_a.job_id, Some(lease_a), JobState::Running, None)
        .await
        .expect("a starts it");
    s.mark_sending(&lease_a.job_id, Some(lease_a), "a1")
        .await
        .expect("a sends a1");
    assert!(s.renew_lease(lease_a, LONG).await.expect("renew"));

    if backend == Backend::Postgres {
        // Held and not expired: another replica gets nothing until it expires.
        let early = claim(s, "replica-b", &[], None).await;
        assert!(
            early.is_empty(),
            "a live lease is not taken: {:?}",
            job_ids(&early)
        );
        // The lease runs out (set in the past as plain SQL: the clock is PostgreSQL's).
        t.execute(
            "UPDATE job_leases SET expires_at = now() - interval '1 second' WHERE job_id = 'job-1'",
        )
        .await;
    }
    // Expired on PostgreSQL; on SQLite (one process) any lease not driving is taken at once.
    let b = claim(s, "replica-b", &[], None).await;
    assert_eq!(job_ids(&b), ["job-1"]);
    let lease_b = &b[0].1;
    assert_eq!(lease_b.fence, 2, "the fence goes up at every claim");
    assert_eq!(b[0].0.state, JobState::Running);

    let lost =
        |r: Result<()>| matches!(r, Err(StorageError::LeaseLost(ref id)) if *id == jid("job-1"));
    assert!(lost(
        s.mark_sending(&lease_a.job_id, Some(lease_a), "a2").await
    ));
    assert!(lost(
        s.record_result(&lease_a.job_id, Some(lease_a), &deleted("a1"))
            .await
            .map(drop)
    ));
    assert!(lost(
        s.record_not_attempted(&lease_a.job_id, Some(lease_a), "x")
            .await
            .map(drop)
    ));
    assert!(lost(
        s.set_job_state(&lease_a.job_id, Some(lease_a), JobState::Finished, None)
            .await
            .map(drop)
    ));
    assert!(
        !s.renew_lease(lease_a, LONG).await.expect("renew"),
        "a's heartbeat learns it lost the job"
    );
    // Nothing of a's late writes landed: a1 is still "sending", a2 pending, the job running.
    let targets = s.job_targets(&jid("job-1")).await.expect("targets");
    let states: Vec<(&str, ItemState)> = targets
        .iter()
        .map(|t| (t.account_id.as_str(), t.state))
        .collect();
    assert_eq!(
        states,
        [
            ("a1", ItemState::Sending),
            ("a2", ItemState::Pending),
            ("a3", ItemState::Pending)
        ]
    );
    let job = s
        .job(TeamId::BUILT_IN, &jid("job-1"))
        .await
        .expect("job")
        .expect("exists");
    assert_eq!((job.state, job.done), (JobState::Running, 0));

    // The new holder's writes go through.
    s.record_result(&lease_b.job_id, Some(lease_b), &deleted("a1"))
        .await
        .expect("b settles a1");
    s.mark_sending(&lease_b.job_id, Some(lease_b), "a2")
        .await
        .expect("b sends a2");
    let job = s
        .job(TeamId::BUILT_IN, &jid("job-1"))
        .await
        .expect("job")
        .expect("exists");
    assert_eq!(job.done, 1);
}

/// A claim leaves out the jobs the claimer drives, ended and paused jobs (unless asked for
/// that one job), and a released lease is free at once.
async fn claims_skip_driven_ended_and_paused_jobs_and_release_frees_at_once(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    for id in ["job-1", "job-2", "job-3"] {
        queued_job(s, id).await;
    }
    set_state(s, "job-2", JobState::Paused).await;
    set_state(s, "job-3", JobState::Stopped).await;
    let a = claim(s, "replica-a", &[jid("job-1")], None).await;
    assert!(
        a.is_empty(),
        "job-1 is being driven, job-2 paused, job-3 ended: {:?}",
        job_ids(&a)
    );
    let a = claim(s, "replica-a", &[], None).await;
    assert_eq!(job_ids(&a), ["job-1"]);
    // A paused job is claimed only by name (its admin resumes it).
    let paused = claim(s, "replica-a", &[], Some(&jid("job-2"))).await;
    assert_eq!(job_ids(&paused), ["job-2"]);
    let ended = claim(s, "replica-a", &[], Some(&jid("job-3"))).await;
    assert!(ended.is_empty(), "an ended job is never claimed");

    // Handed back (the replica is stopping): another claims both at once, no expiry waited.
    assert_eq!(s.release_leases("replica-a").await.expect("release"), 2);
    set_state(s, "job-2", JobState::Running).await;
    let b = claim(s, "replica-b", &[], None).await;
    assert_eq!(job_ids(&b), ["job-1", "job-2"]);
    assert!(b.iter().all(|(_, lease)| lease.fence == 2));
    // One lease released (its job ended there): the fence stays, the next claim goes past it.
    s.release_lease(&b[0].1).await.expect("release one");
    let c = claim(s, "replica-c", &[], None).await;
    // job-2 is still b's on PostgreSQL; SQLite (one process) takes every lease not driving.
    let expected: &[&str] = match backend {
        Backend::Postgres => &["job-1"],
        Backend::Sqlite => &["job-1", "job-2"],
    };
    assert_eq!(job_ids(&c), expected);
    assert_eq!(c[0].1.fence, 3);
    assert!(lost_lease(
        s.mark_sending(&b[0].1.job_id, Some(&b[0].1), "a1").await
    ));
}

fn lost_lease(r: Result<()>) -> bool {
    matches!(r, Err(StorageError::LeaseLost(_)))
}

/// A site takes no more unfinished runs than allowed, all teams together; an ended run makes
/// room; a run refused after its preview was claimed gets the preview back.
async fn a_site_takes_no_more_unfinished_runs_than_allowed(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    const ACME: &str = "https://acme.stackenterprise.co";
    start_job(s, "job-1", ACME, 1).await.expect("room for one");
    match start_job(s, "job-2", ACME, 1).await {
        Err(StorageError::SiteBusy { site_url, running }) => {
            assert_eq!((site_url.as_str(), running), (ACME, 1));
        }
        other => panic!("a second run on a busy site: {other:?}"),
    }
    assert!(s
        .job(TeamId::BUILT_IN, &jid("job-2"))
        .await
        .expect("read")
        .is_none());
    // Another site is not busy; two allowed means two.
    start_job(s, "job-3", "https://other.stackenterprise.co", 1)
        .await
        .expect("another site");
    start_job(s, "job-4", ACME, 2).await.expect("room for two");
    assert!(matches!(
        start_job(s, "job-5", ACME, 2).await,
        Err(StorageError::SiteBusy { running: 2, .. })
    ));

    // job-2's preview was claimed before the refusal: released, it can be claimed again.
    let refused = PreviewId::new("preview-of-job-2");
    s.release_preview(TeamId::BUILT_IN, &refused)
        .await
        .expect("release");
    assert!(s
        .claim_preview(TeamId::BUILT_IN, &refused)
        .await
        .expect("claim"));
    // A preview a job was written from stays used.
    let used = PreviewId::new("preview-of-job-1");
    s.release_preview(TeamId::BUILT_IN, &used)
        .await
        .expect("release");
    assert!(!s
        .claim_preview(TeamId::BUILT_IN, &used)
        .await
        .expect("claim"));

    // Ended runs make room (a stopped one too); a paused or cancelling one does not.
    set_state(s, "job-4", JobState::Running).await;
    set_state(s, "job-4", JobState::Finished).await;
    assert_eq!(s.runs_on_site(ACME).await.expect("count"), 1);
    for state in [JobState::Running, JobState::Paused, JobState::Cancelling] {
        set_state(s, "job-1", state).await;
        assert!(
            matches!(
                start_job(s, &format!("job-{state:?}"), ACME, 1).await,
                Err(StorageError::SiteBusy { running: 1, .. })
            ),
            "a {state:?} run holds its site"
        );
    }
    set_state(s, "job-1", JobState::Stopped).await;
    assert_eq!(s.runs_on_site(ACME).await.expect("count"), 0);
    start_job(s, "job-7", ACME, 1).await.expect("room again");
}

/// A lease holds its own job only: a write to another job under it is refused, and nothing
/// of it lands, even while the lease still holds its job.
async fn a_lease_is_refused_for_another_job(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    queued_job(s, "job-1").await;
    queued_job(s, "job-2").await;
    let claimed = claim(s, "replica-a", &[], None).await;
    assert_eq!(job_ids(&claimed), ["job-1", "job-2"]);
    let lease_1 = &claimed[0].1;
    let refused = s
        .set_job_state(&jid("job-2"), Some(lease_1), JobState::Running, None)
        .await;
    assert!(
        matches!(refused, Err(StorageError::LeaseLost(ref id)) if *id == jid("job-2")),
        "{refused:?}"
    );
    let job_2 = s.job(TeamId::BUILT_IN, &jid("job-2")).await.expect("read");
    assert_eq!(job_2.expect("job-2").state, JobState::Queued);
    let own = s
        .set_job_state(&jid("job-1"), Some(lease_1), JobState::Running, None)
        .await
        .expect("its own job");
    assert_eq!(own.state_change, Some(JobState::Running));
}

on_both_databases!(
    a_stale_holder_is_refused_every_write,
    a_lease_is_refused_for_another_job,
    claims_skip_driven_ended_and_paused_jobs_and_release_frees_at_once,
    a_site_takes_no_more_unfinished_runs_than_allowed
);

/// Two consoles on one PostgreSQL database starting runs on one site at the same moment
/// (eight starts, four on each, two allowed): exactly two runs are written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_consoles_starting_runs_on_one_site_at_once_write_no_more_than_allowed() {
    let t = TestDb::new(Backend::Postgres, now()).await;
    let (consoles, other) = t.two_consoles().await;
    let starts = futures::future::join_all((0..8).map(|i| {
        let storage = consoles[i % 2].clone();
        async move {
            start_job(
                storage.as_ref(),
                &format!("job-{i}"),
                "https://acme.example",
                2,
            )
            .await
        }
    }))
    .await;
    let written = starts.iter().filter(|r| r.is_ok()).count();
    let busy = starts
        .iter()
        .filter(|r| matches!(r, Err(StorageError::SiteBusy { .. })))
        .count();
    assert_eq!((written, busy), (2, 6), "{starts:?}");
    assert_eq!(
        t.count("SELECT count(*) FROM jobs WHERE site_url = 'https://acme.example'")
            .await,
        2
    );
    other.pool.close().await;
}

/// Two consoles on one PostgreSQL database (two pools, as two replicas have) claiming many
/// jobs at the same moment (eight claimers, four on each): each job is claimed exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_consoles_on_one_postgres_database_claim_each_job_once() {
    let t = TestDb::new(Backend::Postgres, now()).await;
    let (consoles, other) = t.two_consoles().await;
    let ids: Vec<String> = (0..20).map(|i| format!("job-{i:02}")).collect();
    for id in &ids {
        queued_job(t.storage(), id).await;
    }
    let claims = futures::future::join_all((0..8).map(|i| {
        let storage = consoles[i % 2].clone();
        async move {
            claim(&*storage, &format!("replica-{i}"), &[], None)
                .await
                .into_iter()
                .map(|(job, lease)| (i % 2, job.id.to_string(), lease.fence))
                .collect::<Vec<_>>()
        }
    }))
    .await;
    let mut claimed: Vec<(usize, String, i64)> = claims.into_iter().flatten().collect();
    claimed.sort_by(|a, b| a.1.cmp(&b.1));
    let claimed_ids: Vec<&str> = claimed.iter().map(|c| c.1.as_str()).collect();
    assert_eq!(claimed_ids, ids, "every job claimed, none twice");
    assert!(claimed.iter().all(|c| c.2 == 1));
    // Each claimed job is held by the replica that claimed it: the other's fenced write fails.
    for (replica, id, fence) in &claimed {
        let lease = JobLease {
            job_id: jid(id),
            fence: *fence,
        };
        consoles[*replica]
            .set_job_state(&lease.job_id, Some(&lease), JobState::Running, None)
            .await
            .expect("the holder writes");
        let stale = JobLease {
            job_id: jid(id),
            fence: fence - 1,
        };
        assert!(matches!(
            consoles[1 - replica]
                .set_job_state(&stale.job_id, Some(&stale), JobState::Paused, None)
                .await,
            Err(StorageError::LeaseLost(_))
        ));
    }
    other.pool.close().await;
}

/// On PostgreSQL, events one console stores are announced to every other console listening
/// on the database (`job_event_notices`): what wakes a browser on a replica that is not
/// driving the run. SQLite has no such notices (one process stores everything).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stored_by_one_console_are_announced_to_the_others() {
    let t = TestDb::new(Backend::Postgres, now()).await;
    let other = t.second_console().await;
    let mut notices = other
        .storage
        .job_event_notices()
        .await
        .expect("PostgreSQL announces stored events");
    // Creating a job stores its first events: announced, with the job's id.
    queued_job(t.storage(), "job-announced").await;
    let announced = tokio::time::timeout(Duration::from_secs(30), notices.recv())
        .await
        .expect("a notice within 30 s")
        .expect("the listener is alive");
    assert_eq!(announced, JobId::new("job-announced"));
    // A state change is announced too.
    t.storage()
        .set_job_state(&JobId::new("job-announced"), None, JobState::Running, None)
        .await
        .expect("state");
    let again = tokio::time::timeout(Duration::from_secs(30), notices.recv())
        .await
        .expect("a second notice within 30 s")
        .expect("the listener is alive");
    assert_eq!(again, JobId::new("job-announced"));
    // SQLite: nothing to listen to.
    let sqlite = TestDb::new(Backend::Sqlite, now()).await;
    assert!(sqlite.storage().job_event_notices().await.is_none());
}
