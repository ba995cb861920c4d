//! The `offboard` command: parses flags and runs the chosen subcommand.

use crate::config::{AuditCommand, Cli, Command, DatabaseArgs};
use clap::Parser;
use std::process::ExitCode;

/// Parses the command line and runs it; the process exit status comes from here.
pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    // `offboard` alone runs the console, configured from the environment.
    let command = match cli.command {
        Some(c) => c,
        None => match Cli::parse_from(["offboard", "serve"]).command {
            Some(c) => c,
            None => return ExitCode::FAILURE,
        },
    };
    match command {
        Command::Delete(args) => crate::delete_command::run_delete(*args).await,
        Command::Audit(args) => match args.command {
            AuditCommand::Verify(db) => verify_audit(&db).await,
        },
        Command::RotateKey(args) => crate::rotate_key_command::run(args).await,
        Command::Endpoints => {
            let mut paths: Vec<String> = leptos::server_fn::axum::server_fn_paths()
                .map(|(path, method)| format!("{method} {path}"))
                .collect();
            paths.sort();
            for path in paths {
                println!("{path}");
            }
            ExitCode::SUCCESS
        }
        Command::Serve(args) => match crate::http::serve(*args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("offboard: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// `offboard audit verify`: walks every team's audit chain and says plainly what it found.
async fn verify_audit(db: &DatabaseArgs) -> ExitCode {
    let url = db.effective_database_url();
    // Opening a missing SQLite file would create an empty (and so "intact") trail.
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .map(|p| p.split('?').next().unwrap_or(p))
    {
        if !std::path::Path::new(path).exists() {
            eprintln!(
                "offboard: there is no console database at {path}; pass the console's \
                 --data-dir (or --database-url)"
            );
            return ExitCode::from(2);
        }
    }
    match crate::service::audit::verify_database(&url).await {
        Ok(report) => match report.broken {
            None => {
                println!("{} entries, chain intact", report.entries);
                for (team, seq, hash) in &report.heads {
                    println!("team {team}: newest entry {seq}, hash {hash}");
                }
                ExitCode::SUCCESS
            }
            Some(broken) => {
                println!("The audit trail is broken: {broken}.");
                println!(
                    "{} entries before it are intact. Restore the database from a backup \
                     to see the original entries.",
                    report.entries
                );
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("offboard: could not read the audit trail: {e}");
            ExitCode::from(2)
        }
    }
}
