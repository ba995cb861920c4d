//! The account, team, link, sign-in and approval records, on SQLite and on PostgreSQL alike
//! (each test runs on both: `on_sqlite::…`, `on_postgres::…`).

use super::test_db::{on_both_databases, Backend, TestDb};
use super::*;
use app::ids::AccountId;
use app::team::{ApprovalPolicy, Role, TeamSettings};
use chrono::{Duration, TimeZone};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap()
}

fn person(email: &str) -> NewAccount {
    NewAccount {
        email: email.to_string(),
        name: format!("Name of {email}"),
        password_hash: Some(Hidden::new("$argon2id$v=19$fake".to_string())),
        console_owner: false,
    }
}

async fn accounts_are_unique_and_sessions_end_by_epoch(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    assert_eq!(s.account_count().await.unwrap(), 0);
    let ada = s.create_account(&person("ada@x.io")).await.unwrap();
    assert_eq!(ada.session_epoch, 0);
    assert!(!ada.console_owner);
    assert!(matches!(
        s.create_account(&person("ada@x.io")).await,
        Err(StorageError::EmailTaken)
    ));
    assert_eq!(s.account_count().await.unwrap(), 1);
    assert_eq!(
        s.account_by_email("ada@x.io").await.unwrap(),
        Some(ada.clone())
    );
    assert_eq!(s.account_by_email("bob@x.io").await.unwrap(), None);
    assert_eq!(s.account(AccountId::new(999)).await.unwrap(), None);
    // A new password and "sign out everywhere" each move the epoch on.
    s.set_password(ada.id, &Hidden::new("$argon2id$new".into()))
        .await
        .unwrap();
    let changed = s.account(ada.id).await.unwrap().unwrap();
    assert_eq!(changed.session_epoch, 1);
    assert_eq!(
        changed.password_hash.as_ref().unwrap().expose(),
        "$argon2id$new"
    );
    assert_eq!(s.end_sessions(ada.id).await.unwrap(), 2);
    // Debug never prints the hash.
    assert!(!format!("{changed:?}").contains("argon2id$new"));
}

async fn teams_list_their_members_owners_first(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    let support = s.create_team("Support").await.unwrap();
    assert!(
        support.id.get() > 2,
        "numbered after the teams already there"
    );
    s.create_account(&person("bob@x.io")).await.unwrap();
    s.set_member(support.id, "bob@x.io", Role::Viewer, "ada@x.io")
        .await
        .unwrap();
    s.set_member(support.id, "ada@x.io", Role::Owner, "ada@x.io")
        .await
        .unwrap();
    s.set_member(TeamId::BUILT_IN, "bob@x.io", Role::Operator, "ada@x.io")
        .await
        .unwrap();
    let members = s.members(support.id).await.unwrap();
    let order: Vec<(&str, Role, Option<&str>)> = members
        .iter()
        .map(|m| (m.email.as_str(), m.role, m.name.as_deref()))
        .collect();
    assert_eq!(
        order,
        vec![
            ("ada@x.io", Role::Owner, None),
            ("bob@x.io", Role::Viewer, Some("Name of bob@x.io")),
        ]
    );
    // A second set changes the role, not the row.
    s.set_member(support.id, "bob@x.io", Role::Operator, "ada@x.io")
        .await
        .unwrap();
    let bob: Vec<(String, Role)> = s
        .memberships("bob@x.io")
        .await
        .unwrap()
        .into_iter()
        .map(|(team, role)| (team.name, role))
        .collect();
    assert_eq!(
        bob,
        vec![
            ("Default team".to_string(), Role::Operator),
            ("Support".to_string(), Role::Operator)
        ]
    );
    assert!(s.remove_member(support.id, "bob@x.io").await.unwrap());
    assert!(!s.remove_member(support.id, "bob@x.io").await.unwrap());
    assert_eq!(s.memberships("bob@x.io").await.unwrap().len(), 1);
    let names: Vec<String> = s
        .teams()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(names.contains(&"Support".to_string()) && names.contains(&"Default team".to_string()));
}

fn link(hash: &str, purpose: LinkPurpose, expires_at: DateTime<Utc>) -> LinkRecord {
    LinkRecord {
        secret_hash: hash.to_string(),
        purpose,
        team_id: Some(TeamId::BUILT_IN),
        role: Some(Role::Operator),
        email: None,
        created_by: "ada@x.io".to_string(),
        created_at: now(),
        expires_at,
    }
}

async fn a_link_works_once_for_its_purpose_until_it_expires(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    let later = now() + Duration::days(7);
    s.save_link(&link("h1", LinkPurpose::Invitation, later))
        .await
        .unwrap();
    s.save_link(&link(
        "h2",
        LinkPurpose::Invitation,
        now() + Duration::minutes(5),
    ))
    .await
    .unwrap();
    // Another purpose, or too late, opens nothing.
    assert_eq!(
        s.open_link("h1", LinkPurpose::Reset, now()).await.unwrap(),
        None
    );
    let late = now() + Duration::minutes(6);
    assert_eq!(
        s.use_link("h2", LinkPurpose::Invitation, late)
            .await
            .unwrap(),
        None
    );
    let opened = s
        .open_link("h1", LinkPurpose::Invitation, now())
        .await
        .unwrap();
    assert_eq!(opened.as_ref().and_then(|l| l.role), Some(Role::Operator));
    // Opening does not use it; using does, once.
    assert!(s
        .use_link("h1", LinkPurpose::Invitation, now())
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        s.use_link("h1", LinkPurpose::Invitation, now())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.open_link("h1", LinkPurpose::Invitation, now())
            .await
            .unwrap(),
        None
    );
}

async fn failed_sign_ins_are_counted_in_their_window(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    let subjects = [
        "account:ada@x.io".to_string(),
        "address:10.0.0.9".to_string(),
    ];
    let window = Duration::minutes(15);
    for minute in [0, 5, 20] {
        let at = now() + Duration::minutes(minute);
        s.add_sign_in_failure(&subjects, at, at - window)
            .await
            .unwrap();
    }
    let at = now() + Duration::minutes(20);
    assert_eq!(
        s.sign_in_failures("account:ada@x.io", at - window)
            .await
            .unwrap(),
        2
    );
    // The failure at minute 0 was forgotten when the one at minute 20 came (older than 15).
    assert_eq!(
        s.sign_in_failures("address:10.0.0.9", now()).await.unwrap(),
        2
    );
    s.clear_sign_in_failures("account:ada@x.io").await.unwrap();
    assert_eq!(
        s.sign_in_failures("account:ada@x.io", now()).await.unwrap(),
        0
    );
    assert_eq!(
        s.sign_in_failures("address:10.0.0.9", now()).await.unwrap(),
        2
    );
}

fn request(preview: &str) -> ApprovalRecord {
    ApprovalRecord {
        preview_id: PreviewId::new(preview),
        requested_by: "Ada <ada@x.io>".to_string(),
        requester_email: "ada@x.io".to_string(),
        requested_at: now(),
        expires_at: now() + Duration::hours(24),
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
    };
    s.save_team_settings(team, &strict).await.unwrap();
    assert_eq!(s.team_settings(team).await.unwrap(), strict);

    for id in ["p1", "p2"] {
        let record = PreviewRecord {
            id: PreviewId::new(id),
            created_at: now(),
            action: app::model::Action::Delete,
            source_id: "s".to_string(),
            summary_json: "{}".to_string(),
            total_rows: 0,
            phrase: "DELETE 1 USERS".to_string(),
            claimed: false,
            replaced_by: None,
        };
        s.save_preview(team, &record, &[]).await.unwrap();
    }
    assert!(s.request_approval(team, &request("p1")).await.unwrap());
    assert!(
        !s.request_approval(team, &request("p1")).await.unwrap(),
        "once"
    );
    // Another team's preview (or none at all) cannot be asked for.
    assert!(!s
        .request_approval(TeamId::new(2), &request("p2"))
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
        action: app::audit::AuditAction::ApprovalDeclined,
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
    assert!(s.request_approval(team, &request("p2")).await.unwrap());
    let late = now() + Duration::hours(25);
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
    accounts_are_unique_and_sessions_end_by_epoch,
    teams_list_their_members_owners_first,
    a_link_works_once_for_its_purpose_until_it_expires,
    failed_sign_ins_are_counted_in_their_window,
    an_approval_is_asked_once_and_decided_once_in_time,
);
