//! Command-line and environment configuration: every flag has an environment twin.

use app::hidden::Hidden;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Offboard deletes users from a Stack Internal (Stack Overflow for Teams) site through SCIM,
/// with a preview, a typed confirmation and a report.
///
/// Without a subcommand, Offboard runs the web console (`offboard serve`).
#[derive(Debug, Parser)]
#[command(name = "offboard", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web console (the default).
    Serve(ServeArgs),
    /// Delete (or deactivate) users from the command line: the same engine as the console.
    ///
    /// It deletes users through SCIM with the same safety rules as the console: the full user list
    /// is read first, every row is resolved and previewed, ambiguous emails, moderators/admins
    /// (unless --demote-privileged), protected and system accounts are never touched, and nothing
    /// is deleted until you type the confirmation phrase (or pass --yes).
    ///
    /// Reports are written to --out: all_users.json (the listing taken before deleting),
    /// preview.csv, results.csv / results.json (every row) and
    /// failed_deletions_YYYY-MM-DD_HH-MM-SS.json (the old script's format, for Stack support).
    ///
    /// Exit status: 0 when every row of the input ended deleted (or, with --dry-run, when the
    /// preview was written); 1 when any row was not deleted (not found, ambiguous, skipped or
    /// failed: see the failures file); 2 for a bad command line or an unreadable file;
    /// 3 when the site could not be reached or listed; 4 when the confirmation was not given.
    Delete(Box<DeleteArgs>),
    /// Check the console's audit trail (`offboard audit verify`).
    Audit(AuditArgs),
    /// Re-encrypt every saved SCIM token under a new key. Stop the console first.
    ///
    /// With the key file (the default): a new random key is written to `secret.key.new`, every
    /// token is re-encrypted in one database transaction, and only then does the new key
    /// replace `secret.key`. If anything fails, nothing changes and the old key file stays.
    ///
    /// With OFFBOARD_SECRET_KEY: give the new key in OFFBOARD_NEW_SECRET_KEY
    /// (`openssl rand -base64 32`); after "Done", start the console with OFFBOARD_SECRET_KEY
    /// set to the new key.
    RotateKey(RotateKeyArgs),
}

/// What to do with the audit trail.
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check that no audit entry was edited, removed or moved since it was written.
    ///
    /// Walks every team's trail in the console's database (the same --data-dir and
    /// --database-url as `offboard serve`; it may run while the console runs) and prints either
    /// "N entries, chain intact" with each team's newest entry and its hash (note that hash
    /// somewhere else to catch a rewrite of the whole trail later), or which entry is broken
    /// and why.
    ///
    /// Exit status: 0 when every chain is intact; 1 when an entry was changed, removed or
    /// moved; 2 when the database could not be opened.
    Verify(DatabaseArgs),
}

/// Where the console's database is, for commands other than `serve` (same flags, same defaults).
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// The console's data folder (the one `offboard serve` uses).
    #[arg(long, env = "OFFBOARD_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// The console's database. Default: the SQLite file `offboard.db` in the data folder;
    /// `postgres://user:password@host/db` for PostgreSQL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl DatabaseArgs {
    /// The database URL in force: the flag, or the SQLite file in the data folder.
    pub fn effective_database_url(&self) -> String {
        database_url(&self.data_dir, self.database_url.as_deref())
    }
}

/// Where the tokens and the keys are, for `offboard rotate-key`.
#[derive(Debug, Clone, Args)]
pub struct RotateKeyArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// The current key, when the console takes it from the environment.
    #[arg(long, env = "OFFBOARD_SECRET_KEY", hide_env_values = true, value_parser = hidden_value)]
    pub secret_key: Option<Hidden<String>>,

    /// The new key (base64 of 32 random bytes). Required with OFFBOARD_SECRET_KEY; with the key
    /// file, a random one is made when this is not given.
    #[arg(long, env = "OFFBOARD_NEW_SECRET_KEY", hide_env_values = true, value_parser = hidden_value)]
    pub new_secret_key: Option<Hidden<String>>,
}

impl RotateKeyArgs {
    /// The database URL in force, as `serve` decides it.
    pub fn effective_database_url(&self) -> String {
        self.database.effective_database_url()
    }
}

/// `url` when given, else the SQLite file `offboard.db` in `data_dir`.
fn database_url(data_dir: &std::path::Path, url: Option<&str>) -> String {
    match url.map(str::trim) {
        Some(url) if !url.is_empty() => url.to_string(),
        _ => format!(
            "sqlite://{}",
            data_dir.join("offboard.db").to_string_lossy()
        ),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line, for log collectors.
    Json,
}

/// Runs the web console: admins connect a site, choose users, preview, confirm and watch runs.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port the console listens on.
    #[arg(long, env = "OFFBOARD_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Folder for Offboard's own files: the SQLite database, the encryption key file, reports.
    /// Created if missing.
    #[arg(long, env = "OFFBOARD_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Database to use. Default: the SQLite file `offboard.db` in the data folder.
    /// Examples: `sqlite:///var/lib/offboard/offboard.db`,
    /// `postgres://offboard:PASSWORD@db.internal:5432/offboard` (see docs/deployment.md).
    /// Its value is never shown in this help: a PostgreSQL URL can carry a password.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Log line format.
    #[arg(long, env = "OFFBOARD_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Folder holding the built web assets (`pkg/offboard.js`, `.wasm`, `.css`).
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,

    /// Mark the session cookie `Secure` (set this when the console is served over HTTPS).
    #[arg(long, env = "OFFBOARD_SECURE_COOKIES", default_value_t = false)]
    pub secure_cookies: bool,

    /// The key that encrypts saved SCIM tokens: base64 of 32 random bytes
    /// (`openssl rand -base64 32`). Default: the `secret.key` file in the data folder, created
    /// on first start.
    #[arg(long, env = "OFFBOARD_SECRET_KEY", hide_env_values = true, value_parser = hidden_value)]
    pub secret_key: Option<Hidden<String>>,

    /// Most browsers that may follow one run's live progress at once; one more gets a plain
    /// "503, too many watchers" (each holds a connection and a file descriptor).
    #[arg(long, env = "OFFBOARD_MAX_WATCHERS_PER_RUN", default_value_t = 250)]
    pub max_watchers_per_run: usize,

    /// Most live-progress streams the console keeps open in all, across every run.
    #[arg(long, env = "OFFBOARD_MAX_WATCHERS", default_value_t = 500)]
    pub max_watchers: usize,

    /// How long a preview nobody confirmed is kept (hours), with its uploaded file and the
    /// site listing it was made from. Confirmed previews stay with their run.
    #[arg(long, env = "OFFBOARD_PREVIEW_HOURS", default_value_t = 24)]
    pub preview_hours: u32,

    /// The address people open the console at, e.g. https://offboard.example.com. Requests
    /// for any other host name are refused (this stops DNS rebinding), and so are forms and
    /// server calls sent from any other origin. Default: only the listen address itself and
    /// localhost / 127.0.0.1 / [::1] on its port.
    #[arg(long, env = "OFFBOARD_PUBLIC_URL", value_parser = public_url)]
    pub public_url: Option<url::Url>,

    /// Let sites be reached over plain http on this machine (http://127.0.0.1:…,
    /// http://localhost:…) and at loopback addresses. Only for local tests and benchmarks:
    /// plain http sends the SCIM token unencrypted.
    #[arg(
        long,
        env = "OFFBOARD_ALLOW_HTTP_LOOPBACK_SITES",
        default_value_t = false
    )]
    pub allow_http_loopback_sites: bool,

    /// A site host name that may resolve to a private, loopback or link-local address (a site
    /// inside your own network). Repeat the flag, or separate names with commas in the
    /// environment variable. Every other site must resolve to public addresses.
    #[arg(
        long,
        env = "OFFBOARD_ALLOW_SITE_HOSTS",
        value_name = "HOST",
        value_delimiter = ','
    )]
    pub allow_site_host: Vec<String>,
}

/// `--public-url`: an http(s) address with a host, nothing else.
fn public_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text.trim()).map_err(|_| {
        format!("\"{text}\" is not a web address, e.g. https://offboard.example.com")
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "\"{text}\" must be an http or https address with a host name, e.g. https://offboard.example.com"
        ));
    }
    Ok(url)
}

/// A setting that must never be printed (a key): `Debug` shows `<hidden>`.
fn hidden_value(text: &str) -> Result<Hidden<String>, String> {
    Ok(Hidden::new(text.to_string()))
}

/// Which users to act on.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct Selection {
    /// A CSV (or text) file of emails or account IDs, one a row; a header row, extra columns,
    /// `;`/tab separators, UTF-16 and Windows-1252 files are understood.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,

    /// Every user the site lists as deactivated (`active` false, as checked by Offboard).
    #[arg(long)]
    pub deactivated: bool,
}

/// What to do with the selected users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ActionArg {
    /// Remove the account for good; its content is re-attributed to a generic user.
    Delete,
    /// Set the account inactive (reversible).
    Deactivate,
}

// What `offboard delete --help` shows comes from the `Command::Delete` variant.
#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:\n  \
    OFFBOARD_TOKEN=... offboard delete --url https://acme.stackenterprise.co --csv leavers.csv\n  \
    offboard delete --url https://stackoverflowteams.com/c/acme --token-file token.txt --deactivated --dry-run")]
pub struct DeleteArgs {
    /// The site URL, e.g. https://acme.stackenterprise.co (Enterprise) or
    /// https://stackoverflowteams.com/c/acme (Business). The SCIM path is derived from it.
    #[arg(long, env = "OFFBOARD_URL", required_unless_present = "scim_base_url")]
    pub url: Option<String>,

    /// An explicit SCIM base URL for any RFC 7644 provider (users at {base}/Users).
    #[arg(long, env = "OFFBOARD_SCIM_BASE_URL")]
    pub scim_base_url: Option<String>,

    /// The SCIM token (not the API v3 token). Prefer --token-file or OFFBOARD_TOKEN so the
    /// token does not end up in your shell history.
    #[arg(long, env = "OFFBOARD_TOKEN", hide_env_values = true, value_parser = read_token_arg)]
    pub token: Option<crate::scim::ScimToken>,

    /// Read the SCIM token from this file (surrounding whitespace is ignored).
    #[arg(
        long,
        env = "OFFBOARD_TOKEN_FILE",
        value_name = "FILE",
        conflicts_with = "token"
    )]
    pub token_file: Option<PathBuf>,

    #[command(flatten)]
    pub selection: Selection,

    /// Which column of the CSV holds the emails or IDs (1 = first). Default: picked by header
    /// name ("Email" preferred), else by content.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub column: Option<u16>,

    /// Delete (default) or deactivate the selected users.
    #[arg(long, value_enum, default_value = "delete")]
    pub action: ActionArg,

    /// Requests sent at once while deleting. Lowered automatically when the site throttles.
    #[arg(long, env = "OFFBOARD_CONCURRENCY", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,

    /// Seconds to wait for each SCIM request before treating it as unanswered.
    #[arg(long, env = "OFFBOARD_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub timeout: u64,

    /// Demote Moderators/Admins to Registered before deleting them (otherwise they are
    /// skipped). Needs the site setting "Allow Moderator/Admin Promotion via a userType property".
    #[arg(long)]
    pub demote_privileged: bool,

    /// Never touch the account with this email (repeatable). Use it for your own account.
    #[arg(long, value_name = "EMAIL")]
    pub protect: Vec<String>,

    /// Resolve and write the preview, delete nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Skip the typed confirmation. Required when standard input is not a terminal.
    #[arg(long)]
    pub yes: bool,

    /// Folder for the reports (created if missing).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,

    /// Extra CA certificates (PEM) to trust, for sites behind a private certificate authority.
    /// TLS is always verified.
    #[arg(long, env = "OFFBOARD_CA_BUNDLE", value_name = "FILE")]
    pub ca_bundle: Option<PathBuf>,
}

/// The token as a [`crate::scim::ScimToken`] straight away, so `Debug` prints `<hidden>`.
fn read_token_arg(text: &str) -> Result<crate::scim::ScimToken, String> {
    Ok(crate::scim::ScimToken::new(text))
}

impl ServeArgs {
    /// The database URL in force: the flag, or the SQLite file in the data folder.
    pub fn effective_database_url(&self) -> String {
        database_url(&self.data_dir, self.database_url.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_defaults_and_flags() {
        let cli = Cli::parse_from(["offboard", "serve", "--addr", "127.0.0.1:4123"]);
        let Some(Command::Serve(args)) = cli.command else {
            panic!("expected serve");
        };
        assert_eq!(args.addr.port(), 4123);
        assert_eq!(args.log_format, LogFormat::Text);
        assert!(args.effective_database_url().ends_with("offboard.db"));

        let cli = Cli::parse_from([
            "offboard",
            "serve",
            "--data-dir",
            "/tmp/x",
            "--database-url",
            "sqlite:///elsewhere.db",
        ]);
        let Some(Command::Serve(args)) = cli.command else {
            panic!("expected serve");
        };
        assert_eq!(args.effective_database_url(), "sqlite:///elsewhere.db");
    }

    #[test]
    fn the_delete_token_is_read_but_never_printed() {
        let cli = Cli::parse_from([
            "offboard",
            "delete",
            "--url",
            "https://acme.stackenterprise.co",
            "--token",
            "tok-very-secret-1234",
            "--deactivated",
        ]);
        let printed = format!("{cli:?}");
        assert!(!printed.contains("tok-very-secret-1234"), "{printed}");
        let Some(Command::Delete(args)) = cli.command else {
            panic!("expected delete");
        };
        assert_eq!(
            args.token.as_ref().map(|t| t.expose()),
            Some("tok-very-secret-1234")
        );
    }

    #[test]
    fn the_secret_key_is_read_but_never_printed() {
        let key = "c2VjcmV0LWtleS12YWx1ZQ==";
        let cli = Cli::parse_from(["offboard", "serve", "--secret-key", key]);
        assert!(!format!("{cli:?}").contains(key));
        let Some(Command::Serve(args)) = cli.command else {
            panic!("expected serve");
        };
        assert_eq!(
            args.secret_key.as_ref().map(|k| k.expose().as_str()),
            Some(key)
        );
    }

    #[test]
    fn no_subcommand_means_serve() {
        let cli = Cli::parse_from(["offboard"]);
        assert!(cli.command.is_none());
    }
}
