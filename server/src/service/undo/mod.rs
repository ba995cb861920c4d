//! The undo window as a team sees and changes it (docs/undo-window.md): the window opened with
//! a "Deactivate now, delete after N days" run, what its page shows, "Restore", "Restore
//! everyone and cancel the deletion", and an owner's "Delete now". The date itself, and the
//! reminders before it, are carried out by `due.rs`.

mod due;

pub use due::spawn;

use super::desks::{OperatorDesk, OwnerDesk};
use super::sites::open_site;
use super::TeamConsole;
use crate::engine::undo::{due_at, Verdict};
use crate::scim::patch::active_payload;
use crate::scim::replies::{classify_patch, PatchReply};
use crate::storage::undo_states::{ASKED, CANCELLED, OPEN};
use crate::storage::{
    JobRecord, NewAuditEntry, NewJob, NewUndoWindow, PlannedItem, UndoUser, UndoUserRecord,
    UndoWindowRecord,
};
use app::audit::AuditAction;
use app::backend::{ConsoleError, UndoUserView, UndoWindowView};
use app::confirm::confirmation_phrase;
use app::ids::{JobId, PreviewId};
use app::model::{Action, SiteUser};
use std::collections::HashMap;
use std::str::FromStr;

/// The window a run of `job` opens: every user it is to deactivate, as the fresh `listing`
/// shows them now (their emails are what the date compares), and the date the phrase named,
/// due when that day begins in the team's time zone `zone`.
pub(super) fn window_for(
    job: &NewJob,
    (delete_on, zone): (Option<&str>, chrono_tz::Tz),
    ask_again: bool,
    listing: &[SiteUser],
) -> Result<NewUndoWindow, ConsoleError> {
    let no_date = || ConsoleError::new("This preview names no deletion date; make a new preview.");
    let delete_on = delete_on.ok_or_else(no_date)?;
    let due_at = due_at(delete_on, zone).ok_or_else(no_date)?;
    let by_id: HashMap<&str, &SiteUser> = listing.iter().map(|u| (u.id.as_str(), u)).collect();
    let users = job
        .items
        .iter()
        .filter_map(|item| match item {
            PlannedItem::Run(target) => Some(target),
            PlannedItem::Settled(_) => None,
        })
        .map(|target| {
            let found = by_id.get(target.account_id.as_str());
            UndoUser {
                account_id: target.account_id.clone(),
                name: found
                    .map(|u| user_name(u))
                    .or_else(|| target.email.clone())
                    .unwrap_or_else(|| target.account_id.clone()),
                emails: found.map(|u| u.emails.clone()).unwrap_or_default(),
            }
        })
        .collect();
    Ok(NewUndoWindow {
        delete_on: delete_on.to_string(),
        due_at,
        confirmed_by: job.created_by.clone(),
        ask_again,
        users,
    })
}

/// The name a person knows a site user by.
fn user_name(user: &SiteUser) -> String {
    [user.display_name.as_deref(), user.user_name.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|n| !n.is_empty())
        .or(user.display_email())
        .unwrap_or(&user.id)
        .to_string()
}

/// What a window's page says it came to.
fn status_words(window: &UndoWindowRecord) -> String {
    match (window.state.as_str(), &window.delete_job_id) {
        (OPEN, _) => format!("Deactivated — deletion on {}", window.delete_on),
        (CANCELLED, _) => "Deletion cancelled: everyone was restored".to_string(),
        (ASKED, _) => format!(
            "The date came ({}): a preview of the users to delete waits for a person to confirm \
             it",
            window.delete_on
        ),
        (_, Some(_)) => format!("Deleted on {}: see the deletion run", window.delete_on),
        (_, None) => format!(
            "The date came ({}): nobody was left to delete",
            window.delete_on
        ),
    }
}

fn user_view(user: &UndoUserRecord, open: bool) -> UndoUserView {
    let verdict = user
        .verdict
        .as_deref()
        .and_then(|v| Verdict::from_str(v).ok());
    let outcome = match (verdict, &user.restored_at, &user.restored_by) {
        (Some(verdict), _, _) => verdict.words().to_string(),
        (None, Some(at), by) => format!(
            "restored by {} on {} UTC",
            by.as_deref().unwrap_or("someone"),
            at.format("%-d %b %Y, %H:%M")
        ),
        (None, None, _) => String::new(),
    };
    UndoUserView {
        account_id: user.account_id.clone(),
        name: user.name.clone(),
        email: user.emails().first().cloned().unwrap_or_default(),
        restorable: open && user.restored_at.is_none(),
        outcome,
    }
}

impl TeamConsole {
    /// `job`'s undo window as its page shows it; None for any other run.
    pub(super) async fn undo_view(
        &self,
        job: &JobRecord,
    ) -> Result<Option<UndoWindowView>, ConsoleError> {
        let storage = self.console.storage.as_ref();
        let Some(window) = storage.undo_window(self.team, &job.id).await? else {
            return Ok(None);
        };
        let open = window.state == OPEN;
        let users: Vec<UndoUserView> = storage
            .undo_users(&job.id)
            .await?
            .iter()
            .map(|u| user_view(u, open))
            .collect();
        let left = users.iter().filter(|u| u.restorable).count();
        Ok(Some(UndoWindowView {
            status: status_words(&window),
            phrase: confirmation_phrase(Action::Delete, left),
            delete_on: window.delete_on,
            open,
            confirmed_by: window.confirmed_by,
            delete_job: window.delete_job_id.map(JobId::new),
            waiting_preview: window.preview_id.map(PreviewId::new),
            users,
        }))
    }

    /// The team's open window of run `job`, refused in words when there is none, it closed,
    /// or the run still deactivates (a user restored now could be deactivated after).
    async fn open_window(&self, job: &JobRecord) -> Result<UndoWindowRecord, ConsoleError> {
        if !job.state.has_ended() {
            return Err(ConsoleError::new(
                "The run is still deactivating its users: restore them once it has ended.",
            ));
        }
        let job_id = &job.id;
        let window = self
            .console
            .storage
            .undo_window(self.team, job_id)
            .await?
            .ok_or_else(|| ConsoleError::not_found("This run has no undo window."))?;
        if window.state != OPEN {
            return Err(ConsoleError::new(format!(
                "{}: nothing can be restored or cancelled any more.",
                status_words(&window)
            )));
        }
        Ok(window)
    }

    /// Reactivates `user` at the site at once (SCIM `active` = true). The window is changed
    /// only after the site said yes, so "restored" always means active again.
    async fn reactivate(&self, job: &JobRecord, user: &UndoUserRecord) -> Result<(), ConsoleError> {
        let c = &self.console;
        let site = open_site(c.storage.as_ref(), &c.secrets, &c.http, self.team).await?;
        if job.connection.as_ref().map(|j| j.users_url.as_str()) != Some(site.endpoint.users_url())
        {
            return Err(ConsoleError::new(
                "The site connection changed since this run: restore this user from the site's \
                 admin settings.",
            ));
        }
        let failed = |detail: String| {
            ConsoleError::new(format!(
                "The site did not reactivate {}: {detail}",
                user.name
            ))
        };
        let reply = site
            .provider
            .patch_user(&user.account_id, &active_payload(true))
            .await
            .map_err(|e| failed(format!("no answer ({e}). Try again.")))?;
        match classify_patch(&reply, std::time::SystemTime::now()) {
            PatchReply::Applied => Ok(()),
            PatchReply::NotFound => Err(failed("the account is no longer on the site.".into())),
            PatchReply::Unauthorized => Err(failed("the SCIM token was refused.".into())),
            PatchReply::Throttled { .. } | PatchReply::Transient { .. } => {
                Err(failed("the site is busy. Try again in a minute.".into()))
            }
            PatchReply::Failed { status, message } => {
                Err(failed(format!("it answered {status}: {message}")))
            }
        }
    }

    fn undo_entry(
        &self,
        actor: String,
        action: AuditAction,
        job: &JobId,
        details: serde_json::Value,
    ) -> NewAuditEntry {
        NewAuditEntry {
            actor,
            action,
            target: Some(job.to_string()),
            details,
        }
    }
}

impl OperatorDesk<'_> {
    /// "Restore": reactivates one user of run `job_id`'s open window at the site and takes
    /// them out of the deletion.
    pub async fn restore_user(&self, job_id: JobId, account_id: &str) -> Result<(), ConsoleError> {
        let job = self.viewer().team_job(&job_id).await?;
        let window = self.open_window(&job).await?;
        let users = self.console.storage.undo_users(&job.id).await?;
        let user = users
            .iter()
            .find(|u| u.account_id == account_id && u.restored_at.is_none())
            .ok_or_else(|| {
                ConsoleError::new("This user is not waiting for deletion in this run.")
            })?;
        self.reactivate(&job, user).await?;
        let by = self.actor_name().await;
        let entry = self.undo_entry(
            by.clone(),
            AuditAction::UserRestored,
            &job.id,
            serde_json::json!({ "account_id": user.account_id, "delete_on": window.delete_on }),
        );
        let now = self.console.clock.now();
        let storage = self.console.storage.as_ref();
        if !storage
            .restore_undo_user(self.team, &job.id, account_id, &by, now, &entry)
            .await?
        {
            return Err(ConsoleError::new(
                "The user was reactivated at the site, but the deletion date came (or someone \
                 restored them) meanwhile: check the run's page.",
            ));
        }
        Ok(())
    }

    /// "Restore everyone and cancel the deletion": reactivates every user not yet restored,
    /// then closes the window. A user the site does not reactivate stops it, named; those
    /// reactivated before are marked restored one by one, so the page shows what is true.
    pub async fn restore_everyone(&self, job_id: JobId) -> Result<usize, ConsoleError> {
        let job = self.viewer().team_job(&job_id).await?;
        let window = self.open_window(&job).await?;
        let storage = self.console.storage.as_ref();
        let users = storage.undo_users(&job.id).await?;
        let waiting: Vec<&UndoUserRecord> =
            users.iter().filter(|u| u.restored_at.is_none()).collect();
        let by = self.actor_name().await;
        for (done, user) in waiting.iter().enumerate() {
            if let Err(e) = self.reactivate(&job, user).await {
                for restored in &waiting[..done] {
                    let entry = self.undo_entry(
                        by.clone(),
                        AuditAction::UserRestored,
                        &job.id,
                        serde_json::json!({ "account_id": restored.account_id }),
                    );
                    let now = self.console.clock.now();
                    storage
                        .restore_undo_user(
                            self.team,
                            &job.id,
                            &restored.account_id,
                            &by,
                            now,
                            &entry,
                        )
                        .await?;
                }
                return Err(e);
            }
        }
        let entry = self.undo_entry(
            by.clone(),
            AuditAction::DeletionCancelled,
            &job.id,
            serde_json::json!({ "users": waiting.len(), "delete_on": window.delete_on }),
        );
        let now = self.console.clock.now();
        if !storage
            .cancel_undo_window(self.team, &job.id, &by, now, &entry)
            .await?
        {
            return Err(ConsoleError::new(
                "Everyone was reactivated at the site, but the deletion date came meanwhile: \
                 check the run's page.",
            ));
        }
        Ok(waiting.len())
    }
}

impl OwnerDesk<'_> {
    /// "Delete now": an owner carries out the date at once, after typing the phrase again.
    /// The deletion run starts as at the date (the same checks), started by the owner.
    pub async fn delete_now(
        &self,
        job_id: JobId,
        typed: &str,
    ) -> Result<Option<JobId>, ConsoleError> {
        let job = self.viewer().team_job(&job_id).await?;
        let window = self.open_window(&job).await?;
        let left = self
            .console
            .storage
            .undo_users(&job.id)
            .await?
            .iter()
            .filter(|u| u.restored_at.is_none())
            .count();
        let phrase = confirmation_phrase(Action::Delete, left);
        crate::service::phrase_typed(&phrase, typed, "delete now")?;
        due::carry_out_now(&self.console, &window, self.actor.clone()).await
    }
}
