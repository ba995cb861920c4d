//! The notifications outbox on both databases: a notification exists exactly when its event's
//! trail entry does; a delivery is held by one process at a time and its outcome is recorded
//! only by its holder; retries, giving up, and a removed webhook.

use super::test_db::{on_both_databases, Backend, TestDb};
use super::tests::{confirmed_preview, now};
use super::*;
use chrono::Duration;
use model::audit::AuditAction;
use model::ids::PreviewId;
use std::collections::HashSet;
use std::sync::Arc;

pub(super) fn entry(action: AuditAction) -> NewAuditEntry {
    NewAuditEntry {
        actor: "Carol <carol@x.io>".into(),
        action,
        target: Some("p-1".into()),
        details: serde_json::json!({"users": 2}),
    }
}

fn webhook(url: &str) -> StoredWebhook {
    StoredWebhook {
        url: url.into(),
        secret_salt: "salt".into(),
        saved_by: "Olive".into(),
        saved_at: now(),
    }
}

async fn with_webhook(t: &TestDb, team: TeamId) {
    t.storage()
        .save_webhook(
            team,
            &webhook("https://hooks.example.com/a"),
            &entry(AuditAction::TeamSettingsChanged),
        )
        .await
        .unwrap();
}

/// A request for approval of preview `preview` by `by` (carol@x.io), waiting for a day.
pub(super) fn request_of(preview: &str, by: &str) -> ApprovalRecord {
    ApprovalRecord {
        preview_id: PreviewId::new(preview),
        requested_by: by.into(),
        requester_email: "carol@x.io".into(),
        requested_at: now(),
        expires_at: now() + Duration::hours(24),
        decision: None,
        decided_by: None,
        decided_at: None,
        reason: None,
    }
}

pub(super) async fn claim(
    s: &dyn Storage,
    holder: &str,
    at: chrono::DateTime<Utc>,
) -> Vec<DueDelivery> {
    claim_at_most(s, holder, at, 10).await
}

async fn claim_at_most(
    s: &dyn Storage,
    holder: &str,
    at: chrono::DateTime<Utc>,
    limit: u32,
) -> Vec<DueDelivery> {
    let until = at + Duration::seconds(45);
    s.claim_deliveries(&DeliveryClaim {
        holder,
        now: at,
        until,
        limit,
    })
    .await
    .unwrap()
}

async fn a_notifying_entry_queues_one_delivery_per_receiver(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    let team = TeamId::BUILT_IN;
    // No webhook: nothing is queued, whatever happens.
    s.append_audit(team, &entry(AuditAction::RunEnded))
        .await
        .unwrap();
    assert_eq!(
        t.count("SELECT COUNT(*) FROM notification_deliveries")
            .await,
        0
    );
    with_webhook(&t, team).await;
    // Saving the webhook is a settings change: it notifies nobody.
    assert_eq!(t.count("SELECT COUNT(*) FROM notifications").await, 0);
    s.append_audit(team, &entry(AuditAction::RunEnded))
        .await
        .unwrap();
    s.append_audit(team, &entry(AuditAction::SignIn))
        .await
        .unwrap();
    let due = claim(s, "a", now()).await;
    assert_eq!(due.len(), 1, "the run's end, not the sign-in");
    let d = &due[0];
    assert_eq!(
        (
            d.event.as_str(),
            d.actor.as_str(),
            d.target.as_str(),
            d.address.as_str(),
            d.attempts
        ),
        (
            "run_ended",
            "Carol <carol@x.io>",
            "p-1",
            "https://hooks.example.com/a",
            0
        )
    );
    assert_eq!(d.details, r#"{"users":2}"#);
    // Another team's webhook hears nothing of this team.
    let other = TeamId::new(2);
    with_webhook(&t, other).await;
    s.append_audit(team, &entry(AuditAction::ApprovalRequested))
        .await
        .unwrap();
    let due = claim(s, "a", now()).await;
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].team_id, team);
    assert!(s.delivery_log(other, 10).await.unwrap().is_empty());
}

async fn a_request_its_entry_and_its_notification_are_one_write(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    let team = TeamId::BUILT_IN;
    with_webhook(&t, team).await;
    confirmed_preview(s, team, "p-1").await;
    let request = request_of("p-1", "Carol");
    // The outbox refuses the write: the request and its trail entry are not kept either.
    t.fail_inserts("no_outbox", "notifications", "1 = 1").await;
    assert!(s
        .request_approval(team, &request, &entry(AuditAction::ApprovalRequested))
        .await
        .is_err());
    assert!(s
        .approval(team, &request.preview_id)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        t.count("SELECT COUNT(*) FROM audit_entries WHERE action = 'approval_requested'")
            .await,
        0
    );
    t.drop_trigger("no_outbox", "notifications").await;
    assert!(s
        .request_approval(team, &request, &entry(AuditAction::ApprovalRequested))
        .await
        .unwrap());
    assert_eq!(claim(s, "a", now()).await.len(), 1);
    // Asked twice: no second entry, no second notification.
    assert!(!s
        .request_approval(team, &request, &entry(AuditAction::ApprovalRequested))
        .await
        .unwrap());
    assert_eq!(t.count("SELECT COUNT(*) FROM notifications").await, 1);
}

/// A database whose built-in team has a webhook and one run's end queued for it.
async fn one_queued(backend: Backend) -> TestDb {
    let t = TestDb::new(backend, now()).await;
    with_webhook(&t, TeamId::BUILT_IN).await;
    t.storage()
        .append_audit(TeamId::BUILT_IN, &entry(AuditAction::RunEnded))
        .await
        .unwrap();
    t
}

async fn a_claim_is_one_holders_until_it_lapses(backend: Backend) {
    let t = one_queued(backend).await;
    let s = t.storage();
    let team = TeamId::BUILT_IN;
    let held = claim(s, "a", now()).await;
    assert_eq!(held.len(), 1);
    assert!(claim(s, "b", now() + Duration::seconds(44))
        .await
        .is_empty());
    // Only the holder records the outcome.
    assert!(!s.delivery_sent(&held[0].id, "b", now()).await.unwrap());
    // "a" was killed: its claim lapses and "b" takes the same delivery, same id.
    let taken = claim(s, "b", now() + Duration::seconds(46)).await;
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].id, held[0].id, "the delivery id is stable");
    assert!(
        !s.delivery_sent(&held[0].id, "a", now()).await.unwrap(),
        "a lost it"
    );
    assert!(s.delivery_sent(&taken[0].id, "b", now()).await.unwrap());
    assert!(
        !s.delivery_sent(&taken[0].id, "b", now()).await.unwrap(),
        "once"
    );
    assert!(
        claim(s, "c", now() + Duration::days(2)).await.is_empty(),
        "sent stays sent"
    );
    let log = s.delivery_log(team, 10).await.unwrap();
    assert_eq!((log[0].state.as_str(), log[0].attempts), ("sent", 1));
}

async fn racing_claims_never_share_a_delivery(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let team = TeamId::BUILT_IN;
    with_webhook(&t, team).await;
    for _ in 0..30 {
        t.storage()
            .append_audit(team, &entry(AuditAction::RunEnded))
            .await
            .unwrap();
    }
    let storage: Arc<dyn Storage> = t.db.storage.clone();
    let claims = (0..4).map(|i| {
        let s = storage.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = claim_at_most(s.as_ref(), &format!("p{i}"), now(), 3).await;
                if got.is_empty() {
                    break mine;
                }
                mine.extend(got.into_iter().map(|d| d.id));
            }
        })
    });
    let mut seen = HashSet::new();
    let mut total = 0;
    for c in claims {
        for id in c.await.unwrap() {
            total += 1;
            assert!(seen.insert(id), "a delivery was claimed twice");
        }
    }
    assert_eq!(total, 30);
}

async fn a_failure_is_tried_again_later_or_given_up(backend: Backend) {
    let t = one_queued(backend).await;
    let s = t.storage();
    let team = TeamId::BUILT_IN;
    let d = claim(s, "a", now()).await.remove(0);
    let retry = FailedAttempt {
        error: "The receiver answered 500 Internal Server Error.".into(),
        retry_at: Some(now() + Duration::seconds(30)),
    };
    assert!(s.delivery_failed(&d.id, "a", &retry).await.unwrap());
    assert!(
        claim(s, "a", now() + Duration::seconds(29))
            .await
            .is_empty(),
        "not yet"
    );
    let again = claim(s, "b", now() + Duration::seconds(30)).await;
    assert_eq!((again.len(), again[0].attempts), (1, 1));
    let give_up = FailedAttempt {
        error: "Could not reach the address.".into(),
        retry_at: None,
    };
    assert!(
        !s.delivery_failed(&d.id, "a", &give_up).await.unwrap(),
        "not a's any more"
    );
    assert!(s.delivery_failed(&d.id, "b", &give_up).await.unwrap());
    assert!(claim(s, "c", now() + Duration::days(3)).await.is_empty());
    let log = s.delivery_log(team, 10).await.unwrap();
    assert_eq!(
        (
            log[0].state.as_str(),
            log[0].attempts,
            log[0].last_error.as_deref()
        ),
        ("given_up", 2, Some("Could not reach the address."))
    );
}

async fn a_removed_or_replaced_webhook_gets_nothing_more(backend: Backend) {
    let t = one_queued(backend).await;
    let s = t.storage();
    let team = TeamId::BUILT_IN;
    s.save_webhook(
        team,
        &webhook("https://other.example.com/b"),
        &entry(AuditAction::TeamSettingsChanged),
    )
    .await
    .unwrap();
    assert!(
        claim(s, "a", now()).await.is_empty(),
        "not sent to the old address"
    );
    assert!(s.queue_test_message(team, "Olive").await.unwrap());
    let test = claim(s, "a", now()).await;
    assert_eq!(
        (test[0].event.as_str(), test[0].address.as_str()),
        (TEST_EVENT, "https://other.example.com/b")
    );
    s.append_audit(team, &entry(AuditAction::RunEnded))
        .await
        .unwrap();
    assert!(s
        .remove_webhook(team, &entry(AuditAction::TeamSettingsChanged))
        .await
        .unwrap());
    assert!(!s
        .remove_webhook(team, &entry(AuditAction::TeamSettingsChanged))
        .await
        .unwrap());
    assert!(claim(s, "b", now() + Duration::minutes(5)).await.is_empty());
    assert!(
        !s.queue_test_message(team, "Olive").await.unwrap(),
        "no webhook"
    );
    assert!(s.webhook(team).await.unwrap().is_none());
    let log = s.delivery_log(team, 10).await.unwrap();
    assert_eq!(log.len(), 3);
    assert!(log
        .iter()
        .filter(|d| d.event == "run_ended")
        .all(|d| d.state == "given_up"
            && d.last_error.as_deref()
                == Some(
                    "Not sent: the webhook address was changed or removed before it went out."
                )));
}

/// The end of a run and its `run_ended` entry (and so its notification) are one write: when
/// the trail refuses the entry, the run has not ended either; a run ends, and is recorded, once.
async fn the_end_of_a_run_and_its_trail_entry_are_one_write(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    super::tests::queued_job(s, "job-1").await;
    let job = super::tests::jid("job-1");
    s.set_job_state(&job, None, JobState::Running, None)
        .await
        .unwrap();
    let ended = |action: AuditAction| AuditQuery {
        action: Some(action),
        from_day: None,
        to_day: None,
        before: None,
        limit: 10,
    };
    t.fail_inserts("no_trail", "audit_entries", "1 = 1").await;
    let refused = s.set_job_state(&job, None, JobState::Finished, None).await;
    assert!(refused.is_err(), "{refused:?}");
    let still = s.job(TeamId::BUILT_IN, &job).await.unwrap().unwrap();
    assert_eq!(
        still.state,
        JobState::Running,
        "not ended without its entry"
    );
    t.drop_trigger("no_trail", "audit_entries").await;
    let why = Some("Stopped by the test".to_string());
    s.set_job_state(&job, None, JobState::Stopped, why)
        .await
        .unwrap();
    let again = s.set_job_state(&job, None, JobState::Finished, None).await;
    assert!(
        matches!(again, Err(StorageError::JobEnded { .. })),
        "{again:?}"
    );
    let entries = s
        .audit_entries(TeamId::BUILT_IN, &ended(AuditAction::RunEnded))
        .await
        .unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].actor, "Offboard");
    assert_eq!(entries[0].target.as_deref(), Some("job-1"));
    let details: serde_json::Value = serde_json::from_str(&entries[0].details).unwrap();
    assert_eq!(
        details,
        // a2 was settled as changed since the preview when the run was written.
        serde_json::json!({"state": "stopped", "reason": "Stopped by the test", "users": 4, "done": 1, "counts": {"ChangedSincePreview": 1}})
    );
}

on_both_databases!(
    the_end_of_a_run_and_its_trail_entry_are_one_write,
    a_notifying_entry_queues_one_delivery_per_receiver,
    a_request_its_entry_and_its_notification_are_one_write,
    a_claim_is_one_holders_until_it_lapses,
    a_failure_is_tried_again_later_or_given_up,
    a_removed_or_replaced_webhook_gets_nothing_more;
    multi_thread: racing_claims_never_share_a_delivery
);
