//! Notifications: the team's webhook (an owner saves it, sends a test message, reads the
//! delivery log) and the outbox worker that delivers what the team's events queued.
//!
//! Where the rules live: which events notify, and that a notification is written in the same
//! transaction as its event's audit entry, in `storage/outbox.rs`; what a notification says in
//! `message.rs`; what each kind of receiver gets and how it is signed in `webhook.rs`; when a
//! failed delivery is tried again in `worker.rs`. See docs/notifications.md.

pub mod mail;
pub mod message;
pub mod webhook;
pub mod worker;

use super::desks::OwnerDesk;
use super::people::Person;
use super::Console;
use crate::secret::AuditKey;
use crate::storage::{DeliveryRecord, NewAuditEntry, StoredWebhook};
use app::audit::AuditAction;
use app::backend::ConsoleError;
use app::hidden::Hidden;
use app::ids::TeamId;
use app::team::{DeliveryView, EmailChoice, EmailChoices, WebhookPage, WebhookView, EMAIL_EVENTS};
use serde_json::json;
use webhook::Receiver;

/// The console's mail server and the sender its mails name (`--smtp-url`, `--smtp-from`).
#[derive(Clone)]
pub struct Mailer {
    pub server: std::sync::Arc<dyn mail::MailServer>,
    pub from: lettre::message::Mailbox,
}

/// Deliveries the Team page's log shows.
const LOG_LINES: u32 = 50;

/// The signing secret of team `team`'s webhook saved with `salt`: derived from the console's
/// audit key (which outlives key rotations and is shared by every replica), so the database
/// holds only the salt and a copy of it alone cannot sign. Shown to the owner once, when saved.
pub fn signing_secret(key: &AuditKey, team: TeamId, salt: &str) -> Hidden<String> {
    let mac = key.mac(format!("offboard webhook signing secret v1\0{team}\0{salt}").as_bytes());
    Hidden::new(format!("whsec_{}", webhook::hex(&mac)))
}

/// What the Team page shows of a webhook address: its scheme and host, never its path (a
/// Slack or Teams address carries its own secret there).
pub fn address_shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default(),
            if u.path().len() > 1 { "/…" } else { "" }
        ),
        Err(_) => "(an address that no longer reads)".to_string(),
    }
}

impl Console {
    /// The Account page's email choices for `person`: every event of [`EMAIL_EVENTS`], on
    /// unless they turned it off.
    pub async fn email_choices(&self, person: &Person) -> Result<EmailChoices, ConsoleError> {
        let off = self.storage.email_opt_outs(person.account).await?;
        let confirmed = self
            .storage
            .account(person.account)
            .await?
            .is_some_and(|a| a.email_proven);
        Ok(EmailChoices {
            email: person.email.clone(),
            mail_on: self.mail.is_some(),
            confirmed,
            choices: EMAIL_EVENTS
                .iter()
                .map(|(event, label)| EmailChoice {
                    event: event.key().to_string(),
                    label: label.to_string(),
                    on: !off.iter().any(|o| o == event.key()),
                })
                .collect(),
        })
    }

    /// Keeps `person`'s choices: the events of [`EMAIL_EVENTS`] named in `on` reach them by
    /// email, the others do not (names that are not such an event are ignored).
    pub async fn set_email_choices(
        &self,
        person: &Person,
        on: &[&str],
    ) -> Result<(), ConsoleError> {
        let off: Vec<String> = EMAIL_EVENTS
            .iter()
            .map(|(event, _)| event.key())
            .filter(|key| !on.contains(key))
            .map(str::to_string)
            .collect();
        Ok(self
            .storage
            .set_email_opt_outs(person.account, &off)
            .await?)
    }

    /// Checks a webhook address as a site address is checked: https (plain http only where
    /// loopback sites are allowed, for tests), and not an internal address.
    async fn checked_webhook_address(&self, address: &str) -> Result<url::Url, ConsoleError> {
        let address = address.trim();
        if address.is_empty() {
            return Err(ConsoleError::new(
                "Enter the webhook address your chat or automation tool gave you.",
            ));
        }
        let url = url::Url::parse(address).map_err(|_| {
            ConsoleError::new("That is not a web address: it should start with https://.")
        })?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ConsoleError::new(
                "Leave the user name and password out of the webhook address.",
            ));
        }
        if let Some(guard) = &self.http.site_guard {
            guard.check_url(&url).map_err(|refused| {
                ConsoleError::new(format!("That address is not allowed: {refused}."))
            })?;
            let host = url.host_str().unwrap_or_default();
            guard
                .check_host_before_proxy(host)
                .await
                .map_err(|refused| {
                    ConsoleError::new(format!("That address is not allowed: {refused}."))
                })?;
        } else if url.scheme() != "https" {
            return Err(ConsoleError::new(
                "The webhook address must start with https://.",
            ));
        }
        Ok(url)
    }
}

impl OwnerDesk<'_> {
    /// Saves (or replaces) the team's webhook; returns its new signing secret, to show once.
    pub async fn save_webhook(&self, address: &str) -> Result<Hidden<String>, ConsoleError> {
        let url = self.console.checked_webhook_address(address).await?;
        let salt = uuid::Uuid::new_v4().to_string();
        let by = self.actor_name().await;
        let webhook = StoredWebhook {
            url: url.to_string(),
            secret_salt: salt.clone(),
            saved_by: by.clone(),
            saved_at: self.console.clock.now(),
        };
        let audit = NewAuditEntry {
            actor: by,
            action: AuditAction::TeamSettingsChanged,
            target: None,
            details: json!({
                "webhook": address_shown(url.as_str()),
                "receiver": format!("{:?}", Receiver::of(&url)).to_lowercase(),
            }),
        };
        self.console
            .storage
            .save_webhook(self.team, &webhook, &audit)
            .await?;
        Ok(signing_secret(&self.console.webhook_key, self.team, &salt))
    }

    /// Removes the team's webhook; what was not sent yet is not sent.
    pub async fn remove_webhook(&self) -> Result<(), ConsoleError> {
        let audit = NewAuditEntry {
            actor: self.actor_name().await,
            action: AuditAction::TeamSettingsChanged,
            target: None,
            details: json!({ "webhook": "removed" }),
        };
        let removed = self.console.storage.remove_webhook(self.team, &audit);
        done_or(removed.await?, "This team has no webhook to remove.")
    }

    /// Queues a test message to the team's webhook (it goes out like any notification, so the
    /// delivery log shows how it went).
    pub async fn send_test_message(&self) -> Result<(), ConsoleError> {
        let actor = self.actor_name().await;
        let queued = self.console.storage.queue_test_message(self.team, &actor);
        done_or(
            queued.await?,
            "Save a webhook address first: there is nowhere to send a test message.",
        )
    }

    /// The Team page's notifications section: the webhook, and the delivery log.
    pub async fn webhook_page(
        &self,
        new_secret: Option<String>,
    ) -> Result<WebhookPage, ConsoleError> {
        let storage = &self.console.storage;
        let webhook = storage.webhook(self.team).await?.map(|w| WebhookView {
            address: address_shown(&w.url),
            receiver: url::Url::parse(&w.url)
                .map(|u| Receiver::of(&u).words())
                .unwrap_or("")
                .to_string(),
            saved_by: w.saved_by,
            saved_at: super::views::stamp(w.saved_at),
        });
        let deliveries = storage
            .delivery_log(self.team, LOG_LINES)
            .await?
            .into_iter()
            .map(delivery_view)
            .collect();
        Ok(WebhookPage {
            webhook,
            new_secret,
            deliveries,
        })
    }
}

/// Ok when the storage did it; else the words saying why there was nothing to do.
fn done_or(done: bool, nothing_to_do: &str) -> Result<(), ConsoleError> {
    if done {
        Ok(())
    } else {
        Err(ConsoleError::new(nothing_to_do))
    }
}

/// One line of the delivery log, in words.
fn delivery_view(d: DeliveryRecord) -> DeliveryView {
    let what = match AuditAction::from_key(&d.event) {
        Some(AuditAction::ApprovalRequested) => "Approval requested",
        Some(AuditAction::ApprovalGiven) => "Approved and started",
        Some(AuditAction::ApprovalDeclined) => "Approval declined",
        Some(AuditAction::RunEnded) => "Run ended",
        Some(AuditAction::InvitationAccepted) => "Invitation accepted",
        Some(AuditAction::DeletionPrepared) => "Deletion prepared",
        _ => "Test message",
    };
    let tries = |n: i64| {
        if n == 1 {
            "1 try".to_string()
        } else {
            format!("{n} tries")
        }
    };
    let (state, detail) = match d.state.as_str() {
        "sent" => ("Delivered", format!("after {}", tries(d.attempts))),
        "given_up" => (
            "Not delivered",
            d.last_error
                .clone()
                .unwrap_or_else(|| "Gave up.".to_string()),
        ),
        _ if d.attempts == 0 => ("Waiting to be sent", String::new()),
        _ => (
            "Will try again",
            format!(
                "{} ({} so far; next at {})",
                d.last_error.clone().unwrap_or_default(),
                tries(d.attempts),
                super::views::stamp(d.next_attempt_at)
            ),
        ),
    };
    DeliveryView {
        id: d.id,
        made_at: super::views::stamp(d.created_at),
        what: what.to_string(),
        by: d.actor,
        to: if d.channel == "email" {
            format!("Email to {}", d.address)
        } else {
            address_shown(&d.address)
        },
        state: state.to_string(),
        detail,
        sent_at: d.sent_at.map(super::views::stamp),
    }
}

use model::Named;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_shown_keeps_the_secret_path_out() {
        assert_eq!(
            address_shown("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            address_shown("https://ops.example.com/"),
            "https://ops.example.com"
        );
        assert_eq!(
            address_shown("not a url"),
            "(an address that no longer reads)"
        );
    }

    #[test]
    fn a_secret_is_stable_for_its_salt_and_differs_by_team_and_salt() {
        let key = AuditKey::from_bytes([7; 32]);
        let a = signing_secret(&key, TeamId::new(1), "salt");
        assert_eq!(
            a.expose(),
            signing_secret(&key, TeamId::new(1), "salt").expose()
        );
        assert_ne!(
            a.expose(),
            signing_secret(&key, TeamId::new(2), "salt").expose()
        );
        assert_ne!(
            a.expose(),
            signing_secret(&key, TeamId::new(1), "other").expose()
        );
        assert_ne!(
            a.expose(),
            signing_secret(&AuditKey::from_bytes([8; 32]), TeamId::new(1), "salt").expose()
        );
        assert!(a.expose().starts_with("whsec_") && a.expose().len() == 6 + 64);
        assert!(
            !format!("{a:?}").contains(&a.expose()[6..]),
            "Debug hides it"
        );
    }
}
