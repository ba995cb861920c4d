//! The service floor: everything the console does, for one team at a time. HTTP handlers and
//! server functions call it; it is the only caller of storage. [`build`] wires it once, for
//! `offboard serve` and for every test alike.
//!
//! Where the rules live: who may see a job or a preview is [`TeamConsole`] (every read goes
//! through the caller's team); previews are made in `previews.rs`, the site in `sites.rs`,
//! runs are started, controlled and resumed in `jobs.rs`, reports in `reports.rs`.

pub mod accounts;
pub mod approvals;
pub mod audit;
pub mod job_feed;
pub mod jobs;
pub mod keys;
pub mod limits;
pub mod passwords;
pub mod permits;
mod previews;
pub mod reports;
mod sites;
pub mod views;

pub use accounts::{Member, Person};
pub use audit::Actor;
pub use previews::{PreviewInput, StoredPreview};
pub use sites::Site;

use crate::engine::connection::check_connection;
use crate::engine::resolve::{is_system_account, Policy};
use crate::engine::runner::RunOptions;
use crate::engine::{Clock, SystemClock};
use crate::scim::http::HttpOptions;
use crate::scim::ScimToken;
use crate::secret::SecretBox;
use crate::storage::{ConnectionRecord, JobRecord, Storage, StorageError, StorageHealth};
use app::backend::{
    ConnectionForm, ConnectionView, ConsoleBackend, ConsoleError, Diagnosis, JobCommand,
    JobEventView, JobResultsPage, JobView, PreviewRowsPage, PreviewSummary, StorageStatus,
};
use app::hidden::Hidden;
use app::ids::{JobId, PreviewId, TeamId};
use app::model::{Action, DiagnosisKind, PreviewOutcome, PreviewSource, SiteUser};
use app::team::Role;
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use jobs::JobSupervisor;
use limits::Counted;
use permits::{Need, Operate, Own, Permit, View};
use previews::{damaged_preview, headline, resolve_input, summary};
use sites::{
    connection_endpoint, diagnosis, list_site, not_connected, not_connected_diagnosis,
    provider_for, trimmed,
};
use std::path::PathBuf;
use std::sync::Arc;
use views::{connection_view, event_view, job_view, stamp};

/// Most preview rows one page may ask for.
pub const MAX_ROWS_PER_PAGE: usize = 500;
/// Most events one `job_events` call returns.
const MAX_EVENTS_PER_CALL: u32 = 1000;
/// How many past jobs the History screen looks at.
const JOBS_LISTED: u32 = 10_000;

/// What the service is made of, shared by every team's requests.
pub struct Console {
    pub storage: Arc<dyn Storage>,
    pub clock: Arc<dyn Clock>,
    pub secrets: SecretBox,
    pub http: HttpOptions,
    pub jobs: Arc<JobSupervisor>,
    pub limits: limits::Limits,
    /// Password hashes and checks, a few at a time off the request threads.
    pub passwords: passwords::Passwords,
}

/// How [`build`] sets the service up; `Settings::new` has the defaults `offboard serve` uses.
pub struct Settings {
    /// Where job listings are kept (`jobs/{id}/all_users.json`).
    pub data_dir: PathBuf,
    pub http: HttpOptions,
    pub run: RunOptions,
    pub clock: Arc<dyn Clock>,
    pub limits: limits::Limits,
    /// How long a job claimed by this console stays its own without a heartbeat.
    pub job_lease: std::time::Duration,
}

impl Settings {
    pub fn new(data_dir: PathBuf) -> Settings {
        Settings {
            data_dir,
            http: HttpOptions::default(),
            run: RunOptions::default(),
            clock: Arc::new(SystemClock),
            limits: limits::Limits::default(),
            job_lease: jobs::DEFAULT_JOB_LEASE,
        }
    }
}

/// Opens (creating and migrating) the console's database at `url`: the records the service
/// keeps, and the pool the sign-in sessions share.
pub async fn open_database(url: &str) -> Result<crate::storage::Database, StorageError> {
    crate::storage::open(url).await
}

/// The service on `storage`, with its job supervisor. Unfinished jobs are not resumed yet:
/// call [`JobSupervisor::resume_unfinished`] (the server does at start; tests choose when).
pub fn build(storage: Arc<dyn Storage>, secrets: SecretBox, settings: Settings) -> Arc<Console> {
    // Each run sends at most its share of the site's requests (see limits.rs).
    let run = RunOptions {
        concurrency: settings
            .run
            .concurrency
            .min(settings.limits.requests_per_run()),
        ..settings.run
    };
    let jobs = JobSupervisor::new(
        storage.clone(),
        secrets.clone(),
        settings.http.clone(),
        run,
        settings.data_dir,
        settings.limits.runs_per_site,
        settings.job_lease,
    );
    Arc::new(Console {
        storage,
        clock: settings.clock,
        secrets,
        http: settings.http,
        jobs,
        limits: settings.limits,
        passwords: passwords::Passwords::default(),
    })
}

/// The service as one team sees it: every method reads and writes that team's records only.
/// The HTTP floor makes one per request from the caller (see `http::caller`).
pub struct TeamConsole {
    console: Arc<Console>,
    team: TeamId,
    team_name: String,
    /// What the request may do in the team: every method below first obtains the permit it
    /// needs from this (see `permits.rs`).
    role: Role,
    /// Who the request acts for: named in the audit trail and a run's "started by".
    actor: Actor,
}

impl std::ops::Deref for TeamConsole {
    type Target = Console;

    fn deref(&self) -> &Console {
        &self.console
    }
}

impl Console {
    /// The service for `team`'s requests, made by `actor` with every right of an owner: for
    /// the service driven directly (tests, tools), never for a request from a browser, which
    /// gets [`Console::for_member`].
    pub fn for_team(self: &Arc<Self>, team: TeamId, actor: Actor) -> TeamConsole {
        TeamConsole {
            console: self.clone(),
            team,
            team_name: format!("team {team}"),
            role: Role::Owner,
            actor,
        }
    }

    /// The service for a signed-in member's requests: their team, their role, their name.
    pub fn for_member(self: &Arc<Self>, member: &Member) -> TeamConsole {
        TeamConsole {
            console: self.clone(),
            team: member.team,
            team_name: member.team_name.clone(),
            role: member.role,
            actor: member.person.actor(),
        }
    }

    /// Removes previews nobody confirmed within `keep`, with their files and listings.
    pub async fn expire_previews(&self, keep: chrono::Duration) {
        let before = self.clock.now() - keep;
        match self.storage.expire_previews(before).await {
            Ok(gone) if gone.previews + gone.sources > 0 => tracing::info!(
                previews = gone.previews,
                sources = gone.sources,
                "removed unconfirmed previews older than {} hours",
                keep.num_hours()
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "could not remove old previews"),
        }
    }

    /// A real round trip to the database, for the health check.
    pub async fn database_health(&self) -> Result<StorageHealth, StorageError> {
        self.storage.health(TeamId::BUILT_IN).await
    }
}

/// A storage failure: logged in full, told to the admin in plain words.
impl From<StorageError> for ConsoleError {
    fn from(e: StorageError) -> ConsoleError {
        tracing::error!(error = %e, "storage failed");
        ConsoleError::failed(
            "The console's database did not answer as expected. Check the server log.",
        )
    }
}

impl TeamConsole {
    /// The permit for `N`, or a refusal naming the role needed.
    fn may<N: Need>(&self) -> Result<Permit<N>, ConsoleError> {
        permits::check(self.role, self.team, &self.team_name)
    }

    /// The team's saved site, ready to talk to.
    async fn site(&self) -> Result<Site, ConsoleError> {
        sites::open_site(self.storage.as_ref(), &self.secrets, &self.http, self.team).await
    }

    /// Follows `job`'s log (one of this team's, from [`TeamConsole::team_job`]) from the event
    /// after `after_seq`.
    pub fn watch_job(&self, job: &JobRecord, after_seq: i64) -> job_feed::Watcher {
        self.jobs.watch(self.team, &job.id, after_seq)
    }

    /// What the pages show of `job`: its record, and who approved it.
    pub(super) async fn job_view_of(&self, job: &JobRecord) -> Result<JobView, ConsoleError> {
        // Runs approved before the approver was written with the run: from the request.
        let approved_by = match (&job.approved_by, &job.preview_id) {
            (Some(by), _) => Some(by.clone()),
            (None, Some(preview)) => self
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

    /// The team's job `job_id`; "does not exist" for another team's.
    pub async fn team_job(&self, job_id: &JobId) -> Result<JobRecord, ConsoleError> {
        self.may::<View>()?;
        self.storage
            .job(self.team, job_id)
            .await?
            .ok_or_else(|| ConsoleError::not_found("This run does not exist."))
    }
}

#[async_trait]
impl ConsoleBackend for TeamConsole {
    async fn storage_status(&self) -> Result<StorageStatus, ConsoleError> {
        self.may::<View>()?;
        let health = self.storage.health(self.team).await?;
        Ok(StorageStatus {
            database: health.database.to_string(),
            migrations: health.migrations,
            jobs: health.jobs,
            checked_at: stamp(self.clock.now()),
        })
    }

    async fn connection(&self) -> Result<ConnectionView, ConsoleError> {
        self.may::<View>()?;
        let record = self.storage.connection(self.team).await?;
        Ok(connection_view(record.as_ref()))
    }

    async fn save_connection(
        &self,
        form: ConnectionForm,
    ) -> Result<(ConnectionView, Diagnosis), ConsoleError> {
        self.may::<Own>()?;
        let existing = self.storage.connection(self.team).await?;
        let site_url = form.site_url.trim().to_string();
        let scim_base_url = trimmed(form.scim_base_url.as_deref());
        let endpoint = match connection_endpoint(&site_url, scim_base_url.as_deref())
            .and_then(|endpoint| sites::allowed(&endpoint, &self.http).map(|()| endpoint))
        {
            Ok(endpoint) => endpoint,
            Err(e) => {
                // Nothing is saved: an unusable address must not replace a working one.
                let found = Diagnosis {
                    ok: false,
                    kind: DiagnosisKind::BadUrl,
                    message: e.message,
                    user_count: None,
                };
                return Ok((connection_view(existing.as_ref()), found));
            }
        };
        let new_token = form
            .token
            .as_ref()
            .map(|t| ScimToken::new(t.expose().as_str()))
            .filter(|t| !t.is_empty());
        // A saved token only stays with the very site (and SCIM base) it was saved for.
        let same_site = existing
            .as_ref()
            .is_some_and(|r| r.site_url == site_url && r.scim_base_url == scim_base_url);
        let (token_ciphertext, token_hint) = match &new_token {
            Some(token) => (
                Some(Hidden::new(
                    self.secrets.encrypt(self.team, token).map_err(|e| {
                        tracing::error!(error = %e, "could not encrypt the token");
                        ConsoleError::failed(
                            "Offboard could not encrypt the token. Check the server log.",
                        )
                    })?,
                )),
                token.hint(),
            ),
            None => match existing.as_ref().filter(|_| same_site) {
                Some(r) => (r.token_ciphertext.clone(), r.token_hint.clone()),
                None => (None, String::new()),
            },
        };
        // A new token is tried before anything is saved: one the site refuses is not kept,
        // and the saved connection (with its working token, if any) stays as it was.
        let tried = match &new_token {
            Some(token) => {
                let provider = provider_for(&endpoint, token.clone(), &self.http)?;
                let found = diagnosis(&check_connection(provider.as_ref()).await);
                if found.kind == DiagnosisKind::BadToken {
                    return Ok((connection_view(existing.as_ref()), found));
                }
                Some(found)
            }
            None => None,
        };
        let record = ConnectionRecord {
            site_url,
            scim_base_url,
            token_ciphertext,
            token_hint,
            operator_email: trimmed(form.operator_email.as_deref()),
            updated_at: self.clock.now(),
        };
        self.storage.save_connection(self.team, &record).await?;
        self.record_connection_saved(existing.as_ref(), &record, new_token.is_some())
            .await;
        let view = connection_view(Some(&record));
        let found = match (tried, record.token_ciphertext.is_some()) {
            (Some(found), _) => found,
            (None, true) => self.check_connection().await?,
            (None, false) => not_connected_diagnosis(
                "The site is saved, but no SCIM token is: paste the site's SCIM token.",
            ),
        };
        Ok((view, found))
    }

    async fn forget_token(&self) -> Result<ConnectionView, ConsoleError> {
        self.may::<Own>()?;
        self.storage.forget_token(self.team).await?;
        self.record(
            app::audit::AuditAction::TokenForgotten,
            None,
            serde_json::json!({}),
        )
        .await;
        self.connection().await
    }

    async fn check_connection(&self) -> Result<Diagnosis, ConsoleError> {
        self.may::<Operate>()?;
        let record = self.storage.connection(self.team).await?;
        if record.is_none_or(|r| r.token_ciphertext.is_none()) {
            return Ok(not_connected_diagnosis(
                "No site is connected yet: enter the site URL and its SCIM token.",
            ));
        }
        match self.site().await {
            Ok(site) => Ok(diagnosis(&check_connection(site.provider.as_ref()).await)),
            Err(e) => Ok(Diagnosis {
                ok: false,
                kind: DiagnosisKind::Failed,
                message: e.message,
                user_count: None,
            }),
        }
    }

    async fn preview_file(
        &self,
        file_name: String,
        bytes: Vec<u8>,
        column: Option<usize>,
        action: Action,
        demote_privileged: bool,
    ) -> Result<PreviewSummary, ConsoleError> {
        self.may::<Operate>()?;
        let file_name = match file_name.trim() {
            "" => "uploaded file".to_string(),
            name => name.to_string(),
        };
        let input = PreviewInput::File {
            file_name,
            bytes_base64: BASE64.encode(&bytes),
            column,
        };
        // A bad file costs nothing: read it before listing the site.
        resolve_input(&input, &[], &Policy::default())?;
        self.preview_from_fresh_listing(input, action, demote_privileged)
            .await
    }

    async fn deactivated_users(&self) -> Result<Vec<SiteUser>, ConsoleError> {
        self.may::<Operate>()?;
        let site = self.site().await?;
        let users = list_site(site.provider.as_ref()).await?;
        Ok(users
            .into_iter()
            .filter(|u| !u.active && !is_system_account(u))
            .collect())
    }

    async fn preview_picked(
        &self,
        account_ids: Vec<String>,
        action: Action,
        demote_privileged: bool,
    ) -> Result<PreviewSummary, ConsoleError> {
        self.may::<Operate>()?;
        let account_ids: Vec<String> = account_ids
            .iter()
            .map(|id| id.trim().to_string())
            .filter(|id| !id.is_empty())
            .collect();
        if account_ids.is_empty() {
            return Err(ConsoleError::new(
                "No user was ticked: tick at least one user.",
            ));
        }
        self.preview_from_fresh_listing(
            PreviewInput::Picked { account_ids },
            action,
            demote_privileged,
        )
        .await
    }

    async fn revise_preview(
        &self,
        preview_id: PreviewId,
        action: Action,
        demote_privileged: bool,
        column: Option<usize>,
    ) -> Result<PreviewSummary, ConsoleError> {
        self.may::<Operate>()?;
        let record = self.preview_record(&preview_id).await?;
        self.count_preview().await?;
        let shown = match headline(&record)?.source {
            PreviewSource::File { column, .. } => Some(column.index + 1),
            _ => None,
        };
        let source = StoredPreview::source(self.storage.as_ref(), self.team, &record).await?;
        let stored_input: PreviewInput = serde_json::from_str(&source.input_json)
            .map_err(|e| damaged_preview(&record.id, "input", e))?;
        let users: Vec<SiteUser> = serde_json::from_str(&source.listing_json)
            .map_err(|e| damaged_preview(&record.id, "listing", e))?;
        // The page sends the column it shows; when that is the one Offboard picked by itself,
        // keep it automatic so the preview does not claim the admin chose it.
        let input = match stored_input {
            PreviewInput::File {
                file_name,
                bytes_base64,
                column: old,
            } => PreviewInput::File {
                file_name,
                bytes_base64,
                column: if old.is_none() && column == shown {
                    None
                } else {
                    column.or(old)
                },
            },
            picked => picked,
        };
        let connection = self
            .storage
            .connection(self.team)
            .await?
            .ok_or_else(not_connected)?;
        // The revision shares the original's source (file and listing) and replaces it: an
        // unconfirmed original keeps only a pointer to the revision, so revising ten times
        // keeps one set of rows. Its address shows the revision; its phrase no longer starts
        // anything.
        self.make_preview(
            Some(&record.id),
            &source.id,
            &input,
            &users,
            &connection,
            action,
            demote_privileged,
        )
        .await
    }

    async fn preview(&self, preview_id: PreviewId) -> Result<PreviewSummary, ConsoleError> {
        self.may::<View>()?;
        let record = self.preview_record(&preview_id).await?;
        let mut found = summary(&record)?;
        found.needs_approval = self.approval_needed(record.action).await?;
        found.approval = self.approval_view(&record.id).await?;
        Ok(found)
    }

    async fn preview_rows(
        &self,
        preview_id: PreviewId,
        outcome: Option<PreviewOutcome>,
        offset: usize,
        limit: usize,
    ) -> Result<PreviewRowsPage, ConsoleError> {
        self.may::<View>()?;
        let record = self.preview_record(&preview_id).await?;
        let (rows, matching) = self
            .storage
            .preview_rows(
                self.team,
                &record.id,
                outcome,
                offset,
                limit.min(MAX_ROWS_PER_PAGE),
            )
            .await?;
        Ok(PreviewRowsPage {
            rows,
            matching,
            offset,
        })
    }

    async fn start_job(
        &self,
        preview_id: PreviewId,
        typed: String,
    ) -> Result<JobView, ConsoleError> {
        let permit = self.may::<Operate>()?;
        let record = self.exact_preview(&preview_id).await?;
        let approval = self.approval_to_give(&record).await?;
        let now = self.clock.now();
        limits::check_hourly(
            self.storage.as_ref(),
            self.team,
            Counted::Run,
            self.limits.runs_per_hour,
            now,
        )
        .await?;
        let job = self
            .jobs
            .start(
                &permit,
                &record.id,
                &typed,
                self.actor.clone(),
                approval.as_ref(),
            )
            .await?;
        // The run goes on either way: a count that could not be written is only logged.
        if let Err(e) =
            limits::count_hourly(self.storage.as_ref(), self.team, Counted::Run, now).await
        {
            tracing::warn!(error = %e, "could not count a run against the team's hourly limit");
        }
        self.job_view_of(&job).await
    }

    async fn request_approval(
        &self,
        preview_id: PreviewId,
        typed: String,
    ) -> Result<app::team::ApprovalView, ConsoleError> {
        let permit = self.may::<Operate>()?;
        self.ask_for_approval(&permit, &preview_id, &typed).await
    }

    async fn decline_approval(
        &self,
        preview_id: PreviewId,
        reason: String,
    ) -> Result<app::team::ApprovalView, ConsoleError> {
        let permit = self.may::<Operate>()?;
        self.decline(&permit, &preview_id, &reason).await
    }

    async fn preview_again(&self, preview_id: PreviewId) -> Result<PreviewSummary, ConsoleError> {
        self.may::<Operate>()?;
        let record = self.exact_preview(&preview_id).await?;
        let source = StoredPreview::source(self.storage.as_ref(), self.team, &record).await?;
        let input: PreviewInput = serde_json::from_str(&source.input_json)
            .map_err(|e| damaged_preview(&record.id, "input", e))?;
        let demote = headline(&record)?.demote_privileged;
        self.preview_from_fresh_listing(input, record.action, demote)
            .await
    }

    async fn approval_requests(
        &self,
    ) -> Result<Vec<app::backend::ApprovalRequestView>, ConsoleError> {
        self.may::<View>()?;
        self.unrun_requests().await
    }

    async fn job(&self, job_id: JobId) -> Result<JobView, ConsoleError> {
        self.may::<View>()?;
        self.job_view_of(&self.team_job(&job_id).await?).await
    }

    async fn jobs(&self) -> Result<Vec<JobView>, ConsoleError> {
        self.may::<View>()?;
        let jobs = self.storage.list_jobs(self.team, JOBS_LISTED).await?;
        let approvers: std::collections::HashMap<PreviewId, String> = self
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

    async fn control_job(
        &self,
        job_id: JobId,
        command: JobCommand,
    ) -> Result<JobView, ConsoleError> {
        let permit = self.may::<Operate>()?;
        let job = self.team_job(&job_id).await?;
        // A run nobody is running (paused before a restart) ends right here when cancelled;
        // a live one ends in its runner, which records the end itself.
        let was_live = self.jobs.is_live(&job.id);
        let by = self.actor_short_name().await;
        let job = self.jobs.control(&permit, &job, command, &by).await?;
        self.record_run_command(command, &job).await;
        if !was_live && job.state.has_ended() {
            audit::record_run_end(self.storage.as_ref(), self.team, &job.id).await;
        }
        self.job_view_of(&job).await
    }

    async fn job_events(
        &self,
        job_id: JobId,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<JobEventView>, ConsoleError> {
        self.may::<View>()?;
        let job = self.team_job(&job_id).await?;
        let events = self
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

    async fn job_results_page(
        &self,
        job_id: JobId,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<JobResultsPage, ConsoleError> {
        self.may::<View>()?;
        let job = self.team_job(&job_id).await?;
        let limit = limit.clamp(1, MAX_EVENTS_PER_CALL);
        // One more than asked tells whether older results remain.
        let (mut events, last_seq) = self
            .storage
            .latest_results(self.team, &job.id, before_seq, limit + 1)
            .await?;
        let more = events.len() > limit as usize;
        events.truncate(limit as usize);
        Ok(JobResultsPage {
            results: events.iter().map(event_view).collect(),
            last_seq,
            more,
        })
    }

    async fn audit_page(
        &self,
        filter: app::audit::AuditFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<app::audit::AuditPage, ConsoleError> {
        self.may::<View>()?;
        self.audit_entries_page(filter, before, limit).await
    }
}
