//! Who a notification emails, on both databases: the members each event concerns, signed up
//! and not opted out; nobody outside the team; nobody at all while the console has no mail
//! server.

use super::outbox_tests::{claim, entry};
use super::test_db::{on_both_databases, Backend, TestDb};
use super::tests::{confirmed_preview, new_job, now, run};
use super::*;
use chrono::Duration;
use model::audit::AuditAction;
use model::ids::PreviewId;
use model::team::Role;

#[test]
fn the_email_in_a_name_is_read_from_its_last_brackets() {
    let cases = [
        ("Carol <carol@x.io>", Some("carol@x.io")),
        ("  Carol Q. <Carol@X.io>  ", Some("carol@x.io")),
        ("olive@x.io", Some("olive@x.io")),
        // A name that looks like an address cannot point mail elsewhere: the last one counts.
        ("Eve <olive@x.io> <eve@x.io>", Some("eve@x.io")),
        ("Console admin", None),
        ("", None),
        ("Carol <>", None),
        ("Carol <carol@>", None),
        ("Carol <@x.io>", None),
        ("a b@x.io", None),
        ("Carol <carol@x.io", None),
    ];
    for (name, want) in cases {
        assert_eq!(email_in(name).as_deref(), want, "{name:?}");
    }
}

/// A team with Carol and Otto (operators), Olive (owner), Vera (viewer), all signed up, and
/// Pat (operator) granted by email who never signed in; email on.
async fn team_of_five(t: &TestDb) -> TeamId {
    let s = t.storage();
    let team = TeamId::BUILT_IN;
    for (name, role, signed_up) in [
        ("carol", Role::Operator, true),
        ("otto", Role::Operator, true),
        ("olive", Role::Owner, true),
        ("vera", Role::Viewer, true),
        ("pat", Role::Operator, false),
    ] {
        let email = format!("{name}@x.io");
        let account = if signed_up {
            let made = s
                .create_account(&NewAccount {
                    email: email.clone(),
                    name: name.to_string(),
                    password_hash: None,
                    console_owner: false,
                    email_proven: true,
                })
                .await
                .unwrap();
            Some(made.id)
        } else {
            None
        };
        s.set_member(team, &email, role, "olive@x.io", account)
            .await
            .unwrap();
    }
    s.email_people(true);
    team
}

/// The emails queued since the last call: (event, address), sorted.
async fn emailed(s: &dyn Storage, holder: &str) -> Vec<(String, String)> {
    let mut got: Vec<(String, String)> = claim(s, holder, now())
        .await
        .into_iter()
        .filter(|d| d.channel == "email")
        .map(|d| (d.event, d.address))
        .collect();
    got.sort();
    got
}

fn pairs(event: &str, to: &[&str]) -> Vec<(String, String)> {
    to.iter()
        .map(|a| (event.to_string(), format!("{a}@x.io")))
        .collect()
}

fn by(actor: &str, action: AuditAction, target: &str, details: serde_json::Value) -> NewAuditEntry {
    NewAuditEntry {
        actor: actor.to_string(),
        action,
        target: Some(target.to_string()),
        details,
    }
}

async fn each_event_emails_the_members_it_concerns(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    let team = team_of_five(&t).await;
    confirmed_preview(s, team, "p-1").await;
    let request = ApprovalRecord {
        preview_id: PreviewId::new("p-1"),
        requested_by: "Carol <carol@x.io>".into(),
        requester_email: "carol@x.io".into(),
        requested_at: now(),
        expires_at: now() + Duration::hours(24),
        decision: None,
        decided_by: None,
        decided_at: None,
        reason: None,
    };
    let asked = by(
        "Carol <carol@x.io>",
        AuditAction::ApprovalRequested,
        "p-1",
        serde_json::json!({}),
    );
    assert!(s.request_approval(team, &request, &asked).await.unwrap());
    // The other operators and owners: not Carol who asked, not the viewer, not Pat (no
    // account yet, so nobody has proven that address here).
    assert_eq!(
        emailed(s, "1").await,
        pairs("approval_requested", &["olive", "otto"])
    );

    let declined = by(
        "Olive <olive@x.io>",
        AuditAction::ApprovalDeclined,
        "p-1",
        serde_json::json!({"reason": "no"}),
    );
    s.append_audit(team, &declined).await.unwrap();
    assert_eq!(
        emailed(s, "2").await,
        pairs("approval_declined", &["carol"])
    );

    let given = by(
        "Olive <olive@x.io>",
        AuditAction::ApprovalGiven,
        "job-1",
        serde_json::json!({"preview": "p-1"}),
    );
    s.append_audit(team, &given).await.unwrap();
    assert_eq!(emailed(s, "3").await, pairs("approval_given", &["carol"]));

    let mut job = new_job("job-1", team, "p-1", vec![run("a1")]);
    job.created_by = "Carol <carol@x.io>".into();
    job.approval = Some(RunApproval {
        by: "Olive <olive@x.io>".into(),
        at: now(),
    });
    job.audit = Vec::new();
    s.create_job(&job).await.unwrap();
    let ended = by(
        "Offboard",
        AuditAction::RunEnded,
        "job-1",
        serde_json::json!({"state": "finished"}),
    );
    s.append_audit(team, &ended).await.unwrap();
    assert_eq!(
        emailed(s, "4").await,
        pairs("run_ended", &["carol", "olive"])
    );

    let joined = by(
        "Vera <vera@x.io>",
        AuditAction::InvitationAccepted,
        "",
        serde_json::json!({"invited_by": "Olive <olive@x.io>"}),
    );
    s.append_audit(team, &joined).await.unwrap();
    assert_eq!(
        emailed(s, "5").await,
        pairs("invitation_accepted", &["olive"])
    );

    // Someone named in an entry who is not a member of the team is never emailed.
    let outsider = by(
        "Vera <vera@x.io>",
        AuditAction::InvitationAccepted,
        "",
        serde_json::json!({"invited_by": "Mallory <mallory@evil.io>"}),
    );
    s.append_audit(team, &outsider).await.unwrap();
    assert_eq!(emailed(s, "6").await, vec![]);
    // Events that notify nobody by email stay out (a sign-in; a test message is the webhook's).
    s.append_audit(team, &entry(AuditAction::SignIn))
        .await
        .unwrap();
    s.queue_test_message(team, "Olive").await.unwrap();
    assert_eq!(emailed(s, "7").await, vec![]);
}

async fn a_person_who_opts_out_is_not_emailed_and_email_off_emails_nobody(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    let team = team_of_five(&t).await;
    let otto = s.account_by_email("otto@x.io").await.unwrap().unwrap().id;
    assert_eq!(s.email_opt_outs(otto).await.unwrap(), Vec::<String>::new());
    s.set_email_opt_outs(otto, &["approval_requested".into(), "run_ended".into()])
        .await
        .unwrap();
    assert_eq!(
        s.email_opt_outs(otto).await.unwrap(),
        vec!["approval_requested".to_string(), "run_ended".to_string()]
    );
    let asked = by(
        "Carol <carol@x.io>",
        AuditAction::ApprovalRequested,
        "p-9",
        serde_json::json!({}),
    );
    s.append_audit(team, &asked).await.unwrap();
    assert_eq!(
        emailed(s, "1").await,
        pairs("approval_requested", &["olive"])
    );
    // Saving again replaces the choices: Otto hears of requests again.
    s.set_email_opt_outs(otto, &["run_ended".into()])
        .await
        .unwrap();
    s.append_audit(team, &asked).await.unwrap();
    assert_eq!(
        emailed(s, "2").await,
        pairs("approval_requested", &["olive", "otto"])
    );
    // Without a mail server nothing is queued by email (and with no webhook, nothing at all).
    s.email_people(false);
    s.append_audit(team, &asked).await.unwrap();
    assert_eq!(emailed(s, "3").await, vec![]);
    assert_eq!(t.count("SELECT COUNT(*) FROM notifications").await, 2);
}

on_both_databases!(
    each_event_emails_the_members_it_concerns,
    a_person_who_opts_out_is_not_emailed_and_email_off_emails_nobody
);
