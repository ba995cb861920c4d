//! Who a notification emails, on both databases: the members each event concerns, signed up
//! and not opted out; nobody outside the team; nobody at all while the console has no mail
//! server.

use super::outbox_tests::{claim, entry, request_of};
use super::test_db::{on_both_databases, Backend, TestDb};
use super::tests::{confirmed_preview, new_job, now, run};
use super::*;
use model::audit::AuditAction;
use model::team::Role;
use serde_json::json;

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
    let asked = by(
        "Carol <carol@x.io>",
        AuditAction::ApprovalRequested,
        "p-1",
        json!({}),
    );
    let request = request_of("p-1", "Carol <carol@x.io>");
    assert!(s.request_approval(team, &request, &asked).await.unwrap());
    // The other operators and owners: not Carol who asked, not the viewer, not Pat (no
    // account yet, so nobody has proven that address here).
    assert_eq!(
        emailed(s, "asked").await,
        pairs("approval_requested", &["olive", "otto"])
    );
    // The run Carol asked for, approved by Olive.
    let mut job = new_job("job-1", team, "p-1", vec![run("a1")]);
    job.created_by = "Carol <carol@x.io>".into();
    job.approval = Some(RunApproval {
        by: "Olive <olive@x.io>".into(),
        at: now(),
    });
    job.audit = Vec::new();
    s.create_job(&job).await.unwrap();
    let olive = "Olive <olive@x.io>";
    let vera = "Vera <vera@x.io>";
    let mallory = json!({"invited_by": "Mallory <mallory@evil.io>"});
    let steps = [
        (
            by(olive, AuditAction::ApprovalDeclined, "p-1", json!({})),
            pairs("approval_declined", &["carol"]),
        ),
        (
            by(
                olive,
                AuditAction::ApprovalGiven,
                "job-1",
                json!({"preview": "p-1"}),
            ),
            pairs("approval_given", &["carol"]),
        ),
        (
            by("Offboard", AuditAction::RunEnded, "job-1", json!({})),
            pairs("run_ended", &["carol", "olive"]),
        ),
        (
            by(
                vera,
                AuditAction::InvitationAccepted,
                "",
                json!({"invited_by": olive}),
            ),
            pairs("invitation_accepted", &["olive"]),
        ),
        // Someone named in an entry who is not a member of the team is never emailed.
        (
            by(vera, AuditAction::InvitationAccepted, "", mallory),
            vec![],
        ),
        // The undo window's reminder, by Offboard: every operator and owner.
        (
            by(
                "Offboard",
                AuditAction::DeletionReminder,
                "job-1",
                json!({}),
            ),
            pairs("deletion_reminder", &["carol", "olive", "otto"]),
        ),
        // Olive cancels a deletion: the other operators hear of it, not she.
        (
            by(olive, AuditAction::DeletionCancelled, "job-1", json!({})),
            pairs("deletion_cancelled", &["carol", "otto"]),
        ),
        // A sign-in notifies nobody.
        (entry(AuditAction::SignIn), vec![]),
    ];
    for (step, (event, want)) in steps.into_iter().enumerate() {
        s.append_audit(team, &event).await.unwrap();
        assert_eq!(emailed(s, &step.to_string()).await, want, "{event:?}");
    }
    // A test message is the webhook's, never an email.
    s.queue_test_message(team, "Olive").await.unwrap();
    assert_eq!(emailed(s, "test").await, vec![]);
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
        json!({}),
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
