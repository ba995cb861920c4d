//! Runs as the team asks for them: its history and a run's progress and results (a viewer's),
//! starting a run from a confirmed preview, approvals, pause, resume and cancel (an
//! operator's). The runs themselves are driven by `jobs/`.

use super::desks::{OperatorDesk, ViewerDesk};
use super::job_feed;
use super::limits::{self, Counted};
use super::views::{event_view, job_view};
use super::TeamConsole;
use crate::storage::JobRecord;
use app::backend::{ConsoleError, JobCommand, JobEventView, JobResultsPage, JobView};
use app::ids::{JobId, PreviewId};

/// Most events one `job_events` call returns.
const MAX_EVENTS_PER_CALL: u32 = 1000;
/// How many past jobs the History screen looks at.
const JOBS_LISTED: u32 = 10_000;

impl TeamConsole {
    /// What the pages show of `job`: its record, and who approved it.
    pub(super) async fn job_view_of(&self, job: &JobRecord) -> Result<JobView, ConsoleError> {
        // Runs approved before the approver was written with the run: from the request.
        let approved_by = match (&job.approved_by, &job.preview_id) {
            (Some(by), _) => Some(by.clone()),
            (None, Some(preview)) => self
                .console
                .storage
                .approval(self.team, preview)
                .await?
                .filter(|a| a.decision == Some(crate::storage::Decision::Approved))
                .and_then(|a| a.decided_by),
            (None, None) => None,
        };
        Ok(JobView {
            approved_by,
            ..job_view(job)
        })
    }
}

impl ViewerDesk<'_> {
    /// The team's requests for approval no run came from, for Overview and History.
    pub async fn approval_requests(
        &self,
    ) -> Result<Vec<app::backend::ApprovalRequestView>, ConsoleError> {
        self.unrun_requests().await
    }

    /// The team's job `job_id`; "does not exist" for another team's.
    pub async fn team_job(&self, job_id: &JobId) -> Result<JobRecord, ConsoleError> {
        // Read with the permit's team: a viewer's handle reaches no other team's runs.
        self.console
            .storage
            .job(self.permit.team, job_id)
            .await?
            .ok_or_else(|| ConsoleError::not_found("This run does not exist."))
    }

    /// Follows `job`'s log (one of this team's, from [`ViewerDesk::team_job`]) from the event
    /// after `after_seq`.
    pub fn watch_job(&self, job: &JobRecord, after_seq: i64) -> job_feed::Watcher {
        self.console.jobs.watch(self.team, &job.id, after_seq)
    }

    /// The run, with its undo window when it has one (the Run page).
    pub async fn job(&self, job_id: JobId) -> Result<JobView, ConsoleError> {
        let job = self.team_job(&job_id).await?;
        let mut view = self.job_view_of(&job).await?;
        view.undo = self.undo_view(&job).await?;
        Ok(view)
    }

    pub async fn jobs(&self) -> Result<Vec<JobView>, ConsoleError> {
        let jobs = self
            .console
            .storage
            .list_jobs(self.team, JOBS_LISTED)
            .await?;
        let approvers: std::collections::HashMap<PreviewId, String> = self
            .console
            .storage
            .approvers(self.team)
            .await?
            .into_iter()
            .collect();
        Ok(jobs
            .iter()
            .map(|job| JobView {
                approved_by: job.approved_by.clone().or_else(|| {
                    job.preview_id
                        .as_ref()
                        .and_then(|p| approvers.get(p).cloned())
                }),
                ..job_view(job)
            })
            .collect())
    }

    pub async fn job_events(
        &self,
        job_id: JobId,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<JobEventView>, ConsoleError> {
        let job = self.team_job(&job_id).await?;
        let events = self
            .console
            .storage
            .events_since(
                self.team,
                &job.id,
                after_seq.max(0),
                limit.clamp(1, MAX_EVENTS_PER_CALL),
            )
            .await?;
        Ok(events.iter().map(event_view).collect())
    }

    pub async fn job_results_page(
        &self,
        job_id: JobId,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<JobResultsPage, ConsoleError> {
        let job = self.team_job(&job_id).await?;
        let limit = limit.clamp(1, MAX_EVENTS_PER_CALL);
        // One more than asked tells whether older results remain.
        let (mut events, last_seq) = self
            .console
            .storage
            .latest_results(self.team, &job.id, before_seq, limit + 1)
            .await?;
        let more = crate::service::page_of(&mut events, limit);
        Ok(JobResultsPage {
            results: events.iter().map(event_view).collect(),
            last_seq,
            more,
        })
    }
}

impl OperatorDesk<'_> {
    pub async fn start_job(
        &self,
        preview_id: PreviewId,
        typed: String,
    ) -> Result<JobView, ConsoleError> {
        let record = self.exact_preview(&preview_id).await?;
        let approval = self.approval_to_give(&record).await?;
        let now = self.console.clock.now();
        limits::check_hourly(
            self.console.storage.as_ref(),
            self.team,
            Counted::Run,
            self.console.limits.runs_per_hour,
            now,
        )
        .await?;
        let job = self
            .console
            .jobs
            .start(
                &self.permit,
                &record.id,
                &typed,
                self.actor.clone(),
                approval.as_ref(),
            )
            .await?;
        // The run goes on either way: a count that could not be written is only logged.
        if let Err(e) =
            limits::count_hourly(self.console.storage.as_ref(), self.team, Counted::Run, now).await
        {
            tracing::warn!(error = %e, "could not count a run against the team's hourly limit");
        }
        self.job_view_of(&job).await
    }

    pub async fn request_approval(
        &self,
        preview_id: PreviewId,
        typed: String,
    ) -> Result<app::team::ApprovalView, ConsoleError> {
        self.ask_for_approval(&self.permit, &preview_id, &typed)
            .await
    }

    pub async fn decline_approval(
        &self,
        preview_id: PreviewId,
        reason: String,
    ) -> Result<app::team::ApprovalView, ConsoleError> {
        self.decline(&self.permit, &preview_id, &reason).await
    }

    pub async fn control_job(
        &self,
        job_id: JobId,
        command: JobCommand,
    ) -> Result<JobView, ConsoleError> {
        let job = self.viewer().team_job(&job_id).await?;
        // A run nobody is running (paused before a restart) ends right here when cancelled,
        // a live one in its runner; either way the write that ends it records the end.
        let by = self.actor_short_name().await;
        let job = self
            .console
            .jobs
            .control(&self.permit, &job, command, &by)
            .await?;
        self.record_run_command(command, &job).await;
        self.job_view_of(&job).await
    }
}
