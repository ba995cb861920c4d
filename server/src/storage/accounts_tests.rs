//! The account, team, link and sign-in records, on SQLite and on PostgreSQL alike
//! (each test runs on both: `on_sqlite::…`, `on_postgres::…`).

use super::test_db::{on_both_databases, Backend, TestDb};
use super::*;
use chrono::{Duration, TimeZone};
use model::ids::AccountId;
use model::team::Role;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap()
}

fn person(email: &str) -> NewAccount {
    NewAccount {
        email: email.to_string(),
        name: format!("Name of {email}"),
        password_hash: Some(Hidden::new("$argon2id$v=19$fake".to_string())),
        console_owner: false,
        email_proven: false,
    }
}

/// The (team name, role) pairs of an account.
async fn teams_of(s: &dyn Storage, account: AccountId) -> Vec<(String, Role)> {
    s.memberships(account)
        .await
        .unwrap()
        .into_iter()
        .map(|(team, role)| (team.name, role))
        .collect()
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
    let bob = s.create_account(&person("bob@x.io")).await.unwrap();
    s.set_member(
        support.id,
        "bob@x.io",
        Role::Viewer,
        "ada@x.io",
        Some(bob.id),
    )
    .await
    .unwrap();
    // Ada has no account yet: her membership waits for whoever proves her email.
    member(s, support.id, "ada@x.io", Role::Owner, "ada@x.io").await;
    s.set_member(
        TeamId::BUILT_IN,
        "bob@x.io",
        Role::Operator,
        "ada@x.io",
        Some(bob.id),
    )
    .await
    .unwrap();
    let members = s.members(support.id).await.unwrap();
    let order: Vec<(&str, Role, Option<&str>, bool)> = members
        .iter()
        .map(|m| {
            (
                m.email.as_str(),
                m.role,
                m.name.as_deref(),
                m.account.is_some(),
            )
        })
        .collect();
    assert_eq!(
        order,
        vec![
            ("ada@x.io", Role::Owner, None, false),
            ("bob@x.io", Role::Viewer, Some("Name of bob@x.io"), true),
        ]
    );
    // A second set changes the role, not the row, and says what it was.
    let change = s
        .set_member(support.id, "bob@x.io", Role::Operator, "ada@x.io", None)
        .await
        .unwrap();
    assert_eq!(change.before, Some(Role::Viewer));
    assert_eq!(
        teams_of(s, bob.id).await,
        vec![
            ("Default team".to_string(), Role::Operator),
            ("Support".to_string(), Role::Operator)
        ],
        "a role change keeps the membership the account's"
    );
    assert_eq!(
        s.remove_member(support.id, "bob@x.io").await.unwrap(),
        Some(Role::Operator)
    );
    assert_eq!(s.remove_member(support.id, "bob@x.io").await.unwrap(), None);
    assert_eq!(teams_of(s, bob.id).await.len(), 1);
    let names: Vec<String> = s
        .teams()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(names.contains(&"Support".to_string()) && names.contains(&"Default team".to_string()));
}

/// A membership granted to an email is nobody's until an account proves that email: an
/// account with the email that has not proven it (a password account) does not get it.
async fn a_grant_by_email_waits_for_a_proven_account(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    let bravo = s.create_team("Bravo").await.unwrap();
    member(s, bravo.id, "carol@x.io", Role::Operator, "olive@x.io").await;
    assert_eq!(s.waiting_memberships("carol@x.io").await.unwrap(), 1);
    assert_eq!(s.waiting_memberships("dave@x.io").await.unwrap(), 0);
    let carol = s.create_account(&person("carol@x.io")).await.unwrap();
    assert!(!carol.email_proven);
    assert_eq!(teams_of(s, carol.id).await, vec![], "unproven: nothing");
    // Proving the email takes every waiting grant up, once.
    assert_eq!(s.prove_email(carol.id).await.unwrap(), 1);
    assert_eq!(s.prove_email(carol.id).await.unwrap(), 0);
    assert!(s.account(carol.id).await.unwrap().unwrap().email_proven);
    assert_eq!(
        teams_of(s, carol.id).await,
        vec![("Bravo".to_string(), Role::Operator)]
    );
    assert_eq!(s.waiting_memberships("carol@x.io").await.unwrap(), 0);
}

/// Two owners demoting each other (or removing each other) at once: exactly one wins, the
/// team always keeps an owner, and the last owner can neither step down nor be removed.
async fn the_last_owner_stays_however_owners_race(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.db.storage.clone();
    for round in 0..12 {
        let team = s.create_team(&format!("Race {round}")).await.unwrap();
        for email in ["a@x.io", "b@x.io"] {
            member(&*s, team.id, email, Role::Owner, "a@x.io").await;
        }
        let (first, second) = if round % 2 == 0 {
            ("a@x.io", "b@x.io")
        } else {
            ("b@x.io", "a@x.io")
        };
        let demote = |email: &'static str| {
            let s = s.clone();
            tokio::spawn(async move {
                if round % 3 == 0 {
                    s.remove_member(team.id, email).await.map(|_| ())
                } else {
                    s.set_member(team.id, email, Role::Viewer, "x", None)
                        .await
                        .map(|_| ())
                }
            })
        };
        let (one, two) = tokio::join!(demote(first), demote(second));
        let outcomes = [one.unwrap(), two.unwrap()];
        let refused = outcomes
            .iter()
            .filter(|o| matches!(o, Err(StorageError::LastOwner)))
            .count();
        assert_eq!(refused, 1, "round {round}: {outcomes:?}");
        assert!(outcomes
            .iter()
            .all(|o| o.is_ok() || matches!(o, Err(StorageError::LastOwner))));
        let owners = s
            .members(team.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.role == Role::Owner)
            .count();
        assert_eq!(owners, 1, "round {round}");
    }
    let alone = s.create_team("Alone").await.unwrap();
    member(&*s, alone.id, "a@x.io", Role::Owner, "a@x.io").await;
    assert!(matches!(
        s.set_member(alone.id, "a@x.io", Role::Operator, "a@x.io", None)
            .await,
        Err(StorageError::LastOwner)
    ));
    assert!(matches!(
        s.remove_member(alone.id, "a@x.io").await,
        Err(StorageError::LastOwner)
    ));
}

async fn a_sign_on_identity_belongs_to_one_account(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    let ada = s.create_account(&person("ada@x.io")).await.unwrap();
    let bob = s.create_account(&person("bob@x.io")).await.unwrap();
    let issuer = "https://login.x.io";
    assert_eq!(s.sso_account(issuer, "sub-1").await.unwrap(), None);
    assert!(!s.has_sso(ada.id, issuer).await.unwrap());
    s.link_sso(issuer, "sub-1", ada.id).await.unwrap();
    assert_eq!(s.sso_account(issuer, "sub-1").await.unwrap(), Some(ada.id));
    assert!(s.has_sso(ada.id, issuer).await.unwrap());
    assert!(!s.has_sso(ada.id, "https://other.x.io").await.unwrap());
    assert!(matches!(
        s.link_sso(issuer, "sub-1", bob.id).await,
        Err(StorageError::IdentityTaken)
    ));
    // The same subject at another issuer is another identity.
    s.link_sso("https://other.x.io", "sub-1", bob.id)
        .await
        .unwrap();
    assert_eq!(
        s.sso_account("https://other.x.io", "sub-1").await.unwrap(),
        Some(bob.id)
    );
}

/// Makes `email` a member of `team` with `role`, granted by `by` to whoever proves the email.
async fn member(s: &dyn Storage, team: TeamId, email: &str, role: Role, by: &str) {
    s.set_member(team, email, role, by, None).await.unwrap();
}

async fn save_link(s: &dyn Storage, link: &LinkRecord) {
    s.save_link(link).await.unwrap();
}

/// What accepting the invitation `hash` now gives `joiner` (None: it does not open for them).
async fn accept(
    s: &dyn Storage,
    hash: &str,
    joiner: Joiner<'_>,
) -> Option<(AccountRecord, TeamId, Role, LinkRecord)> {
    s.accept_invitation(hash, joiner, now()).await.unwrap()
}

fn link(hash: &str, purpose: LinkPurpose, expires_at: DateTime<Utc>) -> LinkRecord {
    LinkRecord {
        secret_hash: hash.to_string(),
        purpose,
        team_id: Some(TeamId::BUILT_IN),
        role: Some(Role::Operator),
        email: Some("carol@x.io".to_string()),
        created_by: "ada@x.io".to_string(),
        created_at: now(),
        expires_at,
    }
}

async fn a_link_works_once_for_its_purpose_until_it_expires(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    // An invitation opens only while its maker is an owner of its team.
    member(s, TeamId::BUILT_IN, "ada@x.io", Role::Owner, "ada@x.io").await;
    let later = now() + Duration::days(7);
    save_link(s, &link("h1", LinkPurpose::Invitation, later)).await;
    save_link(
        s,
        &link("h2", LinkPurpose::Invitation, now() + Duration::minutes(5)),
    )
    .await;
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

/// An invitation is accepted only by the account its email names, together with the
/// membership in one step; revoked, or made by someone who is no longer an owner, it opens
/// for nobody; it never lowers a role.
async fn an_invitation_opens_only_for_its_email_while_its_maker_owns(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    let team = TeamId::BUILT_IN;
    member(s, team, "ada@x.io", Role::Owner, "ada@x.io").await;
    member(s, team, "zoe@x.io", Role::Owner, "zoe@x.io").await;
    let later = now() + Duration::days(7);
    save_link(s, &link("for-carol", LinkPurpose::Invitation, later)).await;
    // Mallory holds Carol's link: her own account cannot use it, nor can a new one under
    // her email.
    let mallory = s.create_account(&person("mallory@x.io")).await.unwrap();
    assert_eq!(
        accept(s, "for-carol", Joiner::Existing(&mallory)).await,
        None
    );
    assert_eq!(
        accept(s, "for-carol", Joiner::New(&person("eve@x.io"))).await,
        None
    );
    assert_eq!(
        s.account_by_email("eve@x.io").await.unwrap(),
        None,
        "nothing made"
    );
    // Carol, new here: her account and her membership, at once; the link is then used.
    let (carol, joined, role, made) = s
        .accept_invitation("for-carol", Joiner::New(&person("carol@x.io")), now())
        .await
        .unwrap()
        .expect("accepted");
    assert_eq!(
        (joined, role, made.created_by.as_str()),
        (team, Role::Operator, "ada@x.io")
    );
    assert_eq!(
        teams_of(s, carol.id).await,
        vec![("Default team".to_string(), Role::Operator)]
    );
    assert_eq!(
        accept(s, "for-carol", Joiner::Existing(&carol)).await,
        None,
        "once"
    );
    // Never lower: a viewer invitation leaves an owner an owner.
    let mut viewer = link("viewer-for-zoe", LinkPurpose::Invitation, later);
    viewer.role = Some(Role::Viewer);
    viewer.email = Some("zoe@x.io".to_string());
    s.save_link(&viewer).await.unwrap();
    let zoe = s.create_account(&person("zoe@x.io")).await.unwrap();
    let (_, _, role, _) = s
        .accept_invitation("viewer-for-zoe", Joiner::Existing(&zoe), now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(role, Role::Owner);
    // Listed while open; revoked, it opens for nobody.
    let mut second = link("second", LinkPurpose::Invitation, later);
    second.email = Some("dave@x.io".to_string());
    s.save_link(&second).await.unwrap();
    let open: Vec<String> = s
        .open_invitations(team, now())
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.secret_hash)
        .collect();
    assert_eq!(open, vec!["second".to_string()]);
    assert!(s.revoke_invitation(team, "second", now()).await.unwrap());
    assert!(!s.revoke_invitation(team, "second", now()).await.unwrap());
    assert!(s
        .open_link("second", LinkPurpose::Invitation, now())
        .await
        .unwrap()
        .is_none());
    assert!(s.open_invitations(team, now()).await.unwrap().is_empty());
    // Another team cannot revoke this team's invitation.
    let mut third = link("third", LinkPurpose::Invitation, later);
    third.email = Some("dave@x.io".to_string());
    s.save_link(&third).await.unwrap();
    assert!(!s
        .revoke_invitation(TeamId::new(2), "third", now())
        .await
        .unwrap());
    // Its maker demoted: voided at once (and it would be refused at use anyway).
    member(s, team, "ada@x.io", Role::Operator, "zoe@x.io").await;
    assert!(s.open_invitations(team, now()).await.unwrap().is_empty());
    let dave = s.create_account(&person("dave@x.io")).await.unwrap();
    assert_eq!(accept(s, "third", Joiner::Existing(&dave)).await, None);
    // Made back an owner, the maker's old links stay void.
    member(s, team, "ada@x.io", Role::Owner, "zoe@x.io").await;
    assert!(s
        .open_link("third", LinkPurpose::Invitation, now())
        .await
        .unwrap()
        .is_none());
}

/// A maker who stops being an owner by a path that voids nothing (a row written behind the
/// console's back) is still checked when the invitation is used.
async fn an_invitation_is_checked_against_its_maker_at_use(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    let team = TeamId::BUILT_IN;
    member(s, team, "ada@x.io", Role::Owner, "ada@x.io").await;
    save_link(
        s,
        &link("h", LinkPurpose::Invitation, now() + Duration::days(1)),
    )
    .await;
    t.execute("UPDATE team_members SET role = 'viewer' WHERE email = 'ada@x.io'")
        .await;
    assert!(s
        .open_link("h", LinkPurpose::Invitation, now())
        .await
        .unwrap()
        .is_none());
    let carol = s.create_account(&person("carol@x.io")).await.unwrap();
    assert_eq!(accept(s, "h", Joiner::Existing(&carol)).await, None);
}

async fn sign_in_attempts_are_reserved_and_counted_in_their_window(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.storage();
    let subjects = [
        "account:ada@x.io".to_string(),
        "address:10.0.0.9".to_string(),
    ];
    let window = Duration::minutes(15);
    let mut seen = Vec::new();
    for (i, minute) in [0, 5, 20].into_iter().enumerate() {
        let at = now() + Duration::minutes(minute);
        seen.push(
            s.reserve_sign_in(&subjects, &format!("attempt-{i}"), at, at - window)
                .await
                .unwrap(),
        );
    }
    // Each count is from before the attempt; the one at minute 0 is forgotten by minute 20.
    assert_eq!(seen, vec![vec![0, 0], vec![1, 1], vec![1, 1]]);
    let at = now() + Duration::minutes(20);
    assert_eq!(
        s.sign_in_failures("account:ada@x.io", at - window)
            .await
            .unwrap(),
        2
    );
    // A success takes back its own reservation only.
    s.release_sign_in("attempt-2").await.unwrap();
    assert_eq!(
        s.sign_in_failures("address:10.0.0.9", now()).await.unwrap(),
        1
    );
    s.clear_sign_in_failures("account:ada@x.io").await.unwrap();
    assert_eq!(
        s.sign_in_failures("account:ada@x.io", now()).await.unwrap(),
        0
    );
    assert_eq!(
        s.sign_in_failures("address:10.0.0.9", now()).await.unwrap(),
        1
    );
    // The hourly sweep: nothing of the window is forgotten, then everything older is, with the
    // subjects that have no failure left.
    assert_eq!(t.count("SELECT COUNT(*) FROM sign_in_subjects").await, 2);
    assert_eq!(s.forget_sign_in_subjects(at - window).await.unwrap(), 1);
    assert_eq!(t.count("SELECT COUNT(*) FROM sign_in_subjects").await, 1);
    assert_eq!(
        s.forget_sign_in_subjects(at + window).await.unwrap(),
        1,
        "the address's last failure is forgotten, then its subject"
    );
    assert_eq!(t.count("SELECT COUNT(*) FROM sign_in_subjects").await, 0);
}

/// Sixty attempts for one account at once: each is counted before the next is, so exactly
/// five see fewer than five failures before them (the rest are refused by the service).
async fn simultaneous_attempts_each_see_the_ones_before(backend: Backend) {
    let t = TestDb::new(backend, now()).await;
    let s = t.db.storage.clone();
    let attempts = (0..60).map(|i| {
        let s = s.clone();
        tokio::spawn(async move {
            let subjects = [
                "account:ada@x.io".to_string(),
                format!("address:10.0.0.{i}"),
            ];
            s.reserve_sign_in(
                &subjects,
                &format!("a{i}"),
                now(),
                now() - Duration::minutes(15),
            )
            .await
            .unwrap()[0]
        })
    });
    let mut before: Vec<u32> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.expect("attempt"))
        .collect();
    before.sort_unstable();
    assert_eq!(before, (0..60).collect::<Vec<u32>>());
}

on_both_databases!(
    accounts_are_unique_and_sessions_end_by_epoch,
    teams_list_their_members_owners_first,
    a_link_works_once_for_its_purpose_until_it_expires,
    a_grant_by_email_waits_for_a_proven_account,
    a_sign_on_identity_belongs_to_one_account,
    an_invitation_opens_only_for_its_email_while_its_maker_owns,
    an_invitation_is_checked_against_its_maker_at_use,
    sign_in_attempts_are_reserved_and_counted_in_their_window;
    multi_thread: the_last_owner_stays_however_owners_race,
    simultaneous_attempts_each_see_the_ones_before,
);
