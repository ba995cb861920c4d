//! Teams, roles and the signed-in person as plain data (the rules are the server's:
//! `server/src/service/accounts.rs`; the words the pages add are in the `app` crate).

use crate::ids::TeamId;
use serde::{Deserialize, Serialize};

/// What a member may do in a team. Each role may do everything the ones below it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
// The name in forms and the database; a form may send it in any case.
#[derive(strum::IntoStaticStr, strum::EnumString, strum::VariantArray)]
#[strum(serialize_all = "snake_case", ascii_case_insensitive)]
#[cfg_attr(
    feature = "sqlx",
    derive(sqlx::Type),
    sqlx(type_name = "text", rename_all = "snake_case")
)]
pub enum Role {
    /// History, runs' progress and reports.
    Viewer,
    /// Also previews and runs.
    Operator,
    /// Also members, invitations, the site connection and team settings.
    Owner,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Owner, Role::Operator, Role::Viewer];

    pub fn words(self) -> &'static str {
        match self {
            Role::Viewer => "Viewer",
            Role::Operator => "Operator",
            Role::Owner => "Owner",
        }
    }

    /// One line for the member list and the invitation form.
    pub fn allows(self) -> &'static str {
        match self {
            Role::Viewer => "see history, live progress and reports",
            Role::Operator => "make previews and start, pause and cancel runs, and see everything a viewer sees",
            Role::Owner => "manage members, the site connection and team settings, and do everything an operator does",
        }
    }
}

/// A team the signed-in person belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamChoice {
    pub id: TeamId,
    pub name: String,
    pub role: Role,
}

/// Who is signed in, for the header and the Account page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedInView {
    pub email: String,
    pub name: String,
    /// May create teams and give password-reset links.
    pub console_owner: bool,
    /// Signs in with a password here (false: through the company's sign-in service).
    pub has_password: bool,
    /// The team the console is showing, if the person belongs to any.
    pub team: Option<TeamChoice>,
    pub teams: Vec<TeamChoice>,
    /// How many things wait for them in that team (the header's count; see "Waiting for
    /// you" on Overview).
    #[serde(default)]
    pub waiting: usize,
}

/// One member of a team.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub email: String,
    /// None until the person has signed in once.
    pub name: Option<String>,
    pub role: Role,
    pub added_by: String,
    pub added_at: String,
    /// False while a membership granted by email waits for someone to prove that email
    /// (single sign-on with a verified email); an account with only a password never takes
    /// one up: invite it instead.
    pub joined: bool,
}

/// An invitation that still opens, for the Team page's owners (never its link).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationView {
    /// Names the invitation for "Revoke" (the stored hash of its secret: it opens nothing).
    pub id: String,
    /// The only email that may accept it.
    pub email: String,
    pub role: Role,
    pub made_by: String,
    pub expires: String,
}

/// The Team page: the team, its members, and a link just made (shown once).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamPage {
    pub team: TeamChoice,
    pub members: Vec<MemberView>,
    /// Open invitations (owners only; empty for everyone else).
    pub invitations: Vec<InvitationView>,
    pub new_link: Option<NewLink>,
    pub settings: TeamSettings,
}

/// A one-time link just made: an invitation or a password reset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewLink {
    /// What it is for, in words ("Invitation for …, as operator").
    pub what: String,
    pub url: String,
    pub expires: String,
}

/// What a one-time link opens, for its page: whether it still works and, for an invitation,
/// the team and role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkInfo {
    pub valid: bool,
    pub team_name: Option<String>,
    pub role: Option<Role>,
    /// The email an invitation is for (only an account with it may accept).
    #[serde(default)]
    pub email: Option<String>,
    /// Someone is signed in already (an invitation then joins them without a new account).
    pub signed_in_as: Option<String>,
}

/// How one may sign in here, for the sign-in page.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInOptions {
    /// The button's name for single sign-on ("your company's sign-in"), when it is set up.
    pub sso: Option<String>,
    /// Nobody has an account yet: the first owner must use the setup link the console
    /// printed in its log when it started.
    #[serde(default)]
    pub needs_setup: bool,
}

/// When a delete run needs a second operator's approval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
#[cfg_attr(
    feature = "sqlx",
    derive(sqlx::Type),
    sqlx(type_name = "text", rename_all = "snake_case")
)]
pub enum ApprovalPolicy {
    /// Once the team has two or more operators (owners count): a team of one cannot.
    #[default]
    Auto,
    Always,
    Never,
}

impl ApprovalPolicy {
    pub const ALL: [ApprovalPolicy; 3] = [
        ApprovalPolicy::Auto,
        ApprovalPolicy::Always,
        ApprovalPolicy::Never,
    ];

    pub fn words(self) -> &'static str {
        match self {
            ApprovalPolicy::Auto => "When the team has two or more operators (recommended)",
            ApprovalPolicy::Always => "Always",
            ApprovalPolicy::Never => "Never: one operator may start any run",
        }
    }
}

/// A team's settings (owners change them on the Team page).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamSettings {
    pub approval: ApprovalPolicy,
    /// Deactivations (reversible) need approval too; by default they do not.
    pub approve_deactivations: bool,
    /// "Days before deletion": how long an undo window lasts ([`DELETION_DAYS`]).
    pub days_before_deletion: u16,
    /// "Ask again at the date": an undo window's deletion waits for a person to confirm it
    /// again instead of starting by itself.
    pub ask_again_at_date: bool,
}

/// The allowed "Days before deletion", and the default.
pub const DELETION_DAYS: std::ops::RangeInclusive<u16> = 1..=90;
pub const DEFAULT_DELETION_DAYS: u16 = 30;

impl Default for TeamSettings {
    fn default() -> TeamSettings {
        TeamSettings {
            approval: ApprovalPolicy::default(),
            approve_deactivations: false,
            days_before_deletion: DEFAULT_DELETION_DAYS,
            ask_again_at_date: false,
        }
    }
}

/// Whether a run of `action` needs a second operator, for a team with `operators` members
/// who may run (owners and operators).
pub fn needs_approval(
    settings: TeamSettings,
    operators: usize,
    action: crate::deletion::Action,
) -> bool {
    let by_policy = match settings.approval {
        ApprovalPolicy::Auto => operators >= 2,
        ApprovalPolicy::Always => true,
        ApprovalPolicy::Never => false,
    };
    by_policy && (action.deletes() || settings.approve_deactivations)
}

/// Where a request for approval stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    Awaiting,
    Approved,
    Declined,
    /// Nobody approved within the time allowed.
    Expired,
}

/// A request for a second operator's approval of a preview's run, as the pages show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalView {
    pub state: ApprovalState,
    pub requested_by: String,
    pub requested_at: String,
    pub expires_at: String,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    /// The person looking asked for it (they cannot approve it).
    pub yours: bool,
}

/// A team, for the console owner's Teams page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamSummary {
    pub id: TeamId,
    pub name: String,
    pub members: u32,
    pub owners: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::{assert_names, Named};

    #[test]
    fn roles_are_ordered_and_read_strictly() {
        assert_names::<Role>(&["viewer", "operator", "owner"]);
        assert!(Role::Owner > Role::Operator && Role::Operator > Role::Viewer);
        for r in Role::ALL {
            assert_eq!(Role::from_key(r.key()), Some(r));
        }
        assert_eq!(Role::from_key(" OWNER "), Some(Role::Owner));
        assert_eq!(Role::from_key("admin"), None);
        assert_eq!(Role::from_key(""), None);
        assert_eq!(
            serde_json::to_string(&Role::Operator).unwrap(),
            "\"operator\""
        );
    }

    #[test]
    fn approval_is_needed_by_policy_operators_and_action() {
        use crate::deletion::Action::{Deactivate, Delete};
        let auto = TeamSettings::default();
        assert!(!needs_approval(auto, 0, Delete));
        assert!(
            !needs_approval(auto, 1, Delete),
            "a team of one cannot approve itself"
        );
        assert!(needs_approval(auto, 2, Delete));
        assert!(
            needs_approval(auto, 2, crate::deletion::Action::DeactivateThenDelete),
            "an undo window ends in a deletion: approved as a delete"
        );
        assert!(
            !needs_approval(auto, 2, Deactivate),
            "deactivations skip it by default"
        );
        let strict = TeamSettings {
            approval: ApprovalPolicy::Always,
            approve_deactivations: true,
            ..TeamSettings::default()
        };
        assert!(needs_approval(strict, 1, Delete));
        assert!(needs_approval(strict, 1, Deactivate));
        let never = TeamSettings {
            approval: ApprovalPolicy::Never,
            approve_deactivations: true,
            ..TeamSettings::default()
        };
        assert!(!needs_approval(never, 5, Delete));
        for p in ApprovalPolicy::ALL {
            assert_eq!(ApprovalPolicy::from_key(p.key()), Some(p));
        }
        assert_eq!(ApprovalPolicy::from_key("sometimes"), None);
    }

    #[test]
    fn approval_policy_names_are_pinned_and_match_the_json() {
        assert_names::<ApprovalPolicy>(&["auto", "always", "never"]);
        for p in ApprovalPolicy::ALL {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.key()));
        }
        assert_eq!(ApprovalPolicy::from_key("AUTO"), None);
    }
}

/// The events a person can be emailed about, with the Account page's words for each: every
/// one is on until the person turns it off (docs/notifications.md, "Who gets an email").
pub const EMAIL_EVENTS: [(crate::audit::AuditAction, &str); 9] = {
    use crate::audit::AuditAction::*;
    [
        (
            ApprovalRequested,
            "Someone in my team asks for a second operator's approval (operators and owners)",
        ),
        (
            ApprovalGiven,
            "My request for approval was approved and the run started",
        ),
        (ApprovalDeclined, "My request for approval was declined"),
        (RunEnded, "A run I started or approved ended"),
        (InvitationAccepted, "Someone accepted an invitation I made"),
        (
            DeletionPrepared,
            "The team's retention policy prepared a deletion (operators and owners)",
        ),
        (
            DeletionReminder,
            "An undo window's deletion is 3 days, then 1 day, away (operators and owners)",
        ),
        (DeletionDue, "An undo window's deletion date came (operators and owners)"),
        (
            DeletionCancelled,
            "Someone restored everyone and cancelled an undo window's deletion (operators and owners)",
        ),
    ]
};

/// One line of the Account page's email choices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailChoice {
    /// The event's key (the form's field name).
    pub event: String,
    pub label: String,
    pub on: bool,
}

/// The Account page's email choices: where mail goes, and which events reach it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailChoices {
    pub email: String,
    /// False when this console has no mail server (the choices are kept for when it has).
    pub mail_on: bool,
    /// The address is proven (single sign-on vouched for it, or the person confirmed it by
    /// the link mailed to it): memberships granted to it by email reach this account.
    #[serde(default)]
    pub confirmed: bool,
    pub choices: Vec<EmailChoice>,
}

/// The Team page's notifications section (owners only): the team's webhook, the signing
/// secret just made (shown once), and the newest deliveries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookPage {
    pub webhook: Option<WebhookView>,
    pub new_secret: Option<String>,
    pub deliveries: Vec<DeliveryView>,
}

/// A saved webhook as owners see it: never its full address (Slack's and Teams' carry a
/// secret in the path), never its signing secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookView {
    /// Scheme and host ("https://hooks.slack.com/…").
    pub address: String,
    /// What it receives, in words ("Slack (a message with a link)").
    pub receiver: String,
    pub saved_by: String,
    pub saved_at: String,
}

/// One line of the delivery log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryView {
    /// The delivery id receivers de-duplicate by.
    pub id: String,
    pub made_at: String,
    /// "Approval requested", "Run ended", "Test message", …
    pub what: String,
    /// Who caused it.
    pub by: String,
    /// Where it goes (scheme and host only).
    pub to: String,
    /// "Delivered", "Will try again", "Not delivered", "Waiting to be sent".
    pub state: String,
    /// How it went, in words (the last error, or the tries it took).
    pub detail: String,
    pub sent_at: Option<String>,
}

/// The Team page's retention section (owners only; docs/retention.md): the team's time zone
/// and its policy, as saved or as the form starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPage {
    /// An IANA name ("Europe/Berlin"); "UTC" until an owner chooses.
    pub time_zone: String,
    pub enabled: bool,
    /// Deactivated for at least this many days.
    pub min_days: i64,
    /// Stored number: 0 = Monday … 6 = Sunday.
    pub weekday: i64,
    /// "HH:MM", in the team's zone.
    pub at: String,
    /// When it next prepares a deletion, in the team's zone and named ("Monday 14 Dec 2026,
    /// 09:00 Europe/Berlin"); None when off.
    pub next_time: Option<String>,
    /// Who saved it, and when (RFC 3339); None when never saved.
    pub saved_by: Option<String>,
    pub saved_at: Option<String>,
    /// Users the daily listings saw deactivated at the site, and how many of them for at least
    /// `min_days`.
    pub seen_deactivated: u64,
    pub long_enough: u64,
}

impl Default for RetentionPage {
    fn default() -> RetentionPage {
        RetentionPage {
            time_zone: "UTC".to_string(),
            enabled: false,
            min_days: 30,
            weekday: 0,
            at: "09:00".to_string(),
            next_time: None,
            saved_by: None,
            saved_at: None,
            seen_deactivated: 0,
            long_enough: 0,
        }
    }
}

/// The weekdays in the order the Team page lists them (index = stored number).
pub const WEEKDAY_NAMES: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// A deletion the retention policy prepared, waiting for a person to confirm it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedDeletionView {
    pub preview_id: crate::ids::PreviewId,
    pub users: u64,
    /// RFC 3339.
    pub made_at: String,
}

/// When the daily listings first saw each deactivated user of the site (the Choose page's
/// "Deactivated since"), and the retention policy's days when it is on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeactivatedSince {
    /// The policy's "at least N days", None when it is off.
    pub min_days: Option<i64>,
    pub users: Vec<DeactivatedSinceView>,
}

/// One user the daily listings saw deactivated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeactivatedSinceView {
    pub account_id: String,
    /// RFC 3339: the first listing that saw them deactivated.
    pub since: String,
    /// Deactivated for at least the policy's days (false when it is off).
    pub long_enough: bool,
}
