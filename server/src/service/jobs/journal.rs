//! What a run writes as it goes: state changes and results pushed to the job's watchers,
//! and the runner's journal (every step stored, under the lease, before it happens).

use super::*;

impl JobSupervisor {
    /// Changes a job's state and pushes the logged change to its watchers. With a lease (the
    /// runner's writes), only while it holds the job.
    pub(super) async fn log_state(
        &self,
        job_id: &JobId,
        lease: Option<&JobLease>,
        state: JobState,
        reason: Option<String>,
    ) -> Result<JobEvent, StorageError> {
        let feed = self.feeds.feed(job_id);
        feed.write(self.storage.set_job_state(job_id, lease, state, reason))
            .await
    }

    /// Settles the job's pending users as not attempted, and pushes their results. With a
    /// lease, only while it holds the job.
    pub(super) async fn log_not_attempted(
        &self,
        job_id: &JobId,
        lease: Option<&JobLease>,
        message: &str,
    ) -> Result<Vec<JobEvent>, StorageError> {
        let feed = self.feeds.feed(job_id);
        feed.write(self.storage.record_not_attempted(job_id, lease, message))
            .await
    }
}

/// The runner's journal for a console job: every step is in the database before it happens.
pub(super) struct DbJournal {
    pub(super) team_id: TeamId,
    pub(super) supervisor: Arc<JobSupervisor>,
    /// Where each stored result is pushed to the job's watchers.
    pub(super) feed: Arc<JobFeed>,
    pub(super) job_id: JobId,
    /// Every write carries it; once one is refused, the run stops and records nothing more.
    pub(super) lease: JobLease,
    pub(super) lease_lost: AtomicBool,
    pub(super) control: watch::Receiver<RunState>,
}

impl DbJournal {
    /// A write refused because another replica claimed the job: nothing more may be sent.
    pub(super) fn refused(&self, e: StorageError, what: &str) -> JournalError {
        if matches!(e, StorageError::LeaseLost(_)) {
            self.lease_lost.store(true, Ordering::SeqCst);
            tracing::warn!(job_id = %self.job_id, "another replica took the job over");
            return JournalError::NotRecorded(e.to_string());
        }
        tracing::error!(job_id = %self.job_id, error = %e, "could not {what}");
        JournalError::NotRecorded(e.to_string())
    }
}

#[async_trait]
impl RunJournal for DbJournal {
    async fn sending(&self, account_id: &str) -> Result<(), JournalError> {
        let storage = &self.supervisor.storage;
        loop {
            match storage
                .mark_sending(&self.job_id, Some(&self.lease), account_id)
                .await
            {
                Ok(()) => return Ok(()),
                // Paused between the runner's check and this request: wait for the admin.
                Err(StorageError::JobNotRunning {
                    state: JobState::Paused | JobState::Queued,
                    ..
                }) => {
                    let mut control = self.control.clone();
                    let state = control
                        .wait_for(|s| *s != RunState::Paused)
                        .await
                        .map(|s| *s)
                        .unwrap_or(RunState::Cancelled);
                    if state == RunState::Cancelled {
                        return Err(JournalError::Cancelled);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(StorageError::JobNotRunning { .. }) => return Err(JournalError::Cancelled),
                Err(e) => return Err(self.refused(e, "mark sending")),
            }
        }
    }

    async fn finished(&self, result: &ItemResult) -> Result<(), JournalError> {
        let recorded = self
            .feed
            .write(
                self.supervisor
                    .storage
                    .record_result(&self.job_id, Some(&self.lease), result),
            )
            .await;
        recorded
            .map(|_| ())
            .map_err(|e| self.refused(e, "record a result"))
    }

    async fn cancelled_by(&self) -> Option<String> {
        match self
            .supervisor
            .storage
            .job(self.team_id, &self.job_id)
            .await
        {
            Ok(Some(job)) if job.state == JobState::Cancelling => job.reason,
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(job_id = %self.job_id, error = %e, "could not read who cancelled the run");
                None
            }
        }
    }
}
