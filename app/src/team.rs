//! Teams and roles as the pages word them: the problems a form is sent back with and what
//! an owner's change did. The plain data (roles, views, settings) is `model::team`, re-exported
//! here so the pages keep naming it `crate::team::…`.

pub use ::model::team::*;

/// Why a sign-in, setup, invitation or password form was sent back: a fixed code in the
/// address (`?problem=…`), never free text an attacker could put there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// The code in the address (`wrong-password`, …: `Named`).
#[derive(strum::IntoStaticStr, strum::EnumString, strum::VariantArray)]
#[strum(serialize_all = "kebab-case")]
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
    /// The Account page's email choices were saved.
    EmailChoicesSaved,
    /// A link to confirm the account's email address was mailed to it.
    ConfirmationSent,
    /// The account's email address is confirmed.
    EmailConfirmed,
}

impl AccountProblem {
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
            AccountProblem::EmailChoicesSaved => "Your email choices were saved.",
            AccountProblem::ConfirmationSent => {
                "We emailed you a link to confirm your address. Open it while signed in here; \
                 it works for 24 hours."
            }
            AccountProblem::EmailConfirmed => {
                "Your email address is confirmed. Memberships teams gave to it are yours now."
            }
        }
    }

    /// Whether the words report something done (shown as a notice, not as an error).
    pub fn is_success(self) -> bool {
        matches!(
            self,
            AccountProblem::Done
                | AccountProblem::SignedOut
                | AccountProblem::PasswordChanged
                | AccountProblem::EmailChoicesSaved
                | AccountProblem::ConfirmationSent
                | AccountProblem::EmailConfirmed
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
    let at_the_date = if settings.ask_again_at_date {
        "waits for a person to confirm it again"
    } else {
        "starts by itself"
    };
    format!(
        "Settings saved: a delete run needs a second operator's approval {}; {deactivations}; \
         an undo window lasts {} days, and its deletion {at_the_date}.",
        match settings.approval {
            ApprovalPolicy::Auto => "when the team has two or more operators",
            ApprovalPolicy::Always => "always",
            ApprovalPolicy::Never => "never",
        },
        settings.days_before_deletion
    )
}

/// Shortest password a local account may have. Length is what makes a password strong;
/// no composition rules (they make people write passwords down).
pub const MIN_PASSWORD_CHARS: usize = 12;

#[cfg(test)]
mod tests {
    use super::*;

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
            days_before_deletion: 14,
            ask_again_at_date: true,
        });
        assert_eq!(
            words,
            "Settings saved: a delete run needs a second operator's approval always; \
             deactivations need approval too; an undo window lasts 14 days, and its deletion \
             waits for a person to confirm it again."
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
            approve_deactivations: false,
            ..TeamSettings::default()
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
        use crate::Named;
        model::names::assert_names::<AccountProblem>(&[
            "wrong-password",
            "throttled",
            "link-invalid",
            "weak-password",
            "passwords-differ",
            "email-invalid",
            "email-taken",
            "name-missing",
            "not-allowed",
            "sso-failed",
            "signed-out",
            "session-expired",
            "invitation-for-another-email",
            "password-account-exists",
            "done",
            "sso-off",
            "unavailable",
            "current-password-wrong",
            "password-changed",
            "email-choices-saved",
            "confirmation-sent",
            "email-confirmed",
        ]);
        for p in <AccountProblem as strum::VariantArray>::VARIANTS {
            assert_eq!(AccountProblem::from_key(p.key()), Some(*p));
            assert!(!p.words().is_empty());
        }
        assert_eq!(AccountProblem::from_key("<script>"), None);
        assert_eq!(AccountProblem::from_key(""), None);
    }
}
