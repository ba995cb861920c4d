//! Command-line and environment configuration: every flag has an environment twin.

use crate::sso::SsoSettings;
use clap::{Args, Parser, Subcommand, ValueEnum};
use model::hidden::Hidden;
use std::net::SocketAddr;
use std::path::PathBuf;

pub mod key_files;
pub mod mail;
pub mod network;
pub mod site_root;

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

impl Cli {
    /// The subcommand to run: `offboard` alone runs the console (`serve`, configured from the
    /// environment).
    pub fn command_or_serve(self) -> Option<Command> {
        self.command
            .or_else(|| Cli::parse_from(["offboard", "serve"]).command)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web console (the default).
    Serve(Box<ServeArgs>),
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
    /// List the console's server functions (the addresses under /api/), one per line, for
    /// proxy rules and access reviews. docs/accounts.md says which role each one needs.
    Endpoints,
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
    /// Check every setting `offboard serve` would use, without starting the console.
    ///
    /// Takes the same flags and environment as `serve` and prints one line a check: listen
    /// addresses, --public-url, the data folder, the web assets, the token and audit keys
    /// (present, readable, 32 bytes; never printed), the database (reached, password never
    /// printed), single sign-on (the issuer's settings fetched), the proxies and the limits.
    /// Exit status: 0 when nothing failed, 1 otherwise.
    CheckConfig(Box<ServeArgs>),
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
    /// --database-url as `offboard serve`; it may run while the console runs) with the audit
    /// key (--audit-key / OFFBOARD_AUDIT_KEY, else `audit.key` in the data folder) and prints
    /// either "N entries, chain intact" with each team's newest entry ("audit head: team T
    /// entry S hash H"), or which entry is broken and why.
    ///
    /// The database alone cannot show that its newest entries were removed and the head moved
    /// back. The console logs every team's head at start and every
    /// --audit-head-log-seconds; give that log (text or JSON lines), an earlier output of this
    /// command, or a file of "TEAM ENTRY HASH" lines to --expect-heads: each head recorded
    /// there must still be in the trail, at its place.
    ///
    /// Exit status: 0 when every chain is intact; 1 when an entry was changed, removed or
    /// moved, or a recorded head is no longer in the trail; 2 when the database, the key or
    /// the --expect-heads file could not be read.
    Verify(VerifyArgs),
}

/// What `offboard audit verify` checks, and with what.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// The key that signs the audit trail, as `offboard serve` takes it. Default: the
    /// `audit.key` file in the data folder.
    #[arg(long, env = "OFFBOARD_AUDIT_KEY", hide_env_values = true, value_parser = hidden_value)]
    pub audit_key: Option<Hidden<String>>,

    /// Heads recorded earlier, to catch entries removed from the end: the console's log (any
    /// line holding "audit head: team T entry S hash H"), an earlier output of this command,
    /// or plain "TEAM ENTRY HASH" lines.
    #[arg(long, value_name = "FILE")]
    pub expect_heads: Option<PathBuf>,
}

/// Where the console's files and database are: the same flags and defaults for `serve` and
/// every command that opens the console's database (flattened into each).
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Folder for Offboard's own files: the SQLite database, the encryption key file, reports.
    /// `serve` creates it if missing.
    #[arg(long, env = "OFFBOARD_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Database to use. Default: the SQLite file `offboard.db` in the data folder.
    /// Examples: `sqlite:///var/lib/offboard/offboard.db`,
    /// `postgres://offboard:PASSWORD@db.internal:5432/offboard` (see docs/deployment.md).
    /// Its value is never shown in this help: a PostgreSQL URL can carry a password.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl DatabaseArgs {
    /// The database URL in force: the flag when given, else the SQLite file `offboard.db` in
    /// the data folder.
    pub fn effective_database_url(&self) -> String {
        match self.database_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => url.to_string(),
            _ => format!(
                "sqlite://{}",
                self.data_dir.join("offboard.db").to_string_lossy()
            ),
        }
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

    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Log line format.
    #[arg(long, env = "OFFBOARD_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Folder holding the built web assets (`pkg/offboard.js`, `.wasm`, `.css`).
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,

    /// Always mark the sign-in cookie `Secure`. Without this flag it is `Secure` unless the
    /// console is plain http on this machine (no --public-url and a loopback --addr, or an
    /// http://localhost / 127.0.0.1 --public-url).
    #[arg(long, env = "OFFBOARD_SECURE_COOKIES", default_value_t = false)]
    pub secure_cookies: bool,

    /// The key that encrypts saved SCIM tokens: base64 of 32 random bytes
    /// (`openssl rand -base64 32`). Default: the `secret.key` file in the data folder, created
    /// on first start.
    #[arg(long, env = "OFFBOARD_SECRET_KEY", hide_env_values = true, value_parser = hidden_value)]
    pub secret_key: Option<Hidden<String>>,

    /// The key that signs the audit trail: base64 of 32 random bytes. Default: the
    /// `audit.key` file in the data folder, created on first start. `rotate-key` leaves it
    /// alone. Consoles sharing one PostgreSQL database must all use the same key.
    #[arg(long, env = "OFFBOARD_AUDIT_KEY", hide_env_values = true, value_parser = hidden_value)]
    pub audit_key: Option<Hidden<String>>,

    /// Seconds between two log lines of every team's audit head ("audit head: team T entry S
    /// hash H", also logged at start). Keep the log elsewhere: `offboard audit verify
    /// --expect-heads LOG` then catches entries removed from the end. 1 to 86400.
    #[arg(long, env = "OFFBOARD_AUDIT_HEAD_LOG_SECONDS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub audit_head_log_seconds: u64,

    /// Most browsers that may follow one run's live progress at once; one more gets a plain
    /// "503, too many watchers" (each holds a connection and a file descriptor).
    #[arg(long, env = "OFFBOARD_MAX_WATCHERS_PER_RUN", default_value_t = 250)]
    pub max_watchers_per_run: usize,

    /// Most live-progress streams the console keeps open in all, across every run.
    #[arg(long, env = "OFFBOARD_MAX_WATCHERS", default_value_t = 500)]
    pub max_watchers: usize,

    /// Most live-progress streams one person may hold on one run (a few tabs); one more gets a
    /// plain 429. No one can take a run's every place and lock its owner out.
    #[arg(
        long,
        env = "OFFBOARD_MAX_WATCHERS_PER_PERSON_PER_RUN",
        default_value_t = 5
    )]
    pub max_watchers_per_person_per_run: usize,

    /// Most live-progress streams one person may hold in all, across runs (then a plain 429).
    #[arg(long, env = "OFFBOARD_MAX_WATCHERS_PER_PERSON", default_value_t = 20)]
    pub max_watchers_per_person: usize,

    /// Most live-progress streams one team's members may hold in all (then a plain 503), so one
    /// team never takes every place of --max-watchers. Default: half of --max-watchers.
    #[arg(long, env = "OFFBOARD_MAX_WATCHERS_PER_TEAM")]
    pub max_watchers_per_team: Option<usize>,

    /// Seconds between the checks an open live-progress stream makes that its viewer is still
    /// signed in and a member of the run's team; when not, the stream ends. 1 to 60.
    #[arg(long, env = "OFFBOARD_WATCHER_RECHECK_SECONDS", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(1..=60))]
    pub watcher_recheck_seconds: u64,

    /// How long a preview nobody confirmed is kept (hours), with its uploaded file and the
    /// site listing it was made from. Confirmed previews stay with their run.
    #[arg(long, env = "OFFBOARD_PREVIEW_HOURS", default_value_t = 24)]
    pub preview_hours: u32,

    /// Previews one team may make in an hour (each lists the whole site); one more is refused
    /// in plain words until the hour has passed.
    #[arg(long, env = "OFFBOARD_PREVIEWS_PER_HOUR", default_value_t = 120)]
    pub previews_per_hour: u32,

    /// Runs one team may start in an hour.
    #[arg(long, env = "OFFBOARD_RUNS_PER_HOUR", default_value_t = 30)]
    pub runs_per_hour: u32,

    /// Runs that may go on at once against one site, all teams together (a second run would
    /// share the site's request limit with the first).
    #[arg(long, env = "OFFBOARD_RUNS_PER_SITE", default_value_t = 1)]
    pub runs_per_site: usize,

    /// Requests sent at once to one site, all its runs together (on every replica). Each run
    /// gets an equal share: this divided by --runs-per-site. 1 to 32.
    #[arg(long, env = "OFFBOARD_SITE_CONCURRENCY", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=32))]
    pub site_concurrency: u16,

    /// Seconds a run stays this console's after its last heartbeat (sent every third of it,
    /// at most every 5 s). When several consoles share one PostgreSQL database and the one
    /// driving a run dies, another takes the run over this long after. 1 to 3600.
    #[arg(long, env = "OFFBOARD_JOB_LEASE_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub job_lease_seconds: u64,

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

    /// A reverse proxy in front of the console: an address or network (10.0.0.0/8,
    /// 192.0.2.7, fd00::/8). Only for requests from these peers is the client's address read
    /// from X-Forwarded-For (else Forwarded), walking from the right past these networks;
    /// from anyone else both headers are ignored. Sign-in limits count per client address.
    /// Repeat the flag, or separate networks with commas in the environment variable.
    /// Trusted proxies are also exempt from --max-connections-per-address.
    #[arg(
        long,
        env = "OFFBOARD_TRUSTED_PROXIES",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub trusted_proxy: Vec<network::Cidr>,

    /// Most connections the console keeps open at once; one more is closed at once, unread.
    /// Lowered at start to fit the open-file limit (less 256 files for the database, sites
    /// and reports).
    #[arg(long, env = "OFFBOARD_MAX_CONNECTIONS", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Most connections one client address may hold open at once (a browser opens about six;
    /// an office behind one NAT address a few dozen); one more is closed at once, unread.
    /// --trusted-proxy addresses are exempt.
    #[arg(long, env = "OFFBOARD_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_address: u32,

    /// Seconds a client has to send a request's headers, counted from when the connection
    /// opens or its previous answer ends; a connection that sends none in time is closed (so
    /// this also closes kept-alive connections left idle). Uploads and answers already under
    /// way are not cut. 1 to 300.
    #[arg(long, env = "OFFBOARD_HEADER_TIMEOUT_SECONDS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub header_timeout_seconds: u64,

    /// Seconds between two sweeps that delete ended sessions from the database. 1 to 86400.
    #[arg(long, env = "OFFBOARD_SESSION_SWEEP_SECONDS", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub session_sweep_seconds: u64,

    /// An http(s) proxy for requests to sites, e.g. http://proxy.internal:3128. Without it
    /// sites are reached directly and HTTPS_PROXY / HTTP_PROXY / ALL_PROXY are ignored (a
    /// proxy would resolve site names where the site check cannot see them). With it, each
    /// site's name is resolved and checked here before the proxy is asked to connect.
    /// Its value is never shown: a proxy address can carry a password.
    #[arg(long, env = "OFFBOARD_SITES_PROXY", value_name = "URL", hide_env_values = true,
          value_parser = sites_proxy)]
    pub sites_proxy: Option<Hidden<url::Url>>,

    /// Serve Prometheus metrics at http://ADDRESS/metrics (e.g. 127.0.0.1:9464), apart from
    /// the console's own address. Off by default. See docs/operations.md.
    #[arg(long, env = "OFFBOARD_METRICS_ADDR", value_name = "ADDRESS")]
    pub metrics_addr: Option<SocketAddr>,

    /// Read the token key (as --secret-key takes it) from this file, e.g. a systemd credential
    /// (`%d/secret-key`). Not with --secret-key.
    #[arg(
        long,
        env = "OFFBOARD_SECRET_KEY_FILE",
        value_name = "FILE",
        conflicts_with = "secret_key"
    )]
    pub secret_key_file: Option<PathBuf>,

    /// Read the audit key (as --audit-key takes it) from this file. Not with --audit-key.
    #[arg(
        long,
        env = "OFFBOARD_AUDIT_KEY_FILE",
        value_name = "FILE",
        conflicts_with = "audit_key"
    )]
    pub audit_key_file: Option<PathBuf>,

    /// Single sign-on (OpenID Connect); boxed, as it is large and most consoles leave it off.
    #[command(flatten)]
    pub oidc: Box<OidcArgs>,

    /// Email notifications (`config/mail.rs`).
    #[command(flatten)]
    pub mail: mail::MailArgs,
}

/// `--oidc-*`: single sign-on with the company's OpenID Connect sign-in service
/// (docs/sign-in.md). Turned into [`SsoSettings`] by [`ServeArgs::sso_settings`].
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Single sign-on")]
pub struct OidcArgs {
    /// Single sign-on: the issuer of your company's OpenID Connect sign-in service, exactly as
    /// the service writes it, e.g. https://acme.okta.com,
    /// https://login.microsoftonline.com/<tenant-id>/v2.0 or https://accounts.google.com.
    /// Needs --oidc-client-id, a client secret and --public-url. See docs/sign-in.md.
    #[arg(long, env = "OFFBOARD_OIDC_ISSUER", value_name = "URL")]
    pub oidc_issuer: Option<String>,

    /// The client ID the sign-in service gave this console.
    #[arg(long, env = "OFFBOARD_OIDC_CLIENT_ID", value_name = "ID")]
    pub oidc_client_id: Option<String>,

    /// The client secret the sign-in service gave this console. Prefer
    /// OFFBOARD_OIDC_CLIENT_SECRET or --oidc-client-secret-file: a flag is visible to other
    /// users of the machine while the console runs.
    #[arg(long, env = "OFFBOARD_OIDC_CLIENT_SECRET", hide_env_values = true, value_parser = hidden_value)]
    pub oidc_client_secret: Option<Hidden<String>>,

    /// Read the client secret from this file (surrounding whitespace is ignored).
    #[arg(long, env = "OFFBOARD_OIDC_CLIENT_SECRET_FILE", value_name = "FILE")]
    pub oidc_client_secret_file: Option<PathBuf>,

    /// Only people whose email is in this domain may sign in with single sign-on (exact match:
    /// example.com does not allow sub.example.com). Repeat the flag, or separate domains with
    /// commas in the environment variable. Default: any verified email the service gives.
    #[arg(
        long,
        env = "OFFBOARD_OIDC_ALLOWED_DOMAINS",
        value_name = "DOMAIN",
        value_delimiter = ','
    )]
    pub oidc_allowed_domain: Vec<String>,

    /// Accept an email when the sign-in service's token does not say whether it is verified
    /// (no `email_verified` claim; an email marked unverified is always refused). Only for a
    /// service that never sends the claim and whose addresses your company assigns itself,
    /// together with --oidc-allowed-domain. See docs/sign-in.md.
    #[arg(
        long,
        env = "OFFBOARD_OIDC_TRUST_EMAIL_WITHOUT_VERIFIED_CLAIM",
        default_value_t = false
    )]
    pub oidc_trust_email_without_verified_claim: bool,
}

impl ServeArgs {
    /// Whether the sign-in cookie is `Secure`: always, unless the console is plain http on
    /// loopback (browsers refuse `Secure` cookies over plain http elsewhere, and a console
    /// reachable over plain http from other machines should not be signed in to at all).
    pub fn cookies_secure(&self) -> bool {
        let plain_loopback = match &self.public_url {
            Some(url) => {
                url.scheme() == "http"
                    && match url.host() {
                        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                        None => false,
                    }
            }
            None => self.addr.ip().is_loopback(),
        };
        self.secure_cookies || !plain_loopback
    }
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
    /// Single sign-on as configured: `None` when no issuer is set (and no other `--oidc-*`
    /// flag either), else complete settings, or what is missing or wrong in plain words.
    pub fn sso_settings(&self) -> Result<Option<SsoSettings>, String> {
        let set = |value: &Option<String>| value.as_deref().is_some_and(|v| !v.trim().is_empty());
        if !set(&self.oidc.oidc_issuer) {
            let stray = [
                (set(&self.oidc.oidc_client_id), "--oidc-client-id"),
                (
                    self.oidc.oidc_client_secret.is_some(),
                    "--oidc-client-secret",
                ),
                (
                    self.oidc.oidc_client_secret_file.is_some(),
                    "--oidc-client-secret-file",
                ),
                (
                    // An empty OFFBOARD_OIDC_ALLOWED_DOMAINS (a template's blank) is no setting.
                    self.oidc
                        .oidc_allowed_domain
                        .iter()
                        .any(|d| !d.trim().is_empty()),
                    "--oidc-allowed-domain",
                ),
                (
                    self.oidc.oidc_trust_email_without_verified_claim,
                    "--oidc-trust-email-without-verified-claim",
                ),
            ];
            return match stray.iter().find(|(is_set, _)| *is_set) {
                Some((_, flag)) => Err(format!(
                    "{flag} is set but --oidc-issuer is not: set the issuer to turn on single \
                     sign-on, or remove {flag}"
                )),
                None => Ok(None),
            };
        }
        let issuer = oidc_issuer(self.oidc.oidc_issuer.as_deref().unwrap_or_default())?;
        let client_id = self
            .oidc
            .oidc_client_id
            .as_deref()
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .ok_or("single sign-on needs --oidc-client-id (the client ID your sign-in service gave this console)")?
            .to_string();
        let client_secret = self.oidc_secret()?;
        let public_url = self.public_url.as_ref().ok_or(
            "single sign-on needs --public-url (the address people open the console at): the \
             sign-in service sends them back to <public-url>/sign-in/sso/callback",
        )?;
        let mut allowed_domains = Vec::new();
        for entry in self
            .oidc
            .oidc_allowed_domain
            .iter()
            .filter(|d| !d.trim().is_empty())
        {
            let domain = crate::sso::checks::allowed_domain(entry)
                .map_err(|why| format!("--oidc-allowed-domain: {why}"))?;
            if !allowed_domains.contains(&domain) {
                allowed_domains.push(domain);
            }
        }
        Ok(Some(SsoSettings {
            issuer,
            client_id,
            client_secret,
            redirect_url: crate::sso::callback_url(public_url),
            allowed_domains,
            trust_email_without_verified_claim: self.oidc.oidc_trust_email_without_verified_claim,
        }))
    }

    /// The client secret from exactly one of the flag and the file.
    fn oidc_secret(&self) -> Result<Hidden<String>, String> {
        let secret = match (
            &self.oidc.oidc_client_secret,
            &self.oidc.oidc_client_secret_file,
        ) {
            (Some(_), Some(_)) => {
                return Err("give the client secret once: --oidc-client-secret or \
                            --oidc-client-secret-file, not both"
                    .into())
            }
            (None, None) => {
                return Err(
                    "single sign-on needs the client secret: --oidc-client-secret-file \
                            (or OFFBOARD_OIDC_CLIENT_SECRET)"
                        .into(),
                )
            }
            (Some(secret), None) => secret.expose().trim().to_string(),
            (None, Some(file)) => std::fs::read_to_string(file)
                .map_err(|err| {
                    format!(
                        "could not read the client secret file {}: {}",
                        file.display(),
                        err.kind()
                    )
                })?
                .trim()
                .to_string(),
        };
        if secret.is_empty() {
            return Err("the single sign-on client secret is empty".into());
        }
        Ok(Hidden::new(secret))
    }
}

/// `--sites-proxy`: an http or https proxy address with a host (a user name and password in
/// it are kept, never printed: the refusal does not echo the value).
fn sites_proxy(text: &str) -> Result<Hidden<url::Url>, String> {
    url::Url::parse(text.trim())
        .ok()
        .filter(|u| {
            matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
        })
        .map(Hidden::new)
        .ok_or_else(|| {
            "--sites-proxy must be an http(s) address, e.g. http://proxy.internal:3128".to_string()
        })
}

/// `--oidc-issuer`: https, or plain http on this machine only (a test service); kept exactly
/// as written (see [`SsoSettings::issuer`]) but without surrounding spaces.
fn oidc_issuer(text: &str) -> Result<String, String> {
    let text = text.trim();
    let url = url::Url::parse(text).map_err(|_| {
        format!("--oidc-issuer \"{text}\" is not a web address, e.g. https://acme.okta.com")
    })?;
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    if !scheme_ok || url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "--oidc-issuer \"{text}\" must be an https address (plain http only on this machine, \
             for tests), e.g. https://acme.okta.com"
        ));
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(
            // Not echoed: a user name part may carry a password.
            "--oidc-issuer must be the bare issuer address, without ?query, #fragment or user name"
                .to_string(),
        );
    }
    Ok(text.to_string())
}

/// A file in `dir` holding `text`, by its path as a flag takes it (for the tests of the
/// flags that read files).
#[cfg(test)]
pub(crate) fn file_holding(dir: &std::path::Path, name: &str, text: &str) -> String {
    let file = dir.join(name);
    std::fs::write(&file, text).expect("a test file");
    file.to_string_lossy().to_string()
}

/// A refusal names every one of `words`.
#[cfg(test)]
pub(crate) fn says_all(refusal: &str, words: &[&str]) {
    for word in words {
        assert!(refusal.contains(word), "{word:?} not in {refusal:?}");
    }
}

/// What `offboard serve --help` prints.
#[cfg(test)]
pub(crate) fn serve_help() -> String {
    use clap::CommandFactory;
    Cli::command()
        .find_subcommand_mut("serve")
        .map(|c| c.render_long_help().to_string())
        .unwrap_or_default()
}

/// `offboard serve ARGS…` as the command line reads it: what the tests of the flags parse.
#[cfg(test)]
pub(crate) fn serve_for_test(args: &[&str]) -> ServeArgs {
    use clap::Parser;
    let mut argv = vec!["offboard", "serve"];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(argv).map(|cli| cli.command) {
        Ok(Some(Command::Serve(args))) => *args,
        other => panic!("expected serve: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::serve_for_test as serve;
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
        assert!(args
            .database
            .effective_database_url()
            .ends_with("offboard.db"));

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
        assert_eq!(
            args.database.effective_database_url(),
            "sqlite:///elsewhere.db"
        );
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

    const SSO: [&str; 8] = [
        "--oidc-issuer",
        "https://acme.okta.com",
        "--oidc-client-id",
        "offboard-console",
        "--oidc-client-secret",
        "oidc-very-secret-42",
        "--public-url",
        "https://offboard.example.com",
    ];

    #[test]
    fn live_progress_caps_have_defaults_and_the_recheck_a_range() {
        let args = serve(&[]);
        assert_eq!(
            (
                args.max_watchers_per_person_per_run,
                args.max_watchers_per_person,
                args.max_watchers_per_team,
                args.watcher_recheck_seconds,
            ),
            (5, 20, None, 2)
        );
        let set = serve(&[
            "--max-watchers-per-team",
            "40",
            "--watcher-recheck-seconds",
            "5",
        ]);
        assert_eq!(
            (set.max_watchers_per_team, set.watcher_recheck_seconds),
            (Some(40), 5)
        );
        for bad in ["0", "61"] {
            let argv = ["offboard", "serve", "--watcher-recheck-seconds", bad];
            assert!(Cli::try_parse_from(argv).is_err(), "{bad}");
        }
    }

    #[test]
    fn no_issuer_means_no_single_sign_on() {
        assert!(matches!(serve(&[]).sso_settings(), Ok(None)));
        assert!(matches!(
            serve(&["--oidc-issuer", " "]).sso_settings(),
            Ok(None)
        ));
    }

    #[test]
    fn complete_single_sign_on_settings() {
        let mut args = SSO.to_vec();
        args.extend([
            "--oidc-allowed-domain",
            "Example.com",
            "--oidc-allowed-domain",
            "@corp.example.net",
            "--oidc-allowed-domain",
            "example.com.",
        ]);
        let settings = serve(&args).sso_settings().unwrap().unwrap();
        assert_eq!(settings.issuer, "https://acme.okta.com");
        assert_eq!(settings.client_id, "offboard-console");
        assert_eq!(settings.client_secret.expose(), "oidc-very-secret-42");
        assert_eq!(
            settings.redirect_url.as_str(),
            "https://offboard.example.com/sign-in/sso/callback"
        );
        assert_eq!(
            settings.allowed_domains,
            ["example.com", "corp.example.net"]
        );
        assert!(!settings.trust_email_without_verified_claim);
        // The issuer is kept as written: no `/` added (Google's issuer has none).
        let mut google = SSO.to_vec();
        google[1] = "https://accounts.google.com";
        let settings = serve(&google).sso_settings().unwrap().unwrap();
        assert_eq!(settings.issuer, "https://accounts.google.com");
    }

    #[test]
    fn the_client_secret_never_prints() {
        let args = serve(&SSO);
        let settings = args.sso_settings().unwrap().unwrap();
        let printed = format!("{args:?} {settings:?} {settings:#?}");
        assert!(!printed.contains("oidc-very-secret-42"), "{printed}");
        let help = serve_help();
        assert!(help.contains("--oidc-client-secret"), "{help}");
        assert!(!help.contains("oidc-very-secret-42"));
    }

    #[test]
    fn the_client_secret_comes_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_holding(dir.path(), "secret.txt", "  from-a-file-secret\n");
        // The issuer and the client ID, a public address, and the secret read from `file`.
        let from_file = |file: &str| {
            let mut args: Vec<&str> = SSO[..4].to_vec();
            args.extend(["--public-url", "https://o.example.com"]);
            args.extend(["--oidc-client-secret-file", file]);
            serve(&args).sso_settings()
        };
        let settings = from_file(&path).unwrap().unwrap();
        assert_eq!(settings.client_secret.expose(), "from-a-file-secret");

        // Both the secret and the file: refused, whichever is right.
        let mut both = SSO.to_vec();
        both.extend(["--oidc-client-secret-file", &path]);
        let err = serve(&both).sso_settings().unwrap_err();
        assert!(err.contains("not both"), "{err}");

        // A missing file: its path and why, never a secret.
        let missing = dir.path().join("nope.txt").to_string_lossy().to_string();
        says_all(
            &from_file(&missing).unwrap_err(),
            &["nope.txt", "not found"],
        );

        // An empty file is no secret.
        file_holding(dir.path(), "secret.txt", " \n");
        says_all(&from_file(&path).unwrap_err(), &["empty"]);
    }

    #[test]
    fn incomplete_single_sign_on_is_refused_with_what_is_missing() {
        let cases: [(&[&str], &str); 5] = [
            (
                &SSO[2..],
                "--oidc-client-id is set but --oidc-issuer is not",
            ),
            (&[&SSO[..2], &SSO[4..]].concat(), "--oidc-client-id"),
            (&[&SSO[..4], &SSO[6..]].concat(), "client secret"),
            (&SSO[..6], "--public-url"),
            (
                &["--oidc-allowed-domain", "example.com"],
                "--oidc-allowed-domain is set but --oidc-issuer is not",
            ),
        ];
        for (args, expected) in cases {
            let err = serve(args).sso_settings().unwrap_err();
            assert!(err.contains(expected), "{args:?}: {err}");
            assert!(!err.contains("oidc-very-secret-42"), "{err}");
        }
    }

    #[test]
    fn the_issuer_must_be_https_unless_on_this_machine() {
        let with_issuer = |issuer: &'static str| {
            let mut args = SSO.to_vec();
            args[1] = issuer;
            serve(&args).sso_settings()
        };
        for ok in [
            "https://login.microsoftonline.com/0b1e2c3d-0000-4000-8000-000000000000/v2.0",
            "http://127.0.0.1:4444",
            "http://localhost:4444/realms/x",
            "http://[::1]:4444",
            " https://acme.okta.com/oauth2/default ",
        ] {
            assert!(with_issuer(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://acme.okta.com",
            "http://10.0.0.1",
            "http://localhost.evil.com",
            "ftp://acme.okta.com",
            "acme.okta.com",
            "https://acme.okta.com?x=1",
            "https://acme.okta.com#f",
        ] {
            assert!(with_issuer(bad).is_err(), "{bad}");
        }
        let err = with_issuer("https://admin:hunter2@acme.okta.com").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn blank_allowed_domains_are_no_setting() {
        assert!(matches!(
            serve(&["--oidc-allowed-domain", " "]).sso_settings(),
            Ok(None)
        ));
        let mut args = SSO.to_vec();
        args.extend(["--oidc-allowed-domain", ""]);
        let settings = serve(&args).sso_settings().unwrap().unwrap();
        assert!(settings.allowed_domains.is_empty());
    }

    #[test]
    fn a_bad_allowed_domain_is_refused() {
        let mut args = SSO.to_vec();
        args.extend(["--oidc-allowed-domain", "*.example.com"]);
        let err = serve(&args).sso_settings().unwrap_err();
        says_all(&err, &["--oidc-allowed-domain", "*.example.com"]);
    }

    #[test]
    fn front_door_flags_parse_and_the_sites_proxy_never_prints() {
        let args = serve(&[]);
        assert!(args.trusted_proxy.is_empty() && args.sites_proxy.is_none());
        assert_eq!(
            (
                args.max_connections,
                args.max_connections_per_address,
                args.header_timeout_seconds,
                args.session_sweep_seconds
            ),
            (4096, 256, 15, 900)
        );
        let args = serve(&[
            "--trusted-proxy",
            "10.0.0.0/8",
            "--trusted-proxy",
            "fd00::/8,192.0.2.7",
            "--sites-proxy",
            "http://user:proxy-pass-9f3@proxy.internal:3128",
        ]);
        let proxies: Vec<String> = args.trusted_proxy.iter().map(|c| c.to_string()).collect();
        assert_eq!(proxies, ["10.0.0.0/8", "fd00::/8", "192.0.2.7/32"]);
        assert!(!format!("{args:?}").contains("proxy-pass-9f3"));
        for bad in [
            ["--trusted-proxy", "10.0.0.1/8"],
            ["--trusted-proxy", "proxy.internal"],
            ["--sites-proxy", "socks5://proxy.internal:1080"],
            ["--sites-proxy", "proxy.internal:3128"],
            ["--header-timeout-seconds", "0"],
            ["--max-connections", "0"],
        ] {
            let mut argv = vec!["offboard", "serve"];
            argv.extend_from_slice(&bad);
            let err = Cli::try_parse_from(argv).err().map(|e| e.to_string());
            assert!(err.is_some(), "{bad:?}");
            assert!(!err.unwrap_or_default().contains("proxy-pass"), "{bad:?}");
        }
    }

    #[test]
    fn no_subcommand_means_serve() {
        let cli = Cli::parse_from(["offboard"]);
        assert!(cli.command.is_none());
        // What `offboard` alone runs: the console, with serve's own defaults.
        let Some(Command::Serve(args)) = cli.command_or_serve() else {
            panic!("`offboard` alone does not run the console");
        };
        let named = serve(&[]);
        assert_eq!(args.addr, named.addr);
        assert_eq!(args.database.data_dir, named.database.data_dir);
        // A named subcommand is kept.
        let cli = Cli::parse_from(["offboard", "endpoints"]);
        assert!(matches!(cli.command_or_serve(), Some(Command::Endpoints)));
    }
}
