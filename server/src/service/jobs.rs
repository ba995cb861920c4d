//! Runs the console's jobs in the background: starts them from a confirmed preview, records
//! every step in storage, obeys pause/resume/cancel, and picks unfinished jobs up again after a
//! restart. A run keeps going when the browser closes.
//!
//! Several console replicas may share one PostgreSQL database: a replica drives a job only
//! while it holds the job's lease ([`Storage::claim_jobs`]), renews it from a heartbeat, and
//! makes every runner write with it (the `_fenced` writes), so a replica that lost the lease
//! cannot write, hence cannot send, for that job any more. Replicas claim jobs nobody holds at
//! start and every few seconds after; a job whose replica died is taken over once its lease
//! expires, through the same path as a restart (users left "sending" are checked first).
//!
//! Decision: when the site says SCIM deletion is not enabled, the job ends as `stopped` with
//! the runner's explanation (the users it had not reached are recorded "not attempted"); after
//! fixing the setting the admin makes a new preview, which selects exactly the users still
//! there. Pausing instead would leave nothing to resume, since the runner settles every user.

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
use crate::engine::RunTarget;
use crate::scim::http::HttpOptions;
use crate::scim::ScimProvider;
use crate::secret::SecretBox;
use crate::storage::{
    ApprovalRecord, JobEvent, JobLease, JobRecord, JobState, NewJob, PlannedItem,
    PreviewSourceRecord, RunApproval, Storage, StorageError,
};
use app::backend::{ConsoleError, JobCommand};
use app::confirm::phrase_matches;
use app::ids::{JobId, PreviewId, TeamId};
use app::model::{ItemResult, SiteUser};
use async_trait::async_trait;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
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

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
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

    /// Claims the jobs nobody drives (or just `only`), leaving out those this process drives.
    async fn claim(
        &self,
        only: Option<&JobId>,
    ) -> Result<Vec<(JobRecord, JobLease)>, StorageError> {
        let driving: Vec<JobId> = lock(&self.runs)
            .iter()
            .filter(|(_, r)| !r.task.is_finished())
            .map(|(id, _)| id.clone())
            .collect();
        self.storage
            .claim_jobs(&self.replica, self.lease, &driving, only)
            .await
    }

    /// How often leases are renewed and free jobs looked for: a third of the lease (two
    /// heartbeats may fail before it expires), at most every 5 s.
    fn heartbeat_every(&self) -> Duration {
        (self.lease / 3).clamp(Duration::from_millis(200), Duration::from_secs(5))
    }

    /// Renews the lease of every run of this process; a run whose lease was lost (another
    /// replica claimed the job) stops at once, writing nothing more.
    async fn heartbeat(&self) {
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

    /// Pause, resume and cancel pressed on another replica reach this one's runners through
    /// the stored state: at each heartbeat, a run driven here whose stored state says paused,
    /// running or cancelling is told so. A resume re-reads the users not yet acted on first,
    /// as a resume pressed here does (the other replica checked the connection already).
    async fn follow_stored_commands(&self) {
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
            let here = *control.borrow();
            match (stored, here) {
                (JobState::Cancelling, RunState::Running | RunState::Paused) => {
                    tracing::info!(job_id = %job_id, "cancelled on another replica");
                    control.send_replace(RunState::Cancelled);
                }
                (JobState::Paused, RunState::Running) => {
                    tracing::info!(job_id = %job_id, "paused on another replica");
                    control.send_replace(RunState::Paused);
                }
                (JobState::Running, RunState::Paused) => {
                    tracing::info!(job_id = %job_id, "resumed on another replica");
                    rereads.start();
                    control.send_replace(RunState::Running);
                }
                _ => {}
            }
        }
    }

    /// Stops the run held under `lease` (if it still is this process's), like a crash.
    fn stop_run(&self, lease: &JobLease) {
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

    /// Changes a job's state and pushes the logged change to its watchers. With a lease (the
    /// runner's writes), only while it holds the job.
    async fn log_state(
        &self,
        job_id: &JobId,
        lease: Option<&JobLease>,
        state: JobState,
        reason: Option<String>,
    ) -> Result<JobEvent, StorageError> {
        let feed = self.feeds.feed(job_id);
        match lease {
            Some(lease) => {
                feed.write(self.storage.set_job_state_fenced(lease, state, reason))
                    .await
            }
            None => {
                feed.write(self.storage.set_job_state(job_id, state, reason))
                    .await
            }
        }
    }

    /// Settles the job's pending users as not attempted, and pushes their results. With a
    /// lease, only while it holds the job.
    async fn log_not_attempted(
        &self,
        job_id: &JobId,
        lease: Option<&JobLease>,
        message: &str,
    ) -> Result<Vec<JobEvent>, StorageError> {
        let feed = self.feeds.feed(job_id);
        match lease {
            Some(lease) => {
                feed.write(self.storage.record_not_attempted_fenced(lease, message))
                    .await
            }
            None => {
                feed.write(self.storage.record_not_attempted(job_id, message))
                    .await
            }
        }
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

    /// Checks the typed phrase, re-lists the site, creates the job from what still matches the
    /// preview, and starts it in the background. With `approval` (the request `actor` gives
    /// by typing the phrase), creating the job is approving it: both happen in one transaction
    /// or neither does, so a request declined, withdrawn or expired while the site was listed
    /// starts nothing and the answer says so.
    pub async fn start(
        self: &Arc<Self>,
        permit: &Permit<Operate>,
        preview_id: &PreviewId,
        typed: &str,
        actor: Actor,
        approval: Option<&ApprovalRecord>,
    ) -> Result<JobRecord, ConsoleError> {
        let team_id = permit.team;
        let stored = StoredPreview::load(self.storage.as_ref(), team_id, preview_id).await?;
        let record = &stored.record;
        if record.replaced_by.is_some() {
            return Err(ConsoleError::new(
                "This preview was replaced by a newer one with other options: check the newest \
                 preview and type its phrase.",
            ));
        }
        if record.claimed {
            return Err(ConsoleError::new(
                "This preview was already used to start a run; make a new preview.",
            ));
        }
        if !phrase_matches(&record.phrase, typed) {
            return Err(ConsoleError::new(format!(
                "The confirmation does not match: type {} exactly to start the run.",
                record.phrase
            )));
        }
        // Only the source's connection is needed here: its file and listing texts (tens of MB
        // for a large site) are let go at once, before the site is listed again.
        let PreviewSourceRecord {
            users_url,
            token_fingerprint,
            ..
        } = StoredPreview::source(self.storage.as_ref(), team_id, record).await?;
        let site = open_site(self.storage.as_ref(), &self.secrets, &self.http, team_id).await?;
        if site.endpoint.users_url() != users_url {
            return Err(ConsoleError::new(
                "The site connection changed since this preview was made; make a new preview.",
            ));
        }
        // Previews kept from before fingerprints were recorded have none ('').
        if !token_fingerprint.is_empty() && site.token_fingerprint != token_fingerprint {
            return Err(ConsoleError::new(
                "The SCIM token was replaced since this preview was made; make a new preview.",
            ));
        }
        if stored.preview.counts.selected == 0 {
            return Err(ConsoleError::new(
                "This preview selects nobody, so there is nothing to run.",
            ));
        }
        let site_url = site.endpoint.site_url().to_string();
        // Said now, before the site is listed; create_job checks again where it counts.
        let running = self.storage.runs_on_site(&site_url).await?;
        let limits = super::limits::Limits {
            runs_per_site: self.runs_per_site,
            ..Default::default()
        };
        site_has_room(running, &limits, &site_url)?;
        // The preview may be minutes old: act only on users that still match what was shown.
        let fresh = list_site(site.provider.as_ref()).await?;
        if !self.storage.claim_preview(team_id, &record.id).await? {
            return Err(ConsoleError::new(
                "This preview was already used to start a run; make a new preview.",
            ));
        }
        let mut policy = policy_for(
            &site.record,
            stored.preview.demote_privileged,
            actor.email(),
        );
        // The person who asked for the run is as protected as the one who started it.
        if let Some(request) = approval {
            policy
                .protected_emails
                .push(request.requester_email.clone());
        }
        let checked = recheck(&stored.preview, &fresh, &policy);
        let items = planned_in_preview_order(&stored, checked.targets, checked.changed);
        // The run needs of the preview only each selected user's check: the rows go before
        // the job is written, so a large preview and the fresh listing are not held together
        // with the job's users.
        let options = RunOptions {
            action: record.action,
            demote_privileged: stored.preview.demote_privileged,
            ..self.run_options.clone()
        };
        let checks = target_checks(&stored.preview, options.demote_privileged);
        let (action, confirmed) = (record.action, record.id.clone());
        drop(stored);
        let created_at = chrono::Utc::now();
        let approver = actor.name(site.record.operator_email.as_deref());
        let mut job = NewJob {
            id: JobId::new(uuid::Uuid::new_v4().to_string()),
            team_id,
            // Started by the person who asked; the approver is on the approval.
            created_by: match approval {
                Some(request) => request.requested_by.clone(),
                None => actor.name(site.record.operator_email.as_deref()),
            },
            created_at,
            site_url: site.endpoint.site_url().to_string(),
            action,
            preview_id: confirmed,
            connection: site.job_connection(),
            items,
            runs_per_site: self.runs_per_site,
            audit: Vec::new(),
            approval: approval.map(|_| RunApproval {
                by: approver.clone(),
                at: created_at,
            }),
        };
        job.audit = audit::run_start_entries(&job, approval.map(|request| (request, approver)));
        match self.storage.create_job(&job).await {
            Ok(()) => {}
            // Another run on this site was written since the check above (on this console or
            // another replica): the preview was not used, so it is given back.
            Err(StorageError::SiteBusy { running, .. }) => {
                self.storage
                    .release_preview(team_id, &job.preview_id)
                    .await?;
                site_has_room(running, &limits, &job.site_url)?;
            }
            // The request was declined, withdrawn or expired while the site was listed:
            // nothing was written, and the preview is given back as above.
            Err(StorageError::ApprovalNotAwaiting(_)) => {
                self.storage
                    .release_preview(team_id, &job.preview_id)
                    .await?;
                let request = self.storage.approval(team_id, &job.preview_id).await?;
                return Err(super::approvals::not_approved_in_time(
                    request.as_ref(),
                    created_at,
                ));
            }
            Err(e) => return Err(e.into()),
        }
        self.save_listing(&job.id, &fresh).await;
        // The listing is on disk and the users are in the database: neither copy is needed
        // while the runner starts.
        drop(fresh);
        let job_id = job.id;
        drop(job.items);
        // Another replica's periodic claim may have taken the new job in the meantime: then
        // that replica drives it (re-reading every user first), and this one does not.
        if let Some((_, lease)) = self.claim(Some(&job_id)).await?.pop() {
            let rereads = Rereads::new(checks, policy);
            self.launch(
                team_id,
                &job_id,
                lease,
                site.provider,
                options,
                false,
                rereads,
            )
            .await?;
        }
        self.job_record(team_id, &job_id).await
    }

    /// Keeps the listing in the database, where every replica finds it, gzipped as it is
    /// written (a 50,000-user site's JSON is about 15 MB; held whole next to the fresh listing
    /// it raised the start's peak memory by 39 MB). The run goes on without it if it cannot
    /// be kept (it is a report, not a record the run needs).
    async fn save_listing(&self, job_id: &JobId, users: &[SiteUser]) {
        let gzipped = (|| {
            let mut gzip =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            crate::engine::report::write_all_users_json(users, &mut gzip)?;
            gzip.finish()
        })();
        let kept = match gzipped {
            Ok(gzipped) => self
                .storage
                .save_listing(job_id, &gzipped)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = kept {
            tracing::warn!(job_id = %job_id, error = %e, "could not keep the listing snapshot");
        }
    }

    async fn job_record(&self, team_id: TeamId, job_id: &JobId) -> Result<JobRecord, ConsoleError> {
        self.storage
            .job(team_id, job_id)
            .await?
            .ok_or_else(|| ConsoleError::new("This run does not exist."))
    }

    /// Sets the job running and spawns its runner on the users still without a result.
    /// `then_cancel`: the job was being cancelled when the server stopped; only the users a
    /// request was in flight for are settled, then it ends as cancelled.
    #[allow(clippy::too_many_arguments)]
    async fn launch(
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

    async fn drive(
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
        audit::record_run_end(self.storage.as_ref(), team_id, &job_id).await;
        tracing::info!(job_id = %job_id, state = %ending.0, "job ended");
        crate::metrics::run_ended(ending.0);
        if let Err(e) = self.storage.release_lease(&lease).await {
            tracing::warn!(job_id = %job_id, error = %e, "could not release the ended job's lease");
        }
        lock(&self.runs).remove(&job_id);
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
        if job.state.has_ended() {
            return Err(ConsoleError::new(format!(
                "This run has already ended ({}).",
                job.state
            )));
        }
        let live = lock(&self.runs)
            .get(&job.id)
            .map(|r| (r.control.clone(), r.rereads.clone()));
        let sender = live.as_ref().map(|(control, _)| control.clone());
        match command {
            JobCommand::Pause => {
                if job.state == JobState::Cancelling {
                    return Err(ConsoleError::new("This run is being cancelled."));
                }
                // The runner first, so no new user is taken while the state is written.
                if let Some(s) = &sender {
                    s.send_replace(RunState::Paused);
                }
                self.set_state(
                    &job.id,
                    JobState::Paused,
                    Some(format!("{}.", run_command_words(by, "paused", now))),
                )
                .await?;
            }
            JobCommand::Resume => {
                if job.state == JobState::Cancelling {
                    return Err(ConsoleError::new("This run is being cancelled."));
                }
                match live {
                    Some((s, rereads)) if self.is_live(&job.id) => {
                        // The same checks as a restart: the exact connection, then a re-read
                        // of every user not yet acted on.
                        self.bound_site(job).await?;
                        rereads.start();
                        self.set_state(&job.id, JobState::Running, None).await?;
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
                                self.set_state(&job.id, JobState::Running, None).await?;
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
                    self.set_state(&job.id, JobState::Cancelling, Some(cancelled))
                        .await?;
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
                            self.set_state(&job.id, JobState::Cancelling, Some(cancelled))
                                .await?;
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

    async fn set_state(
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
    async fn bound_site(&self, job: &JobRecord) -> Result<Site, ConsoleError> {
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

    /// Starts the runner again for a job nobody runs (after a restart, or resumed from a pause
    /// that outlived its runner), on the exact connection it was confirmed on; every user not
    /// yet acted on is re-read against the preview before anything is sent.
    async fn respawn(
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
    async fn take_over(self: &Arc<Self>, after: &str) {
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
struct RunPlan {
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

/// Every selected preview row's item, in the preview's order.
fn planned_in_preview_order(
    stored: &StoredPreview,
    targets: Vec<RunTarget>,
    changed: Vec<ItemResult>,
) -> Vec<PlannedItem> {
    let mut by_account: HashMap<String, PlannedItem> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    for target in targets {
        order.push(target.account_id.clone());
        by_account.insert(target.account_id.clone(), PlannedItem::Run(target));
    }
    for result in changed {
        order.push(result.account_id.clone());
        by_account.insert(result.account_id.clone(), PlannedItem::Settled(result));
    }
    let mut items = Vec::with_capacity(by_account.len());
    for row in stored.preview.selected() {
        let key = row.account_id.clone().unwrap_or_else(|| row.input.clone());
        if let Some(item) = by_account.remove(&key) {
            items.push(item);
        }
    }
    // Anything recheck returned that no row names (never expected) still goes in, last.
    for key in order {
        if let Some(item) = by_account.remove(&key) {
            items.push(item);
        }
    }
    items
}

/// The runner's journal for a console job: every step is in the database before it happens.
struct DbJournal {
    team_id: TeamId,
    supervisor: Arc<JobSupervisor>,
    /// Where each stored result is pushed to the job's watchers.
    feed: Arc<JobFeed>,
    job_id: JobId,
    /// Every write carries it; once one is refused, the run stops and records nothing more.
    lease: JobLease,
    lease_lost: AtomicBool,
    control: watch::Receiver<RunState>,
}

impl DbJournal {
    /// A write refused because another replica claimed the job: nothing more may be sent.
    fn refused(&self, e: StorageError, what: &str) -> JournalError {
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
            match storage.mark_sending_fenced(&self.lease, account_id).await {
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
                    .record_result_fenced(&self.lease, result),
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

#[cfg(test)]
mod words_tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn run_commands_name_the_person_and_the_minute() {
        let at = chrono::Utc
            .with_ymd_and_hms(2026, 12, 7, 12, 17, 59)
            .unwrap();
        assert_eq!(
            run_command_words("Priya", "cancelled", at),
            "Priya cancelled the run at 12:17 UTC"
        );
        assert_eq!(
            run_command_words("  ", "paused", at),
            "Someone paused the run at 12:17 UTC"
        );
        let early = chrono::Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(
            run_command_words("Émile Ørsted", "cancelled", early),
            "Émile Ørsted cancelled the run at 03:04 UTC"
        );
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
