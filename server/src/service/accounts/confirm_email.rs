//! Confirming a local account's email address by a link mailed to it (once the console has a
//! mail server): the proof that lets memberships granted to that address by email reach the
//! account, as a single sign-on's verified email does (docs/accounts.md, "Who gets in").
//!
//! Decisions: the mail is sent at once, not through the outbox, because the outbox must never
//! hold a link's secret (only its hash is stored, as for every link); if the mail server does
//! not take it, the person is told so and asks again. The link confirms only while signed in
//! as the account it was made for, and it is used only then: opened by anyone else (a mail
//! scanner, a colleague), it stays good for its owner.

use super::links::{link_hash, new_link_secret};
use super::{storage_failed, Console, Person};
use crate::service::notify::mail::{compose, mail_text};
use crate::service::notify::message::Message;
use crate::storage::{LinkPurpose, LinkRecord};
use app::audit::AuditAction;
use app::backend::ConsoleError;
use chrono::Duration;
use serde_json::json;

/// How long a confirmation link works.
pub const CONFIRM_LINK_HOURS: i64 = 24;

/// What the confirmation mail says: whom it is for and what confirming does; `link` opens the
/// Account page with the code.
pub fn confirmation_words(email: &str, link: String) -> Message {
    Message {
        title: "Confirm your email address".to_string(),
        text: format!(
            "Someone signed in to Offboard as {email} asked to confirm this address. Open the \
             link while signed in as {email} and choose \"Confirm my email address\": memberships \
             teams gave to this address then reach your account. The link works for \
             {CONFIRM_LINK_HOURS} hours. If it was not you, ignore this mail."
        ),
        link: Some(link),
    }
}

impl Console {
    /// Mails `person` a link that confirms their address. Refused in words when the console
    /// has no mail server, the address is proven already, or the mail server does not take it.
    pub async fn send_email_confirmation(&self, person: &Person) -> Result<(), ConsoleError> {
        let (Some(mailer), Some(base)) = (&self.mail, &self.public_url) else {
            return Err(ConsoleError::new(
                "This console does not send email (no mail server is set up), so an address \
                 cannot be confirmed here. A console owner can set one up (--smtp-url).",
            ));
        };
        let account = self
            .storage
            .account(person.account)
            .await
            .map_err(storage_failed)?
            .ok_or_else(|| ConsoleError::not_found("Your account was not found."))?;
        if account.email_proven {
            return Err(ConsoleError::new(
                "Your email address is confirmed already.",
            ));
        }
        let (secret, hash) = new_link_secret();
        let now = self.clock.now();
        self.storage
            .save_link(&LinkRecord {
                secret_hash: hash,
                purpose: LinkPurpose::ConfirmEmail,
                team_id: None,
                role: None,
                email: Some(account.email.clone()),
                created_by: account.email.clone(),
                created_at: now,
                expires_at: now + Duration::hours(CONFIRM_LINK_HOURS),
            })
            .await
            .map_err(storage_failed)?;
        let words = confirmation_words(
            &account.email,
            format!("{base}/account?confirm={secret}#confirm-email"),
        );
        let footer = "You get this because of a request on the Account page of Offboard.";
        let mail = compose(
            mail_text(&words, footer),
            &mailer.from,
            &account.email,
            &uuid::Uuid::new_v4().to_string(),
        )
        .map_err(|p| ConsoleError::new(p.0))?;
        mailer.server.send(mail).await.map_err(|p| {
            ConsoleError::new(format!(
                "The confirmation mail could not be sent: {} Try again in a few minutes.",
                p.0
            ))
        })
    }

    /// Confirms `person`'s address with the code of a link mailed to it: only the account the
    /// link was made for, once, before it expires. Memberships granted to the address by email
    /// reach the account in the same step; how many did.
    pub async fn confirm_email(&self, person: &Person, code: &str) -> Result<u64, ConsoleError> {
        let invalid = || {
            ConsoleError::new(
                "This confirmation link does not work any more (used, expired, or made for \
                 another account). Ask for a new one below.",
            )
        };
        let hash = link_hash(code.trim());
        let now = self.clock.now();
        // Checked before it is used: a link opened under another account stays good.
        let open = self
            .storage
            .open_link(&hash, LinkPurpose::ConfirmEmail, now)
            .await
            .map_err(storage_failed)?
            .ok_or_else(invalid)?;
        if open.email.as_deref() != Some(person.email.as_str()) {
            return Err(invalid());
        }
        self.storage
            .use_link(&hash, LinkPurpose::ConfirmEmail, now)
            .await
            .map_err(storage_failed)?
            .ok_or_else(invalid)?;
        let taken = self
            .storage
            .prove_email(person.account)
            .await
            .map_err(storage_failed)?;
        self.record_everywhere(
            person,
            AuditAction::EmailConfirmed,
            json!({ "memberships_taken_up": taken }),
        )
        .await;
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mail_says_whom_it_is_for_and_what_confirming_does() {
        let m = confirmation_words(
            "pat@example.com",
            "https://o.example/account?confirm=x".into(),
        );
        assert_eq!(m.title, "Confirm your email address");
        assert!(
            m.text.contains("signed in as pat@example.com"),
            "{}",
            m.text
        );
        assert!(
            m.text.contains("memberships teams gave to this address"),
            "{}",
            m.text
        );
        assert!(m.text.contains("24 hours"), "{}", m.text);
        assert_eq!(
            m.link.as_deref(),
            Some("https://o.example/account?confirm=x")
        );
    }
}
