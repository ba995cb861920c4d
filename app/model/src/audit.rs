//! The audit trail's plain data: what kinds of things are recorded, one entry, and the
//! filters the page and the CSV download share.

use crate::names::Named;
use serde::{Deserialize, Serialize};

/// What someone (or the console itself) did. Stored and filtered by its serde name
/// (`connection_saved`, …), never by its words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
// The name in the database, addresses and the CSV: the serde name (a test holds them equal).
#[derive(strum::IntoStaticStr, strum::EnumString, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum AuditAction {
    /// The Connect form was saved (site changed, token replaced: never the token itself).
    ConnectionSaved,
    /// The saved SCIM token was removed.
    TokenForgotten,
    /// A preview was made from a file or from ticked users.
    PreviewMade,
    /// A preview was made again with other options.
    PreviewRevised,
    /// An operator chose one of the accounts an ambiguous row could mean.
    AccountChosen,
    /// An operator undid that choice: the row is ambiguous again.
    ChoiceUndone,
    /// The admin typed the phrase and the run was created.
    RunConfirmed,
    RunPaused,
    RunResumed,
    RunCancelled,
    /// The run ended (finished, stopped or failed), with its counts.
    RunEnded,
    /// Someone signed in (recorded in each of their teams' trails).
    SignIn,
    /// A wrong password for a known account (or a throttled attempt).
    SignInFailed,
    PasswordChanged,
    PasswordResetLinkMade,
    SignedOutEverywhere,
    TeamCreated,
    /// An owner added a member by email (or the first owner was set up).
    MemberAdded,
    MemberRoleChanged,
    MemberRemoved,
    InvitationMade,
    InvitationAccepted,
    /// An owner revoked an open invitation (or it was voided: its maker stopped being an owner).
    InvitationRevoked,
    /// A person tied their company's sign-in to their account while signed in to both.
    SignOnLinked,
    /// A local account confirmed its email address by the link mailed to it.
    EmailConfirmed,
    /// An operator asked a second operator to approve a preview's run.
    ApprovalRequested,
    /// A second operator typed the phrase: the run started (both names in the details).
    ApprovalGiven,
    ApprovalDeclined,
    TeamSettingsChanged,
    /// The team's retention policy prepared a deletion: a preview waits for a person (it
    /// deletes nobody by itself).
    DeletionPrepared,
    /// Undo window: one user reactivated at the site and taken out of the deletion.
    UserRestored,
    /// Undo window: everyone restored, the deletion cancelled.
    DeletionCancelled,
    /// Undo window: the deletion is 3 days (then 1 day) away.
    DeletionReminder,
    /// Undo window: the date came (or an owner chose "Delete now"): the users still
    /// deactivated and unchanged were handed to a deletion run, or a preview waits.
    DeletionDue,
}

impl AuditAction {
    pub const ALL: [AuditAction; 34] = [
        AuditAction::ConnectionSaved,
        AuditAction::TokenForgotten,
        AuditAction::PreviewMade,
        AuditAction::PreviewRevised,
        AuditAction::AccountChosen,
        AuditAction::ChoiceUndone,
        AuditAction::RunConfirmed,
        AuditAction::RunPaused,
        AuditAction::RunResumed,
        AuditAction::RunCancelled,
        AuditAction::RunEnded,
        AuditAction::SignIn,
        AuditAction::SignInFailed,
        AuditAction::PasswordChanged,
        AuditAction::PasswordResetLinkMade,
        AuditAction::SignedOutEverywhere,
        AuditAction::TeamCreated,
        AuditAction::MemberAdded,
        AuditAction::MemberRoleChanged,
        AuditAction::MemberRemoved,
        AuditAction::InvitationMade,
        AuditAction::InvitationAccepted,
        AuditAction::InvitationRevoked,
        AuditAction::SignOnLinked,
        AuditAction::EmailConfirmed,
        AuditAction::ApprovalRequested,
        AuditAction::ApprovalGiven,
        AuditAction::ApprovalDeclined,
        AuditAction::TeamSettingsChanged,
        AuditAction::DeletionPrepared,
        AuditAction::UserRestored,
        AuditAction::DeletionCancelled,
        AuditAction::DeletionReminder,
        AuditAction::DeletionDue,
    ];

    /// What the admin reads.
    pub fn words(self) -> &'static str {
        match self {
            AuditAction::ConnectionSaved => "Connection saved",
            AuditAction::TokenForgotten => "Token forgotten",
            AuditAction::PreviewMade => "Preview made",
            AuditAction::PreviewRevised => "Preview revised",
            AuditAction::AccountChosen => "Account chosen",
            AuditAction::ChoiceUndone => "Choice undone",
            AuditAction::RunConfirmed => "Run confirmed",
            AuditAction::RunPaused => "Run paused",
            AuditAction::RunResumed => "Run resumed",
            AuditAction::RunCancelled => "Run cancelled",
            AuditAction::RunEnded => "Run ended",
            AuditAction::SignIn => "Signed in",
            AuditAction::SignInFailed => "Sign-in failed",
            AuditAction::PasswordChanged => "Password changed",
            AuditAction::PasswordResetLinkMade => "Password-reset link made",
            AuditAction::SignedOutEverywhere => "Signed out everywhere",
            AuditAction::TeamCreated => "Team created",
            AuditAction::MemberAdded => "Member added",
            AuditAction::MemberRoleChanged => "Role changed",
            AuditAction::MemberRemoved => "Member removed",
            AuditAction::InvitationMade => "Invitation made",
            AuditAction::InvitationAccepted => "Invitation accepted",
            AuditAction::InvitationRevoked => "Invitation revoked",
            AuditAction::SignOnLinked => "Single sign-on linked",
            AuditAction::EmailConfirmed => "Email confirmed",
            AuditAction::ApprovalRequested => "Approval requested",
            AuditAction::ApprovalGiven => "Approved and started",
            AuditAction::ApprovalDeclined => "Approval declined",
            AuditAction::TeamSettingsChanged => "Team settings changed",
            AuditAction::DeletionPrepared => "Deletion prepared",
            AuditAction::UserRestored => "User restored",
            AuditAction::DeletionCancelled => "Deletion cancelled",
            AuditAction::DeletionReminder => "Deletion coming",
            AuditAction::DeletionDue => "Deletion date reached",
        }
    }
}

/// Which entries to show: one kind, a first and a last day (UTC, both included). Empty = all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFilter {
    pub action: Option<AuditAction>,
    /// `YYYY-MM-DD`.
    pub from: Option<String>,
    /// `YYYY-MM-DD`.
    pub to: Option<String>,
}

impl AuditFilter {
    /// Reads the filter from an address's values; a date that is not `YYYY-MM-DD` is ignored
    /// (no filter) rather than guessed.
    pub fn from_query(action: &str, from: &str, to: &str) -> AuditFilter {
        AuditFilter {
            action: AuditAction::from_key(action),
            from: day(from),
            to: day(to),
        }
    }

    /// The query string (without `?`) that carries this filter, e.g. for the CSV link.
    pub fn query(&self) -> String {
        let mut parts = Vec::new();
        if let Some(a) = self.action {
            parts.push(format!("action={}", a.key()));
        }
        if let Some(d) = &self.from {
            parts.push(format!("from={d}"));
        }
        if let Some(d) = &self.to {
            parts.push(format!("to={d}"));
        }
        parts.join("&")
    }

    /// Where the CSV of the entries this filter selects is downloaded.
    pub fn csv_download(&self) -> String {
        match self.query() {
            q if q.is_empty() => "/downloads/audit.csv".to_string(),
            q => format!("/downloads/audit.csv?{q}"),
        }
    }
}

/// `text` when it is a plain `YYYY-MM-DD` date (checked by shape and ranges, no calendar).
fn day(text: &str) -> Option<String> {
    let text = text.trim();
    let b = text.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shaped {
        return None;
    }
    let month: u32 = text[5..7].parse().ok()?;
    let day: u32 = text[8..10].parse().ok()?;
    ((1..=12).contains(&month) && (1..=31).contains(&day)).then(|| text.to_string())
}

/// One entry as the page shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntryView {
    /// The entry's number in the team's trail (1, 2, …).
    pub seq: i64,
    /// RFC 3339.
    pub at: String,
    pub actor: String,
    pub action: AuditAction,
    /// The preview or run it is about, when there is one.
    pub target: Option<String>,
    /// Counts and ids, as JSON text.
    pub details: String,
}

/// A page of the trail, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntryView>,
    /// True when older entries matching the filter remain (ask with `before` = the last seq).
    pub more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::assert_names;

    #[test]
    fn every_action_travels_by_its_serde_name() {
        assert_names::<AuditAction>(&[
            "connection_saved",
            "token_forgotten",
            "preview_made",
            "preview_revised",
            "account_chosen",
            "choice_undone",
            "run_confirmed",
            "run_paused",
            "run_resumed",
            "run_cancelled",
            "run_ended",
            "sign_in",
            "sign_in_failed",
            "password_changed",
            "password_reset_link_made",
            "signed_out_everywhere",
            "team_created",
            "member_added",
            "member_role_changed",
            "member_removed",
            "invitation_made",
            "invitation_accepted",
            "invitation_revoked",
            "sign_on_linked",
            "email_confirmed",
            "approval_requested",
            "approval_given",
            "approval_declined",
            "team_settings_changed",
            "deletion_prepared",
            "user_restored",
            "deletion_cancelled",
            "deletion_reminder",
            "deletion_due",
        ]);
        assert_eq!(
            AuditAction::ALL.as_slice(),
            <AuditAction as strum::VariantArray>::VARIANTS
        );
        for action in AuditAction::ALL {
            let json = serde_json::to_string(&action).unwrap();
            assert_eq!(json, format!("\"{}\"", action.key()));
            assert_eq!(AuditAction::from_key(action.key()), Some(action));
            assert!(!action.words().is_empty());
        }
        assert_eq!(AuditAction::from_key("RUN_ENDED"), None);
        assert_eq!(AuditAction::from_key(""), None);
    }

    #[test]
    fn filters_read_only_plain_dates_and_known_actions() {
        let f = AuditFilter::from_query("run_ended", "2026-11-01", "2026-11-30");
        assert_eq!(f.action, Some(AuditAction::RunEnded));
        assert_eq!(f.query(), "action=run_ended&from=2026-11-01&to=2026-11-30");
        assert_eq!(
            f.csv_download(),
            "/downloads/audit.csv?action=run_ended&from=2026-11-01&to=2026-11-30"
        );
        for bad in [
            "2026-13-01",
            "2026-11-32",
            "26-11-01",
            "2026/11/01",
            "x' OR 1=1",
        ] {
            assert_eq!(AuditFilter::from_query("", bad, "").from, None, "{bad}");
        }
        let none = AuditFilter::from_query("nonsense", "", "");
        assert_eq!(none, AuditFilter::default());
        assert_eq!(none.csv_download(), "/downloads/audit.csv");
    }
}
