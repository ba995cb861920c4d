//! The `offboard` command: parses flags and runs the chosen subcommand.

use crate::config::{AuditCommand, Cli, Command, VerifyArgs};
use crate::secret::{AuditKey, AUDIT_KEY_ENV_VAR, AUDIT_KEY_FILE_NAME};
use crate::service::audit::{head_line, ExpectedHeads};
use clap::Parser;
use std::process::ExitCode;

/// Parses the command line and runs it; the process exit status comes from here.
pub async fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return crate::check_config_command::refused_settings(e),
    };
    // `offboard` alone runs the console, configured from the environment.
    let Some(command) = cli.command_or_serve() else {
        return ExitCode::FAILURE;
    };
    match command {
        Command::Delete(args) => crate::delete_command::run_delete(*args).await,
        Command::Audit(args) => match args.command {
            AuditCommand::Verify(args) => verify_audit(&args).await,
        },
        Command::RotateKey(args) => crate::rotate_key_command::run(args).await,
        Command::CheckConfig(args) => crate::check_config_command::run(*args).await,
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

/// `offboard audit verify`: walks every team's audit chain with the audit key, compares it
/// with the heads recorded earlier (`--expect-heads`), and says plainly what it found.
async fn verify_audit(args: &VerifyArgs) -> ExitCode {
    let url = args.database.effective_database_url();
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
    // The key is read, never made: a new key would check nothing.
    let env_key = args.audit_key.as_ref().map(|k| k.expose().as_str());
    let key = match AuditKey::find(&args.database.data_dir, env_key) {
        Ok(Some(key)) => key,
        Ok(None) => {
            eprintln!(
                "offboard: no audit key: neither --audit-key / {AUDIT_KEY_ENV_VAR} nor {} \
                 (the console creates that file at its first start); pass the console's \
                 --data-dir or its key",
                args.database.data_dir.join(AUDIT_KEY_FILE_NAME).display()
            );
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("offboard: {e}");
            return ExitCode::from(2);
        }
    };
    let recorded = match &args.expect_heads {
        None => ExpectedHeads::default(),
        Some(file) => match read_expected_heads(file) {
            Ok(heads) => heads,
            Err(problem) => {
                eprintln!("offboard: {problem}");
                return ExitCode::from(2);
            }
        },
    };
    match crate::service::audit::verify_database(&url, key, &recorded).await {
        Ok(report) => match report.broken {
            None => {
                println!("{} entries, chain intact", report.entries);
                if report.unkeyed > 0 {
                    println!(
                        "{} of them were written before the trail was keyed (checked with \
                         plain SHA-256, up to the entry sealed with the key at the console's \
                         first keyed start)",
                        report.unkeyed
                    );
                }
                if let Some(file) = &args.expect_heads {
                    println!(
                        "{} recorded head(s) from {} found in place",
                        report.recorded_found,
                        file.display()
                    );
                }
                for (team, seq, hash) in &report.heads {
                    println!("{}", head_line(*team, *seq, hash));
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

/// The heads in `file`; a file that names none is refused (it would anchor nothing).
fn read_expected_heads(file: &std::path::Path) -> Result<ExpectedHeads, String> {
    let text =
        std::fs::read(file).map_err(|e| format!("could not read {}: {e}", file.display()))?;
    let heads = ExpectedHeads::parse(&String::from_utf8_lossy(&text))
        .map_err(|why| format!("{}, {why}", file.display()))?;
    if heads.is_empty() {
        return Err(format!(
            "{} names no audit head (lines \"audit head: team T entry S hash H\" or \
             \"TEAM ENTRY HASH\")",
            file.display()
        ));
    }
    Ok(heads)
}
