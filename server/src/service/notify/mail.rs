//! Email notifications: the mail a delivery sends (plain text plus an accessible HTML part,
//! made by the pure [`compose`]) and the company's mail server it goes through ([`Smtp`],
//! behind the small [`MailServer`] trait). The SMTP password lives only in [`Smtp`]'s transport
//! and never reaches a log, an error or a `Debug` print.

use super::message::Message;
use app::hidden::Hidden;
use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::time::Duration;

/// How long one conversation with the mail server may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Where mail goes and as whom, checked (see [`MailSettings::from_url`]).
#[derive(Clone)]
pub struct MailSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub user: Option<String>,
    pub password: Option<Hidden<String>>,
    pub from: Mailbox,
}

impl std::fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("from", &self.from.to_string())
            .finish()
    }
}

/// How the connection to the mail server is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// `smtps://`: TLS from the first byte (port 465 by default).
    Tls,
    /// `smtp://` to another machine: STARTTLS, required (port 587 by default).
    StartTls,
    /// `smtp://` to this machine only (a local relay, the tests' mail server): no TLS.
    PlainOnThisMachine,
}

impl MailSettings {
    /// Reads `--smtp-url` (`smtps://[user@]host[:port]` or `smtp://[user@]host[:port]`),
    /// `--smtp-from` and the password. Refuses, in words, a password inside the address (it
    /// would show wherever the address does), anything after the host, and an address that
    /// is not a mail server's.
    pub fn from_url(
        url: &str,
        from: &str,
        password: Option<Hidden<String>>,
    ) -> Result<MailSettings, String> {
        let parsed = url::Url::parse(url.trim()).map_err(|_| {
            "--smtp-url is not an address: write it like smtps://mail.example.com or \
             smtp://user@mail.example.com:587"
                .to_string()
        })?;
        if parsed.password().is_some() {
            return Err("--smtp-url must not carry the password: give it in \
                        OFFBOARD_SMTP_PASSWORD or --smtp-password-file"
                .into());
        }
        let host = match parsed.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err("--smtp-url needs the mail server's host name".into()),
        };
        if parsed.path().len() > 1 || parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(
                "--smtp-url is only the scheme, an optional user name, the host and \
                        an optional port, e.g. smtps://offboard@mail.example.com:465"
                    .into(),
            );
        }
        // smtp:// is not a scheme the url crate knows, so an IP address may come as a name.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = bare.eq_ignore_ascii_case("localhost")
            || bare
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let (security, default_port) = match parsed.scheme() {
            "smtps" => (Security::Tls, 465),
            "smtp" if loopback => (Security::PlainOnThisMachine, 25),
            "smtp" => (Security::StartTls, 587),
            other => {
                return Err(format!(
                    "--smtp-url must start with smtps:// or smtp:// (STARTTLS), not {other}://"
                ))
            }
        };
        let user = percent_encoding::percent_decode_str(parsed.username())
            .decode_utf8()
            .map_err(|_| "--smtp-url's user name is not readable text".to_string())?
            .to_string();
        let from: Mailbox = from.trim().parse().map_err(|_| {
            "--smtp-from must be an email address, optionally with a name: \
             \"Offboard <offboard@example.com>\""
                .to_string()
        })?;
        Ok(MailSettings {
            host,
            port: parsed.port().unwrap_or(default_port),
            security,
            user: (!user.is_empty()).then_some(user),
            password,
            from,
        })
    }
}

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

/// The mail for `words`: the notification's title as the subject, its text, a link to the
/// console page, and why the person gets it (with `account_page`, where they choose).
pub fn mail_text(words: &Message, account_page: Option<&str>) -> MailText {
    let why = "You get this because you are a member of an Offboard team.";
    let choose = match account_page {
        Some(page) => format!("Choose which emails you get on your Account page: {page}"),
        None => "Choose which emails you get on your Account page.".to_string(),
    };
    let mut text = format!("{}\n\n{}\n", words.title, words.text);
    let mut link = String::new();
    if let Some(to) = &words.link {
        text.push_str(&format!("\nOpen it in Offboard: {to}\n"));
        link = format!("<p><a href=\"{}\">Open it in Offboard</a></p>", escape(to));
    }
    text.push_str(&format!("\n-- \n{why}\n{choose}\n"));
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body style=\"font-family: sans-serif; line-height: 1.5; color: #1a1a1a\">\
         <h1 style=\"font-size: 1.25rem\">{title}</h1><p>{body}</p>{link}\
         <hr><p style=\"font-size: 0.875rem; color: #4a4a4a\">{why} {choose}</p></body></html>\n",
        title = escape(&words.title),
        body = escape(&words.text),
        why = escape(why),
        choose = escape(&choose),
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

    fn settings(url: &str) -> Result<MailSettings, String> {
        MailSettings::from_url(url, "Offboard <offboard@example.com>", None)
    }

    #[test]
    fn the_address_decides_how_the_connection_is_protected() {
        let s = settings("smtps://mail.example.com").unwrap();
        assert_eq!((s.security, s.port), (Security::Tls, 465));
        let s = settings("smtp://relay@mail.example.com").unwrap();
        assert_eq!((s.security, s.port), (Security::StartTls, 587));
        assert_eq!(s.user.as_deref(), Some("relay"));
        let s = settings("smtp://127.0.0.1:2525").unwrap();
        assert_eq!((s.security, s.port), (Security::PlainOnThisMachine, 2525));
        let s = settings("smtp://localhost").unwrap();
        assert_eq!(s.security, Security::PlainOnThisMachine);
        let s = settings("smtp://[::1]:25").unwrap();
        assert_eq!(s.security, Security::PlainOnThisMachine);
        let s = settings("smtp://o%40ffboard@10.0.0.5").unwrap();
        assert_eq!(
            (s.security, s.user.as_deref()),
            (Security::StartTls, Some("o@ffboard")),
            "only loopback goes without TLS; user names are decoded"
        );
    }

    #[test]
    fn bad_addresses_are_refused_in_words() {
        let says = |url: &str, words: &str| {
            let e = settings(url).unwrap_err();
            assert!(e.contains(words), "{url}: {e}");
        };
        says(
            "smtps://user:hunter2@mail.example.com",
            "must not carry the password",
        );
        says("https://mail.example.com", "must start with smtps://");
        says("mail.example.com", "not an address");
        says("smtps://mail.example.com/inbox", "only the scheme");
        says("smtps://mail.example.com?x=1", "only the scheme");
        let e = settings("smtps://user:hunter2@mail.example.com").unwrap_err();
        assert!(!e.contains("hunter2"), "the password is not repeated: {e}");
        let e =
            MailSettings::from_url("smtps://mail.example.com", "not an address", None).unwrap_err();
        assert!(e.contains("--smtp-from"), "{e}");
    }

    #[test]
    fn no_password_in_a_debug_print() {
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
            Some("https://o.example/account"),
        );
        assert_eq!(m.subject, "Offboard: Approval requested");
        assert_eq!(
            m.text,
            "Approval requested\n\nCarol <carol@example.com> asks to delete 3 users in team \
             \"A&B\".\n\nOpen it in Offboard: https://o.example/preview?id=p1&x=\"y\n\n-- \n\
             You get this because you are a member of an Offboard team.\n\
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
        let m = mail_text(&words(None), None);
        assert!(!m.text.contains("Open it in Offboard"), "{}", m.text);
        assert!(!m.html.contains("<a "), "{}", m.html);
        assert!(m.text.ends_with("on your Account page.\n"), "{}", m.text);
    }

    #[test]
    fn a_mail_has_both_parts_and_a_message_id_made_of_the_delivery_id() {
        let from: Mailbox = "Offboard <offboard@example.com>".parse().unwrap();
        let mail = compose(
            mail_text(&words(None), None),
            &from,
            "olive@example.com",
            "d-1",
        )
        .unwrap();
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
        let e = compose(mail_text(&words(None), None), &from, "not an address", "d").unwrap_err();
        assert_eq!(e.0, "The recipient's address is not an email address.");
    }
}
