//! Runs the console's jobs in the background: starts them from a confirmed preview, records
//! every step in storage, obeys pause/resume/cancel, and picks unfinished jobs up again after a
//! restart. A run keeps going when the browser closes.
//!
//! Several console replicas may share one PostgreSQL database: a replica drives a job only while it
//! holds the job's lease ([`Storage::claim_jobs`]), renews it from a heartbeat, and makes every
//! runner write with it (each write is given the lease), so a replica that lost the lease cannot
//! write, hence cannot send, for that job any more. Replicas claim jobs nobody holds at start and
//! every few seconds after; a job whose replica died is taken over once its lease expires, through
//! the same path as a restart (users left "sending" are checked first).
//!
//! Decision: when the site says SCIM deletion is not enabled, the job ends as `stopped` with
//! the runner's explanation (the users it had not reached are recorded "not attempted"); after
//! fixing the setting the admin makes a new preview, which selects exactly the users still
//! there. Pausing instead would leave nothing to resume, since the runner settles every user.

mod control;
mod journal;
mod leases;
mod start;

use super::audit::{self, Actor};
use super::job_feed::{JobFeed, JobFeeds, Watcher};
use super::limits::site_has_room;
use super::permits::{Operate, Permit};
use super::sites::{list_site, open_site, policy_for, Site};
use super::StoredPreview;
use crate::engine::resolve::{recheck, target_checks};
use crate::engine::runner::{
    not_attempted_cancelled, run, JournalError, Rereads, RunControl, RunJournal, RunOptions,
    RunState, StopReason,
};
use crate::engine::{lock, RunTarget};
use crate::scim::http::HttpOptions;
use crate::scim::ScimProvider;
use crate::secret::SecretBox;
use crate::storage::{
    ApprovalRecord, JobEvent, JobLease, JobRecord, JobState, NewJob, PlannedItem,
    PreviewSourceRecord, RunApproval, Storage, StorageError,
};
use app::backend::{ConsoleError, JobCommand};
use app::ids::{JobId, PreviewId, TeamId};
use app::model::{ItemResult, SiteUser};
use async_trait::async_trait;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A cancelled run's end when nobody is on record as its canceller (a run cancelled before
/// this version kept names).
const CANCELLED_REASON: &str = "The run was cancelled.";

/// Who did `what` to a run and when, as its state and its report rows say it: "Priya
/// cancelled the run at 12:17 UTC". `by` is the person's name as the console knows it.
pub fn run_command_words(by: &str, what: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    let by = by.trim();
    let by = if by.is_empty() { "Someone" } else { by };
    format!("{by} {what} the run at {} UTC", at.format("%H:%M"))
}

/// Who cancelled a run and when ("Priya cancelled the run at 12:17 UTC"), from its stored
/// state and reason: kept from the cancel, if any.
fn canceller(state: Option<JobState>, reason: Option<&str>) -> Option<String> {
    let cancelling = matches!(state, Some(JobState::Cancelling | JobState::Stopped));
    reason
        .map(|r| r.trim().trim_end_matches('.').trim_end())
        .filter(|r| cancelling && !r.is_empty())
        .map(str::to_string)
}

/// Whether a stopped run's stored reason is a person's cancel (the words
/// [`cancelled_words`] wrote), rather than something that stopped it and needs a look.
pub fn stopped_by_a_cancel(reason: Option<&str>) -> bool {
    let Some(reason) = reason.map(|r| r.trim().to_lowercase()) else {
        return false;
    };
    reason == CANCELLED_REASON.to_lowercase() || reason.contains(" cancelled the run at ")
}

/// A cancelled run's end: its reason, and the words for the rows it did not reach.
fn cancelled_words(state: Option<JobState>, reason: Option<&str>) -> (String, String) {
    let by = canceller(state, reason);
    let ending = by
        .as_ref()
        .map(|w| format!("{w}."))
        .unwrap_or_else(|| CANCELLED_REASON.to_string());
    (ending, not_attempted_cancelled(by.as_deref()))
}

/// How long a claimed job stays this replica's without a heartbeat, unless set otherwise
/// (`--job-lease-seconds`).
pub const DEFAULT_JOB_LEASE: Duration = Duration::from_secs(30);

/// A job whose runner is alive in this process.
struct LiveRun {
    team_id: TeamId,
    /// The lease it is driven under (every write of its runner carries it).
    lease: JobLease,
    control: watch::Sender<RunState>,
    /// Started when the run resumes: users not yet acted on are re-read first.
    rereads: Arc<Rereads>,
    task: JoinHandle<()>,
}

/// Owns every running job of this server process.
pub struct JobSupervisor {
    storage: Arc<dyn Storage>,
    secrets: SecretBox,
    http: HttpOptions,
    run_options: RunOptions,
    /// Where the listing taken at each job's start is kept (`jobs/{id}/all_users.json`).
    data_dir: PathBuf,
    runs: Mutex<HashMap<JobId, LiveRun>>,
    /// Runs that may go on at once against one site, all teams together.
    runs_per_site: usize,
    /// Each job's log, pushed to its watchers as it is written.
    feeds: JobFeeds,
    /// This process, as the job leases name their holder: random at every start.
    replica: String,
    /// How long a claimed job stays this replica's without a heartbeat.
    lease: Duration,
    /// Set once the process is told to stop: it takes no job any more.
    stopping: AtomicBool,
}

/// The listing snapshot file of a job.
fn listing_path(data_dir: &Path, job_id: &JobId) -> PathBuf {
    data_dir
        .join("jobs")
        .join(job_id.as_str())
        .join(app::backend::ReportKind::AllUsers.file_name())
}

impl JobSupervisor {
    /// `run_options.action` and `demote_privileged` are replaced per job.
    pub fn new(
        storage: Arc<dyn Storage>,
        secrets: SecretBox,
        http: HttpOptions,
        run_options: RunOptions,
        data_dir: PathBuf,
        runs_per_site: usize,
        lease: Duration,
    ) -> Arc<JobSupervisor> {
        Arc::new(JobSupervisor {
            storage,
            secrets,
            http,
            run_options,
            data_dir,
            runs_per_site,
            runs: Mutex::new(HashMap::new()),
            feeds: JobFeeds::default(),
            replica: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            lease: lease.max(Duration::from_secs(1)),
            stopping: AtomicBool::new(false),
        })
    }

    /// Where the listing taken at job `job_id`'s start is kept.
    pub fn listing_path(&self, job_id: &JobId) -> PathBuf {
        listing_path(&self.data_dir, job_id)
    }

    /// True while this process runs the job.
    pub fn is_live(&self, job_id: &JobId) -> bool {
        lock(&self.runs)
            .get(job_id)
            .is_some_and(|r| !r.task.is_finished())
    }

    /// Stops every runner at once, as a crash would (nothing more is recorded). For tests and
    /// shutdown; the jobs resume at the next start.
    pub fn abort_all(&self) {
        for (_, live) in lock(&self.runs).drain() {
            live.task.abort();
        }
    }
}

#[cfg(test)]
mod words_tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn run_commands_name_the_person_and_the_minute() {
        let at = chrono::Utc.with_ymd_and_hms(2026, 12, 7, 12, 17, 59);
        let early = chrono::Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5);
        let cases = [
            (
                "Priya",
                "cancelled",
                at,
                "Priya cancelled the run at 12:17 UTC",
            ),
            ("  ", "paused", at, "Someone paused the run at 12:17 UTC"),
            (
                "Émile Ørsted",
                "cancelled",
                early,
                "Émile Ørsted cancelled the run at 03:04 UTC",
            ),
        ];
        for (who, what, when, expected) in cases {
            assert_eq!(run_command_words(who, what, when.unwrap()), expected);
        }
    }

    #[test]
    fn a_cancel_is_told_from_other_stops_by_the_words_it_wrote() {
        let at = chrono::Utc.with_ymd_and_hms(2026, 5, 6, 12, 17, 0).unwrap();
        let asked = run_command_words("Priya", "cancelled", at);
        let (named, _) = cancelled_words(Some(JobState::Cancelling), Some(&asked));
        let (plain, _) = cancelled_words(Some(JobState::Cancelling), None);
        assert!(stopped_by_a_cancel(Some(&named)));
        assert!(stopped_by_a_cancel(Some(&plain)));
        assert!(stopped_by_a_cancel(Some(" THE RUN WAS CANCELLED. ")));
        // What the runner's own stops say is not a cancel.
        let refused = StopReason::Unauthorized("The site refused the token.".into());
        assert!(!stopped_by_a_cancel(Some(&refused.message())));
        assert!(!stopped_by_a_cancel(Some(
            "Priya paused the run at 12:10 UTC."
        )));
        assert!(!stopped_by_a_cancel(Some("")));
        assert!(!stopped_by_a_cancel(None));
    }

    #[test]
    fn a_cancelled_run_ends_with_its_cancellers_words_or_plain_ones() {
        let words = Some("Priya cancelled the run at 12:17 UTC");
        let named = (
            "Priya cancelled the run at 12:17 UTC.".to_string(),
            "Not attempted: Priya cancelled the run at 12:17 UTC.".to_string(),
        );
        assert_eq!(cancelled_words(Some(JobState::Cancelling), words), named);
        assert_eq!(cancelled_words(Some(JobState::Stopped), words), named);
        assert_eq!(
            cancelled_words(
                Some(JobState::Cancelling),
                Some(" Priya cancelled the run at 12:17 UTC. ")
            ),
            named
        );
        let plain = (
            "The run was cancelled.".to_string(),
            "Not attempted: the run was cancelled.".to_string(),
        );
        // A reason kept from another state (a pause) does not say who cancelled.
        assert_eq!(
            cancelled_words(
                Some(JobState::Paused),
                Some("Priya paused the run at 12:10 UTC.")
            ),
            plain
        );
        assert_eq!(
            cancelled_words(Some(JobState::Cancelling), Some(" . ")),
            plain
        );
        assert_eq!(cancelled_words(Some(JobState::Cancelling), None), plain);
        assert_eq!(cancelled_words(None, words), plain);
    }
}
