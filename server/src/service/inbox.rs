//! "Waiting for you": what in a team waits for the person looking (Overview's card and the
//! header's count). Read on the viewer's handle; what a viewer cannot act on (approving,
//! resuming or cancelling) is left out for them. Nothing is stored for it: each item is
//! derived from the requests and runs as they stand, so it leaves the list the moment it is
//! handled.

use super::desks::ViewerDesk;
use crate::engine::undo::SHOWN_DAYS_AHEAD;
use crate::storage::{JobRecord, JobState};
use app::backend::{ApprovalRequestView, ConsoleError, DeletionDueView, JobView, WaitingForYou};
use app::ids::PreviewId;
use app::model::ItemOutcome;
use app::team::{ApprovalState, Role};
use chrono::Duration;

/// How long a run that ended with users not done stays in the list: long enough to be seen
/// after a weekend, short enough that the list is about now. (Nobody "closes" such a run;
/// see docs/notifications.md.)
pub const ENDED_RUNS_DAYS: i64 = 7;

impl ViewerDesk<'_> {
    /// What waits for the person looking, in this team.
    pub async fn waiting_for_you(&self) -> Result<WaitingForYou, ConsoleError> {
        let since = self.console.clock.now() - Duration::days(ENDED_RUNS_DAYS);
        let requests = self.unrun_requests().await?;
        let runs = self
            .console
            .storage
            .runs_to_look_at(self.team, since)
            .await?;
        let mut views = Vec::with_capacity(runs.len());
        for run in runs {
            if let Some(need) = run_need(&run) {
                views.push((need, self.job_view_of(&run).await?));
            }
        }
        let mut waiting = sorted(requests, views, self.role);
        waiting.prepared = self.prepared_deletions().await?;
        waiting.deletions_due = self.deletions_due().await?;
        Ok(waiting)
    }

    /// The team's undo windows whose deletion comes within 7 days, and the previews waiting
    /// at their date for a person (until one starts a run from it).
    async fn deletions_due(&self) -> Result<Vec<DeletionDueView>, ConsoleError> {
        let storage = self.console.storage.as_ref();
        let ahead = self.console.clock.now() + Duration::days(SHOWN_DAYS_AHEAD);
        let mut due = Vec::new();
        for window in storage.undo_windows_due(self.team, ahead).await? {
            let waiting_preview = window.preview_id.map(PreviewId::new);
            if let Some(preview) = &waiting_preview {
                let used = storage.preview(self.team, preview).await?;
                if used.is_none_or(|p| p.claimed || p.replaced_by.is_some()) {
                    continue;
                }
            }
            let users = storage.undo_users(&window.job_id).await?;
            due.push(DeletionDueView {
                job_id: window.job_id,
                delete_on: window.delete_on,
                users: users.iter().filter(|u| u.restored_at.is_none()).count() as u64,
                waiting_preview,
            });
        }
        Ok(due)
    }
}

/// Why a run waits for someone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunNeed {
    /// Paused: someone resumes or cancels it.
    Decision,
    /// Ended with users not done (failed, or stopped by something other than a cancel).
    Failures,
}

/// Why `run` waits for someone, if it does. Runs still going, finished clean, or cancelled by
/// a person (with nothing failed before the cancel) wait for nobody.
pub fn run_need(run: &JobRecord) -> Option<RunNeed> {
    let failed = run.count(ItemOutcome::Failed) > 0;
    match run.state {
        JobState::Paused => Some(RunNeed::Decision),
        JobState::Failed => Some(RunNeed::Failures),
        JobState::Stopped if !super::jobs::stopped_by_a_cancel(run.reason.as_deref()) => {
            Some(RunNeed::Failures)
        }
        JobState::Stopped | JobState::Finished if failed => Some(RunNeed::Failures),
        _ => None,
    }
}

/// The list for someone with `role`: requests they may approve (others', awaiting, oldest
/// first; operators and owners only), their own awaiting or declined requests, paused runs
/// (operators and owners only) and runs that ended with failures (everyone: a viewer reads
/// their report).
pub fn sorted(
    requests: Vec<ApprovalRequestView>,
    runs: Vec<(RunNeed, JobView)>,
    role: Role,
) -> WaitingForYou {
    let operates = role >= Role::Operator;
    let mut waiting = WaitingForYou::default();
    for request in requests {
        let state = request.approval.state;
        if request.approval.yours {
            if matches!(state, ApprovalState::Awaiting | ApprovalState::Declined) {
                waiting.yours.push(request);
            }
        } else if operates && state == ApprovalState::Awaiting {
            waiting.to_approve.push(request);
        }
    }
    // Requests come newest first; the oldest waits longest, so it leads.
    waiting.to_approve.reverse();
    for (need, run) in runs {
        match need {
            RunNeed::Decision if operates => waiting.to_decide.push(run),
            RunNeed::Decision => {}
            RunNeed::Failures => waiting.with_failures.push(run),
        }
    }
    waiting
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::model::Action;
    use app::team::ApprovalView;
    use chrono::{TimeZone, Utc};
    use model::ids::{JobId, PreviewId, TeamId};
    use std::collections::BTreeMap;

    fn request(id: &str, state: ApprovalState, yours: bool) -> ApprovalRequestView {
        ApprovalRequestView {
            preview_id: PreviewId::from(id.to_string()),
            action: Action::Delete,
            users: 3,
            approval: ApprovalView {
                state,
                requested_by: "Carol <carol@offboard.test>".into(),
                requested_at: "2026-05-06 12:00 UTC".into(),
                expires_at: "2026-05-07 12:00 UTC".into(),
                decided_by: None,
                reason: None,
                yours,
            },
        }
    }

    fn run(state: JobState, reason: Option<&str>, counts: &[(ItemOutcome, u64)]) -> JobRecord {
        JobRecord {
            id: JobId::from("run".to_string()),
            team_id: TeamId::new(1),
            created_by: "Carol <carol@offboard.test>".into(),
            created_at: Utc.with_ymd_and_hms(2026, 5, 6, 12, 0, 0).unwrap(),
            site_url: "https://acme.stackenterprise.co".into(),
            action: Action::Delete,
            preview_id: None,
            connection: None,
            state,
            reason: reason.map(str::to_string),
            started_at: None,
            finished_at: None,
            total: 10,
            done: counts.iter().map(|(_, n)| n).sum(),
            counts: counts.iter().copied().collect::<BTreeMap<_, _>>(),
            approved_by: None,
            approved_at: None,
        }
    }

    fn ids(list: &[ApprovalRequestView]) -> Vec<&str> {
        list.iter().map(|r| r.preview_id.as_str()).collect()
    }

    #[test]
    fn an_operator_gets_others_awaiting_requests_oldest_first_and_never_their_own() {
        let requests = vec![
            request("newest", ApprovalState::Awaiting, false),
            request("mine", ApprovalState::Awaiting, true),
            request("declined-other", ApprovalState::Declined, false),
            request("expired-other", ApprovalState::Expired, false),
            request("my-declined", ApprovalState::Declined, true),
            request("my-expired", ApprovalState::Expired, true),
            request("oldest", ApprovalState::Awaiting, false),
        ];
        let w = sorted(requests, vec![], Role::Operator);
        assert_eq!(ids(&w.to_approve), ["oldest", "newest"]);
        assert_eq!(ids(&w.yours), ["mine", "my-declined"]);
        assert_eq!(w.count(), 4);
    }

    #[test]
    fn a_viewer_has_nothing_to_approve_or_decide_but_sees_failures() {
        let requests = vec![request("other", ApprovalState::Awaiting, false)];
        let runs = vec![
            (RunNeed::Decision, job_view_of(JobState::Paused)),
            (RunNeed::Failures, job_view_of(JobState::Failed)),
        ];
        let w = sorted(requests.clone(), runs.clone(), Role::Viewer);
        assert!(w.to_approve.is_empty() && w.to_decide.is_empty(), "{w:?}");
        assert_eq!(w.with_failures.len(), 1);
        assert_eq!(w.count(), 1);
        let w = sorted(requests, runs, Role::Owner);
        assert_eq!((w.to_approve.len(), w.to_decide.len()), (1, 1));
        assert_eq!(w.count(), 3);
    }

    fn job_view_of(state: JobState) -> JobView {
        crate::service::views::job_view(&run(state, None, &[]))
    }

    #[test]
    fn runs_wait_when_paused_failed_or_stopped_by_something_else_than_a_cancel() {
        use ItemOutcome::{Deleted, Failed, NotAttempted};
        assert_eq!(
            run_need(&run(
                JobState::Paused,
                Some("Priya paused the run at 12:10 UTC."),
                &[]
            )),
            Some(RunNeed::Decision)
        );
        assert_eq!(
            run_need(&run(JobState::Failed, Some("disk full"), &[])),
            Some(RunNeed::Failures)
        );
        let token_refused = "The site refused the token: check it on Connect.";
        assert_eq!(
            run_need(&run(
                JobState::Stopped,
                Some(token_refused),
                &[(NotAttempted, 4)]
            )),
            Some(RunNeed::Failures)
        );
        assert_eq!(
            run_need(&run(JobState::Stopped, None, &[])),
            Some(RunNeed::Failures)
        );
        let cancelled = "Priya cancelled the run at 12:17 UTC.";
        assert_eq!(
            run_need(&run(
                JobState::Stopped,
                Some(cancelled),
                &[(Deleted, 2), (NotAttempted, 8)]
            )),
            None
        );
        assert_eq!(
            run_need(&run(
                JobState::Stopped,
                Some(cancelled),
                &[(Failed, 1), (NotAttempted, 9)]
            )),
            Some(RunNeed::Failures)
        );
        assert_eq!(
            run_need(&run(JobState::Finished, None, &[(Deleted, 9), (Failed, 1)])),
            Some(RunNeed::Failures)
        );
        assert_eq!(
            run_need(&run(JobState::Finished, None, &[(Deleted, 10)])),
            None
        );
        for going in [JobState::Queued, JobState::Running, JobState::Cancelling] {
            assert_eq!(
                run_need(&run(going, None, &[(Failed, 3)])),
                None,
                "{going:?}"
            );
        }
    }
}
