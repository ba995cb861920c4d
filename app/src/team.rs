//! Teams, roles and the signed-in person, as the pages show them (the rules are the server's:
//! `server/src/service/accounts.rs`).

use crate::ids::TeamId;
use serde::{Deserialize, Serialize};

/// What a member may do in a team. Each role may do everything the ones below it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(
    feature = "ssr",
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

    /// The name in forms and the database.
    pub fn key(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Owner => "owner",
        }
    }

    /// Reads a role from a form; anything else is refused, never guessed.
    pub fn from_key(key: &str) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.key() == key.trim().to_ascii_lowercase())
    }

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
}

/// When a delete run needs a second operator's approval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(
    feature = "ssr",
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

    pub fn key(self) -> &'static str {
        match self {
            ApprovalPolicy::Auto => "auto",
            ApprovalPolicy::Always => "always",
            ApprovalPolicy::Never => "never",
        }
    }

    pub fn from_key(key: &str) -> Option<ApprovalPolicy> {
        ApprovalPolicy::ALL
            .into_iter()
            .find(|p| p.key() == key.trim())
    }

    pub fn words(self) -> &'static str {
        match self {
            ApprovalPolicy::Auto => "When the team has two or more operators (recommended)",
            ApprovalPolicy::Always => "Always",
            ApprovalPolicy::Never => "Never: one operator may start any run",
        }
    }
}

/// A team's settings (owners change them on the Team page).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamSettings {
    pub approval: ApprovalPolicy,
    /// Deactivations (reversible) need approval too; by default they do not.
    pub approve_deactivations: bool,
}

/// Whether a run of `action` needs a second operator, for a team with `operators` members
/// who may run (owners and operators).
pub fn needs_approval(
    settings: TeamSettings,
    operators: usize,
    action: crate::model::Action,
) -> bool {
    let by_policy = match settings.approval {
        ApprovalPolicy::Auto => operators >= 2,
        ApprovalPolicy::Always => true,
        ApprovalPolicy::Never => false,
    };
    by_policy && (action == crate::model::Action::Delete || settings.approve_deactivations)
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

/// Why a sign-in, setup, invitation or password form was sent back: a fixed code in the
/// address (`?problem=…`), never free text an attacker could put there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountProblem {
    WrongPassword,
    Throttled,
    LinkInvalid,
    WeakPassword,
    PasswordsDiffer,
    EmailInvalid,
    EmailTaken,
    NameMissing,
    NotAllowed,
    SsoFailed,
    SignedOut,
    SessionExpired,
    InvitationForAnotherEmail,
    PasswordAccountExists,
    Done,
    SsoOff,
    Unavailable,
    /// The Account page's password form: the current password typed is not the one.
    CurrentPasswordWrong,
    PasswordChanged,
}

impl AccountProblem {
    const ALL: [AccountProblem; 19] = [
        AccountProblem::WrongPassword,
        AccountProblem::Throttled,
        AccountProblem::LinkInvalid,
        AccountProblem::WeakPassword,
        AccountProblem::PasswordsDiffer,
        AccountProblem::EmailInvalid,
        AccountProblem::EmailTaken,
        AccountProblem::NameMissing,
        AccountProblem::NotAllowed,
        AccountProblem::SsoFailed,
        AccountProblem::SignedOut,
        AccountProblem::SessionExpired,
        AccountProblem::InvitationForAnotherEmail,
        AccountProblem::PasswordAccountExists,
        AccountProblem::Done,
        AccountProblem::SsoOff,
        AccountProblem::Unavailable,
        AccountProblem::CurrentPasswordWrong,
        AccountProblem::PasswordChanged,
    ];

    pub fn code(self) -> &'static str {
        match self {
            AccountProblem::WrongPassword => "wrong-password",
            AccountProblem::Throttled => "throttled",
            AccountProblem::LinkInvalid => "link-invalid",
            AccountProblem::WeakPassword => "weak-password",
            AccountProblem::PasswordsDiffer => "passwords-differ",
            AccountProblem::EmailInvalid => "email-invalid",
            AccountProblem::EmailTaken => "email-taken",
            AccountProblem::NameMissing => "name-missing",
            AccountProblem::NotAllowed => "not-allowed",
            AccountProblem::SsoFailed => "sso-failed",
            AccountProblem::SignedOut => "signed-out",
            AccountProblem::SessionExpired => "session-expired",
            AccountProblem::InvitationForAnotherEmail => "invitation-for-another-email",
            AccountProblem::PasswordAccountExists => "password-account-exists",
            AccountProblem::Done => "done",
            AccountProblem::SsoOff => "sso-off",
            AccountProblem::Unavailable => "unavailable",
            AccountProblem::CurrentPasswordWrong => "current-password-wrong",
            AccountProblem::PasswordChanged => "password-changed",
        }
    }

    pub fn from_code(code: &str) -> Option<AccountProblem> {
        AccountProblem::ALL.into_iter().find(|p| p.code() == code)
    }

    pub fn words(self) -> &'static str {
        match self {
            AccountProblem::WrongPassword => {
                "That email and password do not match an account here. Check both and try again."
            }
            AccountProblem::Throttled => {
                "Too many failed sign-ins. Wait 15 minutes, then try again (or ask a console \
                 owner for a password-reset link)."
            }
            AccountProblem::LinkInvalid => {
                "This link is not valid any more: it was used already or it expired. Ask for a \
                 new one."
            }
            AccountProblem::WeakPassword => {
                "Choose a password of at least 12 characters (a few words together work well)."
            }
            AccountProblem::PasswordsDiffer => "The two passwords are not the same.",
            AccountProblem::EmailInvalid => "Enter an email address like name@example.com.",
            AccountProblem::EmailTaken => {
                "There is already an account with this email: sign in with it instead."
            }
            AccountProblem::NameMissing => "Enter your name, as your colleagues know you.",
            AccountProblem::NotAllowed => "Only a team owner can do that.",
            AccountProblem::SsoFailed => "Single sign-on did not work: see the message below.",
            AccountProblem::SignedOut => "You are signed out.",
            AccountProblem::SessionExpired => "Your session ended. Sign in again to go on.",
            AccountProblem::InvitationForAnotherEmail => {
                "This invitation was made for another email address. Sign in with that address, \
                 or ask the team's owner for an invitation for yours."
            }
            AccountProblem::PasswordAccountExists => {
                "An account with a password already uses this email, so your company's sign-in \
                 cannot open it by itself. Sign in with your password, then choose \"Link your \
                 company's sign-in\" on your Account page."
            }
            AccountProblem::Done => "Done.",
            AccountProblem::SsoOff => {
                "Single sign-on is not set up on this console: sign in with your email and \
                 password."
            }
            AccountProblem::Unavailable => {
                "Offboard could not do that just now (the server log says why). Try again in a \
                 moment."
            }
            AccountProblem::CurrentPasswordWrong => {
                "The current password is not right: type the password you signed in with. \
                 Your password was not changed."
            }
            AccountProblem::PasswordChanged => {
                "Your password was changed. You stay signed in here; every other session of \
                 yours was signed out."
            }
        }
    }

    /// Whether the words report something done (shown as a notice, not as an error).
    pub fn is_success(self) -> bool {
        matches!(
            self,
            AccountProblem::Done | AccountProblem::SignedOut | AccountProblem::PasswordChanged
        )
    }
}

/// The box an owner ticks to remove a member, naming the person and what they lose.
pub fn removal_consent(email: &str, team: &str, yourself: bool) -> String {
    if yourself {
        format!(
            "Yes, remove myself ({email}) from {team}: I lose access to {team}'s runs and \
             reports, and only an owner can let me back in."
        )
    } else {
        format!("Yes, remove {email}: they lose access to {team}'s runs and reports.")
    }
}

/// What a removal did, said on the page the owner lands on.
pub fn removed_words(email: &str, team: &str, yourself: bool) -> String {
    if yourself {
        format!(
            "You removed yourself ({email}) from {team}: you no longer see its runs and reports."
        )
    } else {
        format!("{email} was removed from {team}: they no longer see its runs and reports.")
    }
}

/// What a role change or an addition by email did.
pub fn member_set_words(email: &str, role: Role, team: &str) -> String {
    format!(
        "{email} is now {} in {team}: they may {}.",
        role.words(),
        role.allows()
    )
}

/// What saving the team's settings changed them to.
pub fn settings_words(settings: TeamSettings) -> String {
    let deactivations = if settings.approve_deactivations {
        "deactivations need approval too"
    } else {
        "deactivations start without a second operator"
    };
    format!(
        "Settings saved: a delete run needs a second operator's approval {}; {deactivations}.",
        match settings.approval {
            ApprovalPolicy::Auto => "when the team has two or more operators",
            ApprovalPolicy::Always => "always",
            ApprovalPolicy::Never => "never",
        }
    )
}

/// Shortest password a local account may have. Length is what makes a password strong;
/// no composition rules (they make people write passwords down).
pub const MIN_PASSWORD_CHARS: usize = 12;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_read_strictly() {
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
        use crate::model::Action::{Deactivate, Delete};
        let auto = TeamSettings::default();
        assert!(!needs_approval(auto, 0, Delete));
        assert!(
            !needs_approval(auto, 1, Delete),
            "a team of one cannot approve itself"
        );
        assert!(needs_approval(auto, 2, Delete));
        assert!(
            !needs_approval(auto, 2, Deactivate),
            "deactivations skip it by default"
        );
        let strict = TeamSettings {
            approval: ApprovalPolicy::Always,
            approve_deactivations: true,
        };
        assert!(needs_approval(strict, 1, Delete));
        assert!(needs_approval(strict, 1, Deactivate));
        let never = TeamSettings {
            approval: ApprovalPolicy::Never,
            approve_deactivations: true,
        };
        assert!(!needs_approval(never, 5, Delete));
        for p in ApprovalPolicy::ALL {
            assert_eq!(ApprovalPolicy::from_key(p.key()), Some(p));
        }
        assert_eq!(ApprovalPolicy::from_key("sometimes"), None);
    }

    #[test]
    fn removals_name_the_person_the_team_and_what_they_lose() {
        assert_eq!(
            removal_consent("ana@example.com", "Support", false),
            "Yes, remove ana@example.com: they lose access to Support's runs and reports."
        );
        let me = removal_consent("me@example.com", "Support", true);
        assert!(
            me.starts_with("Yes, remove myself (me@example.com) from Support"),
            "{me}"
        );
        assert!(me.contains("only an owner can let me back in"), "{me}");
        assert_eq!(
            removed_words("ana@example.com", "Support", false),
            "ana@example.com was removed from Support: they no longer see its runs and reports."
        );
        assert!(
            removed_words("me@example.com", "Support", true).starts_with("You removed yourself")
        );
    }

    #[test]
    fn saved_settings_and_roles_say_what_they_are_now() {
        let words = settings_words(TeamSettings {
            approval: ApprovalPolicy::Always,
            approve_deactivations: true,
        });
        assert_eq!(
            words,
            "Settings saved: a delete run needs a second operator's approval always; \
             deactivations need approval too."
        );
        let words = settings_words(TeamSettings::default());
        assert!(
            words.contains("when the team has two or more operators"),
            "{words}"
        );
        assert!(
            words.contains("deactivations start without a second operator"),
            "{words}"
        );
        assert!(settings_words(TeamSettings {
            approval: ApprovalPolicy::Never,
            approve_deactivations: false
        })
        .contains("approval never"));
        assert_eq!(
            member_set_words("ana@example.com", Role::Viewer, "Support"),
            "ana@example.com is now Viewer in Support: they may see history, live progress and reports."
        );
    }

    #[test]
    fn wrong_current_password_is_not_a_failed_sign_in() {
        let words = AccountProblem::CurrentPasswordWrong.words();
        assert!(words.contains("current password is not right"), "{words}");
        assert_ne!(words, AccountProblem::WrongPassword.words());
        assert!(AccountProblem::PasswordChanged.is_success());
        assert!(!AccountProblem::CurrentPasswordWrong.is_success());
    }

    #[test]
    fn problem_codes_round_trip_and_unknown_codes_say_nothing() {
        for p in AccountProblem::ALL {
            assert_eq!(AccountProblem::from_code(p.code()), Some(p));
            assert!(!p.words().is_empty());
        }
        assert_eq!(AccountProblem::from_code("<script>"), None);
        assert_eq!(AccountProblem::from_code(""), None);
    }
}
