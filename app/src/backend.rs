//! The contract between the console's server functions and the server's engine: the server
//! puts an `Arc<dyn ConsoleBackend>` in Leptos context; server functions authorise, call it,
//! and map its errors. Also the plain values that cross to the browser.

use serde::{Deserialize, Serialize};

/// What the storage check reports (shown on the overview and by /healthz).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageStatus {
    /// The database in use: "SQLite" or "PostgreSQL".
    pub database: String,
    /// Number of schema migrations applied.
    pub migrations: i64,
    /// Jobs recorded for this team.
    pub jobs: i64,
    /// Server time of the check, RFC 3339.
    pub checked_at: String,
}

/// The team's saved connection, as the browser may see it: never the token, only its hint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionView {
    pub site_url: Option<String>,
    pub scim_base_url: Option<String>,
    /// True when a token is saved.
    pub token_saved: bool,
    /// The token's last 4 characters, for "token saved, ending …ab12" (empty for short tokens).
    pub token_hint: String,
    /// The admin's own email: their account is never touched by a run.
    pub operator_email: Option<String>,
    pub updated_at: Option<String>,
}

/// What the admin submits on the Connect screen. An empty `token` keeps the saved one (the
/// browser never has it to send back). Changing the site without a new token forgets the old
/// one, so a token is never sent to a site it was not saved for, unless the owner answered
/// the page's question with "keep it for the new address" (`keep_token`: the site moved).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionForm {
    pub site_url: String,
    pub scim_base_url: Option<String>,
    /// Never printed (see [`Hidden`](crate::hidden::Hidden)).
    pub token: Option<crate::hidden::Hidden<String>>,
    pub operator_email: Option<String>,
    /// The owner chose to keep the saved token for a changed address.
    #[serde(default)]
    pub keep_token: bool,
}

/// Why the Choose page came back after a form was sent. The address carries only this code
/// (`/choose?error=no_file`), never words: a link from anywhere must not be able to put its
/// own text ("your token expired, paste it at …") into the console's alert box. The details of
/// a failed preview (a file's bad line, the site's answer) stay in the admin's own session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
// The code in the address (`no_file`, …: `Named`); anything else is ignored (nothing is shown).
#[derive(strum::IntoStaticStr, strum::EnumString, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum ChooseProblem {
    NoFile,
    TooLarge,
    UnreadableUpload,
    BadColumn,
    NoAction,
    NoneTicked,
    PreviewFailed,
}

impl ChooseProblem {
    /// What the admin reads for this code (for `PreviewFailed`, when the session no longer
    /// holds the details).
    pub fn words(self) -> &'static str {
        match self {
            ChooseProblem::NoFile => {
                "Choose a file, or paste a list of emails or account IDs, then try again."
            }
            ChooseProblem::TooLarge => {
                "The file is larger than 10 MiB; split it into smaller files and try again."
            }
            ChooseProblem::UnreadableUpload => {
                "The upload could not be read (files up to 10 MiB are accepted); try again."
            }
            ChooseProblem::BadColumn => {
                "The column must be a number: 1 for the first column, 2 for the second, and so on."
            }
            ChooseProblem::NoAction => "Choose either Delete or Deactivate, then try again.",
            ChooseProblem::NoneTicked => "No user was ticked: tick at least one user.",
            ChooseProblem::PreviewFailed => {
                "The preview could not be made. Try again; if it fails again, check the server log."
            }
        }
    }
}

pub use ::model::report::ReportKind;

/// The connection check's verdict in plain words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub ok: bool,
    /// Which verdict it is (the Connect page picks its hint by it).
    pub kind: crate::model::DiagnosisKind,
    pub message: String,
    pub user_count: Option<usize>,
}

/// A stored preview as the Preview and Confirm screens show it (rows come page by page).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewSummary {
    pub id: crate::ids::PreviewId,
    pub created_at: String,
    pub action: crate::model::Action,
    pub source: crate::model::PreviewSource,
    pub counts: crate::model::PreviewCounts,
    pub total_rows: usize,
    pub demote_privileged: bool,
    /// "Deactivate now, delete after N days": the date (`YYYY-MM-DD`, in the team's time zone) of the deletion.
    #[serde(default)]
    pub delete_on: Option<String>,
    /// What the admin must type to start the run, e.g. `DELETE 37 USERS`.
    pub phrase: String,
    /// True once a job was started from it (a preview runs at most once).
    pub used: bool,
    /// Its run needs a second operator's approval (the team's setting).
    #[serde(default)]
    pub needs_approval: bool,
    /// The request for approval made from it, if any.
    #[serde(default)]
    pub approval: Option<crate::team::ApprovalView>,
}

/// A request for approval no run came from (awaiting, declined or expired), as Overview and
/// History list it beside the runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRequestView {
    pub preview_id: crate::ids::PreviewId,
    pub action: crate::model::Action,
    /// Users the run would process.
    pub users: u64,
    pub approval: crate::team::ApprovalView,
}

/// What waits for the person looking, in their team: Overview's "Waiting for you", and the
/// count beside the team's name in the header. Each list holds only what is still open, so an
/// item leaves it once handled (approved, declined, resumed, cancelled, or out of its window).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingForYou {
    /// Other people's requests this person may approve, oldest first (never their own; none
    /// for a viewer).
    pub to_approve: Vec<ApprovalRequestView>,
    /// Their own requests still awaiting a second operator, or declined (with the reason).
    pub yours: Vec<ApprovalRequestView>,
    /// The team's paused runs: someone has to resume or cancel them (none for a viewer).
    pub to_decide: Vec<JobView>,
    /// The team's runs that ended in the last days with users not done: failed, or stopped
    /// by something other than a person's cancel.
    pub with_failures: Vec<JobView>,
    /// Deletions the team's retention policy prepared, no run started from them yet
    /// (operators and owners only: the way on is to confirm one).
    #[serde(default)]
    pub prepared: Vec<crate::team::PreparedDeletionView>,
    /// Undo windows whose deletion comes within 7 days, soonest first, and those whose date
    /// came with a preview waiting for a person to confirm it ("Ask again at the date").
    #[serde(default)]
    pub deletions_due: Vec<DeletionDueView>,
}

/// An undo window's coming deletion, as "Waiting for you" lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionDueView {
    /// The run that deactivated the users (its page restores them).
    pub job_id: crate::ids::JobId,
    /// `YYYY-MM-DD` (UTC).
    pub delete_on: String,
    /// Users still to be deleted at the date.
    pub users: u64,
    /// The date came and this preview waits for a person to confirm it.
    pub waiting_preview: Option<crate::ids::PreviewId>,
}

impl WaitingForYou {
    /// How many things wait: the header's count.
    pub fn count(&self) -> usize {
        self.to_approve.len()
            + self.yours.len()
            + self.to_decide.len()
            + self.with_failures.len()
            + self.prepared.len()
            + self.deletions_due.len()
    }
}

/// One page of preview rows, optionally filtered by outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewRowsPage {
    pub rows: Vec<crate::model::PreviewRow>,
    /// Rows matching the filter, all pages together.
    pub matching: usize,
    pub offset: usize,
}

/// A run, as the Run and History screens show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    pub id: crate::ids::JobId,
    pub created_at: String,
    pub created_by: String,
    pub site_url: String,
    pub action: crate::model::Action,
    pub state: crate::model::JobState,
    /// Why it paused, stopped or failed, in plain words.
    pub reason: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub total: u64,
    pub done: u64,
    /// Final results per outcome, outcomes with no users left out.
    pub counts: Vec<(crate::model::ItemOutcome, u64)>,
    /// The second operator who approved it, when the team needs approval.
    #[serde(default)]
    pub approved_by: Option<String>,
    /// "Deactivate now, delete after N days": its undo window (read on the Run page only).
    #[serde(default)]
    pub undo: Option<UndoWindowView>,
}

/// A run's undo window as its page shows it (docs/undo-window.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoWindowView {
    /// `YYYY-MM-DD` (the team's time zone): the date the phrase named.
    pub delete_on: String,
    /// Until the date: users may be restored and the deletion cancelled.
    pub open: bool,
    /// What became of it, in words ("Deactivated — deletion on 2027-01-06", "Deletion
    /// cancelled: everyone restored", …).
    pub status: String,
    /// Who typed the phrase.
    pub confirmed_by: String,
    /// The run that deleted at the date, or the preview waiting for a person.
    pub delete_job: Option<crate::ids::JobId>,
    pub waiting_preview: Option<crate::ids::PreviewId>,
    /// What an owner types for "Delete now".
    pub phrase: String,
    pub users: Vec<UndoUserView>,
}

/// One user of an undo window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoUserView {
    pub account_id: String,
    pub name: String,
    pub email: String,
    /// "restored by Ana on …", "restored — not deleted", "changed since — not deleted",
    /// "deleted at the date" or "" while nothing happened to them.
    pub outcome: String,
    /// Still to be deleted at the date, so "Restore" is offered.
    pub restorable: bool,
}

/// One entry of a run's live log; watchers resume after the last `seq` they saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobEventView {
    pub seq: i64,
    pub at: String,
    pub result: Option<crate::model::ItemResult>,
    /// The job's new state, when this event is a change of state.
    pub state: Option<crate::model::JobState>,
    pub reason: Option<String>,
}

/// A page of a run's results, newest first: the Run page opens with the newest page and asks
/// for older ones on demand, instead of replaying the whole log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResultsPage {
    /// Result events only, newest first.
    pub results: Vec<JobEventView>,
    /// The job's newest event of any kind when the page was read (0 when none): the live log
    /// resumes after it.
    pub last_seq: i64,
    /// True when results older than the last one here exist.
    pub more: bool,
}

pub use ::model::deletion::JobCommand;

#[cfg(feature = "ssr")]
pub use server_side::*;

#[cfg(feature = "ssr")]
mod server_side {
    use super::*;
    use std::sync::Arc;

    /// An error the console may show: `message` is plain words for the admin; internal
    /// detail is logged by the backend, never returned.
    #[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
    #[error("{message}")]
    pub struct ConsoleError {
        pub message: String,
        pub kind: ConsoleErrorKind,
    }

    /// What kind of no it is, so plain HTTP routes answer with the right status.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum ConsoleErrorKind {
        /// The request cannot be carried out as asked (wrong phrase, no connection, …).
        Refused,
        /// The thing asked for does not exist for the caller's team.
        NotFound,
        /// Offboard itself failed (database, encryption); details are in the server log.
        Failed,
        /// The caller's role in the team does not allow it (a viewer starting a run).
        Forbidden,
    }

    impl ConsoleError {
        pub fn new(message: impl Into<String>) -> ConsoleError {
            ConsoleError {
                message: message.into(),
                kind: ConsoleErrorKind::Refused,
            }
        }

        pub fn not_found(message: impl Into<String>) -> ConsoleError {
            ConsoleError {
                message: message.into(),
                kind: ConsoleErrorKind::NotFound,
            }
        }

        pub fn failed(message: impl Into<String>) -> ConsoleError {
            ConsoleError {
                message: message.into(),
                kind: ConsoleErrorKind::Failed,
            }
        }

        pub fn forbidden(message: impl Into<String>) -> ConsoleError {
            ConsoleError {
                message: message.into(),
                kind: ConsoleErrorKind::Forbidden,
            }
        }
    }

    use crate::model::{Action, PreviewOutcome, SiteUser};

    /// Everything the console's server functions need from the server. All of it is scoped
    /// to the caller's team (one default team until accounts arrive).
    #[async_trait::async_trait]
    pub trait ConsoleBackend: Send + Sync {
        async fn storage_status(&self) -> Result<StorageStatus, ConsoleError>;

        // Connect
        async fn connection(&self) -> Result<ConnectionView, ConsoleError>;
        /// Saves (token encrypted) and checks the connection.
        async fn save_connection(
            &self,
            form: ConnectionForm,
        ) -> Result<(ConnectionView, Diagnosis), ConsoleError>;
        async fn forget_token(&self) -> Result<ConnectionView, ConsoleError>;
        async fn check_connection(&self) -> Result<Diagnosis, ConsoleError>;

        // Choose users -> preview (the listing is taken fresh for each preview)
        async fn preview_file(
            &self,
            file_name: String,
            bytes: Vec<u8>,
            column: Option<usize>,
            action: Action,
            demote_privileged: bool,
        ) -> Result<PreviewSummary, ConsoleError>;
        async fn deactivated_users(&self) -> Result<Vec<SiteUser>, ConsoleError>;
        /// When the daily listings first saw each deactivated user (the Choose page's list).
        async fn deactivated_since(&self) -> Result<crate::team::DeactivatedSince, ConsoleError>;
        async fn preview_picked(
            &self,
            account_ids: Vec<String>,
            action: Action,
            demote_privileged: bool,
        ) -> Result<PreviewSummary, ConsoleError>;
        /// The same input resolved again with other options (action, demotion, column).
        async fn revise_preview(
            &self,
            preview_id: crate::ids::PreviewId,
            action: Action,
            demote_privileged: bool,
            column: Option<usize>,
        ) -> Result<PreviewSummary, ConsoleError>;
        async fn preview(
            &self,
            preview_id: crate::ids::PreviewId,
        ) -> Result<PreviewSummary, ConsoleError>;
        async fn preview_rows(
            &self,
            preview_id: crate::ids::PreviewId,
            outcome: Option<PreviewOutcome>,
            offset: usize,
            limit: usize,
        ) -> Result<PreviewRowsPage, ConsoleError>;

        // Confirm -> run
        /// Checks `typed` against the stored preview's phrase, re-lists the site, and starts
        /// the job in the background. A replayed or forged confirmation is refused.
        async fn start_job(
            &self,
            preview_id: crate::ids::PreviewId,
            typed: String,
        ) -> Result<JobView, ConsoleError>;
        /// Asks another operator to approve the run of this preview (the phrase typed as for
        /// a start); the run starts when one of them types it too ([`Self::start_job`]).
        async fn request_approval(
            &self,
            preview_id: crate::ids::PreviewId,
            typed: String,
        ) -> Result<crate::team::ApprovalView, ConsoleError>;
        /// Declines (or, by its requester, withdraws) a request, with a reason.
        async fn decline_approval(
            &self,
            preview_id: crate::ids::PreviewId,
            reason: String,
        ) -> Result<crate::team::ApprovalView, ConsoleError>;
        /// A new preview of the same users as `preview_id` (a fresh listing of the site, same
        /// action and options): the way on after a request was declined or expired.
        async fn preview_again(
            &self,
            preview_id: crate::ids::PreviewId,
        ) -> Result<PreviewSummary, ConsoleError>;
        /// A new preview of the users run `job_id` did not remove (every result but deleted,
        /// deactivated and already gone), once it has ended: the way on after a cancelled,
        /// failed or stopped run.
        async fn preview_not_removed(
            &self,
            job_id: crate::ids::JobId,
        ) -> Result<PreviewSummary, ConsoleError>;
        /// The team's requests for approval that no run came from, newest first.
        async fn approval_requests(&self) -> Result<Vec<ApprovalRequestView>, ConsoleError>;
        /// What waits for the person looking (Overview's "Waiting for you").
        async fn waiting_for_you(&self) -> Result<WaitingForYou, ConsoleError>;
        async fn job(&self, job_id: crate::ids::JobId) -> Result<JobView, ConsoleError>;
        async fn jobs(&self) -> Result<Vec<JobView>, ConsoleError>;
        async fn control_job(
            &self,
            job_id: crate::ids::JobId,
            command: JobCommand,
        ) -> Result<JobView, ConsoleError>;
        async fn job_events(
            &self,
            job_id: crate::ids::JobId,
            after_seq: i64,
            limit: u32,
        ) -> Result<Vec<JobEventView>, ConsoleError>;
        /// The results before `before_seq` (None = the newest), newest first.
        async fn job_results_page(
            &self,
            job_id: crate::ids::JobId,
            before_seq: Option<i64>,
            limit: u32,
        ) -> Result<JobResultsPage, ConsoleError>;

        // Audit trail
        /// The team's entries matching `filter` with a number below `before` (None = the
        /// newest), newest first.
        async fn audit_page(
            &self,
            filter: crate::audit::AuditFilter,
            before: Option<i64>,
            limit: u32,
        ) -> Result<crate::audit::AuditPage, ConsoleError>;
    }

    /// What the Account, Team and Teams pages need from the server, for whoever is visiting
    /// (signed in or not, with or without a team).
    #[async_trait::async_trait]
    pub trait AccountsBackend: Send + Sync {
        /// How one may sign in here.
        async fn sign_in_options(&self) -> Result<crate::team::SignInOptions, ConsoleError>;
        /// Who is signed in; None for a visitor who is not.
        async fn whoami(&self) -> Result<Option<crate::team::SignedInView>, ConsoleError>;
        /// The caller's team and its members, with a link made just before (shown once).
        async fn team_page(
            &self,
            new_link: Option<crate::team::NewLink>,
        ) -> Result<crate::team::TeamPage, ConsoleError>;
        /// The Team page's notifications section, with a signing secret made just before
        /// (shown once); None for members who are not owners.
        async fn webhook_page(
            &self,
            new_secret: Option<String>,
        ) -> Result<Option<crate::team::WebhookPage>, ConsoleError>;
        /// The Account page's email choices; None for a visitor who is not signed in.
        async fn email_choices(&self) -> Result<Option<crate::team::EmailChoices>, ConsoleError>;
        /// The Team page's retention section; None for members who are not owners.
        async fn retention_page(&self) -> Result<Option<crate::team::RetentionPage>, ConsoleError>;
        /// Every team (console owners only).
        async fn console_teams(&self) -> Result<Vec<crate::team::TeamSummary>, ConsoleError>;
        /// What a setup, invitation or reset link is, if it still works.
        async fn link_info(
            &self,
            purpose: String,
            code: String,
        ) -> Result<crate::team::LinkInfo, ConsoleError>;
    }

    /// The accounts backend from Leptos context.
    pub fn accounts_backend() -> Result<Arc<dyn AccountsBackend>, leptos::prelude::ServerFnError> {
        leptos::prelude::use_context::<Arc<dyn AccountsBackend>>().ok_or_else(|| {
            leptos::prelude::ServerFnError::new("The console is not wired to its backend.")
        })
    }

    /// The session key under which a link just made (invitation, reset) waits for the page
    /// that shows it once.
    pub const NEW_LINK: &str = "new_link";

    /// The session key under which a webhook's signing secret, just made, waits for the Team
    /// page that shows it once.
    pub const NEW_WEBHOOK_SECRET: &str = "new_webhook_secret";

    /// The session key for words to show once on the Account, Team or Teams page (an account
    /// or team form that was refused).
    pub const ACCOUNT_NOTICE: &str = "account_notice";

    /// The session key for words saying what an account or team form did ("<email> was
    /// removed from <team>…"), shown once on the page it leads to.
    pub const ACCOUNT_DONE: &str = "account_done";

    /// The session key under which the upload routes keep the details of a failed preview
    /// for the Choose page (see [`super::ChooseProblem`]).
    pub const CHOOSE_PROBLEM_DETAIL: &str = "choose_problem_detail";
    /// The pasted list of a preview that failed, shown again in the box (the admin's own
    /// session only, never the address).
    pub const CHOOSE_PASTED: &str = "choose_pasted";

    /// The backend from Leptos context, as a server function sees it.
    pub fn backend() -> Result<Arc<dyn ConsoleBackend>, leptos::prelude::ServerFnError> {
        leptos::prelude::use_context::<Arc<dyn ConsoleBackend>>().ok_or_else(|| {
            leptos::prelude::ServerFnError::new("The console is not wired to its backend.")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_form_never_prints_its_token() {
        let form = ConnectionForm {
            site_url: "https://acme.stackenterprise.co".into(),
            scim_base_url: None,
            token: Some(crate::hidden::Hidden::new("s3cret-token-value".into())),
            operator_email: Some("me@acme.example".into()),
            keep_token: false,
        };
        let printed = format!("{form:?} {form:#?}");
        assert!(!printed.contains("s3cret-token-value"), "{printed}");
        assert!(printed.contains("<hidden>"));
        assert!(printed.contains("acme.stackenterprise.co"));
    }

    #[test]
    fn job_command_names_are_pinned() {
        model::names::assert_names::<JobCommand>(&["pause", "resume", "cancel"]);
    }

    #[test]
    fn choose_problems_travel_as_codes_only() {
        use crate::Named;
        model::names::assert_names::<ChooseProblem>(&[
            "no_file",
            "too_large",
            "unreadable_upload",
            "bad_column",
            "no_action",
            "none_ticked",
            "preview_failed",
        ]);
        for problem in <ChooseProblem as strum::VariantArray>::VARIANTS {
            assert_eq!(ChooseProblem::from_key(problem.key()), Some(*problem));
            assert!(!problem.words().is_empty());
        }
        for text in [
            "",
            "Your token expired, paste it at https://evil.example",
            "NO_FILE",
            "no_file; more",
        ] {
            assert_eq!(ChooseProblem::from_key(text), None, "{text}");
        }
    }
}
