//! `--smtp-*`: email notifications through the company's mail server (docs/notifications.md,
//! "Email"). Turned into [`MailSettings`] by [`ServeArgs::mail_settings`]; the password comes
//! from the environment or a file, never a flag on the command line.

use super::key_files::key_text;
use super::{hidden_value, ServeArgs};
use crate::service::notify::mail::MailSettings;
use clap::Args;
use model::hidden::Hidden;
use std::path::PathBuf;

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
    use crate::config::serve_for_test as serve;
    use crate::config::{file_holding, says_all};

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
