//! The reports a team downloads: a preview as CSV, and a run's failures, results and the site
//! listing it started from. Who may download is the team's, like every other read.

use super::desks::ViewerDesk;
use super::previews::StoredPreview;
use crate::engine::report;
use crate::storage::JobRecord;
use app::backend::{ConsoleError, ReportKind};
use app::ids::{JobId, PreviewId};
use app::model::{Preview, PreviewSource};

/// One report, ready to send.
pub struct Report {
    pub kind: ReportKind,
    /// The name the browser saves it under.
    pub file_name: String,
    pub body: String,
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// A run's report under the run's date and site; the failures report under the old script's
/// name, timed when the run ended (in the server's zone, as the old script did).
fn run_file_name(kind: ReportKind, job: &JobRecord) -> String {
    match kind {
        ReportKind::Failures => report::failures_file_name(
            job.finished_at
                .unwrap_or_else(chrono::Utc::now)
                .with_timezone(&chrono::Local),
        ),
        other => report::run_report_name(other, &job.site_url, job.created_at),
    }
}

impl ViewerDesk<'_> {
    /// The preview `preview_id` as a spreadsheet.
    pub async fn preview_report(&self, preview_id: &PreviewId) -> Result<Report, ConsoleError> {
        let stored =
            StoredPreview::load(self.console.storage.as_ref(), self.team, preview_id).await?;
        Ok(Report {
            kind: ReportKind::Preview,
            file_name: ReportKind::Preview.file_name().to_string(),
            body: report::preview_csv(&stored.preview, stored.record.action),
        })
    }

    /// The report `kind` of run `job_id`.
    pub async fn run_report(
        &self,
        job_id: &JobId,
        kind: ReportKind,
    ) -> Result<Report, ConsoleError> {
        let job = self.team_job(job_id).await?;
        if kind == ReportKind::AllUsers {
            let missing =
                || ConsoleError::not_found("The user listing of this run does not exist.");
            let body = match self.console.storage.listing(self.team, &job.id).await? {
                Some(gzipped) => {
                    let mut json = String::new();
                    std::io::Read::read_to_string(
                        &mut flate2::read::GzDecoder::new(gzipped.as_slice()),
                        &mut json,
                    )
                    .map_err(|e| {
                        tracing::error!(job_id = %job.id, error = %e, "a kept listing is unreadable");
                        missing()
                    })?;
                    json
                }
                // Runs started before listings were kept in the database: the data folder of
                // the console that started them.
                None => tokio::fs::read_to_string(self.console.jobs.listing_path(&job.id))
                    .await
                    .map_err(|_| missing())?,
            };
            return Ok(Report {
                kind,
                file_name: run_file_name(kind, &job),
                body,
            });
        }
        if kind == ReportKind::RunSummary {
            let view = self.job_view_of(&job).await?;
            return Ok(Report {
                kind,
                file_name: run_file_name(kind, &job),
                body: pretty(&serde_json::to_value(&view).unwrap_or_default()),
            });
        }
        let results = self.console.storage.job_results(self.team, &job.id).await?;
        let cites_preview = matches!(kind, ReportKind::ResultsCsv | ReportKind::Failures);
        let preview = match job.preview_id.as_ref().filter(|_| cites_preview) {
            Some(id) => Some(
                StoredPreview::load(self.console.storage.as_ref(), self.team, id)
                    .await?
                    .preview,
            ),
            None => None,
        };
        let body = match kind {
            ReportKind::ResultsCsv => {
                // A run kept from before runs had previews: its results are all there is.
                let preview = preview.unwrap_or_else(|| Preview {
                    source: PreviewSource::Picked,
                    rows: Vec::new(),
                    counts: Default::default(),
                    demote_privileged: false,
                    unread_lines: Default::default(),
                });
                report::results_csv(&preview, &results, job.action)
            }
            ReportKind::ResultsJson => pretty(&report::results_json(&results)),
            ReportKind::Failures => pretty(&match &preview {
                Some(preview) => {
                    report::failures_json_with_preview(preview, &results, &job.site_url)
                }
                None => report::failures_json(&results, &job.site_url),
            }),
            ReportKind::Preview
            | ReportKind::AllUsers
            | ReportKind::AuditTrail
            | ReportKind::RunSummary => {
                return Err(ConsoleError::not_found("This download does not exist."))
            }
        };
        Ok(Report {
            kind,
            file_name: run_file_name(kind, &job),
            body,
        })
    }
}
