//! The deletion runner: acts on confirmed targets through SCIM with bounded concurrency, shared
//! throttling and safe retries, and journals exactly one result per target.
//!
//! Safety decisions (each has a test below):
//! - A DELETE whose outcome is unknown (timeout, dropped connection, 502/504 from a proxy) is
//!   never re-sent blindly: a GET settles it first. Gone means *our* request most likely did it
//!   (the user existed when the run started and we had just asked to delete it), so the result
//!   is `Deleted` with the message "confirmed gone after an unanswered request"; still present
//!   means re-sending is safe. A 429, 408, 503 or a failure to connect means the request was not
//!   processed, so it is retried without the GET.
//! - PATCH (deactivate, demote) uses `replace`, which is idempotent: it is retried without a GET.
//! - A target left `Sending` by a crash is settled with a GET before anything is sent. Gone is
//!   reported as `Deleted` ("confirmed gone: the previous run was interrupted ..."), for the same
//!   reason as above; for a deactivation, gone is `AlreadyGone` (we never delete when
//!   deactivating) and present-but-inactive is `Deactivated`.
//! - A 404 on DELETE is checked with a GET: gone is `AlreadyGone`; present means SCIM deletion is
//!   not enabled, and after `not_enabled_threshold` such users with no 204 in between the run
//!   stops rather than churn through the whole list.
//! - Throttling (429) closes a gate shared by every worker until `Retry-After` has passed and
//!   halves the number of requests in flight; it grows back by one after every
//!   [`RECOVER_AFTER`] calm replies. Throttled requests are retried (up to
//!   [`MAX_THROTTLED_RETRIES`] times each), never dropped, and do not use up `max_attempts`.
//! - The retry loop is written here rather than with a retry crate because what may be retried,
//!   and how (GET first or not), depends on the classified reply and on the operation.

mod items;
mod outage;
mod pacing;

use crate::engine::backoff::backoff;
use crate::engine::resolve::{Policy, TargetCheck};
use crate::engine::{lock, ItemState, RunTarget};
use crate::scim::replies::{
    classify_delete, classify_get, classify_patch, delete_maybe_applied, plain_message,
    shared_reply, DeleteReply, GetReply, PatchReply, SharedReply,
};
use crate::scim::{ScimProvider, ScimReply, TransportError};
use async_trait::async_trait;
use items::*;
use model::deletion::{Action, ItemOutcome, ItemResult, SiteUser};
pub use outage::{site_down_words, site_stopped_answering, Silence, SITE_DOWN_AFTER};
use pacing::*;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// Calm (non-throttled) replies needed before one more request may be in flight again.
pub const RECOVER_AFTER: u32 = 10;
/// A request throttled this many times is given up as `Failed`: a site that never stops
/// throttling must not hold a run forever.
pub const MAX_THROTTLED_RETRIES: u32 = 50;
/// First wait after a transient error; doubles with each further try, up to `max_backoff`.
const TRANSIENT_BASE: Duration = Duration::from_millis(500);
/// First wait after a 429 without a readable `Retry-After`.
const THROTTLE_BASE: Duration = Duration::from_secs(1);

/// How a run behaves. `Default` gives the values the console uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOptions {
    pub action: Action,
    /// Most requests in flight at once (at least 1).
    pub concurrency: usize,
    /// Demote Moderators/Admins to Registered before deleting them.
    pub demote_privileged: bool,
    /// Tries per request for transient errors (timeouts, 502/503/504), at least 1.
    pub max_attempts: u32,
    /// Users that answer "not found" yet still exist before the run stops (at least 1).
    pub not_enabled_threshold: usize,
    /// Longest wait between two tries of a request (a `Retry-After` is honoured even if longer).
    pub max_backoff: Duration,
    /// Requests in a row without a usable answer after which the site counts as down and the
    /// run stops with [`StopReason::SiteDown`] (see `outage.rs`).
    pub site_down_after: u32,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            action: Action::Delete,
            concurrency: 8,
            demote_privileged: false,
            max_attempts: 6,
            not_enabled_threshold: 3,
            max_backoff: Duration::from_secs(60),
            site_down_after: SITE_DOWN_AFTER,
        }
    }
}

/// Where the run records its progress, so a crash or restart never loses track of a request.
#[async_trait]
pub trait RunJournal: Send + Sync {
    /// Before a mutating request (DELETE/PATCH) for this user is sent; durable when it returns.
    /// An Err stops the run (nothing is sent).
    async fn sending(&self, account_id: &str) -> Result<(), JournalError>;
    /// Exactly once per target, the moment its outcome is known. An Err stops the run, so
    /// nothing happens that is not on record.
    async fn finished(&self, result: &ItemResult) -> Result<(), JournalError>;
    /// Who cancelled the run and when, in words ("Priya cancelled the run at 12:17 UTC"), for
    /// the rows the run did not reach; `None` when nobody is on record.
    async fn cancelled_by(&self) -> Option<String> {
        None
    }
}

/// Why the journal could not record a step. Either way the run stops, and the words go into
/// the stop reason the admin reads.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// The run was cancelled while the step waited for a paused run to go on.
    #[error("the run was cancelled")]
    Cancelled,
    /// The record could not be written (database, disk); the detail is in the server log.
    #[error("{0}")]
    NotRecorded(String),
}

/// What the admin wants the run to do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Running,
    Paused,
    Cancelled,
}

/// The run's view of the pause/resume/cancel buttons. Workers look at it between users: a pause
/// lets requests in flight finish, a cancel stops taking new users (and interrupts waits).
#[derive(Clone, Debug)]
pub struct RunControl {
    state: watch::Receiver<RunState>,
    rereads: Option<Arc<Rereads>>,
}

/// The users a resumed run re-reads (GET) before acting on them, and what each must still look
/// like. While a run was paused or the server was down, anyone could have changed a user: from
/// the moment the run resumes, each user not yet acted on is read again and left alone
/// ("changed since the preview") when it no longer matches.
#[derive(Debug)]
pub struct Rereads {
    active: std::sync::atomic::AtomicBool,
    checks: HashMap<String, TargetCheck>,
    policy: Policy,
}

impl Rereads {
    /// Checks by account ID (see `resolve::target_checks`); inactive until [`Rereads::start`].
    pub fn new(checks: HashMap<String, TargetCheck>, policy: Policy) -> Arc<Rereads> {
        Arc::new(Rereads {
            active: std::sync::atomic::AtomicBool::new(false),
            checks,
            policy,
        })
    }

    /// From now on, every user not yet acted on is re-read first.
    pub fn start(&self) {
        self.active.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn active(&self) -> bool {
        self.active.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl RunControl {
    pub fn new(receiver: watch::Receiver<RunState>) -> RunControl {
        RunControl {
            state: receiver,
            rereads: None,
        }
    }

    /// A control and the sender that drives it, starting in `Running`.
    pub fn channel() -> (watch::Sender<RunState>, RunControl) {
        let (sender, receiver) = watch::channel(RunState::Running);
        (sender, RunControl::new(receiver))
    }

    /// For runs nobody can pause (the command line).
    pub fn always_running() -> RunControl {
        RunControl::channel().1
    }

    /// Re-reads users before acting on them once `rereads` is started.
    pub fn with_rereads(mut self, rereads: Arc<Rereads>) -> RunControl {
        self.rereads = Some(rereads);
        self
    }

    /// The rereads in force now, if any.
    fn rereads(&self) -> Option<Arc<Rereads>> {
        self.rereads.clone().filter(|r| r.active())
    }

    /// Waits while paused; returns `Running` or `Cancelled`. A pause nobody can lift any more
    /// (the sender is gone) counts as a cancel.
    async fn until_not_paused(&mut self) -> RunState {
        match self.state.wait_for(|s| *s != RunState::Paused).await {
            Ok(state) => *state,
            Err(_) => RunState::Cancelled,
        }
    }

    /// Resolves when the run is cancelled; never, if it cannot be any more.
    async fn cancelled(&mut self) {
        if self
            .state
            .wait_for(|s| *s == RunState::Cancelled)
            .await
            .is_err()
        {
            std::future::pending::<()>().await;
        }
    }
}

/// Why a run stopped before every target was tried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    Cancelled,
    /// The text says how to enable SCIM user deletion.
    DeletionNotEnabled(String),
    /// The site refused the token; the text says what to check.
    Unauthorized(String),
    /// Offboard could not record its progress; the text says what failed.
    JournalFailed(String),
    /// The site stopped answering (see `outage.rs`) at `since`. The users it left without an
    /// answer keep no result in the journal: the console pauses the run, and a resume takes
    /// them up again.
    SiteDown {
        since: SystemTime,
    },
}

impl StopReason {
    /// Why the run stopped, in plain words for the admin.
    pub fn message(&self) -> String {
        match self {
            StopReason::Cancelled => "the run was cancelled.".to_string(),
            StopReason::DeletionNotEnabled(how)
            | StopReason::Unauthorized(how)
            | StopReason::JournalFailed(how) => how.clone(),
            StopReason::SiteDown { since } => site_down_words(*since),
        }
    }

    /// Why the users the run did not reach were left alone, for their report rows.
    /// `cancelled_by` says who cancelled and when, if that is on record.
    fn not_attempted_message(&self, cancelled_by: Option<&str>) -> String {
        match self {
            StopReason::Cancelled => not_attempted_cancelled(cancelled_by),
            other => other.not_attempted_reason().to_string(),
        }
    }

    fn not_attempted_reason(&self) -> &'static str {
        match self {
            StopReason::Cancelled => "Not attempted: the run was cancelled.",
            StopReason::DeletionNotEnabled(_) => {
                "Not attempted: the run stopped because SCIM user deletion does not seem to be \
                 enabled for this site."
            }
            StopReason::Unauthorized(_) => {
                "Not attempted: the run stopped because the site refused the SCIM token."
            }
            StopReason::JournalFailed(_) => {
                "Not attempted: the run stopped because Offboard could not record its progress."
            }
            StopReason::SiteDown { .. } => {
                "Not attempted: the run stopped because your site stopped answering."
            }
        }
    }
}

/// The report row of a user a cancelled run did not reach: who cancelled it and when, when
/// that is on record ("Not attempted: Priya cancelled the run at 12:17 UTC.").
pub fn not_attempted_cancelled(cancelled_by: Option<&str>) -> String {
    match cancelled_by.map(str::trim).filter(|w| !w.is_empty()) {
        Some(words) => format!("Not attempted: {}.", words.trim_end_matches('.')),
        None => "Not attempted: the run was cancelled.".to_string(),
    }
}

/// Everything a run did, for the report and the benchmark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSummary {
    /// One result per target, in target order.
    pub results: Vec<ItemResult>,
    pub stopped: Option<StopReason>,
    /// Most requests that were in flight at the same moment.
    pub peak_concurrency: usize,
    /// Requests sent (GET, DELETE, PATCH), retries included.
    pub requests: u64,
    /// Replies that asked us to slow down.
    pub throttled: u64,
}

/// What to tell the admin when SCIM deletion is not enabled.
pub const HOW_TO_ENABLE_DELETION: &str = "The site answers \"not found\" when asked to delete \
users who still exist: SCIM user deletion is not enabled for this site. On Stack Internal it is \
a separate switch from SCIM itself: ask Stack support to enable SCIM user deletion for your site \
(or turn it on in the site's admin settings for SCIM, if your site shows that option), then \
start a new run for the users this run did not delete.";

const NOT_PROMOTABLE: &str = "The site accepted the demotion to Registered but the user's role \
did not change: Stack ignores role changes through SCIM unless the admin setting \"Allow \
Moderator/Admin Promotion via a userType property\" is turned on. Turn it on (or demote the user \
by hand), then run again.";

/// Runs `opts.action` on every target and returns one result per target. Nothing is sent for
/// an account that is not in `targets`; an account listed twice is handled once.
pub async fn run(
    provider: Arc<dyn ScimProvider>,
    targets: Vec<RunTarget>,
    opts: RunOptions,
    journal: Arc<dyn RunJournal>,
    control: RunControl,
) -> RunSummary {
    let workers = opts.concurrency.max(1);
    let run = Run {
        provider,
        journal,
        pace: Pace::new(workers, opts.max_backoff),
        opts,
        results: Mutex::new(vec![None; targets.len()]),
        queue: Mutex::new(VecDeque::new()),
        stop: Mutex::new(None),
        site_down: Notify::new(),
        silence: Mutex::new(Silence::default()),
        not_enabled_streak: Mutex::new(0),
        targets,
    };

    let mut seen = HashSet::new();
    for (index, target) in run.targets.iter().enumerate() {
        let refusal = if !is_plain_account_id(&target.account_id) {
            Some("Not attempted: this is not a valid account ID.")
        } else if !seen.insert(target.account_id.as_str()) {
            Some("Not attempted: this account is listed twice; it is handled once, in its first row.")
        } else {
            None
        };
        match refusal {
            Some(message) => {
                run.record(index, not_attempted(target, message)).await;
            }
            None => lock(&run.queue).push_back(index),
        }
    }

    let worker_runs = (0..workers).map(|_| run.worker(control.clone()));
    futures::future::join_all(worker_runs).await;

    let stopped = lock(&run.stop).clone();
    let left: Vec<usize> = lock(&run.queue).drain(..).collect();
    let cancelled_by = match stopped {
        Some(StopReason::Cancelled) if !left.is_empty() => run.journal.cancelled_by().await,
        _ => None,
    };
    let message = stopped
        .as_ref()
        .map(|s| s.not_attempted_message(cancelled_by.as_deref()))
        .unwrap_or_else(|| "Not attempted.".to_string());
    // After an outage the users left (never reached, or given up on because the site did not
    // answer) get no result in the journal: the run is paused, and a resume takes them up.
    let keep_unrecorded = matches!(stopped, Some(StopReason::SiteDown { .. }));
    for index in left {
        let result = not_attempted(&run.targets[index], &message);
        if keep_unrecorded {
            lock(&run.results)[index] = Some(result);
        } else {
            run.record(index, result).await;
        }
    }

    let pace = lock(&run.pace.state).clone();
    let results = run
        .results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .zip(run.targets.iter())
        .map(|(result, target)| {
            // Every index is recorded above; a hole would be a bug, and is reported, not hidden.
            result.unwrap_or_else(|| not_attempted(target, "Not attempted."))
        })
        .collect();
    let stopped = run.stop.into_inner().unwrap_or_else(|e| e.into_inner());
    RunSummary {
        results,
        stopped,
        peak_concurrency: pace.peak,
        requests: pace.requests,
        throttled: pace.throttled,
    }
}

/// An account ID that is safe to put in a URL path: no empty value can turn
/// `DELETE .../users/{id}` into a request on the whole collection.
fn is_plain_account_id(id: &str) -> bool {
    !id.trim().is_empty()
        && id.trim() == id
        && !id
            .chars()
            .any(|c| matches!(c, '/' | '?' | '#' | '%' | '\\') || c.is_control())
        && id != "."
        && id != ".."
}

fn not_attempted(target: &RunTarget, message: &str) -> ItemResult {
    ItemResult {
        account_id: target.account_id.clone(),
        email: target.email.clone(),
        outcome: ItemOutcome::NotAttempted,
        message: message.to_string(),
        attempts: 0,
        elapsed_ms: 0,
        demoted: false,
    }
}

/// The shared state of one run.
struct Run {
    provider: Arc<dyn ScimProvider>,
    journal: Arc<dyn RunJournal>,
    opts: RunOptions,
    pace: Pace,
    targets: Vec<RunTarget>,
    results: Mutex<Vec<Option<ItemResult>>>,
    queue: Mutex<VecDeque<usize>>,
    stop: Mutex<Option<StopReason>>,
    /// Woken when the site is found down, so workers waiting to retry give up at once.
    site_down: Notify,
    /// The run's current streak of requests without a usable answer.
    silence: Mutex<Silence>,
    /// Users answering "not found" while still present, since the last 204.
    not_enabled_streak: Mutex<usize>,
}

impl Run {
    async fn worker(&self, mut control: RunControl) {
        loop {
            if control.until_not_paused().await == RunState::Cancelled {
                if !lock(&self.queue).is_empty() {
                    self.stop_with(StopReason::Cancelled);
                }
                return;
            }
            if lock(&self.stop).is_some() {
                return;
            }
            let Some(index) = lock(&self.queue).pop_front() else {
                return;
            };
            let target = &self.targets[index];
            let started = Instant::now();
            let mut item = Item {
                run: self,
                target,
                control: &mut control,
                attempts: 0,
                demoted: false,
                unanswered: false,
                ever_unanswered: false,
            };
            let finish = match self.opts.action {
                Action::Delete => item.delete().await,
                Action::Deactivate | Action::DeactivateThenDelete => item.deactivate().await,
            };
            let result = ItemResult {
                account_id: target.account_id.clone(),
                email: target.email.clone(),
                outcome: finish.outcome,
                message: finish.message,
                attempts: item.attempts,
                elapsed_ms: started.elapsed().as_millis().try_into().unwrap_or(u64::MAX),
                demoted: item.demoted,
            };
            if let Some(reason) = finish.stop {
                self.stop_with(reason);
            }
            if finish.unrecorded {
                // Left for the resume, with the users never reached.
                lock(&self.queue).push_front(index);
                continue;
            }
            self.record(index, result).await;
        }
    }

    /// The first reason to stop wins; later ones are consequences of it.
    fn stop_with(&self, reason: StopReason) {
        let mut stop = lock(&self.stop);
        if stop.is_none() {
            *stop = Some(reason);
        }
    }

    async fn record(&self, index: usize, result: ItemResult) {
        crate::metrics::user_processed(result.outcome);
        if let Err(e) = self.journal.finished(&result).await {
            self.stop_with(StopReason::JournalFailed(format!(
                "Offboard could not record the result for account {}: {e}. The run stopped so \
                 that nothing happens that is not on record.",
                result.account_id
            )));
        }
        lock(&self.results)[index] = Some(result);
    }

    /// When the site stopped answering, if it did (the run stops for it).
    fn site_down_since(&self) -> Option<SystemTime> {
        match *lock(&self.stop) {
            Some(StopReason::SiteDown { since }) => Some(since),
            _ => None,
        }
    }

    /// A user ran out of tries without an answer: true (and the run stops) if that is because
    /// the whole site stopped answering.
    fn site_went_down(&self) -> bool {
        if self.site_down_since().is_some() {
            return true;
        }
        let silence = lock(&self.silence).clone();
        if !site_stopped_answering(&silence, self.opts.site_down_after) {
            return false;
        }
        let since = silence.since.unwrap_or_else(SystemTime::now);
        self.stop_with(StopReason::SiteDown { since });
        self.site_down.notify_waiters();
        // Another stop may have come first; then that one stands.
        self.site_down_since().is_some()
    }

    fn note_deleted(&self) {
        *lock(&self.not_enabled_streak) = 0;
    }

    /// True when enough users in a row say deletion is not enabled to stop the run.
    fn note_not_enabled(&self) -> bool {
        let mut streak = lock(&self.not_enabled_streak);
        *streak += 1;
        *streak >= self.opts.not_enabled_threshold.max(1)
    }
}

#[cfg(test)]
mod tests;
