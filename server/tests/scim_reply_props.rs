//! Fuzzing every parser that reads a SCIM reply (listing page, user, error body, Retry-After,
//! and the classification of DELETE/PATCH/GET replies): arbitrary bytes and arbitrary JSON
//! never make them panic, and what they accept stays within Offboard's limits. The listing is
//! also run against a FAKE provider (in this file) that claims arbitrary totals: it ends with a
//! result or a plain error after a bounded number of requests.

use async_trait::async_trait;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use server::engine::listing::{list_all_users, parse_list_page, ListingOptions, MAX_LISTED_USERS};
use server::scim::replies::{
    classify_delete, classify_get, classify_patch, parse_retry_after, plain_message,
    server_message, DeleteReply, GetReply, PatchReply,
};
use server::scim::users::parse_user;
use server::scim::{ScimProvider, ScimReply, TransportError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

/// Numbers a hostile server might send: huge, negative, fractional, exponents.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN/inf", |f| f.is_finite())
            .prop_map(Value::from),
        Just(json!(18446744073709551615u64)),
        Just(json!(1e17)),
        Just(json!(1e300)),
        (0u64..2_000_000).prop_map(Value::from),
    ]
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        ".{0,20}".prop_map(Value::String),
        "[0-9eE.+-]{1,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Keys SCIM replies use, and others.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("id".to_string()),
        Just("emails".to_string()),
        Just("value".to_string()),
        Just("primary".to_string()),
        Just("active".to_string()),
        Just("userType".to_string()),
        Just("name".to_string()),
        Just("displayName".to_string()),
        Just("meta".to_string()),
        Just("totalResults".to_string()),
        Just("Resources".to_string()),
        Just("ErrorMessage".to_string()),
        Just("detail".to_string()),
        "[a-zA-Z]{1,8}",
    ]
}

/// Something shaped like a ListResponse, with arbitrary values in its fields.
fn list_response() -> impl Strategy<Value = Value> {
    (
        prop_oneof![number(), json_value()],
        prop::collection::vec(json_value(), 0..8),
        json_value(),
        json_value(),
    )
        .prop_map(|(total, resources, start, per_page)| {
            json!({"totalResults": total, "Resources": resources,
                   "startIndex": start, "itemsPerPage": per_page})
        })
}

fn reply() -> impl Strategy<Value = ScimReply> {
    (
        any::<u16>(),
        prop::option::of(".{0,30}"),
        prop::option::of(prop_oneof![
            Just("application/scim+json".to_string()),
            Just("text/html".to_string()),
            Just("text/plain".to_string()),
            ".{0,20}",
        ]),
        prop_oneof![
            ".{0,200}",
            json_value().prop_map(|v| v.to_string()),
            list_response().prop_map(|v| v.to_string()),
        ],
    )
        .prop_map(|(status, retry_after, content_type, body)| ScimReply {
            status,
            retry_after,
            content_type,
            body,
        })
}

proptest! {
    #[test]
    fn listing_pages_never_panic_and_never_believe_too_many_users(
        body in prop_oneof![
            ".{0,300}",
            json_value().prop_map(|v| v.to_string()),
            list_response().prop_map(|v| v.to_string()),
        ]
    ) {
        if let Ok(page) = parse_list_page(&body) {
            prop_assert!(page.total_results <= MAX_LISTED_USERS);
            prop_assert!(page.users.iter().all(|u| !u.id.trim().is_empty()));
        }
    }

    #[test]
    fn arbitrary_bytes_are_not_a_page(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let is_object = serde_json::from_str::<Value>(text.trim()).is_ok_and(|v| v.is_object());
        match parse_list_page(&text) {
            // Only a JSON object can be a page; anything else is "not SCIM", never a page.
            Err(error) => prop_assert!(
                is_object || matches!(error, server::engine::listing::ListingError::NotScim { .. }),
                "{error:?}"
            ),
            Ok(page) => {
                prop_assert!(is_object, "bytes that are not a JSON object made a page");
                prop_assert!(page.total_results <= MAX_LISTED_USERS);
            }
        }
        if let Some(message) = server_message(&text) {
            prop_assert!(!message.trim().is_empty());
        }
    }

    #[test]
    fn users_never_panic(value in json_value()) {
        if let Some(user) = parse_user(&value) {
            prop_assert!(!user.id.trim().is_empty());
            if let Some(primary) = &user.primary_email {
                prop_assert!(user.emails.contains(primary));
            }
        }
    }

    #[test]
    fn error_bodies_give_one_plain_line(reply in reply()) {
        if let Some(message) = server_message(&reply.body) {
            prop_assert!(!message.trim().is_empty());
        }
        let plain = plain_message(&reply);
        prop_assert!(!plain.contains('\n') && !plain.contains('\r'));
        prop_assert!(!plain.is_empty());
    }

    #[test]
    fn retry_after_is_bounded(value in prop_oneof![
        ".{0,40}",
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        "(Mon|Tue|Sun), [0-9]{2} (Jan|Nov) [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT",
    ], secs in 0u64..4_000_000_000) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        if let Some(wait) = parse_retry_after(&value, now) {
            prop_assert!(wait <= Duration::from_secs(3600));
        }
    }

    #[test]
    fn every_reply_is_classified_without_panic(reply in reply()) {
        let now = SystemTime::now();
        let delete = classify_delete(&reply, now);
        let patch = classify_patch(&reply, now);
        let get = classify_get(&reply, now);
        check_classes(&reply, now, &delete, &patch, &get)?;
    }
}

/// The classification invariants every reply keeps, whatever its body: the statuses the three
/// operations share are read alike (401/403 refused, 429 or a dated 503 throttled, 408/502/503/504
/// transient), success is success, 404/410 is "not there", a throttle never waits past the cap,
/// and a failure keeps the reply's status and a one-line message.
fn check_classes(
    reply: &ScimReply,
    now: SystemTime,
    delete: &DeleteReply,
    patch: &PatchReply,
    get: &GetReply,
) -> Result<(), TestCaseError> {
    let status = reply.status;
    let dated = reply
        .retry_after
        .as_deref()
        .and_then(|v| parse_retry_after(v, now))
        .is_some();
    let cap = Duration::from_secs(3600);
    match status {
        200 | 204 => {
            prop_assert_eq!(delete, &DeleteReply::Deleted);
            prop_assert_eq!(patch, &PatchReply::Applied);
        }
        401 | 403 => {
            prop_assert_eq!(delete, &DeleteReply::Unauthorized);
            prop_assert_eq!(patch, &PatchReply::Unauthorized);
            prop_assert_eq!(get, &GetReply::Unauthorized);
        }
        429 => {
            prop_assert!(
                matches!(delete, DeleteReply::Throttled { .. }),
                "{delete:?}"
            );
            prop_assert!(matches!(patch, PatchReply::Throttled { .. }), "{patch:?}");
            prop_assert!(matches!(get, GetReply::Throttled { .. }), "{get:?}");
        }
        503 if dated => {
            prop_assert!(
                matches!(
                    delete,
                    DeleteReply::Throttled {
                        retry_after: Some(_)
                    }
                ),
                "{delete:?}"
            );
            prop_assert!(
                matches!(
                    patch,
                    PatchReply::Throttled {
                        retry_after: Some(_)
                    }
                ),
                "{patch:?}"
            );
            prop_assert!(
                matches!(
                    get,
                    GetReply::Throttled {
                        retry_after: Some(_)
                    }
                ),
                "{get:?}"
            );
        }
        408 | 502 | 503 | 504 => {
            // 408 and 503 say the request was not processed; a 502/504 may have passed it on.
            let maybe_applied = matches!(status, 502 | 504);
            prop_assert_eq!(
                delete,
                &DeleteReply::Transient {
                    status,
                    maybe_applied
                }
            );
            prop_assert_eq!(patch, &PatchReply::Transient { status });
            prop_assert_eq!(get, &GetReply::Transient { status });
        }
        404 | 410 => {
            prop_assert_eq!(delete, &DeleteReply::NotFound);
            prop_assert_eq!(patch, &PatchReply::NotFound);
            prop_assert_eq!(get, &GetReply::Gone);
        }
        _ => {
            // Nothing outside the shared statuses is throttled, transient or refused.
            prop_assert!(
                !matches!(
                    delete,
                    DeleteReply::Throttled { .. }
                        | DeleteReply::Transient { .. }
                        | DeleteReply::Unauthorized
                ),
                "{delete:?}"
            );
            prop_assert!(
                !matches!(
                    patch,
                    PatchReply::Throttled { .. }
                        | PatchReply::Transient { .. }
                        | PatchReply::Unauthorized
                ),
                "{patch:?}"
            );
            prop_assert!(
                !matches!(
                    get,
                    GetReply::Throttled { .. }
                        | GetReply::Transient { .. }
                        | GetReply::Unauthorized
                ),
                "{get:?}"
            );
        }
    }
    if status != 200 {
        prop_assert!(!matches!(get, GetReply::Present(_)), "{get:?}");
    }
    // Stack's own refusals are only ever read from an error reply.
    if status < 400 {
        prop_assert!(
            !matches!(
                delete,
                DeleteReply::SystemAccount
                    | DeleteReply::NeedsDemotion
                    | DeleteReply::CommunityCreator
            ),
            "{delete:?}"
        );
    }
    for waited in [
        match delete {
            DeleteReply::Throttled { retry_after } => *retry_after,
            _ => None,
        },
        match patch {
            PatchReply::Throttled { retry_after } => *retry_after,
            _ => None,
        },
        match get {
            GetReply::Throttled { retry_after } => *retry_after,
            _ => None,
        },
    ]
    .into_iter()
    .flatten()
    {
        prop_assert!(waited <= cap);
    }
    let failures = [
        match delete {
            DeleteReply::Failed { status, message } => Some((*status, message)),
            _ => None,
        },
        match patch {
            PatchReply::Failed { status, message } => Some((*status, message)),
            _ => None,
        },
        match get {
            GetReply::Failed { status, message } => Some((*status, message)),
            _ => None,
        },
    ];
    for (failed_status, message) in failures.into_iter().flatten() {
        prop_assert_eq!(failed_status, status);
        prop_assert!(!message.is_empty() && !message.contains('\n') && !message.contains('\r'));
    }
    Ok(())
}

/// A FAKE provider: serves `listed` users in pages of `cap`, but claims `total` (any JSON).
struct ClaimingSite {
    listed: usize,
    cap: usize,
    total: Value,
    requests: AtomicUsize,
}

#[async_trait]
impl ScimProvider for ClaimingSite {
    async fn list_users(&self, start: usize, count: usize) -> Result<ScimReply, TransportError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let from = start.saturating_sub(1).min(self.listed);
        let until = (from + count.min(self.cap)).min(self.listed);
        let resources: Vec<Value> = (from..until)
            .map(|i| json!({"id": format!("u{i}")}))
            .collect();
        Ok(ScimReply {
            status: 200,
            retry_after: None,
            content_type: Some("application/scim+json".into()),
            body: json!({"totalResults": self.total, "Resources": resources}).to_string(),
        })
    }
    async fn get_user(&self, _: &str) -> Result<ScimReply, TransportError> {
        Err(TransportError::Other("not used".into()))
    }
    async fn delete_user(&self, _: &str) -> Result<ScimReply, TransportError> {
        Err(TransportError::Other("not used".into()))
    }
    async fn patch_user(&self, _: &str, _: &Value) -> Result<ScimReply, TransportError> {
        Err(TransportError::Other("not used".into()))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_listing_against_any_claimed_total_ends_after_bounded_requests(
        listed in 0usize..300,
        cap in 1usize..120,
        total in prop_oneof![number(), (0usize..400).prop_map(Value::from)],
    ) {
        let site = ClaimingSite { listed, cap, total: total.clone(), requests: AtomicUsize::new(0) };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let opts = ListingOptions { retry_base_delay: Duration::ZERO, ..ListingOptions::default() };
        let result = runtime.block_on(list_all_users(&site, &opts, &|_, _| {}));
        if let Ok(users) = &result {
            // The site's total is believed (up to the cap), never more than it really lists.
            prop_assert_eq!(Some(users.len() as u64), total.as_u64());
            prop_assert!(users.len() <= listed);
        }
        // Two listings at most, each of the pages really listed plus the pages in flight
        // (20 at a time) when the first empty one came back, plus its gaps.
        let bound = 2 * (listed / cap + 1 + 2 * 20 + listed);
        prop_assert!(site.requests.load(Ordering::SeqCst) <= bound,
            "{} requests for {} users, cap {}, total {}", site.requests.load(Ordering::SeqCst), listed, cap, total);
    }
}
