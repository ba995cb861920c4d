//! `--smtp-*`: email notifications through the company's mail server (docs/notifications.md,
//! "Email"), read and checked into [`MailSettings`] by [`ServeArgs::mail_settings`]; the
//! password comes from the environment or a file, never a flag on the command line.

use super::key_files::key_text;
use super::{hidden_value, ServeArgs};
use clap::Args;
use lettre::message::Mailbox;
use model::hidden::Hidden;
use std::path::PathBuf;

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

#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Email notifications")]
pub struct MailArgs {
    /// Send email notifications through this mail server: smtps://[user@]host[:port] (TLS,
    /// port 465 by default) or smtp://[user@]host[:port] (STARTTLS required, port 587 by
    /// default; plain smtp without TLS only to this machine). Needs --smtp-from and
    /// --public-url (links in mail). The password: OFFBOARD_SMTP_PASSWORD or
    /// --smtp-password-file, never in the address.
    #[arg(long, env = "OFFBOARD_SMTP_URL", value_name = "URL")]
    pub smtp_url: Option<String>,

    /// The sender of email notifications, e.g. "Offboard <offboard@example.com>".
    #[arg(long, env = "OFFBOARD_SMTP_FROM", value_name = "ADDRESS")]
    pub smtp_from: Option<String>,

    /// Read the mail server's password from this file (surrounding whitespace is ignored).
    #[arg(long, env = "OFFBOARD_SMTP_PASSWORD_FILE", value_name = "FILE")]
    pub smtp_password_file: Option<PathBuf>,

    /// The mail server's password. Only from the environment (OFFBOARD_SMTP_PASSWORD): a
    /// flag would be visible to other users of the machine.
    #[arg(long, env = "OFFBOARD_SMTP_PASSWORD", hide = true, hide_env_values = true,
          value_parser = hidden_value, conflicts_with = "smtp_password_file")]
    pub smtp_password: Option<Hidden<String>>,
}

impl ServeArgs {
    /// Email as configured: `None` without --smtp-url (and no other --smtp-* setting), else
    /// checked settings, or what is missing or wrong in plain words (never the password).
    pub fn mail_settings(&self) -> Result<Option<MailSettings>, String> {
        let mail = &self.mail;
        let given = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.trim().is_empty());
        if !given(&mail.smtp_url) {
            if given(&mail.smtp_from)
                || mail.smtp_password.is_some()
                || mail.smtp_password_file.is_some()
            {
                return Err(
                    "an --smtp-* setting is given but --smtp-url is not: set the mail \
                            server's address to send email, or remove the others"
                        .into(),
                );
            }
            return Ok(None);
        }
        if self.public_url.is_none() {
            return Err(
                "email needs --public-url (the address people open the console at): \
                        every mail links to a page of the console"
                    .into(),
            );
        }
        let from = mail
            .smtp_from
            .as_deref()
            .filter(|f| !f.trim().is_empty())
            .ok_or(
                "email needs --smtp-from, the sender, e.g. \"Offboard <offboard@example.com>\"",
            )?;
        let password = key_text(
            mail.smtp_password.as_ref(),
            mail.smtp_password_file.as_deref(),
            "--smtp-password-file",
        )?;
        let settings =
            MailSettings::from_url(mail.smtp_url.as_deref().unwrap_or_default(), from, password)?;
        if settings.password.is_some() && settings.user.is_none() {
            return Err(
                "a mail server password is given but no user name: write it in the \
                        address, smtps://user@host"
                    .into(),
            );
        }
        Ok(Some(settings))
    }
}

#[cfg(test)]
mod tests {
    use super::{MailSettings, Security};
    use crate::config::serve_for_test as serve;
    use crate::config::{file_holding, says_all};

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
    fn email_is_off_without_an_address_and_says_what_else_it_needs() {
        assert!(serve(&[]).mail_settings().unwrap().is_none());
        says_all(
            &serve(&["--smtp-from", "o@example.com"])
                .mail_settings()
                .unwrap_err(),
            &["--smtp-url"],
        );
        says_all(
            &serve(&[
                "--smtp-url",
                "smtps://mail.example.com",
                "--smtp-from",
                "o@example.com",
            ])
            .mail_settings()
            .unwrap_err(),
            &["--public-url"],
        );
        let public = ["--public-url", "https://offboard.example.com"];
        let with = |extra: &[&str]| {
            let mut all = public.to_vec();
            all.extend_from_slice(extra);
            serve(&all).mail_settings()
        };
        says_all(
            &with(&["--smtp-url", "smtps://mail.example.com"]).unwrap_err(),
            &["--smtp-from"],
        );
        let ok = with(&[
            "--smtp-url",
            "smtps://mail.example.com",
            "--smtp-from",
            "Offboard <o@example.com>",
        ])
        .unwrap()
        .unwrap();
        assert_eq!((ok.host.as_str(), ok.port), ("mail.example.com", 465));
        assert!(ok.password.is_none());
    }

    #[test]
    fn the_password_comes_from_a_file_and_is_never_echoed() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_holding(dir.path(), "smtp-password", " hunter2\n");
        let args = serve(&[
            "--public-url",
            "https://offboard.example.com",
            "--smtp-url",
            "smtps://relay@mail.example.com",
            "--smtp-from",
            "o@example.com",
            "--smtp-password-file",
            &path,
        ]);
        let settings = args.mail_settings().unwrap().unwrap();
        assert_eq!(
            settings.password.as_ref().map(|p| p.expose().as_str()),
            Some("hunter2")
        );
        assert!(!format!("{args:?} {settings:?}").contains("hunter2"));
        let no_user = serve(&[
            "--public-url",
            "https://offboard.example.com",
            "--smtp-url",
            "smtps://mail.example.com",
            "--smtp-from",
            "o@example.com",
            "--smtp-password-file",
            &path,
        ]);
        let e = no_user.mail_settings().unwrap_err();
        says_all(&e, &["user name"]);
        assert!(!e.contains("hunter2"));
    }

    #[test]
    fn help_names_the_flags_but_no_password_flag() {
        let help = crate::config::serve_help();
        for flag in [
            "--smtp-url",
            "--smtp-from",
            "--smtp-password-file",
            "OFFBOARD_SMTP_PASSWORD",
        ] {
            assert!(help.contains(flag), "{flag} in --help");
        }
        assert!(
            !help.contains("--smtp-password "),
            "no password flag in --help: {help}"
        );
    }
}
