//! The retention policy's records on both databases: a policy saved and due, each due time
//! claimed by one console of two racing, a clock that jumped weeks ahead firing once, the
//! daily listing keeping only what changed, and the prepared deletions "Waiting for you" lists.

use super::test_db::{on_both_databases, Backend, TestDb};
use super::tests::{confirmed_preview, now, preview_record};
use super::*;
use crate::engine::retention::Schedule;
use chrono::{Duration, NaiveTime, Weekday};
use model::audit::AuditAction;
use model::deletion::Action;

fn policy(next_fire_at: DateTime<Utc>, next_listing_at: DateTime<Utc>) -> RetentionPolicyRecord {
    RetentionPolicyRecord {
        time_zone: "Europe/Berlin".into(),
        enabled: true,
        min_days: 30,
        weekday: 0,
        at_minute: 9 * 60,
        next_fire_at,
        next_listing_at,
        saved_by: "Olive <olive@x.io>".into(),
        saved_at: now(),
    }
}

fn entry(action: AuditAction) -> NewAuditEntry {
    NewAuditEntry {
        actor: "Olive <olive@x.io>".into(),
        action,
        target: None,
        details: serde_json::json!({"min_days": 30}),
    }
}

fn schedule() -> Schedule {
    Schedule {
        zone: chrono_tz::Europe::Berlin,
        weekday: Weekday::Mon,
        at: NaiveTime::from_hms_opt(9, 0, 0).expect("a time"),
    }
}

fn user(id: &str) -> (String, Vec<String>) {
    (id.to_string(), vec![format!("{id}@x.io")])
}

const TEAM: TeamId = TeamId::BUILT_IN;
const SITE: &str = "https://acme.example/api/scim/v2/Users";

async fn a_policy_is_saved_read_and_due_only_when_on(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    assert_eq!(s.retention_policy(TEAM).await.unwrap(), None);
    let saved = policy(now() + Duration::days(3), now());
    s.save_retention_policy(TEAM, &saved, &entry(AuditAction::TeamSettingsChanged))
        .await
        .unwrap();
    assert_eq!(s.retention_policy(TEAM).await.unwrap(), Some(saved.clone()));
    // The listing is due now; the firing in three days.
    let due = s.due_retention(now()).await.unwrap();
    assert_eq!(due, vec![(TEAM, saved.clone())]);
    assert!(s
        .due_retention(now() - Duration::seconds(1))
        .await
        .unwrap()
        .is_empty());
    let off = RetentionPolicyRecord {
        enabled: false,
        ..saved
    };
    s.save_retention_policy(TEAM, &off, &entry(AuditAction::TeamSettingsChanged))
        .await
        .unwrap();
    assert!(s.due_retention(now()).await.unwrap().is_empty());
    let next = now() + Duration::days(1);
    assert!(!s
        .claim_due(TEAM, DueTime::Listing, now(), now(), next)
        .await
        .unwrap());
    let trail = "SELECT COUNT(*) FROM audit_entries WHERE action = 'team_settings_changed'";
    assert_eq!(t.count(trail).await, 2);
}

async fn two_consoles_racing_for_one_due_time_act_once(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let other = t.second_console().await;
    let s = t.storage();
    for round in 0..5 {
        let due = now() + Duration::weeks(round);
        let listing_due = due - Duration::hours(1);
        s.save_retention_policy(
            TEAM,
            &policy(due, listing_due),
            &entry(AuditAction::TeamSettingsChanged),
        )
        .await
        .unwrap();
        let at = due + Duration::minutes(1);
        let next = schedule().next_after(at);
        let (a, b) = tokio::join!(
            s.claim_due(TEAM, DueTime::Firing, due, at, next),
            other
                .storage
                .claim_due(TEAM, DueTime::Firing, due, at, next)
        );
        assert_eq!(
            [a.unwrap(), b.unwrap()].iter().filter(|won| **won).count(),
            1,
            "round {round}: exactly one console fires"
        );
        let next_listing = at + Duration::days(1);
        let (a, b) = tokio::join!(
            s.claim_due(TEAM, DueTime::Listing, listing_due, at, next_listing),
            other
                .storage
                .claim_due(TEAM, DueTime::Listing, listing_due, at, next_listing)
        );
        assert_eq!(
            [a.unwrap(), b.unwrap()].iter().filter(|won| **won).count(),
            1,
            "round {round}: exactly one console lists"
        );
        let stored = s.retention_policy(TEAM).await.unwrap().unwrap();
        assert_eq!(
            (stored.next_fire_at, stored.next_listing_at),
            (next, next_listing)
        );
    }
}

/// The worker's loop, on the console's clock at `at`: each due firing claimed and counted.
async fn fire_what_is_due(s: &dyn Storage, at: DateTime<Utc>) -> usize {
    let mut fired = 0;
    for (team, due) in s.due_retention(at).await.unwrap() {
        if due.next_fire_at <= at
            && s.claim_due(
                team,
                DueTime::Firing,
                due.next_fire_at,
                at,
                schedule().next_after(at),
            )
            .await
            .unwrap()
        {
            fired += 1;
        }
    }
    fired
}

async fn a_clock_jumped_weeks_ahead_fires_once(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    let first = schedule().next_after(now());
    s.save_retention_policy(
        TEAM,
        &policy(first, first),
        &entry(AuditAction::TeamSettingsChanged),
    )
    .await
    .unwrap();
    // Not due before its time, whatever the database's own clock says.
    assert_eq!(fire_what_is_due(s, first - Duration::seconds(1)).await, 0);
    // The console's clock jumps five weeks: five due times passed, one deletion is prepared.
    let jumped = first + Duration::weeks(5) + Duration::hours(2);
    assert_eq!(fire_what_is_due(s, jumped).await, 1);
    assert_eq!(fire_what_is_due(s, jumped).await, 0);
    assert_eq!(fire_what_is_due(s, jumped + Duration::days(1)).await, 0);
    let stored = s.retention_policy(TEAM).await.unwrap().unwrap();
    assert!(stored.next_fire_at > jumped);
    assert_eq!(stored.next_fire_at, schedule().next_after(jumped));
    // A restart (a new pool on the same database) does not fire it again.
    let again = t.second_console().await;
    assert_eq!(fire_what_is_due(again.storage.as_ref(), jumped).await, 0);
    // The next week's due time fires once, as usual.
    assert_eq!(fire_what_is_due(s, stored.next_fire_at).await, 1);
}

async fn a_listing_keeps_only_what_changed(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    let day1 = now();
    let changes = s
        .record_sightings(TEAM, SITE, &[user("a"), user("b")], day1)
        .await
        .unwrap();
    assert_eq!(
        changes,
        SightingChanges {
            first_seen: 2,
            dropped: 0
        }
    );
    // The next day: a is active again, c was deactivated; b keeps its first time.
    let day2 = day1 + Duration::days(1);
    let changes = s
        .record_sightings(TEAM, SITE, &[user("b"), user("c")], day2)
        .await
        .unwrap();
    assert_eq!(
        changes,
        SightingChanges {
            first_seen: 1,
            dropped: 1
        }
    );
    let seen: Vec<(String, Vec<String>, DateTime<Utc>)> = s
        .sightings(TEAM, SITE)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.account_id, r.emails, r.first_seen_at))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("b".into(), vec!["b@x.io".into()], day1),
            ("c".into(), vec!["c@x.io".into()], day2),
        ]
    );
    // Nothing changed: nothing written.
    let same = s
        .record_sightings(
            TEAM,
            SITE,
            &[user("b"), user("c")],
            day2 + Duration::days(1),
        )
        .await
        .unwrap();
    assert_eq!(same, SightingChanges::default());
    // The team connected another site: the old site's rows mean nothing there.
    let other = "https://other.example/api/scim/v2/Users";
    let moved = s
        .record_sightings(TEAM, other, &[user("b")], day2)
        .await
        .unwrap();
    assert_eq!(
        moved,
        SightingChanges {
            first_seen: 1,
            dropped: 2
        }
    );
    assert!(s.sightings(TEAM, SITE).await.unwrap().is_empty());
    assert_eq!(
        t.count("SELECT COUNT(*) FROM deactivated_sightings").await,
        1
    );
}

async fn a_prepared_deletion_waits_until_a_run_starts_from_it(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    s.save_preview(TEAM, &preview_record("p-waits", Action::Delete), &[])
        .await
        .unwrap();
    confirmed_preview(s, TEAM, "p-ran").await;
    for id in ["p-waits", "p-ran"] {
        let prepared = PreparedDeletion {
            preview_id: PreviewId::from(id.to_string()),
            due_at: now(),
            made_at: now(),
            users: 3,
        };
        s.record_prepared_deletion(TEAM, &prepared, &entry(AuditAction::DeletionPrepared))
            .await
            .unwrap();
    }
    let waiting: Vec<String> = s
        .prepared_deletions(TEAM)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.preview_id.to_string())
        .collect();
    assert_eq!(waiting, ["p-waits"]);
    assert!(s
        .prepared_deletions(TeamId::new(2))
        .await
        .unwrap()
        .is_empty());
    let trail = "SELECT COUNT(*) FROM audit_entries WHERE action = 'deletion_prepared'";
    assert_eq!(t.count(trail).await, 2);
}

on_both_databases!(
    a_policy_is_saved_read_and_due_only_when_on,
    a_clock_jumped_weeks_ahead_fires_once,
    a_listing_keeps_only_what_changed,
    a_prepared_deletion_waits_until_a_run_starts_from_it;
    multi_thread: two_consoles_racing_for_one_due_time_act_once,
);
