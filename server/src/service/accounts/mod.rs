//! Sign-in, people, teams and roles: who may use the console and what each may do in a team.
//! This module keeps the shared types and rules; passwords are hashed in `service::passwords`,
//! link secrets and the links made from them are in `links.rs`, sign-in throttling in
//! `throttle.rs`, single sign-on identities in `sign_on.rs`, sessions in `sessions.rs`,
//! teams and members in `teams.rs`, invitations in `invitations.rs`.
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

use super::desks::{ConsoleOwnerDesk, OwnerDesk, ViewerDesk};
pub use super::people::Person;
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
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

mod confirm_email;
mod invitations;
mod links;
mod sessions;
mod sign_on;
mod teams;
mod throttle;
mod visitors;

pub use links::{link_hash, new_link_secret};
pub use throttle::address_slowdown;
pub use visitors::VisitorConsole;

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
pub(super) const ADDRESS_SLOWDOWN_STEP: std::time::Duration = std::time::Duration::from_millis(250);

pub(super) const ADDRESS_SLOWDOWN_MAX: std::time::Duration = std::time::Duration::from_secs(5);

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

/// A signed-in person in the team a request acts for, with their role there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub person: Person,
    pub team: TeamId,
    pub team_name: String,
    pub role: Role,
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

/// [`normalise_email`] for a form's email field: the address, or the refusal in the admin's
/// words.
pub(crate) fn typed_email(text: &str) -> Result<String, ConsoleError> {
    normalise_email(text).ok_or_else(|| ConsoleError::new(AccountProblem::EmailInvalid.words()))
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
    pub(super) fn checked(&self) -> Result<(String, String), AccountRefusal> {
        let email = normalise_email(self.email).ok_or(AccountProblem::EmailInvalid)?;
        let name = clean_name(self.name).ok_or(AccountProblem::NameMissing)?;
        if let Some(problem) = new_password_problem(self.password, self.again) {
            return Err(problem.into());
        }
        Ok((email, name))
    }
}

impl Console {
    pub(super) async fn create_account(
        &self,
        account: &NewAccount,
    ) -> Result<AccountRecord, AccountRefusal> {
        match self.storage.create_account(account).await {
            Err(StorageError::EmailTaken) => Err(AccountProblem::EmailTaken.into()),
            other => Ok(other?),
        }
    }

    pub(super) async fn record_for(
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

    pub(super) async fn record_everywhere(
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
}

pub(super) fn choice_of(member: &Member) -> TeamChoice {
    TeamChoice {
        id: member.team,
        name: member.team_name.clone(),
        role: member.role,
    }
}

pub(super) fn member_view(m: MemberRecord) -> MemberView {
    MemberView {
        email: m.email,
        name: m.name,
        role: m.role,
        added_by: m.added_by,
        added_at: super::views::stamp(m.added_at),
        joined: m.account.is_some(),
    }
}

pub(super) fn invitation_view(link: LinkRecord) -> Option<InvitationView> {
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
}
