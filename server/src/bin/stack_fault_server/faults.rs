//! Faults the fault server can inject: scripted per-account replies and the rate limiter.

use std::time::{Duration, Instant};

/// What the next request for an account gets, from `POST /_control/faults`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScriptedReply {
    /// Handle the request normally (lets a script say "fail, then work, then fail").
    Normal,
    /// Answer with this status without doing anything. `message` overrides the
    /// `ErrorMessage`; 2xx answers have no body (a server claiming success it never did).
    Status {
        status: u16,
        message: Option<String>,
    },
    /// A 429 whose `Retry-After` is an HTTP date rather than seconds.
    TooManyWithDate,
    /// Do the work (delete the user), then stay silent for longer than the client waits.
    TimeoutAfterWork { sleep_ms: Option<u64> },
    /// Stay silent without doing the work, then answer 504.
    TimeoutBeforeWork { sleep_ms: Option<u64> },
    /// A 200 HTML sign-in page, as a proxy or SSO wall returns instead of SCIM JSON.
    Html,
}

/// Reads one script step: `503`, `500:some message`, `429-date`, `ok`, `html`,
/// `timeout_after_delete`, `timeout_after_delete:5000`, `timeout_before_delete[:MS]`.
pub fn parse_step(text: &str) -> Result<ScriptedReply, String> {
    let text = text.trim();
    let (head, tail) = match text.split_once(':') {
        Some((head, tail)) => (head.trim(), Some(tail)),
        None => (text, None),
    };
    let sleep_ms = |tail: Option<&str>| -> Result<Option<u64>, String> {
        tail.map(|ms| {
            ms.trim()
                .parse::<u64>()
                .map_err(|_| format!("{text:?}: the part after ':' must be milliseconds"))
        })
        .transpose()
    };
    match head.to_ascii_lowercase().as_str() {
        "ok" | "pass" | "normal" if tail.is_none() => Ok(ScriptedReply::Normal),
        "html" if tail.is_none() => Ok(ScriptedReply::Html),
        "429-date" if tail.is_none() => Ok(ScriptedReply::TooManyWithDate),
        "timeout_after_delete" | "timeout_after" => Ok(ScriptedReply::TimeoutAfterWork {
            sleep_ms: sleep_ms(tail)?,
        }),
        "timeout_before_delete" | "timeout_before" => Ok(ScriptedReply::TimeoutBeforeWork {
            sleep_ms: sleep_ms(tail)?,
        }),
        digits => match digits.parse::<u16>() {
            Ok(status) if (200..=599).contains(&status) => Ok(ScriptedReply::Status {
                status,
                message: tail.map(str::to_string),
            }),
            _ => Err(format!(
                "{text:?} is not a script step (use a status 200-599, \"STATUS:message\", \
                 \"429-date\", \"ok\", \"html\", \"timeout_after_delete[:MS]\" or \
                 \"timeout_before_delete[:MS]\")"
            )),
        },
    }
}

/// The `ErrorMessage` a scripted status carries when the script gives none.
pub fn default_message(status: u16) -> String {
    match status {
        400 => "Bad Request".into(),
        401 => "Unauthorized".into(),
        403 => "Forbidden".into(),
        404 => "User not found.".into(),
        429 => "Too many requests. Please slow down.".into(),
        500 => "An unexpected error occurred.".into(),
        502 => "Bad Gateway".into(),
        503 => "Service Unavailable".into(),
        504 => "Gateway Timeout".into(),
        other => format!("Scripted fault {other}"),
    }
}

/// A token bucket: holds up to `rate` tokens (one second's worth of burst), refills at `rate`
/// per second; a request takes one token or is throttled.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: f64, now: Instant) -> TokenBucket {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            f64::MIN_POSITIVE
        };
        TokenBucket {
            rate,
            tokens: rate.max(1.0),
            last: now,
        }
    }

    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate).min(self.rate.max(1.0));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// How long a "timeout" step stays silent when the script gives no duration.
pub fn sleep_for(step_ms: Option<u64>, default_ms: u64) -> Duration {
    Duration::from_millis(step_ms.unwrap_or(default_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_step_kind() {
        assert_eq!(
            parse_step("503"),
            Ok(ScriptedReply::Status {
                status: 503,
                message: None
            })
        );
        assert_eq!(
            parse_step(" 500:Adjust role to User: first ").unwrap(),
            ScriptedReply::Status {
                status: 500,
                message: Some("Adjust role to User: first".into())
            }
        );
        assert_eq!(parse_step("OK"), Ok(ScriptedReply::Normal));
        assert_eq!(parse_step("html"), Ok(ScriptedReply::Html));
        assert_eq!(parse_step("429-date"), Ok(ScriptedReply::TooManyWithDate));
        assert_eq!(
            parse_step("timeout_after_delete"),
            Ok(ScriptedReply::TimeoutAfterWork { sleep_ms: None })
        );
        assert_eq!(
            parse_step("timeout_after_delete:250"),
            Ok(ScriptedReply::TimeoutAfterWork {
                sleep_ms: Some(250)
            })
        );
        assert_eq!(
            parse_step("timeout_before_delete:9"),
            Ok(ScriptedReply::TimeoutBeforeWork { sleep_ms: Some(9) })
        );
    }

    #[test]
    fn refuses_nonsense_steps() {
        for bad in [
            "",
            "abc",
            "99",
            "600",
            "-1",
            "timeout_after_delete:soon",
            "ok:1",
            "50 3",
        ] {
            assert!(parse_step(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn bucket_allows_burst_then_throttles_then_refills() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(3.0, start);
        assert!(bucket.try_take(start));
        assert!(bucket.try_take(start));
        assert!(bucket.try_take(start));
        assert!(!bucket.try_take(start));
        assert!(!bucket.try_take(start + Duration::from_millis(100)));
        assert!(bucket.try_take(start + Duration::from_millis(400)));
        // A long pause never banks more than one second's worth.
        let later = start + Duration::from_secs(60);
        assert!((0..3).all(|_| bucket.try_take(later)));
        assert!(!bucket.try_take(later));
    }

    #[test]
    fn bucket_below_one_per_second_still_allows_a_first_request() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(0.5, start);
        assert!(bucket.try_take(start));
        assert!(!bucket.try_take(start + Duration::from_millis(1000)));
        assert!(bucket.try_take(start + Duration::from_millis(2100)));
        let mut broken = TokenBucket::new(f64::NAN, start);
        assert!(broken.try_take(start));
        assert!(!broken.try_take(start + Duration::from_secs(5)));
    }

    #[test]
    fn default_messages_are_plain() {
        assert_eq!(default_message(404), "User not found.");
        assert_eq!(default_message(418), "Scripted fault 418");
    }
}
