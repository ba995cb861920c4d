//! The files a run leaves behind: the failures report in the old script's format (for Stack
//! support), full results and the preview as CSV/JSON, and the listing snapshot.

use chrono::{DateTime, TimeZone};
use model::deletion::{
    Action, ItemOutcome, ItemResult, Preview, PreviewOutcome, PreviewSource, SiteUser,
};
use model::report::ReportKind;
use model::Named;
use serde_json::{json, Value};

/// `failed_deletions_YYYY-MM-DD_HH-MM-SS.json`, as the old script names it, in `at`'s time zone.
pub fn failures_file_name<Tz: TimeZone>(at: DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    at.format("failed_deletions_%Y-%m-%d_%H-%M-%S.json")
        .to_string()
}

/// The name a report is saved under: the dated name for the failures report (as the old script
/// names it), the kind's own name for the others.
pub fn saved_name<Tz: TimeZone>(kind: ReportKind, at: DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    match kind {
        ReportKind::Failures => failures_file_name(at),
        other => other.file_name().to_string(),
    }
}

/// The old script's `status` for a result, or None for a success (successes are not listed).
///
/// What the script does (StackExchange/so4t_scim_user_deletion): `"error"` for every DELETE the
/// site answered with anything but 204 (400 system account, 404, 500 moderator/community
/// creator/other); `"failed"` for an email it never sent a DELETE for (not found via SCIM).
/// So here: `"error"` when Offboard sent requests for the user and the site refused or the
/// request failed; `"failed"` when Offboard deliberately sent nothing (changed since the
/// preview, or not reached because the run was cancelled or stopped).
pub fn failure_status(outcome: ItemOutcome) -> Option<&'static str> {
    match outcome {
        ItemOutcome::Deleted | ItemOutcome::Deactivated | ItemOutcome::AlreadyGone => None,
        ItemOutcome::ChangedSincePreview | ItemOutcome::NotAttempted => Some("failed"),
        ItemOutcome::DeletionNotEnabled
        | ItemOutcome::Privileged
        | ItemOutcome::CommunityCreator
        | ItemOutcome::SystemAccount
        | ItemOutcome::Failed => Some("error"),
    }
}

/// The failures report: one entry per result that is not a success, with the old script's keys
/// (`account_id`, `account_url`, `status`, `message`, `email`; `email` null when unknown), or the
/// old script's success object when nothing failed.
pub fn failures_json(results: &[ItemResult], site_url: &str) -> Value {
    failures_or_success(run_failures(results, site_url).collect())
}

fn run_failures<'a>(
    results: &'a [ItemResult],
    site_url: &'a str,
) -> impl Iterator<Item = Value> + 'a {
    results.iter().filter_map(move |r| {
        let status = failure_status(r.outcome)?;
        Some(failure_entry(
            Some(&r.account_id),
            site_url,
            status,
            &r.message,
            r.email.as_deref(),
        ))
    })
}

/// The failures report for a file run, like the old script's: rows of the preview that were not
/// acted on (not found, ambiguous, invalid, protected, ...) come first as `"failed"` entries,
/// then the run's own failures. Duplicate rows are left out: their account is reported once,
/// through the row that selected it. `account_id`/`account_url` are null for rows with no account.
pub fn failures_json_with_preview(
    preview: &Preview,
    results: &[ItemResult],
    site_url: &str,
) -> Value {
    let skipped = preview.skipped().map(|r| {
        let message = joined_reason(r.outcome.label(), &r.reason);
        let email = r
            .input
            .contains('@')
            .then_some(r.input.as_str())
            .or_else(|| r.emails.first().map(String::as_str));
        failure_entry(
            // An ambiguous row names one of several accounts: pointing support at it alone
            // would mislead, so it is reported by email only.
            r.account_id
                .as_deref()
                .filter(|_| r.outcome != PreviewOutcome::Ambiguous),
            site_url,
            "failed",
            &message,
            email,
        )
    });
    failures_or_success(skipped.chain(run_failures(results, site_url)).collect())
}

fn failures_or_success(entries: Vec<Value>) -> Value {
    if entries.is_empty() {
        json!({
            "status": "success",
            "message": "All selected users were deleted successfully.",
        })
    } else {
        Value::Array(entries)
    }
}

fn failure_entry(
    account_id: Option<&str>,
    site_url: &str,
    status: &str,
    message: &str,
    email: Option<&str>,
) -> Value {
    json!({
        "account_id": account_id,
        "account_url": account_id.map(|id| account_url(site_url, id)),
        "status": status,
        "message": message,
        "email": email,
    })
}

/// `{site}/accounts/{id}`, whatever trailing slashes the admin typed.
pub fn account_url(site_url: &str, account_id: &str) -> String {
    format!(
        "{}/accounts/{}",
        site_url.trim().trim_end_matches('/'),
        account_id
    )
}

/// One line of the results spreadsheet: a line of the admin's input and what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultLine {
    /// The file's line (None for users picked from a list, and for runs without a preview).
    pub line: Option<usize>,
    pub input: String,
    /// The person's name as the site shows it.
    pub name: String,
    pub account_id: String,
    pub email: String,
    /// In the words the Preview page uses: "deleted", "not deleted", "skipped", ...
    pub outcome: &'static str,
    /// Why, in plain words.
    pub reason: String,
}

/// A run of blank lines longer than this is one line of the spreadsheet, not one per line: a
/// file of a million empty lines must not make a million-row spreadsheet.
const BLANK_LINES_LISTED_ONE_BY_ONE: usize = 100;

/// "not deleted" / "not deactivated": a user the run did not remove as asked.
fn not_done(action: Action) -> &'static str {
    match action.now() {
        Action::Delete => "not deleted",
        _ => "not deactivated",
    }
}

/// What a run result means for the admin, and why.
fn result_words(result: &ItemResult, action: Action) -> (&'static str, String) {
    let outcome = match result.outcome {
        ItemOutcome::Deleted => "deleted",
        ItemOutcome::Deactivated => "deactivated",
        ItemOutcome::AlreadyGone => "already gone",
        _ => not_done(action),
    };
    let reason = match (result.outcome, result.message.trim()) {
        (ItemOutcome::Deleted | ItemOutcome::Deactivated, message) => message.to_string(),
        (other, "") => other.label().to_string(),
        (other, message) if message.starts_with(other.label()) => message.to_string(),
        (other, message) => format!("{}: {message}", other.label()),
    };
    (outcome, reason)
}

/// "label: reason", or the reason alone when it already starts with the label ("already
/// deleted on 7 Dec 2026 by …").
fn joined_reason(label: &str, reason: &str) -> String {
    if reason.trim().is_empty() {
        label.to_string()
    } else if reason.starts_with(label) {
        reason.to_string()
    } else {
        format!("{label}: {reason}")
    }
}

/// Every line of the admin's input in order (the header and blank lines included, with their
/// line numbers) and what became of it in the run: the results spreadsheet's rows. A result
/// that no preview row names (never expected) is added at the end rather than lost.
pub fn result_lines(preview: &Preview, results: &[ItemResult], action: Action) -> Vec<ResultLine> {
    let by_account: std::collections::HashMap<&str, &ItemResult> =
        results.iter().map(|r| (r.account_id.trim(), r)).collect();
    // The line that selected each account, for the duplicates that point back at it.
    let mut selected_on: std::collections::HashMap<&str, Option<usize>> =
        std::collections::HashMap::new();
    for row in preview.selected() {
        if let Some(id) = row.account_id.as_deref() {
            selected_on.entry(id.trim()).or_insert(row.line);
        }
    }
    let mut cited = std::collections::HashSet::new();
    let mut lines: Vec<ResultLine> = preview
        .rows
        .iter()
        .map(|row| {
            let account_id = row.account_id.clone().unwrap_or_default();
            let result = (row.outcome == PreviewOutcome::Selected)
                .then(|| by_account.get(account_id.trim()))
                .flatten();
            let (outcome, reason) = match (row.outcome, result) {
                (PreviewOutcome::Selected, Some(result)) => {
                    cited.insert(account_id.trim().to_string());
                    let (outcome, why) = result_words(result, action);
                    let why = match (why.is_empty(), row.reason.is_empty()) {
                        (true, _) => row.reason.clone(),
                        (false, true) => why,
                        (false, false) => format!("{why} ({})", row.reason),
                    };
                    (outcome, why)
                }
                (PreviewOutcome::Selected, None) => (
                    "not processed yet",
                    joined_reason("the run has not reached this user", &row.reason),
                ),
                (PreviewOutcome::Duplicate, _) => {
                    let earlier = selected_on.get(account_id.trim()).copied().flatten();
                    let reason = match earlier {
                        Some(line) => format!(
                            "the same account as line {line}: see that line for what became of it"
                        ),
                        None => row.reason.clone(),
                    };
                    ("duplicate", reason)
                }
                // Gone already, by an earlier run of Offboard: not something left undone.
                (PreviewOutcome::AlreadyDeleted, _) => ("already deleted", row.reason.clone()),
                (other, _) => (not_done(action), joined_reason(other.label(), &row.reason)),
            };
            ResultLine {
                line: row.line,
                input: row.input.clone(),
                name: row
                    .display_name
                    .clone()
                    .or_else(|| row.user_name.clone())
                    .unwrap_or_default(),
                email: result
                    .and_then(|r| r.email.clone())
                    .or_else(|| row.input.contains('@').then(|| row.input.clone()))
                    .or_else(|| row.emails.first().cloned())
                    .unwrap_or_default(),
                account_id,
                outcome,
                reason,
            }
        })
        .collect();
    let unread = &preview.unread_lines;
    if let Some(header) = unread.header {
        lines.push(skipped_line(
            header,
            "the header row: the names of the columns",
        ));
    }
    for &[first, last] in &unread.blank {
        if last.saturating_sub(first) < BLANK_LINES_LISTED_ONE_BY_ONE {
            lines.extend((first..=last).map(|line| skipped_line(line, "a blank line")));
        } else {
            lines.push(skipped_line(
                first,
                &format!("blank lines {first} to {last}"),
            ));
        }
    }
    // In file order; rows without a line (picked users) keep their order, after any line.
    lines.sort_by_key(|l| l.line.unwrap_or(usize::MAX));
    lines.extend(
        results
            .iter()
            .filter(|r| !cited.contains(r.account_id.trim()))
            .map(|r| {
                let (outcome, reason) = result_words(r, action);
                ResultLine {
                    line: None,
                    input: r.account_id.clone(),
                    name: String::new(),
                    account_id: r.account_id.clone(),
                    email: r.email.clone().unwrap_or_default(),
                    outcome,
                    reason,
                }
            }),
    );
    lines
}

fn skipped_line(line: usize, reason: &str) -> ResultLine {
    ResultLine {
        line: Some(line),
        input: String::new(),
        name: String::new(),
        account_id: String::new(),
        email: String::new(),
        outcome: "skipped",
        reason: reason.to_string(),
    }
}

/// The results spreadsheet an admin files away: every line of their input, in order, with the
/// person's name, account ID, the outcome and the reason in words. The technical figures
/// (attempts, time taken) are in the JSON results only.
pub fn results_csv(preview: &Preview, results: &[ItemResult], action: Action) -> String {
    let header = [
        "Line",
        "Input",
        "Name",
        "Account ID",
        "Email",
        "Outcome",
        "Reason",
    ];
    let rows = result_lines(preview, results, action).into_iter().map(|l| {
        vec![
            l.line.map(|n| n.to_string()).unwrap_or_default(),
            l.input,
            l.name,
            l.account_id,
            l.email,
            l.outcome.to_string(),
            l.reason,
        ]
    });
    spreadsheet_csv(&header, rows)
}

/// The name a run's report is downloaded under: the date and the site in it, so a folder of
/// them sorts by date and says which site each is about
/// (`offboard-2026-12-07-acme.stackenterprise.co-results.csv`). The failures report keeps the
/// old script's name: Stack support knows it.
pub fn run_report_name<Tz: TimeZone>(kind: ReportKind, site_url: &str, at: DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    if kind == ReportKind::Failures {
        return failures_file_name(at);
    }
    let name = kind.file_name();
    let (stem, extension) = name.rsplit_once('.').unwrap_or((name, ""));
    let stem = stem.replace('_', "-");
    let site = site_in_file_name(site_url);
    let date = at.format("%Y-%m-%d");
    if site.is_empty() {
        format!("offboard-{date}-{stem}.{extension}")
    } else {
        format!("offboard-{date}-{site}-{stem}.{extension}")
    }
}

/// The site's host and path as a file name part: `https://stackoverflowteams.com/c/acme/` →
/// `stackoverflowteams.com-c-acme`. Only letters, digits, dots and dashes remain, so the name
/// is safe in a download header and on every file system.
pub fn site_in_file_name(site_url: &str) -> String {
    let site = site_url.trim();
    let site = site.split_once("://").map_or(site, |(_, rest)| rest);
    let site = site.split(['?', '#']).next().unwrap_or_default();
    let mut name = String::new();
    for c in site.chars() {
        match c {
            c if c.is_ascii_alphanumeric() || c == '.' => name.push(c.to_ascii_lowercase()),
            _ if name.ends_with('-') || name.is_empty() => {}
            _ => name.push('-'),
        }
    }
    let name: String = name.chars().take(80).collect();
    name.trim_matches(['-', '.']).to_string()
}

/// A team's audit trail as a spreadsheet, one entry a row in the order given (cells guarded
/// like every other CSV: an actor or a details text cannot become a formula).
pub fn audit_csv(entries: &[model::audit::AuditEntryView]) -> String {
    // Times stay UTC in downloads (RFC 3339), and the header says so.
    let header = ["seq", "at (UTC)", "actor", "action", "target", "details"];
    let rows = entries.iter().map(|e| {
        vec![
            e.seq.to_string(),
            e.at.clone(),
            e.actor.clone(),
            e.action.key().to_string(),
            e.target.clone().unwrap_or_default(),
            e.details.clone(),
        ]
    });
    spreadsheet_csv(&header, rows)
}

/// Every result, successes included, as JSON.
pub fn results_json(results: &[ItemResult]) -> Value {
    Value::Array(
        results
            .iter()
            .map(|r| {
                json!({
                    "account_id": r.account_id,
                    "email": r.email,
                    "outcome": r.outcome.label(),
                    "message": r.message,
                    "attempts": r.attempts,
                    "elapsed_ms": r.elapsed_ms,
                    "demoted": r.demoted,
                })
            })
            .collect(),
    )
}

/// The preview the admin reviews, as CSV.
pub fn preview_csv(preview: &Preview, action: Action) -> String {
    // Only a file has line numbers: a preview of site users has no empty "line" column.
    let lines = matches!(preview.source, PreviewSource::File { .. });
    let header = [
        "line",
        "input",
        "outcome",
        "account_id",
        "user_name",
        "display_name",
        "emails",
        "active",
        "role",
        "reason",
    ];
    let header = &header[usize::from(!lines)..];
    let rows = preview.rows.iter().map(|r| {
        let mut cells = vec![
            r.line.map(|l| l.to_string()).unwrap_or_default(),
            r.input.clone(),
            // The Preview page's words for the preview's action ("will be deleted").
            r.outcome.label_for(action).to_string(),
            r.account_id.clone().unwrap_or_default(),
            r.user_name.clone().unwrap_or_default(),
            r.display_name.clone().unwrap_or_default(),
            r.emails.join("; "),
            r.active.map(|a| a.to_string()).unwrap_or_default(),
            r.role.as_ref().map(|x| x.to_string()).unwrap_or_default(),
            r.reason.clone(),
        ];
        if !lines {
            cells.remove(0);
        }
        cells
    });
    spreadsheet_csv(header, rows)
}

/// One user of the listing snapshot, borrowed from the listing (no copy of its text). Fields
/// in alphabetical order: the order the file always had (it was built as a sorted JSON map).
#[derive(serde::Serialize)]
struct SnapshotUser<'a> {
    account_id: &'a str,
    active: bool,
    created: &'a Option<String>,
    display_name: &'a Option<String>,
    emails: &'a [String],
    external_id: &'a Option<String>,
    primary_email: &'a Option<String>,
    role: String,
    user_name: &'a Option<String>,
}

impl<'a> From<&'a SiteUser> for SnapshotUser<'a> {
    fn from(u: &'a SiteUser) -> Self {
        SnapshotUser {
            account_id: &u.id,
            external_id: &u.external_id,
            user_name: &u.user_name,
            display_name: &u.display_name,
            emails: &u.emails,
            primary_email: &u.primary_email,
            active: u.active,
            role: u.role.to_string(),
            created: &u.created,
        }
    }
}

/// The user listing as Offboard saw it, kept with the job (the old script's `all_users.json`).
pub fn all_users_json(users: &[SiteUser]) -> Value {
    serde_json::to_value(users.iter().map(SnapshotUser::from).collect::<Vec<_>>())
        .unwrap_or_else(|_| Value::Array(Vec::new()))
}

/// Writes [`all_users_json`] (pretty-printed) to `out` user by user, without building it in
/// memory first: a 50,000-user site would otherwise hold the listing twice more.
pub fn write_all_users_json(users: &[SiteUser], out: impl std::io::Write) -> std::io::Result<()> {
    use serde::Serializer;
    let mut out = std::io::BufWriter::new(out);
    let mut json = serde_json::Serializer::pretty(&mut out);
    json.collect_seq(users.iter().map(SnapshotUser::from))?;
    std::io::Write::flush(&mut out)
}

/// CSV text with every cell quoted and guarded against formula injection: admins open these
/// files in Excel or LibreOffice, and a user-controlled display name like `=HYPERLINK(...)`
/// must stay text. Quoting every field keeps each cell one cell whatever separator the
/// spreadsheet assumes (a `;` locale would otherwise split an unquoted `a;b`).
fn spreadsheet_csv(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Always)
        .from_writer(Vec::new());
    // Writing to a Vec cannot fail; a failure would only lose the rows after it, never panic.
    let _ = writer.write_record(header);
    for row in rows {
        let _ = writer.write_record(row.iter().map(|c| guard_formula(c)));
    }
    let bytes = writer.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

/// Prefixes an apostrophe to cells a spreadsheet would run as a formula (OWASP's list: `=`,
/// `+`, `-`, `@`, tab, carriage return), so `-1` reads back as `'-1`, by design. Leading
/// spaces and quotes are looked through, since spreadsheets skip them too (` =1+1`, `"=1+1`).
pub fn guard_formula(cell: &str) -> String {
    const TRIGGERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];
    if cell.starts_with(TRIGGERS)
        || cell
            .trim_start_matches([' ', '"', '\''])
            .starts_with(TRIGGERS)
    {
        format!("'{cell}")
    } else {
        cell.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::resolve::{self, blank_row, Policy};
    use chrono::{FixedOffset, Utc};
    use model::deletion::{PreviewRow, PreviewSource, Role};
    use std::collections::BTreeSet;

    /// A CSV download read back by a quote-aware reader: its header joined with commas, and
    /// its rows cell by cell.
    fn csv_table(text: &str) -> (String, Vec<Vec<String>>) {
        let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
        let header = reader
            .headers()
            .expect("header")
            .iter()
            .collect::<Vec<_>>()
            .join(",");
        let rows = reader
            .records()
            .map(|r| r.expect("row").iter().map(String::from).collect())
            .collect();
        (header, rows)
    }

    fn result(id: &str, outcome: ItemOutcome, message: &str, email: Option<&str>) -> ItemResult {
        ItemResult {
            account_id: id.to_string(),
            email: email.map(str::to_string),
            outcome,
            message: message.to_string(),
            attempts: 2,
            elapsed_ms: 150,
            demoted: false,
        }
    }

    fn keys(v: &Value) -> BTreeSet<&str> {
        v.as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect()
    }

    #[test]
    fn file_name_matches_the_old_script() {
        let at = Utc.with_ymd_and_hms(2025, 3, 7, 9, 5, 1).unwrap();
        assert_eq!(
            failures_file_name(at),
            "failed_deletions_2025-03-07_09-05-01.json"
        );
        let local = at.with_timezone(&FixedOffset::east_opt(2 * 3600).unwrap());
        assert_eq!(
            failures_file_name(local),
            "failed_deletions_2025-03-07_11-05-01.json"
        );
    }

    #[test]
    fn failures_have_exactly_the_old_keys() {
        let results = vec![
            result("1", ItemOutcome::Deleted, "deleted", Some("a@x.com")),
            result("2", ItemOutcome::Failed, "Server error", Some("b@x.com")),
            result(
                "3",
                ItemOutcome::ChangedSincePreview,
                "now has role Admin",
                None,
            ),
            result("4", ItemOutcome::AlreadyGone, "already gone", None),
        ];
        let v = failures_json(&results, "https://acme.stackenterprise.co//");
        let list = v.as_array().expect("a list");
        assert_eq!(list.len(), 2);
        let expected: BTreeSet<&str> = ["account_id", "account_url", "status", "message", "email"]
            .into_iter()
            .collect();
        for entry in list {
            assert_eq!(keys(entry), expected);
        }
        assert_eq!(
            list[0],
            json!({
                "account_id": "2",
                "account_url": "https://acme.stackenterprise.co/accounts/2",
                "status": "error",
                "message": "Server error",
                "email": "b@x.com",
            })
        );
        assert_eq!(list[1]["status"], "failed");
        assert_eq!(list[1]["email"], Value::Null);
    }

    #[test]
    fn success_object_when_nothing_failed() {
        let ok = vec![
            result("1", ItemOutcome::Deleted, "", None),
            result("2", ItemOutcome::Deactivated, "", None),
        ];
        for results in [ok.as_slice(), &[]] {
            let v = failures_json(results, "https://x");
            assert_eq!(
                v,
                json!({"status": "success", "message": "All selected users were deleted successfully."})
            );
            assert_eq!(keys(&v), ["message", "status"].into_iter().collect());
        }
    }

    #[test]
    fn every_failure_outcome_has_a_status() {
        let failing: Vec<ItemOutcome> = [
            ItemOutcome::DeletionNotEnabled,
            ItemOutcome::Privileged,
            ItemOutcome::CommunityCreator,
            ItemOutcome::SystemAccount,
            ItemOutcome::Failed,
        ]
        .to_vec();
        for o in failing {
            assert_eq!(failure_status(o), Some("error"), "{o:?}");
        }
        assert_eq!(failure_status(ItemOutcome::NotAttempted), Some("failed"));
        assert_eq!(
            failure_status(ItemOutcome::ChangedSincePreview),
            Some("failed")
        );
        // The report lists exactly what the model calls a failure.
        for o in [
            ItemOutcome::Deleted,
            ItemOutcome::Deactivated,
            ItemOutcome::AlreadyGone,
            ItemOutcome::DeletionNotEnabled,
            ItemOutcome::Privileged,
            ItemOutcome::CommunityCreator,
            ItemOutcome::SystemAccount,
            ItemOutcome::ChangedSincePreview,
            ItemOutcome::Failed,
            ItemOutcome::NotAttempted,
        ] {
            assert_eq!(failure_status(o).is_none(), o.is_success(), "{o:?}");
        }
    }

    #[test]
    fn account_urls_ignore_trailing_slashes() {
        assert_eq!(
            account_url("https://stackoverflowteams.com/c/acme/", "42"),
            "https://stackoverflowteams.com/c/acme/accounts/42"
        );
        assert_eq!(
            account_url(" https://a.co ", "1"),
            "https://a.co/accounts/1"
        );
    }

    fn preview_row(line: usize, input: &str, outcome: PreviewOutcome) -> PreviewRow {
        PreviewRow {
            line: Some(line),
            ..blank_row(input, outcome, String::new())
        }
    }

    fn preview(rows: Vec<PreviewRow>) -> Preview {
        resolve::preview(PreviewSource::Picked, rows, &Policy::default())
    }

    #[test]
    fn failures_with_preview_list_skipped_rows_like_the_old_script() {
        let mut not_found = preview_row(2, "gone@x.com", PreviewOutcome::NotFound);
        not_found.reason = "no account on the site has this email".into();
        let mut ambiguous = preview_row(3, "s@x.com", PreviewOutcome::Ambiguous);
        ambiguous.account_id = Some("7".into());
        let mut privileged = preview_row(4, "12", PreviewOutcome::Privileged);
        privileged.account_id = Some("12".into());
        privileged.emails = vec!["mod@x.com".into()];
        let p = preview(vec![
            preview_row(1, "a@x.com", PreviewOutcome::Selected),
            not_found,
            ambiguous,
            privileged,
            preview_row(5, "a@x.com", PreviewOutcome::Duplicate),
        ]);
        let results = vec![result("1", ItemOutcome::Deleted, "", Some("a@x.com"))];
        let v = failures_json_with_preview(&p, &results, "https://a.co/");
        let list = v.as_array().expect("a list");
        assert_eq!(list.len(), 3);
        assert_eq!(
            list[0],
            json!({
                "account_id": null,
                "account_url": null,
                "status": "failed",
                "message": "not found: no account on the site has this email",
                "email": "gone@x.com",
            })
        );
        assert_eq!(list[1]["account_id"], Value::Null);
        assert_eq!(list[2]["account_url"], "https://a.co/accounts/12");
        assert_eq!(list[2]["email"], "mod@x.com");
        // Nothing skipped, nothing failed: the success object.
        let p = preview(vec![preview_row(1, "a@x.com", PreviewOutcome::Selected)]);
        assert_eq!(
            failures_json_with_preview(&p, &results, "https://a.co")["status"],
            "success"
        );
    }

    #[test]
    fn audit_csv_keeps_each_entry_one_guarded_row() {
        let entry = |seq: i64, actor: &str, details: &str| model::audit::AuditEntryView {
            seq,
            at: "2026-11-30T12:00:00Z".into(),
            actor: actor.into(),
            action: model::audit::AuditAction::RunEnded,
            target: Some("job-1".into()),
            details: details.into(),
        };
        let text = audit_csv(&[
            entry(2, "=HYPERLINK(\"http://evil\")", "{\"deleted\":3}"),
            entry(1, "me@example.com", "{}"),
        ]);
        let (header, rows) = csv_table(&text);
        assert_eq!(header, "seq,at (UTC),actor,action,target,details");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][2], "'=HYPERLINK(\"http://evil\")");
        assert_eq!(rows[0][3], "run_ended");
        assert_eq!(rows[0][5], "{\"deleted\":3}");
        assert_eq!(rows[1][0], "1");
    }

    fn selected(line: usize, input: &str, id: &str, name: &str) -> PreviewRow {
        let mut row = preview_row(line, input, PreviewOutcome::Selected);
        row.account_id = Some(id.into());
        row.display_name = Some(name.into());
        row.emails = vec![input.into()];
        row
    }

    #[test]
    fn results_csv_quotes_and_guards_cells() {
        let p = preview(vec![
            selected(1, "a@x.com", "1", "Ann"),
            selected(2, "@b@x.com", "2", "=HYPERLINK(\"http://evil\")"),
            selected(3, "-1", "-1", "Community"),
        ]);
        let results = [
            ("1", ItemOutcome::Deleted, "", Some("a@x.com")),
            (
                "2",
                ItemOutcome::Failed,
                "=cmd, \"quoted\"\nnext line",
                Some("@b@x.com"),
            ),
            ("-1", ItemOutcome::SystemAccount, "+cmd", None),
        ]
        .map(|(id, outcome, message, email)| result(id, outcome, message, email));
        let text = results_csv(&p, &results, Action::Delete);
        let (header, rows) = csv_table(&text);
        assert_eq!(header, "Line,Input,Name,Account ID,Email,Outcome,Reason");
        assert_eq!(
            rows[0],
            vec!["1", "a@x.com", "Ann", "1", "a@x.com", "deleted", ""]
        );
        assert_eq!(rows[1][2], "'=HYPERLINK(\"http://evil\")");
        assert_eq!(rows[1][4], "'@b@x.com");
        assert_eq!(rows[1][5], "not deleted");
        assert_eq!(rows[1][6], "failed: =cmd, \"quoted\"\nnext line");
        assert_eq!(rows[2][3], "'-1");
        assert_eq!(rows[2][6], "system account: +cmd");
        assert!(text.starts_with("\"Line\",\"Input\",\"Name\""));
        assert!(!text.contains("attempts") && !text.contains("elapsed"));
    }

    #[test]
    fn the_results_spreadsheet_has_every_line_of_the_file_in_order() {
        // Line 1 header; 2 deleted; 3 blank; 4 not found; 5 invalid; 6 duplicate of 2;
        // 7 community creator; 8-9 blank; 10 not reached (cancelled); 11 ambiguous.
        let mut not_found = preview_row(4, "gone@x.com", PreviewOutcome::NotFound);
        not_found.reason = "no account on the site has this email".into();
        let mut invalid = preview_row(5, "ann at x", PreviewOutcome::Invalid);
        invalid.reason = "not an email address or an account ID".into();
        let mut duplicate = preview_row(6, "ANN@x.com", PreviewOutcome::Duplicate);
        duplicate.account_id = Some("1".into());
        duplicate.display_name = Some("Ann Lee".into());
        let mut ambiguous = preview_row(11, "bob@x.com", PreviewOutcome::Ambiguous);
        ambiguous.reason =
            "this email belongs to several accounts (8, 9); none will be touched".into();
        let mut p = preview(vec![
            selected(2, "ann@x.com", "1", "Ann Lee"),
            not_found,
            invalid,
            duplicate,
            selected(7, "cc@x.com", "7", "Cat Creator"),
            selected(10, "late@x.com", "10", "Lou Late"),
            ambiguous,
        ]);
        p.unread_lines = model::deletion::UnreadLines {
            header: Some(1),
            blank: vec![[3, 3], [8, 9]],
        };
        let creator = "created a community: only Stack support can delete this user";
        let results = [
            ("1", ItemOutcome::Deleted, "", "ann@x.com"),
            ("7", ItemOutcome::CommunityCreator, creator, "cc@x.com"),
            (
                "10",
                ItemOutcome::NotAttempted,
                "Priya cancelled the run",
                "late@x.com",
            ),
        ]
        .map(|(id, outcome, message, email)| result(id, outcome, message, Some(email)));
        let lines = result_lines(&p, &results, Action::Delete);
        let numbers: Vec<_> = lines.iter().map(|l| l.line).collect();
        assert_eq!(numbers, (1..=11).map(Some).collect::<Vec<_>>());
        let outcome = |n: usize| (lines[n - 1].outcome, lines[n - 1].reason.as_str());
        assert_eq!(
            outcome(1),
            ("skipped", "the header row: the names of the columns")
        );
        assert_eq!(outcome(2), ("deleted", ""));
        assert_eq!(lines[1].name, "Ann Lee");
        assert_eq!(lines[1].account_id, "1");
        assert_eq!(outcome(3), ("skipped", "a blank line"));
        assert_eq!(
            outcome(4),
            (
                "not deleted",
                "not found: no account on the site has this email"
            )
        );
        assert_eq!(lines[3].email, "gone@x.com");
        assert_eq!(
            outcome(5),
            (
                "not deleted",
                "invalid row: not an email address or an account ID"
            )
        );
        assert_eq!(
            outcome(6),
            (
                "duplicate",
                "the same account as line 2: see that line for what became of it"
            )
        );
        assert_eq!(
            outcome(7),
            (
                "not deleted",
                "community creator: created a community: only Stack support can delete this user"
            )
        );
        assert_eq!(outcome(8), ("skipped", "a blank line"));
        assert_eq!(
            outcome(10),
            ("not deleted", "not attempted: Priya cancelled the run")
        );
        assert_eq!(outcome(11).0, "not deleted");
        assert!(outcome(11)
            .1
            .starts_with("ambiguous: this email belongs to several accounts"));
        // The CSV has the same lines, header first.
        let (_, rows) = csv_table(&results_csv(&p, &results, Action::Delete));
        assert_eq!(rows.len(), 11);
        assert_eq!(rows[3][0], "4");
    }

    #[test]
    fn deactivation_words_and_rows_without_a_line() {
        let p = preview(vec![
            {
                let mut r = selected(1, "5", "5", "Eve");
                r.line = None;
                r
            },
            {
                let mut r = selected(1, "6", "6", "Max");
                r.line = None;
                r
            },
        ]);
        let results = vec![
            result("6", ItemOutcome::Failed, "", None),
            result("5", ItemOutcome::Deactivated, "", None),
            // A result no row names still appears.
            result("99", ItemOutcome::AlreadyGone, "already gone", None),
        ];
        let lines = result_lines(&p, &results, Action::Deactivate);
        let summary: Vec<_> = lines
            .iter()
            .map(|l| (l.account_id.as_str(), l.outcome, l.reason.as_str()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("5", "deactivated", ""),
                ("6", "not deactivated", "failed"),
                ("99", "already gone", "already gone"),
            ]
        );
        // Before the run reaches a user.
        let lines = result_lines(&p, &[], Action::Delete);
        assert_eq!(lines[0].outcome, "not processed yet");
    }

    #[test]
    fn a_row_an_earlier_run_deleted_says_so_once() {
        let mut row = preview_row(1, "ann@x.com", PreviewOutcome::AlreadyDeleted);
        row.reason =
            "already deleted on 7 Dec 2026 by Priya Shah: Offboard deleted account 7 in that run"
                .into();
        let p = preview(vec![row.clone()]);
        let lines = result_lines(&p, &[], Action::Delete);
        assert_eq!(lines[0].outcome, "already deleted");
        assert_eq!(lines[0].reason, row.reason);
        // The failures report keeps its shape; the label is not said twice.
        let v = failures_json_with_preview(&p, &[], "https://a.co");
        assert_eq!(v[0]["status"], "failed");
        assert_eq!(v[0]["message"], row.reason.as_str());
        assert_eq!(v[0]["email"], "ann@x.com");
    }

    #[test]
    fn a_long_run_of_blank_lines_is_one_line() {
        let mut p = preview(vec![selected(1, "a@x.com", "1", "Ann")]);
        p.unread_lines.blank = vec![[2, 1_000_000]];
        let lines = result_lines(&p, &[], Action::Delete);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].reason, "blank lines 2 to 1000000");
        p.unread_lines.blank = vec![[2, 101]];
        assert_eq!(result_lines(&p, &[], Action::Delete).len(), 101);
    }

    #[test]
    fn run_report_names_carry_the_date_and_the_site() {
        let at = Utc.with_ymd_and_hms(2026, 12, 7, 23, 5, 1).unwrap();
        let site = "https://acme.stackenterprise.co/";
        assert_eq!(
            run_report_name(ReportKind::ResultsCsv, site, at),
            "offboard-2026-12-07-acme.stackenterprise.co-results.csv"
        );
        assert_eq!(
            run_report_name(ReportKind::ResultsJson, site, at),
            "offboard-2026-12-07-acme.stackenterprise.co-results.json"
        );
        assert_eq!(
            run_report_name(
                ReportKind::AllUsers,
                "https://stackoverflowteams.com/c/Acme/",
                at
            ),
            "offboard-2026-12-07-stackoverflowteams.com-c-acme-all-users.json"
        );
        // The failures report keeps the old script's name.
        assert_eq!(
            run_report_name(ReportKind::Failures, site, at),
            "failed_deletions_2026-12-07_23-05-01.json"
        );
        // Nothing from the address can break the download header or a path.
        for hostile in [
            "https://a.co/\"; rm -rf /",
            "../../etc/passwd",
            "héllo wörld\r\n",
            "",
        ] {
            let name = run_report_name(ReportKind::ResultsCsv, hostile, at);
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-')),
                "{name}"
            );
            assert!(!name.contains(".."), "{name}");
        }
        assert_eq!(site_in_file_name(&"x".repeat(500)).len(), 80);
    }

    #[test]
    fn formulas_behind_spaces_or_quotes_are_guarded() {
        for cell in [
            "=1+1",
            " =1+1",
            "  +cmd",
            "\"=HYPERLINK()",
            "' @SUM(A1)",
            "\t=x",
            "\r=x",
            "-2",
        ] {
            assert_eq!(guard_formula(cell), format!("'{cell}"), "{cell:?}");
        }
        for cell in ["", "ann@x.com", "Ann = Bob", "1-2", " plain", "\"quoted\""] {
            assert_eq!(guard_formula(cell), cell, "{cell:?}");
        }
    }

    #[test]
    fn results_json_has_every_row() {
        let mut demoted = result("2", ItemOutcome::Deleted, "", None);
        demoted.demoted = true;
        let v = results_json(&[
            result("1", ItemOutcome::Failed, "boom", Some("a@x.com")),
            demoted,
        ]);
        let list = v.as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(
            list[0],
            json!({"account_id": "1", "email": "a@x.com", "outcome": "failed", "message": "boom",
                   "attempts": 2, "elapsed_ms": 150, "demoted": false})
        );
        assert_eq!(list[1]["demoted"], true);
        assert_eq!(list[1]["email"], Value::Null);
    }

    #[test]
    fn preview_csv_lists_every_row() {
        let mut row = preview_row(3, "ann@x.com", PreviewOutcome::Selected);
        row.account_id = Some("10".into());
        row.display_name = Some("=1+1".into());
        row.emails = vec!["ann@x.com".into(), "a@y.com".into()];
        row.active = Some(false);
        row.role = Some(Role::Moderator);
        row.reason = "Moderator: will be demoted to Registered first".into();
        let mut picked = preview_row(1, "11", PreviewOutcome::NotFound);
        picked.line = None;
        let mut from_file = preview(vec![row.clone(), picked.clone()]);
        from_file.source = PreviewSource::File {
            file_name: "leavers.csv".into(),
            column: Default::default(),
        };
        let text = preview_csv(&from_file, Action::Delete);
        let (header, rows) = csv_table(&text);
        assert_eq!(
            header,
            "line,input,outcome,account_id,user_name,display_name,emails,active,role,reason"
        );
        assert_eq!(
            rows[0],
            vec![
                "3",
                "ann@x.com",
                "will be deleted",
                "10",
                "",
                "'=1+1",
                "ann@x.com; a@y.com",
                "false",
                "Moderator",
                "Moderator: will be demoted to Registered first"
            ]
        );
        assert_eq!(
            rows[1],
            vec!["", "11", "not found", "", "", "", "", "", "", ""]
        );
        // Users picked on the site have no lines, so no "line" column; the words follow the
        // action, as on the Preview page.
        let text = preview_csv(&preview(vec![row, picked]), Action::Deactivate);
        let (header, rows) = csv_table(&text);
        assert_eq!(
            header,
            "input,outcome,account_id,user_name,display_name,emails,active,role,reason"
        );
        assert_eq!(rows[0][..3], ["ann@x.com", "will be deactivated", "10"]);
        assert_eq!(rows[1], vec!["11", "not found", "", "", "", "", "", "", ""]);
    }

    #[test]
    fn all_users_snapshot() {
        let u = SiteUser {
            id: "5".into(),
            emails: vec!["a@x.com".into()],
            primary_email: Some("a@x.com".into()),
            role: Role::Admin,
            ..SiteUser::default()
        };
        let v = all_users_json(&[u]);
        assert_eq!(v[0]["account_id"], "5");
        assert_eq!(v[0]["role"], "Admin");
        assert_eq!(v[0]["active"], false);
        assert_eq!(v[0]["emails"], json!(["a@x.com"]));
        assert_eq!(all_users_json(&[]), json!([]));
    }

    #[test]
    fn the_streamed_snapshot_is_the_same_document() {
        let users: Vec<SiteUser> = (0..3)
            .map(|i| SiteUser {
                id: format!("{i}"),
                display_name: Some(format!("User \"{i}\"")),
                emails: vec![format!("u{i}@x.com"), "shared@x.com".into()],
                active: i % 2 == 0,
                role: Role::Moderator,
                ..SiteUser::default()
            })
            .collect();
        for users in [&users[..], &[]] {
            let mut written = Vec::new();
            write_all_users_json(users, &mut written).unwrap();
            let expected = serde_json::to_string_pretty(&all_users_json(users)).unwrap();
            assert_eq!(String::from_utf8(written).unwrap(), expected);
        }
    }
}
