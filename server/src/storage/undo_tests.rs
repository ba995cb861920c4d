//! The undo window's records on both databases: a window exists exactly when its run does;
//! a user is restored once and only while the window is open; the date is claimed by one
//! process at a time until its claim lapses, and only the holder closes it; reminders are
//! written once each.

use super::test_db::{on_both_databases, Backend, TestDb};
use super::tests::{confirmed_preview, jid, new_job, now, run};
use super::*;
use chrono::Duration;
use model::audit::AuditAction;
use std::collections::HashSet;

const TEAM: TeamId = TeamId::BUILT_IN;

fn entry(action: AuditAction) -> NewAuditEntry {
    NewAuditEntry {
        actor: "Carol <carol@x.io>".into(),
        action,
        target: Some("j-1".into()),
        details: serde_json::json!({"users": 2}),
    }
}

fn due() -> DateTime<Utc> {
    now() + Duration::days(30)
}

/// A run of a1, a2, a3 with its window due at [`due`].
async fn run_with_window(s: &dyn Storage, id: &str) {
    let preview = format!("preview-of-{id}");
    confirmed_preview(s, TEAM, &preview).await;
    let mut job = new_job(id, TEAM, &preview, vec![run("a1"), run("a2"), run("a3")]);
    job.undo = Some(NewUndoWindow {
        delete_on: "2025-07-01".into(),
        due_at: due(),
        confirmed_by: "Carol <carol@x.io>".into(),
        ask_again: false,
        users: ["a1", "a2", "a3"]
            .iter()
            .map(|a| UndoUser {
                account_id: a.to_string(),
                name: format!("User {a}"),
                emails: vec![format!("{a}@example.com"), format!("{a}@old.example")],
            })
            .collect(),
    });
    s.create_job(&job).await.expect("create job with window");
}

fn claim_at<'a>(holder: &'a str, at: DateTime<Utc>) -> UndoClaim<'a> {
    UndoClaim {
        holder,
        now: at,
        until: at + Duration::minutes(10),
        job: None,
    }
}

async fn a_window_opens_with_its_run_and_each_user_is_restored_once(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    run_with_window(s, "j-1").await;
    let window = s.undo_window(TEAM, &jid("j-1")).await.unwrap().unwrap();
    assert_eq!((window.state.as_str(), window.due_at), ("open", due()));
    assert_eq!(
        s.undo_window(TeamId::new(2), &jid("j-1")).await.unwrap(),
        None,
        "another team's"
    );
    let users = s.undo_users(&jid("j-1")).await.unwrap();
    assert_eq!(users.len(), 3);
    assert_eq!(users[0].emails(), vec!["a1@example.com", "a1@old.example"]);
    let (job, restored, cancelled) = (
        jid("j-1"),
        entry(AuditAction::UserRestored),
        entry(AuditAction::DeletionCancelled),
    );
    let restore = |a: &'static str| s.restore_undo_user(TEAM, &job, a, "Olive", now(), &restored);
    assert!(restore("a1").await.unwrap());
    assert!(!restore("a1").await.unwrap(), "once");
    assert!(!restore("zz").await.unwrap(), "not in the window");
    let trail = "SELECT COUNT(*) FROM audit_entries WHERE action = 'user_restored'";
    assert_eq!(t.count(trail).await, 1, "one entry, with the restore");
    let cancel = || s.cancel_undo_window(TEAM, &job, "Olive", now(), &cancelled);
    assert!(cancel().await.unwrap());
    assert!(!cancel().await.unwrap(), "cancelled once");
    assert!(
        !restore("a2").await.unwrap(),
        "closed: nothing more is restored"
    );
    let users = s.undo_users(&jid("j-1")).await.unwrap();
    assert!(users.iter().all(|u| u.restored_at.is_some()));
    assert_eq!(users[1].restored_by.as_deref(), Some("Olive"));
    assert!(
        s.claim_undo(&claim_at("a", due() + Duration::days(1)))
            .await
            .unwrap()
            .is_empty(),
        "a cancelled window is never carried out"
    );
    let notified = "SELECT COUNT(*) FROM notifications WHERE event = 'deletion_cancelled'";
    assert_eq!(t.count(notified).await, 0, "no webhook: nothing queued");
}

async fn a_due_window_is_one_holders_until_its_claim_lapses(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    run_with_window(s, "j-1").await;
    assert!(
        s.claim_undo(&claim_at("a", due() - Duration::seconds(1)))
            .await
            .unwrap()
            .is_empty(),
        "not before the date"
    );
    let held = s.claim_undo(&claim_at("a", due())).await.unwrap();
    assert_eq!(held.len(), 1);
    assert!(s
        .claim_undo(&claim_at("b", due() + Duration::minutes(9)))
        .await
        .unwrap()
        .is_empty());
    assert!(
        !s.restore_undo_user(
            TEAM,
            &jid("j-1"),
            "a1",
            "Olive",
            due(),
            &entry(AuditAction::UserRestored)
        )
        .await
        .unwrap(),
        "no restore while the date is carried out"
    );
    let verdicts = [
        ("a1".to_string(), "deleted"),
        ("a2".to_string(), "restored"),
    ];
    let due_entry = entry(AuditAction::DeletionDue);
    let closing = |holder| UndoClosing {
        job_id: &held[0].job_id,
        holder,
        state: undo_states::DONE,
        verdicts: &verdicts,
        delete_job_id: Some("j-2"),
        preview_id: None,
        at: due(),
        audit: &due_entry,
    };
    assert!(
        !s.close_undo_window(TEAM, &closing("b")).await.unwrap(),
        "only the holder"
    );
    // "a" died: its claim lapses and "b" takes the window.
    let taken = s
        .claim_undo(&claim_at("b", due() + Duration::minutes(11)))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert!(
        !s.close_undo_window(TEAM, &closing("a")).await.unwrap(),
        "a lost it"
    );
    assert!(s.close_undo_window(TEAM, &closing("b")).await.unwrap());
    assert!(
        !s.close_undo_window(TEAM, &closing("b")).await.unwrap(),
        "closed once"
    );
    let window = s.undo_window(TEAM, &jid("j-1")).await.unwrap().unwrap();
    assert_eq!(
        (window.state.as_str(), window.delete_job_id.as_deref()),
        ("done", Some("j-2"))
    );
    let users = s.undo_users(&jid("j-1")).await.unwrap();
    let got: Vec<Option<&str>> = users.iter().map(|u| u.verdict.as_deref()).collect();
    assert_eq!(got, vec![Some("deleted"), Some("restored"), None]);
    assert!(s
        .claim_undo(&claim_at("c", due() + Duration::days(9)))
        .await
        .unwrap()
        .is_empty());
    let trail = "SELECT COUNT(*) FROM audit_entries WHERE action = 'deletion_due'";
    assert_eq!(t.count(trail).await, 1);
}

async fn delete_now_claims_its_window_before_the_date_and_a_release_gives_it_back(
    backend: Backend,
) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    run_with_window(s, "j-1").await;
    run_with_window(s, "j-9").await;
    let only = jid("j-1");
    let early = UndoClaim {
        job: Some(&only),
        ..claim_at("owner", now())
    };
    let held = s.claim_undo(&early).await.unwrap();
    assert_eq!(
        held.iter().map(|w| w.job_id.clone()).collect::<Vec<_>>(),
        vec![only.clone()]
    );
    assert!(s.claim_undo(&early).await.unwrap().is_empty(), "held");
    s.release_undo(&only, "someone else").await.unwrap();
    assert!(
        s.claim_undo(&early).await.unwrap().is_empty(),
        "only the holder releases"
    );
    s.release_undo(&only, "owner").await.unwrap();
    assert_eq!(s.claim_undo(&early).await.unwrap().len(), 1);
}

async fn each_reminder_is_written_once(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    run_with_window(s, "j-1").await;
    let (job, reminder) = (jid("j-1"), entry(AuditAction::DeletionReminder));
    let remind = |days| s.record_undo_reminder(TEAM, &job, days, now(), &reminder);
    assert!(remind(3).await.unwrap());
    assert!(!remind(3).await.unwrap());
    assert!(remind(1).await.unwrap());
    assert!(!remind(3).await.unwrap(), "never back to a further one");
    assert!(!remind(1).await.unwrap());
    let trail = "SELECT COUNT(*) FROM audit_entries WHERE action = 'deletion_reminder'";
    assert_eq!(t.count(trail).await, 2);
    let window = s.undo_window(TEAM, &jid("j-1")).await.unwrap().unwrap();
    assert_eq!(window.reminded_days, 1);
    let listed = s
        .undo_windows_due(TEAM, due() + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert!(s.undo_windows_due(TEAM, due()).await.unwrap().is_empty());
}

async fn racing_processes_never_carry_out_one_date_twice(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    for i in 0..8 {
        run_with_window(t.storage(), &format!("j-{i}")).await;
    }
    let other = t.second_console().await;
    let stores = [t.db.storage.clone(), other.storage.clone()];
    let claims = (0..4).map(|i| {
        let s = stores[i % 2].clone();
        tokio::spawn(async move {
            let holder = format!("p{i}");
            s.claim_undo(&claim_at(&holder, due())).await.unwrap()
        })
    });
    let mut seen = HashSet::new();
    for c in claims {
        for window in c.await.unwrap() {
            assert!(seen.insert(window.job_id), "a window was claimed twice");
        }
    }
    assert_eq!(seen.len(), 8);
}

on_both_databases!(
    a_window_opens_with_its_run_and_each_user_is_restored_once,
    a_due_window_is_one_holders_until_its_claim_lapses,
    delete_now_claims_its_window_before_the_date_and_a_release_gives_it_back,
    each_reminder_is_written_once;
    multi_thread: racing_processes_never_carry_out_one_date_twice
);
