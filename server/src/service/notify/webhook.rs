//! What a team's webhook receives: Slack's `{"text": …}` for a Slack incoming webhook, an
//! Adaptive Card for a Microsoft Teams workflow, and for any other address a JSON event signed
//! the way Stripe and GitHub sign theirs (HMAC-SHA256 over the timestamp and the body, with a
//! delivery id to de-duplicate by). Pure: the worker sends what these functions make.

use super::message::Message;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

/// The header carrying `t=<unix seconds>,v1=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "X-Offboard-Signature";
/// The header carrying the delivery id: the same on every retry of one delivery.
pub const DELIVERY_HEADER: &str = "X-Offboard-Delivery";
/// The header naming the event ("approval_requested", …).
pub const EVENT_HEADER: &str = "X-Offboard-Event";

/// Which kind of receiver an address is, by its host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receiver {
    /// `hooks.slack.com`.
    Slack,
    /// A Microsoft Teams workflow (Power Automate) or a legacy Office 365 connector.
    Teams,
    /// Anything else: the signed JSON event.
    Signed,
}

impl Receiver {
    pub fn of(url: &url::Url) -> Receiver {
        let host = url.host_str().unwrap_or("").to_ascii_lowercase();
        let under = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
        if host == "hooks.slack.com" {
            Receiver::Slack
        } else if under("logic.azure.com")
            || under("powerplatform.com")
            || under("webhook.office.com")
        {
            Receiver::Teams
        } else {
            Receiver::Signed
        }
    }

    /// How the Team page names it.
    pub fn words(self) -> &'static str {
        match self {
            Receiver::Slack => "Slack (a message with a link)",
            Receiver::Teams => "Microsoft Teams (an Adaptive Card)",
            Receiver::Signed => "a signed JSON event (X-Offboard-Signature)",
        }
    }
}

/// What one delivery is about, besides its words.
pub struct Event<'a> {
    pub delivery_id: &'a str,
    pub event: &'a str,
    pub team: &'a str,
    pub created_at: DateTime<Utc>,
    /// The audit entry's details (counts and ids only).
    pub details: &'a Value,
}

/// The JSON body `receiver` gets for `message`.
pub fn body(receiver: Receiver, message: &Message, event: &Event<'_>) -> Value {
    match receiver {
        Receiver::Slack => {
            let link = message
                .link
                .as_deref()
                .map(|l| format!(" <{l}|Open it in Offboard>"))
                .unwrap_or_default();
            json!({ "text": format!("*{}*: {}{link}", message.title, slack_escape(&message.text)) })
        }
        Receiver::Teams => {
            let mut card = json!({
                "type": "AdaptiveCard",
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "version": "1.4",
                "body": [
                    {"type": "TextBlock", "text": message.title, "weight": "Bolder", "size": "Medium", "wrap": true},
                    {"type": "TextBlock", "text": message.text, "wrap": true}
                ]
            });
            if let Some(link) = &message.link {
                card["actions"] = json!([{"type": "Action.OpenUrl", "title": "Open it in Offboard", "url": link}]);
            }
            json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": card
                }]
            })
        }
        Receiver::Signed => json!({
            "id": event.delivery_id,
            "event": event.event,
            "team": event.team,
            "created_at": event.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "title": message.title,
            "text": message.text,
            "link": message.link,
            "details": event.details,
        }),
    }
}

/// Slack reads `&`, `<` and `>` as markup: a person's name must not become a link.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The signature header's value for `body` sent at `unix_seconds`, signed with `secret` (the
/// text the Team page showed, as UTF-8 bytes): `t=<seconds>,v1=<hex of
/// HMAC-SHA256(secret, "<seconds>.<body>")>`.
pub fn signature(secret: &str, unix_seconds: i64, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = match Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes a key of any length; this arm is never reached.
        Err(_) => return format!("t={unix_seconds},v1="),
    };
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={unix_seconds},v1={}", hex(&mac.finalize().into_bytes()))
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn message() -> Message {
        Message {
            title: "Approval requested".into(),
            text: "Carol <carol@x.io> asks to delete 2 users & more.".into(),
            link: Some("https://o.example/preview?id=p".into()),
        }
    }

    fn event(details: &Value) -> Event<'_> {
        Event {
            delivery_id: "d-1",
            event: "approval_requested",
            team: "Alpha",
            created_at: Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap(),
            details,
        }
    }

    #[test]
    fn the_receiver_is_told_by_the_host() {
        for (url, want) in [
            ("https://hooks.slack.com/services/T/B/x", Receiver::Slack),
            (
                "https://prod-12.westeurope.logic.azure.com/workflows/1",
                Receiver::Teams,
            ),
            (
                "https://x.environment.api.powerplatform.com/hook",
                Receiver::Teams,
            ),
            (
                "https://acme.webhook.office.com/webhookb2/1",
                Receiver::Teams,
            ),
            ("https://hooks.slack.com.evil.example/x", Receiver::Signed),
            ("https://notlogic.azure.com/x", Receiver::Signed),
            ("https://ops.example.com/offboard", Receiver::Signed),
        ] {
            assert_eq!(Receiver::of(&url::Url::parse(url).unwrap()), want, "{url}");
        }
    }

    #[test]
    fn slack_gets_text_with_a_link_and_no_markup_from_names() {
        let details = json!({});
        let b = body(Receiver::Slack, &message(), &event(&details));
        assert_eq!(
            b,
            json!({"text": "*Approval requested*: Carol &lt;carol@x.io&gt; asks to delete 2 users &amp; more. <https://o.example/preview?id=p|Open it in Offboard>"})
        );
    }

    #[test]
    fn teams_gets_an_adaptive_card_with_an_open_action() {
        let details = json!({});
        let b = body(Receiver::Teams, &message(), &event(&details));
        assert_eq!(b["type"], "message");
        let card = &b["attachments"][0];
        assert_eq!(
            card["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(card["content"]["body"][0]["text"], "Approval requested");
        assert_eq!(
            card["content"]["actions"][0]["url"],
            "https://o.example/preview?id=p"
        );
    }

    #[test]
    fn anything_else_gets_the_event_with_its_delivery_id() {
        let details = json!({"users": 2});
        let b = body(Receiver::Signed, &message(), &event(&details));
        assert_eq!(b["id"], "d-1");
        assert_eq!(b["event"], "approval_requested");
        assert_eq!(b["created_at"], "2026-12-07T12:00:00Z");
        assert_eq!(b["details"]["users"], 2);
        assert_eq!(b["link"], "https://o.example/preview?id=p");
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_time_dot_body() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec
        assert_eq!(
            signature("whsec", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=8ad37ba156048ae0e0a5533c75cdf26fee88b07f93cb57ee4c80adb053012032"
        );
        assert_ne!(
            signature("whsec", 1_700_000_001, br#"{"a":1}"#),
            signature("whsec", 1_700_000_000, br#"{"a":1}"#),
            "the time is signed"
        );
    }
}
