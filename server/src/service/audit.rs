//! The audit trail, from the service's side: who is acting (the one place a person's name is
//! decided, for the trail and for a run's "started by"), what each recorded action says, the
//! Audit page and its CSV, the chain check behind `offboard audit verify`, and the regular
//! log line of every team's head that anchors the trail outside the database.
//!
//! Decisions: an entry is written after what it records has happened, so the trail never
//! claims something that failed; if the entry itself cannot be written the action stands and
//! the failure is logged as an error (undoing a saved connection or a paused run because of
//! the trail would be worse). One exception: a run's confirmation (and approval) is written
//! in the very transaction that writes the run, because its runner may end it, and record
//! the end, before the request that started it gets its turn again; written after, the trail
//! showed a quick run ending before it was confirmed. Details carry counts and ids only: never a token, never a list
//! of users, and no entry per user (a run writes a handful of entries, not one per result).

use super::desks::ViewerDesk;
pub use super::people::{Actor, CONSOLE_ADMIN};
use super::views::stamp;
use super::TeamConsole;
use crate::engine::report;
use crate::secret::AuditKey;
/// The head line's format and its reader, for `offboard audit verify`.
pub use crate::storage::{head_line, ExpectedHeads};
use crate::storage::{
    ApprovalRecord, AuditEntry, AuditQuery, ChainReport, ConnectionRecord, JobRecord,
    NewAuditEntry, NewJob, Storage, StorageError,
};
use app::audit::{AuditAction, AuditEntryView, AuditFilter, AuditPage};
use app::backend::{ConsoleError, JobCommand, ReportKind};
use app::ids::{JobId, PreviewId, TeamId};
use app::model::Preview;
use model::Named;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The console itself, for what no person did (a run ending, runs picked up at start).
pub const OFFBOARD: &str = crate::storage::OFFBOARD_ACTOR;

/// Entries one page may ask for.
const MAX_ENTRIES_PER_PAGE: u32 = 500;
/// Entries read per query while writing the CSV.
const CSV_BATCH: u32 = 1000;

/// Appends an entry made of its parts (for records outside one team's request: sign-ins,
/// membership), logging a failure like [`append`].
pub(super) async fn append_entry(
    storage: &dyn Storage,
    team: TeamId,
    actor: String,
    action: AuditAction,
    target: Option<String>,
    details: Value,
) {
    let entry = NewAuditEntry {
        actor,
        action,
        target,
        details,
    };
    append(storage, team, entry).await
}

/// Appends an entry, logging (not returning) a failure: see the module's decisions.
async fn append(storage: &dyn Storage, team: TeamId, entry: NewAuditEntry) {
    if let Err(e) = storage.append_audit(team, &entry).await {
        tracing::error!(
            team = %team,
            action = entry.action.key(),
            error = %e,
            "could not write an audit entry"
        );
    }
}

/// What the trail says when a run is written: who confirmed it (named as its "started by"
/// says) and, for an approved run, who approved it. Written with the run itself (see
/// `NewJob::audit`), so a run that ends at once cannot be recorded ending before it started.
pub(super) fn run_start_entries(
    job: &NewJob,
    approval: Option<(&ApprovalRecord, String)>,
) -> Vec<NewAuditEntry> {
    let mut entries = vec![NewAuditEntry {
        actor: job.created_by.clone(),
        action: AuditAction::RunConfirmed,
        target: Some(job.id.to_string()),
        details: json!({
            "preview": job.preview_id,
            "action": job.action,
            "site_url": job.site_url,
            "users": job.items.len(),
        }),
    }];
    if let Some((request, approver)) = approval {
        entries.push(NewAuditEntry {
            actor: approver.clone(),
            action: AuditAction::ApprovalGiven,
            target: Some(job.id.to_string()),
            details: json!({
                "preview": request.preview_id,
                "requested_by": request.requested_by,
                "approved_by": approver,
            }),
        });
    }
    entries
}

/// Records something the console did by itself to run `job_id` (picked up at start, or
/// paused because it could not be).
pub(super) async fn record_by_offboard(
    storage: &dyn Storage,
    team: TeamId,
    action: AuditAction,
    job_id: &JobId,
    details: Value,
) {
    let entry = NewAuditEntry {
        actor: OFFBOARD.to_string(),
        action,
        target: Some(job_id.to_string()),
        details,
    };
    append(storage, team, entry).await
}

fn entry_view(e: AuditEntry) -> AuditEntryView {
    AuditEntryView {
        seq: e.seq,
        at: stamp(e.at),
        actor: e.actor,
        action: e.action,
        target: e.target,
        details: e.details,
    }
}

fn query_of(filter: &AuditFilter, before: Option<i64>, limit: u32) -> AuditQuery {
    AuditQuery {
        action: filter.action,
        from_day: filter.from.clone(),
        to_day: filter.to.clone(),
        before,
        limit,
    }
}

impl TeamConsole {
    /// The name of whoever this request acts for.
    pub(super) async fn actor_name(&self) -> String {
        self.actor.name(self.operator_email().await.as_deref())
    }

    /// The short name of whoever this request acts for, for sentences about them.
    pub(super) async fn actor_short_name(&self) -> String {
        self.actor
            .short_name(self.operator_email().await.as_deref())
    }

    /// The team's saved operator email, which names the console's own admin.
    async fn operator_email(&self) -> Option<String> {
        match self.console.storage.connection(self.team).await {
            Ok(record) => record.and_then(|r| r.operator_email),
            Err(e) => {
                tracing::error!(error = %e, "could not read the connection to name the actor");
                None
            }
        }
    }

    /// Records `action` by whoever this request acts for.
    pub(super) async fn record(&self, action: AuditAction, target: Option<String>, details: Value) {
        let actor = self.actor_name().await;
        self.record_as(actor, action, target, details).await
    }

    /// Records `action` by `actor` (already named).
    pub(super) async fn record_as(
        &self,
        actor: String,
        action: AuditAction,
        target: Option<String>,
        details: Value,
    ) {
        append_entry(
            self.console.storage.as_ref(),
            self.team,
            actor,
            action,
            target,
            details,
        )
        .await
    }

    /// Records a saved connection: what changed, never the token.
    pub(super) async fn record_connection_saved(
        &self,
        before: Option<&ConnectionRecord>,
        after: &ConnectionRecord,
        token_replaced: bool,
        token_kept_for_new_site: bool,
    ) {
        let site_changed = before
            .is_none_or(|b| b.site_url != after.site_url || b.scim_base_url != after.scim_base_url);
        let details = json!({
            "site_url": after.site_url,
            "scim_base_url": after.scim_base_url,
            "site_changed": site_changed,
            "token_replaced": token_replaced,
            "token_saved": after.token_ciphertext.is_some(),
            "token_kept_for_new_site": token_kept_for_new_site,
            "operator_email_changed":
                before.map(|b| &b.operator_email) != Some(&after.operator_email),
        });
        self.record(AuditAction::ConnectionSaved, None, details)
            .await
    }

    /// Records a new preview, or a revision of `revises`: its counts, never its rows.
    pub(super) async fn record_preview(
        &self,
        revises: Option<&PreviewId>,
        id: &PreviewId,
        preview: &Preview,
        action: app::model::Action,
    ) {
        let mut details = json!({
            "action": action,
            "rows": preview.rows.len(),
            "counts": preview.counts,
            "demote_privileged": preview.demote_privileged,
        });
        let kind = match revises {
            Some(old) => {
                details["revises"] = json!(old);
                AuditAction::PreviewRevised
            }
            None => AuditAction::PreviewMade,
        };
        self.record(kind, Some(id.to_string()), details).await
    }

    /// Records a pause, resume or cancel the admin asked for, and the state it left.
    pub(super) async fn record_run_command(&self, command: JobCommand, after: &JobRecord) {
        let action = match command {
            JobCommand::Pause => AuditAction::RunPaused,
            JobCommand::Resume => AuditAction::RunResumed,
            JobCommand::Cancel => AuditAction::RunCancelled,
        };
        let details = json!({ "state": after.state, "done": after.done, "users": after.total });
        self.record(action, Some(after.id.to_string()), details)
            .await
    }
}

impl ViewerDesk<'_> {
    pub async fn audit_page(
        &self,
        filter: app::audit::AuditFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<app::audit::AuditPage, ConsoleError> {
        self.audit_entries_page(filter, before, limit).await
    }

    /// One page of the team's trail, newest first.
    pub async fn audit_entries_page(
        &self,
        filter: AuditFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<AuditPage, ConsoleError> {
        let limit = limit.clamp(1, MAX_ENTRIES_PER_PAGE);
        // One more than asked tells whether older entries remain.
        let mut entries = self
            .console
            .storage
            .audit_entries(self.team, &query_of(&filter, before, limit + 1))
            .await?;
        let more = crate::service::page_of(&mut entries, limit);
        Ok(AuditPage {
            entries: entries.into_iter().map(entry_view).collect(),
            more,
        })
    }

    /// Every entry of the team's trail matching `filter`, newest first, as a spreadsheet.
    pub async fn audit_report(
        &self,
        filter: &AuditFilter,
    ) -> Result<super::reports::Report, ConsoleError> {
        let mut all: Vec<AuditEntryView> = Vec::new();
        let mut before = None;
        loop {
            let batch = self
                .console
                .storage
                .audit_entries(self.team, &query_of(filter, before, CSV_BATCH))
                .await?;
            let full = batch.len() == CSV_BATCH as usize;
            before = batch.last().map(|e| e.seq);
            all.extend(batch.into_iter().map(entry_view));
            if !full {
                break;
            }
        }
        Ok(super::reports::Report {
            kind: ReportKind::AuditTrail,
            file_name: ReportKind::AuditTrail.file_name().to_string(),
            body: report::audit_csv(&all),
        })
    }
}

/// Opens (creating and migrating) the console's database at `url`, its audit trail signed
/// with `audit_key` (what `offboard serve` does; see `crate::secret::AuditKey`), and seals the
/// entries written before the trail was keyed, before anything else can append (the first
/// start after the upgrade does; later starts find something keyed and leave it).
pub async fn open_signed(
    url: &str,
    audit_key: AuditKey,
) -> Result<crate::storage::Database, StorageError> {
    let db =
        crate::storage::open_keyed(url, Arc::new(crate::engine::SystemClock), audit_key).await?;
    let sealed = db.storage.seal_old_audit_entries().await?;
    if sealed > 0 {
        tracing::info!(
            teams = sealed,
            "the audit trail is keyed from now on; its older entries are sealed with the key"
        );
    }
    Ok(db)
}

/// Opens the database at `url` and walks every team's audit chain with `audit_key`, comparing
/// it with the heads `recorded` earlier (`offboard audit verify`).
pub async fn verify_database(
    url: &str,
    audit_key: AuditKey,
    recorded: &ExpectedHeads,
) -> Result<ChainReport, StorageError> {
    // Verifying never seals: a wrong key given here must not become the trail's seal.
    let db =
        crate::storage::open_keyed(url, Arc::new(crate::engine::SystemClock), audit_key).await?;
    let report = db.storage.verify_audit_against(recorded).await;
    db.pool.close().await;
    report
}

/// Logs every team's head (`audit head: team T entry S hash H`) now and then every
/// `period`, until the process ends. Decision: the database alone cannot show that its newest
/// entries were removed and the head moved back (what is left is a shorter, intact trail);
/// these lines, in a log kept elsewhere (journald, a log shipper), are what
/// `offboard audit verify --expect-heads` compares the trail with later. Every replica logs;
/// the same head twice is harmless. Logged at info level.
pub fn log_heads_every(storage: Arc<dyn Storage>, period: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match storage.audit_heads().await {
                Ok(heads) => {
                    for (team, seq, hash) in heads {
                        tracing::info!("{}", head_line(team, seq, &hash));
                    }
                }
                Err(e) => tracing::error!(error = %e, "could not read the audit trail's heads"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_admin_is_named_by_the_saved_email_else_by_role() {
        let admin = Actor::ConsoleAdmin;
        assert_eq!(admin.name(Some(" me@acme.example ")), "me@acme.example");
        assert_eq!(admin.name(Some("  ")), CONSOLE_ADMIN);
        assert_eq!(admin.name(None), CONSOLE_ADMIN);
        assert_eq!(admin.email(), None);
    }

    #[test]
    fn a_signed_in_person_is_named_by_their_account_not_the_saved_email() {
        let ada = Actor::Person {
            name: "Ada Lovelace".into(),
            email: "ada@acme.example".into(),
        };
        assert_eq!(
            ada.name(Some("someone@else.example")),
            "Ada Lovelace <ada@acme.example>"
        );
        assert_eq!(ada.email(), Some("ada@acme.example"));
    }
}
