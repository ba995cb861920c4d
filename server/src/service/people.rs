//! Who acts: a signed-in person as read at the start of a request, and how the audit trail
//! and a run name whoever acts. Its own module so the role handles (`desks`) can name a person
//! without reaching into accounts, which itself hands out those handles.

use crate::storage::AccountRecord;
use app::ids::AccountId;

/// The name of someone using the console when nothing better is known.
pub const CONSOLE_ADMIN: &str = "console admin";

/// How the trail and a preview name what the team's retention policy did by itself.
pub const RETENTION_POLICY: &str = "Offboard (retention policy)";

/// Who is acting, as the request's caller knows it (see `http::caller`); everything that
/// names a person asks [`Actor::name`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// A signed-in person.
    Person { name: String, email: String },
    /// Someone acting without a console account: the service driven directly (tests, tools).
    /// Named by the email saved on Connect, else [`CONSOLE_ADMIN`].
    ConsoleAdmin,
    /// The team's retention policy, preparing a deletion at its due time (docs/retention.md).
    RetentionPolicy,
    /// Offboard itself, carrying out what a person confirmed earlier (an undo window's
    /// deletion at its date): named "Offboard, on behalf of <who confirmed>".
    OnBehalf { of: String },
}

impl Actor {
    /// The name the trail and a run's "started by" record, given the team's saved operator
    /// email.
    pub fn name(&self, operator_email: Option<&str>) -> String {
        match self {
            Actor::Person { name, email } => format!("{name} <{email}>"),
            Actor::ConsoleAdmin => operator_email
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .unwrap_or(CONSOLE_ADMIN)
                .to_string(),
            Actor::RetentionPolicy => RETENTION_POLICY.to_string(),
            Actor::OnBehalf { of } => format!("Offboard, on behalf of {of}"),
        }
    }

    /// The name a sentence about the person uses ("Priya cancelled the run…"): their name
    /// alone, or what [`Actor::name`] gives for the console's own admin.
    pub fn short_name(&self, operator_email: Option<&str>) -> String {
        match self {
            Actor::Person { name, email } if name.trim().is_empty() => email.clone(),
            Actor::Person { name, .. } => name.trim().to_string(),
            Actor::ConsoleAdmin | Actor::RetentionPolicy | Actor::OnBehalf { .. } => {
                self.name(operator_email)
            }
        }
    }

    /// The signed-in person's email: their own Stack account is never deleted by their run.
    pub fn email(&self) -> Option<&str> {
        match self {
            Actor::Person { email, .. } => Some(email),
            Actor::ConsoleAdmin | Actor::RetentionPolicy | Actor::OnBehalf { .. } => None,
        }
    }
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
    pub(crate) fn of(record: &AccountRecord) -> Person {
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
