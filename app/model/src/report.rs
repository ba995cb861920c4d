//! The files Offboard writes for a preview or a run, named in one place.

use serde::{Deserialize, Serialize};

/// The files Offboard writes for a preview or a run: the one place their names are made, for
/// the download addresses, the command line's report folder and the job's own folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// Every row of the preview with its outcome and reason.
    Preview,
    /// The user listing taken when the run started (the old script's `all_users.json`).
    AllUsers,
    /// Every result, successes included.
    ResultsCsv,
    ResultsJson,
    /// What did not succeed, in the old script's format for Stack support. Saved under a
    /// dated name (`failed_deletions_YYYY-MM-DD_HH-MM-SS.json`); `failures.json` in addresses.
    Failures,
    /// The team's audit trail (filtered as the Audit page is).
    AuditTrail,
    /// The run itself: site, action, state, times, counts, who started it and who approved it.
    RunSummary,
}

impl ReportKind {
    /// The reports of a run, in the order the pages offer them.
    pub const OF_A_RUN: [ReportKind; 5] = [
        ReportKind::Failures,
        ReportKind::ResultsCsv,
        ReportKind::ResultsJson,
        ReportKind::AllUsers,
        ReportKind::RunSummary,
    ];

    /// The file name (in addresses, and on disk except for the dated failures report).
    pub fn file_name(self) -> &'static str {
        match self {
            ReportKind::Preview => "preview.csv",
            ReportKind::AllUsers => "all_users.json",
            ReportKind::ResultsCsv => "results.csv",
            ReportKind::ResultsJson => "results.json",
            ReportKind::Failures => "failures.json",
            ReportKind::AuditTrail => "audit.csv",
            ReportKind::RunSummary => "run.json",
        }
    }

    /// The run report named `name` in a download address.
    pub fn of_a_run(name: &str) -> Option<ReportKind> {
        ReportKind::OF_A_RUN
            .into_iter()
            .find(|k| k.file_name() == name)
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ReportKind::Preview | ReportKind::ResultsCsv | ReportKind::AuditTrail => {
                "text/csv; charset=utf-8"
            }
            _ => "application/json",
        }
    }

    /// Where the browser downloads this report of run `job_id`.
    pub fn run_download(self, job_id: &str) -> String {
        format!("/downloads/jobs/{job_id}/{}", self.file_name())
    }
}
