//! `offboard delete`: the old script's command line on the console's engine: list, resolve,
//! preview, confirm, run, report. Progress goes to stderr; reports to `--out`.

use crate::config::{ActionArg, DeleteArgs};
use crate::engine::file_input::read_admin_file;
use crate::engine::listing::{list_all_users, ListingOptions};
use crate::engine::report;
use crate::engine::resolve::{recheck, resolve_file, select_deactivated, Policy};
use crate::engine::runner::{
    run, JournalError, RunControl, RunJournal, RunOptions, RunState, RunSummary, StopReason,
};
use crate::scim::http::{HttpOptions, HttpScim};
use crate::scim::{ScimEndpoint, ScimProvider, ScimToken};
use app::backend::ReportKind;
use app::confirm::{confirmation_phrase, phrase_matches};
use app::model::{Action, ItemOutcome, ItemResult, Preview, PreviewOutcome, SiteUser};
use async_trait::async_trait;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Exit statuses, as `offboard delete --help` documents them.
const EXIT_NOT_ALL_DELETED: u8 = 1;
const EXIT_BAD_INPUT: u8 = 2;
const EXIT_SITE_UNREACHABLE: u8 = 3;
const EXIT_NOT_CONFIRMED: u8 = 4;

/// A failure that ends the command early, with its exit status and a plain message.
struct Stop {
    code: u8,
    message: String,
}

impl Stop {
    fn new(code: u8, message: impl Into<String>) -> Stop {
        Stop {
            code,
            message: message.into(),
        }
    }
}

pub async fn run_delete(args: DeleteArgs) -> ExitCode {
    match delete(args).await {
        Ok(code) => ExitCode::from(code),
        Err(stop) => {
            eprintln!("offboard: {}", stop.message);
            ExitCode::from(stop.code)
        }
    }
}

fn read_token(args: &DeleteArgs) -> Result<ScimToken, Stop> {
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => t.clone(),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Stop::new(
                    EXIT_BAD_INPUT,
                    format!("could not read the token file {}: {e}", path.display()),
                )
            })?;
            ScimToken::new(text)
        }
        (None, None) => {
            return Err(Stop::new(
                EXIT_BAD_INPUT,
                "no SCIM token: pass --token-file FILE, set OFFBOARD_TOKEN, or use --token",
            ))
        }
    };
    if token.is_empty() {
        return Err(Stop::new(EXIT_BAD_INPUT, "the SCIM token is empty"));
    }
    Ok(token)
}

fn endpoint(args: &DeleteArgs) -> Result<ScimEndpoint, Stop> {
    let result = match &args.scim_base_url {
        Some(base) => ScimEndpoint::from_scim_base(base, args.url.as_deref()),
        None => ScimEndpoint::from_site_url(args.url.as_deref().unwrap_or_default()),
    };
    result.map_err(|e| Stop::new(EXIT_BAD_INPUT, e.to_string()))
}

fn write_report(dir: &Path, kind: ReportKind, contents: &str) -> Result<(), Stop> {
    let path = dir.join(report::saved_name(kind, chrono::Local::now()));
    std::fs::write(&path, contents).map_err(|e| {
        Stop::new(
            EXIT_BAD_INPUT,
            format!("could not write {}: {e}", path.display()),
        )
    })?;
    eprintln!("  wrote {}", path.display());
    Ok(())
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

async fn delete(args: DeleteArgs) -> Result<u8, Stop> {
    let token = read_token(&args)?;
    let endpoint = endpoint(&args)?;
    let action = match args.action {
        ActionArg::Delete => Action::Delete,
        ActionArg::Deactivate => Action::Deactivate,
    };
    // Read the file before touching the network: a bad file costs nothing.
    let admin_file = match &args.selection.csv {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| {
                Stop::new(
                    EXIT_BAD_INPUT,
                    format!("could not read {}: {e}", path.display()),
                )
            })?;
            let column = args.column.map(|c| usize::from(c) - 1);
            let file = read_admin_file(&bytes, column)
                .map_err(|e| Stop::new(EXIT_BAD_INPUT, format!("{}: {e}", path.display())))?;
            eprintln!(
                "Read {} rows from {} (column {}: {}).",
                file.entries.len(),
                path.display(),
                file.column.index + 1,
                file.column.reason
            );
            Some((path.display().to_string(), file))
        }
        None => None,
    };
    std::fs::create_dir_all(&args.out).map_err(|e| {
        Stop::new(
            EXIT_BAD_INPUT,
            format!("could not create {}: {e}", args.out.display()),
        )
    })?;

    let provider: Arc<dyn ScimProvider> = Arc::new(
        HttpScim::new(
            endpoint.clone(),
            token,
            HttpOptions {
                timeout: Duration::from_secs(args.timeout),
                extra_ca_bundle: args.ca_bundle.clone(),
                // The admin names the site on their own machine: no address guard (see
                // scim::site_guard).
                site_guard: None,
            },
        )
        .map_err(|e| Stop::new(EXIT_BAD_INPUT, e.to_string()))?,
    );

    eprintln!("Listing the users of {} …", endpoint.site_url());
    let users = list_users(provider.as_ref()).await?;
    eprintln!("Found {} users on the site.", users.len());
    write_report(
        &args.out,
        ReportKind::AllUsers,
        &pretty(&report::all_users_json(&users)),
    )?;

    let policy = Policy {
        demote_privileged: args.demote_privileged,
        protected_emails: args.protect.clone(),
        operator_email: None,
    };
    let preview = match &admin_file {
        Some((name, file)) => resolve_file(file, name, &users, &policy),
        None => select_deactivated(&users, &policy),
    };
    write_report(
        &args.out,
        ReportKind::Preview,
        &report::preview_csv(&preview, action),
    )?;
    print_preview(&preview);
    let skipped_rows = preview.skipped().count();
    let count = preview.counts.selected;

    if args.dry_run {
        eprintln!("Dry run: nothing was changed.");
        return Ok(0);
    }
    if count == 0 {
        eprintln!("Nobody to {}.", action.verb().to_lowercase());
        write_failures(&args, &endpoint, &[], &preview)?;
        return Ok(if skipped_rows == 0 {
            0
        } else {
            EXIT_NOT_ALL_DELETED
        });
    }
    let typed_by_a_person = confirm(&args, action, count)?;

    // After a person read the preview and typed the phrase, the listing may be minutes old:
    // take it again and act only on users that still match what was shown. With --yes the
    // run follows the listing at once, so a second listing would only repeat the first.
    let checked = if typed_by_a_person {
        let fresh = list_users(provider.as_ref()).await?;
        recheck(&preview, &fresh, &policy)
    } else {
        recheck(&preview, &users, &policy)
    };
    for changed in &checked.changed {
        eprintln!("  left alone: {} ({})", changed.account_id, changed.message);
    }

    let started = Instant::now();
    let summary = run_with_progress(provider, checked.targets, action, &args).await;
    let elapsed = started.elapsed();
    let mut results: Vec<ItemResult> = checked.changed.clone();
    results.extend(summary.results.iter().cloned());

    write_report(
        &args.out,
        ReportKind::ResultsCsv,
        &report::results_csv(&preview, &results, action),
    )?;
    write_report(
        &args.out,
        ReportKind::ResultsJson,
        &pretty(&report::results_json(&results)),
    )?;
    write_failures(&args, &endpoint, &results, &preview)?;

    let done = results.iter().filter(|r| r.outcome.is_success()).count();
    eprintln!(
        "Done: {done} of {} selected users {}; {} requests in {:.1} s.",
        results.len(),
        match action.now() {
            Action::Delete => "deleted",
            _ => "deactivated",
        },
        summary.requests,
        elapsed.as_secs_f64()
    );
    match &summary.stopped {
        // The command line cannot be resumed: run it again on the users not yet deleted.
        Some(StopReason::SiteDown { since }) => eprintln!(
            "The run stopped early: the site stopped answering at {} UTC. Run the command again \
             when it is back, on the users not yet deleted (see the reports).",
            chrono::DateTime::<chrono::Utc>::from(*since).format("%H:%M")
        ),
        Some(reason) => eprintln!("The run stopped early: {}", reason.message()),
        None => {}
    }
    let all_done = done == results.len() && summary.stopped.is_none();
    Ok(if all_done && skipped_rows == 0 {
        0
    } else {
        EXIT_NOT_ALL_DELETED
    })
}

async fn list_users(provider: &dyn ScimProvider) -> Result<Vec<SiteUser>, Stop> {
    let progress = ListingProgress::new(std::io::stderr().is_terminal());
    let report = |done: usize, total: usize| progress.update(done, total);
    let users = list_all_users(provider, &ListingOptions::default(), &report)
        .await
        .map_err(|e| Stop::new(EXIT_SITE_UNREACHABLE, e.to_string()));
    progress.finish();
    users
}

/// How far the listing is: a bar with rate and time left in a terminal; in a log (CI, a
/// pipe) a plain line every tenth of the way, since a carriage return there is just noise.
struct ListingProgress {
    bar: Option<ProgressBar>,
    /// The last tenth printed as a plain line.
    printed_tenth: AtomicUsize,
}

impl ListingProgress {
    fn new(terminal: bool) -> ListingProgress {
        let bar = terminal.then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(bar_style(LISTING_BAR));
            bar
        });
        ListingProgress {
            bar,
            printed_tenth: AtomicUsize::new(usize::MAX),
        }
    }

    fn update(&self, done: usize, total: usize) {
        if total == 0 {
            return;
        }
        match &self.bar {
            Some(bar) => {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
                bar.set_message(rate_words(bar.per_sec()));
            }
            None => {
                let tenth = tenths(done, total);
                if self.printed_tenth.swap(tenth, Ordering::SeqCst) != tenth {
                    eprintln!("  listed {done} of {total} users");
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Which tenth of the way `done` of `total` is (0 to 10), so a log gets at most 11 lines.
fn tenths(done: usize, total: usize) -> usize {
    if total == 0 {
        return 10;
    }
    (done.min(total) * 10) / total
}

/// The listing's bar: users listed, rate, time left.
const LISTING_BAR: &str =
    "  listing [{bar:30.cyan/blue}] {pos}/{len} users · {msg} · about {eta} left";
/// The run's bar: users done, rate, time left, and the counts per outcome below it.
const RUN_BAR: &str = "  [{bar:30.green/red}] {pos}/{len} · about {eta} left\n  {msg}";

fn bar_style(template: &str) -> ProgressStyle {
    // The templates are fixed strings of this file; a typo falls back to the plain default.
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// "12.3 users/s": one decimal is all a person reads.
fn rate_words(per_sec: f64) -> String {
    format!("{per_sec:.1} users/s")
}

/// "3 deleted · 1 failed", in the order outcomes are declared; empty before any result.
fn counts_line(counts: &BTreeMap<ItemOutcome, u64>) -> String {
    counts
        .iter()
        .map(|(outcome, n)| format!("{n} {}", outcome.label()))
        .collect::<Vec<_>>()
        .join(" · ")
}

fn print_preview(preview: &Preview) {
    let c = &preview.counts;
    eprintln!(
        "Preview: {} selected; {} not found, {} ambiguous, {} invalid, {} duplicate, {} moderator/admin, {} protected, {} system account.",
        c.selected, c.not_found, c.ambiguous, c.invalid, c.duplicate, c.privileged, c.protected, c.system_account
    );
    const SHOWN: usize = 20;
    let skipped: Vec<_> = preview
        .rows
        .iter()
        .filter(|r| r.outcome != PreviewOutcome::Selected)
        .collect();
    for row in skipped.iter().take(SHOWN) {
        let line = row.line.map(|l| format!("line {l}: ")).unwrap_or_default();
        eprintln!(
            "  skipped {line}{} — {}: {}",
            row.input,
            row.outcome.label(),
            row.reason
        );
    }
    if skipped.len() > SHOWN {
        eprintln!("  … and {} more (see preview.csv)", skipped.len() - SHOWN);
    }
}

/// Asks for the typed phrase unless --yes; true when a person typed it.
fn confirm(args: &DeleteArgs, action: Action, count: usize) -> Result<bool, Stop> {
    if args.yes {
        return Ok(false);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Stop::new(
            EXIT_NOT_CONFIRMED,
            "standard input is not a terminal, so nobody can type the confirmation: pass --yes to proceed without it",
        ));
    }
    let phrase = confirmation_phrase(action, count);
    match action {
        Action::Delete => eprintln!(
            "\nThis permanently deletes up to {count} users from the site (the site may refuse some, such as community creators). Their content is re-attributed to a generic user. This cannot be undone."
        ),
        // The command line has no undo window (it keeps no records to delete them from later).
        Action::Deactivate | Action::DeactivateThenDelete => {
            eprintln!("\nThis deactivates up to {count} users (reversible).")
        }
    }
    eprint!("Type {phrase} to continue: ");
    let _ = std::io::stderr().flush();
    let mut typed = String::new();
    std::io::stdin().read_line(&mut typed).map_err(|e| {
        Stop::new(
            EXIT_NOT_CONFIRMED,
            format!("could not read the confirmation: {e}"),
        )
    })?;
    if phrase_matches(&phrase, &typed) {
        Ok(true)
    } else {
        Err(Stop::new(
            EXIT_NOT_CONFIRMED,
            "the confirmation did not match; nothing was changed",
        ))
    }
}

/// Reports each result as it arrives: the CLI's journal (the console's writes to the
/// database). In a terminal, a bar with rate, time left and counts per outcome, and a line
/// above it for each result that needs a look; otherwise one plain line a result.
struct ProgressJournal {
    total: usize,
    done: AtomicUsize,
    bar: Option<ProgressBar>,
    counts: Mutex<BTreeMap<ItemOutcome, u64>>,
}

impl ProgressJournal {
    fn new(total: usize, terminal: bool) -> ProgressJournal {
        let bar = terminal.then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(bar_style(RUN_BAR));
            bar
        });
        ProgressJournal {
            total,
            done: AtomicUsize::new(0),
            bar,
            counts: Mutex::new(BTreeMap::new()),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

#[async_trait]
impl RunJournal for ProgressJournal {
    async fn sending(&self, _account_id: &str) -> Result<(), JournalError> {
        Ok(())
    }

    async fn finished(&self, result: &ItemResult) -> Result<(), JournalError> {
        let done = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        let width = self.total.to_string().len();
        let email = result.email.as_deref().unwrap_or("-");
        let plain = result.outcome.is_success() && !result.demoted;
        let detail = if plain {
            String::new()
        } else {
            format!(": {}", result.message)
        };
        let line = format!(
            "[{done:>width$}/{}] {} {} {email}{detail} ({} requests, {} ms)",
            self.total,
            result.outcome.label(),
            result.account_id,
            result.attempts,
            result.elapsed_ms
        );
        match &self.bar {
            Some(bar) => {
                let counts = {
                    // A poisoned lock only means another result's update panicked: the
                    // counts are still the best we have.
                    let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
                    *counts.entry(result.outcome).or_default() += 1;
                    counts_line(&counts)
                };
                if !plain {
                    bar.println(&line);
                }
                bar.inc(1);
                bar.set_message(format!("{counts} · {}", rate_words(bar.per_sec())));
            }
            None => eprintln!("{line}"),
        }
        Ok(())
    }
}

async fn run_with_progress(
    provider: Arc<dyn ScimProvider>,
    targets: Vec<crate::engine::RunTarget>,
    action: Action,
    args: &DeleteArgs,
) -> RunSummary {
    let journal = Arc::new(ProgressJournal::new(
        targets.len(),
        std::io::stderr().is_terminal(),
    ));
    let (control_tx, control) = RunControl::channel();
    // Ctrl-C stops taking new users; requests in flight finish and are reported.
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\nStopping after the requests in flight (Ctrl-C again to abort)…");
            let _ = control_tx.send(RunState::Cancelled);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    let options = RunOptions {
        action,
        concurrency: usize::from(args.concurrency),
        demote_privileged: args.demote_privileged,
        ..RunOptions::default()
    };
    let summary = run(provider, targets, options, journal.clone(), control).await;
    journal.finish();
    summary
}

fn write_failures(
    args: &DeleteArgs,
    endpoint: &ScimEndpoint,
    results: &[ItemResult],
    preview: &Preview,
) -> Result<(), Stop> {
    let json = report::failures_json_with_preview(preview, results, endpoint.site_url());
    write_report(&args.out, ReportKind::Failures, &pretty(&json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_gets_a_line_every_tenth_of_the_listing() {
        assert_eq!(tenths(0, 1000), 0);
        assert_eq!(tenths(99, 1000), 0);
        assert_eq!(tenths(100, 1000), 1);
        assert_eq!(tenths(999, 1000), 9);
        assert_eq!(tenths(1000, 1000), 10);
        assert_eq!(tenths(1200, 1000), 10);
        assert_eq!(tenths(0, 0), 10);
        let lines: std::collections::BTreeSet<usize> = (0..=100_000)
            .step_by(100)
            .map(|d| tenths(d, 100_000))
            .collect();
        assert_eq!(lines.len(), 11);
    }

    #[test]
    fn rates_read_with_one_decimal() {
        assert_eq!(rate_words(75.2460), "75.2 users/s");
        assert_eq!(rate_words(0.0), "0.0 users/s");
    }

    #[test]
    fn counts_read_in_outcome_order() {
        let mut counts = BTreeMap::new();
        assert_eq!(counts_line(&counts), "");
        counts.insert(ItemOutcome::Failed, 1);
        counts.insert(ItemOutcome::Deleted, 3);
        counts.insert(ItemOutcome::CommunityCreator, 2);
        assert_eq!(
            counts_line(&counts),
            "3 deleted · 2 community creator · 1 failed"
        );
    }

    #[test]
    fn the_bar_templates_are_valid() {
        // bar_style falls back silently; the templates themselves must parse.
        for t in [LISTING_BAR, RUN_BAR] {
            assert!(ProgressStyle::with_template(t).is_ok(), "{t}");
        }
    }
}
