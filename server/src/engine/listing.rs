//! Taking the site's full user list before anything is deleted: paging (concurrent, but
//! tolerant of servers that cap page sizes), retries, and checks that the list is whole.
//! Listing never deletes or changes anything.

use crate::engine::backoff::backoff;
use crate::scim::replies::{server_message, shared_reply, SharedReply};
use crate::scim::users::parse_user;
use crate::scim::{ScimProvider, ScimReply, TransportError};
use futures::stream::{self, StreamExt};
use model::deletion::SiteUser;
use serde_json::Value;
use std::collections::HashSet;
use std::time::{Duration, SystemTime};

/// One page of `GET /Users` as the server sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserPage {
    pub total_results: usize,
    pub start_index: usize,
    pub items_per_page: usize,
    pub users: Vec<SiteUser>,
}

/// Why the user list could not be taken, in words an admin can act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ListingError {
    #[error("The site refused the SCIM token (HTTP {status}). Check that it is the SCIM token (not an API token) and that it has not been regenerated since.")]
    Unauthorized { status: u16 },
    #[error("The site answered, but not as a SCIM user list ({detail}). Check the site URL, the edition (Enterprise or Business), and that SCIM is enabled in the site's settings.")]
    NotScim { detail: String },
    #[error("The site's user list could not be read: {0}")]
    BadReply(String),
    #[error("The site failed while listing users (HTTP {status}): {message}")]
    Server { status: u16, message: String },
    #[error("The site kept asking Offboard to slow down (HTTP 429) while listing users. Try again in a few minutes.")]
    Throttled,
    #[error("Could not list the site's users: {0}")]
    Transport(TransportError),
    #[error("The site reported {reported} users, more than Offboard will list (at most {max}). Nothing was deleted. Check that the SCIM address is this site's; if the site really is that large, contact Offboard's maintainers.", max = MAX_LISTED_USERS)]
    TooMany { reported: u64 },
    #[error("The site's user list changed or came back incomplete while Offboard read it, twice in a row: {0}. Nothing was deleted; try again when no users are being added or removed.")]
    Inconsistent(String),
}

/// How the listing pages and retries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListingOptions {
    /// Users asked for per page (Stack serves at most 100; others cap elsewhere).
    pub page_size: usize,
    /// Pages fetched at the same time.
    pub concurrency: usize,
    /// Tries per page for throttling, gateway errors and timeouts (1 = no retry).
    pub max_attempts: u32,
    /// First backoff delay; doubled per attempt, capped at [`MAX_BACKOFF`].
    pub retry_base_delay: Duration,
}

impl Default for ListingOptions {
    fn default() -> Self {
        ListingOptions {
            page_size: 100,
            // Listing only reads, and every page is a round trip the admin waits for. Stack
            // allows bursts of 50 requests in 2 s: 20 pages at once stays inside that, and a
            // throttled page waits for Retry-After like any other.
            concurrency: 20,
            max_attempts: 6,
            retry_base_delay: Duration::from_millis(500),
        }
    }
}

pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The most users Offboard believes a site has. `totalResults` is the site's word, and it
/// decides how many pages are asked for and how much is kept in memory: a reply claiming
/// 10^17 users must get a plain refusal, not an attempt. Stack Internal's largest sites are
/// far below this (see docs/engine.md, "Limits").
pub const MAX_LISTED_USERS: usize = 1_000_000;
/// A `Retry-After` longer than this is cut short: the admin is waiting on a screen.
const MAX_LISTING_WAIT: Duration = Duration::from_secs(300);

/// Reads a `ListResponse` body. `Resources` may be missing (RFC 7644 lets servers omit it
/// when a page is empty); a listed user without an `id` makes the whole page unreadable,
/// because silently dropping one would make the list look whole when it is not.
pub fn parse_list_page(body: &str) -> Result<UserPage, ListingError> {
    let value: Value = serde_json::from_str(body.trim()).map_err(|_| ListingError::NotScim {
        detail: if looks_like_html(None, body) {
            "a web page came back instead of SCIM data".to_string()
        } else {
            "the reply is not JSON".to_string()
        },
    })?;
    let obj = value.as_object().ok_or_else(|| ListingError::NotScim {
        detail: "the reply is not a SCIM list".to_string(),
    })?;
    let reported = obj
        .get("totalResults")
        .and_then(count_value)
        .ok_or_else(|| ListingError::NotScim {
            detail: "the reply has no totalResults".to_string(),
        })?;
    let total_results = usize::try_from(reported)
        .ok()
        .filter(|n| *n <= MAX_LISTED_USERS)
        .ok_or(ListingError::TooMany { reported })?;
    let resources = match obj.get("Resources").or_else(|| obj.get("resources")) {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(items)) => items.as_slice(),
        Some(_) => {
            return Err(ListingError::BadReply(
                "\"Resources\" is not a list".to_string(),
            ))
        }
    };
    let start_index = obj
        .get("startIndex")
        .and_then(count_value)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(1);
    let users = resources
        .iter()
        .enumerate()
        .map(|(i, item)| {
            parse_user(item).ok_or_else(|| {
                ListingError::BadReply(format!(
                    "user {} of the page starting at {start_index} has no account ID",
                    i + 1
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let items_per_page = obj
        .get("itemsPerPage")
        .and_then(count_value)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(users.len());
    Ok(UserPage {
        total_results,
        start_index,
        items_per_page,
        users,
    })
}

/// Every user on the site, in the server's order. The first page tells the total and how many
/// users a page really holds; the other pages are then fetched `concurrency` at a time. A
/// listing that comes back inconsistent (duplicates, a changing total, missing users) is
/// taken once more from scratch, then refused.
pub async fn list_all_users(
    provider: &dyn ScimProvider,
    opts: &ListingOptions,
    progress: &(dyn Fn(usize, usize) + Send + Sync),
) -> Result<Vec<SiteUser>, ListingError> {
    list_users_where(provider, opts, progress, &|_| true).await
}

/// [`list_all_users`], holding only the users `keep` accepts: the listing is checked whole
/// (each account once, the reported total), but a caller that needs a few of a big site's
/// users (the retention policy's daily listing keeps the deactivated ones) does not hold
/// them all.
pub async fn list_users_where(
    provider: &dyn ScimProvider,
    opts: &ListingOptions,
    progress: &(dyn Fn(usize, usize) + Send + Sync),
    keep: &(dyn Fn(&SiteUser) -> bool + Send + Sync),
) -> Result<Vec<SiteUser>, ListingError> {
    match list_once(provider, opts, progress, keep).await {
        Err(ListingError::Inconsistent(why)) => {
            tracing::warn!(reason = %why, "user listing was inconsistent; taking it again");
            list_once(provider, opts, progress, keep).await
        }
        other => other,
    }
}

async fn list_once(
    provider: &dyn ScimProvider,
    opts: &ListingOptions,
    progress: &(dyn Fn(usize, usize) + Send + Sync),
    keep: &(dyn Fn(&SiteUser) -> bool + Send + Sync),
) -> Result<Vec<SiteUser>, ListingError> {
    let first = fetch_page(provider, 1, opts.page_size.max(1), opts).await?;
    let total = first.total_results;
    // The server's real page size: it may cap below what was asked.
    let step = first.users.len();
    let mut taken = Taken::new(total, progress, keep);
    taken.add(1, first.users)?;
    if step < total {
        if step == 0 {
            return Err(ListingError::Inconsistent(format!(
                "the site reports {total} users but its first page listed none"
            )));
        }
        // Page starts are produced as the pages are fetched, never collected up front: the
        // total is the site's word (bounded by MAX_LISTED_USERS when parsed).
        let starts = (1 + step..=total).step_by(step);
        let mut gaps = Vec::new();
        let mut pending = stream::iter(starts)
            .map(|start| async move { (start, fetch_page(provider, start, step, opts).await) })
            .buffer_unordered(opts.concurrency.max(1));
        while let Some((start, page)) = pending.next().await {
            let page = page?;
            same_total(total, &page, start)?;
            let expected = step.min(total + 1 - start);
            let got = page.users.len();
            if got < expected {
                gaps.push((start + got, start + expected));
            }
            taken.add(start, page.users)?;
        }
        drop(pending);
        // A page shorter than the first one (and not the last) leaves a gap: fill it in
        // order, advancing by what each reply actually held.
        for (from, until) in gaps {
            let mut at = from;
            while at < until {
                let page = fetch_page(provider, at, until - at, opts).await?;
                same_total(total, &page, at)?;
                let got = page.users.len();
                taken.add(at, page.users)?;
                at += got;
            }
        }
    }
    taken.whole()
}

/// The pages taken so far. Every page is checked as it arrives, so a site that claims more
/// users than it has (empty pages, the same users again and again) is refused after a few
/// requests instead of being asked for every page up to its claim.
struct Taken<'p> {
    total: usize,
    pages: Vec<(usize, Vec<SiteUser>)>,
    ids: HashSet<String>,
    progress: &'p (dyn Fn(usize, usize) + Send + Sync),
    /// Which users are held past their page's checks.
    keep: &'p (dyn Fn(&SiteUser) -> bool + Send + Sync),
}

impl<'p> Taken<'p> {
    fn new(
        total: usize,
        progress: &'p (dyn Fn(usize, usize) + Send + Sync),
        keep: &'p (dyn Fn(&SiteUser) -> bool + Send + Sync),
    ) -> Taken<'p> {
        Taken {
            total,
            pages: Vec::new(),
            ids: HashSet::new(),
            progress,
            keep,
        }
    }

    fn add(&mut self, start: usize, users: Vec<SiteUser>) -> Result<(), ListingError> {
        let total = self.total;
        if users.is_empty() && start <= total {
            return Err(ListingError::Inconsistent(format!(
                "the site reports {total} users but listed none from position {start}"
            )));
        }
        if let Some(dup) = users.iter().find(|u| !self.ids.insert(u.id.clone())) {
            return Err(ListingError::Inconsistent(format!(
                "account ID {} was listed twice",
                dup.id
            )));
        }
        if self.ids.len() > total {
            return Err(ListingError::Inconsistent(format!(
                "the site reports {total} users but listed more"
            )));
        }
        (self.progress)(self.ids.len(), total);
        let mut users = users;
        users.retain(|u| (self.keep)(u));
        self.pages.push((start, users));
        Ok(())
    }

    /// Every user in the server's order, once the list holds exactly the reported total.
    fn whole(mut self) -> Result<Vec<SiteUser>, ListingError> {
        if self.ids.len() != self.total {
            return Err(ListingError::Inconsistent(format!(
                "the site reports {} users but listed {}",
                self.total,
                self.ids.len()
            )));
        }
        self.pages.sort_by_key(|(start, _)| *start);
        // Sized once: a flat_map collect grows by doubling (a 50,000-user listing would
        // reserve room for 65,536 and copy on the way).
        let mut users = Vec::with_capacity(self.pages.iter().map(|(_, p)| p.len()).sum());
        for (_, page) in self.pages {
            users.extend(page);
        }
        Ok(users)
    }
}

fn same_total(total: usize, page: &UserPage, start: usize) -> Result<(), ListingError> {
    if page.total_results == total {
        return Ok(());
    }
    Err(ListingError::Inconsistent(format!(
        "the number of users changed from {total} to {} while listing (page at position {start})",
        page.total_results
    )))
}

/// What to do after one list request.
#[derive(Debug, PartialEq, Eq)]
enum PageStep {
    Page(UserPage),
    /// Try again after `wait` (or the backoff delay); `give_up` is the error if no tries remain.
    Retry {
        wait: Option<Duration>,
        give_up: ListingError,
    },
    Fail(ListingError),
}

fn judge_page_reply(reply: &ScimReply, now: SystemTime) -> PageStep {
    let status = reply.status;
    match shared_reply(reply, now) {
        Some(SharedReply::Unauthorized) => {
            return PageStep::Fail(ListingError::Unauthorized { status })
        }
        Some(SharedReply::Throttled(wait)) => {
            return PageStep::Retry {
                wait: wait.map(|d| d.min(MAX_LISTING_WAIT)),
                give_up: ListingError::Throttled,
            }
        }
        Some(SharedReply::Transient(_)) => {
            return PageStep::Retry {
                wait: None,
                give_up: server_error(reply),
            }
        }
        None => {}
    }
    match status {
        200 if looks_like_html(reply.content_type.as_deref(), &reply.body) => {
            PageStep::Fail(ListingError::NotScim {
                detail: "a web page came back instead of SCIM data".to_string(),
            })
        }
        200 => match parse_list_page(&reply.body) {
            Ok(page) => PageStep::Page(page),
            Err(e) => PageStep::Fail(e),
        },
        300..=399 => PageStep::Fail(ListingError::NotScim {
            detail: format!("HTTP {status}: the address redirects elsewhere"),
        }),
        404 | 405 | 410 => PageStep::Fail(ListingError::NotScim {
            detail: format!("HTTP {status}: nothing answers at this address"),
        }),
        _ if looks_like_html(reply.content_type.as_deref(), &reply.body) && status < 500 => {
            PageStep::Fail(ListingError::NotScim {
                detail: format!("HTTP {status} with a web page instead of SCIM data"),
            })
        }
        _ => PageStep::Fail(server_error(reply)),
    }
}

fn judge_transport(err: TransportError) -> PageStep {
    match err {
        // Not going to change within a listing: a wrong name or a certificate problem.
        TransportError::Dns(_) | TransportError::Tls(_) => {
            PageStep::Fail(ListingError::Transport(err))
        }
        TransportError::Timeout(_) | TransportError::Connect(_) | TransportError::Other(_) => {
            PageStep::Retry {
                wait: None,
                give_up: ListingError::Transport(err),
            }
        }
    }
}

fn server_error(reply: &ScimReply) -> ListingError {
    ListingError::Server {
        status: reply.status,
        message: server_message(&reply.body)
            .unwrap_or_else(|| "the site gave no explanation".to_string()),
    }
}

/// True for HTML (a login page, a proxy's error page, the site's own 404 page).
pub(crate) fn looks_like_html(content_type: Option<&str>, body: &str) -> bool {
    content_type.is_some_and(|ct| ct.to_ascii_lowercase().contains("html"))
        || body.trim_start().starts_with('<')
}

async fn fetch_page(
    provider: &dyn ScimProvider,
    start: usize,
    count: usize,
    opts: &ListingOptions,
) -> Result<UserPage, ListingError> {
    let max_attempts = opts.max_attempts.max(1);
    let mut attempt = 1;
    loop {
        let step = match provider.list_users(start, count).await {
            Ok(reply) => judge_page_reply(&reply, SystemTime::now()),
            Err(err) => judge_transport(err),
        };
        match step {
            PageStep::Page(page) => return Ok(page),
            PageStep::Fail(err) => return Err(err),
            PageStep::Retry { give_up, .. } if attempt >= max_attempts => return Err(give_up),
            PageStep::Retry { wait, give_up } => {
                let delay =
                    wait.unwrap_or_else(|| backoff(attempt, opts.retry_base_delay, MAX_BACKOFF));
                tracing::info!(start, attempt, ?delay, reason = %give_up, "retrying a user page");
                crate::metrics::backoff_wait(crate::metrics::Wait::Listing, delay);
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
        }
    }
}

/// A non-negative whole count, sent as a number (`100`, `1e17`, `100.0`) or a numeric string.
/// Values past `u64` saturate, so an absurd count is reported as absurd rather than unreadable.
fn count_value(v: &Value) -> Option<u64> {
    let whole = |f: f64| (f.is_finite() && f >= 0.0 && f.fract() == 0.0).then_some(f as u64);
    match v {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().and_then(whole)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<u64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().and_then(whole))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use model::deletion::Role;
    use serde_json::json;
    use std::collections::{HashMap, VecDeque};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    // ---- parse_list_page: pure ----

    #[test]
    fn list_page_shapes() {
        let page = parse_list_page(
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":3,"startIndex":2,"itemsPerPage":2,"Resources":[{"id":"a"},{"id":"b"}]}"#,
        )
        .unwrap();
        assert_eq!(
            (page.total_results, page.start_index, page.items_per_page),
            (3, 2, 2)
        );
        assert_eq!(page.users.len(), 2);
        let empty = parse_list_page(r#"{"totalResults":0}"#).unwrap();
        assert_eq!(
            (empty.total_results, empty.start_index, empty.users.len()),
            (0, 1, 0)
        );
        let strings =
            parse_list_page(r#" {"totalResults":"5","startIndex":"1","resources":[{"id":"x"}]} "#)
                .unwrap();
        assert_eq!((strings.total_results, strings.items_per_page), (5, 1));
    }

    #[test]
    fn list_page_refusals() {
        let not_scim =
            |body: &str| matches!(parse_list_page(body), Err(ListingError::NotScim { .. }));
        assert!(not_scim("<!DOCTYPE html><html>Sign in</html>"));
        assert!(not_scim(""));
        assert!(not_scim("[]"));
        assert!(not_scim(r#"{"Resources":[]}"#));
        assert!(not_scim(r#"{"totalResults":-1}"#));
        assert!(matches!(
            parse_list_page(r#"{"totalResults":2,"Resources":[{"id":"a"},{"userName":"no id"}]}"#),
            Err(ListingError::BadReply(m)) if m.contains("user 2")
        ));
        assert!(matches!(
            parse_list_page(r#"{"totalResults":2,"Resources":{"id":"a"}}"#),
            Err(ListingError::BadReply(_))
        ));
    }

    #[test]
    fn absurd_totals_are_refused_in_plain_words() {
        for (body, reported) in [
            (r#"{"totalResults":18446744073709551615}"#, u64::MAX),
            (r#"{"totalResults":1e17}"#, 100_000_000_000_000_000),
            (r#"{"totalResults":"1e17"}"#, 100_000_000_000_000_000),
            (r#"{"totalResults":1e300}"#, u64::MAX),
            (r#"{"totalResults":1000001}"#, 1_000_001),
        ] {
            let err = parse_list_page(body).unwrap_err();
            assert_eq!(err, ListingError::TooMany { reported }, "{body}");
            let text = err.to_string();
            assert!(
                text.contains(&format!("reported {reported} users")),
                "{text}"
            );
            assert!(text.contains("Nothing was deleted"), "{text}");
        }
        // At the cap, and whole numbers written as floats, are believed.
        assert_eq!(
            parse_list_page(r#"{"totalResults":1000000}"#)
                .unwrap()
                .total_results,
            MAX_LISTED_USERS
        );
        assert_eq!(
            parse_list_page(r#"{"totalResults":2.0}"#)
                .unwrap()
                .total_results,
            2
        );
        for unreadable in [
            r#"{"totalResults":2.5}"#,
            r#"{"totalResults":-3}"#,
            r#"{"totalResults":"NaN"}"#,
            r#"{"totalResults":"-inf"}"#,
        ] {
            assert!(
                matches!(
                    parse_list_page(unreadable),
                    Err(ListingError::NotScim { .. })
                ),
                "{unreadable}"
            );
        }
    }

    fn reply(status: u16, body: &str) -> ScimReply {
        ScimReply::json(status, body)
    }

    #[test]
    fn judging_replies() {
        let now = SystemTime::UNIX_EPOCH;
        assert!(matches!(
            judge_page_reply(&reply(200, r#"{"totalResults":0}"#), now),
            PageStep::Page(_)
        ));
        for status in [401, 403] {
            assert_eq!(
                judge_page_reply(&reply(status, "{}"), now),
                PageStep::Fail(ListingError::Unauthorized { status })
            );
        }
        for status in [301, 302, 404, 405] {
            assert!(matches!(
                judge_page_reply(&reply(status, ""), now),
                PageStep::Fail(ListingError::NotScim { .. })
            ));
        }
        let html = ScimReply {
            content_type: Some("text/html; charset=utf-8".into()),
            ..reply(200, "Welcome")
        };
        assert!(matches!(
            judge_page_reply(&html, now),
            PageStep::Fail(ListingError::NotScim { .. })
        ));
        // A Retry-After is throttling, and waited for: 429, and a 503 that says when to come
        // back (the same statuses the runner retries).
        let come_back = |status: u16, seconds: u64| ScimReply {
            retry_after: Some(seconds.to_string()),
            ..reply(status, "")
        };
        for (status, seconds) in [(429, 7), (503, 4)] {
            assert_eq!(
                judge_page_reply(&come_back(status, seconds), now),
                PageStep::Retry {
                    wait: Some(Duration::from_secs(seconds)),
                    give_up: ListingError::Throttled
                }
            );
        }
        assert!(matches!(
            judge_page_reply(&come_back(429, 3000), now),
            PageStep::Retry { wait: Some(w), .. } if w == MAX_LISTING_WAIT
        ));
        // A 408 is retried at once, as the runner does.
        assert!(matches!(
            judge_page_reply(&reply(408, ""), now),
            PageStep::Retry { wait: None, .. }
        ));
        assert!(matches!(
            judge_page_reply(&reply(503, "<html>busy</html>"), now),
            PageStep::Retry {
                wait: None,
                give_up: ListingError::Server { status: 503, .. }
            }
        ));
        assert_eq!(
            judge_page_reply(&reply(500, r#"{"ErrorMessage":"Boom"}"#), now),
            PageStep::Fail(ListingError::Server {
                status: 500,
                message: "Boom".into()
            })
        );
        assert!(matches!(
            judge_page_reply(&reply(400, r#"{"detail":"bad count"}"#), now),
            PageStep::Fail(ListingError::Server { status: 400, message }) if message == "bad count"
        ));
    }

    #[test]
    fn transport_failures_retry_only_when_they_may_pass() {
        assert!(matches!(
            judge_transport(TransportError::Timeout(30)),
            PageStep::Retry { .. }
        ));
        assert!(matches!(
            judge_transport(TransportError::Connect("refused".into())),
            PageStep::Retry { .. }
        ));
        assert!(matches!(
            judge_transport(TransportError::Dns("x".into())),
            PageStep::Fail(_)
        ));
        assert!(matches!(
            judge_transport(TransportError::Tls("x".into())),
            PageStep::Fail(_)
        ));
    }

    // ---- paging: these tests use FakeSite, an in-memory fake ScimProvider ----

    /// A fault injected into one `list_users` call at a given start index (consumed once).
    #[derive(Clone, Debug)]
    enum Fault {
        Status(u16, Option<&'static str>),
        Transport(TransportError),
        /// Serve only this many users on that page.
        Short(usize),
        /// Report this totalResults on that page.
        Total(usize),
        /// Serve the first page whatever was asked (a server ignoring startIndex).
        IgnoreStart,
    }

    /// Serves `users` as SCIM ListResponse pages, capped at `cap` users per page.
    struct FakeSite {
        users: Vec<SiteUser>,
        cap: usize,
        faults: Mutex<HashMap<usize, VecDeque<Fault>>>,
        /// Faults applied to every call at a start index (never consumed).
        always: HashMap<usize, Fault>,
        calls: Mutex<Vec<(usize, usize)>>,
        in_flight: AtomicUsize,
        max_in_flight: AtomicUsize,
    }

    impl FakeSite {
        fn new(n: usize, cap: usize) -> FakeSite {
            FakeSite {
                users: (1..=n).map(test_user).collect(),
                cap,
                faults: Mutex::new(HashMap::new()),
                always: HashMap::new(),
                calls: Mutex::new(Vec::new()),
                in_flight: AtomicUsize::new(0),
                max_in_flight: AtomicUsize::new(0),
            }
        }

        fn fault(self, start: usize, fault: Fault) -> FakeSite {
            self.faults
                .lock()
                .unwrap()
                .entry(start)
                .or_default()
                .push_back(fault);
            self
        }

        fn always(mut self, start: usize, fault: Fault) -> FakeSite {
            self.always.insert(start, fault);
            self
        }

        fn calls(&self) -> Vec<(usize, usize)> {
            self.calls.lock().unwrap().clone()
        }

        fn page(
            &self,
            start: usize,
            count: usize,
            fault: Option<Fault>,
        ) -> Result<ScimReply, TransportError> {
            let mut start = start;
            let mut total = self.users.len();
            let mut take = count.min(self.cap);
            match fault {
                Some(Fault::Status(status, retry_after)) => {
                    return Ok(ScimReply {
                        retry_after: retry_after.map(str::to_string),
                        ..ScimReply::json(status, r#"{"ErrorMessage":"injected"}"#)
                    })
                }
                Some(Fault::Transport(e)) => return Err(e),
                Some(Fault::Short(n)) => take = take.min(n),
                Some(Fault::Total(t)) => total = t,
                Some(Fault::IgnoreStart) => start = 1,
                None => {}
            }
            let from = start.saturating_sub(1).min(self.users.len());
            let until = (from + take).min(self.users.len());
            let resources: Vec<Value> = self.users[from..until].iter().map(to_scim_json).collect();
            let body = json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                "totalResults": total, "startIndex": start,
                "itemsPerPage": resources.len(), "Resources": resources,
            });
            Ok(reply(200, &body.to_string()))
        }
    }

    #[async_trait]
    impl ScimProvider for FakeSite {
        async fn list_users(
            &self,
            start: usize,
            count: usize,
        ) -> Result<ScimReply, TransportError> {
            self.calls.lock().unwrap().push((start, count));
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(2)).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            let fault = self
                .faults
                .lock()
                .unwrap()
                .get_mut(&start)
                .and_then(VecDeque::pop_front)
                .or_else(|| self.always.get(&start).cloned());
            self.page(start, count, fault)
        }
        async fn get_user(&self, _: &str) -> Result<ScimReply, TransportError> {
            panic!("listing must not GET single users")
        }
        async fn delete_user(&self, _: &str) -> Result<ScimReply, TransportError> {
            panic!("listing must never delete")
        }
        async fn patch_user(&self, _: &str, _: &Value) -> Result<ScimReply, TransportError> {
            panic!("listing must never change a user")
        }
    }

    fn test_user(i: usize) -> SiteUser {
        SiteUser {
            id: format!("acct-{i}"),
            user_name: Some(format!("user {i}")),
            emails: vec![format!("u{i}@acme.example")],
            primary_email: Some(format!("u{i}@acme.example")),
            active: !i.is_multiple_of(7),
            role: if i.is_multiple_of(50) {
                Role::Admin
            } else {
                Role::Registered
            },
            ..SiteUser::default()
        }
    }

    fn to_scim_json(u: &SiteUser) -> Value {
        let mut v = json!({
            "id": u.id, "userName": u.user_name, "active": u.active,
            "emails": u.emails.iter().map(|e| json!({"value": e, "primary": Some(e) == u.primary_email.as_ref()})).collect::<Vec<_>>(),
        });
        if u.role != Role::Registered {
            v["userType"] = json!(u.role.to_string());
        }
        v
    }

    fn fast(page_size: usize) -> ListingOptions {
        ListingOptions {
            page_size,
            concurrency: 4,
            max_attempts: 4,
            retry_base_delay: Duration::from_millis(1),
        }
    }

    fn no_progress() -> impl Fn(usize, usize) + Send + Sync {
        |_, _| {}
    }

    async fn list(site: &FakeSite, opts: &ListingOptions) -> Result<Vec<SiteUser>, ListingError> {
        list_all_users(site, opts, &no_progress()).await
    }

    fn ids(users: &[SiteUser]) -> Vec<String> {
        users.iter().map(|u| u.id.clone()).collect()
    }

    fn all_ids(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("acct-{i}")).collect()
    }

    #[tokio::test]
    async fn lists_every_user_in_order_with_bounded_concurrency() {
        let site = FakeSite::new(1234, 100);
        let seen = Mutex::new(Vec::new());
        let progress = |done: usize, total: usize| seen.lock().unwrap().push((done, total));
        let users = list_all_users(&site, &fast(100), &progress).await.unwrap();
        assert_eq!(ids(&users), all_ids(1234));
        assert!(!users[6].active, "acct-7 is inactive");
        assert_eq!(users[49].role, Role::Admin);
        assert_eq!(site.calls().len(), 13);
        let peak = site.max_in_flight.load(Ordering::SeqCst);
        assert!(
            (2..=4).contains(&peak),
            "pages fetched concurrently, at most 4: {peak}"
        );
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.first(), Some(&(100, 1234)));
        assert_eq!(seen.last(), Some(&(1234, 1234)));
        assert!(
            seen.windows(2).all(|w| w[0].0 <= w[1].0),
            "progress never goes back"
        );
    }

    #[tokio::test]
    async fn empty_and_single_page_sites() {
        let site = FakeSite::new(0, 100);
        assert_eq!(list(&site, &fast(100)).await.unwrap(), vec![]);
        assert_eq!(site.calls(), vec![(1, 100)]);
        let site = FakeSite::new(100, 100);
        assert_eq!(ids(&list(&site, &fast(100)).await.unwrap()), all_ids(100));
        assert_eq!(site.calls().len(), 1);
    }

    #[tokio::test]
    async fn follows_a_server_page_cap_below_the_asked_size() {
        // Asks for 1000, the server serves 30 a page: later pages start every 30 and ask 30.
        let site = FakeSite::new(95, 30);
        let users = list(&site, &fast(1000)).await.unwrap();
        assert_eq!(ids(&users), all_ids(95));
        let mut calls = site.calls();
        calls.sort();
        assert_eq!(calls, vec![(1, 1000), (31, 30), (61, 30), (91, 30)]);
    }

    #[tokio::test]
    async fn fills_the_gap_left_by_a_short_middle_page() {
        let site = FakeSite::new(250, 100)
            .fault(101, Fault::Short(40))
            .fault(141, Fault::Short(25));
        let users = list(&site, &fast(100)).await.unwrap();
        assert_eq!(ids(&users), all_ids(250));
        let calls = site.calls();
        // The gap 141..=200 is filled in order: 141 (25 served), then 166 for the rest.
        assert!(calls.ends_with(&[(141, 60), (166, 35)]), "{calls:?}");
    }

    #[tokio::test]
    async fn holds_only_the_kept_users_of_a_listing_checked_whole() {
        let site = FakeSite::new(250, 100);
        let inactive = |u: &SiteUser| !u.active;
        let kept = list_users_where(&site, &fast(100), &no_progress(), &inactive)
            .await
            .unwrap();
        let all = list(&site, &fast(100)).await.unwrap();
        let expected: Vec<SiteUser> = all.into_iter().filter(|u| !u.active).collect();
        assert!(!expected.is_empty() && expected.len() < 250);
        assert_eq!(kept, expected);
        // A site that serves the first page for every page repeats accounts, none of them
        // kept: still refused.
        let broken = FakeSite::new(250, 100).always(101, Fault::IgnoreStart);
        let refused = list_users_where(&broken, &fast(100), &no_progress(), &|_| false).await;
        assert!(
            matches!(refused, Err(ListingError::Inconsistent(_))),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn retries_throttling_gateway_errors_and_timeouts() {
        let site = FakeSite::new(300, 100)
            .fault(1, Fault::Status(429, Some("0")))
            .fault(101, Fault::Status(503, None))
            .fault(101, Fault::Status(502, None))
            .fault(201, Fault::Transport(TransportError::Timeout(30)));
        let users = list(&site, &fast(100)).await.unwrap();
        assert_eq!(ids(&users), all_ids(300));
        assert_eq!(site.calls().len(), 3 + 4);
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts() {
        let site = FakeSite::new(300, 100).always(101, Fault::Status(504, None));
        let err = list(&site, &fast(100)).await.unwrap_err();
        assert_eq!(
            err,
            ListingError::Server {
                status: 504,
                message: "injected".into()
            }
        );
        let tries = site.calls().iter().filter(|c| c.0 == 101).count();
        assert_eq!(tries, 4);

        let site = FakeSite::new(10, 100).always(1, Fault::Status(429, Some("0")));
        assert_eq!(
            list(&site, &fast(100)).await.unwrap_err(),
            ListingError::Throttled
        );
        assert_eq!(site.calls().len(), 4);
    }

    #[tokio::test]
    async fn refusals_are_not_retried() {
        for (status, want) in [
            (401, ListingError::Unauthorized { status: 401 }),
            (403, ListingError::Unauthorized { status: 403 }),
        ] {
            let site = FakeSite::new(10, 100).always(1, Fault::Status(status, None));
            assert_eq!(list(&site, &fast(100)).await.unwrap_err(), want);
            assert_eq!(site.calls().len(), 1);
        }
        let site = FakeSite::new(10, 100).always(1, Fault::Status(404, None));
        assert!(matches!(
            list(&site, &fast(100)).await.unwrap_err(),
            ListingError::NotScim { .. }
        ));
        let site = FakeSite::new(10, 100).always(
            1,
            Fault::Transport(TransportError::Tls("UnknownIssuer".into())),
        );
        assert!(matches!(
            list(&site, &fast(100)).await.unwrap_err(),
            ListingError::Transport(TransportError::Tls(_))
        ));
        assert_eq!(site.calls().len(), 1);
    }

    #[tokio::test]
    async fn an_absurd_total_stops_the_listing_after_one_request() {
        // Before the cap, this total made the listing collect 10^18 page starts and abort.
        let site = FakeSite::new(250, 100).always(1, Fault::Total(usize::MAX));
        let err = list(&site, &fast(100)).await.unwrap_err();
        assert!(matches!(err, ListingError::TooMany { .. }), "{err}");
        assert_eq!(site.calls().len(), 1);
        // A later page claiming an absurd total is refused the same way, not believed.
        let site = FakeSite::new(250, 100).always(101, Fault::Total(MAX_LISTED_USERS + 1));
        let err = list(&site, &fast(100)).await.unwrap_err();
        assert!(matches!(err, ListingError::TooMany { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_one_off_inconsistency_is_cured_by_listing_again() {
        // Page 101 repeats page 1 once (duplicates): the second full listing is clean.
        let site = FakeSite::new(250, 100).fault(101, Fault::IgnoreStart);
        assert_eq!(ids(&list(&site, &fast(100)).await.unwrap()), all_ids(250));
        assert_eq!(site.calls().iter().filter(|c| c.0 == 1).count(), 2);
        // The total changes on one page once.
        let site = FakeSite::new(250, 100).fault(201, Fault::Total(251));
        assert_eq!(ids(&list(&site, &fast(100)).await.unwrap()), all_ids(250));
    }

    #[tokio::test]
    async fn a_lasting_inconsistency_fails_clearly() {
        let site = FakeSite::new(250, 100).always(101, Fault::IgnoreStart);
        let err = list(&site, &fast(100)).await.unwrap_err();
        assert!(
            matches!(&err, ListingError::Inconsistent(m) if m.contains("listed twice")),
            "{err}"
        );
        assert_eq!(
            site.calls().iter().filter(|c| c.0 == 1).count(),
            2,
            "listed twice, no more"
        );

        let site = FakeSite::new(250, 100).always(201, Fault::Total(260));
        let err = list(&site, &fast(100)).await.unwrap_err();
        assert!(
            matches!(&err, ListingError::Inconsistent(m) if m.contains("changed from 250 to 260")),
            "{err}"
        );

        // The site claims more users than it can list.
        let site = FakeSite::new(250, 100)
            .always(1, Fault::Total(300))
            .always(101, Fault::Total(300))
            .always(201, Fault::Total(300));
        let err = list(&site, &fast(100)).await.unwrap_err();
        assert!(
            matches!(&err, ListingError::Inconsistent(m) if m.contains("300")),
            "{err}"
        );

        // A first page with nothing on it although the total says otherwise.
        let site = FakeSite::new(250, 100).always(1, Fault::Short(0));
        assert!(matches!(
            list(&site, &fast(100)).await.unwrap_err(),
            ListingError::Inconsistent(_)
        ));
        assert!(err.to_string().contains("Nothing was deleted"));
    }

    #[tokio::test]
    async fn silly_options_are_made_sensible() {
        let site = FakeSite::new(5, 100);
        let opts = ListingOptions {
            page_size: 0,
            concurrency: 0,
            max_attempts: 0,
            retry_base_delay: Duration::ZERO,
        };
        assert_eq!(ids(&list(&site, &opts).await.unwrap()), all_ids(5));
    }
}
