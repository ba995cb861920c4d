//! Previews: what the admin chose (a file or ticked users), resolved against a fresh listing of
//! the site, stored with its rows, revised, and loaded again for a run or a report.

use super::desks::{OperatorDesk, ViewerDesk};
use super::sites::{connection_endpoint, list_deactivated, list_site, not_connected, policy_for};
use super::views::stamp;
use super::{TeamConsole, MAX_ROWS_PER_PAGE};

mod choose;
use crate::engine::earlier::{cite_earlier_runs, CITED_OUTCOMES};
use crate::engine::file_input::read_admin_file;
use crate::engine::resolve::{resolve_file, select_picked, Policy};
use crate::storage::{ConnectionRecord, PreviewRecord, PreviewSourceRecord, Storage};
use app::backend::{ConsoleError, PreviewRowsPage, PreviewSummary};
use app::confirm::{confirmation_phrase, undo_window_phrase};
use app::ids::{JobId, PreviewId, TeamId};
use app::model::{
    Action, Preview, PreviewCounts, PreviewOutcome, PreviewSource, SiteUser, UnreadLines,
};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// How many revisions an old preview address is followed through to the newest.
const MAX_REVISIONS_FOLLOWED: usize = 1000;

/// What the admin asked of an ambiguous row on the Preview page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowChoice {
    /// Act on this one of the row's candidates (its account ID).
    Choose(String),
    /// Put the row back as it was: ambiguous, nothing touched.
    Undo,
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
pub(super) struct PreviewHeadline {
    pub(super) source: PreviewSource,
    pub(super) counts: PreviewCounts,
    pub(super) demote_privileged: bool,
    /// The header and blank lines of the file, for the results spreadsheet (absent in
    /// previews stored before it was kept).
    #[serde(default, skip_serializing_if = "is_unset")]
    pub(super) unread_lines: UnreadLines,
    /// How many times the admin changed a row since the preview was made (an account chosen,
    /// a choice undone): every change writes a summary of its own, so a change, or a run
    /// started, from an older reading of the preview is told apart even when the counts are
    /// the same again.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(super) changes: u64,
    /// "Deactivate now, delete after N days": the date (`YYYY-MM-DD`, UTC) the phrase names,
    /// fixed when the preview is made so the phrase typed is the date kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) delete_on: Option<String>,
}

/// The phrase the admin types to start a preview's run: the count, and for an undo window
/// its date too.
pub(super) fn phrase_of(action: Action, headline: &PreviewHeadline) -> String {
    match &headline.delete_on {
        Some(date) if action == Action::DeactivateThenDelete => {
            undo_window_phrase(headline.counts.selected, date)
        }
        _ => confirmation_phrase(action, headline.counts.selected),
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_unset(lines: &UnreadLines) -> bool {
    *lines == UnreadLines::default()
}

pub(super) fn damaged_preview(
    id: &PreviewId,
    what: &str,
    e: impl std::fmt::Display,
) -> ConsoleError {
    tracing::error!(preview_id = %id, error = %e, "stored {what} unreadable");
    ConsoleError::new("This preview is damaged and cannot be used; make a new preview.")
}

pub(super) fn headline(record: &PreviewRecord) -> Result<PreviewHeadline, ConsoleError> {
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
        team_id: TeamId,
        preview_id: &PreviewId,
    ) -> Result<StoredPreview, ConsoleError> {
        let record = storage
            .preview(team_id, preview_id)
            .await?
            .ok_or_else(no_such_preview)?;
        let headline = headline(&record)?;
        let rows = storage.all_preview_rows(team_id, &record.id).await?;
        Ok(StoredPreview {
            preview: Preview {
                source: headline.source,
                rows,
                counts: headline.counts,
                demote_privileged: headline.demote_privileged,
                unread_lines: headline.unread_lines,
            },
            record,
        })
    }

    /// What the preview was made from; gone once the preview is older than the previews kept
    /// (see `--preview-hours`).
    pub async fn source(
        storage: &dyn Storage,
        team_id: TeamId,
        record: &PreviewRecord,
    ) -> Result<PreviewSourceRecord, ConsoleError> {
        storage
            .preview_source(team_id, &record.source_id)
            .await?
            .ok_or_else(|| {
                ConsoleError::new(
                    "This preview is too old: the site listing it was made from is no longer \
                     kept. Make a new preview.",
                )
            })
    }
}

pub(super) fn no_such_preview() -> ConsoleError {
    ConsoleError::not_found("This preview does not exist (previews nobody confirms are removed after a day); make a new preview.")
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

pub(super) fn summary(record: &PreviewRecord) -> Result<PreviewSummary, ConsoleError> {
    let headline = headline(record)?;
    Ok(PreviewSummary {
        id: record.id.clone(),
        created_at: stamp(record.created_at),
        action: record.action,
        source: headline.source,
        counts: headline.counts,
        total_rows: record.total_rows,
        demote_privileged: headline.demote_privileged,
        delete_on: headline.delete_on,
        phrase: record.phrase.clone(),
        used: record.claimed,
        needs_approval: false,
        approval: None,
    })
}

/// JSON for a stored value; a failure (never expected) is logged and reported plainly.
pub(super) fn encode_for_storage<T: Serialize>(value: &T) -> Result<String, ConsoleError> {
    serde_json::to_string(value).map_err(|e| {
        tracing::error!(error = %e, "could not encode a preview for storage");
        ConsoleError::new("Offboard could not store the preview. Check the server log.")
    })
}

impl TeamConsole {
    /// Counts a preview against the team's hourly limit (refused past it).
    pub(super) async fn count_preview(&self) -> Result<(), ConsoleError> {
        let (storage, what, now) = (
            self.console.storage.as_ref(),
            super::limits::Counted::Preview,
            self.console.clock.now(),
        );
        super::limits::check_hourly(
            storage,
            self.team,
            what,
            self.console.limits.previews_per_hour,
            now,
        )
        .await?;
        Ok(super::limits::count_hourly(storage, self.team, what, now).await?)
    }

    /// The preview `preview_id`, or the newest revision of it: an address of a preview that
    /// was revised since shows what replaced it.
    /// The preview `preview_id` itself, not its newest revision: what a confirmation or a
    /// request for approval is about (a replaced preview's phrase starts nothing).
    pub(super) async fn exact_preview(
        &self,
        preview_id: &PreviewId,
    ) -> Result<PreviewRecord, ConsoleError> {
        self.console
            .storage
            .preview(self.team, preview_id)
            .await?
            .ok_or_else(no_such_preview)
    }

    pub(super) async fn preview_record(
        &self,
        preview_id: &PreviewId,
    ) -> Result<PreviewRecord, ConsoleError> {
        let mut id = preview_id.clone();
        // Each revision points at the next; the bound only guards against a damaged chain.
        for _ in 0..MAX_REVISIONS_FOLLOWED {
            let record = self
                .console
                .storage
                .preview(self.team, &id)
                .await?
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
    pub(super) async fn preview_from_fresh_listing(
        &self,
        input: PreviewInput,
        action: Action,
        demote_privileged: bool,
    ) -> Result<PreviewSummary, ConsoleError> {
        self.count_preview().await?;
        let site = self.site().await?;
        let users = list_site(site.provider.as_ref()).await?;
        let source = PreviewSourceRecord {
            id: uuid::Uuid::new_v4().to_string(),
            created_at: self.console.clock.now(),
            users_url: site.endpoint.users_url().to_string(),
            token_fingerprint: site.token_fingerprint.clone(),
            input_json: encode_for_storage(&input)?,
            listing_json: encode_for_storage(&users)?,
        };
        self.console
            .storage
            .save_preview_source(self.team, &source)
            .await?;
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
    pub(super) async fn make_preview(
        &self,
        revises: Option<&PreviewId>,
        source_id: &str,
        input: &PreviewInput,
        users: &[SiteUser],
        record: &ConnectionRecord,
        action: Action,
        demote_privileged: bool,
    ) -> Result<PreviewSummary, ConsoleError> {
        let policy = policy_for(record, demote_privileged, self.actor.email());
        let mut preview = resolve_input(input, users, &policy)?;
        // What the team's earlier runs on this site did to these users: "already deleted"
        // instead of "not found", "may be refused" instead of a promise.
        // Runs record the site as its endpoint spells it.
        let site_url = connection_endpoint(&record.site_url, record.scim_base_url.as_deref())
            .map(|endpoint| endpoint.site_url().to_string())
            .unwrap_or_else(|_| record.site_url.clone());
        let earlier = self
            .console
            .storage
            .earlier_results(self.team, &site_url, &CITED_OUTCOMES)
            .await?;
        cite_earlier_runs(&mut preview, &earlier);
        let created_at = self.console.clock.now();
        let delete_on = match action {
            Action::DeactivateThenDelete => {
                let storage = self.console.storage.as_ref();
                let settings = storage.team_settings(self.team).await?;
                let zone = crate::service::retention::team_zone(storage, self.team).await?;
                Some(crate::engine::undo::deletion_date(
                    created_at,
                    settings.days_before_deletion,
                    zone,
                ))
            }
            _ => None,
        };
        let headline = PreviewHeadline {
            source: preview.source.clone(),
            counts: preview.counts.clone(),
            demote_privileged: preview.demote_privileged,
            unread_lines: preview.unread_lines.clone(),
            changes: 0,
            delete_on,
        };
        let phrase = phrase_of(action, &headline);
        let preview_record = PreviewRecord {
            id: PreviewId::new(uuid::Uuid::new_v4().to_string()),
            created_at,
            action,
            source_id: source_id.to_string(),
            summary_json: encode_for_storage(&headline)?,
            total_rows: preview.rows.len(),
            phrase,
            claimed: false,
            replaced_by: None,
        };
        let stored = match revises {
            Some(replaced) => {
                self.console
                    .storage
                    .replace_preview(self.team, replaced, &preview_record, &preview.rows)
                    .await
            }
            None => {
                self.console
                    .storage
                    .save_preview(self.team, &preview_record, &preview.rows)
                    .await
            }
        };
        stored?;
        self.record_preview(revises, &preview_record.id, &preview, action)
            .await;
        summary(&preview_record)
    }
}

impl ViewerDesk<'_> {
    pub async fn preview(&self, preview_id: PreviewId) -> Result<PreviewSummary, ConsoleError> {
        let record = self.preview_record(&preview_id).await?;
        let mut found = summary(&record)?;
        found.needs_approval = self.approval_needed(record.action).await?;
        found.approval = self.approval_view(&record.id).await?;
        Ok(found)
    }

    pub async fn preview_rows(
        &self,
        preview_id: PreviewId,
        outcome: Option<PreviewOutcome>,
        offset: usize,
        limit: usize,
    ) -> Result<PreviewRowsPage, ConsoleError> {
        let record = self.preview_record(&preview_id).await?;
        let (rows, matching) = self
            .console
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
}

impl OperatorDesk<'_> {
    /// A new preview of the same users as `preview_id` (the same input, action and options)
    /// from a fresh listing of the site: the way on after a declined or expired request.
    pub async fn preview_again(
        &self,
        preview_id: PreviewId,
    ) -> Result<PreviewSummary, ConsoleError> {
        let record = self.exact_preview(&preview_id).await?;
        let source =
            StoredPreview::source(self.console.storage.as_ref(), self.team, &record).await?;
        let input: PreviewInput = serde_json::from_str(&source.input_json)
            .map_err(|e| damaged_preview(&record.id, "input", e))?;
        let demote = headline(&record)?.demote_privileged;
        self.preview_from_fresh_listing(input, record.action, demote)
            .await
    }

    /// A new preview of the users run `job_id` did not remove (see
    /// `ItemOutcome::not_yet_removed`, and those with no result yet), with the run's action
    /// and demotion setting, from a fresh listing: the way on after a cancelled, failed or
    /// stopped run. Only for a run that has ended, so no user is in two runs at once.
    pub async fn preview_not_removed(&self, job_id: JobId) -> Result<PreviewSummary, ConsoleError> {
        let job = self.viewer().team_job(&job_id).await?;
        if !job.state.has_ended() {
            return Err(ConsoleError::new(
                "This run has not ended yet: cancel it first, or let it finish.",
            ));
        }
        let storage = self.console.storage.as_ref();
        let results = storage.job_results(self.team, &job.id).await?;
        let unsettled = storage.job_targets(&job.id).await?;
        let ids = users_not_yet_removed(&results, &unsettled);
        if ids.is_empty() {
            return Err(ConsoleError::new(
                "Every user of this run was removed or is already gone: nobody is left to preview.",
            ));
        }
        let demote = match &job.preview_id {
            Some(preview_id) => match self.exact_preview(preview_id).await {
                Ok(record) => headline(&record)?.demote_privileged,
                Err(_) => false,
            },
            None => false,
        };
        self.preview_picked(ids, job.action, demote).await
    }

    pub async fn preview_file(
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

    pub async fn deactivated_users(&self) -> Result<Vec<SiteUser>, ConsoleError> {
        let site = self.site().await?;
        list_deactivated(site.provider.as_ref()).await
    }

    pub async fn preview_picked(
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

    pub async fn revise_preview(
        &self,
        preview_id: PreviewId,
        action: Action,
        demote_privileged: bool,
        column: Option<usize>,
    ) -> Result<PreviewSummary, ConsoleError> {
        let record = self.preview_record(&preview_id).await?;
        self.count_preview().await?;
        let shown = match headline(&record)?.source {
            PreviewSource::File { column, .. } => Some(column.index + 1),
            _ => None,
        };
        let source =
            StoredPreview::source(self.console.storage.as_ref(), self.team, &record).await?;
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
            .console
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
}

/// The account IDs a run did not remove, each once, in the run's order: those whose result
/// says the user is still there (`ItemOutcome::not_yet_removed`) and those with no result.
pub(super) fn users_not_yet_removed(
    results: &[app::model::ItemResult],
    unsettled: &[crate::engine::RunTarget],
) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    results
        .iter()
        .filter(|r| r.outcome.not_yet_removed())
        .map(|r| r.account_id.trim())
        .chain(unsettled.iter().map(|t| t.account_id.trim()))
        .filter(|id| !id.is_empty() && seen.insert(id.to_string()))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod not_removed_tests {
    use super::users_not_yet_removed;
    use crate::engine::{ItemState, RunTarget};
    use app::model::{ItemOutcome, ItemResult};

    fn result(id: &str, outcome: ItemOutcome) -> ItemResult {
        ItemResult {
            account_id: id.to_string(),
            email: None,
            outcome,
            message: String::new(),
            attempts: 0,
            elapsed_ms: 0,
            demoted: false,
        }
    }

    #[test]
    fn only_users_still_on_the_site_each_once() {
        use ItemOutcome::*;
        let results = [
            result("1", Deleted),
            result("2", NotAttempted),
            result("3", Failed),
            result("4", AlreadyGone),
            result("5", Deactivated),
            result("6", CommunityCreator),
            result("7", ChangedSincePreview),
            result(" 2 ", Failed),
            result("", NotAttempted),
        ];
        let unsettled = [
            RunTarget {
                account_id: "8".into(),
                email: None,
                state: ItemState::Sending,
            },
            RunTarget {
                account_id: "3".into(),
                email: None,
                state: ItemState::Pending,
            },
        ];
        assert_eq!(
            users_not_yet_removed(&results, &unsettled),
            ["2", "3", "6", "7", "8"]
        );
        assert!(users_not_yet_removed(&[], &[]).is_empty());
        assert!(users_not_yet_removed(&[result("1", Deleted)], &[]).is_empty());
    }
}
