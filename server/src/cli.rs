//! The `offboard` command: parses flags and runs the chosen subcommand.

use crate::config::{Cli, Command};
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
        Command::RotateKey(args) => crate::rotate_key_command::run(args).await,
        Command::Serve(args) => match crate::http::serve(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("offboard: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}
