//! The undo window's clock: every console process runs [`spawn`]'s loop. It writes the
//! reminders (3 days and 1 day before, each once) and, at the date, claims each due window
//! (one process at a time; a claim lapses after [`CLAIM`] if its process dies), lists the site
//! again and hands the users still deactivated and unchanged to a deletion run made through
//! the usual path (preview, phrase, start), "Offboard, on behalf of" whoever confirmed. With
//! "Ask again at the date" the preview waits for a person instead. A console that was down at
//! the date does it at its first pass after starting. Times come from the console's clock.

use super::super::audit::Actor;
use super::super::sites::{list_site, open_site};
use super::super::Console;
use crate::engine::undo::{reminder_due, verdict, KeptUser, Verdict, REMINDER_DAYS};
use crate::storage::undo_states::{ASKED, DONE};
use crate::storage::{NewAuditEntry, UndoClaim, UndoClosing, UndoWindowRecord};
use app::audit::AuditAction;
use app::backend::ConsoleError;
use app::ids::JobId;
use app::model::{Action, SiteUser};
use chrono::Duration;
use std::collections::HashMap;
use std::sync::Arc;

/// How long a claimed window stays this process's: longer than listing a large site and
/// starting a run take.
pub const CLAIM: std::time::Duration = std::time::Duration::from_secs(600);
/// How often the loop looks for due windows and reminders.
const POLL: std::time::Duration = std::time::Duration::from_secs(15);

/// Starts this process's loop; it runs until the process ends. Its first pass is at once, so
/// a console started after the date carries it out straight away.
pub fn spawn(console: Arc<Console>) {
    let holder = format!("undo-{}", uuid::Uuid::new_v4());
    tokio::spawn(async move {
        loop {
            pass(&console, &holder).await;
            tokio::time::sleep(POLL).await;
        }
    });
}

/// One pass: the reminders due now, then the windows due now.
pub async fn pass(console: &Arc<Console>, holder: &str) {
    if let Err(e) = remind(console).await {
        tracing::warn!(error = %e, "could not write the undo windows' reminders");
    }
    let now = console.clock.now();
    let claim = UndoClaim {
        holder,
        now,
        until: now + Duration::from_std(CLAIM).unwrap_or(Duration::minutes(10)),
        job: None,
    };
    let windows = match console.storage.claim_undo(&claim).await {
        Ok(windows) => windows,
        Err(e) => {
            tracing::warn!(error = %e, "could not claim the undo windows due");
            return;
        }
    };
    for window in windows {
        let on_behalf = Actor::OnBehalf {
            of: window.confirmed_by.clone(),
        };
        if let Err(e) = carry_out(console, &window, holder, on_behalf, false).await {
            tracing::warn!(job_id = %window.job_id, error = %e.message, "undo window's date not carried out; tried again later");
            if let Err(e) = console.storage.release_undo(&window.job_id, holder).await {
                tracing::warn!(error = %e, "could not give an undo window's claim back");
            }
        }
    }
}

/// Writes each reminder due now, once (the storage's guarded update decides).
async fn remind(console: &Console) -> Result<(), crate::storage::StorageError> {
    let now = console.clock.now();
    let ahead = now + Duration::days(REMINDER_DAYS[0]) + Duration::seconds(1);
    for window in console.storage.open_undo_windows(ahead).await? {
        let reminded = (window.reminded_days > 0).then_some(window.reminded_days);
        let Some(days) = reminder_due(now, window.due_at, reminded) else {
            continue;
        };
        let users = console.storage.undo_users(&window.job_id).await?;
        let waiting = users.iter().filter(|u| u.restored_at.is_none()).count();
        let entry = NewAuditEntry {
            actor: "Offboard".to_string(),
            action: AuditAction::DeletionReminder,
            target: Some(window.job_id.to_string()),
            details: serde_json::json!({
                "days": days, "users": waiting, "delete_on": window.delete_on,
            }),
        };
        console
            .storage
            .record_undo_reminder(window.team_id, &window.job_id, days, now, &entry)
            .await?;
    }
    Ok(())
}

/// "Delete now": claims `window` whatever its date, and carries it out as `by`.
pub(super) async fn carry_out_now(
    console: &Arc<Console>,
    window: &UndoWindowRecord,
    by: Actor,
) -> Result<Option<JobId>, ConsoleError> {
    let holder = format!("undo-now-{}", uuid::Uuid::new_v4());
    let now = console.clock.now();
    let claim = UndoClaim {
        holder: &holder,
        now,
        until: now + Duration::from_std(CLAIM).unwrap_or(Duration::minutes(10)),
        job: Some(&window.job_id),
    };
    let Some(window) = console.storage.claim_undo(&claim).await?.pop() else {
        return Err(ConsoleError::new(
            "The deletion is being carried out already (its date came): check the run's page.",
        ));
    };
    let done = carry_out(console, &window, &holder, by, true).await;
    if done.is_err() {
        console
            .storage
            .release_undo(&window.job_id, &holder)
            .await?;
    }
    done
}

/// Carries out a window `holder` has claimed: the users' verdicts from a fresh listing, the
/// deletion run (or the preview that waits), and the window closed with its trail entry.
/// Returns the deletion run, if one started.
async fn carry_out(
    console: &Arc<Console>,
    window: &UndoWindowRecord,
    holder: &str,
    actor: Actor,
    now_asked: bool,
) -> Result<Option<JobId>, ConsoleError> {
    let storage = console.storage.as_ref();
    let team = window.team_id;
    let undo_run = storage
        .job(team, &window.job_id)
        .await?
        .ok_or_else(|| ConsoleError::not_found("The undo window's run is gone."))?;
    // Deleting while the deactivations still go on would judge users half-way: wait.
    if !undo_run.state.has_ended() {
        return Err(ConsoleError::new("The run has not ended yet."));
    }
    let users = storage.undo_users(&window.job_id).await?;
    let site = open_site(storage, &console.secrets, &console.http, team).await?;
    let fresh = list_site(site.provider.as_ref()).await?;
    let by_id: HashMap<&str, &SiteUser> = fresh.iter().map(|u| (u.id.as_str(), u)).collect();
    let verdicts: Vec<(String, Verdict)> = users
        .iter()
        .map(|u| {
            let kept = KeptUser {
                account_id: u.account_id.clone(),
                emails: u.emails(),
                restored: u.restored_at.is_some(),
            };
            let found = by_id.get(u.account_id.as_str()).copied();
            (u.account_id.clone(), verdict(&kept, found))
        })
        .collect();
    drop(by_id);
    drop(fresh);
    let to_delete: Vec<String> = verdicts
        .iter()
        .filter(|(_, v)| *v == Verdict::Deleted)
        .map(|(id, _)| id.clone())
        .collect();
    let asks = window.ask_again && !now_asked;
    let team_console = console.for_team(team, actor.clone());
    let (mut delete_job, mut preview) = (None, None);
    if !to_delete.is_empty() {
        let desk = team_console.as_operator()?;
        let made = desk
            .preview_picked(to_delete.clone(), Action::Delete, false)
            .await?;
        if asks {
            preview = Some(made.id.to_string());
        } else {
            let job = console
                .jobs
                .start(&desk.permit, &made.id, &made.phrase, actor.clone(), None)
                .await?;
            delete_job = Some(job.id);
        }
    }
    let count = |wanted: Verdict| verdicts.iter().filter(|(_, v)| *v == wanted).count();
    let entry = NewAuditEntry {
        actor: actor.name(None),
        action: AuditAction::DeletionDue,
        target: Some(window.job_id.to_string()),
        details: serde_json::json!({
            "delete_on": window.delete_on,
            "deleted": to_delete.len(),
            "restored": count(Verdict::Restored),
            "changed": count(Verdict::Changed) + count(Verdict::Gone),
            "asked": asks && preview.is_some(),
            "early": now_asked,
            "deletion_run": delete_job.as_ref().map(ToString::to_string),
        }),
    };
    let named: Vec<(String, &'static str)> = verdicts
        .iter()
        .map(|(id, v)| (id.clone(), <&'static str>::from(*v)))
        .collect();
    let delete_job_text = delete_job.as_ref().map(ToString::to_string);
    let closing = UndoClosing {
        job_id: &window.job_id,
        holder,
        state: if preview.is_some() { ASKED } else { DONE },
        verdicts: &named,
        delete_job_id: delete_job_text.as_deref(),
        preview_id: preview.as_deref(),
        at: console.clock.now(),
        audit: &entry,
    };
    if !storage.close_undo_window(team, &closing).await? {
        tracing::warn!(job_id = %window.job_id, "an undo window's claim lapsed while its date was carried out");
    }
    Ok(delete_job)
}
