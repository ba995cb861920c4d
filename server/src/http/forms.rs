//! The console's plain HTTP routes (docs/console-contract.md §2): uploads and picked users as
//! plain forms, the live job log as Server-Sent Events, and the report downloads.

use crate::console::{event_view, job_view, storage_failed, StoredPreview};
use crate::engine::report;
use crate::job_feed::WatchItem;
use crate::jobs::listing_path;
use crate::storage::{JobRecord, DEFAULT_TEAM};
use crate::web::AppState;
use app::api::parse_action;
use app::backend::{ChooseProblem, ConsoleError, ReportKind, CHOOSE_PROBLEM_DETAIL};
use app::model::Action;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Extension;
use axum::Router;
use std::convert::Infallible;
use std::time::Duration;
use tower_sessions::Session;

/// The largest file the upload takes.
pub const MAX_UPLOAD_BYTES: usize = 10 * 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/choose/upload",
            // Room for the form fields around a file of the largest size.
            post(upload).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES + 64 * 1024)),
        )
        .route("/choose/picked", post(picked))
        .route("/jobs/{id}/events", get(job_events))
        .route(
            "/downloads/previews/{preview_id}/preview.csv",
            get(preview_csv),
        )
        .route("/downloads/jobs/{job_id}/{file}", get(job_download))
}

fn to_preview(id: &str) -> Response {
    Redirect::to(&format!("/preview?id={}", encoded(id))).into_response()
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
    Redirect::to(&format!("/choose?error={}", problem.code())).into_response()
}

fn encoded(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The action a form sent. A missing or unknown action is refused, never guessed: guessing
/// could turn a deactivation into a deletion.
fn form_action(text: Option<&str>) -> Result<Action, ChooseProblem> {
    text.and_then(parse_action).ok_or(ChooseProblem::NoAction)
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
async fn upload(
    State(state): State<AppState>,
    session: Option<Extension<Session>>,
    multipart: Multipart,
) -> Response {
    let session = session.as_ref().map(|Extension(s)| s);
    match read_upload(multipart).await {
        Err(problem) => back_to_choose(session, problem, None).await,
        Ok(form) => {
            let result = state
                .backend
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
                Err(e) => {
                    back_to_choose(session, ChooseProblem::PreviewFailed, Some(&e.message)).await
                }
            }
        }
    }
}

struct UploadForm {
    file_name: String,
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
    let (file_name, bytes) = match file {
        Some(file) => file,
        None if !pasted.trim().is_empty() => ("pasted list".to_string(), pasted.into_bytes()),
        None => return Err(ChooseProblem::NoFile),
    };
    Ok(UploadForm {
        file_name,
        bytes,
        column: parse_column(column.as_deref())?,
        action: form_action(action.as_deref())?,
        demote,
    })
}

/// `POST /choose/picked`: `account_id` repeated, `action`, `demote`.
async fn picked(
    State(state): State<AppState>,
    session: Option<Extension<Session>>,
    body: Bytes,
) -> Response {
    let session = session.as_ref().map(|Extension(s)| s);
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
    match state
        .backend
        .preview_picked(account_ids, action, demote)
        .await
    {
        Ok(summary) => to_preview(&summary.id),
        Err(e) => back_to_choose(session, ChooseProblem::PreviewFailed, Some(&e.message)).await,
    }
}

fn plain(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message.to_string(),
    )
        .into_response()
}

fn not_found(what: &str) -> Response {
    plain(StatusCode::NOT_FOUND, &format!("{what} does not exist."))
}

fn failed(e: ConsoleError) -> Response {
    plain(StatusCode::INTERNAL_SERVER_ERROR, &e.message)
}

async fn team_job(state: &AppState, job_id: &str) -> Result<JobRecord, Response> {
    match state.storage.job(DEFAULT_TEAM, job_id).await {
        Ok(Some(job)) => Ok(job),
        Ok(None) => Err(not_found("This run")),
        Err(e) => Err(failed(storage_failed(e))),
    }
}

#[derive(serde::Deserialize)]
struct After {
    after: Option<i64>,
}

/// Where a watcher resumes: `Last-Event-ID` wins over `?after=`.
fn resume_point(headers: &HeaderMap, query: &After) -> i64 {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or(query.after)
        .unwrap_or(0)
        .max(0)
}

/// How many live-progress streams are open, per run and in all. Each stream holds a
/// connection and a file descriptor for as long as the browser stays: without a cap, a page
/// left open in 800 tabs (or a script) exhausts the server's descriptors.
pub struct WatcherSlots {
    per_run: usize,
    total: usize,
    taken: std::sync::Mutex<(usize, std::collections::HashMap<String, usize>)>,
}

/// One open stream's place; given back when the stream ends (the browser left).
pub struct WatcherSlot {
    slots: std::sync::Arc<WatcherSlots>,
    job_id: String,
}

impl WatcherSlots {
    pub fn new(per_run: usize, total: usize) -> std::sync::Arc<WatcherSlots> {
        std::sync::Arc::new(WatcherSlots {
            per_run: per_run.max(1),
            total: total.max(1),
            taken: std::sync::Mutex::new((0, std::collections::HashMap::new())),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, std::collections::HashMap<String, usize>)> {
        self.taken.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for one more watcher of `job_id`, or `None` when either cap is reached.
    pub fn take(self: &std::sync::Arc<Self>, job_id: &str) -> Option<WatcherSlot> {
        let mut taken = self.lock();
        let (all, per_run) = &mut *taken;
        let this_run = per_run.entry(job_id.to_string()).or_insert(0);
        if *all >= self.total || *this_run >= self.per_run {
            return None;
        }
        *this_run += 1;
        *all += 1;
        Some(WatcherSlot {
            slots: self.clone(),
            job_id: job_id.to_string(),
        })
    }

    /// Streams open now, in all.
    pub fn open(&self) -> usize {
        self.lock().0
    }
}

impl Drop for WatcherSlot {
    fn drop(&mut self) {
        let mut taken = self.slots.lock();
        let (all, per_run) = &mut *taken;
        *all = all.saturating_sub(1);
        if let Some(n) = per_run.get_mut(&self.job_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_run.remove(&self.job_id);
            }
        }
    }
}

/// `GET /jobs/{id}/events`.
async fn job_events(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
    Query(query): Query<After>,
    headers: HeaderMap,
) -> Response {
    let job = match team_job(&state, &job_id).await {
        Ok(job) => job,
        Err(response) => return response,
    };
    let Some(slot) = state.watchers.take(&job.id) else {
        tracing::warn!(job_id = %job.id, open = state.watchers.open(), "live-progress stream refused: too many watchers");
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many browsers are following runs on this console right now. Close other \
             tabs showing this run, or reload this page in a minute.",
        );
    };
    let watcher = state
        .jobs
        .watch(DEFAULT_TEAM, &job.id, resume_point(&headers, &query));
    // The slot travels with the stream and is given back when the browser leaves.
    let stream = futures::stream::unfold((slot, watcher), |(slot, mut watcher)| async move {
        let event = match watcher.next().await? {
            WatchItem::Event(published) => Event::default()
                .id(published.event.seq.to_string())
                .event("job")
                .data(published.json(|e| json_text(&event_view(e)))),
            WatchItem::End(job) => Event::default()
                .event("end")
                .data(json_text(&job_view(&job))),
        };
        Some((Ok::<Event, Infallible>(event), (slot, watcher)))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn attachment(content_type: &str, file_name: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// One SSE `data:` line of JSON (our views always serialise).
fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_string())
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

async fn stored_preview(state: &AppState, preview_id: &str) -> Result<StoredPreview, Response> {
    match state.storage.preview(DEFAULT_TEAM, preview_id).await {
        Ok(Some(_)) => StoredPreview::load(state.storage.as_ref(), DEFAULT_TEAM, preview_id)
            .await
            .map_err(failed),
        Ok(None) => Err(not_found("This preview")),
        Err(e) => Err(failed(storage_failed(e))),
    }
}

/// `GET /downloads/previews/{preview_id}/preview.csv`.
async fn preview_csv(State(state): State<AppState>, Path(preview_id): Path<String>) -> Response {
    match stored_preview(&state, &preview_id).await {
        Ok(stored) => attachment(
            ReportKind::Preview.content_type(),
            ReportKind::Preview.file_name(),
            report::preview_csv(&stored.preview),
        ),
        Err(response) => response,
    }
}

/// `GET /downloads/jobs/{job_id}/{failures.json|results.csv|results.json|all_users.json}`.
async fn job_download(
    State(state): State<AppState>,
    Path((job_id, file)): Path<(String, String)>,
) -> Response {
    let Some(kind) = ReportKind::of_a_run(&file) else {
        return not_found("This download");
    };
    let job = match team_job(&state, &job_id).await {
        Ok(job) => job,
        Err(response) => return response,
    };
    if kind == ReportKind::AllUsers {
        let path = listing_path(state.jobs.data_dir(), &job.id);
        return match tokio::fs::read_to_string(path).await {
            Ok(text) => attachment(kind.content_type(), kind.file_name(), text),
            Err(_) => not_found("The user listing of this run"),
        };
    }
    let results = match state.storage.job_results(DEFAULT_TEAM, &job.id).await {
        Ok(results) => results,
        Err(e) => return failed(storage_failed(e)),
    };
    let at = job
        .finished_at
        .unwrap_or_else(chrono::Utc::now)
        .with_timezone(&chrono::Local);
    let body = match kind {
        ReportKind::ResultsCsv => report::results_csv(&results),
        ReportKind::ResultsJson => pretty(&report::results_json(&results)),
        _ => {
            let json = match &job.preview_id {
                Some(id) => match stored_preview(&state, id).await {
                    Ok(stored) => {
                        report::failures_json_with_preview(&stored.preview, &results, &job.site_url)
                    }
                    Err(response) => return response,
                },
                None => report::failures_json(&results, &job.site_url),
            };
            pretty(&json)
        }
    };
    attachment(kind.content_type(), &report::saved_name(kind, at), body)
}
