//! Leases and take-over: claiming jobs, the heartbeat that renews them, launching and
//! driving a runner under its lease, and picking up jobs nobody drives (after a restart,
//! or when another replica died).

use super::journal::DbJournal;
use super::*;
use crate::storage::Claim;

impl JobSupervisor {
    /// Claims the jobs nobody drives (or just `only`), leaving out those this process drives.
    pub(super) async fn claim(
        &self,
        only: Option<&JobId>,
    ) -> Result<Vec<(JobRecord, JobLease)>, StorageError> {
        let driving: Vec<JobId> = lock(&self.runs)
            .iter()
            .filter(|(_, r)| !r.task.is_finished())
            .map(|(id, _)| id.clone())
            .collect();
        let claim = Claim {
            holder: &self.replica,
            lease: self.lease,
            driving: &driving,
            only,
        };
        self.storage.claim_jobs(&claim).await
    }

    /// How often leases are renewed and free jobs looked for: a third of the lease (two
    /// heartbeats may fail before it expires), at most every 5 s.
    pub(super) fn heartbeat_every(&self) -> Duration {
        (self.lease / 3).clamp(Duration::from_millis(200), Duration::from_secs(5))
    }

    /// Renews the lease of every run of this process; a run whose lease was lost (another
    /// replica claimed the job) stops at once, writing nothing more.
    pub(super) async fn heartbeat(&self) {
        let leases: Vec<JobLease> = lock(&self.runs)
            .values()
            .filter(|r| !r.task.is_finished())
            .map(|r| r.lease.clone())
            .collect();
        for lease in leases {
            match self.storage.renew_lease(&lease, self.lease).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(job_id = %lease.job_id, "lost the job's lease: another replica drives it now");
                    self.stop_run(&lease);
                }
                Err(e) => {
                    tracing::warn!(job_id = %lease.job_id, error = %e, "could not renew the job's lease")
                }
            }
        }
    }

    /// Stops the run held under `lease` (if it still is this process's), like a crash.
    pub(super) fn stop_run(&self, lease: &JobLease) {
        let mut runs = lock(&self.runs);
        if runs.get(&lease.job_id).is_some_and(|r| r.lease == *lease) {
            if let Some(live) = runs.remove(&lease.job_id) {
                live.task.abort();
            }
        }
    }

    /// From now on, every few seconds: renews this process's leases, then takes over the
    /// jobs nobody holds (their replica stopped or died). The server calls it once, after
    /// [`JobSupervisor::resume_unfinished`].
    pub fn keep_claiming(self: &Arc<Self>) -> JoinHandle<()> {
        let supervisor = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(supervisor.heartbeat_every());
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                supervisor.heartbeat().await;
                supervisor.follow_stored_commands().await;
                supervisor.take_over("lease expired").await;
            }
        })
    }

    /// From now on, wakes the browsers following a run here as soon as another replica stores
    /// its events (PostgreSQL's notices; nothing to do on SQLite, where this process stores
    /// everything).
    pub async fn follow_other_replicas(self: &Arc<Self>) {
        let Some(mut notices) = self.storage.job_event_notices().await else {
            return;
        };
        let supervisor = self.clone();
        tokio::spawn(async move {
            while let Some(job_id) = notices.recv().await {
                supervisor
                    .feeds
                    .stored_elsewhere(&supervisor.storage, &job_id);
            }
        });
    }

    /// For a replica told to stop: stops its runners (a request in flight is dropped; its
    /// user stays "sending" and is checked by the next holder before anything is re-sent) and
    /// hands every lease back, so another replica takes the jobs over at once.
    pub async fn hand_back(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.abort_all();
        match self.storage.release_leases(&self.replica).await {
            Ok(n) if n > 0 => tracing::info!(jobs = n, "handed the running jobs back"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "could not hand the running jobs back"),
        }
    }

    /// Follows a job's log from the event after `after_seq` (see [`crate::job_feed`]).
    pub fn watch(&self, team_id: TeamId, job_id: &JobId, after_seq: i64) -> Watcher {
        self.feeds
            .watch(self.storage.clone(), team_id, job_id, after_seq)
    }

    /// Sets the job running and spawns its runner on the users still without a result.
    /// `then_cancel`: the job was being cancelled when the server stopped; only the users a
    /// request was in flight for are settled, then it ends as cancelled.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn launch(
        self: &Arc<Self>,
        team_id: TeamId,
        job_id: &JobId,
        lease: JobLease,
        provider: Arc<dyn ScimProvider>,
        options: RunOptions,
        then_cancel: bool,
        rereads: Arc<Rereads>,
    ) -> Result<(), ConsoleError> {
        if self.is_live(job_id) {
            return Ok(());
        }
        let targets = self.storage.job_targets(job_id).await?;
        self.log_state(job_id, Some(&lease), JobState::Running, None)
            .await?;
        let (control, receiver) = watch::channel(RunState::Running);
        let supervisor = self.clone();
        let id = job_id.clone();
        let mut runs = lock(&self.runs);
        let plan = RunPlan {
            team_id,
            targets,
            provider,
            options,
            control: RunControl::new(receiver.clone()).with_rereads(rereads.clone()),
            then_cancel,
            lease: lease.clone(),
        };
        let task = tokio::spawn(async move { supervisor.drive(id, plan, receiver).await });
        runs.insert(
            job_id.clone(),
            LiveRun {
                team_id,
                lease,
                control,
                rereads,
                task,
            },
        );
        Ok(())
    }

    pub(super) async fn drive(
        self: Arc<Self>,
        job_id: JobId,
        plan: RunPlan,
        control: watch::Receiver<RunState>,
    ) {
        let _live = crate::metrics::run_live();
        let team_id = plan.team_id;
        let lease = plan.lease;
        let journal = Arc::new(DbJournal {
            team_id,
            supervisor: self.clone(),
            feed: self.feeds.feed(&job_id),
            job_id: job_id.clone(),
            lease: lease.clone(),
            lease_lost: AtomicBool::new(false),
            control: control.clone(),
        });
        let summary = run(
            plan.provider,
            plan.targets,
            plan.options,
            journal.clone(),
            plan.control,
        )
        .await;
        if journal.lease_lost.load(Ordering::SeqCst) {
            // Another replica drives the job now: it records the rest, and the end.
            tracing::warn!(job_id = %job_id, "stopped: another replica took the job over");
            self.stop_run(&lease);
            return;
        }
        // A cancel pressed on another replica is in the stored state; the runner may have met
        // it (its "sending" mark refused) before this replica's heartbeat passed it on.
        let stored = self.storage.job(team_id, &job_id).await.ok().flatten();
        let cancelled_elsewhere = stored
            .as_ref()
            .is_some_and(|job| job.state == JobState::Cancelling);
        let cancelled = plan.then_cancel
            || cancelled_elsewhere
            || *control.borrow() == RunState::Cancelled
            || summary.stopped == Some(StopReason::Cancelled);
        if let (false, Some(StopReason::SiteDown { since })) = (cancelled, &summary.stopped) {
            let from = stored.as_ref().map_or(JobState::Running, |job| job.state);
            self.pause_for_outage(team_id, &job_id, &lease, from, *since)
                .await;
            return;
        }
        let ending = if cancelled {
            let (reason, rows) = cancelled_words(
                stored.as_ref().map(|job| job.state),
                stored.as_ref().and_then(|job| job.reason.as_deref()),
            );
            if let Err(e) = self.log_not_attempted(&job_id, Some(&lease), &rows).await {
                tracing::error!(job_id = %job_id, error = %e, "could not settle cancelled users");
            }
            (JobState::Stopped, Some(reason))
        } else {
            match &summary.stopped {
                Some(StopReason::JournalFailed(why)) => (JobState::Failed, Some(why.clone())),
                Some(reason) => (JobState::Stopped, Some(reason.message())),
                None => match self.storage.job_targets(&job_id).await {
                    Ok(left) if left.is_empty() => (JobState::Finished, None),
                    Ok(left) => (
                        JobState::Failed,
                        Some(format!(
                            "{} users have no recorded result; check them on the site.",
                            left.len()
                        )),
                    ),
                    Err(e) => {
                        tracing::error!(job_id = %job_id, error = %e, "could not read the job");
                        (
                            JobState::Failed,
                            Some("Offboard could not read the job's results.".to_string()),
                        )
                    }
                },
            }
        };
        match self
            .log_state(&job_id, Some(&lease), ending.0, ending.1)
            .await
        {
            Err(StorageError::LeaseLost(_)) => {
                tracing::warn!(job_id = %job_id, "another replica took the job over before its end");
                self.stop_run(&lease);
                return;
            }
            Err(e) => {
                tracing::error!(job_id = %job_id, error = %e, "could not record the job's end")
            }
            Ok(_) => {}
        }
        tracing::info!(job_id = %job_id, state = %ending.0, "job ended");
        crate::metrics::run_ended(ending.0);
        if let Err(e) = self.storage.release_lease(&lease).await {
            tracing::warn!(job_id = %job_id, error = %e, "could not release the ended job's lease");
        }
        lock(&self.runs).remove(&job_id);
    }

    /// The site stopped answering: the run pauses itself, says so (its state, its live log and
    /// the audit trail, as Offboard), and hands its lease back. The users the outage left
    /// without a result stay pending; Resume claims the job again and re-reads each of them
    /// before anything is sent. Kept across restarts and replicas like any pause.
    async fn pause_for_outage(
        &self,
        team_id: TeamId,
        job_id: &JobId,
        lease: &JobLease,
        from: JobState,
        since: std::time::SystemTime,
    ) {
        use crate::engine::job_state::{next_state, JobEvent as Happening};
        let to = next_state(from, Happening::SiteDown).unwrap_or(JobState::Paused);
        let words = crate::engine::runner::site_down_words(since);
        match self
            .log_state(job_id, Some(lease), to, Some(words.clone()))
            .await
        {
            Err(StorageError::LeaseLost(_)) => {
                tracing::warn!(job_id = %job_id, "another replica took the job over before its pause");
                self.stop_run(lease);
                return;
            }
            Err(e) => {
                tracing::error!(job_id = %job_id, error = %e, "could not record that the site stopped answering")
            }
            Ok(_) => {}
        }
        tracing::warn!(job_id = %job_id, "paused: the site stopped answering");
        audit::record_by_offboard(
            self.storage.as_ref(),
            team_id,
            app::audit::AuditAction::RunPaused,
            job_id,
            serde_json::json!({ "reason": format!("Paused: {words}"), "after": "the site stopped answering" }),
        )
        .await;
        if let Err(e) = self.storage.release_lease(lease).await {
            tracing::warn!(job_id = %job_id, error = %e, "could not release the paused job's lease");
        }
        lock(&self.runs).remove(job_id);
    }

    /// Starts the runner again for a job nobody runs (after a restart, or resumed from a pause
    /// that outlived its runner), on the exact connection it was confirmed on; every user not
    /// yet acted on is re-read against the preview before anything is sent.
    pub(super) async fn respawn(
        self: &Arc<Self>,
        job: &JobRecord,
        lease: JobLease,
        then_cancel: bool,
    ) -> Result<(), ConsoleError> {
        let site = self.bound_site(job).await?;
        let preview_id = job.preview_id.as_ref().ok_or_else(|| {
            ConsoleError::new(
                "This run has no preview to check its users against, so it will not continue.",
            )
        })?;
        let stored = StoredPreview::load(self.storage.as_ref(), job.team_id, preview_id).await?;
        let demote = stored.preview.demote_privileged;
        let options = RunOptions {
            action: job.action,
            demote_privileged: demote,
            ..self.run_options.clone()
        };
        let rereads = Rereads::new(
            target_checks(&stored.preview, demote),
            // Resumed with nobody signed in: the saved email stays protected; the starter's own
            // account was already left out when the run was created.
            policy_for(&site.record, demote, None),
        );
        rereads.start();
        self.launch(
            job.team_id,
            &job.id,
            lease,
            site.provider,
            options,
            then_cancel,
            rereads,
        )
        .await
    }

    /// At server start: claims and picks up every queued, running or cancelling job nobody
    /// else drives. A job that cannot resume (no token, another site) is paused with the
    /// reason, for the admin to act on.
    pub async fn resume_unfinished(self: &Arc<Self>) {
        self.take_over("server start").await;
    }

    /// Claims the unfinished jobs nobody holds and drives them (`after`: why, for the trail).
    pub(super) async fn take_over(self: &Arc<Self>, after: &str) {
        if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        let jobs = match self.claim(None).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::error!(error = %e, "could not claim unfinished jobs");
                return;
            }
        };
        for (job, lease) in jobs {
            let then_cancel = job.state == JobState::Cancelling;
            if then_cancel {
                if let Err(e) = self
                    .log_not_attempted(
                        &job.id,
                        Some(&lease),
                        &cancelled_words(Some(job.state), job.reason.as_deref()).1,
                    )
                    .await
                {
                    tracing::error!(job_id = %job.id, error = %e, "could not settle cancelled users");
                }
            }
            tracing::info!(job_id = %job.id, state = %job.state, after, "resuming job");
            crate::metrics::lease_taken_over(after);
            let (action, details) = match self.respawn(&job, lease.clone(), then_cancel).await {
                Ok(()) => (
                    app::audit::AuditAction::RunResumed,
                    serde_json::json!({ "after": after }),
                ),
                Err(e) => {
                    tracing::warn!(job_id = %job.id, reason = %e.message, "job cannot resume");
                    let details = serde_json::json!({ "reason": e.message });
                    let _ = self
                        .log_state(&job.id, Some(&lease), JobState::Paused, Some(e.message))
                        .await;
                    let _ = self.storage.release_lease(&lease).await;
                    (app::audit::AuditAction::RunPaused, details)
                }
            };
            audit::record_by_offboard(self.storage.as_ref(), job.team_id, action, &job.id, details)
                .await;
        }
    }
}

/// What one runner task runs: the users left, on which connection, how, and under which control.
pub(super) struct RunPlan {
    /// The team the job belongs to (its end is recorded in that team's audit trail).
    team_id: TeamId,
    targets: Vec<RunTarget>,
    provider: Arc<dyn ScimProvider>,
    options: RunOptions,
    control: RunControl,
    /// The job was being cancelled when the server stopped: settle, then end as cancelled.
    then_cancel: bool,
    /// The lease the job is driven under.
    lease: JobLease,
}
