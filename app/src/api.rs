//! The console's server functions: each one calls one `ConsoleBackend` method and turns its
//! error into plain words the page can show. Arguments are flat strings, numbers and bools so
//! the default URL-encoded codec (and a plain HTML form) can carry them.

use crate::backend::{
    ConnectionView, Diagnosis, JobEventView, JobResultsPage, JobView, PreviewRowsPage,
    PreviewSummary,
};
use crate::model::{Action, SiteUser};
use crate::Named;
use leptos::prelude::*;
use leptos::server_fn::{codec::Post, Bytes, ContentType, Decodes, Encodes, Format, FormatType};
use serde::{de::DeserializeOwned, Serialize};

/// The answers of the server functions: JSON, exactly as Leptos's own `Json` sends them, but
/// read in the browser as text (`serde_json::from_str`). Why: the data a page finds in its HTML
/// (resources) is read as text too, and Leptos reads server-function answers as bytes
/// (`from_slice`); two readers made the browser bundle carry two copies of the reading code of
/// every type (about 3 % of the gzipped WASM, docs/benchmarks.md).
pub struct JsonText;

/// How every server function below answers ([`JsonText`] in a POST response).
pub type JsonAnswer = Post<JsonText>;

impl ContentType for JsonText {
    const CONTENT_TYPE: &'static str = "application/json";
}

impl FormatType for JsonText {
    const FORMAT_TYPE: Format = Format::Text;
}

impl<T: Serialize> Encodes<T> for JsonText {
    type Error = serde_json::Error;

    fn encode(output: &T) -> Result<Bytes, Self::Error> {
        serde_json::to_vec(output).map(Bytes::from)
    }
}

impl<T: DeserializeOwned> Decodes<T> for JsonText {
    type Error = serde_json::Error;

    fn decode(bytes: Bytes) -> Result<T, Self::Error> {
        let text = std::str::from_utf8(&bytes).map_err(serde::de::Error::custom)?;
        serde_json::from_str(text)
    }
}

/// Splits a list of account IDs sent as one text (one per line, or separated by commas).
pub fn split_ids(text: &str) -> Vec<String> {
    text.split(['\n', '\r', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// An optional form field: blank means "not given".
#[cfg_attr(not(feature = "ssr"), allow(dead_code))]
fn given(text: String) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_string())
}

#[cfg_attr(not(feature = "ssr"), allow(dead_code))]
fn action_arg(text: &str) -> Result<Action, ServerFnError> {
    Action::from_key(text).ok_or_else(|| ServerFnError::new("Choose either Delete or Deactivate."))
}

/// The service's refusal as the server function's error. A role that does not allow it
/// answers 403 and something of another team (or nothing) 404, like the plain routes.
#[cfg(feature = "ssr")]
fn plain(e: crate::backend::ConsoleError) -> ServerFnError {
    use crate::backend::ConsoleErrorKind;
    let status = match e.kind {
        ConsoleErrorKind::Forbidden => Some(leptos::server_fn::http_export::StatusCode::FORBIDDEN),
        ConsoleErrorKind::NotFound => Some(leptos::server_fn::http_export::StatusCode::NOT_FOUND),
        ConsoleErrorKind::Refused | ConsoleErrorKind::Failed => None,
    };
    if let (Some(status), Some(response)) = (status, use_context::<leptos_axum::ResponseOptions>())
    {
        response.set_status(status);
    }
    ServerFnError::new(e.message)
}

/// Takes (and removes) what a form left in the visitor's session for the next page.
#[cfg(feature = "ssr")]
async fn take_from_session<T: DeserializeOwned>(key: &str) -> Option<T> {
    let session = leptos_axum::extract::<tower_sessions::Session>()
        .await
        .ok()?;
    session.remove::<T>(key).await.ok().flatten()
}

/// Who is signed in (None for a visitor who is not), for the header and the Account page.
#[server(endpoint = "whoami", output = JsonAnswer)]
pub async fn whoami() -> Result<Option<crate::team::SignedInView>, ServerFnError> {
    crate::backend::accounts_backend()?
        .whoami()
        .await
        .map_err(plain)
}

/// How one may sign in here (is single sign-on set up).
#[server(endpoint = "sign_in_options", output = JsonAnswer)]
pub async fn sign_in_options() -> Result<crate::team::SignInOptions, ServerFnError> {
    crate::backend::accounts_backend()?
        .sign_in_options()
        .await
        .map_err(plain)
}

/// Words a refused account form left for the page (shown once).
#[server(endpoint = "account_notice", output = JsonAnswer)]
pub async fn account_notice() -> Result<(Option<String>, Option<String>), ServerFnError> {
    // A refusal's words, then what a form did: each shown once.
    let refused = take_from_session::<String>(crate::backend::ACCOUNT_NOTICE).await;
    let done = take_from_session::<String>(crate::backend::ACCOUNT_DONE).await;
    Ok((refused, done))
}

/// The Team page: the team, its members, and a link an owner just made (shown once).
#[server(endpoint = "team_page", output = JsonAnswer)]
pub async fn team_page() -> Result<crate::team::TeamPage, ServerFnError> {
    let link = take_from_session::<crate::team::NewLink>(crate::backend::NEW_LINK).await;
    crate::backend::accounts_backend()?
        .team_page(link)
        .await
        .map_err(plain)
}

/// The Team page's notifications section (owners only), with a signing secret just made.
#[server(endpoint = "webhook_page", output = JsonAnswer)]
pub async fn webhook_page() -> Result<Option<crate::team::WebhookPage>, ServerFnError> {
    let secret = take_from_session::<String>(crate::backend::NEW_WEBHOOK_SECRET).await;
    crate::backend::accounts_backend()?
        .webhook_page(secret)
        .await
        .map_err(plain)
}

/// The Account page's email choices (None when not signed in).
#[server(endpoint = "email_choices", output = JsonAnswer)]
pub async fn email_choices() -> Result<Option<crate::team::EmailChoices>, ServerFnError> {
    crate::backend::accounts_backend()?
        .email_choices()
        .await
        .map_err(plain)
}

/// The Team page's retention section (owners only): the team's time zone and policy.
#[server(endpoint = "retention_page", output = JsonAnswer)]
pub async fn retention_page() -> Result<Option<crate::team::RetentionPage>, ServerFnError> {
    crate::backend::accounts_backend()?
        .retention_page()
        .await
        .map_err(plain)
}

/// The console owner's Teams page: every team, and a reset link just made (shown once).
#[server(endpoint = "console_teams", output = JsonAnswer)]
pub async fn console_teams(
) -> Result<(Vec<crate::team::TeamSummary>, Option<crate::team::NewLink>), ServerFnError> {
    let teams = crate::backend::accounts_backend()?
        .console_teams()
        .await
        .map_err(plain)?;
    let link = take_from_session::<crate::team::NewLink>(crate::backend::NEW_LINK).await;
    Ok((teams, link))
}

/// Whether a setup, invitation or reset link still works (and an invitation's team and role).
#[server(endpoint = "link_info", output = JsonAnswer)]
pub async fn link_info(
    purpose: String,
    code: String,
) -> Result<crate::team::LinkInfo, ServerFnError> {
    crate::backend::accounts_backend()?
        .link_info(purpose, code)
        .await
        .map_err(plain)
}

/// The words for a Choose-page problem code: fixed words, or for a failed preview the
/// details kept in the caller's own session. `None` for an unknown code.
#[server(endpoint = "choose_problem", output = JsonAnswer)]
pub async fn choose_problem(code: String) -> Result<Option<String>, ServerFnError> {
    use crate::backend::ChooseProblem;
    let Some(problem) = ChooseProblem::from_key(&code) else {
        return Ok(None);
    };
    let detail = match problem {
        ChooseProblem::PreviewFailed => {
            match leptos_axum::extract::<tower_sessions::Session>().await {
                Ok(session) => session
                    .get::<String>(crate::backend::CHOOSE_PROBLEM_DETAIL)
                    .await
                    .ok()
                    .flatten(),
                Err(_) => None,
            }
        }
        _ => None,
    };
    Ok(Some(detail.unwrap_or_else(|| problem.words().to_string())))
}

/// The list the admin pasted before a preview failed, to show it again (their own session).
#[server(endpoint = "choose_pasted", output = JsonAnswer)]
pub async fn choose_pasted() -> Result<Option<String>, ServerFnError> {
    // Shown once: a later visit to the page starts with an empty box.
    Ok(take_from_session::<String>(crate::backend::CHOOSE_PASTED).await)
}

/// The saved connection (never the token itself).
#[server(endpoint = "connection", output = JsonAnswer)]
pub async fn load_connection() -> Result<ConnectionView, ServerFnError> {
    crate::backend::backend()?.connection().await.map_err(plain)
}

/// Saves the Connect form and checks the connection. A blank token keeps the saved one.
#[server(endpoint = "save_connection", output = JsonAnswer)]
pub async fn save_connection(
    site_url: String,
    scim_base_url: String,
    token: String,
    operator_email: String,
    // "keep": the owner keeps the saved token for a changed address (absent from a form that
    // did not ask: the token is then forgotten).
    keep_token: Option<String>,
) -> Result<(ConnectionView, Diagnosis), ServerFnError> {
    let form = crate::backend::ConnectionForm {
        site_url: site_url.trim().to_string(),
        scim_base_url: given(scim_base_url),
        // The token is kept verbatim apart from surrounding space: copy-paste adds newlines.
        token: given(token).map(crate::hidden::Hidden::new),
        operator_email: given(operator_email),
        keep_token: keep_token.as_deref() == Some("keep"),
    };
    crate::backend::backend()?
        .save_connection(form)
        .await
        .map_err(plain)
}

#[server(endpoint = "forget_token", output = JsonAnswer)]
pub async fn forget_token() -> Result<ConnectionView, ServerFnError> {
    crate::backend::backend()?
        .forget_token()
        .await
        .map_err(plain)
}

#[server(endpoint = "check_connection", output = JsonAnswer)]
pub async fn check_connection() -> Result<Diagnosis, ServerFnError> {
    crate::backend::backend()?
        .check_connection()
        .await
        .map_err(plain)
}

/// A preview from a pasted list or a file's text (files normally go through `/choose/upload`).
/// `column` is 1-based (1 = the first column), as the admin counts.
#[server(endpoint = "preview_text", output = JsonAnswer)]
pub async fn preview_text(
    file_name: String,
    text: String,
    column: Option<usize>,
    action: String,
    demote: bool,
) -> Result<PreviewSummary, ServerFnError> {
    let action = action_arg(&action)?;
    crate::backend::backend()?
        .preview_file(file_name, text.into_bytes(), column, action, demote)
        .await
        .map_err(plain)
}

/// When the retention policy's daily listings first saw each user deactivated.
#[server(endpoint = "deactivated_since", output = JsonAnswer)]
pub async fn deactivated_since() -> Result<crate::team::DeactivatedSince, ServerFnError> {
    crate::backend::backend()?
        .deactivated_since()
        .await
        .map_err(plain)
}

#[server(endpoint = "deactivated_users", output = JsonAnswer)]
pub async fn deactivated_users() -> Result<Vec<SiteUser>, ServerFnError> {
    crate::backend::backend()?
        .deactivated_users()
        .await
        .map_err(plain)
}

/// A preview of users ticked in the deactivated list; `account_ids` one per line.
#[server(endpoint = "preview_picked", output = JsonAnswer)]
pub async fn preview_picked(
    account_ids: String,
    action: String,
    demote: bool,
) -> Result<PreviewSummary, ServerFnError> {
    let action = action_arg(&action)?;
    let ids = split_ids(&account_ids);
    if ids.is_empty() {
        return Err(ServerFnError::new("Tick at least one user first."));
    }
    crate::backend::backend()?
        .preview_picked(ids, action, demote)
        .await
        .map_err(plain)
}

/// The same input again with other options; `column` is 1-based (1 = the first column).
#[server(endpoint = "revise_preview", output = JsonAnswer)]
pub async fn revise_preview(
    preview_id: String,
    action: String,
    demote: bool,
    column: Option<usize>,
) -> Result<PreviewSummary, ServerFnError> {
    let action = action_arg(&action)?;
    crate::backend::backend()?
        .revise_preview(preview_id.into(), action, demote, column)
        .await
        .map_err(plain)
}

#[server(endpoint = "preview", output = JsonAnswer)]
pub async fn load_preview(preview_id: String) -> Result<PreviewSummary, ServerFnError> {
    crate::backend::backend()?
        .preview(preview_id.into())
        .await
        .map_err(plain)
}

/// One page of rows; `outcome` is a [`PreviewOutcome`](crate::model::PreviewOutcome)'s name (`not_found`, …: [`Named`]) or
/// empty (or unknown) for every row.
#[server(endpoint = "preview_rows", output = JsonAnswer)]
pub async fn preview_rows(
    preview_id: String,
    outcome: String,
    offset: usize,
    limit: usize,
) -> Result<PreviewRowsPage, ServerFnError> {
    crate::backend::backend()?
        .preview_rows(
            preview_id.into(),
            crate::model::PreviewOutcome::from_key(&outcome),
            offset,
            limit.min(500),
        )
        .await
        .map_err(plain)
}

/// Starts the run; the server checks `typed` against the stored preview's phrase.
#[server(endpoint = "start_job", output = JsonAnswer)]
pub async fn start_job(preview_id: String, typed: String) -> Result<JobView, ServerFnError> {
    crate::backend::backend()?
        .start_job(preview_id.into(), typed)
        .await
        .map_err(plain)
}

/// Asks a second operator to approve this preview's run; `typed` is the phrase.
#[server(endpoint = "request_approval", output = JsonAnswer)]
pub async fn request_approval(
    preview_id: String,
    typed: String,
) -> Result<crate::team::ApprovalView, ServerFnError> {
    crate::backend::backend()?
        .request_approval(preview_id.into(), typed)
        .await
        .map_err(plain)
}

/// Declines a request for approval (or withdraws one's own), with a reason.
#[server(endpoint = "decline_approval", output = JsonAnswer)]
pub async fn decline_approval(
    preview_id: String,
    reason: String,
) -> Result<crate::team::ApprovalView, ServerFnError> {
    crate::backend::backend()?
        .decline_approval(preview_id.into(), reason)
        .await
        .map_err(plain)
}

/// The team's requests for approval that no run came from (Overview and History list them).
#[server(endpoint = "approval_requests", output = JsonAnswer)]
pub async fn approval_requests() -> Result<Vec<crate::backend::ApprovalRequestView>, ServerFnError>
{
    crate::backend::backend()?
        .approval_requests()
        .await
        .map_err(plain)
}

/// What waits for the person looking: Overview's "Waiting for you".
#[server(endpoint = "waiting_for_you", output = JsonAnswer)]
pub async fn waiting_for_you() -> Result<crate::backend::WaitingForYou, ServerFnError> {
    crate::backend::backend()?
        .waiting_for_you()
        .await
        .map_err(plain)
}

#[server(endpoint = "job", output = JsonAnswer)]
pub async fn load_job(job_id: String) -> Result<JobView, ServerFnError> {
    crate::backend::backend()?
        .job(job_id.into())
        .await
        .map_err(plain)
}

#[server(endpoint = "jobs", output = JsonAnswer)]
pub async fn list_jobs() -> Result<Vec<JobView>, ServerFnError> {
    crate::backend::backend()?.jobs().await.map_err(plain)
}

/// One page of the team's audit trail, newest first: `action` is an action's name (empty =
/// all), `from`/`to` are `YYYY-MM-DD` days (empty = open), `before` the number of the last
/// entry already shown (0 = start from the newest).
#[server(endpoint = "audit_page")]
pub async fn audit_page(
    action: String,
    from: String,
    to: String,
    before: i64,
) -> Result<crate::audit::AuditPage, ServerFnError> {
    let filter = crate::audit::AuditFilter::from_query(&action, &from, &to);
    crate::backend::backend()?
        .audit_page(filter, (before > 0).then_some(before), AUDIT_PAGE_SIZE)
        .await
        .map_err(plain)
}

/// Entries on one page of the Audit screen.
pub const AUDIT_PAGE_SIZE: u32 = 50;

/// `command` is "pause", "resume" or "cancel".
#[server(endpoint = "control_job", output = JsonAnswer)]
pub async fn control_job(job_id: String, command: String) -> Result<JobView, ServerFnError> {
    let command = crate::backend::JobCommand::from_key(&command)
        .ok_or_else(|| ServerFnError::new("Choose pause, resume or cancel."))?;
    crate::backend::backend()?
        .control_job(job_id.into(), command)
        .await
        .map_err(plain)
}

#[server(endpoint = "job_events", output = JsonAnswer)]
pub async fn job_events(
    job_id: String,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<JobEventView>, ServerFnError> {
    crate::backend::backend()?
        .job_events(job_id.into(), after_seq, limit.min(1000))
        .await
        .map_err(plain)
}

/// A page of a run's results, newest first; `before_seq` 0 means the newest.
#[server(endpoint = "job_results_page", output = JsonAnswer)]
pub async fn load_results_page(
    job_id: String,
    before_seq: i64,
    limit: u32,
) -> Result<JobResultsPage, ServerFnError> {
    crate::backend::backend()?
        .job_results_page(job_id.into(), (before_seq > 0).then_some(before_seq), limit)
        .await
        .map_err(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::JobCommand;
    use crate::model::PreviewOutcome;

    #[test]
    fn actions_are_read_strictly() {
        assert_eq!(Action::from_key("delete"), Some(Action::Delete));
        assert_eq!(Action::from_key(" DEACTIVATE "), Some(Action::Deactivate));
        assert_eq!(Action::from_key(""), None);
        assert_eq!(Action::from_key("del"), None);
        assert_eq!(Action::from_key("Delete;drop"), None);
        for a in [Action::Delete, Action::Deactivate] {
            assert_eq!(Action::from_key(a.key()), Some(a));
        }
        assert!(action_arg("drop").is_err());
    }

    #[test]
    fn outcome_keys_round_trip_and_unknown_means_no_filter() {
        for o in PreviewOutcome::ALL {
            assert_eq!(PreviewOutcome::from_key(o.key()), Some(o));
        }
        assert_eq!(PreviewOutcome::from_key(""), None);
        assert_eq!(PreviewOutcome::from_key("NotFound"), None);
        assert_eq!(PreviewOutcome::from_key("everything"), None);
    }

    #[test]
    fn commands_are_read_strictly() {
        assert_eq!(JobCommand::from_key("Pause"), Some(JobCommand::Pause));
        assert_eq!(JobCommand::from_key("resume"), Some(JobCommand::Resume));
        assert_eq!(JobCommand::from_key("cancel\n"), Some(JobCommand::Cancel));
        assert_eq!(JobCommand::from_key("stop"), None);
    }

    #[test]
    fn ids_split_on_lines_and_commas_without_blanks() {
        assert_eq!(split_ids("a\r\nb,,c\n\n  d  "), vec!["a", "b", "c", "d"]);
        assert!(split_ids(" \n , ").is_empty());
        assert_eq!(split_ids("only"), vec!["only"]);
    }

    #[test]
    fn blank_fields_are_not_given() {
        assert_eq!(given("  ".into()), None);
        assert_eq!(given(" x@y.z ".into()), Some("x@y.z".into()));
    }
}
