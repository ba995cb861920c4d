//! What the team's earlier runs on the same site tell a new preview (pure): a row "not found"
//! because Offboard itself deleted the account says so and names that run, and a selected row
//! the site already refused once (a community creator, the system account) is marked "may be
//! refused" instead of promised.

use chrono::{DateTime, Utc};
use model::deletion::{EarlierRun, ItemOutcome, Preview, PreviewCounts, PreviewOutcome};

/// One account an earlier run of the team finished with a telling outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EarlierResult {
    pub job_id: String,
    pub account_id: String,
    pub email: Option<String>,
    pub outcome: ItemOutcome,
    /// When the run finished with this user (or the run itself, for older rows).
    pub at: DateTime<Utc>,
    /// Who started the run, as the trail names them ("Priya Shah <priya@acme.test>").
    pub started_by: String,
}

/// The outcomes a preview cites: a deletion, and the refusals the site would repeat.
pub const CITED_OUTCOMES: [ItemOutcome; 3] = [
    ItemOutcome::Deleted,
    ItemOutcome::CommunityCreator,
    ItemOutcome::SystemAccount,
];

/// "7 Dec 2026": the day in words, in UTC (the trail and the downloads keep UTC).
pub fn day_in_words(at: DateTime<Utc>) -> String {
    at.format("%-d %b %Y").to_string()
}

/// The person's name from "Name <email>" (the email alone when there is no name).
pub fn person_name(started_by: &str) -> String {
    let text = started_by.trim();
    match text.split_once(" <") {
        Some((name, _)) if !name.trim().is_empty() => name.trim().to_string(),
        _ => text.trim_matches(['<', '>']).to_string(),
    }
}

fn cite(result: &EarlierResult) -> EarlierRun {
    EarlierRun {
        job_id: result.job_id.clone(),
        day: day_in_words(result.at),
        by: person_name(&result.started_by),
    }
}

/// Marks `preview`'s rows with what `earlier` (the team's results on this site, any order)
/// says, and counts again:
/// - a "not found" row whose email or account ID an earlier run deleted becomes "already
///   deleted", naming the newest such run;
/// - a selected row whose account the site refused in an earlier run (and was not deleted
///   since) gets "may be refused" with the reason; the run still tries it.
pub fn cite_earlier_runs(preview: &mut Preview, earlier: &[EarlierResult]) {
    if earlier.is_empty() {
        return;
    }
    let mut newest_first: Vec<&EarlierResult> = earlier.iter().collect();
    newest_first.sort_by_key(|r| std::cmp::Reverse(r.at));
    for row in &mut preview.rows {
        match row.outcome {
            PreviewOutcome::NotFound => {
                let input = row.input.trim();
                let deleted = newest_first.iter().find(|r| {
                    r.outcome == ItemOutcome::Deleted
                        && (r.account_id.trim() == input
                            || r.email
                                .as_deref()
                                .is_some_and(|e| e.trim().eq_ignore_ascii_case(input)))
                });
                if let Some(deleted) = deleted {
                    let run = cite(deleted);
                    row.outcome = PreviewOutcome::AlreadyDeleted;
                    row.reason = format!(
                        "already deleted on {} by {}: Offboard deleted account {} in that run",
                        run.day, run.by, deleted.account_id
                    );
                    row.earlier_run = Some(run);
                }
            }
            PreviewOutcome::Selected => {
                let Some(id) = row.account_id.as_deref().map(str::trim) else {
                    continue;
                };
                // The newest telling result for this account decides: a refusal after which
                // the account was deleted (and re-created) no longer predicts anything.
                let latest = newest_first.iter().find(|r| r.account_id.trim() == id);
                let why = match latest.map(|r| (r.outcome, *r)) {
                    Some((ItemOutcome::CommunityCreator, r)) => Some((
                        r,
                        "Stack refused to delete this account before because it created a \
                         community; only Stack support can delete it",
                    )),
                    Some((ItemOutcome::SystemAccount, r)) => Some((
                        r,
                        "Stack refused to delete this account before: it is a system account",
                    )),
                    _ => None,
                };
                if let Some((result, why)) = why {
                    let run = cite(result);
                    row.may_be_refused = Some(format!(
                        "may be refused: {why} (run of {} by {})",
                        run.day, run.by
                    ));
                    row.earlier_run = Some(run);
                }
            }
            _ => {}
        }
    }
    preview.counts = PreviewCounts::from_rows(&preview.rows);
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use model::deletion::{PreviewRow, PreviewSource};

    fn row(line: usize, input: &str, outcome: PreviewOutcome, id: Option<&str>) -> PreviewRow {
        PreviewRow {
            line: Some(line),
            input: input.into(),
            outcome,
            account_id: id.map(str::to_string),
            user_name: None,
            display_name: None,
            emails: vec![],
            active: None,
            role: None,
            reason: "no account on the site has this email".into(),
            candidates: vec![],
            earlier_run: None,
            may_be_refused: None,
            chosen: None,
        }
    }

    fn preview(rows: Vec<PreviewRow>) -> Preview {
        Preview {
            source: PreviewSource::Picked,
            counts: PreviewCounts::from_rows(&rows),
            rows,
            demote_privileged: false,
            unread_lines: Default::default(),
        }
    }

    fn earlier(
        job: &str,
        id: &str,
        email: Option<&str>,
        outcome: ItemOutcome,
        day: u32,
    ) -> EarlierResult {
        EarlierResult {
            job_id: job.into(),
            account_id: id.into(),
            email: email.map(str::to_string),
            outcome,
            at: Utc.with_ymd_and_hms(2026, 12, day, 12, 17, 0).unwrap(),
            started_by: "Priya Shah <priya@acme.test>".into(),
        }
    }

    #[test]
    fn a_user_offboard_deleted_is_already_deleted_not_not_found() {
        let mut p = preview(vec![
            row(1, "ANN@x.com", PreviewOutcome::NotFound, None),
            row(2, "42", PreviewOutcome::NotFound, None),
            row(3, "nobody@x.com", PreviewOutcome::NotFound, None),
            row(4, "kept@x.com", PreviewOutcome::Selected, Some("9")),
        ]);
        let results = [
            earlier("job-old", "7", Some("ann@x.com"), ItemOutcome::Deleted, 1),
            earlier("job-new", "7", Some("ann@x.com"), ItemOutcome::Deleted, 7),
            earlier("job-new", "42", None, ItemOutcome::Deleted, 7),
            // Refused, or only deactivated: not "already deleted".
            earlier(
                "job-new",
                "8",
                Some("nobody@x.com"),
                ItemOutcome::CommunityCreator,
                7,
            ),
            earlier(
                "job-new",
                "10",
                Some("nobody@x.com"),
                ItemOutcome::Deactivated,
                7,
            ),
        ];
        cite_earlier_runs(&mut p, &results);
        assert_eq!(p.rows[0].outcome, PreviewOutcome::AlreadyDeleted);
        assert_eq!(
            p.rows[0].reason,
            "already deleted on 7 Dec 2026 by Priya Shah: Offboard deleted account 7 in that run"
        );
        assert_eq!(
            p.rows[0].earlier_run,
            Some(EarlierRun {
                job_id: "job-new".into(),
                day: "7 Dec 2026".into(),
                by: "Priya Shah".into()
            })
        );
        assert_eq!(p.rows[1].outcome, PreviewOutcome::AlreadyDeleted);
        assert_eq!(p.rows[2].outcome, PreviewOutcome::NotFound);
        assert_eq!(p.rows[2].earlier_run, None);
        assert_eq!(p.rows[3].may_be_refused, None);
        assert_eq!(p.counts.already_deleted, 2);
        assert_eq!(p.counts.not_found, 1);
        assert_eq!(p.counts.selected, 1);
    }

    #[test]
    fn a_user_the_site_refused_before_may_be_refused() {
        let mut p = preview(vec![
            row(1, "cc@x.com", PreviewOutcome::Selected, Some("5")),
            row(2, "sys@x.com", PreviewOutcome::Selected, Some("6")),
            row(3, "back@x.com", PreviewOutcome::Selected, Some("7")),
            row(4, "plain@x.com", PreviewOutcome::Selected, Some("8")),
            // Not selected: nothing to promise, nothing to mark.
            row(5, "mod@x.com", PreviewOutcome::Privileged, Some("5")),
        ]);
        let results = [
            earlier("j1", "5", None, ItemOutcome::CommunityCreator, 3),
            earlier("j1", "6", None, ItemOutcome::SystemAccount, 3),
            // Refused, then deleted later (an account ID re-used): the newest decides.
            earlier("j1", "7", None, ItemOutcome::CommunityCreator, 3),
            earlier("j2", "7", None, ItemOutcome::Deleted, 5),
        ];
        cite_earlier_runs(&mut p, &results);
        let refused = p.rows[0].may_be_refused.as_deref().expect("marked");
        assert!(
            refused.starts_with("may be refused: Stack refused"),
            "{refused}"
        );
        assert!(
            refused.contains("only Stack support can delete it"),
            "{refused}"
        );
        assert!(
            refused.ends_with("(run of 3 Dec 2026 by Priya Shah)"),
            "{refused}"
        );
        assert!(p.rows[1]
            .may_be_refused
            .as_deref()
            .unwrap()
            .contains("system account"));
        assert_eq!(p.rows[2].may_be_refused, None);
        assert_eq!(p.rows[3].may_be_refused, None);
        assert_eq!(p.rows[4].may_be_refused, None);
        // Still selected (the run tries them), counted as "up to".
        assert_eq!(p.counts.selected, 4);
        assert_eq!(p.counts.may_be_refused, 2);
    }

    #[test]
    fn names_and_days() {
        assert_eq!(person_name("Priya Shah <priya@acme.test>"), "Priya Shah");
        assert_eq!(person_name("<priya@acme.test>"), "priya@acme.test");
        assert_eq!(person_name(" <x@y.z>"), "x@y.z");
        assert_eq!(person_name("Offboard"), "Offboard");
        assert_eq!(person_name(""), "");
        let at = Utc.with_ymd_and_hms(2026, 1, 31, 23, 59, 59).unwrap();
        assert_eq!(day_in_words(at), "31 Jan 2026");
    }

    #[test]
    fn nothing_earlier_changes_nothing() {
        let rows = vec![row(1, "a@x.com", PreviewOutcome::NotFound, None)];
        let mut p = preview(rows.clone());
        cite_earlier_runs(&mut p, &[]);
        assert_eq!(p.rows, rows);
    }
}
