//! Sign-in, people, teams and roles: who may use the console and what each may do in a team.
//!
//! Decisions (docs/accounts.md says more):
//! - One account per email (lower-cased). Local accounts have an argon2id password; people who
//!   come through single sign-on have none. Single sign-on identities are kept by issuer and
//!   subject, never matched by email alone: a sign-on never lands in a password account, and a
//!   password account takes a sign-on only when the person links them while signed in.
//! - A membership belongs to an account. An owner may also grant one to an email before its
//!   owner has an account: only a sign-in that proves the email (single sign-on with a verified
//!   email) takes it up. An invitation is made for one email and only that account accepts it.
//! - Roles nest: an owner may do all an operator may, an operator all a viewer may. What a
//!   request may do is a [`Permit`] obtained from its [`Member`] (see `permits` below); the
//!   service's team methods take one, so none can be reached without the check.
//! - A session remembers the account and the account's "session epoch"; changing the password
//!   or "sign out everywhere" raises the epoch, which ends every other session at once.
//! - Sign-in attempts are reserved (counted) before the password is checked, per account and
//!   per address over 15 minutes. Past 5 failures an account refuses even the right password
//!   until the window passes; past 20 from one address, each further attempt from there waits
//!   longer before it is checked (a flood is slowed down, nobody is locked out by strangers).
//!   Counting is in the database, so several console processes share it.
//! - Links (setup, invitation, reset) carry 32 random bytes; only their SHA-256 is stored.

use super::audit::Actor;
use super::permits::{self, Need, Own, Permit};
use super::Console;
use crate::storage::{
    AccountRecord, Joiner, LinkPurpose, LinkRecord, MemberRecord, NewAccount, StorageError,
};
use app::audit::AuditAction;
use app::backend::ConsoleError;
use app::ids::{AccountId, TeamId};
use app::team::{
    AccountProblem, InvitationView, MemberView, NewLink, Role, SignedInView, TeamChoice, TeamPage,
    TeamSummary, MIN_PASSWORD_CHARS,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use model::Named;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

/// How long the first owner's setup link works.
pub const SETUP_LINK_HOURS: i64 = 24;
/// How long an invitation works.
pub const INVITATION_DAYS: i64 = 7;
/// How long a password-reset link works.
pub const RESET_LINK_HOURS: i64 = 24;
/// The window failed sign-ins are counted over.
pub const THROTTLE_MINUTES: i64 = 15;
/// Failed sign-ins one account may have in the window.
pub const FAILURES_PER_ACCOUNT: u32 = 5;
/// Failed sign-ins one address may have in the window before its attempts are slowed down
/// (several people may share one address; it is never locked out).
pub const FAILURES_PER_ADDRESS: u32 = 20;
/// How much longer each attempt past the address's allowance waits, and the longest wait.
const ADDRESS_SLOWDOWN_STEP: std::time::Duration = std::time::Duration::from_millis(250);
const ADDRESS_SLOWDOWN_MAX: std::time::Duration = std::time::Duration::from_secs(5);
/// Longest name a person or a team may have.
const MAX_NAME_CHARS: usize = 100;

/// What a session remembers between requests (stored server-side by tower-sessions).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    pub account: AccountId,
    /// The account's session epoch when the session began.
    pub epoch: i64,
    /// For the absolute expiry: a session ends this long after sign-in, however busy.
    pub since: DateTime<Utc>,
    /// The team the console shows (switched on the Account page).
    pub team: Option<TeamId>,
}

/// A signed-in person, as read at the start of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Person {
    pub account: AccountId,
    pub email: String,
    pub name: String,
    pub console_owner: bool,
    pub has_password: bool,
}

impl Person {
    fn of(record: &AccountRecord) -> Person {
        Person {
            account: record.id,
            email: record.email.clone(),
            name: record.name.clone(),
            console_owner: record.console_owner,
            has_password: record.password_hash.is_some(),
        }
    }

    /// How the audit trail and a run's "started by" name them.
    pub fn actor(&self) -> Actor {
        Actor::Person {
            name: self.name.clone(),
            email: self.email.clone(),
        }
    }
}

/// A signed-in person in the team a request acts for, with their role there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub person: Person,
    pub team: TeamId,
    pub team_name: String,
    pub role: Role,
}

impl Member {
    /// The permit for `N`, or a refusal in plain words naming the role needed.
    pub fn permit<N: Need>(&self) -> Result<Permit<N>, ConsoleError> {
        permits::check(self.role, self.team, &self.team_name)
    }
}

/// Who the company's sign-in service says someone is (checked by `crate::sso`).
#[derive(Clone, Copy, Debug)]
pub struct SsoIdentity<'a> {
    /// The issuer, exactly as configured.
    pub issuer: &'a str,
    /// The issuer's stable id for the person.
    pub subject: &'a str,
    /// Verified by the service, in an allowed domain.
    pub email: &'a str,
    pub name: Option<&'a str>,
}

/// Lower-cases and checks an email address: one `@`, something on each side, a dot in the
/// domain, no spaces or angle brackets. Not RFC 5322: enough to catch typing mistakes.
pub fn normalise_email(text: &str) -> Option<String> {
    let email = text.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let plausible = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && email.len() <= 254
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'));
    plausible.then_some(email)
}

/// A person's or a team's name: trimmed, not empty, not too long, no control characters.
pub fn clean_name(text: &str) -> Option<String> {
    let name = text.trim();
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && !name.chars().any(char::is_control);
    ok.then(|| name.to_string())
}

/// A new password's problem, if any: too short, or the two copies differ.
pub fn new_password_problem(password: &str, again: &str) -> Option<AccountProblem> {
    if password != again {
        Some(AccountProblem::PasswordsDiffer)
    } else if password.chars().count() < MIN_PASSWORD_CHARS {
        Some(AccountProblem::WeakPassword)
    } else {
        None
    }
}

/// How long an attempt from an address with `failures` failed sign-ins in the window waits
/// before its password is checked: nothing within the allowance, then a step more for each
/// failure past it, up to a cap. A flood from one address (or from everyone behind one proxy)
/// is slowed down; the right password still gets in.
pub fn address_slowdown(failures: u32) -> Option<std::time::Duration> {
    let past = failures.checked_sub(FAILURES_PER_ADDRESS)?;
    Some(
        ADDRESS_SLOWDOWN_STEP
            .saturating_mul(past.saturating_add(1))
            .min(ADDRESS_SLOWDOWN_MAX),
    )
}

/// A link's secret (32 random bytes, URL-safe) and the hash stored for it.
pub fn new_link_secret() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    let hash = link_hash(&secret);
    (secret, hash)
}

/// What is stored for a link's secret.
pub fn link_hash(secret: &str) -> String {
    let digest = Sha256::digest(secret.trim().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn subject_of_account(email: &str) -> String {
    format!("account:{email}")
}

fn subject_of_address(address: &str) -> String {
    format!("address:{address}")
}

fn storage_failed(e: StorageError) -> ConsoleError {
    tracing::error!(error = %e, "accounts: storage failed");
    ConsoleError::failed("Offboard could not read or save its records; see the server log.")
}

/// What a form about accounts gets back: a fixed problem (shown with its words), or Offboard
/// itself failing.
#[derive(Debug)]
pub enum AccountRefusal {
    Problem(AccountProblem),
    Failed(ConsoleError),
}

impl From<AccountProblem> for AccountRefusal {
    fn from(p: AccountProblem) -> Self {
        AccountRefusal::Problem(p)
    }
}

impl From<StorageError> for AccountRefusal {
    fn from(e: StorageError) -> Self {
        AccountRefusal::Failed(storage_failed(e))
    }
}

impl From<ConsoleError> for AccountRefusal {
    fn from(e: ConsoleError) -> Self {
        AccountRefusal::Failed(e)
    }
}

/// The fields of a form that creates a local account (setup, invitation).
pub struct NewPerson<'a> {
    pub email: &'a str,
    pub name: &'a str,
    pub password: &'a str,
    pub again: &'a str,
}

impl NewPerson<'_> {
    /// The email and name, once every field is right. The password is hashed later, once the
    /// link was found open: a hash costs far more than a look-up, and must not be free to ask.
    fn checked(&self) -> Result<(String, String), AccountRefusal> {
        let email = normalise_email(self.email).ok_or(AccountProblem::EmailInvalid)?;
        let name = clean_name(self.name).ok_or(AccountProblem::NameMissing)?;
        if let Some(problem) = new_password_problem(self.password, self.again) {
            return Err(problem.into());
        }
        Ok((email, name))
    }
}

impl Console {
    /// A new setup link's secret while the console has no account (a new one each start:
    /// the old ones stay valid until they expire); None once someone has an account.
    pub async fn setup_link(&self) -> Result<Option<String>, ConsoleError> {
        if self.storage.account_count().await.map_err(storage_failed)? > 0 {
            return Ok(None);
        }
        let (secret, hash) = new_link_secret();
        let now = self.clock.now();
        self.storage
            .save_link(&LinkRecord {
                secret_hash: hash,
                purpose: LinkPurpose::Setup,
                team_id: None,
                role: None,
                email: None,
                created_by: super::audit::OFFBOARD.to_string(),
                created_at: now,
                expires_at: now + Duration::hours(SETUP_LINK_HOURS),
            })
            .await
            .map_err(storage_failed)?;
        Ok(Some(secret))
    }

    /// True if `secret` opens a link for `purpose` now (to show its form, or an error first).
    pub async fn link_is_open(&self, secret: &str, purpose: LinkPurpose) -> bool {
        matches!(
            self.storage
                .open_link(&link_hash(secret), purpose, self.clock.now())
                .await,
            Ok(Some(_))
        )
    }

    /// What a setup (`setup`), invitation (`invitation`) or reset (`reset`) link is, for its
    /// page: whether it still works, and an invitation's team and role.
    pub async fn link_info(
        &self,
        purpose: &str,
        secret: &str,
        signed_in_as: Option<String>,
    ) -> Result<app::team::LinkInfo, ConsoleError> {
        let purpose = match purpose {
            "setup" => LinkPurpose::Setup,
            "invitation" => LinkPurpose::Invitation,
            "reset" => LinkPurpose::Reset,
            _ => return Err(ConsoleError::not_found("Unknown kind of link.")),
        };
        let (team_name, role, email) = match purpose {
            LinkPurpose::Invitation => match self.invitation(secret).await {
                Some((team, role, email)) => (Some(team), Some(role), Some(email)),
                None => (None, None, None),
            },
            _ => (None, None, None),
        };
        Ok(app::team::LinkInfo {
            valid: self.link_is_open(secret, purpose).await,
            team_name,
            role,
            email,
            signed_in_as,
        })
    }

    /// The team an invitation is for, the role it gives and the email it was made for, to
    /// show on the Join page.
    pub async fn invitation(&self, secret: &str) -> Option<(String, Role, String)> {
        let link = self
            .storage
            .open_link(
                &link_hash(secret),
                LinkPurpose::Invitation,
                self.clock.now(),
            )
            .await
            .ok()??;
        let team = self.storage.team(link.team_id?).await.ok()??;
        Some((team.name, link.role?, link.email?))
    }

    /// Creates the first owner from the setup link: a console owner, and owner of the
    /// built-in team.
    pub async fn complete_setup(
        &self,
        secret: &str,
        form: NewPerson<'_>,
    ) -> Result<Person, AccountRefusal> {
        let (email, name) = form.checked()?;
        // The cheap checks first: a password is hashed only for a link that opens.
        if self.storage.account_count().await? > 0
            || !self.link_is_open(secret, LinkPurpose::Setup).await
        {
            return Err(AccountProblem::LinkInvalid.into());
        }
        let password_hash = self.passwords.hash(form.password).await?;
        if self
            .storage
            .use_link(&link_hash(secret), LinkPurpose::Setup, self.clock.now())
            .await?
            .is_none()
        {
            return Err(AccountProblem::LinkInvalid.into());
        }
        let record = self
            .create_account(&NewAccount {
                email,
                name,
                password_hash: Some(password_hash),
                console_owner: true,
                email_proven: false,
            })
            .await?;
        let person = Person::of(&record);
        self.storage
            .set_member(
                TeamId::BUILT_IN,
                &person.email,
                Role::Owner,
                &person.email,
                Some(person.account),
            )
            .await?;
        self.record_for(
            TeamId::BUILT_IN,
            &person,
            AuditAction::MemberAdded,
            json!({ "email": person.email, "role": "owner", "how": "first owner (setup link)" }),
        )
        .await;
        Ok(person)
    }

    async fn create_account(&self, account: &NewAccount) -> Result<AccountRecord, AccountRefusal> {
        match self.storage.create_account(account).await {
            Err(StorageError::EmailTaken) => Err(AccountProblem::EmailTaken.into()),
            other => Ok(other?),
        }
    }

    /// Signs in with email and password. The attempt is reserved (counted as a failure of the
    /// account and of the address) before the password is checked, so any number sent at once
    /// get no more tries than one after another; a success takes its reservation back. Every
    /// failure says the same (no account probing); past the account's limit even the right
    /// password is refused until the window passes; past the address's allowance each attempt
    /// waits longer first ([`address_slowdown`]).
    pub async fn sign_in_with_password(
        &self,
        email: &str,
        password: &str,
        address: &str,
    ) -> Result<Person, AccountRefusal> {
        let email = normalise_email(email).unwrap_or_else(|| email.trim().to_lowercase());
        let now = self.clock.now();
        let since = now - Duration::minutes(THROTTLE_MINUTES);
        let (by_account, by_address) = (subject_of_account(&email), subject_of_address(address));
        let attempt = uuid::Uuid::new_v4().to_string();
        let counts = self
            .storage
            .reserve_sign_in(&[by_account.clone(), by_address], &attempt, now, since)
            .await?;
        let (account_failures, address_failures) = (
            counts.first().copied().unwrap_or(u32::MAX),
            counts.get(1).copied().unwrap_or(u32::MAX),
        );
        let record = self.storage.account_by_email(&email).await?;
        if account_failures >= FAILURES_PER_ACCOUNT {
            tracing::warn!(address, "a sign-in was throttled");
            if let Some(r) = &record {
                self.record_sign_in(&Person::of(r), AuditAction::SignInFailed, true)
                    .await;
            }
            return Err(AccountProblem::Throttled.into());
        }
        if let Some(wait) = address_slowdown(address_failures) {
            tracing::warn!(
                "sign-ins from {address} are slowed down: {} failed in {THROTTLE_MINUTES} \
                 minutes, {} ms before this one is checked",
                address_failures,
                wait.as_millis()
            );
            tokio::time::sleep(wait).await;
        }
        let hash = record.as_ref().and_then(|r| r.password_hash.clone());
        let matches = self.passwords.matches(password, hash).await;
        let record = match record {
            Some(r) if matches && r.password_hash.is_some() => r,
            known => {
                tracing::warn!(address, "a sign-in failed");
                if let Some(r) = known {
                    self.record_sign_in(&Person::of(&r), AuditAction::SignInFailed, false)
                        .await;
                }
                return Err(AccountProblem::WrongPassword.into());
            }
        };
        self.storage.release_sign_in(&attempt).await?;
        self.storage.clear_sign_in_failures(&by_account).await?;
        let person = Person::of(&record);
        self.record_sign_in(&person, AuditAction::SignIn, false)
            .await;
        Ok(person)
    }

    /// Forgets sign-in failures older than the throttling window, and the subjects (accounts,
    /// addresses) with none left, so strangers' random emails do not pile up (hourly).
    pub async fn forget_old_sign_in_failures(&self) {
        let before = self.clock.now() - Duration::minutes(THROTTLE_MINUTES);
        match self.storage.forget_sign_in_subjects(before).await {
            Ok(0) => {}
            Ok(gone) => tracing::info!(subjects = gone, "forgot old sign-in failures"),
            Err(e) => tracing::warn!(error = %e, "could not forget old sign-in failures"),
        }
    }

    /// Signs in someone their company's sign-in service vouched for (`issuer`, `subject`, a
    /// verified email in an allowed domain). The identity is the issuer and subject:
    /// - known: its account, whatever the email says now;
    /// - new, with someone signed in here (`linking`): tied to that account, if the emails
    ///   agree (the person is signed in to both);
    /// - new, nobody signed in: a new account, but only if a team has granted the email a
    ///   membership (a verified email alone lets nobody in); never an existing account with a
    ///   password, nor one another subject of this issuer holds.
    ///
    /// A sign-on whose email is the account's proves that email: memberships granted to it
    /// are taken up.
    pub async fn sign_in_with_sso(
        &self,
        identity: &SsoIdentity<'_>,
        linking: Option<&Person>,
    ) -> Result<Person, AccountRefusal> {
        let email = normalise_email(identity.email).ok_or(AccountProblem::EmailInvalid)?;
        let known = self
            .storage
            .sso_account(identity.issuer, identity.subject)
            .await?;
        let record = match (known, linking) {
            (Some(id), Some(person)) if id != person.account => {
                return Err(ConsoleError::new(
                    "This sign-in of your company belongs to another account here. Sign out \
                     first to use it.",
                )
                .into())
            }
            (Some(id), _) => self
                .storage
                .account(id)
                .await?
                .ok_or(AccountProblem::NotAllowed)?,
            (None, Some(person)) => {
                if person.email != email {
                    return Err(ConsoleError::new(format!(
                        "You are signed in here as {}, but your company's sign-in says {email}. \
                         Only the same email can be linked.",
                        person.email
                    ))
                    .into());
                }
                self.link_identity(identity, person.account).await?;
                let person = person.clone();
                self.record_everywhere(&person, AuditAction::SignOnLinked, json!({}))
                    .await;
                self.storage
                    .account(person.account)
                    .await?
                    .ok_or(AccountProblem::NotAllowed)?
            }
            (None, None) => self.first_sign_on(identity, &email).await?,
        };
        if record.email == email {
            self.storage.prove_email(record.id).await?;
        }
        let person = Person::of(&record);
        self.record_sign_in(&person, AuditAction::SignIn, false)
            .await;
        Ok(person)
    }

    /// The account a new sign-on identity lands in, when nobody is signed in.
    async fn first_sign_on(
        &self,
        identity: &SsoIdentity<'_>,
        email: &str,
    ) -> Result<AccountRecord, AccountRefusal> {
        match self.storage.account_by_email(email).await? {
            Some(existing) if existing.password_hash.is_some() => {
                Err(AccountProblem::PasswordAccountExists.into())
            }
            // An account made by single sign-on before identities were kept (or through
            // another issuer): it takes this identity, unless this issuer already vouched
            // for it as another subject (the email was given to someone else since).
            Some(existing) => {
                if self.storage.has_sso(existing.id, identity.issuer).await? {
                    return Err(ConsoleError::new(
                        "Another person of your company's sign-in already uses this email here. \
                         Ask a console owner to sort the accounts out.",
                    )
                    .into());
                }
                self.link_identity(identity, existing.id).await?;
                Ok(existing)
            }
            None => {
                if self.storage.waiting_memberships(email).await? == 0 {
                    return Err(AccountProblem::NotAllowed.into());
                }
                let name = identity
                    .name
                    .and_then(clean_name)
                    .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_string());
                let record = self
                    .create_account(&NewAccount {
                        email: email.to_string(),
                        name,
                        password_hash: None,
                        console_owner: false,
                        email_proven: true,
                    })
                    .await?;
                self.link_identity(identity, record.id).await?;
                Ok(record)
            }
        }
    }

    async fn link_identity(
        &self,
        identity: &SsoIdentity<'_>,
        account: AccountId,
    ) -> Result<(), AccountRefusal> {
        match self
            .storage
            .link_sso(identity.issuer, identity.subject, account)
            .await
        {
            Err(StorageError::IdentityTaken) => Err(ConsoleError::new(
                "This sign-in of your company belongs to another account here.",
            )
            .into()),
            other => Ok(other?),
        }
    }

    /// Sign-ins are recorded in the trail of every team the person belongs to (a team's
    /// owners see who came in); a failed sign-in for an unknown email is only logged.
    async fn record_sign_in(&self, person: &Person, action: AuditAction, throttled: bool) {
        let teams = match self.storage.memberships(person.account).await {
            Ok(teams) => teams,
            Err(e) => {
                tracing::error!(error = %e, "could not read memberships to record a sign-in");
                return;
            }
        };
        for (team, _) in teams {
            let details = if throttled {
                json!({ "throttled": true })
            } else {
                json!({})
            };
            self.record_for(team.id, person, action, details).await;
        }
    }

    async fn record_for(
        &self,
        team: TeamId,
        person: &Person,
        action: AuditAction,
        details: serde_json::Value,
    ) {
        super::audit::append_entry(
            self.storage.as_ref(),
            team,
            person.actor().name(None),
            action,
            None,
            details,
        )
        .await
    }

    /// The person a session belongs to, if the session is still valid: the account exists,
    /// its epoch has not moved, and the absolute lifetime has not passed.
    pub async fn person(
        &self,
        session: &SignedIn,
        lifetime: Duration,
    ) -> Result<Option<Person>, ConsoleError> {
        if self.clock.now() - session.since > lifetime {
            return Ok(None);
        }
        let record = self
            .storage
            .account(session.account)
            .await
            .map_err(storage_failed)?;
        Ok(record
            .filter(|r| r.session_epoch == session.epoch)
            .map(|r| Person::of(&r)))
    }

    /// A new session's contents for `person`.
    pub async fn session_for(&self, person: &Person) -> Result<SignedIn, ConsoleError> {
        let record = self
            .storage
            .account(person.account)
            .await
            .map_err(storage_failed)?
            .ok_or_else(|| ConsoleError::not_found("This account does not exist any more."))?;
        Ok(SignedIn {
            account: record.id,
            epoch: record.session_epoch,
            since: self.clock.now(),
            team: None,
        })
    }

    /// The person as a member of `wanted` (when they belong to it), else of their first team;
    /// None when they belong to no team.
    pub async fn member(
        &self,
        person: &Person,
        wanted: Option<TeamId>,
    ) -> Result<Option<Member>, ConsoleError> {
        let teams = self
            .storage
            .memberships(person.account)
            .await
            .map_err(storage_failed)?;
        let chosen = wanted
            .and_then(|w| teams.iter().find(|(t, _)| t.id == w))
            .or_else(|| teams.first());
        Ok(chosen.map(|(team, role)| Member {
            person: person.clone(),
            team: team.id,
            team_name: team.name.clone(),
            role: *role,
        }))
    }

    /// What the header and the Account page show.
    pub async fn signed_in_view(
        &self,
        person: &Person,
        member: Option<&Member>,
    ) -> Result<SignedInView, ConsoleError> {
        let teams = self
            .storage
            .memberships(person.account)
            .await
            .map_err(storage_failed)?;
        Ok(SignedInView {
            email: person.email.clone(),
            name: person.name.clone(),
            console_owner: person.console_owner,
            has_password: person.has_password,
            team: member.map(choice_of),
            teams: teams
                .into_iter()
                .map(|(t, role)| TeamChoice {
                    id: t.id,
                    name: t.name,
                    role,
                })
                .collect(),
        })
    }

    /// Changes the person's own password; every other session of theirs ends.
    pub async fn change_password(
        &self,
        person: &Person,
        current: &str,
        new: &str,
        again: &str,
    ) -> Result<(), AccountRefusal> {
        let record = self
            .storage
            .account(person.account)
            .await?
            .ok_or(AccountProblem::WrongPassword)?;
        if let Some(problem) = new_password_problem(new, again) {
            return Err(problem.into());
        }
        let Some(current_hash) = record.password_hash.clone() else {
            return Err(AccountProblem::WrongPassword.into());
        };
        if !self.passwords.matches(current, Some(current_hash)).await {
            return Err(AccountProblem::WrongPassword.into());
        }
        let hash = self.passwords.hash(new).await?;
        self.storage.set_password(person.account, &hash).await?;
        self.record_everywhere(person, AuditAction::PasswordChanged, json!({}))
            .await;
        Ok(())
    }

    /// Ends every session of the person (this one included).
    pub async fn sign_out_everywhere(&self, person: &Person) -> Result<(), ConsoleError> {
        self.storage
            .end_sessions(person.account)
            .await
            .map_err(storage_failed)?;
        self.record_everywhere(person, AuditAction::SignedOutEverywhere, json!({}))
            .await;
        Ok(())
    }

    async fn record_everywhere(
        &self,
        person: &Person,
        action: AuditAction,
        details: serde_json::Value,
    ) {
        if let Ok(teams) = self.storage.memberships(person.account).await {
            for (team, _) in teams {
                self.record_for(team.id, person, action, details.clone())
                    .await;
            }
        }
    }

    /// A console owner makes a password-reset link for a local account (the only way back in
    /// for someone who forgot their password). Its secret goes into the returned link only.
    pub async fn reset_link(
        &self,
        owner: &Person,
        email: &str,
        base: &str,
    ) -> Result<NewLink, ConsoleError> {
        if !owner.console_owner {
            return Err(ConsoleError::forbidden(
                "Only a console owner can make password-reset links.",
            ));
        }
        let email = normalise_email(email)
            .ok_or_else(|| ConsoleError::new(AccountProblem::EmailInvalid.words()))?;
        let account = self
            .storage
            .account_by_email(&email)
            .await
            .map_err(storage_failed)?
            .filter(|a| a.password_hash.is_some())
            .ok_or_else(|| {
                ConsoleError::not_found(format!(
                    "{email} has no password here (no account, or they sign in through single \
                     sign-on)."
                ))
            })?;
        let link = self
            .new_link(
                LinkPurpose::Reset,
                None,
                None,
                Some(account.email.clone()),
                owner,
                Duration::hours(RESET_LINK_HOURS),
            )
            .await?;
        self.record_everywhere(
            &Person::of(&account),
            AuditAction::PasswordResetLinkMade,
            json!({ "by": owner.actor().name(None) }),
        )
        .await;
        Ok(NewLink {
            what: format!("Password reset for {email}"),
            url: format!("{base}/reset?code={}", link.0),
            expires: super::views::stamp(link.1),
        })
    }

    /// Sets a new password from a reset link; every session of the account ends.
    pub async fn complete_reset(
        &self,
        secret: &str,
        password: &str,
        again: &str,
    ) -> Result<Person, AccountRefusal> {
        if let Some(problem) = new_password_problem(password, again) {
            return Err(problem.into());
        }
        // The cheap check first: a password is hashed only for a link that opens.
        if !self.link_is_open(secret, LinkPurpose::Reset).await {
            return Err(AccountProblem::LinkInvalid.into());
        }
        let hash = self.passwords.hash(password).await?;
        let link = self
            .storage
            .use_link(&link_hash(secret), LinkPurpose::Reset, self.clock.now())
            .await?
            .ok_or(AccountProblem::LinkInvalid)?;
        let email = link.email.ok_or(AccountProblem::LinkInvalid)?;
        let account = self
            .storage
            .account_by_email(&email)
            .await?
            .ok_or(AccountProblem::LinkInvalid)?;
        self.storage.set_password(account.id, &hash).await?;
        let person = Person::of(&account);
        self.record_everywhere(
            &person,
            AuditAction::PasswordChanged,
            json!({ "how": "reset link" }),
        )
        .await;
        Ok(person)
    }

    async fn new_link(
        &self,
        purpose: LinkPurpose,
        team_id: Option<TeamId>,
        role: Option<Role>,
        email: Option<String>,
        by: &Person,
        lasts: Duration,
    ) -> Result<(String, DateTime<Utc>), ConsoleError> {
        let (secret, hash) = new_link_secret();
        let now = self.clock.now();
        let expires_at = now + lasts;
        self.storage
            .save_link(&LinkRecord {
                secret_hash: hash,
                purpose,
                team_id,
                role,
                email,
                created_by: by.email.clone(),
                created_at: now,
                expires_at,
            })
            .await
            .map_err(storage_failed)?;
        Ok((secret, expires_at))
    }

    /// Joins the team of an invitation: as `person` when signed in, else as a new local
    /// account made from the form. An invitation is for one email: only the account with that
    /// email accepts it (a new account gets exactly that email), and only while its maker is
    /// still an owner. It works once; the account gets this team's membership and nothing
    /// else (memberships granted to the email by other teams wait for a proven sign-in).
    pub async fn join(
        &self,
        secret: &str,
        person: Option<&Person>,
        form: Option<NewPerson<'_>>,
    ) -> Result<(Person, TeamId), AccountRefusal> {
        let hash = link_hash(secret);
        let now = self.clock.now();
        // The cheap checks first: the link opens, and names this person.
        let link = self
            .storage
            .open_link(&hash, LinkPurpose::Invitation, now)
            .await?
            .ok_or(AccountProblem::LinkInvalid)?;
        // Invitations made before they named a person open for nobody.
        let invited = link.email.clone().ok_or(AccountProblem::LinkInvalid)?;
        let accepted = match (person, form) {
            (Some(person), _) => {
                if person.email != invited {
                    return Err(AccountProblem::InvitationForAnotherEmail.into());
                }
                let account = self
                    .storage
                    .account(person.account)
                    .await?
                    .ok_or(AccountProblem::LinkInvalid)?;
                self.storage
                    .accept_invitation(&hash, Joiner::Existing(&account), now)
                    .await?
            }
            (None, Some(form)) => {
                let typed = if form.email.trim().is_empty() {
                    invited.clone()
                } else {
                    normalise_email(form.email).ok_or(AccountProblem::EmailInvalid)?
                };
                if typed != invited {
                    return Err(AccountProblem::InvitationForAnotherEmail.into());
                }
                let (_, name) = NewPerson {
                    email: &invited,
                    ..form
                }
                .checked()?;
                if self.storage.account_by_email(&invited).await?.is_some() {
                    return Err(AccountProblem::EmailTaken.into());
                }
                let password_hash = self.passwords.hash(form.password).await?;
                let account = NewAccount {
                    email: invited.clone(),
                    name,
                    password_hash: Some(password_hash),
                    console_owner: false,
                    email_proven: false,
                };
                match self
                    .storage
                    .accept_invitation(&hash, Joiner::New(&account), now)
                    .await
                {
                    Err(StorageError::EmailTaken) => return Err(AccountProblem::EmailTaken.into()),
                    other => other?,
                }
            }
            (None, None) => return Err(AccountProblem::NameMissing.into()),
        };
        let (account, team, role, link) = accepted.ok_or(AccountProblem::LinkInvalid)?;
        let person = Person::of(&account);
        self.record_for(
            team,
            &person,
            AuditAction::InvitationAccepted,
            json!({ "email": person.email, "role": role.key(), "invited_by": link.created_by }),
        )
        .await;
        Ok((person, team))
    }

    /// Every team, for a console owner's Teams page.
    pub async fn all_teams(&self, person: &Person) -> Result<Vec<TeamSummary>, ConsoleError> {
        require_console_owner(person)?;
        let teams = self.storage.teams().await.map_err(storage_failed)?;
        let mut out = Vec::with_capacity(teams.len());
        for team in teams {
            let members = self
                .storage
                .members(team.id)
                .await
                .map_err(storage_failed)?;
            out.push(TeamSummary {
                id: team.id,
                name: team.name,
                members: u32::try_from(members.len()).unwrap_or(u32::MAX),
                owners: members
                    .into_iter()
                    .filter(|m| m.role == Role::Owner)
                    .map(|m| m.email)
                    .collect(),
            });
        }
        Ok(out)
    }

    /// A console owner creates a team and becomes its first owner (they can add other
    /// owners and leave later).
    pub async fn create_team(&self, person: &Person, name: &str) -> Result<TeamId, ConsoleError> {
        require_console_owner(person)?;
        let name = clean_name(name)
            .ok_or_else(|| ConsoleError::new("Give the team a name (up to 100 characters)."))?;
        let team = self
            .storage
            .create_team(&name)
            .await
            .map_err(storage_failed)?;
        self.storage
            .set_member(
                team.id,
                &person.email,
                Role::Owner,
                &person.email,
                Some(person.account),
            )
            .await
            .map_err(storage_failed)?;
        self.record_for(
            team.id,
            person,
            AuditAction::TeamCreated,
            json!({ "name": team.name }),
        )
        .await;
        Ok(team.id)
    }

    /// The Team page: the team and its members (any member may see who is in their team);
    /// owners also see the invitations that still open.
    pub async fn team_page(&self, member: &Member) -> Result<TeamPage, ConsoleError> {
        let members = self
            .storage
            .members(member.team)
            .await
            .map_err(storage_failed)?;
        let settings = self
            .storage
            .team_settings(member.team)
            .await
            .map_err(storage_failed)?;
        let invitations = if member.role == Role::Owner {
            self.storage
                .open_invitations(member.team, self.clock.now())
                .await
                .map_err(storage_failed)?
                .into_iter()
                .filter_map(invitation_view)
                .collect()
        } else {
            Vec::new()
        };
        Ok(TeamPage {
            team: choice_of(member),
            members: members.into_iter().map(member_view).collect(),
            invitations,
            new_link: None,
            settings,
        })
    }

    /// An owner changes the team's settings (two-person approval).
    pub async fn save_settings(
        &self,
        permit: &Permit<Own>,
        by: &Member,
        settings: app::team::TeamSettings,
    ) -> Result<(), ConsoleError> {
        self.storage
            .save_team_settings(permit.team, &settings)
            .await
            .map_err(storage_failed)?;
        self.record_for(
            permit.team,
            &by.person,
            AuditAction::TeamSettingsChanged,
            json!({
                "approval": settings.approval.key(),
                "approve_deactivations": settings.approve_deactivations,
            }),
        )
        .await;
        Ok(())
    }

    /// An owner makes an invitation link to their team with `role`, for one person's email:
    /// only an account with that email can accept it.
    pub async fn invite(
        &self,
        permit: &Permit<Own>,
        by: &Member,
        email: &str,
        role: Role,
        base: &str,
    ) -> Result<NewLink, ConsoleError> {
        let email = normalise_email(email).ok_or_else(|| {
            ConsoleError::new(
                "Enter the email address of the person you invite: only they can accept it.",
            )
        })?;
        let (secret, expires) = self
            .new_link(
                LinkPurpose::Invitation,
                Some(permit.team),
                Some(role),
                Some(email.clone()),
                &by.person,
                Duration::days(INVITATION_DAYS),
            )
            .await?;
        self.record_for(
            permit.team,
            &by.person,
            AuditAction::InvitationMade,
            json!({
                "email": email,
                "role": role.key(),
                "expires_at": super::views::stamp(expires),
            }),
        )
        .await;
        Ok(NewLink {
            what: format!(
                "Invitation for {email} to {} as {} (works once, only for {email})",
                by.team_name,
                role.key()
            ),
            url: format!("{base}/join?code={secret}"),
            expires: super::views::stamp(expires),
        })
    }

    /// An owner revokes one of the team's open invitations.
    pub async fn revoke_invitation(
        &self,
        permit: &Permit<Own>,
        by: &Member,
        id: &str,
    ) -> Result<(), ConsoleError> {
        let now = self.clock.now();
        let open = self
            .storage
            .open_invitations(permit.team, now)
            .await
            .map_err(storage_failed)?;
        let Some(link) = open.into_iter().find(|l| l.secret_hash == id.trim()) else {
            return Err(ConsoleError::not_found(
                "That invitation is not open any more (used, expired or revoked).",
            ));
        };
        if !self
            .storage
            .revoke_invitation(permit.team, &link.secret_hash, now)
            .await
            .map_err(storage_failed)?
        {
            return Err(ConsoleError::not_found(
                "That invitation is not open any more (used, expired or revoked).",
            ));
        }
        self.record_for(
            permit.team,
            &by.person,
            AuditAction::InvitationRevoked,
            json!({
                "email": link.email,
                "role": link.role.map(Role::key),
                "made_by": link.created_by,
            }),
        )
        .await;
        Ok(())
    }

    /// An owner adds a member by email or changes a member's role. A new member's membership
    /// belongs to their account at once if that account has proven its email; otherwise it
    /// waits for a sign-in that proves it (an account with only a password is invited
    /// instead). The last owner cannot step down: checked in the same transaction as the
    /// change, so two owners demoting each other at once cannot both pass.
    pub async fn set_member(
        &self,
        permit: &Permit<Own>,
        by: &Member,
        email: &str,
        role: Role,
    ) -> Result<(), ConsoleError> {
        let email = normalise_email(email)
            .ok_or_else(|| ConsoleError::new(AccountProblem::EmailInvalid.words()))?;
        let change = self.grant(permit.team, &email, role, &by.person).await?;
        let (action, details) = match change.before {
            None => (
                AuditAction::MemberAdded,
                json!({ "email": email, "role": role.key() }),
            ),
            Some(was) => (
                AuditAction::MemberRoleChanged,
                json!({ "email": email, "role": role.key(), "was": was.key() }),
            ),
        };
        self.record_for(permit.team, &by.person, action, details)
            .await;
        Ok(())
    }

    /// Gives `email` `role` in `team`, bound to their account if it proved its email.
    async fn grant(
        &self,
        team: TeamId,
        email: &str,
        role: Role,
        by: &Person,
    ) -> Result<crate::storage::MemberChange, ConsoleError> {
        let account = if email == by.email {
            Some(by.account)
        } else {
            self.storage
                .account_by_email(email)
                .await
                .map_err(storage_failed)?
                .filter(|a| a.email_proven)
                .map(|a| a.id)
        };
        self.storage
            .set_member(team, email, role, &by.email, account)
            .await
            .map_err(member_change_failed)
    }

    /// An owner removes a member (or themselves, unless they are the last owner).
    pub async fn remove_member(
        &self,
        permit: &Permit<Own>,
        by: &Member,
        email: &str,
    ) -> Result<(), ConsoleError> {
        let email = email.trim().to_lowercase();
        let Some(role) = self
            .storage
            .remove_member(permit.team, &email)
            .await
            .map_err(member_change_failed)?
        else {
            return Err(ConsoleError::not_found(format!(
                "{email} is not a member of this team."
            )));
        };
        self.record_for(
            permit.team,
            &by.person,
            AuditAction::MemberRemoved,
            json!({ "email": email, "role": role.key() }),
        )
        .await;
        Ok(())
    }

    /// A console owner gives a team that has no owner left an owner (`email`, themselves
    /// included). Only an ownerless team: a console owner does not otherwise reach into teams.
    pub async fn give_owner(
        &self,
        person: &Person,
        team: TeamId,
        email: &str,
    ) -> Result<(), ConsoleError> {
        require_console_owner(person)?;
        let email = normalise_email(email)
            .ok_or_else(|| ConsoleError::new(AccountProblem::EmailInvalid.words()))?;
        let record = self
            .storage
            .team(team)
            .await
            .map_err(storage_failed)?
            .ok_or_else(|| ConsoleError::not_found("That team does not exist."))?;
        let members = self.storage.members(team).await.map_err(storage_failed)?;
        if members.iter().any(|m| m.role == Role::Owner) {
            return Err(ConsoleError::new(format!(
                "{} has an owner: its owners manage its members.",
                record.name
            )));
        }
        let change = self.grant(team, &email, Role::Owner, person).await?;
        self.record_for(
            team,
            person,
            AuditAction::MemberAdded,
            json!({
                "email": email,
                "role": "owner",
                "was": change.before.map(Role::key),
                "how": "a console owner gave the ownerless team an owner",
            }),
        )
        .await;
        Ok(())
    }
}

fn member_change_failed(e: StorageError) -> ConsoleError {
    match e {
        StorageError::LastOwner => {
            ConsoleError::new("A team needs at least one owner: make someone else an owner first.")
        }
        other => storage_failed(other),
    }
}

fn require_console_owner(person: &Person) -> Result<(), ConsoleError> {
    if person.console_owner {
        Ok(())
    } else {
        Err(ConsoleError::forbidden(
            "Only a console owner can see and create teams.",
        ))
    }
}

fn choice_of(member: &Member) -> TeamChoice {
    TeamChoice {
        id: member.team,
        name: member.team_name.clone(),
        role: member.role,
    }
}

fn member_view(m: MemberRecord) -> MemberView {
    MemberView {
        email: m.email,
        name: m.name,
        role: m.role,
        added_by: m.added_by,
        added_at: super::views::stamp(m.added_at),
        joined: m.account.is_some(),
    }
}

fn invitation_view(link: LinkRecord) -> Option<InvitationView> {
    Some(InvitationView {
        email: link.email?,
        role: link.role?,
        id: link.secret_hash,
        made_by: link.created_by,
        expires: super::views::stamp(link.expires_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(
            normalise_email("  Ada.Lovelace@Example.COM "),
            Some("ada.lovelace@example.com".into())
        );
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@example",
            "ada@.example.com",
            "ada@example.com.",
            "ada lovelace@example.com",
            "ada@exa@mple.com",
            "<ada@example.com>",
            "ada@example.com, bob@example.com",
        ] {
            assert_eq!(normalise_email(bad), None, "{bad:?}");
        }
        assert_eq!(
            normalise_email(&format!("{}@example.com", "a".repeat(250))),
            None
        );
        // Surrounding white space (a pasted line) is trimmed, not refused.
        assert_eq!(
            normalise_email("ada@example.com\n"),
            Some("ada@example.com".into())
        );
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(clean_name("  Ada  "), Some("Ada".into()));
        assert_eq!(clean_name("   "), None);
        assert_eq!(clean_name("a\u{0}b"), None);
        assert_eq!(clean_name(&"é".repeat(100)), Some("é".repeat(100)));
        assert_eq!(clean_name(&"é".repeat(101)), None);
    }

    #[test]
    fn new_passwords_need_length_and_two_equal_copies() {
        assert_eq!(
            new_password_problem("short", "short"),
            Some(AccountProblem::WeakPassword)
        );
        assert_eq!(
            new_password_problem("correct horse battery", "correct horse batterz"),
            Some(AccountProblem::PasswordsDiffer)
        );
        assert_eq!(
            new_password_problem("correct horse battery", "correct horse battery"),
            None
        );
        // Length is counted in characters, not bytes.
        assert_eq!(
            new_password_problem("ééééééééééé", "ééééééééééé"),
            Some(AccountProblem::WeakPassword)
        );
    }

    #[test]
    fn link_secrets_are_random_and_only_their_hash_is_kept() {
        let (a, hash_a) = new_link_secret();
        let (b, _) = new_link_secret();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(link_hash(&a), hash_a);
        assert_eq!(link_hash(&format!(" {a}\n")), hash_a);
        assert_eq!(hash_a.len(), 64);
        assert!(!hash_a.contains(&a));
    }

    fn member(role: Role) -> Member {
        Member {
            person: Person {
                account: AccountId::new(1),
                email: "ada@example.com".into(),
                name: "Ada".into(),
                console_owner: false,
                has_password: true,
            },
            team: TeamId::new(3),
            team_name: "Support".into(),
            role,
        }
    }

    #[test]
    fn permits_follow_the_role_order() {
        use permits::{Operate, Own, View};
        let viewer = member(Role::Viewer);
        assert!(viewer.permit::<View>().is_ok());
        let refused = viewer.permit::<Operate>().err().unwrap();
        assert_eq!(refused.kind, app::backend::ConsoleErrorKind::Forbidden);
        assert!(
            refused.message.contains("You are a viewer in Support"),
            "{}",
            refused.message
        );
        assert!(viewer.permit::<Own>().is_err());
        let operator = member(Role::Operator);
        assert!(operator.permit::<Operate>().is_ok());
        assert!(operator.permit::<Own>().is_err());
        let owner = member(Role::Owner);
        assert_eq!(owner.permit::<Own>().unwrap().team, TeamId::new(3));
        assert!(owner.permit::<View>().is_ok());
    }

    #[test]
    fn a_flood_from_one_address_is_slowed_more_and_more_never_stopped() {
        use std::time::Duration as Wait;
        assert_eq!(address_slowdown(0), None);
        assert_eq!(address_slowdown(FAILURES_PER_ADDRESS - 1), None);
        assert_eq!(
            address_slowdown(FAILURES_PER_ADDRESS),
            Some(Wait::from_millis(250))
        );
        assert_eq!(
            address_slowdown(FAILURES_PER_ADDRESS + 3),
            Some(Wait::from_millis(1000))
        );
        // Capped: however many strangers failed, the right password waits at most this long.
        assert_eq!(address_slowdown(800), Some(Wait::from_secs(5)));
        assert_eq!(address_slowdown(u32::MAX), Some(Wait::from_secs(5)));
    }
}
