//! The team's site connection: saving it (the token encrypted at once), forgetting its token,
//! checking it, and what the Connect and Settings pages show of it.

use super::desks::{OperatorDesk, OwnerDesk, ViewerDesk};
use super::sites::{
    self, connection_endpoint, diagnosis, not_connected_diagnosis, provider_for, trimmed, Site,
};
use super::views::{connection_view, stamp};
use super::TeamConsole;
use crate::engine::connection::check_connection;
use crate::scim::ScimToken;
use crate::storage::ConnectionRecord;
use app::backend::{ConnectionForm, ConnectionView, ConsoleError, Diagnosis, StorageStatus};
use app::hidden::Hidden;
use app::model::DiagnosisKind;

impl TeamConsole {
    /// The team's saved site, ready to talk to.
    pub(super) async fn site(&self) -> Result<Site, ConsoleError> {
        sites::open_site(
            self.console.storage.as_ref(),
            &self.console.secrets,
            &self.console.http,
            self.team,
        )
        .await
    }
}

impl ViewerDesk<'_> {
    pub async fn storage_status(&self) -> Result<StorageStatus, ConsoleError> {
        let health = self.console.storage.health(self.team).await?;
        Ok(StorageStatus {
            database: health.database.to_string(),
            migrations: health.migrations,
            jobs: health.jobs,
            checked_at: stamp(self.console.clock.now()),
        })
    }

    pub async fn connection(&self) -> Result<ConnectionView, ConsoleError> {
        let record = self.console.storage.connection(self.team).await?;
        Ok(connection_view(record.as_ref()))
    }
}

impl OperatorDesk<'_> {
    pub async fn check_connection(&self) -> Result<Diagnosis, ConsoleError> {
        let record = self.console.storage.connection(self.team).await?;
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
}

impl OwnerDesk<'_> {
    pub async fn save_connection(
        &self,
        form: ConnectionForm,
    ) -> Result<(ConnectionView, Diagnosis), ConsoleError> {
        let existing = self.console.storage.connection(self.team).await?;
        let site_url = form.site_url.trim().to_string();
        let scim_base_url = trimmed(form.scim_base_url.as_deref());
        let endpoint = match connection_endpoint(&site_url, scim_base_url.as_deref())
            .and_then(|endpoint| sites::allowed(&endpoint, &self.console.http).map(|()| endpoint))
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
        // A saved token only stays with the very site (and SCIM base) it was saved for, unless
        // the owner, asked by the Connect page, chose to keep it for the new address (the site
        // moved). Only an owner may, and the trail records it (`token_kept_for_new_site`).
        let same_site = existing
            .as_ref()
            .is_some_and(|r| r.site_url == site_url && r.scim_base_url == scim_base_url);
        let keeps_token = same_site || form.keep_token;
        let (token_ciphertext, token_hint) = match &new_token {
            Some(token) => (
                Some(Hidden::new(
                    self.console
                        .secrets
                        .encrypt(self.team, token)
                        .map_err(|e| {
                            tracing::error!(error = %e, "could not encrypt the token");
                            ConsoleError::failed(
                                "Offboard could not encrypt the token. Check the server log.",
                            )
                        })?,
                )),
                token.hint(),
            ),
            None => match existing.as_ref().filter(|_| keeps_token) {
                Some(r) => (r.token_ciphertext.clone(), r.token_hint.clone()),
                None => (None, String::new()),
            },
        };
        // A new token is tried before anything is saved: one the site refuses is not kept,
        // and the saved connection (with its working token, if any) stays as it was.
        let tried = match &new_token {
            Some(token) => {
                let provider = provider_for(&endpoint, token.clone(), &self.console.http)?;
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
            updated_at: self.console.clock.now(),
        };
        self.console
            .storage
            .save_connection(self.team, &record)
            .await?;
        let kept_for_new_site =
            !same_site && new_token.is_none() && record.token_ciphertext.is_some();
        self.record_connection_saved(
            existing.as_ref(),
            &record,
            new_token.is_some(),
            kept_for_new_site,
        )
        .await;
        let view = connection_view(Some(&record));
        let found = match (tried, record.token_ciphertext.is_some()) {
            (Some(found), _) => found,
            (None, true) => self.operator().check_connection().await?,
            (None, false) => not_connected_diagnosis(
                "The site is saved, but no SCIM token is: paste the site's SCIM token.",
            ),
        };
        Ok((view, found))
    }

    pub async fn forget_token(&self) -> Result<ConnectionView, ConsoleError> {
        self.console.storage.forget_token(self.team).await?;
        self.record(
            app::audit::AuditAction::TokenForgotten,
            None,
            serde_json::json!({}),
        )
        .await;
        self.viewer().connection().await
    }
}
