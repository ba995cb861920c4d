//! `offboard check-config`: checks every setting `offboard serve` would use, without starting
//! the console, and says in one line a check what it found. A hosting team runs it before a
//! deploy (or as a unit's `ExecStartPre=`); exit 1 when anything would stop or break the
//! console. Secrets (keys, the database password, the sites proxy, the client secret) are
//! checked but never printed.

use crate::config::ServeArgs;
use crate::secret::{AuditKey, SecretBox, AUDIT_KEY_FILE_NAME, KEY_FILE_NAME};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// How long the database and the sign-in service may take to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok(String),
    /// Works, but worth reading (the console will create something, or a choice is risky).
    Note(String),
    /// Not configured, so not checked.
    Skip(String),
    Fail(String),
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
}

impl Check {
    fn new(name: &'static str, verdict: Verdict) -> Check {
        Check { name, verdict }
    }

    /// `ok    database: …`, `FAIL  …`, `note  …`, `skip  …`.
    pub fn line(&self) -> String {
        let (tag, words) = match &self.verdict {
            Verdict::Ok(w) => ("ok", w),
            Verdict::Note(w) => ("note", w),
            Verdict::Skip(w) => ("skip", w),
            Verdict::Fail(w) => ("FAIL", w),
        };
        format!("{tag:<5} {}: {words}", self.name)
    }

    pub fn failed(&self) -> bool {
        matches!(self.verdict, Verdict::Fail(_))
    }
}

/// Runs every check, prints one line each, and exits 1 if any failed.
pub async fn run(args: ServeArgs) -> ExitCode {
    let mut checks = vec![
        listen_addresses(&args),
        public_url(&args),
        data_folder(&args.database.data_dir),
        site_files(&args.site_root_in_force()),
        token_key(&args),
        audit_key(&args),
        trusted_proxies(&args),
        sites_proxy(&args),
        limits(&args),
    ];
    checks.push(
        database(
            &args.database.effective_database_url(),
            &args.database.data_dir,
        )
        .await,
    );
    checks.push(single_sign_on(&args).await);
    checks.push(email(&args).await);
    let failed = checks.iter().filter(|c| c.failed()).count();
    for check in &checks {
        println!("{}", check.line());
    }
    if failed == 0 {
        println!("All {} checks passed.", checks.len());
        ExitCode::SUCCESS
    } else {
        println!("{failed} of {} checks failed.", checks.len());
        ExitCode::FAILURE
    }
}

/// A command line or environment that does not even parse, for `check-config`: one FAIL line
/// naming the setting (its value only when it cannot be a secret), exit 1. Anything else
/// (help, another subcommand) is clap's to say.
pub fn refused_settings(error: clap::Error) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let is_check_config = std::env::args().nth(1).as_deref() == Some("check-config");
    if !is_check_config
        || matches!(
            error.kind(),
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
        )
    {
        error.exit();
    }
    let text = |kind| match error.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    let setting = text(ContextKind::InvalidArg);
    let words = match &setting {
        Some(setting) => {
            let secret = [
                "secret",
                "key",
                "database",
                "sites-proxy",
                "token",
                "password",
            ]
            .iter()
            .any(|word| setting.contains(word));
            let value = text(ContextKind::InvalidValue)
                .filter(|_| !secret)
                .map(|v| format!(" \"{v}\""))
                .unwrap_or_default();
            let why = std::error::Error::source(&error)
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            format!("{setting}{value} is not accepted{why}")
        }
        // No setting named: clap's own first line, which then holds no value.
        None => error
            .to_string()
            .lines()
            .next()
            .unwrap_or("the command line is not understood")
            .trim_start_matches("error: ")
            .to_string(),
    };
    println!("{}", Check::new("settings", Verdict::Fail(words)).line());
    println!("The other checks need settings that parse; fix this one first.");
    ExitCode::FAILURE
}

fn listen_addresses(args: &ServeArgs) -> Check {
    let verdict = match args.metrics_addr {
        Some(metrics) if metrics == args.addr => Verdict::Fail(format!(
            "--metrics-addr {metrics} is the console's own --addr; give the metrics another port"
        )),
        Some(metrics) if !metrics.ip().is_loopback() => Verdict::Note(format!(
            "console on {}, metrics on {metrics}, which anyone who reaches that address can read",
            args.addr
        )),
        Some(metrics) => Verdict::Ok(format!("console on {}, metrics on {metrics}", args.addr)),
        None => Verdict::Ok(format!("console on {}, no metrics", args.addr)),
    };
    Check::new("listen addresses", verdict)
}

fn public_url(args: &ServeArgs) -> Check {
    let verdict = match &args.public_url {
        Some(url) if !url.username().is_empty() || url.password().is_some() => Verdict::Fail(
            "--public-url must not hold a user name or password (people open this address)".into(),
        ),
        Some(url) if url.scheme() != "https" && !args.cookies_secure() => {
            Verdict::Ok(format!("{} (plain http on this machine)", origin(url)))
        }
        Some(url) if url.scheme() != "https" => Verdict::Note(format!(
            "{} is plain http: put the console behind HTTPS (docs/deployment.md)",
            origin(url)
        )),
        Some(url) => Verdict::Ok(origin(url)),
        None if args.addr.ip().is_loopback() => {
            Verdict::Ok("not set: the console answers on this machine only".into())
        }
        None => Verdict::Note(format!(
            "not set: the console answers only to the host names {0}, localhost, 127.0.0.1 and \
             [::1] on port {1}; set it to the address people open",
            args.addr,
            args.addr.port()
        )),
    };
    Check::new("public URL", verdict)
}

/// `scheme://host[:port]` of a URL, nothing else.
fn origin(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

fn data_folder(dir: &Path) -> Check {
    let verdict = match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Verdict::Fail(format!("{} is not a folder", dir.display())),
        Ok(meta) if meta.permissions().readonly() => {
            Verdict::Fail(format!("{} is read-only", dir.display()))
        }
        Ok(_) => Verdict::Ok(format!("{}", dir.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Verdict::Note(format!(
            "{} does not exist yet; the console creates it at its first start",
            dir.display()
        )),
        Err(e) => Verdict::Fail(format!("{}: {}", dir.display(), e.kind())),
    };
    Check::new("data folder", verdict)
}

fn site_files(root: &Path) -> Check {
    let pkg = root.join("pkg");
    let verdict = if pkg.is_dir() {
        Verdict::Ok(format!("{}", root.display()))
    } else {
        Verdict::Fail(format!(
            "no pkg/ folder in {} (--site-root / LEPTOS_SITE_ROOT): pages would come without \
             their style and script",
            root.display()
        ))
    };
    Check::new("web assets", verdict)
}

/// A key: given (flag or file) and decoding to 32 bytes, or the data folder's file readable
/// and whole, or not there yet (the console makes it). The key itself is never printed.
fn key_check(
    name: &'static str,
    given: Result<Option<app::hidden::Hidden<String>>, String>,
    from_text: impl Fn(&str) -> Result<(), String>,
    from_file: impl Fn(&Path) -> Result<bool, String>,
    file: &Path,
) -> Check {
    let verdict = match given {
        Err(why) => Verdict::Fail(why),
        Ok(Some(text)) => match from_text(text.expose()) {
            Ok(()) => Verdict::Ok("given, 32 bytes".into()),
            Err(why) => Verdict::Fail(why),
        },
        Ok(None) => match from_file(file) {
            Ok(true) => Verdict::Ok(format!("{}, 32 bytes", file.display())),
            Ok(false) => Verdict::Note(format!(
                "{} does not exist yet; the console creates it at its first start (back it up)",
                file.display()
            )),
            Err(why) => Verdict::Fail(why),
        },
    };
    Check::new(name, verdict)
}

fn token_key(args: &ServeArgs) -> Check {
    key_check(
        "token key",
        args.secret_key_text(),
        |text| {
            SecretBox::from_key_text(text)
                .map(drop)
                .map_err(|e| e.to_string())
        },
        |file| match std::fs::symlink_metadata(file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            _ => SecretBox::from_key_file(file)
                .map(|_| true)
                .map_err(|e| e.to_string()),
        },
        &args.database.data_dir.join(KEY_FILE_NAME),
    )
}

fn audit_key(args: &ServeArgs) -> Check {
    key_check(
        "audit key",
        args.audit_key_text(),
        |text| {
            AuditKey::from_text(text)
                .map(drop)
                .map_err(|e| e.to_string())
        },
        |_| {
            AuditKey::find(&args.database.data_dir, None)
                .map(|key| key.is_some())
                .map_err(|e| e.to_string())
        },
        &args.database.data_dir.join(AUDIT_KEY_FILE_NAME),
    )
}

fn trusted_proxies(args: &ServeArgs) -> Check {
    let verdict = if args.trusted_proxy.is_empty() {
        Verdict::Ok("none: X-Forwarded-For and Forwarded are ignored".into())
    } else {
        let all: Vec<String> = args.trusted_proxy.iter().map(|c| c.to_string()).collect();
        Verdict::Ok(all.join(", "))
    };
    Check::new("trusted proxies", verdict)
}

fn sites_proxy(args: &ServeArgs) -> Check {
    let verdict = match &args.sites_proxy {
        Some(_) => Verdict::Ok("set (its address is not shown: it may hold a password)".into()),
        None => Verdict::Ok("none: sites are reached directly".into()),
    };
    Check::new("sites proxy", verdict)
}

fn limits(args: &ServeArgs) -> Check {
    let limits = crate::service::limits::Limits {
        previews_per_hour: args.previews_per_hour,
        runs_per_hour: args.runs_per_hour,
        runs_per_site: args.runs_per_site.max(1),
        site_concurrency: usize::from(args.site_concurrency),
    };
    let verdict = match limits.check() {
        Ok(()) => Verdict::Ok(format!(
            "{} previews and {} runs an hour per team, {} run(s) at once per site, {} requests \
             at once per site",
            args.previews_per_hour, args.runs_per_hour, limits.runs_per_site, args.site_concurrency
        )),
        Err(why) => Verdict::Fail(why),
    };
    Check::new("limits", verdict)
}

/// Where a database URL points, without its user name or password.
pub fn database_place(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) if u.scheme().starts_with("postgres") => format!(
            "PostgreSQL at {}:{}{}",
            u.host_str().unwrap_or("(no host)"),
            u.port().unwrap_or(5432),
            u.path()
        ),
        Ok(u) if u.scheme() == "sqlite" => format!("SQLite file {}", sqlite_path(url)),
        _ => "an unknown kind of database".to_string(),
    }
}

fn sqlite_path(url: &str) -> &str {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"));
    let rest = rest.unwrap_or(url);
    rest.split('?').next().unwrap_or(rest)
}

/// `text` with the URL's password taken out, wherever it appears.
fn without_password(text: &str, url: &str) -> String {
    match url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_string))
    {
        Some(password) if !password.is_empty() => {
            let decoded = percent_encoding::percent_decode_str(&password)
                .decode_utf8_lossy()
                .to_string();
            text.replace(&password, "…").replace(&decoded, "…")
        }
        _ => text.to_string(),
    }
}

/// Connects with `options`, asks `SELECT 1` and closes: whether the database answers (the
/// same question for either database).
async fn select_one<C>(options: &C::Options) -> Result<(), String>
where
    C: sqlx::Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
    for<'q> <C::Database as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, C::Database>,
{
    let mut conn = C::connect_with(options).await.map_err(|e| e.to_string())?;
    sqlx::query("SELECT 1")
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let _ = conn.close().await;
    Ok(())
}

async fn database(url: &str, data_dir: &Path) -> Check {
    let place = database_place(url);
    let verdict = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let answer = async {
            let options: sqlx::postgres::PgConnectOptions = url
                .parse()
                .map_err(|_| "the address is not a PostgreSQL URL".to_string())?;
            select_one::<sqlx::PgConnection>(&options).await
        };
        match tokio::time::timeout(ANSWER_WITHIN, answer).await {
            Ok(Ok(())) => Verdict::Ok(format!("{place} answers")),
            Ok(Err(why)) => Verdict::Fail(format!(
                "{place} could not be reached: {}",
                without_password(&why, url)
            )),
            Err(_) => Verdict::Fail(format!(
                "{place} did not answer within {} s",
                ANSWER_WITHIN.as_secs()
            )),
        }
    } else if url.starts_with("sqlite:") {
        let path = Path::new(sqlite_path(url));
        if path.exists() {
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .read_only(true);
            let answer = select_one::<sqlx::SqliteConnection>(&options);
            match tokio::time::timeout(ANSWER_WITHIN, answer).await {
                Ok(Ok(())) => Verdict::Ok(format!("{place} answers")),
                Ok(Err(why)) => Verdict::Fail(format!("{place} could not be opened: {why}")),
                Err(_) => Verdict::Fail(format!("{place} did not answer")),
            }
        } else {
            let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
            match folder {
                Some(folder) if !folder.is_dir() && folder != data_dir => Verdict::Fail(format!(
                    "{place}: its folder {} does not exist",
                    folder.display()
                )),
                _ => Verdict::Note(format!(
                    "{place} does not exist yet; the console creates it at its first start"
                )),
            }
        }
    } else {
        Verdict::Fail(
            "--database-url must start with sqlite:// or postgres:// (its value is not shown)"
                .into(),
        )
    };
    Check::new("database", verdict)
}

async fn single_sign_on(args: &ServeArgs) -> Check {
    let verdict = match args.sso_settings() {
        Ok(None) => Verdict::Skip("not configured (--oidc-issuer is not set)".into()),
        Err(why) => Verdict::Fail(why),
        Ok(Some(settings)) => {
            let issuer = settings.issuer.clone();
            match tokio::time::timeout(ANSWER_WITHIN, crate::sso::SsoClient::discover(settings))
                .await
            {
                Ok(Ok(_)) => Verdict::Ok(format!("{issuer} answers with its settings")),
                Ok(Err(e)) => Verdict::Fail(e.to_string()),
                Err(_) => Verdict::Fail(format!(
                    "{issuer} did not answer within {} s",
                    ANSWER_WITHIN.as_secs()
                )),
            }
        }
    };
    Check::new("single sign-on", verdict)
}

async fn email(args: &ServeArgs) -> Check {
    let verdict = match args.mail_settings() {
        Ok(None) => Verdict::Skip("not configured (--smtp-url is not set)".into()),
        Err(why) => Verdict::Fail(why),
        Ok(Some(settings)) => {
            let place = format!("{}:{}", settings.host, settings.port);
            match crate::service::notify::mail::Smtp::new(&settings) {
                Err(why) => Verdict::Fail(why),
                Ok(server) => match server.check().await {
                    Ok(()) => Verdict::Ok(format!("the mail server at {place} answers")),
                    Err(problem) => Verdict::Fail(format!("{place}: {}", problem.0)),
                },
            }
        }
    };
    Check::new("email (SMTP)", verdict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::serve_for_test as serve;

    #[test]
    fn database_places_and_errors_never_carry_the_password() {
        let url = "postgres://offboard:pa%24%24-w0rd@db.internal:6543/offboard?sslmode=require";
        let place = database_place(url);
        assert_eq!(place, "PostgreSQL at db.internal:6543/offboard");
        let said = without_password("auth failed for pa$$-w0rd and pa%24%24-w0rd", url);
        assert!(!said.contains("w0rd"), "{said}");
        assert_eq!(
            database_place("sqlite:///var/lib/offboard/offboard.db?mode=rwc"),
            "SQLite file /var/lib/offboard/offboard.db"
        );
        assert_eq!(
            database_place("mysql://u:p@h/d"),
            "an unknown kind of database"
        );
        assert_eq!(without_password("nothing", "postgres://u@h/d"), "nothing");
    }

    #[test]
    fn the_same_port_for_metrics_and_console_fails() {
        let args = serve(&[
            "--addr",
            "127.0.0.1:3000",
            "--metrics-addr",
            "127.0.0.1:3000",
        ]);
        assert!(listen_addresses(&args).failed());
        let args = serve(&["--metrics-addr", "0.0.0.0:9464"]);
        assert!(matches!(listen_addresses(&args).verdict, Verdict::Note(_)));
        assert!(!listen_addresses(&serve(&[])).failed());
    }

    #[test]
    fn a_public_url_is_shown_as_its_origin_only() {
        let args = serve(&["--public-url", "https://offboard.example.com/some/path?q=1"]);
        let line = public_url(&args).line();
        assert_eq!(line, "ok    public URL: https://offboard.example.com");
        let args = serve(&["--public-url", "https://u:hunter2@offboard.example.com"]);
        let check = public_url(&args);
        assert!(check.failed() && !check.line().contains("hunter2"));
        let args = serve(&["--addr", "0.0.0.0:3000"]);
        assert!(matches!(public_url(&args).verdict, Verdict::Note(_)));
    }

    #[test]
    fn keys_are_checked_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_string_lossy().to_string();
        let args = serve(&["--data-dir", &data]);
        // Nothing yet: the console makes both.
        assert!(matches!(token_key(&args).verdict, Verdict::Note(_)));
        assert!(matches!(audit_key(&args).verdict, Verdict::Note(_)));

        let good = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
        let short = "c2hvcnQ=";
        for (key, ok) in [(good, true), (short, false), ("not base64!", false)] {
            let args = serve(&["--data-dir", &data, "--secret-key", key, "--audit-key", key]);
            for check in [token_key(&args), audit_key(&args)] {
                assert_eq!(!check.failed(), ok, "{}", check.line());
                assert!(!check.line().contains(key), "{}", check.line());
            }
        }
        // A damaged key file in the data folder.
        std::fs::write(dir.path().join(KEY_FILE_NAME), "damaged").unwrap();
        assert!(token_key(&args).failed());
    }

    #[test]
    fn lines_start_with_a_plain_verdict() {
        let check = Check::new("database", Verdict::Fail("x".into()));
        assert_eq!(check.line(), "FAIL  database: x");
        assert_eq!(
            Check::new("a", Verdict::Skip("y".into())).line(),
            "skip  a: y"
        );
    }
}
