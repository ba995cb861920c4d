//! Approving is creating the run: a decline and an approver's start raced on SQLite and on
//! PostgreSQL alike (each test runs on both: `on_sqlite::…`, `on_postgres::…`). Exactly one
//! wins every time, a declined request never has a run, and the trail agrees with the winner.

use super::test_db::{on_both_databases, Backend, TestDb};
use super::tests::{job_of, preview_record};
use super::*;
use crate::engine::ItemState;
use chrono::{Duration as Hours, TimeZone};
use model::audit::AuditAction;
use model::team::{ApprovalPolicy, TeamSettings};
use model::Named;
use std::sync::Arc;
use tokio::sync::Barrier;

const TEAM: TeamId = TeamId::BUILT_IN;
const REQUESTER: &str = "Ada <ada@x.io>";
const APPROVER: &str = "Bob <bob@x.io>";
const ROUNDS: usize = 50;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap()
}

/// Preview `id`, asked for approval by Ada at `now()` and claimed, as an approver's start
/// The preview's request for approval, which must exist.
async fn request_of(s: &dyn Storage, preview_id: &str) -> ApprovalRecord {
    let found = s.approval(TEAM, &PreviewId::new(preview_id)).await;
    found.unwrap().expect("the request exists")
}

/// claims it once the site is listed: what `create_job` and a decline then race for.
async fn awaiting_and_claimed(s: &dyn Storage, id: &str) {
    let preview = PreviewRecord {
        created_at: now(),
        ..preview_record(id, Action::Delete)
    };
    s.save_preview(TEAM, &preview, &[]).await.unwrap();
    assert!(s
        .request_approval(TEAM, &request(id), &asked())
        .await
        .unwrap());
    assert!(s.claim_preview(TEAM, &PreviewId::new(id)).await.unwrap());
}

/// The run Bob's start creates from preview `id`, approving it at `at`, with the trail
/// entries the service writes with it.
fn approved_run(job_id: &str, preview_id: &str, at: DateTime<Utc>) -> NewJob {
    NewJob {
        id: JobId::new(job_id),
        team_id: TEAM,
        created_by: REQUESTER.to_string(),
        created_at: at,
        site_url: "https://acme.stackenterprise.co".to_string(),
        action: Action::Delete,
        preview_id: PreviewId::new(preview_id),
        connection: JobConnection {
            users_url: "https://acme.stackenterprise.co/api/scim/v2/users".to_string(),
            token_fingerprint: "fp".to_string(),
        },
        items: vec![PlannedItem::Run(RunTarget {
            account_id: "a1".to_string(),
            email: Some("a1@x.io".to_string()),
            state: ItemState::Pending,
        })],
        runs_per_site: usize::MAX,
        audit: vec![
            NewAuditEntry {
                actor: REQUESTER.to_string(),
                action: AuditAction::RunConfirmed,
                target: Some(job_id.to_string()),
                details: serde_json::json!({ "preview": preview_id }),
            },
            NewAuditEntry {
                actor: APPROVER.to_string(),
                action: AuditAction::ApprovalGiven,
                target: Some(job_id.to_string()),
                details: serde_json::json!({ "preview": preview_id }),
            },
        ],
        approval: Some(RunApproval {
            by: APPROVER.to_string(),
            at,
        }),
        undo: None,
    }
}

/// Ada withdraws the request of preview `id` at `at`; true if it was declined.
async fn decline(s: &dyn Storage, id: &str, at: DateTime<Utc>) -> bool {
    let entry = NewAuditEntry {
        actor: REQUESTER.to_string(),
        action: AuditAction::ApprovalDeclined,
        target: Some(id.to_string()),
        details: serde_json::json!({ "reason": "wrong list" }),
    };
    s.decline_approval(
        TEAM,
        &PreviewId::new(id),
        REQUESTER,
        "wrong list",
        at,
        &entry,
    )
    .await
    .unwrap()
}

/// Who won the race for preview `id` (whose run would be `job_id`), checked against every
/// record: the request's state, the run (or its absence) and the trail.
async fn winner(t: &TestDb, id: &str, job_id: &str) -> Decision {
    let s = t.storage();
    let request = request_of(s, id).await;
    let decision = request.decision.expect("the request was decided");
    let job = s.job(TEAM, &JobId::new(job_id)).await.unwrap();
    let trail = |action: AuditAction, target: &str| {
        format!(
            "SELECT count(*) FROM audit_entries WHERE action = '{}' AND target = '{target}'",
            action.key()
        )
    };
    let given = t.count(&trail(AuditAction::ApprovalGiven, job_id)).await;
    let confirmed = t.count(&trail(AuditAction::RunConfirmed, job_id)).await;
    let declined = t.count(&trail(AuditAction::ApprovalDeclined, id)).await;
    let runs = t
        .count(&format!(
            "SELECT count(*) FROM jobs WHERE preview_id = '{id}'"
        ))
        .await;
    match decision {
        Decision::Approved => {
            let job = job.expect("an approved request has its run");
            assert_eq!(job.approved_by.as_deref(), Some(APPROVER));
            assert!(job.approved_at.is_some());
            assert_eq!(request.decided_by.as_deref(), Some(APPROVER));
            assert_eq!((runs, given, confirmed, declined), (1, 1, 1, 0), "{id}");
        }
        Decision::Declined => {
            assert!(job.is_none(), "a declined request has no run ({id})");
            assert_eq!(request.decided_by.as_deref(), Some(REQUESTER));
            assert_eq!(request.reason.as_deref(), Some("wrong list"));
            assert_eq!((runs, given, confirmed, declined), (0, 0, 0, 1), "{id}");
        }
    }
    decision
}

/// Checks one round's answers agree with the records: the winner said so, the loser was
/// refused and wrote nothing.
fn answers_agree(decision: Decision, created: &Result<()>, declined: bool, id: &str) {
    match decision {
        Decision::Approved => {
            assert!(created.is_ok(), "{id}: {created:?}");
            assert!(!declined, "{id}: a decline after the run was accepted");
        }
        Decision::Declined => {
            assert!(declined, "{id}");
            assert!(
                matches!(created, Err(StorageError::ApprovalNotAwaiting(p)) if p.as_str() == id),
                "{id}: {created:?}"
            );
        }
    }
}

/// A decline and an approver's run creation, started together from a barrier 50 times, each
/// round shifting one side by a few scheduler turns; plus one round in each fixed order, so
/// both outcomes are seen. Exactly one wins every round.
async fn a_decline_and_an_approval_race_and_exactly_one_wins(backend: Backend) {
    let t = Arc::new(TestDb::new(backend, now()).await);
    let (mut approved, mut declined_rounds) = (0, 0);
    for round in 0..ROUNDS + 2 {
        let (id, job_id) = (format!("p-{round}"), format!("job-{round}"));
        awaiting_and_claimed(t.storage(), &id).await;
        let at = now() + Hours::minutes(1);
        let (created, declined) = match round {
            // Fixed orders: the decline first, then the approval first.
            0 => {
                let declined = decline(t.storage(), &id, at).await;
                (
                    t.storage()
                        .create_job(&approved_run(&job_id, &id, at))
                        .await,
                    declined,
                )
            }
            1 => {
                let created = t
                    .storage()
                    .create_job(&approved_run(&job_id, &id, at))
                    .await;
                (created, decline(t.storage(), &id, at).await)
            }
            _ => {
                let barrier = Arc::new(Barrier::new(2));
                let (shift_approval, shift_decline) = (round % 3, (round / 3) % 3);
                let approve = {
                    let (t, barrier, job) =
                        (t.clone(), barrier.clone(), approved_run(&job_id, &id, at));
                    tokio::spawn(async move {
                        barrier.wait().await;
                        for _ in 0..shift_approval {
                            tokio::task::yield_now().await;
                        }
                        t.storage().create_job(&job).await
                    })
                };
                let withdraw = {
                    let (t, barrier, id) = (t.clone(), barrier.clone(), id.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        for _ in 0..shift_decline {
                            tokio::task::yield_now().await;
                        }
                        decline(t.storage(), &id, at).await
                    })
                };
                let (created, declined) = tokio::join!(approve, withdraw);
                (created.unwrap(), declined.unwrap())
            }
        };
        let decision = winner(&t, &id, &job_id).await;
        answers_agree(decision, &created, declined, &id);
        match decision {
            Decision::Approved => approved += 1,
            Decision::Declined => declined_rounds += 1,
        }
    }
    assert!(approved >= 1 && declined_rounds >= 1);
    assert_eq!(approved + declined_rounds, ROUNDS + 2);
    // Every entry of the races is on one unbroken chain.
    let chain = t.storage().verify_audit().await.unwrap();
    assert_eq!(chain.broken, None);
    // Each round wrote its request's entry, then two entries when approved (confirmation,
    // approval), one when declined.
    assert_eq!(chain.entries, (3 * approved + 2 * declined_rounds) as u64);
}

/// A request that expired while the approver confirmed gets no run, no trail entry and no
/// approval; one still awaiting gets its run, which names its approver from its creation.
async fn an_approval_turns_into_a_run_only_while_the_request_awaits(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    awaiting_and_claimed(s, "late").await;
    let too_late = now() + Hours::hours(24);
    let refused = s
        .create_job(&approved_run("job-late", "late", too_late))
        .await;
    assert!(
        matches!(refused, Err(StorageError::ApprovalNotAwaiting(_))),
        "{refused:?}"
    );
    assert_eq!(t.count("SELECT count(*) FROM jobs").await, 0);
    assert_eq!(t.count("SELECT count(*) FROM job_items").await, 0);
    // Only the request's own entry: none for the refused run.
    assert_eq!(
        t.count("SELECT count(*) FROM audit_entries WHERE action <> 'approval_requested'")
            .await,
        0
    );
    let request = request_of(s, "late").await;
    assert_eq!(request.decision, None);

    awaiting_and_claimed(s, "on-time").await;
    let at = now() + Hours::hours(23);
    s.create_job(&approved_run("job-on-time", "on-time", at))
        .await
        .unwrap();
    let job = job_of(s, "job-on-time").await;
    assert_eq!(job.created_by, REQUESTER);
    assert_eq!(job.approved_by.as_deref(), Some(APPROVER));
    assert_eq!(job.approved_at, Some(at));
    let listed = s.list_jobs(TEAM, 10).await.unwrap();
    assert_eq!(listed[0].approved_by.as_deref(), Some(APPROVER));
    // Approved once: the same request cannot turn into a second run, nor be declined now.
    let request = request_of(s, "on-time").await;
    assert_eq!(request.decision, Some(Decision::Approved));
    assert_eq!(request.decided_at, Some(at));
    assert!(!decline(s, "on-time", at).await);
    s.release_preview(TEAM, &PreviewId::new("on-time"))
        .await
        .unwrap();
    let again = s
        .create_job(&approved_run("job-again", "on-time", at))
        .await;
    assert!(again.is_err(), "{again:?}");
    assert_eq!(t.count("SELECT count(*) FROM jobs").await, 1);
}

/// A run started from a preview whose request is still undecided (started before approvals
/// were written with their run, or after the team stopped needing them) cannot be declined.
async fn a_request_whose_preview_has_a_run_is_never_declined(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    awaiting_and_claimed(s, "ran").await;
    let mut job = approved_run("job-ran", "ran", now());
    job.approval = None;
    s.create_job(&job).await.unwrap();
    assert!(!decline(s, "ran", now()).await);
    let request = request_of(s, "ran").await;
    assert_eq!(request.decision, None);
    assert_eq!(
        t.count("SELECT count(*) FROM audit_entries WHERE action = 'approval_declined'")
            .await,
        0
    );
    let job = job_of(s, "job-ran").await;
    assert_eq!(job.approved_by, None);
}

fn request(preview: &str) -> ApprovalRecord {
    ApprovalRecord {
        preview_id: PreviewId::new(preview),
        requested_by: REQUESTER.to_string(),
        requester_email: "ada@x.io".to_string(),
        requested_at: now(),
        expires_at: now() + Hours::hours(24),
        decision: None,
        decided_by: None,
        decided_at: None,
        reason: None,
    }
}

async fn an_approval_is_asked_once_and_decided_once_in_time(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    let team = TeamId::BUILT_IN;
    assert_eq!(
        s.team_settings(team).await.unwrap(),
        TeamSettings::default()
    );
    let strict = TeamSettings {
        approval: ApprovalPolicy::Always,
        approve_deactivations: true,
        days_before_deletion: 90,
        ask_again_at_date: true,
    };
    s.save_team_settings(team, &strict).await.unwrap();
    assert_eq!(s.team_settings(team).await.unwrap(), strict);

    for id in ["p1", "p2"] {
        let record = PreviewRecord {
            created_at: now(),
            ..preview_record(id, Action::Delete)
        };
        s.save_preview(team, &record, &[]).await.unwrap();
    }
    assert!(s
        .request_approval(team, &request("p1"), &asked())
        .await
        .unwrap());
    assert!(
        !s.request_approval(team, &request("p1"), &asked())
            .await
            .unwrap(),
        "once"
    );
    // Another team's preview (or none at all) cannot be asked for.
    assert!(!s
        .request_approval(TeamId::new(2), &request("p2"), &asked())
        .await
        .unwrap());
    assert_eq!(
        s.approval(TeamId::new(2), &PreviewId::new("p1"))
            .await
            .unwrap(),
        None
    );
    // Declined once (approving is creating the run: see approval_tests.rs).
    let p1 = PreviewId::new("p1");
    let entry = |actor: &str| NewAuditEntry {
        actor: actor.to_string(),
        action: model::audit::AuditAction::ApprovalDeclined,
        target: Some("p1".to_string()),
        details: serde_json::json!({ "reason": "no" }),
    };
    assert!(s
        .decline_approval(team, &p1, "Bob <bob@x.io>", "no", now(), &entry("Bob"))
        .await
        .unwrap());
    assert!(!s
        .decline_approval(team, &p1, "Carol", "no", now(), &entry("Carol"))
        .await
        .unwrap());
    let decided = s.approval(team, &p1).await.unwrap().unwrap();
    assert_eq!(decided.decision, Some(Decision::Declined));
    assert_eq!(decided.decided_by.as_deref(), Some("Bob <bob@x.io>"));
    assert_eq!(s.approvers(team).await.unwrap(), vec![]);
    // Too late: nothing is decided.
    assert!(s
        .request_approval(team, &request("p2"), &asked())
        .await
        .unwrap());
    let late = now() + Hours::hours(25);
    assert!(!s
        .decline_approval(
            team,
            &PreviewId::new("p2"),
            "Bob",
            "no",
            late,
            &entry("Bob")
        )
        .await
        .unwrap());
    assert_eq!(
        s.approval(team, &PreviewId::new("p2"))
            .await
            .unwrap()
            .unwrap()
            .decision,
        None
    );
}

on_both_databases!(
    an_approval_is_asked_once_and_decided_once_in_time,
    an_approval_turns_into_a_run_only_while_the_request_awaits,
    a_request_whose_preview_has_a_run_is_never_declined;
    multi_thread: a_decline_and_an_approval_race_and_exactly_one_wins,
);

/// The trail entry a request is written with.
fn asked() -> NewAuditEntry {
    NewAuditEntry {
        actor: REQUESTER.to_string(),
        action: model::audit::AuditAction::ApprovalRequested,
        target: None,
        details: serde_json::json!({}),
    }
}
