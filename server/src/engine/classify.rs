//! What a SCIM reply means: the server's own message, throttling delays, and (for DELETE and
//! PATCH) the outcome class the runner acts on. Pure functions over [`ScimReply`] values.

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

#[cfg(test)]
mod tests {
    use super::*;

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
