//! Two-person approval: when the team's setting asks for it, a run waits as "awaiting
//! approval" until another operator opens the same preview, sees the same counts and rows,
//! and types the phrase; only then does it start (after the usual re-read of the site).
//!
//! Decisions: the request is tied to the preview (its counts and rows are what both people
//! saw; a revision is a new preview and needs a new request). It expires after
//! [`APPROVAL_HOURS`]. Anyone who may run may decline it with a reason, its requester too
//! (withdrawing it). The approver's typed phrase is the start: there is no separate "approve"
//! button that a second click could turn into a run. Both names are on the run (started by
//! the requester, approved by the approver) and in the audit trail.
//!
//! The approval and the run are one write: the request turns approved in the transaction that
//! creates the run, only if it still awaits, and a decline only happens while it still awaits
//! and no run exists (see `storage::approvals`). The long part of a start (listing the site)
//! comes before that transaction, so a decline during it wins and the approver is told;
//! a decline after it loses and is told the run started.

use super::permits::{Operate, Permit};
use super::previews::headline;
use super::TeamConsole;
use crate::storage::{ApprovalRecord, Decision, NewAuditEntry, PreviewRecord};
use app::audit::AuditAction;
use app::backend::{ApprovalRequestView, ConsoleError};
use app::ids::PreviewId;
use app::model::Action;
use app::team::{needs_approval, ApprovalState, ApprovalView, Role};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;

/// How long a request waits for a second operator.
pub const APPROVAL_HOURS: i64 = 24;
/// Most requests Overview and History list.
const REQUESTS_LISTED: u32 = 20;
/// Longest reason a decline may give.
const MAX_REASON_CHARS: usize = 500;

/// Where a request stands at `now`.
pub fn state_of(record: &ApprovalRecord, now: DateTime<Utc>) -> ApprovalState {
    match record.decision {
        Some(Decision::Approved) => ApprovalState::Approved,
        Some(Decision::Declined) => ApprovalState::Declined,
        None if now >= record.expires_at => ApprovalState::Expired,
        None => ApprovalState::Awaiting,
    }
}

/// Whether `me` may give the approval `record` asks for at `now`; the refusal in plain words.
pub fn may_approve(
    record: &ApprovalRecord,
    me: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), ConsoleError> {
    match state_of(record, now) {
        ApprovalState::Declined => Err(ConsoleError::new(format!(
            "{} declined this run: {}. Make a new preview to ask again.",
            record.decided_by.as_deref().unwrap_or("Another operator"),
            record.reason.as_deref().unwrap_or("no reason given")
        ))),
        ApprovalState::Expired => Err(ConsoleError::new(format!(
            "Nobody approved this run within {APPROVAL_HOURS} hours, so the request expired. \
             Make a new preview to ask again."
        ))),
        ApprovalState::Awaiting | ApprovalState::Approved
            if me.is_some_and(|me| me.eq_ignore_ascii_case(&record.requester_email)) =>
        {
            Err(ConsoleError::new(
                "You asked for this run yourself: another operator must approve it by typing \
                 the phrase on this preview.",
            ))
        }
        ApprovalState::Awaiting | ApprovalState::Approved => Ok(()),
    }
}

/// Whether the request was declined by the person who made it (withdrawn). Both names come
/// from `Actor::name` ("Name <email>", or the bare saved email without an account).
fn withdrawn_by_requester(record: &ApprovalRecord) -> bool {
    let email = record.requester_email.trim();
    !email.is_empty()
        && record.decided_by.as_deref().is_some_and(|by| {
            let by = by.trim().to_ascii_lowercase();
            let email = email.to_ascii_lowercase();
            by == email || by.ends_with(&format!("<{email}>"))
        })
}

/// Why an approver's start created nothing: the request (as stored now) stopped awaiting
/// between their check and the run's creation, while the site was being listed.
pub fn not_approved_in_time(record: Option<&ApprovalRecord>, now: DateTime<Utc>) -> ConsoleError {
    let Some(record) = record else {
        return ConsoleError::new(
            "The request for approval is gone (its preview was removed) while you were \
             confirming; nothing was started.",
        );
    };
    let by = record.decided_by.as_deref().unwrap_or("another operator");
    let reason = record.reason.as_deref().unwrap_or("no reason given");
    ConsoleError::new(match state_of(record, now) {
        ApprovalState::Declined if withdrawn_by_requester(record) => format!(
            "This request was withdrawn: {by}, who asked for it, declined it while you were \
             confirming ({reason}). Nothing was started."
        ),
        ApprovalState::Declined => format!(
            "This request was declined by {by} while you were confirming ({reason}). Nothing \
             was started."
        ),
        ApprovalState::Expired | ApprovalState::Awaiting => format!(
            "This request expired while you were confirming (nobody may approve it after \
             {APPROVAL_HOURS} hours). Nothing was started; make a new preview to ask again."
        ),
        ApprovalState::Approved => format!(
            "{by} approved and started this run while you were confirming; nothing more was \
             started."
        ),
    })
}

/// Why a decline changed nothing: the request (as stored now) no longer awaited, or a run was
/// started from it already.
pub fn not_declined(record: Option<&ApprovalRecord>, now: DateTime<Utc>) -> ConsoleError {
    let Some(record) = record else {
        return ConsoleError::new(
            "There is no request for approval on this preview, so there is nothing to decline.",
        );
    };
    let by = record.decided_by.as_deref().unwrap_or("another operator");
    ConsoleError::new(match state_of(record, now) {
        ApprovalState::Approved => format!(
            "This run was already approved by {by} and started: there is nothing to decline. \
             Pause or cancel it on its Run page if it must stop."
        ),
        ApprovalState::Declined => format!("This request was already declined by {by}."),
        ApprovalState::Expired => {
            "This request expired already: nobody can approve it any more.".to_string()
        }
        // Undecided yet not declinable: a run was started from the preview (before approvals
        // were written with their run).
        ApprovalState::Awaiting => "This run was already started: there is nothing to decline. \
             Pause or cancel it on its Run page if it must stop."
            .to_string(),
    })
}

/// A decline's reason: trimmed, required, bounded.
pub fn clean_reason(text: &str) -> Result<String, ConsoleError> {
    let reason = text.trim();
    if reason.is_empty() {
        return Err(ConsoleError::new(
            "Say why you decline: the person who asked will read it.",
        ));
    }
    Ok(reason.chars().take(MAX_REASON_CHARS).collect())
}

impl TeamConsole {
    /// Whether a run of `action` needs a second operator in this team now.
    pub(super) async fn approval_needed(&self, action: Action) -> Result<bool, ConsoleError> {
        let settings = self.console.storage.team_settings(self.team).await?;
        let operators = self
            .console
            .storage
            .members(self.team)
            .await?
            .iter()
            .filter(|m| m.role >= Role::Operator)
            .count();
        Ok(needs_approval(settings, operators, action))
    }

    /// The request made from `preview_id`, as the person asking sees it.
    pub(super) async fn approval_view(
        &self,
        preview_id: &PreviewId,
    ) -> Result<Option<ApprovalView>, ConsoleError> {
        let now = self.console.clock.now();
        Ok(self
            .console
            .storage
            .approval(self.team, preview_id)
            .await?
            .map(|r| self.approval_view_of(r, now)))
    }

    /// A stored request as the person looking sees it at `now`.
    fn approval_view_of(&self, r: ApprovalRecord, now: DateTime<Utc>) -> ApprovalView {
        ApprovalView {
            state: state_of(&r, now),
            yours: self
                .actor
                .email()
                .is_some_and(|me| me.eq_ignore_ascii_case(&r.requester_email)),
            requested_by: r.requested_by,
            requested_at: super::views::stamp(r.requested_at),
            expires_at: super::views::stamp(r.expires_at),
            decided_by: r.decided_by,
            reason: r.reason,
        }
    }

    /// The team's requests no run came from, with what each would run: the same states the
    /// Preview page shows, for Overview and History. A request whose preview was removed
    /// (previews are kept a day) is left out: nothing can be done with it any more.
    pub(super) async fn unrun_requests(&self) -> Result<Vec<ApprovalRequestView>, ConsoleError> {
        let now = self.console.clock.now();
        let mut listed = Vec::new();
        for r in self
            .console
            .storage
            .unrun_approvals(self.team, REQUESTS_LISTED)
            .await?
        {
            let Some(preview) = self
                .console
                .storage
                .preview(self.team, &r.preview_id)
                .await?
            else {
                continue;
            };
            listed.push(ApprovalRequestView {
                preview_id: preview.id.clone(),
                action: preview.action,
                users: headline(&preview)?.counts.selected as u64,
                approval: self.approval_view_of(r, now),
            });
        }
        Ok(listed)
    }

    /// The request the run of `record` starts under, if the team needs one: checked to be
    /// one `self` may give.
    pub(super) async fn approval_to_give(
        &self,
        record: &PreviewRecord,
    ) -> Result<Option<ApprovalRecord>, ConsoleError> {
        if !self.approval_needed(record.action).await? {
            return Ok(None);
        }
        let request = self
            .console
            .storage
            .approval(self.team, &record.id)
            .await?
            .ok_or_else(|| {
                ConsoleError::new(
                    "This team needs a second operator's approval before this run starts: ask \
                     for it with the phrase, then another operator types it on this preview.",
                )
            })?;
        may_approve(&request, self.actor.email(), self.console.clock.now())?;
        Ok(Some(request))
    }

    pub(super) async fn ask_for_approval(
        &self,
        _permit: &Permit<Operate>,
        preview_id: &PreviewId,
        typed: &str,
    ) -> Result<ApprovalView, ConsoleError> {
        let record = self.exact_preview(preview_id).await?;
        if record.replaced_by.is_some() || record.claimed {
            return Err(ConsoleError::new(
                "This preview was replaced or already used: open the newest preview.",
            ));
        }
        if !self.approval_needed(record.action).await? {
            return Err(ConsoleError::new(
                "This run does not need a second operator: type the phrase to start it.",
            ));
        }
        crate::service::phrase_typed(&record.phrase, typed, "ask for approval")?;
        if headline(&record)?.counts.selected == 0 {
            return Err(ConsoleError::new(
                "This preview selects nobody, so there is nothing to approve.",
            ));
        }
        let now = self.console.clock.now();
        let request = ApprovalRecord {
            preview_id: record.id.clone(),
            requested_by: self.actor_name().await,
            requester_email: self.actor.email().unwrap_or_default().to_string(),
            requested_at: now,
            expires_at: now + Duration::hours(APPROVAL_HOURS),
            decision: None,
            decided_by: None,
            decided_at: None,
            reason: None,
        };
        let entry = NewAuditEntry {
            actor: request.requested_by.clone(),
            action: AuditAction::ApprovalRequested,
            target: Some(record.id.to_string()),
            details: json!({
                "action": record.action,
                "phrase": record.phrase,
                "users": headline(&record)?.counts.selected,
                "expires_at": super::views::stamp(request.expires_at),
            }),
        };
        // The request, its trail entry and the notification it makes are one write.
        if !self
            .console
            .storage
            .request_approval(self.team, &request, &entry)
            .await?
        {
            return Err(ConsoleError::new(
                "Approval was asked for this preview already: see its state above.",
            ));
        }
        self.approval_view(&record.id)
            .await?
            .ok_or_else(|| ConsoleError::failed("The request was not kept; see the server log."))
    }

    pub(super) async fn decline(
        &self,
        _permit: &Permit<Operate>,
        preview_id: &PreviewId,
        reason: &str,
    ) -> Result<ApprovalView, ConsoleError> {
        let reason = clean_reason(reason)?;
        let record = self.exact_preview(preview_id).await?;
        let by = self.actor_name().await;
        let now = self.console.clock.now();
        let entry = NewAuditEntry {
            actor: by.clone(),
            action: AuditAction::ApprovalDeclined,
            target: Some(record.id.to_string()),
            details: json!({ "reason": reason }),
        };
        // The decline and its trail entry are one write, and happen only while the request
        // still awaits and no run was started from it.
        let declined = self
            .console
            .storage
            .decline_approval(self.team, &record.id, &by, &reason, now, &entry)
            .await?;
        if !declined {
            let request = self.console.storage.approval(self.team, &record.id).await?;
            return Err(not_declined(request.as_ref(), now));
        }
        self.approval_view(&record.id)
            .await?
            .ok_or_else(|| ConsoleError::failed("The request was not found; see the server log."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(decision: Option<Decision>) -> ApprovalRecord {
        let at = Utc::now();
        ApprovalRecord {
            preview_id: PreviewId::new("p1"),
            requested_by: "Ada <ada@acme.example>".into(),
            requester_email: "ada@acme.example".into(),
            requested_at: at,
            expires_at: at + Duration::hours(APPROVAL_HOURS),
            decision,
            decided_by: decision.map(|_| "Bob <bob@acme.example>".into()),
            decided_at: decision.map(|_| at),
            reason: (decision == Some(Decision::Declined)).then(|| "wrong list".into()),
        }
    }

    #[test]
    fn a_request_awaits_then_expires_unless_decided() {
        let r = request(None);
        assert_eq!(state_of(&r, r.requested_at), ApprovalState::Awaiting);
        let later = r.expires_at - Duration::seconds(1);
        assert_eq!(state_of(&r, later), ApprovalState::Awaiting);
        assert_eq!(state_of(&r, r.expires_at), ApprovalState::Expired);
        let declined = request(Some(Decision::Declined));
        assert_eq!(
            state_of(&declined, declined.expires_at),
            ApprovalState::Declined
        );
    }

    #[test]
    fn only_someone_else_approves_and_only_in_time() {
        let r = request(None);
        let now = r.requested_at;
        assert!(may_approve(&r, Some("bob@acme.example"), now).is_ok());
        let own = may_approve(&r, Some("ADA@acme.example"), now).unwrap_err();
        assert!(
            own.message.contains("You asked for this run yourself"),
            "{}",
            own.message
        );
        let late = may_approve(&r, Some("bob@acme.example"), r.expires_at).unwrap_err();
        assert!(late.message.contains("expired"), "{}", late.message);
        let declined = request(Some(Decision::Declined));
        let no = may_approve(&declined, Some("carol@acme.example"), now).unwrap_err();
        assert!(no
            .message
            .contains("Bob <bob@acme.example> declined this run: wrong list"));
    }

    #[test]
    fn an_approver_who_lost_the_race_is_told_why_nothing_started() {
        let mut withdrawn = request(Some(Decision::Declined));
        withdrawn.decided_by = Some("Ada <ADA@acme.example>".into());
        let told = not_approved_in_time(Some(&withdrawn), withdrawn.requested_at).message;
        assert!(
            told.contains("withdrawn")
                && told.contains("declined it while you were confirming (wrong list)")
                && told.contains("Nothing was started"),
            "{told}"
        );
        // Without an account the requester is named by their saved email alone.
        withdrawn.requester_email = "ops@acme.example".into();
        withdrawn.decided_by = Some("ops@acme.example".into());
        assert!(
            not_approved_in_time(Some(&withdrawn), withdrawn.requested_at)
                .message
                .contains("withdrawn")
        );
        let declined = request(Some(Decision::Declined));
        let told = not_approved_in_time(Some(&declined), declined.requested_at).message;
        assert!(
            told.contains("declined by Bob <bob@acme.example> while you were confirming")
                && !told.contains("withdrawn"),
            "{told}"
        );
        let waiting = request(None);
        let told = not_approved_in_time(Some(&waiting), waiting.expires_at).message;
        assert!(told.contains("expired while you were confirming"), "{told}");
        let approved = request(Some(Decision::Approved));
        let told = not_approved_in_time(Some(&approved), approved.requested_at).message;
        assert!(told.contains("nothing more was started"), "{told}");
        assert!(not_approved_in_time(None, Utc::now())
            .message
            .contains("nothing was started"));
        // Someone whose name merely contains the requester's email did not withdraw it.
        let mut other = request(Some(Decision::Declined));
        other.decided_by = Some("Eve <eve+ada@acme.example>".into());
        assert!(!withdrawn_by_requester(&other));
    }

    #[test]
    fn a_decline_that_lost_says_the_run_started() {
        let approved = request(Some(Decision::Approved));
        let told = not_declined(Some(&approved), approved.requested_at).message;
        assert!(
            told.contains("already approved by Bob <bob@acme.example> and started"),
            "{told}"
        );
        let declined = request(Some(Decision::Declined));
        assert!(not_declined(Some(&declined), declined.requested_at)
            .message
            .contains("already declined by Bob"));
        let waiting = request(None);
        assert!(not_declined(Some(&waiting), waiting.expires_at)
            .message
            .contains("expired"));
        assert!(not_declined(Some(&waiting), waiting.requested_at)
            .message
            .contains("already started"));
        assert!(not_declined(None, Utc::now())
            .message
            .contains("no request"));
    }

    #[test]
    fn a_decline_needs_a_reason_of_sensible_length() {
        assert!(clean_reason("   ").is_err());
        assert_eq!(clean_reason("  wrong list \n").unwrap(), "wrong list");
        assert_eq!(
            clean_reason(&"x".repeat(2000)).unwrap().len(),
            MAX_REASON_CHARS
        );
    }
}
