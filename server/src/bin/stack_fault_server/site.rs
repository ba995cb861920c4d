//! The simulated site: settings, users, injected faults, counters, and what each SCIM call does.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::faults::{default_message, ScriptedReply, TokenBucket};
use crate::users::{self, StoredUser};

/// Everything an admin's site configuration (or a test) can change at run time.
#[derive(Clone)]
pub struct Settings {
    pub token: String,
    pub latency_ms: u64,
    /// Requests per second; `None` = unlimited.
    pub rate_limit: Option<f64>,
    pub retry_after_date: bool,
    pub page_cap: usize,
    pub ignore_filter: bool,
    pub deletion_disabled: bool,
    pub promotion_allowed: bool,
    pub timeout_sleep_ms: u64,
    /// DELETEs wait (counted in flight, before any work) until this is switched off again: a
    /// test holds the first piece of a run deliberately instead of hoping it is slow enough.
    pub hold_deletes: bool,
    /// The site is down: every SCIM request is answered 503 without `Retry-After` (what a
    /// proxy in front of a stopped site says), nothing is applied, until switched off again.
    pub down: bool,
}

/// Changes sent to `POST /_control/settings`; absent fields stay as they are.
/// `rate_limit: 0` switches throttling off.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    pub latency_ms: Option<u64>,
    pub rate_limit: Option<f64>,
    pub retry_after_date: Option<bool>,
    pub page_cap: Option<usize>,
    pub ignore_filter: Option<bool>,
    pub deletion_disabled: Option<bool>,
    pub promotion_allowed: Option<bool>,
    pub timeout_sleep_ms: Option<u64>,
    pub hold_deletes: Option<bool>,
    pub down: Option<bool>,
    /// The site's admin issued a new SCIM token: from now on only it is accepted.
    pub token: Option<String>,
}

/// What the server started with, so `POST /_control/reset` can return to it.
pub struct Startup {
    pub settings: Settings,
    pub users: Vec<StoredUser>,
    pub burst_503: u64,
}

/// The kinds of SCIM request counted in `/_control/state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    List,
    Get,
    Create,
    Patch,
    Put,
    Delete,
}

impl RequestKind {
    const ALL: [RequestKind; 6] = [
        RequestKind::List,
        RequestKind::Get,
        RequestKind::Create,
        RequestKind::Patch,
        RequestKind::Put,
        RequestKind::Delete,
    ];

    fn label(self) -> &'static str {
        match self {
            RequestKind::List => "LIST",
            RequestKind::Get => "GET",
            RequestKind::Create => "POST",
            RequestKind::Patch => "PATCH",
            RequestKind::Put => "PUT",
            RequestKind::Delete => "DELETE",
        }
    }
}

/// A reply before it becomes HTTP, so the site's rules are testable without a server.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    pub retry_after: Option<String>,
    pub html: bool,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body),
            retry_after: None,
            html: false,
        }
    }

    pub fn empty(status: u16) -> Reply {
        Reply {
            status,
            body: None,
            retry_after: None,
            html: false,
        }
    }

    /// Stack's error shape: `{"ErrorMessage": "..."}`.
    pub fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply::json(status, json!({ "ErrorMessage": message.into() }))
    }

    fn sign_in_page() -> Reply {
        Reply {
            status: 200,
            body: None,
            retry_after: None,
            html: true,
        }
    }
}

/// What to do with an admitted request.
pub enum Admission {
    Proceed { then_sleep: Option<Duration> },
    Reply(Reply),
    SleepThenReply(Duration, Reply),
}

pub struct Site {
    pub settings: Settings,
    users: Vec<StoredUser>,
    deleted: Vec<String>,
    requests: BTreeMap<&'static str, u64>,
    delete_requests_by_account: BTreeMap<String, u64>,
    replies_by_status: BTreeMap<u16, u64>,
    unauthorized: u64,
    scripts: HashMap<String, VecDeque<ScriptedReply>>,
    burst_remaining: u64,
    burst_status: u16,
    bucket: Option<TokenBucket>,
    in_flight: u64,
    peak_in_flight: u64,
    /// DELETEs alone: what a site's request limit is about when several runs share it.
    deletes_in_flight: u64,
    peak_deletes_in_flight: u64,
}

const SYSTEM_ACCOUNT_MESSAGE: &str = "You cannot delete or destroy System Accounts.";

impl Site {
    pub fn new(startup: &Startup) -> Site {
        let mut site = Site {
            settings: startup.settings.clone(),
            users: startup.users.clone(),
            deleted: Vec::new(),
            requests: RequestKind::ALL.iter().map(|k| (k.label(), 0)).collect(),
            delete_requests_by_account: BTreeMap::new(),
            replies_by_status: BTreeMap::new(),
            unauthorized: 0,
            scripts: HashMap::new(),
            burst_remaining: startup.burst_503,
            burst_status: 503,
            bucket: None,
            in_flight: 0,
            peak_in_flight: 0,
            deletes_in_flight: 0,
            peak_deletes_in_flight: 0,
        };
        site.rebuild_bucket();
        site
    }

    /// Back to the start-up state; requests still being answered keep counting in flight.
    pub fn reset(&mut self, startup: &Startup) {
        let (in_flight, deletes) = (self.in_flight, self.deletes_in_flight);
        *self = Site::new(startup);
        self.in_flight = in_flight;
        self.peak_in_flight = in_flight;
        self.deletes_in_flight = deletes;
        self.peak_deletes_in_flight = deletes;
    }

    fn rebuild_bucket(&mut self) {
        self.bucket = self
            .settings
            .rate_limit
            .filter(|rate| *rate > 0.0)
            .map(|rate| TokenBucket::new(rate, Instant::now()));
    }

    pub fn change_settings(&mut self, change: SettingsChange) {
        /// A setting the change names takes its new value; the others stay.
        fn set<T>(setting: &mut T, value: Option<T>) {
            if let Some(value) = value {
                *setting = value;
            }
        }
        let settings = &mut self.settings;
        set(&mut settings.latency_ms, change.latency_ms);
        set(&mut settings.retry_after_date, change.retry_after_date);
        set(&mut settings.page_cap, change.page_cap);
        set(&mut settings.ignore_filter, change.ignore_filter);
        set(&mut settings.deletion_disabled, change.deletion_disabled);
        set(&mut settings.promotion_allowed, change.promotion_allowed);
        set(&mut settings.hold_deletes, change.hold_deletes);
        set(&mut settings.down, change.down);
        let token = change.token.filter(|t| !t.trim().is_empty());
        set(&mut settings.token, token.map(|t| t.trim().to_string()));
        set(&mut settings.timeout_sleep_ms, change.timeout_sleep_ms);
        if let Some(rate) = change.rate_limit {
            settings.rate_limit = Some(rate).filter(|rate| *rate > 0.0);
            self.rebuild_bucket();
        }
    }

    pub fn replace_users(&mut self, users: Vec<StoredUser>) {
        self.users = users;
    }

    pub fn set_script(&mut self, account_id: String, steps: Vec<ScriptedReply>) {
        self.scripts.insert(account_id, steps.into());
    }

    pub fn set_burst(&mut self, count: u64, status: u16) {
        self.burst_remaining = count;
        self.burst_status = status;
    }

    pub fn request_started(&mut self, delete: bool) {
        self.in_flight += 1;
        self.peak_in_flight = self.peak_in_flight.max(self.in_flight);
        if delete {
            self.deletes_in_flight += 1;
            self.peak_deletes_in_flight = self.peak_deletes_in_flight.max(self.deletes_in_flight);
        }
    }

    pub fn request_finished(&mut self, delete: bool, status: Option<u16>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if delete {
            self.deletes_in_flight = self.deletes_in_flight.saturating_sub(1);
        }
        if let Some(status) = status {
            *self.replies_by_status.entry(status).or_default() += 1;
        }
    }

    fn throttled(&self, date_form: bool) -> Reply {
        let retry_after = if date_form || self.settings.retry_after_date {
            // Dates have whole-second resolution: two seconds ahead is always at least one.
            httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2))
        } else {
            "1".to_string()
        };
        Reply {
            retry_after: Some(retry_after),
            ..Reply::error(429, default_message(429))
        }
    }

    /// Authentication, counting, throttling, the 503 burst and the account's script, in the
    /// order a real front end would apply them.
    pub fn admit(
        &mut self,
        authorization: Option<&str>,
        kind: RequestKind,
        account_id: Option<&str>,
    ) -> Admission {
        if !bearer_matches(authorization, &self.settings.token) {
            self.unauthorized += 1;
            return Admission::Reply(Reply::error(401, "Unauthorized"));
        }
        *self.requests.entry(kind.label()).or_default() += 1;
        if let (RequestKind::Delete, Some(id)) = (kind, account_id) {
            *self
                .delete_requests_by_account
                .entry(id.to_string())
                .or_default() += 1;
        }
        if let Some(bucket) = self.bucket.as_mut() {
            if !bucket.try_take(Instant::now()) {
                return Admission::Reply(self.throttled(false));
            }
        }
        if self.burst_remaining > 0 {
            self.burst_remaining -= 1;
            let status = self.burst_status;
            return Admission::Reply(Reply::error(status, default_message(status)));
        }
        let step = account_id
            .and_then(|id| self.scripts.get_mut(id))
            .and_then(VecDeque::pop_front);
        let default_sleep = self.settings.timeout_sleep_ms;
        match step {
            None | Some(ScriptedReply::Normal) => Admission::Proceed { then_sleep: None },
            Some(ScriptedReply::Status { status, message }) => {
                Admission::Reply(if (200..300).contains(&status) {
                    Reply::empty(status)
                } else if status == 429 && message.is_none() {
                    self.throttled(false)
                } else {
                    let message = message.unwrap_or_else(|| default_message(status));
                    let reply = Reply::error(status, message);
                    if status == 429 {
                        Reply {
                            retry_after: self.throttled(false).retry_after,
                            ..reply
                        }
                    } else {
                        reply
                    }
                })
            }
            Some(ScriptedReply::TooManyWithDate) => Admission::Reply(self.throttled(true)),
            Some(ScriptedReply::Html) => Admission::Reply(Reply::sign_in_page()),
            Some(ScriptedReply::TimeoutAfterWork { sleep_ms }) => Admission::Proceed {
                then_sleep: Some(crate::faults::sleep_for(sleep_ms, default_sleep)),
            },
            Some(ScriptedReply::TimeoutBeforeWork { sleep_ms }) => Admission::SleepThenReply(
                crate::faults::sleep_for(sleep_ms, default_sleep),
                Reply::error(504, default_message(504)),
            ),
        }
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.users.iter().position(|user| user.id() == id)
    }

    /// `GET users?startIndex&count&filter`: 1-based, capped at the page cap.
    pub fn list(&self, query: &[(String, String)]) -> Reply {
        let param = |name: &str| {
            query
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.as_str())
        };
        let start_index = param("startIndex")
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(1)
            .max(1);
        let cap = self.settings.page_cap;
        let count = param("count")
            .and_then(|v| v.trim().parse::<i64>().ok())
            .map_or(cap, |c| {
                usize::try_from(c.max(0)).unwrap_or(usize::MAX).min(cap)
            });
        let filter = match param("filter") {
            Some(text) if !self.settings.ignore_filter && !text.trim().is_empty() => {
                match users::parse_filter(text) {
                    Ok(filter) => Some(filter),
                    Err(problem) => {
                        return Reply::json(
                            400,
                            json!({
                                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                                "status": "400",
                                "scimType": "invalidFilter",
                                "detail": problem,
                            }),
                        )
                    }
                }
            }
            _ => None,
        };
        let matching: Vec<&StoredUser> = self
            .users
            .iter()
            .filter(|user| filter.as_ref().is_none_or(|f| f.matches(user)))
            .collect();
        let skip = usize::try_from(start_index - 1).unwrap_or(usize::MAX);
        let page: Vec<Value> = matching
            .iter()
            .skip(skip)
            .take(count)
            .map(|user| user.to_json())
            .collect();
        Reply::json(
            200,
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                "totalResults": matching.len(),
                "startIndex": start_index,
                "itemsPerPage": page.len(),
                "Resources": page,
            }),
        )
    }

    pub fn get(&self, id: &str) -> Reply {
        match self.position(id) {
            Some(index) => Reply::json(200, self.users[index].to_json()),
            None => not_found(id),
        }
    }

    /// Stack's DELETE rules, in the order the site applies them.
    pub fn delete(&mut self, id: &str) -> Reply {
        if self.settings.deletion_disabled {
            // Indistinguishable from "no such user", as on a real site without SCIM deletion.
            return not_found(id);
        }
        let Some(index) = self.position(id) else {
            return not_found(id);
        };
        let user = &self.users[index];
        if user.system_account {
            return Reply::error(400, SYSTEM_ACCOUNT_MESSAGE);
        }
        if user.is_privileged() {
            let role = user
                .resource
                .get("userType")
                .and_then(Value::as_str)
                .unwrap_or("Moderator");
            return Reply::error(
                500,
                format!(
                    "User {id} has the role {role} and cannot be deleted. \
                     Adjust role to User before deleting."
                ),
            );
        }
        if user.community_creator {
            return Reply::error(
                500,
                "An error occurred while deleting the user: The DELETE statement conflicted \
                 with the REFERENCE constraint \"FK_CommunityMemberships_CreationUser\". \
                 The conflict occurred in table \"dbo.CommunityMemberships\", column \
                 'CreationUserId'. The statement has been terminated.",
            );
        }
        self.users.remove(index);
        self.deleted.push(id.to_string());
        Reply::empty(204)
    }

    pub fn patch(&mut self, id: &str, body: &[u8]) -> Reply {
        let promotion_allowed = self.settings.promotion_allowed;
        self.edit(id, body, |user, body| {
            users::apply_patch(user, body, promotion_allowed)
        })
    }

    pub fn put(&mut self, id: &str, body: &[u8]) -> Reply {
        let promotion_allowed = self.settings.promotion_allowed;
        self.edit(id, body, |user, body| {
            users::apply_put(user, body, promotion_allowed);
            Ok(())
        })
    }

    fn edit(
        &mut self,
        id: &str,
        body: &[u8],
        change: impl FnOnce(&mut StoredUser, &Value) -> Result<(), String>,
    ) -> Reply {
        let Some(index) = self.position(id) else {
            return not_found(id);
        };
        let body: Value = match serde_json::from_slice(body) {
            Ok(body) => body,
            Err(_) => return Reply::error(400, "The request body is not valid JSON."),
        };
        let user = &mut self.users[index];
        match change(user, &body) {
            Ok(()) => Reply::json(200, user.to_json()),
            Err(problem) => Reply::error(400, problem),
        }
    }

    pub fn create(&mut self, body: &[u8]) -> Reply {
        let body: Value = match serde_json::from_slice(body) {
            Ok(body) => body,
            Err(_) => return Reply::error(400, "The request body is not valid JSON."),
        };
        match users::from_json(body, &self.users) {
            Ok(user) => {
                let reply = Reply::json(201, user.to_json());
                self.users.push(user);
                reply
            }
            Err(problem) if problem.starts_with("duplicate") => Reply::error(409, problem),
            Err(problem) => Reply::error(400, problem),
        }
    }

    /// The JSON `GET /_control/state` returns.
    pub fn state_json(&self) -> Value {
        let ids: Vec<&str> = self.users.iter().map(StoredUser::id).collect();
        let inactive: Vec<&str> = self
            .users
            .iter()
            .filter(|user| user.resource.get("active") == Some(&Value::Bool(false)))
            .map(StoredUser::id)
            .collect();
        let user_types: BTreeMap<&str, &Value> = self
            .users
            .iter()
            .filter_map(|user| Some((user.id(), user.resource.get("userType")?)))
            .collect();
        let replies: BTreeMap<String, u64> = self
            .replies_by_status
            .iter()
            .map(|(status, count)| (status.to_string(), *count))
            .collect();
        let scripts_left: BTreeMap<&str, usize> = self
            .scripts
            .iter()
            .filter(|(_, steps)| !steps.is_empty())
            .map(|(id, steps)| (id.as_str(), steps.len()))
            .collect();
        json!({
            "users": ids,
            "deleted": self.deleted,
            "inactive": inactive,
            "user_types": user_types,
            "requests": self.requests,
            "delete_requests_by_account": self.delete_requests_by_account,
            "replies_by_status": replies,
            "unauthorized": self.unauthorized,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "deletes_in_flight": self.deletes_in_flight,
            "peak_deletes_in_flight": self.peak_deletes_in_flight,
            "burst_remaining": self.burst_remaining,
            "scripts_left": scripts_left,
        })
    }
}

fn not_found(id: &str) -> Reply {
    Reply::error(404, format!("User {id} not found."))
}

/// `Authorization: Bearer <token>`; the scheme is case-insensitive (RFC 7235).
fn bearer_matches(header: Option<&str>, token: &str) -> bool {
    let Some((scheme, given)) = header.and_then(|h| h.trim().split_once(' ')) else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && given.trim() == token
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup(users: u64) -> Startup {
        Startup {
            settings: Settings {
                token: "t0ken".into(),
                latency_ms: 0,
                rate_limit: None,
                retry_after_date: false,
                page_cap: 100,
                ignore_filter: false,
                deletion_disabled: false,
                promotion_allowed: false,
                timeout_sleep_ms: 1000,
                hold_deletes: false,
                down: false,
            },
            users: users::generate(users, 3),
            burst_503: 0,
        }
    }

    const AUTH: Option<&str> = Some("Bearer t0ken");

    /// The listing page these query pairs ask for.
    fn listed(site: &Site, pairs: &[(&str, &str)]) -> serde_json::Value {
        site.list(&query(pairs)).body.expect("a listing page")
    }

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn admitted(admission: Admission) -> bool {
        matches!(admission, Admission::Proceed { then_sleep: None })
    }

    fn replied(admission: Admission) -> Reply {
        match admission {
            Admission::Reply(reply) => reply,
            _ => panic!("expected an immediate reply"),
        }
    }

    #[test]
    fn listing_caps_pages_and_counts_from_one() {
        let site = Site::new(&startup(250));
        let page = listed(&site, &[("startIndex", "1"), ("count", "500")]);
        assert_eq!(page["totalResults"], 251);
        assert_eq!(page["itemsPerPage"], 100);
        assert_eq!(page["Resources"][0]["id"], "1");
        let last = listed(&site, &[("startIndex", "201"), ("count", "100")]);
        assert_eq!(last["itemsPerPage"], 51);
        assert_eq!(last["Resources"][50]["id"], "1250");
        let beyond = listed(&site, &[("startIndex", "9999")]);
        assert_eq!(beyond["itemsPerPage"], 0);
        let odd = listed(&site, &[("STARTINDEX", "-5"), ("count", "x")]);
        assert_eq!(odd["startIndex"], 1);
        assert_eq!(odd["itemsPerPage"], 100);
        let zero = listed(&site, &[("count", "0")]);
        assert_eq!(zero["itemsPerPage"], 0);
        assert_eq!(zero["totalResults"], 251);
    }

    #[test]
    fn filter_is_applied_rejected_or_ignored() {
        let mut site = Site::new(&startup(10));
        let hit = listed(&site, &[("filter", "userName eq \"user4\"")]);
        assert_eq!(hit["totalResults"], 1);
        assert_eq!(site.list(&query(&[("filter", "nonsense")])).status, 400);
        site.settings.ignore_filter = true;
        let all = listed(&site, &[("filter", "userName eq \"user4\"")]);
        assert_eq!(all["totalResults"], 11);
    }

    #[test]
    fn delete_follows_stack_rules() {
        let mut site = Site::new(&startup(100));
        assert_eq!(
            site.delete("1").body.unwrap()["ErrorMessage"],
            SYSTEM_ACCOUNT_MESSAGE
        );
        // A 500 whose message Stack's own words decide: (account, what it says)
        for (id, words) in [
            ("1007", "Adjust role to User"),
            ("1042", "FK_CommunityMemberships_CreationUser"),
        ] {
            let refused = site.delete(id);
            assert_eq!(refused.status, 500);
            let message = refused.body.unwrap()["ErrorMessage"].to_string();
            assert!(message.contains(words), "{message}");
        }
        assert_eq!(site.delete("1002").status, 204);
        assert_eq!(site.delete("1002").status, 404);
        assert_eq!(site.get("1002").status, 404);
        assert_eq!(site.deleted, ["1002"]);
    }

    #[test]
    fn deletion_disabled_answers_404_and_keeps_user() {
        let mut site = Site::new(&startup(5));
        site.change_settings(SettingsChange {
            deletion_disabled: Some(true),
            ..SettingsChange::default()
        });
        assert_eq!(site.delete("1002").status, 404);
        assert_eq!(site.get("1002").status, 200);
    }

    #[test]
    fn demotion_then_delete_only_with_promotion() {
        let mut site = Site::new(&startup(10));
        let demote = br#"{"Operations":[{"op":"replace","path":"userType","value":"Registered"}]}"#;
        assert_eq!(site.patch("1007", demote).status, 200);
        assert_eq!(site.delete("1007").status, 500);
        site.settings.promotion_allowed = true;
        assert_eq!(site.patch("1007", demote).status, 200);
        assert_eq!(site.delete("1007").status, 204);
        assert_eq!(site.patch("1007", demote).status, 404);
        assert_eq!(site.patch("1001", b"not json").status, 400);
    }

    #[test]
    fn admission_checks_token_then_counts() {
        let mut site = Site::new(&startup(3));
        for bad in [
            None,
            Some("Bearer nope"),
            Some("Basic t0ken"),
            Some("Bearer"),
        ] {
            assert_eq!(
                replied(site.admit(bad, RequestKind::List, None)).status,
                401
            );
        }
        assert!(admitted(site.admit(
            Some("bearer  t0ken"),
            RequestKind::Delete,
            Some("1001")
        )));
        let state = site.state_json();
        assert_eq!(state["unauthorized"], 4);
        assert_eq!(state["requests"]["DELETE"], 1);
        assert_eq!(state["requests"]["LIST"], 0);
        assert_eq!(state["delete_requests_by_account"]["1001"], 1);
    }

    #[test]
    fn scripts_play_in_order_per_account() {
        let mut site = Site::new(&startup(3));
        let steps = ["503", "429", "ok", "timeout_after_delete", "500:boom"]
            .iter()
            .map(|s| crate::faults::parse_step(s).unwrap())
            .collect();
        site.set_script("1001".into(), steps);
        assert!(admitted(site.admit(AUTH, RequestKind::Get, Some("1002"))));
        assert_eq!(
            replied(site.admit(AUTH, RequestKind::Delete, Some("1001"))).status,
            503
        );
        let throttled = replied(site.admit(AUTH, RequestKind::Delete, Some("1001")));
        assert_eq!(throttled.status, 429);
        assert_eq!(throttled.retry_after.as_deref(), Some("1"));
        assert!(admitted(site.admit(
            AUTH,
            RequestKind::Delete,
            Some("1001")
        )));
        assert!(matches!(
            site.admit(AUTH, RequestKind::Delete, Some("1001")),
            Admission::Proceed {
                then_sleep: Some(d)
            } if d == Duration::from_millis(1000)
        ));
        let boom = replied(site.admit(AUTH, RequestKind::Delete, Some("1001")));
        assert_eq!(boom.body.unwrap()["ErrorMessage"], "boom");
        assert!(admitted(site.admit(
            AUTH,
            RequestKind::Delete,
            Some("1001")
        )));
    }

    #[test]
    fn burst_and_rate_limit() {
        let mut site = Site::new(&startup(3));
        site.set_burst(2, 503);
        assert_eq!(
            replied(site.admit(AUTH, RequestKind::List, None)).status,
            503
        );
        assert_eq!(
            replied(site.admit(AUTH, RequestKind::List, None)).status,
            503
        );
        assert!(admitted(site.admit(AUTH, RequestKind::List, None)));
        site.change_settings(SettingsChange {
            rate_limit: Some(2.0),
            retry_after_date: Some(true),
            ..SettingsChange::default()
        });
        assert!(admitted(site.admit(AUTH, RequestKind::List, None)));
        assert!(admitted(site.admit(AUTH, RequestKind::List, None)));
        let throttled = replied(site.admit(AUTH, RequestKind::List, None));
        assert_eq!(throttled.status, 429);
        let date = throttled.retry_after.unwrap();
        assert!(httpdate::parse_http_date(&date).unwrap() > SystemTime::now());
        site.change_settings(SettingsChange {
            rate_limit: Some(0.0),
            ..SettingsChange::default()
        });
        assert!(admitted(site.admit(AUTH, RequestKind::List, None)));
    }

    #[test]
    fn reset_restores_startup() {
        let start = startup(3);
        let mut site = Site::new(&start);
        site.delete("1002");
        site.request_started(false);
        site.request_started(true);
        site.request_started(true);
        site.request_finished(true, Some(204));
        assert_eq!(site.state_json()["peak_deletes_in_flight"], 2);
        site.settings.promotion_allowed = true;
        site.reset(&start);
        assert_eq!(site.get("1002").status, 200);
        assert!(!site.settings.promotion_allowed);
        assert_eq!(site.state_json()["in_flight"], 2);
        assert_eq!(site.state_json()["deletes_in_flight"], 1);
        assert_eq!(
            site.state_json()["peak_deletes_in_flight"],
            1,
            "peak restarts from now"
        );
        site.request_finished(true, Some(204));
        site.request_finished(false, Some(204));
        assert_eq!(site.state_json()["in_flight"], 0);
        assert_eq!(site.state_json()["deletes_in_flight"], 0);
        assert_eq!(site.state_json()["replies_by_status"]["204"], 2);
    }

    #[test]
    fn create_assigns_id_and_refuses_duplicates() {
        let mut site = Site::new(&startup(2));
        let created = site.create(br#"{"userName":"new"}"#);
        assert_eq!(created.status, 201);
        assert_eq!(created.body.unwrap()["id"], "1003");
        assert_eq!(site.create(br#"{"id":"1003"}"#).status, 409);
        assert_eq!(site.create(b"[").status, 400);
    }
}
