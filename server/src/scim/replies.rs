//! What a SCIM reply means: the server's own message, throttling delays, and (for DELETE and
//! PATCH) the outcome class the runner acts on. Pure functions over [`ScimReply`] values.

use crate::scim::ScimReply;
use model::deletion::SiteUser;
use std::time::{Duration, SystemTime};

/// The server's own error message: Stack's `{"ErrorMessage": "..."}` or RFC 7644's
/// `{"detail": "..."}` (also `"message"`/`"error"` as some providers use); `None` when the body
/// has none of these. Never returns HTML or raw JSON: callers show this to admins.
pub fn server_message(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body.trim()).ok()?;
    let obj = value.as_object()?;
    ["ErrorMessage", "errorMessage", "detail", "message", "error"]
        .iter()
        .filter_map(|key| obj.get(*key))
        .filter_map(|v| v.as_str())
        .map(str::trim)
        .find(|s| !s.is_empty())
        .map(str::to_string)
}

/// How long `Retry-After` asks us to wait: delta-seconds or an HTTP date (RFC 9110 §10.2.3).
/// A date in the past means "now" (zero); an unreadable value is `None` so callers fall back
/// to their own backoff. Capped at one hour so a hostile header cannot stall a run for days.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    const CAP: Duration = Duration::from_secs(3600);
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(CAP));
    }
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs.min(CAP.as_secs_f64())));
        }
        return None;
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO).min(CAP))
}

/// What a DELETE reply means for the runner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeleteReply {
    /// 204 (or 200): the user is deleted.
    Deleted,
    /// 404: the user does not exist, *or* SCIM deletion is not enabled: only a GET can tell.
    NotFound,
    /// The site refuses to delete its system account.
    SystemAccount,
    /// The user is a Moderator/Admin and must be demoted to Registered first.
    NeedsDemotion,
    /// The user created a community: only Stack support can delete them.
    CommunityCreator,
    /// 429 (or 503 with a `Retry-After`): every request should wait.
    Throttled { retry_after: Option<Duration> },
    /// 408, 502, 503, 504: worth retrying later. `maybe_applied`: the DELETE may have been
    /// carried out anyway, so a retry must first look whether the user is still there. 408 and
    /// 503 say the request was not processed; a 502/504 comes from a proxy that may have passed
    /// the DELETE on before giving up.
    Transient { status: u16, maybe_applied: bool },
    /// 401/403: the token is wrong or lacks rights; nothing else will work either.
    Unauthorized,
    /// Anything else, with the server's own words (see [`plain_message`]).
    Failed { status: u16, message: String },
}

/// What a PATCH reply (deactivate, demote) means for the runner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatchReply {
    /// 200 or 204. Stack answers 200 even when it silently ignored a `userType` change, so
    /// the runner confirms a demotion with a GET.
    Applied,
    NotFound,
    Throttled {
        retry_after: Option<Duration>,
    },
    Transient {
        status: u16,
    },
    Unauthorized,
    Failed {
        status: u16,
        message: String,
    },
}

/// What a `GET .../users/{id}` reply means for the runner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GetReply {
    /// The user exists; its current state as the server reports it.
    Present(SiteUser),
    /// 404 or 410: no such user.
    Gone,
    Throttled {
        retry_after: Option<Duration>,
    },
    Transient {
        status: u16,
    },
    Unauthorized,
    Failed {
        status: u16,
        message: String,
    },
}

/// The reply classes every SCIM request shares, whatever it asked for: listing a page, checking
/// the connection, GET, DELETE or PATCH. This is the one place that decides which statuses mean
/// "slow down", "try again" and "the token is refused"; everyone else asks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SharedReply {
    /// 429, or a 503 that says when to come back: the site is shedding load, so every request
    /// (not only this one) should wait `Retry-After`, or a backoff when it is absent/unreadable.
    Throttled(Option<Duration>),
    /// 408, 502, 503 (without `Retry-After`), 504: worth another try after a backoff.
    Transient(u16),
    /// 401/403: the token is wrong or lacks rights; nothing else will work either.
    Unauthorized,
}

/// Classifies the statuses every operation treats alike; `None` for the rest, which each
/// operation reads in its own way (a 404 means different things to a DELETE and to a listing).
pub fn shared_reply(reply: &ScimReply, now: SystemTime) -> Option<SharedReply> {
    let retry_after = reply
        .retry_after
        .as_deref()
        .and_then(|v| parse_retry_after(v, now));
    match reply.status {
        401 | 403 => Some(SharedReply::Unauthorized),
        429 => Some(SharedReply::Throttled(retry_after)),
        503 if retry_after.is_some() => Some(SharedReply::Throttled(retry_after)),
        408 | 502 | 503 | 504 => Some(SharedReply::Transient(reply.status)),
        _ => None,
    }
}

/// The text the runner matches known Stack errors against: the server's message, or the raw
/// body when it is not JSON (some proxies and older servers answer in plain text). Only used
/// for matching, never shown.
fn matchable_text(reply: &ScimReply) -> String {
    server_message(&reply.body)
        .unwrap_or_else(|| reply.body.clone())
        .to_lowercase()
}

/// Whether a DELETE answered with this transient status may have been carried out anyway:
/// 408 and 503 say the request was not processed; a 502/504 comes from a proxy that may have
/// passed it on before giving up.
pub fn delete_maybe_applied(status: u16) -> bool {
    !matches!(status, 408 | 503)
}

fn is_success(status: u16) -> bool {
    status == 200 || status == 204
}

/// Classifies the reply to `DELETE .../users/{id}` (docs/engine.md, "Which replies mean what", has Stack's replies).
/// Stack's specific errors are recognised by their message whatever the status, because the
/// message is the stable part: a 400 "System Accounts" and a 500 "Adjust role to User" are what
/// Stack sends today, and the message is what tells them apart from other errors.
pub fn classify_delete(reply: &ScimReply, now: SystemTime) -> DeleteReply {
    if is_success(reply.status) {
        return DeleteReply::Deleted;
    }
    if let Some(shared) = shared_reply(reply, now) {
        return match shared {
            SharedReply::Throttled(retry_after) => DeleteReply::Throttled { retry_after },
            SharedReply::Transient(status) => DeleteReply::Transient {
                status,
                maybe_applied: delete_maybe_applied(status),
            },
            SharedReply::Unauthorized => DeleteReply::Unauthorized,
        };
    }
    if reply.status == 404 || reply.status == 410 {
        return DeleteReply::NotFound;
    }
    if reply.status >= 400 {
        let text = matchable_text(reply);
        if text.contains("system account") {
            return DeleteReply::SystemAccount;
        }
        if text.contains("adjust role to user") {
            return DeleteReply::NeedsDemotion;
        }
        if text.contains("fk_communitymemberships_creationuser") {
            return DeleteReply::CommunityCreator;
        }
    }
    DeleteReply::Failed {
        status: reply.status,
        message: plain_message(reply),
    }
}

/// Classifies the reply to `PATCH .../users/{id}`.
pub fn classify_patch(reply: &ScimReply, now: SystemTime) -> PatchReply {
    if is_success(reply.status) {
        return PatchReply::Applied;
    }
    match shared_reply(reply, now) {
        Some(SharedReply::Throttled(retry_after)) => PatchReply::Throttled { retry_after },
        Some(SharedReply::Transient(status)) => PatchReply::Transient { status },
        Some(SharedReply::Unauthorized) => PatchReply::Unauthorized,
        None if reply.status == 404 || reply.status == 410 => PatchReply::NotFound,
        None => PatchReply::Failed {
            status: reply.status,
            message: plain_message(reply),
        },
    }
}

/// Classifies the reply to `GET .../users/{id}`. A 200 whose body is not a SCIM user (an HTML
/// login page, say) is a failure, never "present": the runner must not act on a guess.
pub fn classify_get(reply: &ScimReply, now: SystemTime) -> GetReply {
    if reply.status == 200 {
        let user = serde_json::from_str::<serde_json::Value>(reply.body.trim())
            .ok()
            .and_then(|v| crate::scim::users::parse_user(&v));
        return match user {
            Some(user) => GetReply::Present(user),
            None => GetReply::Failed {
                status: 200,
                message: "the site's reply was not a SCIM user".to_string(),
            },
        };
    }
    match shared_reply(reply, now) {
        Some(SharedReply::Throttled(retry_after)) => GetReply::Throttled { retry_after },
        Some(SharedReply::Transient(status)) => GetReply::Transient { status },
        Some(SharedReply::Unauthorized) => GetReply::Unauthorized,
        None if reply.status == 404 || reply.status == 410 => GetReply::Gone,
        None => GetReply::Failed {
            status: reply.status,
            message: plain_message(reply),
        },
    }
}

/// What to tell the admin about a failed reply: the server's own message; else a short
/// plain-text body (some proxies answer that way); else "HTTP 500 with no message". Never raw
/// HTML or JSON.
pub fn plain_message(reply: &ScimReply) -> String {
    if let Some(message) = server_message(&reply.body) {
        return one_line(&message);
    }
    let is_plain_text = reply
        .content_type
        .as_deref()
        .map(|c| c.trim().to_ascii_lowercase().starts_with("text/plain"))
        .unwrap_or(false);
    let body = one_line(&reply.body);
    if is_plain_text && !body.is_empty() && body.chars().count() <= 200 && !body.contains('<') {
        return format!("HTTP {}: {}", reply.status, body);
    }
    let looks_like_page = reply
        .content_type
        .as_deref()
        .map(|c| c.to_ascii_lowercase().contains("html"))
        .unwrap_or(false)
        || reply.body.trim_start().starts_with('<');
    if looks_like_page {
        format!(
            "HTTP {} with no message (the reply was a web page, not a SCIM answer)",
            reply.status
        )
    } else {
        format!("HTTP {} with no message", reply.status)
    }
}

/// Collapses whitespace and drops control characters so a message fits one report cell.
fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::deletion::Role;

    fn reply(status: u16, body: &str) -> ScimReply {
        ScimReply::json(status, body)
    }

    fn with_retry_after(mut r: ScimReply, value: &str) -> ScimReply {
        r.retry_after = Some(value.to_string());
        r
    }

    fn now() -> SystemTime {
        httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").expect("date")
    }

    fn stack_error(status: u16, message: &str) -> ScimReply {
        reply(
            status,
            &serde_json::json!({ "ErrorMessage": message }).to_string(),
        )
    }

    #[test]
    fn delete_success_codes() {
        assert_eq!(
            classify_delete(&reply(204, ""), now()),
            DeleteReply::Deleted
        );
        assert_eq!(
            classify_delete(&reply(200, "{}"), now()),
            DeleteReply::Deleted
        );
        // 201/202 are not what a DELETE answers: not taken as success.
        assert!(matches!(
            classify_delete(&reply(202, ""), now()),
            DeleteReply::Failed { status: 202, .. }
        ));
    }

    #[test]
    fn delete_stack_errors_by_message() {
        assert_eq!(
            classify_delete(
                &stack_error(400, "You cannot delete or destroy System Accounts."),
                now()
            ),
            DeleteReply::SystemAccount
        );
        assert_eq!(
            classify_delete(
                &stack_error(
                    500,
                    "User is a moderator or admin. Adjust role to User before deleting."
                ),
                now()
            ),
            DeleteReply::NeedsDemotion
        );
        assert_eq!(
            classify_delete(&stack_error(500, "ADJUST ROLE TO USER"), now()),
            DeleteReply::NeedsDemotion
        );
        assert_eq!(
            classify_delete(
                &stack_error(
                    500,
                    "The DELETE statement conflicted with the REFERENCE constraint \"FK_CommunityMemberships_CreationUser\"."
                ),
                now()
            ),
            DeleteReply::CommunityCreator
        );
        // RFC 7644 `detail` works the same.
        let rfc = reply(
            400,
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400","detail":"You cannot delete or destroy system accounts."}"#,
        );
        assert_eq!(classify_delete(&rfc, now()), DeleteReply::SystemAccount);
        // Plain-text bodies are matched too.
        let text = ScimReply {
            content_type: Some("text/plain".into()),
            ..reply(500, "Adjust role to User")
        };
        assert_eq!(classify_delete(&text, now()), DeleteReply::NeedsDemotion);
    }

    #[test]
    fn delete_other_500_keeps_server_words() {
        assert_eq!(
            classify_delete(&stack_error(500, "Database timeout"), now()),
            DeleteReply::Failed {
                status: 500,
                message: "Database timeout".into()
            }
        );
        assert_eq!(
            classify_delete(&reply(500, "<html><body>Oops</body></html>"), now()),
            DeleteReply::Failed {
                status: 500,
                message: "HTTP 500 with no message (the reply was a web page, not a SCIM answer)"
                    .into()
            }
        );
        // Other 400s are not system accounts.
        assert!(matches!(
            classify_delete(&stack_error(400, "Bad request"), now()),
            DeleteReply::Failed { status: 400, .. }
        ));
    }

    #[test]
    fn delete_not_found_auth_throttle_transient() {
        assert_eq!(
            classify_delete(&reply(404, ""), now()),
            DeleteReply::NotFound
        );
        assert_eq!(
            classify_delete(&reply(410, ""), now()),
            DeleteReply::NotFound
        );
        assert_eq!(
            classify_delete(&reply(401, ""), now()),
            DeleteReply::Unauthorized
        );
        assert_eq!(
            classify_delete(&stack_error(403, "System Account"), now()),
            DeleteReply::Unauthorized
        );
        assert_eq!(
            classify_delete(&with_retry_after(reply(429, ""), "12"), now()),
            DeleteReply::Throttled {
                retry_after: Some(Duration::from_secs(12))
            }
        );
        assert_eq!(
            classify_delete(
                &with_retry_after(reply(429, ""), "Sun, 06 Nov 1994 08:49:40 GMT"),
                now()
            ),
            DeleteReply::Throttled {
                retry_after: Some(Duration::from_secs(3))
            }
        );
        assert_eq!(
            classify_delete(&with_retry_after(reply(429, ""), "later"), now()),
            DeleteReply::Throttled { retry_after: None }
        );
        assert_eq!(
            classify_delete(&reply(429, ""), now()),
            DeleteReply::Throttled { retry_after: None }
        );
        for (status, maybe_applied) in [(408, false), (502, true), (503, false), (504, true)] {
            assert_eq!(
                classify_delete(&reply(status, "<html>busy</html>"), now()),
                DeleteReply::Transient {
                    status,
                    maybe_applied
                }
            );
        }
        // A 503 that says when to come back is throttling.
        assert_eq!(
            classify_delete(&with_retry_after(reply(503, ""), "5"), now()),
            DeleteReply::Throttled {
                retry_after: Some(Duration::from_secs(5))
            }
        );
    }

    #[test]
    fn patch_classes() {
        assert_eq!(
            classify_patch(&reply(200, "{}"), now()),
            PatchReply::Applied
        );
        assert_eq!(classify_patch(&reply(204, ""), now()), PatchReply::Applied);
        assert_eq!(classify_patch(&reply(404, ""), now()), PatchReply::NotFound);
        assert_eq!(
            classify_patch(&reply(403, ""), now()),
            PatchReply::Unauthorized
        );
        assert_eq!(
            classify_patch(&with_retry_after(reply(429, ""), "1"), now()),
            PatchReply::Throttled {
                retry_after: Some(Duration::from_secs(1))
            }
        );
        assert_eq!(
            classify_patch(&reply(504, ""), now()),
            PatchReply::Transient { status: 504 }
        );
        assert_eq!(
            classify_patch(&stack_error(400, "Unsupported path"), now()),
            PatchReply::Failed {
                status: 400,
                message: "Unsupported path".into()
            }
        );
    }

    #[test]
    fn get_reads_the_user() {
        let body = r#"{"id":"42","externalId":"e-42","userName":"Ann","displayName":"Ann A",
            "emails":[{"value":"ann@old.example"},{"value":" Ann@Example.com ","primary":true}],
            "active":false,"userType":"Moderator","meta":{"created":"2020-01-01T00:00:00Z"}}"#;
        let GetReply::Present(user) = classify_get(&reply(200, body), now()) else {
            panic!("expected a user");
        };
        assert_eq!(user.id, "42");
        assert_eq!(user.external_id.as_deref(), Some("e-42"));
        assert_eq!(user.user_name.as_deref(), Some("Ann"));
        assert_eq!(user.display_name.as_deref(), Some("Ann A"));
        assert_eq!(user.emails, vec!["ann@old.example", "Ann@Example.com"]);
        assert_eq!(user.primary_email.as_deref(), Some("Ann@Example.com"));
        assert!(!user.active);
        assert_eq!(user.role, Role::Moderator);
        assert_eq!(user.created.as_deref(), Some("2020-01-01T00:00:00Z"));
    }

    #[test]
    fn get_minimal_and_odd_users() {
        let GetReply::Present(user) = classify_get(&reply(200, r#"{"id":"7"}"#), now()) else {
            panic!("expected a user");
        };
        assert!(user.emails.is_empty());
        assert_eq!(user.primary_email, None);
        assert!(user.active);
        assert_eq!(user.role, Role::Registered);

        let body = r#"{"id":"8","emails":[{"primary":true},{"value":""},{"value":"b@x.io"}],
            "active":"false","userType":""}"#;
        let GetReply::Present(user) = classify_get(&reply(200, body), now()) else {
            panic!("expected a user");
        };
        assert_eq!(user.emails, vec!["b@x.io"]);
        assert_eq!(user.primary_email.as_deref(), Some("b@x.io"));
        assert!(!user.active);
        assert_eq!(user.role, Role::Registered);
    }

    #[test]
    fn get_rejects_things_that_are_not_users() {
        for body in [
            "",
            "<html>Sign in</html>",
            "[]",
            r#"{"id":""}"#,
            r#"{"userName":"x"}"#,
        ] {
            assert!(
                matches!(
                    classify_get(&reply(200, body), now()),
                    GetReply::Failed { status: 200, .. }
                ),
                "body {body:?}"
            );
        }
    }

    #[test]
    fn get_other_classes() {
        assert_eq!(classify_get(&reply(404, ""), now()), GetReply::Gone);
        assert_eq!(classify_get(&reply(410, ""), now()), GetReply::Gone);
        assert_eq!(classify_get(&reply(401, ""), now()), GetReply::Unauthorized);
        assert_eq!(
            classify_get(&reply(502, ""), now()),
            GetReply::Transient { status: 502 }
        );
        assert_eq!(
            classify_get(&with_retry_after(reply(429, ""), "2"), now()),
            GetReply::Throttled {
                retry_after: Some(Duration::from_secs(2))
            }
        );
        assert_eq!(
            classify_get(&stack_error(500, "boom"), now()),
            GetReply::Failed {
                status: 500,
                message: "boom".into()
            }
        );
    }

    #[test]
    fn plain_messages() {
        assert_eq!(plain_message(&reply(500, "")), "HTTP 500 with no message");
        assert_eq!(
            plain_message(&stack_error(500, "line one\n\tline two ")),
            "line one line two"
        );
        let text = ScimReply {
            content_type: Some("text/plain; charset=utf-8".into()),
            ..reply(502, "upstream connect error\r\n")
        };
        assert_eq!(plain_message(&text), "HTTP 502: upstream connect error");
        // HTML served as text/plain is still not shown.
        let sneaky = ScimReply {
            content_type: Some("text/plain".into()),
            ..reply(502, "<html><script>x</script></html>")
        };
        assert!(!plain_message(&sneaky).contains('<'));
        // A long plain-text body is not dumped into the report.
        let long = ScimReply {
            content_type: Some("text/plain".into()),
            ..reply(500, &"x".repeat(500))
        };
        assert_eq!(plain_message(&long), "HTTP 500 with no message");
        // Raw JSON without a message key is not shown either.
        assert_eq!(
            plain_message(&reply(500, r#"{"code":17}"#)),
            "HTTP 500 with no message"
        );
    }

    #[test]
    fn reads_stack_error_message() {
        let body = r#"{"ErrorMessage":"You cannot delete or destroy System Accounts."}"#;
        assert_eq!(
            server_message(body).as_deref(),
            Some("You cannot delete or destroy System Accounts.")
        );
    }

    #[test]
    fn reads_rfc7644_detail() {
        let body = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"404","detail":"Resource 42 not found"}"#;
        assert_eq!(
            server_message(body).as_deref(),
            Some("Resource 42 not found")
        );
    }

    #[test]
    fn no_message_in_html_empty_or_blank_values() {
        assert_eq!(server_message("<html><body>Not Found</body></html>"), None);
        assert_eq!(server_message(""), None);
        assert_eq!(server_message(r#"{"ErrorMessage":"  "}"#), None);
        assert_eq!(server_message(r#"["detail"]"#), None);
        assert_eq!(server_message(r#"{"detail": 5}"#), None);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").expect("date");
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        // A date in the past: retry now.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
        assert_eq!(
            parse_retry_after("99999999", now),
            Some(Duration::from_secs(3600))
        );
    }
}
