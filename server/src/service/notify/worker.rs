//! The outbox worker: every console process runs one. It claims the deliveries that are due
//! (a claim lasts [`CLAIM`], so a delivery is sent by one process at a time and a killed
//! process's claims lapse to the others), sends each, and records the outcome, fenced by its
//! claim. A failed delivery is tried again with back-off for a day ([`next_try`]); the delivery
//! id stays the same on every try, so a receiver can drop a repeat.

use super::mail::{compose, mail_text};
use super::message::{message, Message};
use super::webhook::{self, Event, Receiver, DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER};
use super::{signing_secret, Console};
use crate::scim::site_guard;
use crate::storage::{DeliveryClaim, DueDelivery, FailedAttempt};
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;

/// How long a claimed delivery stays this process's: longer than one send may take.
pub const CLAIM: std::time::Duration = std::time::Duration::from_secs(45);
/// How long one webhook request may take.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How often the worker looks for due deliveries.
const POLL: std::time::Duration = std::time::Duration::from_secs(1);
/// Deliveries claimed at a time.
const BATCH: u32 = 20;
/// The first retry's delay, doubled each time up to [`MAX_DELAY`].
const FIRST_DELAY_SECONDS: i64 = 30;
const MAX_DELAY_SECONDS: i64 = 3600;
/// After this long from the notification, a delivery is given up.
const GIVE_UP_AFTER_HOURS: i64 = 24;

/// When to try a delivery again after its `attempts`-th failed try at `now`, or None to give
/// up: 30 s, 1 min, 2 min, … up to an hour between tries, for a day after it was made.
pub fn next_try(made: DateTime<Utc>, attempts: i64, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    let delay = (FIRST_DELAY_SECONDS << doublings).min(MAX_DELAY_SECONDS);
    let at = now + Duration::seconds(delay);
    (at <= made + Duration::hours(GIVE_UP_AFTER_HOURS)).then_some(at)
}

/// Starts this process's worker; it runs until the process ends.
pub fn spawn(console: Arc<Console>) {
    let holder = format!("outbox-{}", uuid::Uuid::new_v4());
    tokio::spawn(async move {
        loop {
            match deliver_due(&console, &holder).await {
                // A full batch: more may be waiting.
                Ok(n) if n >= BATCH as usize => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not read the notifications outbox"),
            }
            tokio::time::sleep(POLL).await;
        }
    });
}

/// Sends the deliveries due now; returns how many were claimed.
pub async fn deliver_due(
    console: &Console,
    holder: &str,
) -> Result<usize, crate::storage::StorageError> {
    let now = console.clock.now();
    let until = now + Duration::from_std(CLAIM).unwrap_or(Duration::seconds(45));
    let due = console
        .storage
        .claim_deliveries(&DeliveryClaim {
            holder,
            now,
            until,
            limit: BATCH,
        })
        .await?;
    let claimed = due.len();
    for delivery in due {
        let outcome = send(console, &delivery).await;
        let at = console.clock.now();
        let recorded = match outcome {
            Ok(()) => {
                console
                    .storage
                    .delivery_sent(&delivery.id, holder, at)
                    .await
            }
            Err(problem) => {
                let retry_at = if problem.final_ {
                    None
                } else {
                    next_try(delivery.created_at, delivery.attempts + 1, at)
                };
                tracing::info!(delivery = %delivery.id, error = %problem.words, retry = retry_at.is_some(), "a notification was not delivered");
                let failed = FailedAttempt {
                    error: problem.words,
                    retry_at,
                };
                console
                    .storage
                    .delivery_failed(&delivery.id, holder, &failed)
                    .await
            }
        };
        match recorded {
            Ok(true) => {}
            // Held too long (another process took it over): that process records it.
            Ok(false) => {
                tracing::warn!(delivery = %delivery.id, "a delivery's claim lapsed before its outcome was recorded")
            }
            Err(e) => {
                tracing::warn!(delivery = %delivery.id, error = %e, "could not record a delivery's outcome")
            }
        }
    }
    Ok(claimed)
}

/// Why a try failed, in the words the delivery log shows; `final_` when trying again cannot help.
struct Problem {
    words: String,
    final_: bool,
}

impl Problem {
    fn again(words: impl Into<String>) -> Problem {
        Problem {
            words: words.into(),
            final_: false,
        }
    }
}

async fn send(console: &Console, delivery: &DueDelivery) -> Result<(), Problem> {
    let team = console
        .storage
        .team(delivery.team_id)
        .await
        .ok()
        .flatten()
        .map(|t| t.name)
        .unwrap_or_default();
    let details: serde_json::Value =
        serde_json::from_str(&delivery.details).unwrap_or(serde_json::Value::Null);
    let words = message(
        &delivery.event,
        &delivery.actor,
        &delivery.target,
        &details,
        &team,
        console.public_url.as_deref(),
    );
    if delivery.channel == "email" {
        return send_mail(console, delivery, &words).await;
    }
    let url = url::Url::parse(&delivery.address).map_err(|_| Problem {
        words: "The saved address is not a web address.".into(),
        final_: true,
    })?;
    let webhook = console
        .storage
        .webhook(delivery.team_id)
        .await
        .map_err(|_| Problem::again("Could not read the team's webhook."))?
        .ok_or(Problem {
            words: "The webhook was removed before this went out.".into(),
            final_: true,
        })?;
    let receiver = Receiver::of(&url);
    let event = Event {
        delivery_id: &delivery.id,
        event: &delivery.event,
        team: &team,
        created_at: delivery.created_at,
        details: &details,
    };
    let body = serde_json::to_vec(&webhook::body(receiver, &words, &event))
        .map_err(|_| Problem::again("Could not write the message."))?;
    let client = client(console, &url).await?;
    let secret = signing_secret(&console.webhook_key, delivery.team_id, &webhook.secret_salt);
    let signed = webhook::signature(secret.expose(), console.clock.now().timestamp(), &body);
    let answer = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(DELIVERY_HEADER, &delivery.id)
        .header(EVENT_HEADER, &delivery.event)
        .header(SIGNATURE_HEADER, signed)
        .body(body)
        .send()
        .await
        .map_err(|e| Problem::again(unreachable_words(&e)))?;
    let status = answer.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(Problem::again(
            format!(
                "The receiver answered {} {}.",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            )
            .replace(" .", "."),
        ))
    }
}

/// Sends one delivery by email through the console's mail server. A console without one (a
/// replica started without --smtp-url) leaves it to try again: another replica, or this one
/// once restarted with it, sends it.
async fn send_mail(
    console: &Console,
    delivery: &DueDelivery,
    words: &Message,
) -> Result<(), Problem> {
    let Some(mailer) = &console.mail else {
        return Err(Problem::again(
            "This console has no mail server set up (--smtp-url).",
        ));
    };
    let account_page = console
        .public_url
        .as_deref()
        .map(|base| format!("{base}/account"));
    let mail = compose(
        mail_text(words, account_page.as_deref()),
        &mailer.from,
        &delivery.address,
        &delivery.id,
    )
    .map_err(|p| Problem {
        words: p.0,
        final_: true,
    })?;
    mailer
        .server
        .send(mail)
        .await
        .map_err(|p| Problem::again(p.0))
}

/// A client for one webhook address, reaching only what the site guard allows (the same
/// rules as site addresses; the addresses a name resolves to are checked where they are used).
async fn client(console: &Console, url: &url::Url) -> Result<reqwest::Client, Problem> {
    let refused = |words: String| Problem {
        words: format!("The address is not allowed: {words}."),
        final_: true,
    };
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("Offboard/", env!("CARGO_PKG_VERSION")))
        .timeout(SEND_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(guard) = &console.http.site_guard {
        guard.check_url(url).map_err(|r| refused(r.to_string()))?;
        match &guard.proxy {
            Some(proxy) => {
                guard
                    .check_host_before_proxy(url.host_str().unwrap_or_default())
                    .await
                    .map_err(|r| refused(r.to_string()))?;
                let proxy = reqwest::Proxy::all(proxy.expose().as_str())
                    .map_err(|_| Problem::again("The --sites-proxy address cannot be used."))?;
                builder = builder.no_proxy().proxy(proxy);
            }
            None => builder = builder.no_proxy().dns_resolver(guard.resolver()),
        }
    }
    builder
        .build()
        .map_err(|_| Problem::again("Could not prepare the request."))
}

fn unreachable_words(e: &reqwest::Error) -> String {
    if let Some(refused) = site_guard::refusal_in(e) {
        return format!("The address is not allowed: {refused}.");
    }
    if e.is_timeout() {
        "The receiver did not answer within 10 seconds.".to_string()
    } else {
        "Could not reach the address.".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn tries_back_off_from_thirty_seconds_to_an_hour_and_stop_after_a_day() {
        let made = Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap();
        let after = |attempts, now: DateTime<Utc>| {
            next_try(made, attempts, now).map(|t| (t - now).num_seconds())
        };
        assert_eq!(after(1, made), Some(30));
        assert_eq!(after(2, made), Some(60));
        assert_eq!(after(3, made), Some(120));
        assert_eq!(after(8, made), Some(3600), "capped at an hour");
        assert_eq!(after(500, made), Some(3600), "no overflow");
        assert_eq!(after(0, made), Some(30), "never less than the first delay");
        let late = made + Duration::hours(23) + Duration::minutes(59);
        assert_eq!(after(30, late), None, "the next try would be past a day");
        assert_eq!(
            after(1, late),
            Some(30),
            "a short delay still fits in the day"
        );
        assert_eq!(after(1, made + Duration::hours(24)), None);
    }
}
