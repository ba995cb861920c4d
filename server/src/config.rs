//! Command-line and environment configuration: every flag has an environment twin.

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
    /// Example: `sqlite:///var/lib/offboard/offboard.db`.
    #[arg(long, env = "DATABASE_URL")]
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
}

impl ServeArgs {
    /// The database URL in force: the flag, or the SQLite file in the data folder.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}",
                self.data_dir.join("offboard.db").to_string_lossy()
            ),
        }
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
    fn no_subcommand_means_serve() {
        let cli = Cli::parse_from(["offboard"]);
        assert!(cli.command.is_none());
    }
}
