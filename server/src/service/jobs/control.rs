//! Pause, resume and cancel: pressed here (`control`) or on another replica (the stored
//! state, followed at each heartbeat). Both go through `engine::job_state::next_state`.

use super::*;
use crate::engine::job_state::{next_state, JobEvent};

impl JobSupervisor {
    /// Pause, resume and cancel pressed on another replica reach this one's runners through
    /// the stored state: at each heartbeat, a run driven here whose stored state says paused,
    /// running or cancelling is told so. A resume re-reads the users not yet acted on first,
    /// as a resume pressed here does (the other replica checked the connection already).
    pub(super) async fn follow_stored_commands(&self) {
        let live: Vec<(TeamId, JobId, watch::Sender<RunState>, Arc<Rereads>)> = lock(&self.runs)
            .iter()
            .filter(|(_, r)| !r.task.is_finished())
            .map(|(id, r)| (r.team_id, id.clone(), r.control.clone(), r.rereads.clone()))
            .collect();
        for (team_id, job_id, control, rereads) in live {
            let stored = match self.storage.job(team_id, &job_id).await {
                Ok(Some(job)) => job.state,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(job_id = %job_id, error = %e, "could not read a run's state");
                    continue;
                }
            };
            // The stored state is the command pressed elsewhere; the runner's state is where
            // this replica's run is. The transition says what, if anything, it must do.
            let event = match stored {
                JobState::Cancelling => JobEvent::Cancel,
                JobState::Paused => JobEvent::Pause,
                JobState::Running => JobEvent::Resume,
                _ => continue,
            };
            let here = match *control.borrow() {
                RunState::Running => JobState::Running,
                RunState::Paused => JobState::Paused,
                RunState::Cancelled => JobState::Cancelling,
            };
            match next_state(here, event) {
                Ok(to) if to == here => {}
                Ok(JobState::Cancelling) => {
                    tracing::info!(job_id = %job_id, "cancelled on another replica");
                    control.send_replace(RunState::Cancelled);
                }
                Ok(JobState::Paused) => {
                    tracing::info!(job_id = %job_id, "paused on another replica");
                    control.send_replace(RunState::Paused);
                }
                Ok(JobState::Running) => {
                    tracing::info!(job_id = %job_id, "resumed on another replica");
                    rereads.start();
                    control.send_replace(RunState::Running);
                }
                Ok(_) | Err(_) => {}
            }
        }
    }

    /// Pause, resume or cancel `job` (already checked to be the caller's team's) for `by`
    /// (the person's name: the run's state and its report rows say who did it, and when).
    pub async fn control(
        self: &Arc<Self>,
        _permit: &Permit<Operate>,
        job: &JobRecord,
        command: JobCommand,
        by: &str,
    ) -> Result<JobRecord, ConsoleError> {
        let now = chrono::Utc::now();
        // Refused here (an ended run, a pause or resume while cancelling) before anything is
        // told to the runner; the storage refuses a run that ended meanwhile.
        let to = next_state(job.state, JobEvent::of_command(command))
            .map_err(|refused| ConsoleError::new(refused.words()))?;
        let live = lock(&self.runs)
            .get(&job.id)
            .map(|r| (r.control.clone(), r.rereads.clone()));
        let sender = live.as_ref().map(|(control, _)| control.clone());
        match command {
            JobCommand::Pause => {
                // The runner first, so no new user is taken while the state is written.
                if let Some(s) = &sender {
                    s.send_replace(RunState::Paused);
                }
                self.set_state(
                    &job.id,
                    to,
                    Some(format!("{}.", run_command_words(by, "paused", now))),
                )
                .await?;
            }
            JobCommand::Resume => {
                match live {
                    Some((s, rereads)) if self.is_live(&job.id) => {
                        // The same checks as a restart: the exact connection, then a re-read
                        // of every user not yet acted on.
                        self.bound_site(job).await?;
                        rereads.start();
                        self.set_state(&job.id, to, None).await?;
                        s.send_replace(RunState::Running);
                    }
                    _ => {
                        // A paused run nobody drives here: this replica claims it first.
                        match self.claim(Some(&job.id)).await?.pop() {
                            Some((_, lease)) => {
                                if let Err(e) = self.respawn(job, lease.clone(), false).await {
                                    let _ = self.storage.release_lease(&lease).await;
                                    return Err(e);
                                }
                            }
                            None => {
                                // Another replica drives it: the same connection check as
                                // here, then the stored state tells that replica to go on
                                // (it re-reads the users not yet acted on first).
                                self.bound_site(job).await?;
                                self.set_state(&job.id, to, None).await?;
                            }
                        }
                    }
                }
            }
            JobCommand::Cancel => {
                let cancelled = run_command_words(by, "cancelled", now);
                // The words are stored before the runner hears of the cancel, so the rows it
                // does not reach say who cancelled (it reads them back at its end).
                if self.is_live(&job.id) {
                    self.set_state(&job.id, to, Some(cancelled)).await?;
                    if let Some(s) = &sender {
                        s.send_replace(RunState::Cancelled);
                    }
                } else {
                    if let Some(s) = &sender {
                        s.send_replace(RunState::Cancelled);
                    }
                    match self.claim(Some(&job.id)).await?.pop() {
                        // Another replica drives it: it reads "cancelling" at its next user
                        // (or heartbeat) and settles the rest itself, so a request it has in
                        // flight still gets its result.
                        None => {
                            self.set_state(&job.id, to, Some(cancelled)).await?;
                        }
                        // Nobody is running it (paused before a restart): settle it here.
                        Some((_, lease)) => {
                            let (reason, rows) =
                                cancelled_words(Some(JobState::Cancelling), Some(&cancelled));
                            self.log_not_attempted(&job.id, Some(&lease), &rows).await?;
                            self.log_state(&job.id, Some(&lease), JobState::Stopped, Some(reason))
                                .await?;
                            if let Err(e) = self.storage.release_lease(&lease).await {
                                tracing::warn!(job_id = %job.id, error = %e, "could not release a settled job's lease");
                            }
                        }
                    }
                }
            }
        }
        self.job_record(job.team_id, &job.id).await
    }

    pub(super) async fn set_state(
        &self,
        job_id: &JobId,
        state: JobState,
        reason: Option<String>,
    ) -> Result<(), ConsoleError> {
        match self.log_state(job_id, None, state, reason).await {
            Ok(_) => Ok(()),
            Err(StorageError::JobEnded { state, .. }) => Err(ConsoleError::new(format!(
                "This run has already ended ({state})."
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The team's saved connection, if it is exactly the one `job` was confirmed on (users
    /// endpoint and token); otherwise why the run will not continue, in plain words. Account
    /// IDs mean something only on the endpoint that listed them.
    pub(super) async fn bound_site(&self, job: &JobRecord) -> Result<Site, ConsoleError> {
        let site = open_site(
            self.storage.as_ref(),
            &self.secrets,
            &self.http,
            job.team_id,
        )
        .await?;
        let Some(bound) = &job.connection else {
            return Err(ConsoleError::new(
                "This run was started by an earlier version of Offboard, which did not record \
                 the exact connection it was confirmed on, so it will not continue. Make a new \
                 preview of the same users: those already deleted will show as not found.",
            ));
        };
        if site.endpoint.users_url() != bound.users_url {
            return Err(ConsoleError::new(format!(
                "The saved connection now points at another SCIM address ({}) than the one \
                 this run was confirmed on ({}). Account IDs only mean something on the address \
                 that listed them, so the run will not continue there. Save the connection with \
                 the run's address to resume it, or make a new preview.",
                site.endpoint.users_url(),
                bound.users_url
            )));
        }
        if site.token_fingerprint != bound.token_fingerprint {
            return Err(ConsoleError::new(
                "The SCIM token was changed since this run was confirmed, and a run only \
                 continues with the token it was confirmed with. Save that token again to resume \
                 it, or make a new preview of the same users.",
            ));
        }
        Ok(site)
    }
}
