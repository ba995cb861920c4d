//! The runner's tests, against a FAKE in-memory Stack-shaped site (see below).

use super::pacing::*;
use super::*;
use crate::scim::patch::{deactivate_payload, demote_payload};
use std::collections::{BTreeMap, HashMap};

// ---------------------------------------------------------------------------------------
// A FAKE Stack-shaped SCIM site, in memory. It applies the Stack rules docs/engine.md describes
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
    /// After this many requests the site is down: every reply is 503 (scripted faults first).
    down_after: Option<usize>,
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
                retry_after: retry.map(str::to_string),
                ..ScimReply::json(status, &body)
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
                Fault::TimeoutBeforeApplying => return (Err(TransportError::Timeout(30)), true),
                Fault::TimeoutAfterApplying => apply_then_time_out = true,
                Fault::VanishWith404 => {
                    s.users.remove(id);
                    return (reply(404, None, String::new()), false);
                }
            }
        }
        if !apply_then_time_out && matches!(s.down_after, Some(n) if s.log.len() > n) {
            return (reply(503, None, String::new()), false);
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
                                (Some("active"), serde_json::Value::Bool(b)) => user.active = *b,
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
    /// Refuses the mark for this account as a journal does once the run was cancelled.
    cancelled_at: Option<String>,
    /// Who cancelled, as the console's journal reads it back.
    cancelled_by: Option<String>,
}

impl FakeJournal {
    fn new(site: &Arc<FakeSite>) -> FakeJournal {
        FakeJournal {
            site: site.clone(),
            sending: Mutex::new(Vec::new()),
            finished: Mutex::new(Vec::new()),
            fail_sending_for: None,
            fail_finished: false,
            cancelled_at: None,
            cancelled_by: None,
        }
    }
}

#[async_trait]
impl RunJournal for FakeJournal {
    async fn sending(&self, account_id: &str) -> Result<(), JournalError> {
        if self.fail_sending_for.as_deref() == Some(account_id) {
            return Err(JournalError::NotRecorded("disk full".into()));
        }
        if self.cancelled_at.as_deref() == Some(account_id) {
            return Err(JournalError::Cancelled);
        }
        let seen = self.site.with(|s| s.log.len());
        lock(&self.sending).push((account_id.to_string(), seen));
        Ok(())
    }
    async fn finished(&self, result: &ItemResult) -> Result<(), JournalError> {
        lock(&self.finished).push(result.clone());
        if self.fail_finished {
            return Err(JournalError::NotRecorded("database is locked".into()));
        }
        Ok(())
    }
    async fn cancelled_by(&self) -> Option<String> {
        self.cancelled_by.clone()
    }
}

fn targets(ids: &[&str]) -> Vec<RunTarget> {
    ids.iter()
        .map(|id| RunTarget {
            account_id: id.to_string(),
            email: Some(format!("{id}@example.com")),
            state: ItemState::Pending,
        })
        .collect()
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}{i}")).collect()
}

fn opts() -> RunOptions {
    RunOptions::default()
}

/// One request at a time, so the order of the users is the order of the requests.
fn one_at_a_time() -> RunOptions {
    RunOptions {
        concurrency: 1,
        ..opts()
    }
}

fn deactivating() -> RunOptions {
    RunOptions {
        action: Action::Deactivate,
        ..opts()
    }
}

fn demoting() -> RunOptions {
    RunOptions {
        demote_privileged: true,
        ..opts()
    }
}

/// Users u1…u`n` of `site`, run with `options`: the summary, and the ids in order.
async fn go_numbered(
    site: &Arc<FakeSite>,
    n: usize,
    options: RunOptions,
) -> (RunSummary, Vec<String>) {
    let wanted = ids("u", n);
    let (summary, _) = go(site, targets(&as_refs(&wanted)), options).await;
    (summary, wanted)
}

/// `id`'s result, which must have `outcome` and say `words`.
fn expect<'s>(
    summary: &'s RunSummary,
    id: &str,
    outcome: ItemOutcome,
    words: &str,
) -> &'s ItemResult {
    let r = result(summary, id);
    assert_eq!(r.outcome, outcome, "{id}: {}", r.message);
    assert!(r.message.contains(words), "{id}: {}", r.message);
    r
}

/// Users u1…u`n`, one at a time, recorded by `journal`.
async fn go_in_order(site: &Arc<FakeSite>, n: usize, journal: FakeJournal) -> RunSummary {
    let wanted = ids("u", n);
    go_with(
        site,
        targets(&as_refs(&wanted)),
        one_at_a_time(),
        Arc::new(journal),
    )
    .await
}

/// u1 alone on a site that answers its first `method` requests with `faults`.
async fn lone_user(
    method: Method,
    faults: Vec<Fault>,
    options: RunOptions,
) -> (Arc<FakeSite>, RunSummary) {
    let site = Arc::new(FakeSite::new(1));
    site.fault(method, "u1", faults);
    let (summary, _) = go(&site, targets(&["u1"]), options).await;
    (site, summary)
}

/// A site whose one user `id` has the role `role`; `promotion_allowed` is the site setting
/// that lets a userType PATCH demote them.
fn lone_privileged(id: &str, role: &str, promotion_allowed: bool) -> Arc<FakeSite> {
    let site = Arc::new(FakeSite::new(0));
    site.add(id, Some(role));
    site.with(|s| s.promotion_allowed = promotion_allowed);
    site
}

/// A run started in the background, for the tests that press its buttons while it goes.
fn spawn_run(
    site: &Arc<FakeSite>,
    t: &[RunTarget],
    options: RunOptions,
) -> (
    tokio::sync::watch::Sender<RunState>,
    tokio::task::JoinHandle<RunSummary>,
    Arc<FakeJournal>,
) {
    let journal = Arc::new(FakeJournal::new(site));
    let (buttons, control) = RunControl::channel();
    let handle = tokio::spawn({
        let (site, journal, t) = (site.clone(), journal.clone(), t.to_vec());
        async move { run(site, t, options, journal, control).await }
    });
    (buttons, handle, journal)
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
    let (summary, wanted) = go_numbered(&site, 20, opts()).await;
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
    let (summary, wanted) = go_numbered(&site, 120, opts()).await;
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

/// The promise in the module's header: throttled answers are retried, but a user the site
/// throttles more than [`MAX_THROTTLED_RETRIES`] times in a row is given up (failed, in words),
/// after exactly one more request than that, and the others are still done.
#[tokio::test(start_paused = true)]
async fn a_user_throttled_past_the_limit_is_given_up_after_exactly_that_many() {
    let site = Arc::new(FakeSite::new(2));
    let throttled = Fault::Reply(429, Some("1"), "");
    site.fault(
        Method::Delete,
        "u1",
        vec![throttled; MAX_THROTTLED_RETRIES as usize + 10],
    );
    let (summary, _) = go(&site, targets(&["u1", "u2"]), opts()).await;
    assert_eq!(outcome(&summary, "u1"), ItemOutcome::Failed);
    let message = &result(&summary, "u1").message;
    assert!(
        message.contains(&format!("{} times in a row", MAX_THROTTLED_RETRIES + 1)),
        "{message}"
    );
    assert_eq!(
        site.requests_for("u1"),
        vec![Method::Delete; MAX_THROTTLED_RETRIES as usize + 1]
    );
    assert!(site.exists("u1"), "a throttled DELETE applies nothing");
    assert_eq!(outcome(&summary, "u2"), ItemOutcome::Deleted);
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
    let (site, summary) = lone_user(
        Method::Delete,
        vec![Fault::Reply(503, None, "Service Unavailable"); 10],
        opts(),
    )
    .await;
    let r = result(&summary, "u1");
    assert_eq!(r.outcome, ItemOutcome::Failed);
    assert_eq!(r.attempts, 6);
    assert!(r.message.contains("6 tries"), "{}", r.message);
    assert!(r.message.contains("Service Unavailable"), "{}", r.message);
    assert!(site.exists("u1"));
}

#[tokio::test(start_paused = true)]
async fn unanswered_delete_that_went_through_is_confirmed_not_resent() {
    let (site, summary) =
        lone_user(Method::Delete, vec![Fault::TimeoutAfterApplying], opts()).await;
    let words = "confirmed gone after an unanswered request";
    expect(&summary, "u1", ItemOutcome::Deleted, words);
    assert_eq!(site.requests_for("u1"), vec![Method::Delete, Method::Get]);
}

#[tokio::test(start_paused = true)]
async fn unanswered_delete_that_was_lost_is_checked_then_resent() {
    let (site, summary) =
        lone_user(Method::Delete, vec![Fault::TimeoutBeforeApplying], opts()).await;
    let r = result(&summary, "u1");
    assert_eq!(
        (r.outcome, r.message.as_str()),
        (ItemOutcome::Deleted, "Deleted.")
    );
    assert_eq!(
        site.requests_for("u1"),
        vec![Method::Delete, Method::Get, Method::Delete]
    );
}

#[tokio::test(start_paused = true)]
async fn gateway_errors_count_as_unanswered() {
    let (site, summary) =
        lone_user(Method::Delete, vec![Fault::Reply(504, None, "")], opts()).await;
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
    let (site, summary) = lone_user(
        Method::Delete,
        vec![Fault::TimeoutBeforeApplying, Fault::VanishWith404],
        opts(),
    )
    .await;
    assert_eq!(
        site.requests_for("u1"),
        vec![Method::Delete, Method::Get, Method::Delete, Method::Get]
    );
    expect(&summary, "u1", ItemOutcome::Deleted, "unanswered");
}

#[tokio::test(start_paused = true)]
async fn target_left_sending_is_checked_first() {
    let site = Arc::new(FakeSite::new(2));
    site.with(|s| s.users.remove("u1"));
    let mut t = targets(&["u1", "u2"]);
    for target in &mut t {
        target.state = ItemState::Sending;
    }
    let (summary, _) = go(&site, t, opts()).await;
    expect(&summary, "u1", ItemOutcome::Deleted, "interrupted");
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
    expect(
        &summary,
        "u2",
        ItemOutcome::ChangedSincePreview,
        "now has role Moderator",
    );
    assert_eq!(
        site.requests_for("u2"),
        vec![Method::Get],
        "nothing sent after the read"
    );
    let gone = result(&summary, "u3");
    assert_eq!(gone.outcome, ItemOutcome::AlreadyGone);
    assert_eq!(site.requests_for("u3"), vec![Method::Get]);
    expect(
        &summary,
        "u5",
        ItemOutcome::ChangedSincePreview,
        "no record",
    );
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
    let control = RunControl::always_running().with_rereads(resumed_rereads(&["u1", "u2"], true));
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
    expect(
        &summary,
        "u2",
        ItemOutcome::ChangedSincePreview,
        "re-activated",
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
    let (summary, wanted) = go_numbered(&site, 10, one_at_a_time()).await;
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
    let (summary, _) = go_numbered(&site, 6, one_at_a_time()).await;
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
    let site = lone_privileged("admin", "Admin", true);
    let (summary, _) = go(&site, targets(&["admin"]), demoting()).await;
    let r = result(&summary, "admin");
    assert_eq!(
        (r.outcome, r.demoted, r.attempts),
        (ItemOutcome::Deleted, true, 4)
    );
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
    let site = lone_privileged("mod", "Moderator", false);
    let (summary, _) = go(&site, targets(&["mod"]), demoting()).await;
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
    let site = lone_privileged("admin", "Admin", true);
    let (summary, _) = go(&site, targets(&["admin"]), opts()).await;
    expect(&summary, "admin", ItemOutcome::Privileged, "demote first");
    assert_eq!(site.requests_for("admin"), vec![Method::Delete]);
    assert!(site.exists("admin"));
}

#[tokio::test(start_paused = true)]
async fn refused_again_after_demotion_is_privileged() {
    let site = lone_privileged("admin", "Admin", true);
    site.fault(
        Method::Delete,
        "admin",
        vec![
            Fault::Reply(500, None, "Adjust role to User"),
            Fault::Reply(500, None, "Adjust role to User"),
        ],
    );
    let (summary, _) = go(&site, targets(&["admin"]), demoting()).await;
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
    expect(
        &summary,
        "u2",
        ItemOutcome::CommunityCreator,
        "only Stack support",
    );
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
    let (summary, wanted) = go_numbered(&site, 10, one_at_a_time()).await;
    assert!(matches!(summary.stopped, Some(StopReason::Unauthorized(_))));
    for id in ["u1", "u2", "u3"] {
        assert_eq!(outcome(&summary, id), ItemOutcome::Deleted);
    }
    expect(&summary, "u4", ItemOutcome::Failed, "HTTP 401");
    for id in &wanted[4..] {
        assert_eq!(outcome(&summary, id), ItemOutcome::NotAttempted);
    }
    assert_eq!(site.with(|s| s.log.len()), 4, "nothing sent after the 401");
}

#[tokio::test(start_paused = true)]
async fn deactivate_only_patches() {
    let site = Arc::new(FakeSite::new(3));
    site.with(|s| s.users.remove("u3"));
    let (summary, _) = go(&site, targets(&["u1", "u2", "u3"]), deactivating()).await;
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
    let (site, summary) = lone_user(
        Method::Patch,
        vec![
            Fault::Reply(429, Some("2"), ""),
            Fault::TimeoutBeforeApplying,
            Fault::Reply(502, None, ""),
        ],
        deactivating(),
    )
    .await;
    assert_eq!(outcome(&summary, "u1"), ItemOutcome::Deactivated);
    assert_eq!(site.requests_for("u1"), vec![Method::Patch; 4]);
    assert_eq!(summary.throttled, 1);
}

#[tokio::test(start_paused = true)]
async fn deactivate_settles_a_sending_target() {
    let site = Arc::new(FakeSite::new(2));
    site.with(|s| s.users.get_mut("u1").expect("u1").active = false);
    let mut t = targets(&["u1", "u2"]);
    t[0].state = ItemState::Sending;
    t[1].state = ItemState::Sending;
    let (summary, _) = go(&site, t, deactivating()).await;
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
    let summary = go_in_order(&site, 5, journal).await;
    assert!(matches!(
        summary.stopped,
        Some(StopReason::JournalFailed(_))
    ));
    assert_eq!(outcome(&summary, "u1"), ItemOutcome::Deleted);
    expect(&summary, "u2", ItemOutcome::NotAttempted, "disk full");
    assert!(site.requests_for("u2").is_empty());
    for id in ["u3", "u4", "u5"] {
        assert_eq!(outcome(&summary, id), ItemOutcome::NotAttempted);
        assert!(site.exists(id));
    }
}

/// A cancel that reaches the runner as a refused "sending" mark (pressed on another replica,
/// or between the runner's check and the mark) is a cancel: the rows not reached say who
/// cancelled and when, never that Offboard could not record its progress.
#[tokio::test(start_paused = true)]
async fn a_cancel_met_at_the_sending_mark_is_a_cancel_by_its_person() {
    let site = Arc::new(FakeSite::new(5));
    let mut journal = FakeJournal::new(&site);
    journal.cancelled_at = Some("u3".into());
    journal.cancelled_by = Some("Priya cancelled the run at 12:17 UTC".into());
    let summary = go_in_order(&site, 5, journal).await;
    assert_eq!(summary.stopped, Some(StopReason::Cancelled));
    for id in ["u1", "u2"] {
        assert_eq!(outcome(&summary, id), ItemOutcome::Deleted);
    }
    assert!(site.requests_for("u3").is_empty());
    for id in ["u3", "u4", "u5"] {
        let r = result(&summary, id);
        assert_eq!(r.outcome, ItemOutcome::NotAttempted);
        assert_eq!(
            r.message,
            "Not attempted: Priya cancelled the run at 12:17 UTC."
        );
        assert!(site.exists(id));
    }
    for r in &summary.results {
        assert!(!r.message.contains("could not record"), "{}", r.message);
    }
}

#[test]
fn not_attempted_words_name_who_cancelled_when_known() {
    assert_eq!(
        not_attempted_cancelled(Some("Priya cancelled the run at 12:17 UTC.")),
        "Not attempted: Priya cancelled the run at 12:17 UTC."
    );
    assert_eq!(
        not_attempted_cancelled(Some("  Priya cancelled the run at 12:17 UTC  ")),
        "Not attempted: Priya cancelled the run at 12:17 UTC."
    );
    assert_eq!(
        not_attempted_cancelled(None),
        "Not attempted: the run was cancelled."
    );
    assert_eq!(
        not_attempted_cancelled(Some("   ")),
        "Not attempted: the run was cancelled."
    );
}

#[tokio::test(start_paused = true)]
async fn failing_to_record_a_result_stops_the_run() {
    let site = Arc::new(FakeSite::new(5));
    let mut journal = FakeJournal::new(&site);
    journal.fail_finished = true;
    let summary = go_in_order(&site, 5, journal).await;
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
    let wanted = ids("u", 10);
    let t = targets(&as_refs(&wanted));
    let (buttons, handle, journal) = spawn_run(&site, &t, one_at_a_time());
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
    let t = targets(&["u1", "u2", "u3"]);
    let (buttons, handle, journal) = spawn_run(&site, &t, one_at_a_time());
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
    let t = targets(&["u1"]);
    let (buttons, handle, journal) = spawn_run(&site, &t, opts());
    tokio::time::sleep(Duration::from_millis(30_100)).await;
    buttons.send(RunState::Cancelled).expect("runner listening");
    let summary = handle.await.expect("run");
    check_invariants(&site, &journal, &t, &summary, 8);
    expect(&summary, "u1", ItemOutcome::Failed, "check this user");
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
                target.state = ItemState::Sending;
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

#[tokio::test(start_paused = true)]
async fn a_site_that_stops_answering_stops_the_run_and_a_resume_finishes_it_exactly() {
    // FAKE site: u1 and u2 are deleted, u3's DELETE is carried out but its answer is lost,
    // then the site answers nothing but 503 to everyone.
    let site = Arc::new(FakeSite::new(30));
    site.fault(Method::Delete, "u3", vec![Fault::TimeoutAfterApplying]);
    site.with(|s| s.down_after = Some(2));
    let wanted = ids("u", 30);
    let options = RunOptions {
        concurrency: 4,
        ..opts()
    };
    let journal = Arc::new(FakeJournal::new(&site));
    let t = targets(&as_refs(&wanted));
    let first = run(
        site.clone(),
        t.clone(),
        options.clone(),
        journal.clone(),
        RunControl::always_running(),
    )
    .await;
    assert!(
        matches!(first.stopped, Some(StopReason::SiteDown { .. })),
        "{:?}",
        first.stopped
    );
    // Only real answers are on record: nobody "failed" because the site was down.
    let recorded = lock(&journal.finished).clone();
    let recorded_ids: HashSet<String> = recorded.iter().map(|r| r.account_id.clone()).collect();
    assert_eq!(
        recorded_ids,
        HashSet::from(["u1".to_string(), "u2".to_string()])
    );
    assert!(recorded.iter().all(|r| r.outcome == ItemOutcome::Deleted));
    for id in &wanted[2..] {
        let r = result(&first, id);
        assert_eq!(r.outcome, ItemOutcome::NotAttempted, "{id}");
        assert!(r.message.contains("stopped answering"), "{}", r.message);
    }
    // The outage was noticed after a handful of tries, not after every user's six.
    let sent_while_down = site.with(|s| s.log.len()) - 3;
    assert!(
        sent_while_down <= 4 * options.max_attempts as usize + 4,
        "{sent_while_down} requests while the site was down"
    );

    // The site is back; the console resumes with the users that have no result, those marked
    // "sending" as such, each re-read first.
    site.with(|s| s.down_after = None);
    let marked: HashSet<String> = lock(&journal.sending)
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    let left: Vec<RunTarget> = t
        .iter()
        .filter(|target| !recorded_ids.contains(&target.account_id))
        .map(|target| RunTarget {
            state: if marked.contains(&target.account_id) {
                ItemState::Sending
            } else {
                ItemState::Pending
            },
            ..target.clone()
        })
        .collect();
    assert!(left
        .iter()
        .any(|t| t.account_id == "u3" && t.state == ItemState::Sending));
    let before = site.with(|s| s.log.len());
    let resumed_journal = Arc::new(FakeJournal::new(&site));
    let control =
        RunControl::always_running().with_rereads(resumed_rereads(&as_refs(&wanted), false));
    let second = run(
        site.clone(),
        left.clone(),
        options,
        resumed_journal.clone(),
        control,
    )
    .await;
    assert_eq!(second.stopped, None);
    assert_eq!(
        lock(&resumed_journal.finished).len(),
        left.len(),
        "one result each"
    );
    for r in &second.results {
        assert_eq!(r.outcome, ItemOutcome::Deleted, "{r:?}");
    }
    // u3's DELETE had landed: the re-read found it gone, nothing was sent again.
    let resumed_u3: Vec<Method> = site.with(|s| {
        s.log[before..]
            .iter()
            .filter(|r| r.id == "u3")
            .map(|r| r.method)
            .collect()
    });
    assert_eq!(resumed_u3, vec![Method::Get]);
    assert!(result(&second, "u3").message.contains("confirmed gone"));
    site.with(|s| {
        assert_eq!(s.second_deletes, 0, "nobody deleted twice");
        assert_eq!(s.deleted.len(), 30);
        assert!(s.users.is_empty());
    });
}

#[tokio::test(start_paused = true)]
async fn one_user_the_site_will_not_answer_for_is_not_an_outage() {
    let site = Arc::new(FakeSite::new(6));
    site.fault(Method::Delete, "u1", vec![Fault::Reply(503, None, ""); 10]);
    let options = RunOptions {
        concurrency: 2,
        ..opts()
    };
    let (summary, _) = go(&site, targets(&as_refs(&ids("u", 6))), options).await;
    assert_eq!(summary.stopped, None);
    assert_eq!(outcome(&summary, "u1"), ItemOutcome::Failed);
    for id in ["u2", "u3", "u4", "u5", "u6"] {
        assert_eq!(outcome(&summary, id), ItemOutcome::Deleted);
    }
}
