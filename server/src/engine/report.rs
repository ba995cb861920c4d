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
        let message = if r.reason.is_empty() {
            r.outcome.label().to_string()
        } else {
            format!("{}: {}", r.outcome.label(), r.reason)
        };
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

/// Every result, successes included, as CSV for spreadsheets.
pub fn results_csv(results: &[ItemResult]) -> String {
    let header = [
        "account_id",
        "email",
        "outcome",
        "message",
        "attempts",
        "elapsed_ms",
        "demoted",
    ];
    let rows = results.iter().map(|r| {
        vec![
            r.account_id.clone(),
            r.email.clone().unwrap_or_default(),
            r.outcome.label().to_string(),
            r.message.clone(),
            r.attempts.to_string(),
            r.elapsed_ms.to_string(),
            r.demoted.to_string(),
        ]
    });
    spreadsheet_csv(&header, rows)
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
    use chrono::{FixedOffset, Utc};
    use model::deletion::{PreviewCounts, PreviewRow, PreviewSource, Role};
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
            input: input.to_string(),
            outcome,
            account_id: None,
            user_name: None,
            display_name: None,
            emails: vec![],
            active: None,
            role: None,
            reason: String::new(),
            candidates: vec![],
        }
    }

    fn preview(rows: Vec<PreviewRow>) -> Preview {
        Preview {
            source: PreviewSource::Picked,
            counts: PreviewCounts::from_rows(&rows),
            rows,
            demote_privileged: false,
        }
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

    #[test]
    fn results_csv_quotes_and_guards_cells() {
        let results = vec![
            result("1", ItemOutcome::Deleted, "ok", Some("a@x.com")),
            result(
                "2",
                ItemOutcome::Failed,
                "=HYPERLINK(\"http://evil\"), \"quoted\"\nnext line",
                Some("@b@x.com"),
            ),
            result("-1", ItemOutcome::SystemAccount, "+cmd", None),
        ];
        let text = results_csv(&results);
        let (header, rows) = csv_table(&text);
        assert_eq!(
            header,
            "account_id,email,outcome,message,attempts,elapsed_ms,demoted"
        );
        assert_eq!(
            rows[0],
            vec!["1", "a@x.com", "deleted", "ok", "2", "150", "false"]
        );
        assert_eq!(
            rows[1][3],
            "'=HYPERLINK(\"http://evil\"), \"quoted\"\nnext line"
        );
        assert_eq!(rows[1][1], "'@b@x.com");
        assert_eq!(rows[2][0], "'-1");
        assert_eq!(rows[2][3], "'+cmd");
        assert_eq!(rows[2][1], "");
        assert!(text.starts_with("\"account_id\",\"email\",\"outcome\""));
    }

    #[test]
    fn every_field_is_quoted_so_no_separator_splits_a_cell() {
        let results = vec![result("7", ItemOutcome::Failed, "a;b\tc", Some("x@y.z"))];
        let text = results_csv(&results);
        for line in text.split("\r\n").filter(|l| !l.is_empty()) {
            for cell in line.split("\",\"") {
                assert!(!cell.is_empty(), "{line}");
            }
            assert!(line.starts_with('"') && line.ends_with('"'), "{line}");
        }
        let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
        let row = reader.records().next().unwrap().unwrap();
        assert_eq!(
            &row[3], "a;b\tc",
            "a quote-aware reader gets the cell back whole"
        );
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
