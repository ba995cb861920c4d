//! The team's site: its saved connection (the token decrypted only here), the SCIM client for
//! it, a fresh listing of its users, and the connection check the Connect page shows.

use crate::engine::connection::ConnectionDiagnosis;
use crate::engine::listing::{list_users_where, ListingOptions};
use crate::engine::resolve::is_system_account;
use crate::engine::resolve::Policy;
use crate::scim::http::{HttpOptions, HttpScim};
use crate::scim::{ScimEndpoint, ScimProvider, ScimToken};
use crate::secret::SecretBox;
use crate::storage::{ConnectionRecord, JobConnection, Storage};
use app::backend::{ConsoleError, Diagnosis};
use app::ids::TeamId;
use app::model::DiagnosisKind;
use app::model::SiteUser;
use std::sync::Arc;

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
    pub fn job_connection(&self) -> JobConnection {
        JobConnection {
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

/// Whether the console's site guard lets it reach `endpoint` at all (scheme, IP literal); the
/// addresses a name resolves to are checked when the client connects.
pub fn allowed(endpoint: &ScimEndpoint, http: &HttpOptions) -> Result<(), ConsoleError> {
    let Some(guard) = &http.site_guard else {
        return Ok(());
    };
    let url =
        url::Url::parse(endpoint.users_url()).map_err(|e| ConsoleError::new(e.to_string()))?;
    guard
        .check_url(&url)
        .map_err(|refused| ConsoleError::new(refused.to_string()))
}

/// Opens the team's saved connection; an admin-readable error when there is none usable.
pub async fn open_site(
    storage: &dyn Storage,
    secrets: &SecretBox,
    http: &HttpOptions,
    team_id: TeamId,
) -> Result<Site, ConsoleError> {
    let record = storage
        .connection(team_id)
        .await?
        .ok_or_else(not_connected)?;
    let Some(ciphertext) = record.token_ciphertext.as_ref().map(|t| t.expose()) else {
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

pub(super) fn provider_for(
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

pub(super) fn not_connected() -> ConsoleError {
    ConsoleError::new(
        "No site is connected yet: open Connect, enter the site URL and its SCIM token.",
    )
}

/// Lists every user of the site, with the listing's own plain-words errors.
pub async fn list_site(provider: &dyn ScimProvider) -> Result<Vec<SiteUser>, ConsoleError> {
    list_site_where(provider, &|_| true).await
}

/// The site's deactivated users (system accounts left out), holding no others while listing.
pub async fn list_deactivated(provider: &dyn ScimProvider) -> Result<Vec<SiteUser>, ConsoleError> {
    list_site_where(provider, &|u| !u.active && !is_system_account(u)).await
}

async fn list_site_where(
    provider: &dyn ScimProvider,
    keep: &(dyn Fn(&SiteUser) -> bool + Send + Sync),
) -> Result<Vec<SiteUser>, ConsoleError> {
    list_users_where(provider, &ListingOptions::default(), &|_, _| {}, keep)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "listing the site's users failed");
            ConsoleError::new(e.to_string())
        })
}

/// The policy a console preview and its run follow. The signed-in person's own Stack account
/// is the one never touched (their identity, not a typed field); an email also saved on
/// Connect stays protected beside it.
pub fn policy_for(
    record: &ConnectionRecord,
    demote_privileged: bool,
    signed_in: Option<&str>,
) -> Policy {
    let saved = record.operator_email.clone();
    match signed_in {
        Some(me) => Policy {
            demote_privileged,
            protected_emails: saved.into_iter().collect(),
            operator_email: Some(me.to_string()),
        },
        None => Policy {
            demote_privileged,
            protected_emails: Vec::new(),
            operator_email: saved,
        },
    }
}

pub(super) fn diagnosis(found: &ConnectionDiagnosis) -> Diagnosis {
    Diagnosis {
        ok: found.is_ok(),
        kind: found.kind(),
        message: found.message(),
        user_count: match found {
            ConnectionDiagnosis::Ok { user_count } => Some(*user_count),
            _ => None,
        },
    }
}

pub(super) fn not_connected_diagnosis(message: &str) -> Diagnosis {
    Diagnosis {
        ok: false,
        kind: DiagnosisKind::NotConnected,
        message: message.to_string(),
        user_count: None,
    }
}

pub(super) fn trimmed(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}
