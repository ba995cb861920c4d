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

use crate::engine::classify::{
    classify_delete, classify_get, classify_patch, plain_message, DeleteReply, GetReply,
    PatchReply,
};
use crate::engine::{RunTarget, TargetState};
use crate::scim::{ScimProvider, ScimReply, TransportError};
use app::model::{Action, ItemOutcome, ItemResult, SiteUser};
use async_trait::async_trait;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
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
        }
    }
}

/// Where the run records its progress, so a crash or restart never loses track of a request.
#[async_trait]
pub trait RunJournal: Send + Sync {
    /// Before a mutating request (DELETE/PATCH) for this user is sent; durable when it returns.
    /// An Err stops the run (nothing is sent).
    async fn sending(&self, account_id: &str) -> Result<(), String>;
    /// Exactly once per target, the moment its outcome is known. An Err stops the run, so
    /// nothing happens that is not on record.
    async fn finished(&self, result: &ItemResult) -> Result<(), String>;
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
pub struct RunControl(watch::Receiver<RunState>);

impl RunControl {
    pub fn new(receiver: watch::Receiver<RunState>) -> RunControl {
        RunControl(receiver)
    }

    /// A control and the sender that drives it, starting in `Running`.
    pub fn channel() -> (watch::Sender<RunState>, RunControl) {
        let (sender, receiver) = watch::channel(RunState::Running);
        (sender, RunControl(receiver))
    }

    /// For runs nobody can pause (the command line).
    pub fn always_running() -> RunControl {
        RunControl::channel().1
    }

    /// Waits while paused; returns `Running` or `Cancelled`. A pause nobody can lift any more
    /// (the sender is gone) counts as a cancel.
    async fn until_not_paused(&mut self) -> RunState {
        match self.0.wait_for(|s| *s != RunState::Paused).await {
            Ok(state) => *state,
            Err(_) => RunState::Cancelled,
        }
    }

    /// Resolves when the run is cancelled; never, if it cannot be any more.
    async fn cancelled(&mut self) {
        if self.0.wait_for(|s| *s == RunState::Cancelled).await.is_err() {
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
}

impl StopReason {
    /// Why the users the run did not reach were left alone, for their report rows.
    fn not_attempted_message(&self) -> &'static str {
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
        }
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
resume the run.";

const NOT_PROMOTABLE: &str = "The site accepted the demotion to Registered but the user's role \
did not change: Stack ignores role changes through SCIM unless the admin setting \"Allow \
Moderator/Admin Promotion via a userType property\" is turned on. Turn it on (or demote the user \
by hand), then run again.";

/// SCIM PatchOp that demotes a Moderator/Admin to an ordinary user.
pub fn demote_payload() -> serde_json::Value {
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "userType", "value": "Registered"}]
    })
}

/// SCIM PatchOp that deactivates a user (reversible).
pub fn deactivate_payload() -> serde_json::Value {
    serde_json::json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": false}]
    })
}

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
    let message = stopped
        .as_ref()
        .map(StopReason::not_attempted_message)
        .unwrap_or("Not attempted.");
    for index in left {
        let result = not_attempted(&run.targets[index], message);
        run.record(index, result).await;
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

/// Locks a mutex; a panic elsewhere must not take the run's bookkeeping down with it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Exponential backoff with jitter: `base * 2^(round-1)`, capped, then a random point in its
/// upper half so workers that failed together do not retry together.
fn backoff(round: u32, base: Duration, cap: Duration) -> Duration {
    let factor = 2u32.saturating_pow(round.saturating_sub(1).min(20));
    let full = base.saturating_mul(factor).min(cap);
    let half = full / 2;
    let spread = (full - half).as_millis() as u64;
    let extra = if spread == 0 {
        0
    } else {
        rand::Rng::gen_range(&mut rand::thread_rng(), 0..=spread)
    };
    half + Duration::from_millis(extra)
}

/// The run's shared pace: how many requests may be in flight, and until when everybody waits
/// because the site asked us to slow down.
struct Pace {
    state: Mutex<PaceState>,
    changed: Notify,
}

#[derive(Clone, Debug)]
struct PaceState {
    limit: usize,
    max: usize,
    max_backoff: Duration,
    in_flight: usize,
    peak: usize,
    resume_at: Option<Instant>,
    calm_replies: u32,
    throttle_round: u32,
    requests: u64,
    throttled: u64,
}

/// One request in flight; dropping it frees the slot.
struct InFlight<'p>(&'p Pace);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).in_flight -= 1;
        self.0.changed.notify_waiters();
    }
}

impl Pace {
    fn new(max: usize, max_backoff: Duration) -> Pace {
        Pace {
            state: Mutex::new(PaceState {
                limit: max,
                max,
                max_backoff,
                in_flight: 0,
                peak: 0,
                resume_at: None,
                calm_replies: 0,
                throttle_round: 0,
                requests: 0,
                throttled: 0,
            }),
            changed: Notify::new(),
        }
    }

    /// Waits for the throttling gate to open and a free slot; `None` if the run is cancelled
    /// meanwhile.
    async fn acquire(&self, control: &mut RunControl) -> Option<InFlight<'_>> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let gate = {
                let mut s = lock(&self.state);
                match s.resume_at {
                    Some(at) if at > Instant::now() => Some(at),
                    _ if s.in_flight < s.limit => {
                        s.in_flight += 1;
                        s.peak = s.peak.max(s.in_flight);
                        s.requests += 1;
                        return Some(InFlight(self));
                    }
                    _ => None,
                }
            };
            let gate_opens = async move {
                match gate {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut notified => {}
                _ = gate_opens => {}
                _ = control.cancelled() => return None,
            }
        }
    }

    /// The site asked us to slow down: close the gate for everybody and lower the limit. The
    /// limit is lowered once per throttling episode: requests already in flight when the gate
    /// closed will come back throttled too, and must not halve it again.
    fn throttled(&self, retry_after: Option<Duration>) {
        let mut s = lock(&self.state);
        let now = Instant::now();
        s.throttled += 1;
        s.calm_replies = 0;
        let gate_open = !matches!(s.resume_at, Some(at) if at > now);
        if gate_open {
            s.throttle_round = s.throttle_round.saturating_add(1);
            s.limit = (s.limit / 2).max(1);
        }
        let wait =
            retry_after.unwrap_or_else(|| backoff(s.throttle_round, THROTTLE_BASE, s.max_backoff));
        let until = now + wait;
        s.resume_at = Some(s.resume_at.map_or(until, |at| at.max(until)));
    }

    /// A reply that was not throttled: after enough of them, allow one more request in flight.
    fn calm(&self) {
        let mut s = lock(&self.state);
        s.throttle_round = 0;
        s.calm_replies += 1;
        if s.calm_replies >= RECOVER_AFTER && s.limit < s.max {
            s.limit += 1;
            s.calm_replies = 0;
            drop(s);
            self.changed.notify_waiters();
        }
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
                Action::Deactivate => item.deactivate().await,
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
        if let Err(e) = self.journal.finished(&result).await {
            self.stop_with(StopReason::JournalFailed(format!(
                "Offboard could not record the result for account {}: {e}. The run stopped so \
                 that nothing happens that is not on record.",
                result.account_id
            )));
        }
        lock(&self.results)[index] = Some(result);
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

/// How one target ended, and whether the whole run must stop because of it.
struct Finish {
    outcome: ItemOutcome,
    message: String,
    stop: Option<StopReason>,
}

impl Finish {
    fn new(outcome: ItemOutcome, message: impl Into<String>) -> Finish {
        Finish {
            outcome,
            message: message.into(),
            stop: None,
        }
    }

    fn stopping(mut self, reason: StopReason) -> Finish {
        self.stop = Some(reason);
        self
    }
}

/// A step of an item's work: `Err` carries the item's final result early.
type Step<T> = Result<T, Finish>;

#[derive(Clone, Copy)]
enum Op<'a> {
    Get,
    Delete,
    Patch(&'a serde_json::Value),
}

impl Op<'_> {
    fn mutates(self) -> bool {
        !matches!(self, Op::Get)
    }
}

/// A reply sorted by what the retry loop must do with it.
enum Answer<T> {
    Final(T),
    Throttled(Option<Duration>),
    /// Worth another try. `unknown`: the request may have been carried out anyway.
    Retry {
        problem: String,
        unknown: bool,
    },
    Unauthorized(u16),
}

fn transport_answer<T>(error: TransportError) -> Answer<T> {
    // Without a connection (DNS, refused, TLS handshake) the request never reached the site.
    let unknown = matches!(error, TransportError::Timeout(_) | TransportError::Other(_));
    Answer::Retry {
        problem: error.to_string(),
        unknown,
    }
}

fn transient_problem(reply: &ScimReply) -> String {
    format!("the site answered: {}", plain_message(reply))
}

fn delete_answer(reply: Result<ScimReply, TransportError>) -> Answer<DeleteReply> {
    let reply = match reply {
        Ok(reply) => reply,
        Err(e) => return transport_answer(e),
    };
    match classify_delete(&reply, SystemTime::now()) {
        DeleteReply::Throttled { retry_after } => Answer::Throttled(retry_after),
        // 408 and 503 say the request was not processed; a 502/504 comes from a proxy that may
        // have passed the DELETE on before giving up.
        DeleteReply::Transient { status } => Answer::Retry {
            problem: transient_problem(&reply),
            unknown: !matches!(status, 408 | 503),
        },
        DeleteReply::Unauthorized => Answer::Unauthorized(reply.status),
        other => Answer::Final(other),
    }
}

fn patch_answer(reply: Result<ScimReply, TransportError>) -> Answer<PatchReply> {
    let reply = match reply {
        Ok(reply) => reply,
        Err(e) => return transport_answer(e),
    };
    match classify_patch(&reply, SystemTime::now()) {
        PatchReply::Throttled { retry_after } => Answer::Throttled(retry_after),
        PatchReply::Transient { .. } => Answer::Retry {
            problem: transient_problem(&reply),
            unknown: true,
        },
        PatchReply::Unauthorized => Answer::Unauthorized(reply.status),
        other => Answer::Final(other),
    }
}

fn get_answer(reply: Result<ScimReply, TransportError>) -> Answer<GetReply> {
    let reply = match reply {
        Ok(reply) => reply,
        Err(e) => return transport_answer(e),
    };
    match classify_get(&reply, SystemTime::now()) {
        GetReply::Throttled { retry_after } => Answer::Throttled(retry_after),
        GetReply::Transient { .. } => Answer::Retry {
            problem: transient_problem(&reply),
            unknown: false,
        },
        GetReply::Unauthorized => Answer::Unauthorized(reply.status),
        other => Answer::Final(other),
    }
}

fn unauthorized(status: u16) -> Finish {
    let why = format!(
        "The site refused Offboard's SCIM token (HTTP {status}): the token is wrong, expired or \
         was revoked, or SCIM was turned off for the site. Check the token on the Connect page, \
         then resume the run."
    );
    Finish::new(ItemOutcome::Failed, why.clone()).stopping(StopReason::Unauthorized(why))
}

/// Tries spent on one request.
#[derive(Default)]
struct Budget {
    tries: u32,
    throttles: u32,
    problem: String,
}

impl Budget {
    /// Gives up once `max_attempts` tries went wrong, saying what went wrong last.
    fn check(&self, max_attempts: u32) -> Step<()> {
        if self.tries >= max_attempts.max(1) {
            return Err(Finish::new(
                ItemOutcome::Failed,
                format!("No usable answer after {} tries: {}.", self.tries, self.problem),
            ));
        }
        Ok(())
    }
}

/// The work on one target.
struct Item<'r> {
    run: &'r Run,
    target: &'r RunTarget,
    control: &'r mut RunControl,
    /// Requests sent for this user.
    attempts: u32,
    demoted: bool,
    /// A DELETE/PATCH went out and no definitive answer has come back yet.
    unanswered: bool,
    /// Some DELETE for this user went unanswered at some point.
    ever_unanswered: bool,
}

impl Item<'_> {
    fn id(&self) -> &str {
        &self.target.account_id
    }

    /// Ends the item without finishing its work (cancel, journal failure). If a request may
    /// have gone through, the admin is told to check rather than told "not attempted".
    fn abandon(&self, why: &str, reason: StopReason) -> Finish {
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

    fn cancelled(&self) -> Finish {
        self.abandon("The run was cancelled", StopReason::Cancelled)
    }

    /// Waits, unless the run is cancelled meanwhile.
    async fn wait(&mut self, duration: Duration) -> Step<()> {
        tokio::select! {
            _ = tokio::time::sleep(duration) => Ok(()),
            _ = self.control.cancelled() => Err(self.cancelled()),
        }
    }

    /// Sends one request once: waits for the gate and a slot, journals mutating requests.
    async fn send(&mut self, op: Op<'_>) -> Step<Result<ScimReply, TransportError>> {
        let run = self.run;
        let Some(slot) = run.pace.acquire(self.control).await else {
            return Err(self.cancelled());
        };
        if op.mutates() {
            if let Err(e) = run.journal.sending(self.id()).await {
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
        self.attempts += 1;
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
    async fn handle<T>(&mut self, answer: Answer<T>, budget: &mut Budget) -> Step<Option<T>> {
        match answer {
            Answer::Final(answer) => {
                self.run.pace.calm();
                Ok(Some(answer))
            }
            Answer::Throttled(retry_after) => {
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
            Answer::Unauthorized(status) => Err(unauthorized(status)),
            Answer::Retry { problem, .. } => {
                budget.tries += 1;
                budget.problem = problem;
                let delay = backoff(budget.tries, TRANSIENT_BASE, self.run.opts.max_backoff);
                self.wait(delay).await?;
                Ok(None)
            }
        }
    }

    /// Sends a GET or PATCH until it gets an answer worth acting on. Both are safe to repeat
    /// (PATCH `replace` is idempotent), so no check is needed between tries.
    async fn call<T>(
        &mut self,
        op: Op<'_>,
        sort: fn(Result<ScimReply, TransportError>) -> Answer<T>,
    ) -> Step<T> {
        let mut budget = Budget::default();
        loop {
            let reply = self.send(op).await?;
            let answer = sort(reply);
            self.unanswered = op.mutates() && matches!(answer, Answer::Retry { unknown: true, .. });
            if let Some(answer) = self.handle(answer, &mut budget).await? {
                return Ok(answer);
            }
            budget.check(self.run.opts.max_attempts)?;
        }
    }

    /// Sends the DELETE until it gets an answer worth acting on. A DELETE that may have been
    /// carried out without an answer is settled with a GET before it is sent again.
    async fn delete_answered(&mut self) -> Step<DeleteReply> {
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
            budget.check(self.run.opts.max_attempts)?;
        }
    }

    /// `Some(user)` if the account exists, `None` if it is gone.
    async fn get_user(&mut self) -> Step<Option<SiteUser>> {
        match self.call(Op::Get, get_answer).await? {
            GetReply::Present(user) if user.id == self.target.account_id => Ok(Some(user)),
            GetReply::Present(user) => Err(Finish::new(
                ItemOutcome::Failed,
                format!(
                    "Asked for account {}, the site returned account {}: nothing was done.",
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

    async fn delete(&mut self) -> Finish {
        match self.delete_steps().await {
            Ok(finish) | Err(finish) => finish,
        }
    }

    async fn delete_steps(&mut self) -> Step<Finish> {
        if self.target.state == TargetState::Sending && self.get_user().await?.is_none() {
            return Ok(Finish::new(
                ItemOutcome::Deleted,
                "Deleted: confirmed gone. The previous run was interrupted right after sending \
                 the request for this user, and a check found the user gone.",
            ));
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
    async fn after_not_found(&mut self) -> Step<Finish> {
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
    async fn demote(&mut self) -> Step<()> {
        let payload = demote_payload();
        match self.call(Op::Patch(&payload), patch_answer).await? {
            PatchReply::Applied => {}
            PatchReply::NotFound => {
                return Err(Finish::new(
                    ItemOutcome::Privileged,
                    "Could not demote this Moderator/Admin to Registered: the site answered \
                     \"not found\".",
                ))
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

    async fn deactivate(&mut self) -> Finish {
        match self.deactivate_steps().await {
            Ok(finish) | Err(finish) => finish,
        }
    }

    async fn deactivate_steps(&mut self) -> Step<Finish> {
        if self.target.state == TargetState::Sending {
            match self.get_user().await? {
                // Deactivating never deletes: someone else removed this user.
                None => return Ok(gone_before_deactivation()),
                Some(user) if !user.active => {
                    return Ok(Finish::new(
                        ItemOutcome::Deactivated,
                        "Deactivated: confirmed after the previous run was interrupted right \
                         after sending the request.",
                    ))
                }
                Some(_) => {}
            }
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

fn gone_before_deactivation() -> Finish {
    Finish::new(
        ItemOutcome::AlreadyGone,
        "Already gone: the site says this user no longer exists.",
    )
}

/// The retry loop hands back only final answers; this covers the rest without a panic.
fn unexpected(reply: &impl std::fmt::Debug) -> Finish {
    Finish::new(
        ItemOutcome::Failed,
        format!("Offboard could not make sense of the site's answer ({reply:?}); nothing more was sent."),
    )
}
