//! The console's plain forms (docs/console-contract.md §2): an upload and the ticked users,
//! posted as ordinary forms so they work before the page's script has loaded.

use super::accounts::FormPost;
use super::caller::{for_member, GatedRoutes};
use super::error::HttpError;
use super::Caller;
use crate::service::RowChoice;
use app::backend::{
    ChooseProblem, ConsoleBackend, ConsoleError, ConsoleErrorKind, PreviewSummary, CHOOSE_PASTED,
    CHOOSE_PROBLEM_DETAIL,
};
use app::ids::{JobId, PreviewId};
use app::model::Action;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Multipart};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::Extension;
use model::Named;
use tower_sessions::Session;

/// The longest pasted list kept to show again after a failed preview.
const MAX_PASTED_KEPT: usize = 64 * 1024;

/// The words of a failed preview of `what` (a file's name, or the pasted list): always naming
/// it, and saying how to go on.
fn failed_preview_words(what: &str, message: &str, pasted: bool) -> String {
    let what = match what.trim() {
        "" => "The uploaded file",
        name => name,
    };
    let named = if message.starts_with(what) {
        message.to_string()
    } else if pasted {
        format!("The pasted list was not previewed: {message}")
    } else {
        format!("{what} was not previewed: {message}")
    };
    if pasted {
        format!("{named} The list is in the box below again.")
    } else {
        format!("{named} Choose the file again below (or another one) to try again.")
    }
}

/// The largest file the upload takes.
pub const MAX_UPLOAD_BYTES: usize = 10 * 1024 * 1024;

pub fn routes() -> GatedRoutes {
    GatedRoutes::new()
        .route(
            "/choose/upload",
            // Room for the form fields around a file of the largest size.
            for_member(post(upload).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES + 64 * 1024))),
        )
        .route("/choose/picked", for_member(post(picked)))
        .route("/preview/again", for_member(post(preview_again)))
        .route("/preview/choose", for_member(post(choose_account)))
        .route("/run/not-removed", for_member(post(preview_not_removed)))
}

/// A form posted from the Choose, Preview or Run page by a team member. Without a session
/// the answers keep no words for the next page.
type ChoosePost = FormPost<Caller, Option<Extension<Session>>>;

fn to_preview(id: &PreviewId) -> Response {
    Redirect::to(&format!("/preview?id={}", encoded(id.as_str()))).into_response()
}

/// Back to the Choose page with a problem code. The address carries only the code; a failed
/// preview's own words wait in the admin's session (see [`ChooseProblem`]).
async fn back_to_choose(
    session: Option<&Session>,
    problem: ChooseProblem,
    detail: Option<&str>,
) -> Response {
    if let (Some(session), Some(detail)) = (session, detail) {
        if let Err(e) = session
            .insert(CHOOSE_PROBLEM_DETAIL, detail.to_string())
            .await
        {
            tracing::warn!(error = %e, "could not keep the problem's details in the session");
        }
    }
    Redirect::to(&format!("/choose?error={}", problem.key())).into_response()
}

fn encoded(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The action a form sent. A missing or unknown action is refused, never guessed: guessing
/// could turn a deactivation into a deletion.
fn form_action(text: Option<&str>) -> Result<Action, ChooseProblem> {
    text.and_then(Action::from_key)
        .ok_or(ChooseProblem::NoAction)
}

fn parse_column(text: Option<&str>) -> Result<Option<usize>, ChooseProblem> {
    match text.map(str::trim).unwrap_or("") {
        "" => Ok(None),
        n => match n.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(ChooseProblem::BadColumn),
        },
    }
}

/// `POST /choose/upload`.
async fn upload(post: ChoosePost, multipart: Multipart) -> Response {
    let session = post.session.as_ref().map(|Extension(s)| s);
    match read_upload(multipart).await {
        Err(problem) => back_to_choose(session, problem, None).await,
        Ok(form) => {
            let (name, pasted) = (form.file_name.clone(), form.pasted);
            let kept = pasted.then(|| String::from_utf8_lossy(&form.bytes).into_owned());
            let result = post
                .team()
                .preview_file(
                    form.file_name,
                    form.bytes,
                    form.column,
                    form.action,
                    form.demote,
                )
                .await;
            match result {
                Ok(summary) => to_preview(&summary.id),
                Err(e) if e.kind == ConsoleErrorKind::Forbidden => {
                    HttpError::from(e).into_response()
                }
                Err(e) => {
                    if let (Some(session), Some(text)) = (session, kept) {
                        if text.len() <= MAX_PASTED_KEPT {
                            if let Err(e) = session.insert(CHOOSE_PASTED, text).await {
                                tracing::warn!(error = %e, "could not keep the pasted list");
                            }
                        }
                    }
                    let words = failed_preview_words(&name, &e.message, pasted);
                    back_to_choose(session, ChooseProblem::PreviewFailed, Some(&words)).await
                }
            }
        }
    }
}

struct UploadForm {
    file_name: String,
    /// The list was pasted, not a file.
    pasted: bool,
    bytes: Vec<u8>,
    column: Option<usize>,
    action: Action,
    demote: bool,
}

async fn read_upload(mut multipart: Multipart) -> Result<UploadForm, ChooseProblem> {
    let unreadable = |e: axum::extract::multipart::MultipartError| {
        tracing::warn!(error = %e, "unreadable upload");
        ChooseProblem::UnreadableUpload
    };
    let mut file: Option<(String, Vec<u8>)> = None;
    let mut pasted = String::new();
    let (mut column, mut action, mut demote) = (None, None, false);
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "file" => {
                let file_name = field.file_name().unwrap_or_default().to_string();
                let bytes = field.bytes().await.map_err(unreadable)?;
                if bytes.len() > MAX_UPLOAD_BYTES {
                    return Err(ChooseProblem::TooLarge);
                }
                if !bytes.is_empty() {
                    file = Some((file_name, bytes.to_vec()));
                }
            }
            "pasted" => pasted = field.text().await.map_err(unreadable)?,
            "column" => column = Some(field.text().await.map_err(unreadable)?),
            "action" => action = Some(field.text().await.map_err(unreadable)?),
            "demote" => demote = field.text().await.map_err(unreadable)?.trim() == "on",
            _ => {}
        }
    }
    let was_pasted = file.is_none();
    let (file_name, bytes) = match file {
        Some(file) => file,
        None if !pasted.trim().is_empty() => ("pasted list".to_string(), pasted.into_bytes()),
        None => return Err(ChooseProblem::NoFile),
    };
    Ok(UploadForm {
        pasted: was_pasted,
        file_name,
        bytes,
        column: parse_column(column.as_deref())?,
        action: form_action(action.as_deref())?,
        demote,
    })
}

/// `POST /choose/picked`: `account_id` repeated, `action`, `demote`.
async fn picked(post: ChoosePost, body: Bytes) -> Response {
    let session = post.session.as_ref().map(|Extension(s)| s);
    let mut account_ids = Vec::new();
    let (mut action, mut demote) = (None, false);
    for (key, value) in url::form_urlencoded::parse(&body) {
        match key.as_ref() {
            "account_id" => account_ids.push(value.into_owned()),
            "action" => action = Some(value.into_owned()),
            "demote" => demote = value.trim() == "on",
            _ => {}
        }
    }
    let action = match form_action(action.as_deref()) {
        Ok(a) => a,
        Err(problem) => return back_to_choose(session, problem, None).await,
    };
    if account_ids.iter().all(|id| id.trim().is_empty()) {
        return back_to_choose(session, ChooseProblem::NoneTicked, None).await;
    }
    match post
        .team()
        .preview_picked(account_ids, action, demote)
        .await
    {
        Ok(summary) => to_preview(&summary.id),
        // The Choose page is not offered to viewers: a forged form gets a plain 403.
        Err(e) if e.kind == ConsoleErrorKind::Forbidden => HttpError::from(e).into_response(),
        Err(e) => back_to_choose(session, ChooseProblem::PreviewFailed, Some(&e.message)).await,
    }
}

/// `POST /preview/again`: `preview`. A new preview of the same users (after a request for
/// approval was declined or expired), from any page, with or without script.
async fn preview_again(post: ChoosePost, body: Bytes) -> Response {
    let preview = form_value(&body, "preview");
    let made = post.team().preview_again(PreviewId::new(preview)).await;
    to_new_preview(post.session, made).await
}

/// `POST /run/not-removed`: `job`. A new preview of the users an ended run did not remove
/// (after a cancel, a failure or a stop), from the run's page, with or without script.
async fn preview_not_removed(post: ChoosePost, body: Bytes) -> Response {
    let job = form_value(&body, "job");
    let made = post.team().preview_not_removed(JobId::new(job)).await;
    to_new_preview(post.session, made).await
}

/// `POST /preview/choose`: `preview`, `line`, and `account` (one of the accounts the row's
/// email belongs to) or `undo=yes`. Back to the preview at that row, which now says what was
/// chosen (and the counts and phrase with it); a refusal is said in words.
async fn choose_account(post: ChoosePost, body: Bytes) -> Response {
    let Ok(line) = form_value(&body, "line").parse::<usize>() else {
        return HttpError::new(
            StatusCode::BAD_REQUEST,
            "The form did not say which line of the preview to change.",
        )
        .into_response();
    };
    let choice = match form_value(&body, "undo").as_str() {
        "yes" => RowChoice::Undo,
        _ => RowChoice::Choose(form_value(&body, "account")),
    };
    let console = post.team();
    let preview = PreviewId::new(form_value(&body, "preview"));
    let chosen = match console.as_operator() {
        Ok(desk) => desk.choose_account(preview, line, choice).await,
        Err(refused) => Err(refused),
    };
    match chosen {
        Ok(summary) => Redirect::to(&format!(
            "/preview?id={}#line-{line}",
            encoded(summary.id.as_str())
        ))
        .into_response(),
        Err(e) => HttpError::from(e).into_response(),
    }
}

/// One field of a posted form, trimmed (empty when it is missing).
fn form_value(body: &[u8], key: &str) -> String {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == key)
        .map(|(_, value)| value.trim().to_string())
        .unwrap_or_default()
}

/// Where a form that makes a new preview leads: to it, to a refusal, or back to Choose with
/// the reason in words.
async fn to_new_preview(
    session: Option<Extension<Session>>,
    made: Result<PreviewSummary, ConsoleError>,
) -> Response {
    let session = session.as_ref().map(|Extension(s)| s);
    match made {
        Ok(summary) => to_preview(&summary.id),
        Err(e) if e.kind == ConsoleErrorKind::Forbidden => HttpError::from(e).into_response(),
        Err(e) => back_to_choose(session, ChooseProblem::PreviewFailed, Some(&e.message)).await,
    }
}

#[cfg(test)]
mod tests {
    use super::failed_preview_words;

    #[test]
    fn a_failed_preview_names_what_failed_and_the_way_on() {
        // (what was sent, why it failed, pasted?, what the page says)
        let cases = [
            (
                "leavers.csv",
                "The site did not answer.",
                false,
                "leavers.csv was not previewed: The site did not answer. Choose the file again below (or another one) to try again.",
            ),
            // A message that names the file already is not prefixed twice.
            (
                "leavers.csv",
                "leavers.csv: line 3 is not UTF-8.",
                false,
                "leavers.csv: line 3 is not UTF-8. Choose the file again below (or another one) to try again.",
            ),
            (
                "pasted list",
                "The site did not answer.",
                true,
                "The pasted list was not previewed: The site did not answer. The list is in the box below again.",
            ),
        ];
        for (sent, why, pasted, expected) in cases {
            assert_eq!(failed_preview_words(sent, why, pasted), expected);
        }
        // A file called like the pasted list's name is still a file.
        assert!(failed_preview_words("pasted list", "x", false).contains("Choose the file again"));
        assert!(failed_preview_words("", "", false).contains("was not previewed"));
    }
}
