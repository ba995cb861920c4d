//! Email notifications: the mail a delivery sends (plain text plus an accessible HTML part,
//! made by the pure [`compose`]) and the company's mail server it goes through ([`Smtp`],
//! behind the small [`MailServer`] trait). The SMTP password lives only in [`Smtp`]'s transport
//! and never reaches a log, an error or a `Debug` print.

use super::message::Message;
use crate::config::mail::{MailSettings, Security};
use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::time::Duration;

/// How long one conversation with the mail server may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a mail did not go out, in the words the delivery log shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailProblem(pub String);

/// A mail server: sends one composed mail.
#[async_trait]
pub trait MailServer: Send + Sync {
    async fn send(&self, mail: lettre::Message) -> Result<(), MailProblem>;
}

/// The company's mail server, over SMTP.
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Smtp(<transport>)")
    }
}

impl Smtp {
    pub fn new(settings: &MailSettings) -> Result<Smtp, String> {
        let tls = || {
            TlsParameters::new(settings.host.clone())
                .map_err(|_| "could not prepare TLS for the mail server".to_string())
        };
        let security = match settings.security {
            Security::Tls => Tls::Wrapper(tls()?),
            Security::StartTls => Tls::Required(tls()?),
            Security::PlainOnThisMachine => Tls::None,
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.as_str())
                .port(settings.port)
                .tls(security)
                .timeout(Some(SEND_TIMEOUT));
        if let Some(user) = &settings.user {
            let password = settings
                .password
                .as_ref()
                .map(|p| p.expose().clone())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Smtp {
            transport: builder.build(),
        })
    }
}

impl Smtp {
    /// Connects, greets and authenticates (as a send would), and sends nothing: for
    /// `offboard check-config`.
    pub async fn check(&self) -> Result<(), MailProblem> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(MailProblem(
                "The mail server did not accept the connection.".into(),
            )),
            Err(e) => Err(MailProblem(problem_words(&e))),
        }
    }
}

#[async_trait]
impl MailServer for Smtp {
    async fn send(&self, mail: lettre::Message) -> Result<(), MailProblem> {
        self.transport
            .send(mail)
            .await
            .map(|_| ())
            .map_err(|e| MailProblem(problem_words(&e)))
    }
}

/// A mail server's refusal or silence in plain words: its code and first line when it
/// answered, else what went wrong on the way.
fn problem_words(e: &lettre::transport::smtp::Error) -> String {
    if e.is_timeout() {
        return format!(
            "The mail server did not answer within {} seconds.",
            SEND_TIMEOUT.as_secs()
        );
    }
    if e.is_tls() {
        return "Could not set up an encrypted connection with the mail server.".into();
    }
    if let Some(code) = e.status() {
        let said = e.to_string();
        let first = said.lines().next().unwrap_or("").trim();
        let first: String = first.chars().take(200).collect();
        return format!("The mail server refused the message ({code}): {first}");
    }
    "Could not reach the mail server.".into()
}

/// What one notification's mail says, before it is addressed: the subject, the plain text and
/// the HTML part (a heading, a paragraph and a link, in reading order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailText {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Why a person gets a notification, and where they choose (with `account_page`).
pub fn notification_footer(account_page: Option<&str>) -> String {
    let why = "You get this because you are a member of an Offboard team.";
    match account_page {
        Some(page) => format!("{why} Choose which emails you get on your Account page: {page}"),
        None => format!("{why} Choose which emails you get on your Account page."),
    }
}

/// The mail for `words`: the notification's title as the subject, its text, a link to the
/// console page, and `footer` (why the person gets it).
pub fn mail_text(words: &Message, footer: &str) -> MailText {
    let mut text = format!("{}\n\n{}\n", words.title, words.text);
    let mut link = String::new();
    if let Some(to) = &words.link {
        text.push_str(&format!("\nOpen it in Offboard: {to}\n"));
        link = format!("<p><a href=\"{}\">Open it in Offboard</a></p>", escape(to));
    }
    text.push_str(&format!("\n-- \n{footer}\n"));
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body style=\"font-family: sans-serif; line-height: 1.5; color: #1a1a1a\">\
         <h1 style=\"font-size: 1.25rem\">{title}</h1><p>{body}</p>{link}\
         <hr><p style=\"font-size: 0.875rem; color: #4a4a4a\">{footer}</p></body></html>\n",
        title = escape(&words.title),
        body = escape(&words.text),
        footer = escape(footer),
    );
    MailText {
        subject: format!("Offboard: {}", words.title),
        text,
        html,
    }
}

/// `mail` addressed from `from` to `to`; its Message-ID is made from the delivery id, so a
/// repeat after a crash is the same message to the recipient's mail program.
pub fn compose(
    mail: MailText,
    from: &Mailbox,
    to: &str,
    delivery_id: &str,
) -> Result<lettre::Message, MailProblem> {
    let to: Mailbox = to
        .parse()
        .map_err(|_| MailProblem("The recipient's address is not an email address.".into()))?;
    let domain = from.email.domain().to_string();
    lettre::Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject)
        .message_id(Some(format!("<{delivery_id}@{domain}>")))
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(mail.text),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(mail.html),
                ),
        )
        .map_err(|_| MailProblem("Could not write the message.".into()))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::hidden::Hidden;

    #[test]
    fn no_password_in_a_debug_print_of_the_transport() {
        let s = MailSettings::from_url(
            "smtps://relay@mail.example.com",
            "offboard@example.com",
            Some(Hidden::new("hunter2".to_string())),
        )
        .unwrap();
        let printed = format!("{s:?} {:?}", Smtp::new(&s).unwrap());
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("<hidden>"), "{printed}");
    }

    fn words(link: Option<&str>) -> Message {
        Message {
            title: "Approval requested".into(),
            text: "Carol <carol@example.com> asks to delete 3 users in team \"A&B\".".into(),
            link: link.map(str::to_string),
        }
    }

    #[test]
    fn the_text_and_html_parts_say_the_same_and_names_cannot_become_markup() {
        let m = mail_text(
            &words(Some("https://o.example/preview?id=p1&x=\"y")),
            &notification_footer(Some("https://o.example/account")),
        );
        assert_eq!(m.subject, "Offboard: Approval requested");
        assert_eq!(
            m.text,
            "Approval requested\n\nCarol <carol@example.com> asks to delete 3 users in team \
             \"A&B\".\n\nOpen it in Offboard: https://o.example/preview?id=p1&x=\"y\n\n-- \n\
             You get this because you are a member of an Offboard team. \
             Choose which emails you get on your Account page: https://o.example/account\n"
        );
        assert!(m.html.contains("<html lang=\"en\">"), "{}", m.html);
        assert!(m.html.contains("<title>Approval requested</title>"));
        assert!(m.html.contains(
            "<p>Carol &lt;carol@example.com&gt; asks to delete 3 users in team &quot;A&amp;B&quot;.</p>"
        ), "{}", m.html);
        assert!(
            m.html.contains(
                "<a href=\"https://o.example/preview?id=p1&amp;x=&quot;y\">Open it in Offboard</a>"
            ),
            "{}",
            m.html
        );
        let h1 = m.html.find("<h1").unwrap();
        let p = m.html.find("<p>Carol").unwrap();
        let a = m.html.find("<a href").unwrap();
        assert!(h1 < p && p < a, "heading, paragraph, link: {}", m.html);
    }

    #[test]
    fn without_a_public_address_there_is_no_link() {
        let m = mail_text(&words(None), &notification_footer(None));
        assert!(!m.text.contains("Open it in Offboard"), "{}", m.text);
        assert!(!m.html.contains("<a "), "{}", m.html);
        assert!(m.text.ends_with("on your Account page.\n"), "{}", m.text);
    }

    #[test]
    fn a_mail_has_both_parts_and_a_message_id_made_of_the_delivery_id() {
        let from: Mailbox = "Offboard <offboard@example.com>".parse().unwrap();
        let mail_to = |to: &str| {
            compose(
                mail_text(&words(None), &notification_footer(None)),
                &from,
                to,
                "d-1",
            )
        };
        let mail = mail_to("olive@example.com").unwrap();
        let raw = String::from_utf8(mail.formatted()).unwrap();
        for header in [
            "Subject: Offboard: Approval requested",
            "Message-ID: <d-1@example.com>",
            "To: olive@example.com",
            "From: Offboard <offboard@example.com>",
            "multipart/alternative",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Type: text/html; charset=utf-8",
        ] {
            assert!(raw.contains(header), "{header} in {raw}");
        }
        let e = mail_to("not an address").unwrap_err();
        assert_eq!(e.0, "The recipient's address is not an email address.");
    }
}
