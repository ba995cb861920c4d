//! The values Offboard talks about (site users, preview rows, run results), shared by the
//! engine on the server and the pages in the browser.

use crate::names::Named;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A user's role on the Stack Internal site, from SCIM `userType`.
/// Stack omits `userType` for ordinary users; any unknown value is kept verbatim.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Role {
    #[default]
    Registered,
    Moderator,
    Admin,
    Other(String),
}

impl Role {
    /// Reads SCIM `userType` (case-insensitive; absent means an ordinary user).
    pub fn from_user_type(user_type: Option<&str>) -> Role {
        match user_type.map(str::trim) {
            None | Some("") => Role::Registered,
            Some(t) if t.eq_ignore_ascii_case("registered") => Role::Registered,
            Some(t) if t.eq_ignore_ascii_case("moderator") => Role::Moderator,
            Some(t) if t.eq_ignore_ascii_case("admin") => Role::Admin,
            Some(t) => Role::Other(t.to_string()),
        }
    }

    /// Moderators and admins cannot be deleted before being demoted to Registered.
    pub fn is_privileged(&self) -> bool {
        matches!(self, Role::Moderator | Role::Admin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Registered => f.write_str("Registered"),
            Role::Moderator => f.write_str("Moderator"),
            Role::Admin => f.write_str("Admin"),
            Role::Other(s) => f.write_str(s),
        }
    }
}

/// One account on the site as SCIM lists it. `id` is the *account ID* that DELETE takes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SiteUser {
    pub id: String,
    pub external_id: Option<String>,
    pub user_name: Option<String>,
    pub display_name: Option<String>,
    /// Every email value the user has, in the order the server gave them (primary not first).
    pub emails: Vec<String>,
    /// The email marked `primary`, else the first one.
    pub primary_email: Option<String>,
    pub active: bool,
    pub role: Role,
    /// `meta.created` as the server sent it (RFC 3339 text).
    pub created: Option<String>,
}

impl SiteUser {
    /// True when any of the user's emails equals `email`, ignoring case and surrounding space.
    pub fn has_email(&self, email: &str) -> bool {
        let wanted = email.trim();
        self.emails
            .iter()
            .any(|e| e.trim().eq_ignore_ascii_case(wanted))
    }

    /// The best single email to show or report for this user.
    pub fn display_email(&self) -> Option<&str> {
        self.primary_email
            .as_deref()
            .or_else(|| self.emails.first().map(String::as_str))
    }
}

/// What the admin asked the run to do with each selected user. Its [`Named`](crate::names::Named) name (`delete`,
/// `deactivate`) is what forms send, read in any case: anything else is refused rather than
/// guessed, because guessing could turn a deactivation into a deletion. Its JSON name is the
/// variant's own (`Delete`), as stored previews and runs hold it.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    Default,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[strum(serialize_all = "lowercase", ascii_case_insensitive)]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(type_name = "text"))]
pub enum Action {
    /// Irreversible: the account is removed and its content re-attributed to a generic user.
    #[default]
    Delete,
    /// Reversible: SCIM `active` is set to false.
    Deactivate,
    /// "Deactivate now, delete after N days": deactivated now (reversible), and the users still
    /// deactivated and unchanged are deleted at the date the phrase named (the undo window).
    #[strum(serialize = "deactivate_then_delete")]
    DeactivateThenDelete,
}

impl Action {
    /// The first word of the confirmation phrase: what the run does to the users now.
    pub fn verb(self) -> &'static str {
        match self {
            Action::Delete => "DELETE",
            Action::Deactivate | Action::DeactivateThenDelete => "DEACTIVATE",
        }
    }

    /// True when the run leads to a deletion (now or at the end of an undo window): the
    /// team's approval rule treats it as a delete.
    pub fn deletes(self) -> bool {
        matches!(self, Action::Delete | Action::DeactivateThenDelete)
    }

    /// What the runner sends each user now: a deletion or a deactivation.
    pub fn now(self) -> Action {
        match self {
            Action::Delete => Action::Delete,
            Action::Deactivate | Action::DeactivateThenDelete => Action::Deactivate,
        }
    }
}

/// What one row of the preview will lead to. Its [`Named`](crate::names::Named) name (`not_found`, …) is the one in
/// URLs and forms; its JSON name is the variant's own (`NotFound`), as stored previews hold it.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    PartialOrd,
    Ord,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[strum(serialize_all = "snake_case")]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(type_name = "text"))]
pub enum PreviewOutcome {
    /// Resolved to exactly one account, which the run will act on.
    Selected,
    /// No account has this email / account ID.
    NotFound,
    /// No account has it now because an earlier run of this team deleted it (the row names
    /// that run).
    AlreadyDeleted,
    /// Two or more accounts share this email: never acted on automatically.
    Ambiguous,
    /// The row is not an email or an account ID.
    Invalid,
    /// The same account was already selected by an earlier row.
    Duplicate,
    /// A Moderator or Admin, and "demote first" was not chosen.
    Privileged,
    /// On the protected list, or the operator's own account.
    Protected,
    /// The site's system account: never touched.
    SystemAccount,
}

impl PreviewOutcome {
    pub const ALL: [PreviewOutcome; 9] = [
        PreviewOutcome::Selected,
        PreviewOutcome::NotFound,
        PreviewOutcome::AlreadyDeleted,
        PreviewOutcome::Ambiguous,
        PreviewOutcome::Invalid,
        PreviewOutcome::Duplicate,
        PreviewOutcome::Privileged,
        PreviewOutcome::Protected,
        PreviewOutcome::SystemAccount,
    ];

    /// What a row with this outcome will lead to, in the words the Preview page uses for
    /// `action`: "will be deleted" / "will be deactivated" for selected rows, else [`label`].
    ///
    /// [`label`]: PreviewOutcome::label
    pub fn label_for(self, action: Action) -> &'static str {
        match (self, action) {
            (PreviewOutcome::Selected, Action::Delete) => "will be deleted",
            (PreviewOutcome::Selected, Action::Deactivate) => "will be deactivated",
            (PreviewOutcome::Selected, Action::DeactivateThenDelete) => {
                "will be deactivated, then deleted"
            }
            (other, _) => other.label(),
        }
    }

    /// Short label in the admin's words where the action is not known (the command line's
    /// summary). The preview spreadsheet and the pages use [`label_for`](PreviewOutcome::label_for).
    pub fn label(self) -> &'static str {
        match self {
            PreviewOutcome::Selected => "will be processed",
            PreviewOutcome::NotFound => "not found",
            PreviewOutcome::AlreadyDeleted => "already deleted",
            PreviewOutcome::Ambiguous => "ambiguous",
            PreviewOutcome::Invalid => "invalid row",
            PreviewOutcome::Duplicate => "duplicate",
            PreviewOutcome::Privileged => "moderator/admin",
            PreviewOutcome::Protected => "protected",
            PreviewOutcome::SystemAccount => "system account",
        }
    }
}

/// Where the preview's rows came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PreviewSource {
    /// An uploaded file; `column` says which column was read and why.
    File {
        file_name: String,
        column: ColumnChoice,
    },
    /// Users listed as deactivated (`active == false`, checked by Offboard itself).
    Deactivated,
    /// Users the admin ticked by hand in the deactivated list.
    Picked,
}

/// Which column of the admin's file held the emails or account IDs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ColumnChoice {
    /// 0-based column index.
    pub index: usize,
    /// The header text, when the file has a header row.
    pub header: Option<String>,
    /// All column headers (or "Column 1", "Column 2", ... when there is no header row).
    pub all_columns: Vec<String>,
    /// Why this column was picked, in plain words.
    pub reason: String,
    /// Field separator detected, for the admin's information: "comma", "semicolon", "tab".
    pub delimiter: String,
    /// Text encoding detected: "UTF-8", "UTF-8 with BOM", "UTF-16LE", "UTF-16BE", "Windows-1252".
    pub encoding: String,
}

/// One row of the preview: an input row (or a selected user) and what will happen to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewRow {
    /// 1-based line number in the file (None for users picked from a listing).
    pub line: Option<usize>,
    /// The value as the admin gave it (trimmed), or the account ID for listed users.
    pub input: String,
    pub outcome: PreviewOutcome,
    /// Resolved account (None for not found / invalid / ambiguous rows).
    pub account_id: Option<String>,
    pub user_name: Option<String>,
    pub display_name: Option<String>,
    pub emails: Vec<String>,
    pub active: Option<bool>,
    pub role: Option<Role>,
    /// Why, in plain words (empty for plainly selected rows).
    pub reason: String,
    /// Every account an ambiguous row could mean, none of which will be touched (empty for
    /// other rows). Absent in previews stored before it existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
    /// The earlier run of this team that deleted this row's account (already-deleted rows),
    /// or that the site refused it in (rows that may be refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earlier_run: Option<EarlierRun>,
    /// Why the site may refuse this selected row, when Offboard can tell beforehand; the run
    /// still tries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub may_be_refused: Option<String>,
    /// The candidate the admin chose for an ambiguous row, by whom and when: the row is then
    /// selected for that one account (its `candidates` stay, so the choice can be undone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chosen: Option<Choice>,
}

/// An admin's pick among an ambiguous row's candidates, kept with the preview row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub account_id: String,
    /// Who chose, by name.
    pub by: String,
    /// When, as RFC 3339 text (UTC).
    pub at: String,
}

/// An earlier run a preview row cites: which run, when and who started it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EarlierRun {
    pub job_id: String,
    /// The day, as the row says it ("7 Dec 2026", UTC).
    pub day: String,
    /// The person who started it, by name.
    pub by: String,
}

/// One of the accounts an ambiguous row could mean, shown so the admin can tell them apart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub account_id: String,
    pub display_name: Option<String>,
    pub user_name: Option<String>,
    pub emails: Vec<String>,
    /// Active or deactivated on the site (absent in previews stored before it was kept).
    #[serde(default)]
    pub active: Option<bool>,
    /// `meta.created` as the site sent it (RFC 3339 text), when it did.
    #[serde(default)]
    pub created: Option<String>,
    /// The account's role on the site (absent in previews stored before it was kept), so a
    /// choice among candidates applies the same rules as any other row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

impl Candidate {
    pub fn of(user: &SiteUser) -> Candidate {
        Candidate {
            account_id: user.id.clone(),
            display_name: user.display_name.clone(),
            user_name: user.user_name.clone(),
            emails: user.emails.clone(),
            active: Some(user.active),
            created: user.created.clone(),
            role: Some(user.role.clone()),
        }
    }

    /// What tells this account apart from the others, in words: "active · user name bob.ito ·
    /// created 7 Dec 2026".
    pub fn telling_apart(&self) -> String {
        let mut parts = Vec::new();
        match self.active {
            Some(true) => parts.push("active".to_string()),
            Some(false) => parts.push("deactivated".to_string()),
            None => {}
        }
        if let Some(name) = self.user_name.as_deref().filter(|n| !n.trim().is_empty()) {
            parts.push(format!("user name {}", name.trim()));
        }
        if let Some(day) = self.created.as_deref().and_then(day_in_words) {
            parts.push(format!("created {day}"));
        }
        parts.join(" · ")
    }
}

/// "7 Dec 2026" from an RFC 3339 text's date ("2026-12-07T12:15:16Z"); None when it is not one.
pub fn day_in_words(rfc3339: &str) -> Option<String> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let date = rfc3339.trim().get(..10)?;
    let mut parts = date.split('-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let month: usize = month.parse().ok()?;
    let day: u32 = day.parse().ok()?;
    let name = MONTHS.get(month.checked_sub(1)?)?;
    (1..=31)
        .contains(&day)
        .then(|| format!("{day} {name} {year}"))
}

/// How many preview rows ended in each outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewCounts {
    pub selected: usize,
    pub not_found: usize,
    #[serde(default)]
    pub already_deleted: usize,
    pub ambiguous: usize,
    pub invalid: usize,
    pub duplicate: usize,
    pub privileged: usize,
    pub protected: usize,
    pub system_account: usize,
    /// Selected rows the site may refuse (counted in `selected` too): "up to N" will be
    /// deleted when it is not zero.
    #[serde(default)]
    pub may_be_refused: usize,
}

impl PreviewCounts {
    pub fn from_rows(rows: &[PreviewRow]) -> PreviewCounts {
        let mut c = PreviewCounts::default();
        for r in rows {
            *c.slot(r.outcome) += 1;
            if r.outcome == PreviewOutcome::Selected && r.may_be_refused.is_some() {
                c.may_be_refused += 1;
            }
        }
        c
    }

    fn slot(&mut self, outcome: PreviewOutcome) -> &mut usize {
        match outcome {
            PreviewOutcome::Selected => &mut self.selected,
            PreviewOutcome::NotFound => &mut self.not_found,
            PreviewOutcome::AlreadyDeleted => &mut self.already_deleted,
            PreviewOutcome::Ambiguous => &mut self.ambiguous,
            PreviewOutcome::Invalid => &mut self.invalid,
            PreviewOutcome::Duplicate => &mut self.duplicate,
            PreviewOutcome::Privileged => &mut self.privileged,
            PreviewOutcome::Protected => &mut self.protected,
            PreviewOutcome::SystemAccount => &mut self.system_account,
        }
    }

    pub fn get(&self, outcome: PreviewOutcome) -> usize {
        let mut copy = self.clone();
        *copy.slot(outcome)
    }
}

/// The whole preview: what the admin reviews and confirms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preview {
    pub source: PreviewSource,
    pub rows: Vec<PreviewRow>,
    pub counts: PreviewCounts,
    /// Moderators/Admins are demoted to Registered first (else they are skipped).
    pub demote_privileged: bool,
    /// The lines of the admin's file that name nobody (absent in previews stored before it
    /// existed, and for previews not made from a file).
    #[serde(default)]
    pub unread_lines: UnreadLines,
}

/// The lines of an uploaded file that hold no user: its header row and its blank lines. Kept
/// with the preview so the results spreadsheet can account for every line of the file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadLines {
    /// The header row's line, when the file has one.
    #[serde(default)]
    pub header: Option<usize>,
    /// Runs of blank lines (first and last line, both included), in file order: a run of
    /// empty lines costs one pair, however long it is.
    #[serde(default)]
    pub blank: Vec<[usize; 2]>,
}

impl Preview {
    /// Rows the run will not act on and that nobody else covers (a duplicate row is covered
    /// by the row that selected its account), in input order.
    pub fn skipped(&self) -> impl Iterator<Item = &PreviewRow> {
        self.rows.iter().filter(|r| {
            !matches!(
                r.outcome,
                PreviewOutcome::Selected | PreviewOutcome::Duplicate
            )
        })
    }

    /// The rows the run will act on, in input order.
    pub fn selected(&self) -> impl Iterator<Item = &PreviewRow> {
        self.rows
            .iter()
            .filter(|r| r.outcome == PreviewOutcome::Selected)
    }
}

/// How one selected user ended after the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(type_name = "text"))]
pub enum ItemOutcome {
    /// DELETE answered 204 (possibly after demotion).
    Deleted,
    /// PATCH active=false succeeded.
    Deactivated,
    /// DELETE answered 404 and a GET confirmed the user is gone (or an unknown outcome
    /// was settled by a GET that found no user).
    AlreadyGone,
    /// DELETE answered 404 but the user is still there: SCIM deletion is not enabled.
    DeletionNotEnabled,
    /// A Moderator/Admin that could not be deleted (demotion not allowed, or it failed).
    Privileged,
    /// The user created a community: only Stack support can delete them.
    CommunityCreator,
    /// The site refused: system account.
    SystemAccount,
    /// The user changed since the preview (email, role, or gone) and was left alone.
    ChangedSincePreview,
    /// Any other error; `message` carries the server's own words.
    Failed,
    /// Not attempted: the run was cancelled or stopped before reaching this user.
    NotAttempted,
}

impl ItemOutcome {
    /// True for outcomes where the user no longer exists / is no longer active as asked.
    pub fn is_success(self) -> bool {
        matches!(
            self,
            ItemOutcome::Deleted | ItemOutcome::Deactivated | ItemOutcome::AlreadyGone
        )
    }

    /// True when a user with this result is still on the site as the run found it, so a new
    /// preview of "the users not yet removed" takes them (issue 23 item 4). The rule: every
    /// result but deleted, deactivated and already gone. Users skipped for a reason
    /// (moderator, community creator, changed since the preview, system account…) are taken
    /// too: the new preview resolves them against a fresh listing and says again, row by row,
    /// whatever still holds, so nothing is decided here on old information.
    pub fn not_yet_removed(self) -> bool {
        !self.is_success()
    }

    pub fn label(self) -> &'static str {
        match self {
            ItemOutcome::Deleted => "deleted",
            ItemOutcome::Deactivated => "deactivated",
            ItemOutcome::AlreadyGone => "already gone",
            ItemOutcome::DeletionNotEnabled => "deletion not enabled",
            ItemOutcome::Privileged => "moderator/admin",
            ItemOutcome::CommunityCreator => "community creator",
            ItemOutcome::SystemAccount => "system account",
            ItemOutcome::ChangedSincePreview => "changed since preview",
            ItemOutcome::Failed => "failed",
            ItemOutcome::NotAttempted => "not attempted",
        }
    }
}

/// The result for one selected user, emitted the moment it is known. Storage reads it as
/// stored (`job_items`), its counts from the database's integers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct ItemResult {
    pub account_id: String,
    pub email: Option<String>,
    pub outcome: ItemOutcome,
    /// The server's own message, or Offboard's explanation, in plain words.
    pub message: String,
    /// Requests sent for this user (DELETE, GET, PATCH), retries included.
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "i64"))]
    pub attempts: u32,
    /// Wall time spent on this user, in milliseconds.
    #[cfg_attr(feature = "sqlx", sqlx(try_from = "i64"))]
    pub elapsed_ms: u64,
    /// True when the user was demoted to Registered before deletion.
    pub demoted: bool,
}

/// Where one user of a run is. A user left `Sending` by a crash is settled with a GET before
/// anything is sent again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(rename_all = "lowercase"))]
pub enum ItemState {
    /// Not yet acted on.
    Pending,
    /// A request for this user may be on its way (recorded before it is sent).
    Sending,
    /// Has its final result.
    Done,
}

/// Where a job is. `Finished`, `Stopped` and `Failed` are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(rename_all = "lowercase"))]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::VariantArray)]
#[strum(serialize_all = "lowercase")]
pub enum JobState {
    /// Created, waiting for the runner.
    Queued,
    Running,
    /// Waiting for the admin (by request, or because the site needs a setting changed).
    Paused,
    /// The admin cancelled; the runner is finishing the request in flight.
    Cancelling,
    /// Every user has a result.
    Finished,
    /// Ended before every user was processed (cancelled, or a stop condition); see the reason.
    Stopped,
    /// Could not continue because of an error in Offboard itself; see the reason.
    Failed,
}

impl JobState {
    pub const ALL: [JobState; 7] = [
        JobState::Queued,
        JobState::Running,
        JobState::Paused,
        JobState::Cancelling,
        JobState::Finished,
        JobState::Stopped,
        JobState::Failed,
    ];

    /// True once the job can no longer change.
    pub fn has_ended(self) -> bool {
        matches!(
            self,
            JobState::Finished | JobState::Stopped | JobState::Failed
        )
    }

    /// States the server picks up again after a restart (a paused job waits for the admin).
    pub fn resumes_at_start(self) -> bool {
        matches!(
            self,
            JobState::Queued | JobState::Running | JobState::Cancelling
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// What a connection check found, as the Connect page tells it apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum DiagnosisKind {
    Ok,
    BadToken,
    NotScim,
    Tls,
    Dns,
    Connect,
    Timeout,
    Throttled,
    ServerError,
    Failed,
    /// No site or no token is saved yet.
    NotConnected,
    /// The address typed on Connect is not one Offboard can use (nothing was saved).
    BadUrl,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::assert_names;
    use strum::VariantArray;

    #[test]
    fn a_candidate_is_told_apart_in_words() {
        let mut c = Candidate {
            account_id: "235".into(),
            display_name: Some("Bob Ito".into()),
            user_name: Some("bob.ito".into()),
            emails: vec!["bob.ito235@example.com".into()],
            active: Some(false),
            created: Some("2026-12-07T12:15:16Z".into()),
            role: None,
        };
        assert_eq!(
            c.telling_apart(),
            "deactivated · user name bob.ito · created 7 Dec 2026"
        );
        c.active = Some(true);
        c.user_name = Some("  ".into());
        c.created = Some("yesterday".into());
        assert_eq!(c.telling_apart(), "active");
        c.active = None;
        c.created = None;
        assert_eq!(c.telling_apart(), "");
        for bad in [
            "",
            "2026-13-01",
            "2026-00-10",
            "20-12-07T",
            "2026-12-32",
            "２０２６-12-07",
        ] {
            assert_eq!(day_in_words(bad), None, "{bad}");
        }
        assert_eq!(day_in_words("2026-01-31").as_deref(), Some("31 Jan 2026"));
    }

    #[test]
    fn action_names_are_pinned_and_read_in_any_case() {
        assert_names::<Action>(&["delete", "deactivate", "deactivate_then_delete"]);
        assert_eq!(Action::from_key(" DEACTIVATE "), Some(Action::Deactivate));
        assert_eq!(Action::from_key("del"), None);
        assert_eq!(Action::from_key("Delete;drop"), None);
        // Stored previews and runs hold the variant's own name.
        assert_eq!(
            serde_json::to_string(&Action::Delete).unwrap(),
            "\"Delete\""
        );
    }

    #[test]
    fn preview_outcome_names_are_pinned() {
        assert_names::<PreviewOutcome>(&[
            "selected",
            "not_found",
            "already_deleted",
            "ambiguous",
            "invalid",
            "duplicate",
            "privileged",
            "protected",
            "system_account",
        ]);
        assert_eq!(PreviewOutcome::from_key("NotFound"), None);
        assert_eq!(PreviewOutcome::ALL.as_slice(), PreviewOutcome::VARIANTS);
        assert_eq!(
            serde_json::to_string(&PreviewOutcome::NotFound).unwrap(),
            "\"NotFound\""
        );
    }

    #[test]
    fn job_state_names_are_pinned_and_match_the_stored_json() {
        assert_names::<JobState>(&[
            "queued",
            "running",
            "paused",
            "cancelling",
            "finished",
            "stopped",
            "failed",
        ]);
        assert_eq!(JobState::ALL.as_slice(), JobState::VARIANTS);
        for state in JobState::ALL {
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.key()));
            assert_eq!(state.to_string(), state.key());
        }
        assert_eq!(JobState::from_key("Running"), None);
    }

    #[test]
    fn diagnosis_names_are_pinned_and_match_the_json() {
        assert_names::<DiagnosisKind>(&[
            "ok",
            "bad_token",
            "not_scim",
            "tls",
            "dns",
            "connect",
            "timeout",
            "throttled",
            "server_error",
            "failed",
            "not_connected",
            "bad_url",
        ]);
        for kind in DiagnosisKind::VARIANTS {
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.key()));
        }
    }
}

/// What the admin can ask of a running job. Its name (`pause`, `resume`, `cancel`: `Named`) is
/// what the `control_job` server function takes, in any case.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[strum(serialize_all = "lowercase", ascii_case_insensitive)]
pub enum JobCommand {
    Pause,
    Resume,
    Cancel,
}
