//! What happens to one user: look, demote, delete or deactivate, settle an unanswered request,
//! and the result it ends with.

use super::pacing::*;
use super::*;
use crate::scim::patch::{deactivate_payload, demote_payload};

/// How one target ended, and whether the whole run must stop because of it.
pub(super) struct Finish {
    pub(super) outcome: ItemOutcome,
    pub(super) message: String,
    pub(super) stop: Option<StopReason>,
    /// The site stopped answering before this user's work was done: no result is journaled,
    /// the user is left for the resume (see `outage.rs`).
    pub(super) unrecorded: bool,
}

impl Finish {
    pub(super) fn new(outcome: ItemOutcome, message: impl Into<String>) -> Finish {
        Finish {
            outcome,
            message: message.into(),
            stop: None,
            unrecorded: false,
        }
    }

    pub(super) fn stopping(mut self, reason: StopReason) -> Finish {
        self.stop = Some(reason);
        self
    }
}

/// A step of an item's work: `Err` carries the item's final result early.
pub(super) type Step<T> = Result<T, Finish>;

#[derive(Clone, Copy)]
pub(super) enum Op<'a> {
    Get,
    Delete,
    Patch(&'a serde_json::Value),
}

impl Op<'_> {
    pub(super) fn mutates(self) -> bool {
        !matches!(self, Op::Get)
    }
}

pub(super) fn unauthorized(status: u16) -> Finish {
    let why = format!(
        "The site refused Offboard's SCIM token (HTTP {status}): the token is wrong, expired or \
         was revoked, or SCIM was turned off for the site. Check the token on the Connect page, \
         then resume the run."
    );
    Finish::new(ItemOutcome::Failed, why.clone()).stopping(StopReason::Unauthorized(why))
}

/// The work on one target.
pub(super) struct Item<'r> {
    pub(super) run: &'r Run,
    pub(super) target: &'r RunTarget,
    pub(super) control: &'r mut RunControl,
    /// Requests sent for this user.
    pub(super) attempts: u32,
    pub(super) demoted: bool,
    /// A DELETE/PATCH went out and no definitive answer has come back yet.
    pub(super) unanswered: bool,
    /// Some DELETE for this user went unanswered at some point.
    pub(super) ever_unanswered: bool,
}

impl Item<'_> {
    pub(super) fn id(&self) -> &str {
        &self.target.account_id
    }

    /// Ends the item without finishing its work (cancel, journal failure). If a request may
    /// have gone through, the admin is told to check rather than told "not attempted".
    pub(super) fn abandon(&self, why: &str, reason: StopReason) -> Finish {
        let finish = if self.unanswered {
            Finish::new(
                ItemOutcome::Failed,
                format!(
                    "{why} before Offboard could confirm whether its last request for this user \
                     went through: check this user on the site."
                ),
            )
        } else if self.demoted {
            Finish::new(
                ItemOutcome::NotAttempted,
                format!("{why}: the user had been demoted to Registered but was not deleted."),
            )
        } else {
            Finish::new(ItemOutcome::NotAttempted, format!("{why}."))
        };
        finish.stopping(reason)
    }

    /// Ends the item because the run was cancelled, naming who cancelled and when if the
    /// journal has it on record.
    pub(super) async fn cancelled(&self) -> Finish {
        let by = self.run.journal.cancelled_by().await;
        if !self.unanswered && !self.demoted {
            // Nothing was sent for this user: the same words as the users never reached.
            let message = not_attempted_cancelled(by.as_deref());
            return Finish::new(ItemOutcome::NotAttempted, message).stopping(StopReason::Cancelled);
        }
        let why = by
            .map(|w| w.trim().trim_end_matches('.').to_string())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "The run was cancelled".to_string());
        self.abandon(&why, StopReason::Cancelled)
    }

    /// Ends the item because the site stopped answering: no result, the resume takes the
    /// user up again (a GET first, so a DELETE that landed unanswered is not sent twice).
    pub(super) fn left_for_outage(&self, since: SystemTime) -> Finish {
        let mut finish = Finish::new(
            ItemOutcome::NotAttempted,
            StopReason::SiteDown { since }.not_attempted_reason(),
        )
        .stopping(StopReason::SiteDown { since });
        finish.unrecorded = true;
        finish
    }

    /// Out of tries: the site stopped answering (the run pauses), or this user failed.
    pub(super) fn out_of_tries(&self, budget: &Budget) -> Step<()> {
        let over = budget.check(self.run.opts.max_attempts);
        if over.is_err() && self.run.site_went_down() {
            if let Some(since) = self.run.site_down_since() {
                return Err(self.left_for_outage(since));
            }
        }
        over
    }

    /// Waits, unless the run is cancelled or the site is found down meanwhile.
    pub(super) async fn wait(&mut self, duration: Duration) -> Step<()> {
        let down = self.run.site_down.notified();
        tokio::pin!(down);
        down.as_mut().enable();
        if let Some(since) = self.run.site_down_since() {
            return Err(self.left_for_outage(since));
        }
        tokio::select! {
            _ = tokio::time::sleep(duration) => Ok(()),
            _ = self.control.cancelled() => Err(self.cancelled().await),
            _ = down => match self.run.site_down_since() {
                Some(since) => Err(self.left_for_outage(since)),
                None => Ok(()),
            },
        }
    }

    /// Sends one request once: waits for the gate and a slot, journals mutating requests.
    pub(super) async fn send(&mut self, op: Op<'_>) -> Step<Result<ScimReply, TransportError>> {
        let run = self.run;
        let Some(slot) = run.pace.acquire(self.control).await else {
            return Err(self.cancelled().await);
        };
        if op.mutates() {
            match run.journal.sending(self.id()).await {
                Ok(()) => {}
                // Refused because the run was cancelled (here or on another replica): that is
                // a cancel, not a failure to keep records.
                Err(JournalError::Cancelled) => return Err(self.cancelled().await),
                Err(e) => {
                    let why = format!(
                        "Not sent: Offboard could not record that it was about to act on this \
                     user ({e})"
                    );
                    let reason = StopReason::JournalFailed(format!(
                        "{why}. The run stopped so that nothing happens that is not on record."
                    ));
                    return Err(self.abandon(&why, reason));
                }
            }
        }
        self.attempts += 1;
        run.pace.sent();
        let provider = &run.provider;
        let reply = match op {
            Op::Get => provider.get_user(self.id()).await,
            Op::Delete => provider.delete_user(self.id()).await,
            Op::Patch(patch) => provider.patch_user(self.id(), patch).await,
        };
        drop(slot);
        Ok(reply)
    }

    /// Acts on one sorted reply: `Some` for an answer worth acting on; `None` after waiting
    /// for a retry (throttled requests wait at the shared gate, transient failures back off).
    pub(super) async fn handle<T>(
        &mut self,
        answer: Answer<T>,
        budget: &mut Budget,
    ) -> Step<Option<T>> {
        match answer {
            Answer::Final(answer) => {
                self.run.pace.calm();
                lock(&self.run.silence).heard();
                Ok(Some(answer))
            }
            Answer::Throttled(retry_after) => {
                lock(&self.run.silence).heard();
                budget.throttles += 1;
                self.run.pace.throttled(retry_after);
                if budget.throttles > MAX_THROTTLED_RETRIES {
                    return Err(Finish::new(
                        ItemOutcome::Failed,
                        format!(
                            "The site kept asking Offboard to slow down ({} times in a row for \
                             this user); try again later.",
                            budget.throttles
                        ),
                    ));
                }
                Ok(None)
            }
            Answer::Unauthorized(status) => {
                lock(&self.run.silence).heard();
                Err(unauthorized(status))
            }
            Answer::Retry { problem, .. } => {
                lock(&self.run.silence).unanswered(self.id(), SystemTime::now());
                budget.tries += 1;
                budget.problem = problem;
                let delay = backoff(budget.tries, TRANSIENT_BASE, self.run.opts.max_backoff);
                crate::metrics::backoff_wait(crate::metrics::Wait::Transient, delay);
                self.wait(delay).await?;
                Ok(None)
            }
        }
    }

    /// Sends a GET or PATCH until it gets an answer worth acting on. Both are safe to repeat
    /// (PATCH `replace` is idempotent), so no check is needed between tries.
    pub(super) async fn call<T>(
        &mut self,
        op: Op<'_>,
        sort: fn(Result<ScimReply, TransportError>) -> Answer<T>,
    ) -> Step<T> {
        let mut budget = Budget::default();
        loop {
            let reply = self.send(op).await?;
            let answer = sort(reply);
            if op.mutates() {
                self.unanswered = matches!(answer, Answer::Retry { unknown: true, .. });
            }
            if let Some(answer) = self.handle(answer, &mut budget).await? {
                return Ok(answer);
            }
            self.out_of_tries(&budget)?;
        }
    }

    /// Sends the DELETE until it gets an answer worth acting on. A DELETE that may have been
    /// carried out without an answer is settled with a GET before it is sent again.
    pub(super) async fn delete_answered(&mut self) -> Step<DeleteReply> {
        let mut budget = Budget::default();
        loop {
            let reply = self.send(Op::Delete).await?;
            let answer = delete_answer(reply);
            let unknown = matches!(answer, Answer::Retry { unknown: true, .. });
            self.unanswered = unknown;
            self.ever_unanswered |= unknown;
            if let Some(answer) = self.handle(answer, &mut budget).await? {
                return Ok(answer);
            }
            if unknown {
                if self.get_user().await?.is_none() {
                    return Err(Finish::new(
                        ItemOutcome::Deleted,
                        "Deleted: confirmed gone after an unanswered request (the site did not \
                         answer the DELETE, and a check found the user gone).",
                    ));
                }
                // Still there: the DELETE was not carried out, so sending it again cannot
                // delete anything twice.
                self.unanswered = false;
            }
            self.out_of_tries(&budget)?;
        }
    }

    /// `Some(user)` if the account exists, `None` if it is gone.
    pub(super) async fn get_user(&mut self) -> Step<Option<SiteUser>> {
        match self.call(Op::Get, get_answer).await? {
            GetReply::Present(user) if user.id == self.target.account_id => Ok(Some(user)),
            GetReply::Present(user) => Err(Finish::new(
                ItemOutcome::Failed,
                format!(
                    "Asked for account {}, the site returned account {}: Offboard sent nothing more \
                     for this user.",
                    self.id(),
                    user.id
                ),
            )),
            GetReply::Gone => Ok(None),
            GetReply::Failed { message, .. } => Err(Finish::new(
                ItemOutcome::Failed,
                format!("Could not check whether the user still exists: {message}"),
            )),
            other => Err(unexpected(&other)),
        }
    }

    pub(super) async fn delete(&mut self) -> Finish {
        match self.delete_steps().await {
            Ok(finish) | Err(finish) => finish,
        }
    }

    pub(super) async fn delete_steps(&mut self) -> Step<Finish> {
        match self.look_before_acting().await? {
            Looked::Nothing | Looked::Present(_) => {}
            Looked::Settled(finish) => return Ok(finish),
            Looked::Gone if self.target.state == ItemState::Sending => {
                return Ok(Finish::new(
                    ItemOutcome::Deleted,
                    "Deleted: confirmed gone. The previous run was interrupted right after \
                     sending the request for this user, and a check found the user gone.",
                ))
            }
            Looked::Gone => return Ok(gone_before_acting()),
        }
        loop {
            match self.delete_answered().await? {
                DeleteReply::Deleted => {
                    self.run.note_deleted();
                    let message = if self.demoted {
                        "Demoted to Registered, then deleted."
                    } else {
                        "Deleted."
                    };
                    return Ok(Finish::new(ItemOutcome::Deleted, message));
                }
                DeleteReply::NotFound => return self.after_not_found().await,
                DeleteReply::SystemAccount => {
                    return Ok(Finish::new(
                        ItemOutcome::SystemAccount,
                        "This is the site's system account; the site does not allow deleting it.",
                    ))
                }
                DeleteReply::CommunityCreator => {
                    return Ok(Finish::new(
                        ItemOutcome::CommunityCreator,
                        "This user created a community, and the site cannot delete community \
                         creators: only Stack support can delete this user.",
                    ))
                }
                DeleteReply::NeedsDemotion if self.demoted => {
                    return Ok(Finish::new(
                        ItemOutcome::Privileged,
                        "The site still refuses to delete this user as a Moderator/Admin, even \
                         after the demotion to Registered was confirmed.",
                    ))
                }
                DeleteReply::NeedsDemotion if !self.run.opts.demote_privileged => {
                    return Ok(Finish::new(
                        ItemOutcome::Privileged,
                        "This user is a Moderator or Admin, and the site only deletes ordinary \
                         users. Tick \"demote first\" to have Offboard demote them to Registered \
                         and then delete them.",
                    ))
                }
                DeleteReply::NeedsDemotion => self.demote().await?,
                DeleteReply::Failed { message, .. } => {
                    return Ok(Finish::new(ItemOutcome::Failed, message))
                }
                other => return Err(unexpected(&other)),
            }
        }
    }

    /// DELETE said 404: gone, or deletion is not enabled (a 404 cannot tell them apart).
    pub(super) async fn after_not_found(&mut self) -> Step<Finish> {
        if self.get_user().await?.is_none() {
            return Ok(if self.ever_unanswered {
                Finish::new(
                    ItemOutcome::Deleted,
                    "Deleted: confirmed gone after an unanswered request (an earlier DELETE got \
                     no answer; the user is gone now).",
                )
            } else {
                Finish::new(
                    ItemOutcome::AlreadyGone,
                    "Already gone: the site says this user no longer exists.",
                )
            });
        }
        let finish = Finish::new(
            ItemOutcome::DeletionNotEnabled,
            "The site answered \"not found\" to the DELETE, but the user still exists: SCIM \
             user deletion is probably not enabled for this site.",
        );
        Ok(if self.run.note_not_enabled() {
            finish.stopping(StopReason::DeletionNotEnabled(
                HOW_TO_ENABLE_DELETION.to_string(),
            ))
        } else {
            finish
        })
    }

    /// Demotes to Registered and confirms it with a GET: Stack answers 200 even when it
    /// ignores the change.
    pub(super) async fn demote(&mut self) -> Step<()> {
        let payload = demote_payload();
        match self.call(Op::Patch(&payload), patch_answer).await? {
            PatchReply::Applied => {}
            PatchReply::NotFound => {
                return Err(match self.get_user().await? {
                    None => Finish::new(
                        ItemOutcome::AlreadyGone,
                        "Already gone: the user disappeared while being demoted.",
                    ),
                    Some(_) => Finish::new(
                        ItemOutcome::Privileged,
                        "Could not demote this Moderator/Admin to Registered: the site answered \
                         \"not found\", yet the user still exists.",
                    ),
                })
            }
            PatchReply::Failed { message, .. } => {
                return Err(Finish::new(
                    ItemOutcome::Privileged,
                    format!("Could not demote this Moderator/Admin to Registered: {message}"),
                ))
            }
            other => return Err(unexpected(&other)),
        }
        match self.get_user().await? {
            None => Err(Finish::new(
                ItemOutcome::AlreadyGone,
                "Already gone: the user disappeared while being demoted.",
            )),
            Some(user) if user.role.is_privileged() => {
                Err(Finish::new(ItemOutcome::Privileged, NOT_PROMOTABLE))
            }
            Some(_) => {
                self.demoted = true;
                Ok(())
            }
        }
    }

    pub(super) async fn deactivate(&mut self) -> Finish {
        match self.deactivate_steps().await {
            Ok(finish) | Err(finish) => finish,
        }
    }

    pub(super) async fn deactivate_steps(&mut self) -> Step<Finish> {
        match self.look_before_acting().await? {
            Looked::Nothing => {}
            Looked::Settled(finish) => return Ok(finish),
            // Deactivating never deletes: someone else removed this user.
            Looked::Gone => return Ok(gone_before_deactivation()),
            Looked::Present(user) if !user.active && self.target.state == ItemState::Sending => {
                return Ok(Finish::new(
                    ItemOutcome::Deactivated,
                    "Deactivated: confirmed after the previous run was interrupted right \
                     after sending the request.",
                ))
            }
            Looked::Present(_) => {}
        }
        let payload = deactivate_payload();
        match self.call(Op::Patch(&payload), patch_answer).await? {
            PatchReply::Applied => Ok(Finish::new(ItemOutcome::Deactivated, "Deactivated.")),
            PatchReply::NotFound => match self.get_user().await? {
                None => Ok(gone_before_deactivation()),
                Some(_) => Ok(Finish::new(
                    ItemOutcome::Failed,
                    "The site answered \"not found\" to the deactivation, but the user still \
                     exists.",
                )),
            },
            PatchReply::Failed { message, .. } => Ok(Finish::new(ItemOutcome::Failed, message)),
            other => Err(unexpected(&other)),
        }
    }
}

/// What a look at the user before acting found.
pub(super) enum Looked {
    /// No look was needed (a fresh target of a run that has not resumed).
    Nothing,
    Gone,
    Present(SiteUser),
    /// The user changed since the preview: left alone with this result.
    Settled(Finish),
}

impl Item<'_> {
    /// Reads the user first when a previous attempt may have gone through (left `Sending`) or
    /// the run resumed (re-read against the preview; see [`Rereads`]).
    pub(super) async fn look_before_acting(&mut self) -> Step<Looked> {
        let rereads = self.control.rereads();
        if self.target.state != ItemState::Sending && rereads.is_none() {
            return Ok(Looked::Nothing);
        }
        let Some(user) = self.get_user().await? else {
            return Ok(Looked::Gone);
        };
        if let Some(rereads) = rereads {
            let why = match rereads.checks.get(self.id().trim()) {
                Some(check) => check.changed(&user, &rereads.policy),
                // When in doubt, do not delete.
                None => Some("Offboard has no record of how the preview showed this user".into()),
            };
            if let Some(why) = why {
                return Ok(Looked::Settled(Finish::new(
                    ItemOutcome::ChangedSincePreview,
                    format!("Left alone: {why} (re-read when the run resumed)."),
                )));
            }
        }
        Ok(Looked::Present(user))
    }
}

pub(super) fn gone_before_acting() -> Finish {
    Finish::new(
        ItemOutcome::AlreadyGone,
        "Already gone: the user was no longer on the site when the resumed run re-read it.",
    )
}

pub(super) fn gone_before_deactivation() -> Finish {
    Finish::new(
        ItemOutcome::AlreadyGone,
        "Already gone: the site says this user no longer exists.",
    )
}

/// The retry loop hands back only final answers; this covers the rest without a panic.
pub(super) fn unexpected(reply: &impl std::fmt::Debug) -> Finish {
    Finish::new(
        ItemOutcome::Failed,
        format!("Offboard could not make sense of the site's answer ({reply:?}); nothing more was sent."),
    )
}
