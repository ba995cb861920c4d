//! The console's plain HTTP routes (docs/console-contract.md §2): uploads and picked users as
//! plain forms, the live job log as Server-Sent Events, and the report downloads.

use crate::console::{event_view, job_view, storage_failed, StoredPreview};
use crate::engine::report;
use crate::job_feed::WatchItem;
use crate::jobs::listing_path;
use crate::storage::{JobRecord, DEFAULT_TEAM};
use crate::web::AppState;
use app::backend::ConsoleError;
use app::model::Action;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use std::convert::Infallible;
use std::time::Duration;

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

fn back_to_choose(message: &str) -> Response {
    Redirect::to(&format!("/choose?error={}", encoded(message))).into_response()
}

fn encoded(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn parse_action(text: Option<&str>) -> Result<Action, String> {
    match text.map(str::trim).unwrap_or("") {
        "" | "delete" => Ok(Action::Delete),
        "deactivate" => Ok(Action::Deactivate),
        other => Err(format!(
            "\"{other}\" is not an action Offboard knows: choose delete or deactivate."
        )),
    }
}

fn parse_column(text: Option<&str>) -> Result<Option<usize>, String> {
    match text.map(str::trim).unwrap_or("") {
        "" => Ok(None),
        n => match n.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(format!(
                "\"{n}\" is not a column number: give 1 for the first column, 2 for the second…"
            )),
        },
    }
}

/// `POST /choose/upload`.
async fn upload(State(state): State<AppState>, multipart: Multipart) -> Response {
    match read_upload(multipart).await {
        Err(message) => back_to_choose(&message),
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
                Err(e) => back_to_choose(&e.message),
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

async fn read_upload(mut multipart: Multipart) -> Result<UploadForm, String> {
    let unreadable = |e: axum::extract::multipart::MultipartError| {
        tracing::warn!(error = %e, "unreadable upload");
        format!(
            "The upload could not be read (files up to {} MiB are accepted); try again.",
            MAX_UPLOAD_BYTES / (1024 * 1024)
        )
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
                    return Err(format!(
                        "The file is larger than {} MiB; split it into smaller files.",
                        MAX_UPLOAD_BYTES / (1024 * 1024)
                    ));
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
        None => {
            return Err(
                "Choose a file, or paste a list of emails or account IDs, then try again."
                    .to_string(),
            )
        }
    };
    Ok(UploadForm {
        file_name,
        bytes,
        column: parse_column(column.as_deref())?,
        action: parse_action(action.as_deref())?,
        demote,
    })
}

/// `POST /choose/picked`: `account_id` repeated, `action`, `demote`.
async fn picked(State(state): State<AppState>, body: Bytes) -> Response {
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
    let action = match parse_action(action.as_deref()) {
        Ok(a) => a,
        Err(message) => return back_to_choose(&message),
    };
    match state
        .backend
        .preview_picked(account_ids, action, demote)
        .await
    {
        Ok(summary) => to_preview(&summary.id),
        Err(e) => back_to_choose(&e.message),
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
    let watcher = state
        .jobs
        .watch(DEFAULT_TEAM, &job.id, resume_point(&headers, &query));
    let stream = futures::stream::unfold(watcher, |mut watcher| async move {
        let event = match watcher.next().await? {
            WatchItem::Event(published) => Event::default()
                .id(published.event.seq.to_string())
                .event("job")
                .data(published.json(|e| json_text(&event_view(e)))),
            WatchItem::End(job) => Event::default()
                .event("end")
                .data(json_text(&job_view(&job))),
        };
        Some((Ok::<Event, Infallible>(event), watcher))
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

const CSV: &str = "text/csv; charset=utf-8";
const JSON: &str = "application/json";

async fn stored_preview(state: &AppState, preview_id: &str) -> Result<StoredPreview, Response> {
    match state.storage.preview(DEFAULT_TEAM, preview_id).await {
        Ok(Some(record)) => StoredPreview::from_record(&record).map_err(failed),
        Ok(None) => Err(not_found("This preview")),
        Err(e) => Err(failed(storage_failed(e))),
    }
}

/// `GET /downloads/previews/{preview_id}/preview.csv`.
async fn preview_csv(State(state): State<AppState>, Path(preview_id): Path<String>) -> Response {
    match stored_preview(&state, &preview_id).await {
        Ok(stored) => attachment(CSV, "preview.csv", report::preview_csv(&stored.preview)),
        Err(response) => response,
    }
}

/// `GET /downloads/jobs/{job_id}/{failures.json|results.csv|results.json|all_users.json}`.
async fn job_download(
    State(state): State<AppState>,
    Path((job_id, file)): Path<(String, String)>,
) -> Response {
    if !matches!(
        file.as_str(),
        "failures.json" | "results.csv" | "results.json" | "all_users.json"
    ) {
        return not_found("This download");
    }
    let job = match team_job(&state, &job_id).await {
        Ok(job) => job,
        Err(response) => return response,
    };
    if file == "all_users.json" {
        return match std::fs::read_to_string(listing_path(state.jobs.data_dir(), &job.id)) {
            Ok(text) => attachment(JSON, "all_users.json", text),
            Err(_) => not_found("The user listing of this run"),
        };
    }
    let results = match state.storage.job_results(DEFAULT_TEAM, &job.id).await {
        Ok(results) => results,
        Err(e) => return failed(storage_failed(e)),
    };
    match file.as_str() {
        "results.csv" => attachment(CSV, "results.csv", report::results_csv(&results)),
        "results.json" => attachment(
            JSON,
            "results.json",
            pretty(&report::results_json(&results)),
        ),
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
            let at = job.finished_at.unwrap_or_else(chrono::Utc::now);
            let name = report::failures_file_name(at.with_timezone(&chrono::Local));
            attachment(JSON, &name, pretty(&json))
        }
    }
}
