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

use crate::engine::backoff::backoff;
use crate::engine::classify::{
    classify_delete, classify_get, classify_patch, plain_message, DeleteReply, GetReply, PatchReply,
};
use crate::engine::resolve::{Policy, TargetCheck};
use crate::engine::{RunTarget, TargetState};
use crate::scim::{ScimProvider, ScimReply, TransportError};
use app::model::{Action, ItemOutcome, ItemResult, SiteUser};
use async_trait::async_trait;
use std::collections::{HashMap, HashSet, VecDeque};
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
}

impl StopReason {
    /// Why the run stopped, in plain words for the admin.
    pub fn message(&self) -> String {
        match self {
            StopReason::Cancelled => "the run was cancelled.".to_string(),
            StopReason::DeletionNotEnabled(how)
            | StopReason::Unauthorized(how)
            | StopReason::JournalFailed(how) => how.clone(),
        }
    }

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
start a new run for the users this run did not delete.";

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

    /// A request is going out now (counted here, after the journal said yes).
    fn sent(&self) {
        lock(&self.state).requests += 1;
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
                format!(
                    "No usable answer after {} tries: {}.",
                    self.tries, self.problem
                ),
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
            if op.mutates() {
                self.unanswered = matches!(answer, Answer::Retry { unknown: true, .. });
            }
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

    async fn delete(&mut self) -> Finish {
        match self.delete_steps().await {
            Ok(finish) | Err(finish) => finish,
        }
    }

    async fn delete_steps(&mut self) -> Step<Finish> {
        match self.look_before_acting().await? {
            Looked::Nothing | Looked::Present(_) => {}
            Looked::Settled(finish) => return Ok(finish),
            Looked::Gone if self.target.state == TargetState::Sending => {
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

    async fn deactivate(&mut self) -> Finish {
        match self.deactivate_steps().await {
            Ok(finish) | Err(finish) => finish,
        }
    }

    async fn deactivate_steps(&mut self) -> Step<Finish> {
        match self.look_before_acting().await? {
            Looked::Nothing => {}
            Looked::Settled(finish) => return Ok(finish),
            // Deactivating never deletes: someone else removed this user.
            Looked::Gone => return Ok(gone_before_deactivation()),
            Looked::Present(user) if !user.active && self.target.state == TargetState::Sending => {
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
enum Looked {
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
    async fn look_before_acting(&mut self) -> Step<Looked> {
        let rereads = self.control.rereads();
        if self.target.state != TargetState::Sending && rereads.is_none() {
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

fn gone_before_acting() -> Finish {
    Finish::new(
        ItemOutcome::AlreadyGone,
        "Already gone: the user was no longer on the site when the resumed run re-read it.",
    )
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    // ---------------------------------------------------------------------------------------
    // A FAKE Stack-shaped SCIM site, in memory. It applies the rules scim-notes.md describes
    // (system account, demote rule, community creators, deletion switch) plus scripted faults a
    // real server cannot produce on demand, and logs every request it receives.
    // ---------------------------------------------------------------------------------------

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    enum Method {
        Get,
        Delete,
        Patch,
    }

    #[derive(Clone, Debug)]
    enum Fault {
        /// Answer with this status, `Retry-After` and Stack `ErrorMessage`; nothing is applied.
        Reply(u16, Option<&'static str>, &'static str),
        /// Carry the request out, then never answer (the client times out).
        TimeoutAfterApplying,
        /// Lose the request: nothing happens, the client times out.
        TimeoutBeforeApplying,
        /// The user disappears (as if an earlier request landed late) and the reply is 404.
        VanishWith404,
    }

    #[derive(Clone, Debug)]
    struct FakeUser {
        active: bool,
        user_type: Option<String>,
    }

    #[derive(Clone, Debug)]
    struct Request {
        at: Instant,
        method: Method,
        id: String,
        status: Option<u16>,
    }

    #[derive(Default)]
    struct SiteState {
        users: BTreeMap<String, FakeUser>,
        deletion_disabled: bool,
        promotion_allowed: bool,
        system_accounts: HashSet<String>,
        community_creators: HashSet<String>,
        faults: HashMap<(Method, String), VecDeque<Fault>>,
        /// Requests per second before 429 + `Retry-After: 1`.
        rate_limit: Option<u32>,
        window: Option<(Instant, u32)>,
        /// After this many requests every reply is 401.
        token_revoked_after: Option<usize>,
        log: Vec<Request>,
        deleted: HashSet<String>,
        /// DELETEs that reached a user this site had already deleted.
        second_deletes: usize,
        patches: Vec<(String, serde_json::Value)>,
        in_flight: usize,
        peak: usize,
    }

    struct FakeSite {
        state: Mutex<SiteState>,
        latency: Duration,
    }

    impl FakeSite {
        fn new(ordinary: usize) -> FakeSite {
            let site = FakeSite {
                state: Mutex::new(SiteState::default()),
                latency: Duration::from_millis(20),
            };
            for n in 1..=ordinary {
                site.add(&format!("u{n}"), None);
            }
            site
        }

        fn add(&self, id: &str, user_type: Option<&str>) {
            lock(&self.state).users.insert(
                id.to_string(),
                FakeUser {
                    active: true,
                    user_type: user_type.map(str::to_string),
                },
            );
        }

        fn fault(&self, method: Method, id: &str, faults: Vec<Fault>) {
            lock(&self.state)
                .faults
                .entry((method, id.to_string()))
                .or_default()
                .extend(faults);
        }

        fn with<R>(&self, f: impl FnOnce(&mut SiteState) -> R) -> R {
            f(&mut lock(&self.state))
        }

        fn exists(&self, id: &str) -> bool {
            self.with(|s| s.users.contains_key(id))
        }

        fn requests_for(&self, id: &str) -> Vec<Method> {
            self.with(|s| {
                s.log
                    .iter()
                    .filter(|r| r.id == id)
                    .map(|r| r.method)
                    .collect()
            })
        }

        fn user_json(id: &str, user: &FakeUser) -> String {
            let mut v = serde_json::json!({
                "id": id,
                "userName": id,
                "emails": [{"value": format!("{id}@example.com"), "primary": true}],
                "active": user.active,
            });
            if let Some(t) = &user.user_type {
                v["userType"] = serde_json::json!(t);
            }
            v.to_string()
        }

        /// What the site does with one request, decided the moment it arrives; the reply's
        /// status is logged with the request.
        fn decide(
            &self,
            method: Method,
            id: &str,
            patch: Option<&serde_json::Value>,
        ) -> (Result<ScimReply, TransportError>, bool) {
            let mut s = lock(&self.state);
            let answer = FakeSite::apply(&mut s, method, id, patch);
            if let (Ok(r), Some(last)) = (&answer.0, s.log.last_mut()) {
                last.status = Some(r.status);
            }
            answer
        }

        fn apply(
            s: &mut SiteState,
            method: Method,
            id: &str,
            patch: Option<&serde_json::Value>,
        ) -> (Result<ScimReply, TransportError>, bool) {
            let now = Instant::now();
            s.log.push(Request {
                at: now,
                method,
                id: id.to_string(),
                status: None,
            });
            let reply = |status: u16, retry: Option<&str>, body: String| {
                Ok(ScimReply {
                    status,
                    retry_after: retry.map(str::to_string),
                    content_type: Some("application/json".into()),
                    body,
                })
            };
            let error = |m: &str| serde_json::json!({ "ErrorMessage": m }).to_string();
            if matches!(s.token_revoked_after, Some(n) if s.log.len() > n) {
                return (reply(401, None, String::new()), false);
            }
            if let Some(limit) = s.rate_limit {
                let (start, count) = match s.window {
                    Some((start, count)) if now < start + Duration::from_secs(1) => (start, count),
                    _ => (now, 0),
                };
                if count >= limit {
                    s.window = Some((start, count));
                    return (reply(429, Some("1"), String::new()), false);
                }
                s.window = Some((start, count + 1));
            }
            let mut apply_then_time_out = false;
            if let Some(fault) = s
                .faults
                .get_mut(&(method, id.to_string()))
                .and_then(VecDeque::pop_front)
            {
                match fault {
                    Fault::Reply(status, retry, message) => {
                        let body = if message.is_empty() {
                            String::new()
                        } else {
                            error(message)
                        };
                        return (reply(status, retry, body), false);
                    }
                    Fault::TimeoutBeforeApplying => {
                        return (Err(TransportError::Timeout(30)), true)
                    }
                    Fault::TimeoutAfterApplying => apply_then_time_out = true,
                    Fault::VanishWith404 => {
                        s.users.remove(id);
                        return (reply(404, None, String::new()), false);
                    }
                }
            }
            let answer = match method {
                Method::Get => match s.users.get(id) {
                    Some(user) => reply(200, None, FakeSite::user_json(id, user)),
                    None => reply(404, None, String::new()),
                },
                Method::Delete => {
                    if s.deleted.contains(id) {
                        s.second_deletes += 1;
                    }
                    match s.users.get(id) {
                        None => reply(404, None, String::new()),
                        Some(_) if s.deletion_disabled => reply(404, None, String::new()),
                        Some(_) if s.system_accounts.contains(id) => reply(
                            400,
                            None,
                            error("You cannot delete or destroy System Accounts."),
                        ),
                        Some(_) if s.community_creators.contains(id) => reply(
                            500,
                            None,
                            error("The DELETE statement conflicted with the REFERENCE constraint \"FK_CommunityMemberships_CreationUser\"."),
                        ),
                        Some(u) if u.user_type.is_some() => reply(
                            500,
                            None,
                            error("User is a moderator or admin. Adjust role to User first."),
                        ),
                        Some(_) => {
                            s.users.remove(id);
                            s.deleted.insert(id.to_string());
                            reply(204, None, String::new())
                        }
                    }
                }
                Method::Patch => {
                    let patch = patch.cloned().unwrap_or_default();
                    s.patches.push((id.to_string(), patch.clone()));
                    let promotion_allowed = s.promotion_allowed;
                    match s.users.get_mut(id) {
                        None => reply(404, None, String::new()),
                        Some(user) => {
                            for op in patch["Operations"].as_array().into_iter().flatten() {
                                match (op["path"].as_str(), &op["value"]) {
                                    (Some("active"), serde_json::Value::Bool(b)) => {
                                        user.active = *b
                                    }
                                    (Some("userType"), v) if promotion_allowed => {
                                        user.user_type = v
                                            .as_str()
                                            .filter(|t| *t != "Registered")
                                            .map(str::to_string)
                                    }
                                    // Stack ignores what it does not allow, with HTTP 200.
                                    _ => {}
                                }
                            }
                            let body = FakeSite::user_json(id, user);
                            reply(200, None, body)
                        }
                    }
                }
            };
            if apply_then_time_out {
                return (Err(TransportError::Timeout(30)), true);
            }
            (answer, false)
        }

        async fn handle(
            &self,
            method: Method,
            id: &str,
            patch: Option<&serde_json::Value>,
        ) -> Result<ScimReply, TransportError> {
            self.with(|s| {
                s.in_flight += 1;
                s.peak = s.peak.max(s.in_flight);
            });
            let (answer, times_out) = self.decide(method, id, patch);
            let delay = if times_out {
                Duration::from_secs(30)
            } else {
                self.latency
            };
            tokio::time::sleep(delay).await;
            self.with(|s| s.in_flight -= 1);
            answer
        }
    }

    #[async_trait]
    impl ScimProvider for FakeSite {
        async fn list_users(&self, _: usize, _: usize) -> Result<ScimReply, TransportError> {
            Err(TransportError::Other("the runner never lists users".into()))
        }
        async fn get_user(&self, id: &str) -> Result<ScimReply, TransportError> {
            self.handle(Method::Get, id, None).await
        }
        async fn delete_user(&self, id: &str) -> Result<ScimReply, TransportError> {
            self.handle(Method::Delete, id, None).await
        }
        async fn patch_user(
            &self,
            id: &str,
            patch: &serde_json::Value,
        ) -> Result<ScimReply, TransportError> {
            self.handle(Method::Patch, id, Some(patch)).await
        }
    }

    /// A FAKE journal: records what the runner reports and, to check ordering, how many
    /// requests the fake site had received when each `sending` arrived.
    struct FakeJournal {
        site: Arc<FakeSite>,
        sending: Mutex<Vec<(String, usize)>>,
        finished: Mutex<Vec<ItemResult>>,
        fail_sending_for: Option<String>,
        fail_finished: bool,
    }

    impl FakeJournal {
        fn new(site: &Arc<FakeSite>) -> FakeJournal {
            FakeJournal {
                site: site.clone(),
                sending: Mutex::new(Vec::new()),
                finished: Mutex::new(Vec::new()),
                fail_sending_for: None,
                fail_finished: false,
            }
        }
    }

    #[async_trait]
    impl RunJournal for FakeJournal {
        async fn sending(&self, account_id: &str) -> Result<(), String> {
            if self.fail_sending_for.as_deref() == Some(account_id) {
                return Err("disk full".into());
            }
            let seen = self.site.with(|s| s.log.len());
            lock(&self.sending).push((account_id.to_string(), seen));
            Ok(())
        }
        async fn finished(&self, result: &ItemResult) -> Result<(), String> {
            lock(&self.finished).push(result.clone());
            if self.fail_finished {
                return Err("database is locked".into());
            }
            Ok(())
        }
    }

    fn targets(ids: &[&str]) -> Vec<RunTarget> {
        ids.iter()
            .map(|id| RunTarget {
                account_id: id.to_string(),
                email: Some(format!("{id}@example.com")),
                state: TargetState::Pending,
            })
            .collect()
    }

    fn ids(prefix: &str, n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("{prefix}{i}")).collect()
    }

    fn opts() -> RunOptions {
        RunOptions::default()
    }

    async fn go(
        site: &Arc<FakeSite>,
        targets: Vec<RunTarget>,
        opts: RunOptions,
    ) -> (RunSummary, Arc<FakeJournal>) {
        let journal = Arc::new(FakeJournal::new(site));
        let summary = go_with(site, targets, opts, journal.clone()).await;
        (summary, journal)
    }

    async fn go_with(
        site: &Arc<FakeSite>,
        targets: Vec<RunTarget>,
        opts: RunOptions,
        journal: Arc<FakeJournal>,
    ) -> RunSummary {
        let concurrency = opts.concurrency;
        let summary = run(
            site.clone(),
            targets.clone(),
            opts,
            journal.clone(),
            RunControl::always_running(),
        )
        .await;
        check_invariants(site, &journal, &targets, &summary, concurrency);
        summary
    }

    /// What must hold after every run, whatever happened.
    fn check_invariants(
        site: &FakeSite,
        journal: &FakeJournal,
        targets: &[RunTarget],
        summary: &RunSummary,
        concurrency: usize,
    ) {
        // One result per target, in order, each journaled exactly once.
        assert_eq!(summary.results.len(), targets.len());
        for (result, target) in summary.results.iter().zip(targets) {
            assert_eq!(result.account_id, target.account_id);
            assert_eq!(result.email, target.email);
        }
        let finished = lock(&journal.finished).clone();
        assert_eq!(finished.len(), targets.len(), "finished once per target");
        let mut journaled: Vec<_> = finished.iter().map(|r| r.account_id.clone()).collect();
        let mut wanted: Vec<_> = targets.iter().map(|t| t.account_id.clone()).collect();
        journaled.sort();
        wanted.sort();
        assert_eq!(journaled, wanted);
        for result in &summary.results {
            assert!(
                finished.contains(result),
                "journaled result differs: {result:?}"
            );
        }

        let state = lock(&site.state);
        // Nothing sent for anyone else.
        let target_ids: HashSet<&str> = targets.iter().map(|t| t.account_id.as_str()).collect();
        for r in &state.log {
            assert!(
                target_ids.contains(r.id.as_str()),
                "request for non-target {}",
                r.id
            );
        }
        // No second DELETE after the site deleted a user.
        assert_eq!(state.second_deletes, 0, "a user got a second DELETE");
        // Concurrency bound, seen from both sides.
        assert!(
            state.peak <= concurrency.max(1),
            "site saw {} in flight",
            state.peak
        );
        assert!(summary.peak_concurrency <= concurrency.max(1));
        assert_eq!(summary.requests, state.log.len() as u64);
        // `sending` was journaled before every DELETE/PATCH, and not for GETs.
        let sending = lock(&journal.sending).clone();
        let mutations: Vec<(usize, &Request)> = state
            .log
            .iter()
            .enumerate()
            .filter(|(_, r)| r.method != Method::Get)
            .collect();
        assert_eq!(
            sending.len(),
            mutations.len(),
            "one `sending` per DELETE/PATCH"
        );
        for id in &target_ids {
            let journal_marks: Vec<usize> = sending
                .iter()
                .filter(|(i, _)| i == id)
                .map(|(_, n)| *n)
                .collect();
            let sent_at: Vec<usize> = mutations
                .iter()
                .filter(|(_, r)| r.id == *id)
                .map(|(n, _)| *n)
                .collect();
            assert_eq!(journal_marks.len(), sent_at.len());
            for (mark, at) in journal_marks.iter().zip(&sent_at) {
                assert!(mark <= at, "`sending` for {id} came after the request");
            }
        }
        // Attempts count every request for the user (targets are unique in these tests).
        for result in &summary.results {
            if targets
                .iter()
                .filter(|t| t.account_id == result.account_id)
                .count()
                == 1
            {
                let sent = state
                    .log
                    .iter()
                    .filter(|r| r.id == result.account_id)
                    .count();
                assert_eq!(
                    result.attempts as usize, sent,
                    "attempts for {}",
                    result.account_id
                );
            }
        }
    }

    fn outcome(summary: &RunSummary, id: &str) -> ItemOutcome {
        result(summary, id).outcome
    }

    fn result<'s>(summary: &'s RunSummary, id: &str) -> &'s ItemResult {
        summary
            .results
            .iter()
            .find(|r| r.account_id == id)
            .expect("a result for every target")
    }

    fn as_refs(ids: &[String]) -> Vec<&str> {
        ids.iter().map(String::as_str).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn deletes_exactly_the_targets() {
        let site = Arc::new(FakeSite::new(30));
        let wanted = ids("u", 20);
        let (summary, _) = go(&site, targets(&as_refs(&wanted)), opts()).await;
        assert_eq!(summary.stopped, None);
        for id in &wanted {
            assert_eq!(outcome(&summary, id), ItemOutcome::Deleted);
            assert_eq!(site.requests_for(id), vec![Method::Delete]);
            assert!(!site.exists(id));
            assert_eq!(result(&summary, id).attempts, 1);
        }
        for n in 21..=30 {
            assert!(site.exists(&format!("u{n}")), "non-target u{n} untouched");
        }
        assert!(summary.peak_concurrency > 1, "requests ran in parallel");
        assert_eq!(summary.throttled, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_limit_is_respected() {
        for limit in [1, 3, 8] {
            let site = Arc::new(FakeSite::new(40));
            let wanted = ids("u", 40);
            let options = RunOptions {
                concurrency: limit,
                ..opts()
            };
            let (summary, _) = go(&site, targets(&as_refs(&wanted)), options).await;
            assert_eq!(summary.peak_concurrency, limit);
            assert_eq!(site.with(|s| s.peak), limit);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limited_site_loses_nothing() {
        let site = Arc::new(FakeSite::new(150));
        site.with(|s| s.rate_limit = Some(20));
        let wanted = ids("u", 120);
        let (summary, _) = go(&site, targets(&as_refs(&wanted)), opts()).await;
        assert_eq!(summary.stopped, None);
        for id in &wanted {
            assert_eq!(outcome(&summary, id), ItemOutcome::Deleted, "{id}");
        }
        assert!(summary.throttled > 0, "the fake site did throttle");
        assert_eq!(site.with(|s| s.users.len()), 30);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_pauses_every_worker() {
        let site = Arc::new(FakeSite::new(20));
        site.fault(Method::Delete, "u1", vec![Fault::Reply(429, Some("5"), "")]);
        let wanted = ids("u", 20);
        let started = Instant::now();
        let (summary, _) = go(&site, targets(&as_refs(&wanted)), opts()).await;
        for id in &wanted {
            assert_eq!(outcome(&summary, id), ItemOutcome::Deleted);
        }
        assert_eq!(result(&summary, "u1").attempts, 2);
        assert_eq!(summary.throttled, 1);
        let log = site.with(|s| s.log.clone());
        let throttled_at = log
            .iter()
            .find(|r| r.status == Some(429))
            .map(|r| r.at)
            .expect("a 429");
        // Nothing was sent while the gate was closed: the only requests between the 429 and
        // the end of Retry-After are the ones already in flight when it arrived (sent at the
        // same instant as it, in this fake).
        for r in &log {
            assert!(
                r.at <= throttled_at || r.at >= throttled_at + Duration::from_secs(5),
                "request at {:?} during the pause",
                r.at - started
            );
        }
        assert!(log
            .iter()
            .any(|r| r.at >= throttled_at + Duration::from_secs(5)));
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_halves_the_limit_and_recovers() {
        let pace = Pace::new(8, Duration::from_secs(60));
        pace.throttled(Some(Duration::from_secs(2)));
        assert_eq!(lock(&pace.state).limit, 4);
        // More 429s from requests already in flight do not halve it again...
        pace.throttled(Some(Duration::from_secs(1)));
        assert_eq!(lock(&pace.state).limit, 4);
        // ...and the gate stays closed until the latest deadline asked for.
        let resume = lock(&pace.state).resume_at.expect("gate closed");
        assert!(resume >= Instant::now() + Duration::from_secs(2));
        tokio::time::sleep(Duration::from_secs(3)).await;
        pace.throttled(None);
        assert_eq!(lock(&pace.state).limit, 2);
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(61)).await;
            pace.throttled(Some(Duration::ZERO));
        }
        assert_eq!(lock(&pace.state).limit, 1, "never below one");
        for _ in 0..RECOVER_AFTER {
            pace.calm();
        }
        assert_eq!(lock(&pace.state).limit, 2);
        for _ in 0..RECOVER_AFTER * 20 {
            pace.calm();
        }
        assert_eq!(lock(&pace.state).limit, 8, "never above the maximum");
        assert_eq!(lock(&pace.state).throttled, 6);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_as_http_date_is_honoured() {
        let site = Arc::new(FakeSite::new(1));
        let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(7));
        let at: &'static str = Box::leak(at.into_boxed_str());
        site.fault(Method::Delete, "u1", vec![Fault::Reply(429, Some(at), "")]);
        let started = Instant::now();
        let (summary, _) = go(&site, targets(&["u1"]), opts()).await;
        assert_eq!(outcome(&summary, "u1"), ItemOutcome::Deleted);
        let log = site.with(|s| s.log.clone());
        assert_eq!(log.len(), 2);
        // HTTP dates have one-second precision.
        assert!(
            log[1].at - started >= Duration::from_secs(5),
            "{:?}",
            log[1].at - started
        );
    }

    #[tokio::test(start_paused = true)]
    async fn transient_503_is_retried_without_a_check() {
        let site = Arc::new(FakeSite::new(2));
        let busy = Fault::Reply(503, None, "");
        site.fault(Method::Delete, "u1", vec![busy.clone(), busy.clone(), busy]);
        let (summary, _) = go(&site, targets(&["u1", "u2"]), opts()).await;
        assert_eq!(outcome(&summary, "u1"), ItemOutcome::Deleted);
        assert_eq!(site.requests_for("u1"), vec![Method::Delete; 4]);
        assert_eq!(result(&summary, "u1").attempts, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_give_up_after_max_attempts() {
        let site = Arc::new(FakeSite::new(1));
        site.fault(
            Method::Delete,
            "u1",
            vec![Fault::Reply(503, None, "Service Unavailable"); 10],
        );
        let (summary, _) = go(&site, targets(&["u1"]), opts()).await;
        let r = result(&summary, "u1");
        assert_eq!(r.outcome, ItemOutcome::Failed);
        assert_eq!(r.attempts, 6);
        assert!(r.message.contains("6 tries"), "{}", r.message);
        assert!(r.message.contains("Service Unavailable"), "{}", r.message);
        assert!(site.exists("u1"));
    }

    #[tokio::test(start_paused = true)]
    async fn unanswered_delete_that_went_through_is_confirmed_not_resent() {
        let site = Arc::new(FakeSite::new(1));
        site.fault(Method::Delete, "u1", vec![Fault::TimeoutAfterApplying]);
        let (summary, _) = go(&site, targets(&["u1"]), opts()).await;
        let r = result(&summary, "u1");
        assert_eq!(r.outcome, ItemOutcome::Deleted);
        assert!(r
            .message
            .contains("confirmed gone after an unanswered request"));
        assert_eq!(site.requests_for("u1"), vec![Method::Delete, Method::Get]);
    }

    #[tokio::test(start_paused = true)]
    async fn unanswered_delete_that_was_lost_is_checked_then_resent() {
        let site = Arc::new(FakeSite::new(1));
        site.fault(Method::Delete, "u1", vec![Fault::TimeoutBeforeApplying]);
        let (summary, _) = go(&site, targets(&["u1"]), opts()).await;
        let r = result(&summary, "u1");
        assert_eq!(r.outcome, ItemOutcome::Deleted);
        assert_eq!(r.message, "Deleted.");
        assert_eq!(
            site.requests_for("u1"),
            vec![Method::Delete, Method::Get, Method::Delete]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn gateway_errors_count_as_unanswered() {
        let site = Arc::new(FakeSite::new(1));
        site.fault(Method::Delete, "u1", vec![Fault::Reply(504, None, "")]);
        let (summary, _) = go(&site, targets(&["u1"]), opts()).await;
        assert_eq!(outcome(&summary, "u1"), ItemOutcome::Deleted);
        assert_eq!(
            site.requests_for("u1"),
            vec![Method::Delete, Method::Get, Method::Delete]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn late_404_after_an_unanswered_delete_is_ours() {
        // The first DELETE timed out, the check found the user, the second DELETE found it gone:
        // the first one was carried out late.
        let site = Arc::new(FakeSite::new(1));
        site.fault(
            Method::Delete,
            "u1",
            vec![Fault::TimeoutBeforeApplying, Fault::VanishWith404],
        );
        let (summary, _) = go(&site, targets(&["u1"]), opts()).await;
        assert_eq!(
            site.requests_for("u1"),
            vec![Method::Delete, Method::Get, Method::Delete, Method::Get]
        );
        let r = result(&summary, "u1");
        assert_eq!(r.outcome, ItemOutcome::Deleted, "{}", r.message);
        assert!(r.message.contains("unanswered"), "{}", r.message);
    }

    #[tokio::test(start_paused = true)]
    async fn target_left_sending_is_checked_first() {
        let site = Arc::new(FakeSite::new(2));
        site.with(|s| s.users.remove("u1"));
        let mut t = targets(&["u1", "u2"]);
        for target in &mut t {
            target.state = TargetState::Sending;
        }
        let (summary, _) = go(&site, t, opts()).await;
        let gone = result(&summary, "u1");
        assert_eq!(gone.outcome, ItemOutcome::Deleted);
        assert!(gone.message.contains("interrupted"), "{}", gone.message);
        assert_eq!(site.requests_for("u1"), vec![Method::Get]);
        assert_eq!(outcome(&summary, "u2"), ItemOutcome::Deleted);
        assert_eq!(site.requests_for("u2"), vec![Method::Get, Method::Delete]);
    }

    /// Rereads for `ids`, each selected by the email `{id}@example.com`, already started (as
    /// when a run resumes).
    fn resumed_rereads(ids: &[&str], must_stay_inactive: bool) -> Arc<Rereads> {
        let checks = ids
            .iter()
            .map(|id| {
                (
                    id.to_string(),
                    TargetCheck {
                        email: Some(format!("{id}@example.com")),
                        must_stay_inactive,
                        privileged_allowed: false,
                    },
                )
            })
            .collect();
        let rereads = Rereads::new(checks, Policy::default());
        rereads.start();
        rereads
    }

    #[tokio::test(start_paused = true)]
    async fn a_resumed_run_rereads_each_user_and_leaves_changed_ones_alone() {
        // FAKE site: u2 became a Moderator and u3 was removed while the run was paused; u5 has
        // no record in the preview at all.
        let site = Arc::new(FakeSite::new(5));
        site.add("u2", Some("Moderator"));
        site.with(|s| s.users.remove("u3"));
        let t = targets(&["u1", "u2", "u3", "u4", "u5"]);
        let journal = Arc::new(FakeJournal::new(&site));
        let control = RunControl::always_running()
            .with_rereads(resumed_rereads(&["u1", "u2", "u3", "u4"], false));
        let summary = run(site.clone(), t.clone(), opts(), journal.clone(), control).await;
        check_invariants(&site, &journal, &t, &summary, opts().concurrency);

        for id in ["u1", "u4"] {
            assert_eq!(outcome(&summary, id), ItemOutcome::Deleted);
            assert_eq!(site.requests_for(id), vec![Method::Get, Method::Delete]);
        }
        let privileged = result(&summary, "u2");
        assert_eq!(privileged.outcome, ItemOutcome::ChangedSincePreview);
        assert!(
            privileged.message.contains("now has role Moderator"),
            "{}",
            privileged.message
        );
        assert_eq!(
            site.requests_for("u2"),
            vec![Method::Get],
            "nothing sent after the read"
        );
        let gone = result(&summary, "u3");
        assert_eq!(gone.outcome, ItemOutcome::AlreadyGone);
        assert_eq!(site.requests_for("u3"), vec![Method::Get]);
        let unknown = result(&summary, "u5");
        assert_eq!(unknown.outcome, ItemOutcome::ChangedSincePreview);
        assert!(unknown.message.contains("no record"), "{}", unknown.message);
        assert!(site.exists("u5"), "when in doubt, do not delete");
    }

    #[tokio::test(start_paused = true)]
    async fn rereads_wait_until_the_run_resumes_and_cover_deactivation() {
        // Not started: a fresh run sends its DELETE without a read first.
        let site = Arc::new(FakeSite::new(1));
        let t = targets(&["u1"]);
        let rereads = Rereads::new(HashMap::new(), Policy::default());
        let control = RunControl::always_running().with_rereads(rereads);
        let summary = run(
            site.clone(),
            t,
            opts(),
            Arc::new(FakeJournal::new(&site)),
            control,
        )
        .await;
        assert_eq!(outcome(&summary, "u1"), ItemOutcome::Deleted);
        assert_eq!(site.requests_for("u1"), vec![Method::Delete]);

        // Deactivating picked users who must stay inactive: one was re-activated meanwhile.
        let site = Arc::new(FakeSite::new(2));
        site.with(|s| {
            if let Some(u) = s.users.get_mut("u1") {
                u.active = false;
            }
        });
        let t = targets(&["u1", "u2"]);
        let control =
            RunControl::always_running().with_rereads(resumed_rereads(&["u1", "u2"], true));
        let summary = run(
            site.clone(),
            t,
            RunOptions {
                action: Action::Deactivate,
                ..opts()
            },
            Arc::new(FakeJournal::new(&site)),
            control,
        )
        .await;
        assert_eq!(outcome(&summary, "u1"), ItemOutcome::Deactivated);
        let reactivated = result(&summary, "u2");
        assert_eq!(reactivated.outcome, ItemOutcome::ChangedSincePreview);
        assert!(
            reactivated.message.contains("re-activated"),
            "{}",
            reactivated.message
        );
        assert_eq!(site.requests_for("u2"), vec![Method::Get]);
    }

    #[tokio::test(start_paused = true)]
    async fn delete_404_for_a_gone_user_is_already_gone() {
        let site = Arc::new(FakeSite::new(3));
        site.with(|s| s.users.remove("u2"));
        let (summary, _) = go(&site, targets(&["u1", "u2", "u3"]), opts()).await;
        assert_eq!(outcome(&summary, "u2"), ItemOutcome::AlreadyGone);
        assert_eq!(site.requests_for("u2"), vec![Method::Delete, Method::Get]);
        assert_eq!(outcome(&summary, "u1"), ItemOutcome::Deleted);
        assert_eq!(summary.stopped, None);
    }

    #[tokio::test(start_paused = true)]
    async fn deletion_not_enabled_stops_the_run() {
        let site = Arc::new(FakeSite::new(10));
        site.with(|s| s.deletion_disabled = true);
        let wanted = ids("u", 10);
        let options = RunOptions {
            concurrency: 1,
            ..opts()
        };
        let (summary, _) = go(&site, targets(&as_refs(&wanted)), options).await;
        let Some(StopReason::DeletionNotEnabled(how)) = &summary.stopped else {
            panic!("expected a stop, got {:?}", summary.stopped);
        };
        assert!(how.contains("Stack support"), "{how}");
        assert!(how.contains("not enabled"), "{how}");
        for id in ["u1", "u2", "u3"] {
            assert_eq!(outcome(&summary, id), ItemOutcome::DeletionNotEnabled);
            assert_eq!(site.requests_for(id), vec![Method::Delete, Method::Get]);
        }
        for id in &wanted[3..] {
            assert_eq!(outcome(&summary, id), ItemOutcome::NotAttempted);
            assert!(site.requests_for(id).is_empty());
            assert!(result(&summary, id)
                .message
                .contains("not seem to be enabled"));
        }
        assert_eq!(site.with(|s| s.users.len()), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_204_resets_the_not_enabled_count() {
        let site = Arc::new(FakeSite::new(6));
        for id in ["u1", "u2", "u4", "u5"] {
            site.fault(Method::Delete, id, vec![Fault::Reply(404, None, "")]);
        }
        let wanted = ids("u", 6);
        let options = RunOptions {
            concurrency: 1,
            ..opts()
        };
        let (summary, _) = go(&site, targets(&as_refs(&wanted)), options).await;
        assert_eq!(summary.stopped, None);
        for id in ["u1", "u2", "u4", "u5"] {
            assert_eq!(outcome(&summary, id), ItemOutcome::DeletionNotEnabled);
        }
        for id in ["u3", "u6"] {
            assert_eq!(outcome(&summary, id), ItemOutcome::Deleted);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn privileged_user_is_demoted_confirmed_then_deleted() {
        let site = Arc::new(FakeSite::new(0));
        site.add("admin", Some("Admin"));
        site.with(|s| s.promotion_allowed = true);
        let options = RunOptions {
            demote_privileged: true,
            ..opts()
        };
        let (summary, _) = go(&site, targets(&["admin"]), options).await;
        let r = result(&summary, "admin");
        assert_eq!(r.outcome, ItemOutcome::Deleted);
        assert!(r.demoted);
        assert_eq!(r.attempts, 4);
        assert_eq!(
            site.requests_for("admin"),
            vec![Method::Delete, Method::Patch, Method::Get, Method::Delete]
        );
        let patches = site.with(|s| s.patches.clone());
        assert_eq!(patches, vec![("admin".to_string(), demote_payload())]);
        assert_eq!(
            demote_payload().to_string(),
            r#"{"Operations":[{"op":"replace","path":"userType","value":"Registered"}],"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}"#
        );
        assert!(!site.exists("admin"));
    }

    #[tokio::test(start_paused = true)]
    async fn demotion_silently_ignored_is_reported_with_the_setting() {
        let site = Arc::new(FakeSite::new(0));
        site.add("mod", Some("Moderator"));
        let options = RunOptions {
            demote_privileged: true,
            ..opts()
        };
        let (summary, _) = go(&site, targets(&["mod"]), options).await;
        let r = result(&summary, "mod");
        assert_eq!(r.outcome, ItemOutcome::Privileged);
        assert!(!r.demoted);
        assert!(
            r.message
                .contains("Allow Moderator/Admin Promotion via a userType property"),
            "{}",
            r.message
        );
        assert_eq!(
            site.requests_for("mod"),
            vec![Method::Delete, Method::Patch, Method::Get]
        );
        assert!(site.exists("mod"));
    }

    #[tokio::test(start_paused = true)]
    async fn privileged_user_without_demote_first_is_left_alone() {
        let site = Arc::new(FakeSite::new(0));
        site.add("admin", Some("Admin"));
        site.with(|s| s.promotion_allowed = true);
        let (summary, _) = go(&site, targets(&["admin"]), opts()).await;
        let r = result(&summary, "admin");
        assert_eq!(r.outcome, ItemOutcome::Privileged);
        assert!(r.message.contains("demote first"), "{}", r.message);
        assert_eq!(site.requests_for("admin"), vec![Method::Delete]);
        assert!(site.exists("admin"));
    }

    #[tokio::test(start_paused = true)]
    async fn refused_again_after_demotion_is_privileged() {
        let site = Arc::new(FakeSite::new(0));
        site.add("admin", Some("Admin"));
        site.with(|s| s.promotion_allowed = true);
        site.fault(
            Method::Delete,
            "admin",
            vec![
                Fault::Reply(500, None, "Adjust role to User"),
                Fault::Reply(500, None, "Adjust role to User"),
            ],
        );
        let options = RunOptions {
            demote_privileged: true,
            ..opts()
        };
        let (summary, _) = go(&site, targets(&["admin"]), options).await;
        let r = result(&summary, "admin");
        assert_eq!(r.outcome, ItemOutcome::Privileged);
        assert!(r.demoted);
        assert_eq!(
            site.requests_for("admin"),
            vec![Method::Delete, Method::Patch, Method::Get, Method::Delete]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stack_refusals_are_reported_in_plain_words() {
        let site = Arc::new(FakeSite::new(4));
        site.with(|s| {
            s.system_accounts.insert("u1".into());
            s.community_creators.insert("u2".into());
        });
        site.fault(
            Method::Delete,
            "u3",
            vec![Fault::Reply(500, None, "Something odd happened")],
        );
        let (summary, _) = go(&site, targets(&["u1", "u2", "u3", "u4"]), opts()).await;
        assert_eq!(outcome(&summary, "u1"), ItemOutcome::SystemAccount);
        let creator = result(&summary, "u2");
        assert_eq!(creator.outcome, ItemOutcome::CommunityCreator);
        assert!(creator.message.contains("only Stack support"));
        let odd = result(&summary, "u3");
        assert_eq!(odd.outcome, ItemOutcome::Failed);
        assert_eq!(odd.message, "Something odd happened");
        assert_eq!(
            site.requests_for("u3"),
            vec![Method::Delete],
            "a 500 is not retried"
        );
        assert_eq!(outcome(&summary, "u4"), ItemOutcome::Deleted);
        assert_eq!(summary.stopped, None);
    }

    #[tokio::test(start_paused = true)]
    async fn revoked_token_stops_the_run() {
        let site = Arc::new(FakeSite::new(10));
        site.with(|s| s.token_revoked_after = Some(3));
        let wanted = ids("u", 10);
        let options = RunOptions {
            concurrency: 1,
            ..opts()
        };
        let (summary, _) = go(&site, targets(&as_refs(&wanted)), options).await;
        assert!(matches!(summary.stopped, Some(StopReason::Unauthorized(_))));
        for id in ["u1", "u2", "u3"] {
            assert_eq!(outcome(&summary, id), ItemOutcome::Deleted);
        }
        let refused = result(&summary, "u4");
        assert_eq!(refused.outcome, ItemOutcome::Failed);
        assert!(refused.message.contains("HTTP 401"));
        for id in &wanted[4..] {
            assert_eq!(outcome(&summary, id), ItemOutcome::NotAttempted);
        }
        assert_eq!(site.with(|s| s.log.len()), 4, "nothing sent after the 401");
    }

    #[tokio::test(start_paused = true)]
    async fn deactivate_only_patches() {
        let site = Arc::new(FakeSite::new(3));
        site.with(|s| s.users.remove("u3"));
        let options = RunOptions {
            action: Action::Deactivate,
            ..opts()
        };
        let (summary, _) = go(&site, targets(&["u1", "u2", "u3"]), options).await;
        for id in ["u1", "u2"] {
            assert_eq!(outcome(&summary, id), ItemOutcome::Deactivated);
            assert_eq!(site.requests_for(id), vec![Method::Patch]);
            assert!(site.with(|s| !s.users[id].active));
        }
        assert_eq!(outcome(&summary, "u3"), ItemOutcome::AlreadyGone);
        assert_eq!(site.requests_for("u3"), vec![Method::Patch, Method::Get]);
        let patches = site.with(|s| s.patches.clone());
        assert!(patches.iter().all(|(_, p)| *p == deactivate_payload()));
        assert_eq!(
            deactivate_payload()["Operations"],
            serde_json::json!([{"op":"replace","path":"active","value":false}])
        );
    }

    #[tokio::test(start_paused = true)]
    async fn deactivate_retries_throttling_and_timeouts() {
        let site = Arc::new(FakeSite::new(1));
        site.fault(
            Method::Patch,
            "u1",
            vec![
                Fault::Reply(429, Some("2"), ""),
                Fault::TimeoutBeforeApplying,
                Fault::Reply(502, None, ""),
            ],
        );
        let options = RunOptions {
            action: Action::Deactivate,
            ..opts()
        };
        let (summary, _) = go(&site, targets(&["u1"]), options).await;
        assert_eq!(outcome(&summary, "u1"), ItemOutcome::Deactivated);
        assert_eq!(site.requests_for("u1"), vec![Method::Patch; 4]);
        assert_eq!(summary.throttled, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn deactivate_settles_a_sending_target() {
        let site = Arc::new(FakeSite::new(2));
        site.with(|s| s.users.get_mut("u1").expect("u1").active = false);
        let mut t = targets(&["u1", "u2"]);
        t[0].state = TargetState::Sending;
        t[1].state = TargetState::Sending;
        let options = RunOptions {
            action: Action::Deactivate,
            ..opts()
        };
        let (summary, _) = go(&site, t, options).await;
        assert_eq!(outcome(&summary, "u1"), ItemOutcome::Deactivated);
        assert_eq!(site.requests_for("u1"), vec![Method::Get]);
        assert_eq!(outcome(&summary, "u2"), ItemOutcome::Deactivated);
        assert_eq!(site.requests_for("u2"), vec![Method::Get, Method::Patch]);
    }

    #[tokio::test(start_paused = true)]
    async fn journal_failure_stops_before_sending() {
        let site = Arc::new(FakeSite::new(5));
        let mut journal = FakeJournal::new(&site);
        journal.fail_sending_for = Some("u2".into());
        let wanted = ids("u", 5);
        let options = RunOptions {
            concurrency: 1,
            ..opts()
        };
        let summary = go_with(
            &site,
            targets(&as_refs(&wanted)),
            options,
            Arc::new(journal),
        )
        .await;
        assert!(matches!(
            summary.stopped,
            Some(StopReason::JournalFailed(_))
        ));
        assert_eq!(outcome(&summary, "u1"), ItemOutcome::Deleted);
        let r = result(&summary, "u2");
        assert_eq!(r.outcome, ItemOutcome::NotAttempted);
        assert!(r.message.contains("disk full"), "{}", r.message);
        assert!(site.requests_for("u2").is_empty());
        for id in ["u3", "u4", "u5"] {
            assert_eq!(outcome(&summary, id), ItemOutcome::NotAttempted);
            assert!(site.exists(id));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failing_to_record_a_result_stops_the_run() {
        let site = Arc::new(FakeSite::new(5));
        let mut journal = FakeJournal::new(&site);
        journal.fail_finished = true;
        let wanted = ids("u", 5);
        let options = RunOptions {
            concurrency: 1,
            ..opts()
        };
        let summary = go_with(
            &site,
            targets(&as_refs(&wanted)),
            options,
            Arc::new(journal),
        )
        .await;
        assert!(matches!(
            summary.stopped,
            Some(StopReason::JournalFailed(_))
        ));
        assert_eq!(outcome(&summary, "u1"), ItemOutcome::Deleted);
        for id in ["u2", "u3", "u4", "u5"] {
            assert_eq!(outcome(&summary, id), ItemOutcome::NotAttempted);
            assert!(site.exists(id));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn duplicates_and_unsafe_ids_are_not_sent() {
        let site = Arc::new(FakeSite::new(2));
        let t = targets(&["u1", "u1", "", " u2", "../u2", "u2?x=1", "u2"]);
        let (summary, _) = go(&site, t, opts()).await;
        let outcomes: Vec<ItemOutcome> = summary.results.iter().map(|r| r.outcome).collect();
        use ItemOutcome::*;
        assert_eq!(
            outcomes,
            vec![
                Deleted,
                NotAttempted,
                NotAttempted,
                NotAttempted,
                NotAttempted,
                NotAttempted,
                Deleted
            ]
        );
        assert_eq!(site.requests_for("u1"), vec![Method::Delete]);
        assert!(summary.results[1].message.contains("listed twice"));
    }

    #[tokio::test(start_paused = true)]
    async fn pause_and_cancel() {
        let site = Arc::new(FakeSite {
            state: Mutex::new(SiteState::default()),
            latency: Duration::from_secs(1),
        });
        for id in ids("u", 10) {
            site.add(&id, None);
        }
        let journal = Arc::new(FakeJournal::new(&site));
        let wanted = ids("u", 10);
        let t = targets(&as_refs(&wanted));
        let (buttons, control) = RunControl::channel();
        let options = RunOptions {
            concurrency: 1,
            ..opts()
        };
        let handle = tokio::spawn({
            let (site, journal, t) = (site.clone(), journal.clone(), t.clone());
            async move { run(site, t, options, journal, control).await }
        });
        // Paused while u2's DELETE is in flight: it finishes, nothing more starts.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        buttons.send(RunState::Paused).expect("runner listening");
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(site.with(|s| s.log.len()), 2);
        assert_eq!(lock(&journal.finished).len(), 2);
        // Resumed: it carries on.
        buttons.send(RunState::Running).expect("runner listening");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        buttons.send(RunState::Cancelled).expect("runner listening");
        let summary = handle.await.expect("run");
        check_invariants(&site, &journal, &t, &summary, 1);
        assert_eq!(summary.stopped, Some(StopReason::Cancelled));
        let done = summary
            .results
            .iter()
            .filter(|r| r.outcome == ItemOutcome::Deleted)
            .count();
        assert_eq!(done, 5, "two before the pause, three after resuming");
        for r in &summary.results[done..] {
            assert_eq!(r.outcome, ItemOutcome::NotAttempted);
            assert!(r.message.contains("cancelled"));
            assert!(site.exists(&r.account_id));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_interrupts_a_long_throttling_wait() {
        let site = Arc::new(FakeSite::new(3));
        site.fault(
            Method::Delete,
            "u1",
            vec![Fault::Reply(429, Some("3600"), "")],
        );
        let journal = Arc::new(FakeJournal::new(&site));
        let t = targets(&["u1", "u2", "u3"]);
        let (buttons, control) = RunControl::channel();
        let options = RunOptions {
            concurrency: 1,
            ..opts()
        };
        let handle = tokio::spawn({
            let (site, journal, t) = (site.clone(), journal.clone(), t.clone());
            async move { run(site, t, options, journal, control).await }
        });
        tokio::time::sleep(Duration::from_secs(10)).await;
        buttons.send(RunState::Cancelled).expect("runner listening");
        let started = Instant::now();
        let summary = handle.await.expect("run");
        assert!(started.elapsed() < Duration::from_secs(1));
        check_invariants(&site, &journal, &t, &summary, 1);
        assert_eq!(summary.stopped, Some(StopReason::Cancelled));
        assert!(summary
            .results
            .iter()
            .all(|r| r.outcome == ItemOutcome::NotAttempted));
        assert_eq!(result(&summary, "u1").attempts, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn cancel_while_a_delete_is_unconfirmed_says_check_the_site() {
        // u1's DELETE times out; the run is cancelled during the backoff before the check.
        let site = Arc::new(FakeSite::new(1));
        site.fault(Method::Delete, "u1", vec![Fault::TimeoutAfterApplying]);
        let journal = Arc::new(FakeJournal::new(&site));
        let t = targets(&["u1"]);
        let (buttons, control) = RunControl::channel();
        let handle = tokio::spawn({
            let (site, journal, t) = (site.clone(), journal.clone(), t.clone());
            async move { run(site, t, opts(), journal, control).await }
        });
        tokio::time::sleep(Duration::from_millis(30_100)).await;
        buttons.send(RunState::Cancelled).expect("runner listening");
        let summary = handle.await.expect("run");
        check_invariants(&site, &journal, &t, &summary, 8);
        let r = result(&summary, "u1");
        assert_eq!(r.outcome, ItemOutcome::Failed);
        assert!(r.message.contains("check this user"), "{}", r.message);
    }

    /// Random faults everywhere (seeded, so a failure can be replayed): whatever happens, every
    /// result tells the truth about the site, and the invariants hold.
    #[tokio::test(start_paused = true)]
    async fn results_tell_the_truth_under_random_faults() {
        use rand::{Rng, SeedableRng};
        for seed in 0..60u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let site = Arc::new(FakeSite::new(0));
            let wanted = ids("u", 12);
            for id in &wanted {
                let role = match rng.gen_range(0..6) {
                    0 => Some("Admin"),
                    1 => Some("Moderator"),
                    _ => None,
                };
                site.add(id, role);
                match rng.gen_range(0..12) {
                    0 => site.with(|s| s.system_accounts.insert(id.clone())),
                    1 => site.with(|s| s.community_creators.insert(id.clone())),
                    2 => site.with(|s| s.users.remove(id).is_some()),
                    _ => false,
                };
                for method in [Method::Get, Method::Delete, Method::Patch] {
                    let faults = (0..rng.gen_range(0..4))
                        .map(|_| match rng.gen_range(0..8) {
                            0 => Fault::Reply(429, Some("2"), ""),
                            1 => Fault::Reply(429, None, ""),
                            2 => Fault::Reply(503, None, ""),
                            3 => Fault::Reply(502, None, ""),
                            4 => Fault::TimeoutBeforeApplying,
                            5 => Fault::TimeoutAfterApplying,
                            // A GET that answers 404 for a user who exists would be a lie
                            // no runner can see through; DELETE and PATCH may do it.
                            6 if method != Method::Get => Fault::Reply(404, None, ""),
                            6 => Fault::Reply(503, None, ""),
                            _ => Fault::VanishWith404,
                        })
                        .collect();
                    site.fault(method, id, faults);
                }
            }
            site.with(|s| s.promotion_allowed = rng.gen_bool(0.5));
            let mut t = targets(&as_refs(&wanted));
            for target in &mut t {
                if rng.gen_bool(0.2) {
                    target.state = TargetState::Sending;
                }
            }
            let options = RunOptions {
                concurrency: rng.gen_range(1..=8),
                demote_privileged: rng.gen_bool(0.5),
                action: if rng.gen_bool(0.8) {
                    Action::Delete
                } else {
                    Action::Deactivate
                },
                not_enabled_threshold: 100,
                ..opts()
            };
            let action = options.action;
            let (summary, _) = go(&site, t, options).await;
            for r in &summary.results {
                let exists = site.exists(&r.account_id);
                let context = format!("seed {seed}: {r:?}");
                match r.outcome {
                    ItemOutcome::Deleted | ItemOutcome::AlreadyGone => {
                        assert!(!exists, "{context}")
                    }
                    ItemOutcome::Deactivated => {
                        assert!(site.with(|s| !s.users[&r.account_id].active), "{context}")
                    }
                    ItemOutcome::Failed => {}
                    _ => assert!(exists, "{context}"),
                }
                if action == Action::Deactivate {
                    assert!(!site.requests_for(&r.account_id).contains(&Method::Delete));
                }
                if !exists && r.outcome == ItemOutcome::Failed {
                    // Only an unconfirmed request may leave the admin unsure.
                    assert!(r.message.contains("check this user"), "{context}");
                }
            }
        }
    }

    #[test]
    fn run_future_can_be_spawned() {
        fn assert_send<T: Send>(_: &T) {}
        let site: Arc<dyn ScimProvider> = Arc::new(FakeSite::new(0));
        let journal: Arc<dyn RunJournal> = Arc::new(FakeJournal::new(&Arc::new(FakeSite::new(0))));
        let future = run(site, vec![], opts(), journal, RunControl::always_running());
        assert_send(&future);
    }

    #[tokio::test]
    async fn empty_run_does_nothing() {
        let site = Arc::new(FakeSite::new(1));
        let (summary, _) = go(&site, vec![], opts()).await;
        assert!(summary.results.is_empty());
        assert_eq!(summary.stopped, None);
        assert_eq!(summary.requests, 0);
    }
}
