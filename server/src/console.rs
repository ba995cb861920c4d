//! The server's side of the console contract: implements `app::backend::ConsoleBackend` on top
//! of storage, the engine and the clock. Detail goes to the log; the admin sees plain words.

use crate::engine::connection::{check_connection, ConnectionDiagnosis};
use crate::engine::file_input::read_admin_file;
use crate::engine::listing::{list_all_users, ListingOptions};
use crate::engine::resolve::{is_system_account, resolve_file, select_picked, Policy};
use crate::engine::Clock;
use crate::jobs::JobSupervisor;
use crate::scim::http::{HttpOptions, HttpScim};
use crate::scim::{ScimEndpoint, ScimProvider, ScimToken};
use crate::secret::SecretBox;
use crate::storage::{
    ConnectionRecord, JobEvent, JobRecord, PreviewRecord, PreviewSourceRecord, Storage,
    DEFAULT_TEAM,
};
use app::backend::{
    ConnectionForm, ConnectionView, ConsoleBackend, ConsoleError, Diagnosis, JobCommand,
    JobEventView, JobResultsPage, JobView, PreviewRowsPage, PreviewSummary, StorageStatus,
};
use app::confirm::confirmation_phrase;
use app::model::{Action, Preview, PreviewCounts, PreviewOutcome, PreviewSource, SiteUser};
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Most preview rows one page may ask for.
pub const MAX_ROWS_PER_PAGE: usize = 500;
/// Most events one `job_events` call returns.
const MAX_EVENTS_PER_CALL: u32 = 1000;
/// How many revisions an old preview address is followed through to the newest.
const MAX_REVISIONS_FOLLOWED: usize = 1000;
/// How many past jobs the History screen looks at.
const JOBS_LISTED: u32 = 10_000;

pub struct Console {
    pub storage: Arc<dyn Storage>,
    pub clock: Arc<dyn Clock>,
    pub secrets: SecretBox,
    pub http: HttpOptions,
    pub jobs: Arc<JobSupervisor>,
}

/// What the admin chose, kept with the preview so `revise_preview` can resolve it again.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PreviewInput {
    File {
        file_name: String,
        bytes_base64: String,
        /// 1-based, as the admin gave it.
        column: Option<usize>,
    },
    Picked {
        account_ids: Vec<String>,
    },
}

/// What a preview shows above its rows, kept as `PreviewRecord::summary_json` (the rows are
/// stored one by one beside it).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PreviewHeadline {
    source: PreviewSource,
    counts: PreviewCounts,
    demote_privileged: bool,
}

fn damaged_preview(id: &str, what: &str, e: impl std::fmt::Display) -> ConsoleError {
    tracing::error!(preview_id = %id, error = %e, "stored {what} unreadable");
    ConsoleError::new("This preview is damaged and cannot be used; make a new preview.")
}

fn headline(record: &PreviewRecord) -> Result<PreviewHeadline, ConsoleError> {
    serde_json::from_str(&record.summary_json)
        .map_err(|e| damaged_preview(&record.id, "summary", e))
}

/// A stored preview with all its rows: what a run starts from and what its reports cite.
pub struct StoredPreview {
    pub record: PreviewRecord,
    pub preview: Preview,
}

impl StoredPreview {
    /// The team's preview `preview_id` with every row; a plain error when there is none.
    pub async fn load(
        storage: &dyn Storage,
        team_id: i64,
        preview_id: &str,
    ) -> Result<StoredPreview, ConsoleError> {
        let record = storage
            .preview(team_id, preview_id.trim())
            .await
            .map_err(storage_failed)?
            .ok_or_else(no_such_preview)?;
        let headline = headline(&record)?;
        let rows = storage
            .all_preview_rows(team_id, &record.id)
            .await
            .map_err(storage_failed)?;
        Ok(StoredPreview {
            preview: Preview {
                source: headline.source,
                rows,
                counts: headline.counts,
                demote_privileged: headline.demote_privileged,
            },
            record,
        })
    }

    /// What the preview was made from; gone once the preview is older than the previews kept
    /// (see `--preview-hours`).
    pub async fn source(
        storage: &dyn Storage,
        team_id: i64,
        record: &PreviewRecord,
    ) -> Result<PreviewSourceRecord, ConsoleError> {
        storage
            .preview_source(team_id, &record.source_id)
            .await
            .map_err(storage_failed)?
            .ok_or_else(|| {
                ConsoleError::new(
                    "This preview is too old: the site listing it was made from is no longer \
                     kept. Make a new preview.",
                )
            })
    }
}

fn no_such_preview() -> ConsoleError {
    ConsoleError::new("This preview does not exist (previews nobody confirms are removed after a day); make a new preview.")
}

/// The saved connection, ready to talk to the site with the decrypted token.
pub struct Site {
    pub record: ConnectionRecord,
    pub endpoint: ScimEndpoint,
    /// Which token this is (see `SecretBox::fingerprint`), to bind previews and runs to it.
    pub token_fingerprint: String,
    pub provider: Arc<dyn ScimProvider>,
}

impl Site {
    /// The exact connection in use: a run resumes only on the one it was confirmed on.
    pub fn job_connection(&self) -> crate::storage::JobConnection {
        crate::storage::JobConnection {
            users_url: self.endpoint.users_url().to_string(),
            token_fingerprint: self.token_fingerprint.clone(),
        }
    }
}

/// The endpoint a saved (or submitted) connection points at.
pub fn connection_endpoint(
    site_url: &str,
    scim_base_url: Option<&str>,
) -> Result<ScimEndpoint, ConsoleError> {
    let result = match scim_base_url.map(str::trim).filter(|b| !b.is_empty()) {
        Some(base) => ScimEndpoint::from_scim_base(base, Some(site_url)),
        None => ScimEndpoint::from_site_url(site_url),
    };
    result.map_err(|e| ConsoleError::new(e.to_string()))
}

/// Opens the team's saved connection; an admin-readable error when there is none usable.
pub async fn open_site(
    storage: &dyn Storage,
    secrets: &SecretBox,
    http: &HttpOptions,
    team_id: i64,
) -> Result<Site, ConsoleError> {
    let record = storage
        .connection(team_id)
        .await
        .map_err(storage_failed)?
        .ok_or_else(not_connected)?;
    let Some(ciphertext) = record.token_ciphertext.as_deref() else {
        return Err(not_connected());
    };
    let token = secrets
        .decrypt(team_id, ciphertext)
        .map_err(|e| ConsoleError::new(e.to_string()))?;
    let endpoint = connection_endpoint(&record.site_url, record.scim_base_url.as_deref())?;
    let token_fingerprint = secrets.fingerprint(team_id, &token);
    let provider = provider_for(&endpoint, token, http)?;
    Ok(Site {
        record,
        endpoint,
        token_fingerprint,
        provider,
    })
}

fn provider_for(
    endpoint: &ScimEndpoint,
    token: ScimToken,
    http: &HttpOptions,
) -> Result<Arc<dyn ScimProvider>, ConsoleError> {
    let client = HttpScim::new(endpoint.clone(), token, http.clone()).map_err(|e| {
        tracing::error!(error = %e, "could not set up the HTTP client");
        ConsoleError::new(format!("Offboard could not prepare its connection: {e}"))
    })?;
    Ok(Arc::new(client))
}

fn not_connected() -> ConsoleError {
    ConsoleError::new(
        "No site is connected yet: open Connect, enter the site URL and its SCIM token.",
    )
}

/// Logs a storage failure and gives the admin plain words.
pub fn storage_failed(e: crate::storage::StorageError) -> ConsoleError {
    tracing::error!(error = %e, "storage failed");
    ConsoleError::new("The console's database did not answer as expected. Check the server log.")
}

pub fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Lists every user of the site, with the listing's own plain-words errors.
pub async fn list_site(provider: &dyn ScimProvider) -> Result<Vec<SiteUser>, ConsoleError> {
    list_all_users(provider, &ListingOptions::default(), &|_, _| {})
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "listing the site's users failed");
            ConsoleError::new(e.to_string())
        })
}

/// The policy a console preview and its run follow.
pub fn policy_for(record: &ConnectionRecord, demote_privileged: bool) -> Policy {
    Policy {
        demote_privileged,
        protected_emails: Vec::new(),
        operator_email: record.operator_email.clone(),
    }
}

pub fn job_view(job: &JobRecord) -> JobView {
    JobView {
        id: job.id.clone(),
        created_at: stamp(job.created_at),
        created_by: job.created_by.clone(),
        site_url: job.site_url.clone(),
        action: job.action,
        state: job.state.as_str().to_string(),
        reason: job.reason.clone(),
        started_at: job.started_at.map(stamp),
        finished_at: job.finished_at.map(stamp),
        total: job.total,
        done: job.done,
        counts: job.counts.iter().map(|(o, n)| (*o, *n)).collect(),
    }
}

pub fn event_view(event: &JobEvent) -> JobEventView {
    JobEventView {
        seq: event.seq,
        // Milliseconds: the page's rate and the delivery benchmark read this stamp.
        at: event.at.to_rfc3339_opts(SecondsFormat::Millis, true),
        result: event.result.clone(),
        state: event.state_change.map(|s| s.as_str().to_string()),
        reason: event.reason.clone(),
    }
}

fn diagnosis(found: &ConnectionDiagnosis) -> Diagnosis {
    Diagnosis {
        ok: found.is_ok(),
        kind: found.kind().to_string(),
        message: found.message(),
        user_count: match found {
            ConnectionDiagnosis::Ok { user_count } => Some(*user_count),
            _ => None,
        },
    }
}

fn not_connected_diagnosis(message: &str) -> Diagnosis {
    Diagnosis {
        ok: false,
        kind: "not_connected".to_string(),
        message: message.to_string(),
        user_count: None,
    }
}

fn connection_view(record: Option<&ConnectionRecord>) -> ConnectionView {
    match record {
        None => ConnectionView::default(),
        Some(r) => ConnectionView {
            site_url: Some(r.site_url.clone()),
            scim_base_url: r.scim_base_url.clone(),
            token_saved: r.token_ciphertext.is_some(),
            token_hint: if r.token_ciphertext.is_some() {
                r.token_hint.clone()
            } else {
                String::new()
            },
            operator_email: r.operator_email.clone(),
            updated_at: Some(stamp(r.updated_at)),
        },
    }
}

fn trimmed(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// Resolves `input` against `users`: the one place a console preview is computed.
pub fn resolve_input(
    input: &PreviewInput,
    users: &[SiteUser],
    policy: &Policy,
) -> Result<Preview, ConsoleError> {
    match input {
        PreviewInput::File {
            file_name,
            bytes_base64,
            column,
        } => {
            let bytes = BASE64.decode(bytes_base64).map_err(|_| {
                ConsoleError::new("The stored file is damaged; upload the file again.")
            })?;
            let column = match column {
                Some(0) => {
                    return Err(ConsoleError::new(
                        "Column numbers start at 1 (the first column).",
                    ))
                }
                Some(n) => Some(n - 1),
                None => None,
            };
            let file = read_admin_file(&bytes, column)
                .map_err(|e| ConsoleError::new(format!("{file_name}: {e}")))?;
            Ok(resolve_file(&file, file_name, users, policy))
        }
        PreviewInput::Picked { account_ids } => Ok(select_picked(account_ids, users, policy)),
    }
}

impl Console {
    /// A console on `storage`, with its job supervisor (not yet resuming old jobs: call
    /// [`JobSupervisor::resume_unfinished`]).
    pub fn new(
        storage: Arc<dyn Storage>,
        clock: Arc<dyn Clock>,
        secrets: SecretBox,
        http: HttpOptions,
        jobs: Arc<JobSupervisor>,
    ) -> Console {
        Console {
            storage,
            clock,
            secrets,
            http,
            jobs,
        }
    }

    async fn site(&self) -> Result<Site, ConsoleError> {
        open_site(
            self.storage.as_ref(),
            &self.secrets,
            &self.http,
            DEFAULT_TEAM,
        )
        .await
    }

    /// The preview `preview_id`, or the newest revision of it: an address of a preview that
    /// was revised since shows what replaced it.
    async fn preview_record(&self, preview_id: &str) -> Result<PreviewRecord, ConsoleError> {
        let mut id = preview_id.trim().to_string();
        // Each revision points at the next; the bound only guards against a damaged chain.
        for _ in 0..MAX_REVISIONS_FOLLOWED {
            let record = self
                .storage
                .preview(DEFAULT_TEAM, &id)
                .await
                .map_err(storage_failed)?
                .ok_or_else(no_such_preview)?;
            match record.replaced_by {
                Some(next) => id = next,
                None => return Ok(record),
            }
        }
        Err(no_such_preview())
    }

    /// Lists the site now, keeps the input and the listing as a new source, then resolves,
    /// stores and summarises a preview of it.
    async fn preview_from_fresh_listing(
        &self,
        input: PreviewInput,
        action: Action,
        demote_privileged: bool,
    ) -> Result<PreviewSummary, ConsoleError> {
        let site = self.site().await?;
        let users = list_site(site.provider.as_ref()).await?;
        let source = PreviewSourceRecord {
            id: uuid::Uuid::new_v4().to_string(),
            created_at: self.clock.now(),
            users_url: site.endpoint.users_url().to_string(),
            token_fingerprint: site.token_fingerprint.clone(),
            input_json: encode_for_storage(&input)?,
            listing_json: encode_for_storage(&users)?,
        };
        self.storage
            .save_preview_source(DEFAULT_TEAM, &source)
            .await
            .map_err(storage_failed)?;
        // The stored texts (the listing is ~250 bytes a user) are not needed to resolve: let
        // them go before the rows are built.
        let source_id = source.id;
        drop(source.listing_json);
        drop(source.input_json);
        self.make_preview(
            None,
            &source_id,
            &input,
            &users,
            &site.record,
            action,
            demote_privileged,
        )
        .await
    }

    /// Resolves, stores and summarises a new preview of `source_id`'s input and listing; as
    /// the replacement of the preview `revises`, when given.
    #[allow(clippy::too_many_arguments)] // each is one of the admin's choices or their source
    async fn make_preview(
        &self,
        revises: Option<&str>,
        source_id: &str,
        input: &PreviewInput,
        users: &[SiteUser],
        record: &ConnectionRecord,
        action: Action,
        demote_privileged: bool,
    ) -> Result<PreviewSummary, ConsoleError> {
        let policy = policy_for(record, demote_privileged);
        let preview = resolve_input(input, users, &policy)?;
        let phrase = confirmation_phrase(action, preview.counts.selected);
        let preview_record = PreviewRecord {
            id: uuid::Uuid::new_v4().to_string(),
            created_at: self.clock.now(),
            action,
            source_id: source_id.to_string(),
            summary_json: encode_for_storage(&PreviewHeadline {
                source: preview.source.clone(),
                counts: preview.counts.clone(),
                demote_privileged: preview.demote_privileged,
            })?,
            total_rows: preview.rows.len(),
            phrase,
            claimed: false,
            replaced_by: None,
        };
        let stored = match revises {
            Some(replaced) => {
                self.storage
                    .replace_preview(DEFAULT_TEAM, replaced, &preview_record, &preview.rows)
                    .await
            }
            None => {
                self.storage
                    .save_preview(DEFAULT_TEAM, &preview_record, &preview.rows)
                    .await
            }
        };
        stored.map_err(storage_failed)?;
        summary(&preview_record)
    }

    async fn team_job(&self, job_id: &str) -> Result<JobRecord, ConsoleError> {
        self.storage
            .job(DEFAULT_TEAM, job_id.trim())
            .await
            .map_err(storage_failed)?
            .ok_or_else(|| ConsoleError::new("This run does not exist."))
    }
}

fn summary(record: &PreviewRecord) -> Result<PreviewSummary, ConsoleError> {
    let headline = headline(record)?;
    Ok(PreviewSummary {
        id: record.id.clone(),
        created_at: stamp(record.created_at),
        action: record.action,
        source: headline.source,
        counts: headline.counts,
        total_rows: record.total_rows,
        demote_privileged: headline.demote_privileged,
        phrase: record.phrase.clone(),
        used: record.claimed,
    })
}

/// JSON for a stored value; a failure (never expected) is logged and reported plainly.
fn encode_for_storage<T: Serialize>(value: &T) -> Result<String, ConsoleError> {
    serde_json::to_string(value).map_err(|e| {
        tracing::error!(error = %e, "could not encode a preview for storage");
        ConsoleError::new("Offboard could not store the preview. Check the server log.")
    })
}

impl Console {
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
}

#[async_trait]
impl ConsoleBackend for Console {
    async fn storage_status(&self) -> Result<StorageStatus, ConsoleError> {
        let health = self.storage.health(DEFAULT_TEAM).await.map_err(|e| {
            tracing::error!(error = %e, "storage check failed");
            ConsoleError::new("The console's database is not answering. Check the server log.")
        })?;
        Ok(StorageStatus {
            database: health.database.to_string(),
            migrations: health.migrations,
            jobs: health.jobs,
            checked_at: stamp(self.clock.now()),
        })
    }

    async fn connection(&self) -> Result<ConnectionView, ConsoleError> {
        let record = self
            .storage
            .connection(DEFAULT_TEAM)
            .await
            .map_err(storage_failed)?;
        Ok(connection_view(record.as_ref()))
    }

    async fn save_connection(
        &self,
        form: ConnectionForm,
    ) -> Result<(ConnectionView, Diagnosis), ConsoleError> {
        let existing = self
            .storage
            .connection(DEFAULT_TEAM)
            .await
            .map_err(storage_failed)?;
        let site_url = form.site_url.trim().to_string();
        let scim_base_url = trimmed(form.scim_base_url.as_deref());
        let endpoint = match connection_endpoint(&site_url, scim_base_url.as_deref()) {
            Ok(endpoint) => endpoint,
            Err(e) => {
                // Nothing is saved: an unusable address must not replace a working one.
                let found = Diagnosis {
                    ok: false,
                    kind: "bad_url".to_string(),
                    message: e.message,
                    user_count: None,
                };
                return Ok((connection_view(existing.as_ref()), found));
            }
        };
        let new_token = form
            .token
            .as_deref()
            .map(ScimToken::new)
            .filter(|t| !t.is_empty());
        // A saved token only stays with the very site (and SCIM base) it was saved for.
        let same_site = existing
            .as_ref()
            .is_some_and(|r| r.site_url == site_url && r.scim_base_url == scim_base_url);
        let (token_ciphertext, token_hint) = match &new_token {
            Some(token) => (
                Some(self.secrets.encrypt(DEFAULT_TEAM, token).map_err(|e| {
                    tracing::error!(error = %e, "could not encrypt the token");
                    ConsoleError::new("Offboard could not encrypt the token. Check the server log.")
                })?),
                token.hint(),
            ),
            None => match existing.as_ref().filter(|_| same_site) {
                Some(r) => (r.token_ciphertext.clone(), r.token_hint.clone()),
                None => (None, String::new()),
            },
        };
        let record = ConnectionRecord {
            site_url,
            scim_base_url,
            token_ciphertext,
            token_hint,
            operator_email: trimmed(form.operator_email.as_deref()),
            updated_at: self.clock.now(),
        };
        self.storage
            .save_connection(DEFAULT_TEAM, &record)
            .await
            .map_err(storage_failed)?;
        let view = connection_view(Some(&record));
        let found = match (&new_token, record.token_ciphertext.is_some()) {
            (Some(token), _) => {
                let provider = provider_for(&endpoint, token.clone(), &self.http)?;
                diagnosis(&check_connection(provider.as_ref()).await)
            }
            (None, true) => self.check_connection().await?,
            (None, false) => not_connected_diagnosis(
                "The site is saved, but no SCIM token is: paste the site's SCIM token.",
            ),
        };
        Ok((view, found))
    }

    async fn forget_token(&self) -> Result<ConnectionView, ConsoleError> {
        self.storage
            .forget_token(DEFAULT_TEAM)
            .await
            .map_err(storage_failed)?;
        self.connection().await
    }

    async fn check_connection(&self) -> Result<Diagnosis, ConsoleError> {
        let record = self
            .storage
            .connection(DEFAULT_TEAM)
            .await
            .map_err(storage_failed)?;
        if record.is_none_or(|r| r.token_ciphertext.is_none()) {
            return Ok(not_connected_diagnosis(
                "No site is connected yet: enter the site URL and its SCIM token.",
            ));
        }
        match self.site().await {
            Ok(site) => Ok(diagnosis(&check_connection(site.provider.as_ref()).await)),
            Err(e) => Ok(Diagnosis {
                ok: false,
                kind: "failed".to_string(),
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
        preview_id: String,
        action: Action,
        demote_privileged: bool,
        column: Option<usize>,
    ) -> Result<PreviewSummary, ConsoleError> {
        let record = self.preview_record(&preview_id).await?;
        let shown = match headline(&record)?.source {
            PreviewSource::File { column, .. } => Some(column.index + 1),
            _ => None,
        };
        let source = StoredPreview::source(self.storage.as_ref(), DEFAULT_TEAM, &record).await?;
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
            .connection(DEFAULT_TEAM)
            .await
            .map_err(storage_failed)?
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

    async fn preview(&self, preview_id: String) -> Result<PreviewSummary, ConsoleError> {
        summary(&self.preview_record(&preview_id).await?)
    }

    async fn preview_rows(
        &self,
        preview_id: String,
        outcome: Option<PreviewOutcome>,
        offset: usize,
        limit: usize,
    ) -> Result<PreviewRowsPage, ConsoleError> {
        let record = self.preview_record(&preview_id).await?;
        let (rows, matching) = self
            .storage
            .preview_rows(
                DEFAULT_TEAM,
                &record.id,
                outcome,
                offset,
                limit.min(MAX_ROWS_PER_PAGE),
            )
            .await
            .map_err(storage_failed)?;
        Ok(PreviewRowsPage {
            rows,
            matching,
            offset,
        })
    }

    async fn start_job(&self, preview_id: String, typed: String) -> Result<JobView, ConsoleError> {
        let job = self
            .jobs
            .start(DEFAULT_TEAM, preview_id.trim(), &typed)
            .await?;
        Ok(job_view(&job))
    }

    async fn job(&self, job_id: String) -> Result<JobView, ConsoleError> {
        Ok(job_view(&self.team_job(&job_id).await?))
    }

    async fn jobs(&self) -> Result<Vec<JobView>, ConsoleError> {
        let jobs = self
            .storage
            .list_jobs(DEFAULT_TEAM, JOBS_LISTED)
            .await
            .map_err(storage_failed)?;
        Ok(jobs.iter().map(job_view).collect())
    }

    async fn control_job(
        &self,
        job_id: String,
        command: JobCommand,
    ) -> Result<JobView, ConsoleError> {
        let job = self.team_job(&job_id).await?;
        let job = self.jobs.control(&job, command).await?;
        Ok(job_view(&job))
    }

    async fn job_events(
        &self,
        job_id: String,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<JobEventView>, ConsoleError> {
        let job = self.team_job(&job_id).await?;
        let events = self
            .storage
            .events_since(
                DEFAULT_TEAM,
                &job.id,
                after_seq.max(0),
                limit.clamp(1, MAX_EVENTS_PER_CALL),
            )
            .await
            .map_err(storage_failed)?;
        Ok(events.iter().map(event_view).collect())
    }

    async fn job_results_page(
        &self,
        job_id: String,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<JobResultsPage, ConsoleError> {
        let job = self.team_job(&job_id).await?;
        let limit = limit.clamp(1, MAX_EVENTS_PER_CALL);
        // One more than asked tells whether older results remain.
        let (mut events, last_seq) = self
            .storage
            .latest_results(DEFAULT_TEAM, &job.id, before_seq, limit + 1)
            .await
            .map_err(storage_failed)?;
        let more = events.len() > limit as usize;
        events.truncate(limit as usize);
        Ok(JobResultsPage {
            results: events.iter().map(event_view).collect(),
            last_seq,
            more,
        })
    }
}
