//! The service floor: everything the console does, for one team at a time. HTTP handlers and
//! server functions call it; it is the only caller of storage. [`build`] wires it once, for
//! `offboard serve` and for every test alike.
//!
//! Where the rules live: who may do what in a team is a handle of [`TeamConsole`]
//! (`desks.rs`: a viewer's, an operator's, an owner's; every read goes through the caller's
//! team); the connection is in `connection.rs`, previews in `previews.rs`, the site in
//! `sites.rs`, runs are asked for in `runs.rs` and started, controlled and resumed in
//! `jobs/`, reports in `reports.rs`, people, teams and sign-in in `accounts/`.

pub mod accounts;
pub mod approvals;
pub mod audit;
mod connection;
pub mod desks;
pub mod inbox;
pub mod job_feed;
pub mod jobs;
pub mod keys;
pub mod limits;
pub mod notify;
pub mod passwords;
pub mod people;
pub mod permits;
mod previews;
pub mod reports;
pub mod retention;
mod runs;
mod sites;
pub mod undo;
pub mod views;

pub use accounts::{Member, Person};
pub use audit::Actor;
pub use desks::{ConsoleOwnerDesk, OperatorDesk, OwnerDesk, ViewerDesk};
pub use previews::{PreviewInput, RowChoice, StoredPreview};
pub use sites::Site;

use crate::engine::runner::RunOptions;
use crate::engine::{Clock, SystemClock};
use crate::scim::http::HttpOptions;
use crate::secret::SecretBox;
use crate::storage::{Storage, StorageError, StorageHealth};
use app::backend::ConsoleError;
use app::ids::TeamId;
use app::team::Role;
use jobs::JobSupervisor;
use std::path::PathBuf;
use std::sync::Arc;

/// Most preview rows one page may ask for.
pub const MAX_ROWS_PER_PAGE: usize = 500;

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
    /// Derives each team's webhook signing secret (the audit key: it outlives key rotations
    /// and every replica has it; see `notify::signing_secret`).
    pub webhook_key: crate::secret::AuditKey,
    /// The console's address as people reach it (no trailing slash), for links in
    /// notifications; None when `--public-url` is not set.
    pub public_url: Option<String>,
    /// The mail server notifications go through; None without `--smtp-url` (then nobody is
    /// emailed, and the team's webhook still hears of every event).
    pub mail: Option<notify::Mailer>,
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
    /// See [`Console::webhook_key`]; `offboard serve` gives the audit key.
    pub webhook_key: crate::secret::AuditKey,
    /// See [`Console::public_url`].
    pub public_url: Option<String>,
    /// See [`Console::mail`].
    pub mail: Option<notify::Mailer>,
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
            webhook_key: crate::secret::AuditKey::this_process(),
            public_url: None,
            mail: None,
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
    // With a mail server, each notification is also queued as email to the people it concerns.
    storage.email_people(settings.mail.is_some());
    Arc::new(Console {
        storage,
        clock: settings.clock,
        secrets,
        http: settings.http,
        jobs,
        limits: settings.limits,
        passwords: passwords::Passwords::default(),
        webhook_key: settings.webhook_key,
        public_url: settings.public_url,
        mail: settings.mail,
    })
}

/// The service as one team sees it: every method reads and writes that team's records only.
/// The HTTP floor makes one per request from the caller (see `http::caller`). It does nothing
/// by itself: [`TeamConsole::as_viewer`], `as_operator` and `as_owner` hand out the handles
/// the team's methods are on, each only to a role that may use it (`desks.rs`).
pub struct TeamConsole {
    console: Arc<Console>,
    team: TeamId,
    team_name: String,
    /// What the request may do in the team: the role-typed handles (`desks.rs`) are made
    /// from it, and every team method is on one of them.
    role: Role,
    /// Who the request acts for: named in the audit trail and a run's "started by".
    actor: Actor,
    /// The signed-in person behind the request (None for the service driven directly):
    /// needed to manage members, who are added and removed by someone.
    person: Option<Person>,
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
            person: None,
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
            person: Some(member.person.clone()),
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

/// The confirmation phrase `typed` against the one a preview asked for: nothing happens
/// unless it matches; the refusal quotes it and says what typing it does (`to`).
pub(crate) fn phrase_typed(expected: &str, typed: &str, to: &str) -> Result<(), ConsoleError> {
    if app::confirm::phrase_matches(expected, typed) {
        return Ok(());
    }
    Err(ConsoleError::new(format!(
        "The confirmation does not match: type {expected} exactly to {to}."
    )))
}

/// Rows read one past a page (`limit + 1`): keeps the page and says whether more follow.
pub(crate) fn page_of<T>(rows: &mut Vec<T>, limit: u32) -> bool {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    more
}
