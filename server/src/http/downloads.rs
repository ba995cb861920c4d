//! The report downloads: a preview as CSV, and a run's failures, results and listing. The
//! service decides what the caller's team may download; this only names the files.

use super::caller::{for_member, GatedRoutes};
use super::error::HttpError;
use super::{AppState, Caller};
use crate::service::reports::Report;
use app::audit::AuditFilter;
use app::backend::ReportKind;
use app::ids::{JobId, PreviewId};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub fn routes() -> GatedRoutes {
    GatedRoutes::new()
        .route(
            "/downloads/previews/{preview_id}/preview.csv",
            for_member(get(preview_csv)),
        )
        .route(
            "/downloads/jobs/{job_id}/{file}",
            for_member(get(job_download)),
        )
        .route("/downloads/audit.csv", for_member(get(audit_csv)))
}

fn attachment(report: Report) -> Response {
    (
        [
            (header::CONTENT_TYPE, report.kind.content_type().to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", report.file_name),
            ),
        ],
        report.body,
    )
        .into_response()
}

/// `GET /downloads/previews/{preview_id}/preview.csv`.
async fn preview_csv(
    State(state): State<AppState>,
    caller: Caller,
    Path(preview_id): Path<PreviewId>,
) -> Result<Response, HttpError> {
    let team = state.service.for_member(&caller.member);
    Ok(attachment(
        team.as_viewer()?.preview_report(&preview_id).await?,
    ))
}

/// `GET /downloads/jobs/{job_id}/{failures.json|results.csv|results.json|all_users.json}`.
async fn job_download(
    State(state): State<AppState>,
    caller: Caller,
    Path((job_id, file)): Path<(JobId, String)>,
) -> Result<Response, HttpError> {
    let kind = ReportKind::of_a_run(&file).ok_or_else(|| HttpError::not_found("This download"))?;
    let team = state.service.for_member(&caller.member);
    Ok(attachment(
        team.as_viewer()?.run_report(&job_id, kind).await?,
    ))
}

/// The Audit page's filter as the download address carries it (all optional).
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct AuditQuery {
    action: String,
    from: String,
    to: String,
}

/// `GET /downloads/audit.csv?action=&from=&to=`: the caller's team's trail, newest first.
async fn audit_csv(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<AuditQuery>,
) -> Result<Response, HttpError> {
    let filter = AuditFilter::from_query(&query.action, &query.from, &query.to);
    let team = state.service.for_member(&caller.member);
    Ok(attachment(team.as_viewer()?.audit_report(&filter).await?))
}
