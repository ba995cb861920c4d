//! Pieces several screens share: plain-words errors, paging, the bar of a run's outcomes,
//! and small formatting helpers.

use crate::model::{Action as UserAction, ItemOutcome, JobState};
use leptos::prelude::*;

/// The words to show for a failed server call: the backend's own plain message, or a
/// sentence about the connection to this console when the call never got an answer.
pub fn error_text(e: &ServerFnError) -> String {
    match e {
        ServerFnError::ServerError(message) => message.clone(),
        ServerFnError::Request(_) | ServerFnError::Response(_) => {
            "The console did not answer. Check your network connection and try again.".into()
        }
        _ => "Something went wrong in the console. Try again; if it keeps happening, tell your administrator.".into(),
    }
}

/// A failed call, announced to screen readers.
#[component]
pub fn ErrorBox(message: String) -> impl IntoView {
    view! {
        <p role="alert" class="error">
            {message}
        </p>
    }
    .into_any()
}

/// What a button's server call is doing, announced to screen readers: `working` while it
/// runs, then its error in plain words if it failed.
#[component]
pub fn ActionFeedback<I, T>(
    action: Action<I, Result<T, ServerFnError>>,
    working: &'static str,
) -> impl IntoView
where
    I: Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    view! {
        <div aria-live="polite">
            {move || action.pending().get().then(|| view! { <p role="status">{working}</p> })}
            {move || {
                action
                    .value()
                    .get()
                    .and_then(|r| r.err())
                    .map(|e| view! { <ErrorBox message=error_text(&e) /> })
            }}
        </div>
    }
    .into_any()
}

/// Puts the keyboard focus on the element with this id, if the page has one (browser only).
pub fn focus_by_id(id: &str) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        if let Some(el) = document()
            .get_element_by_id(id)
            .and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok())
        {
            let _ = el.focus();
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = id;
}

/// Which rows one page shows: 0-based `offset`, and how many pages there are (at least 1).
/// `page` is 1-based; a page past the end shows the last page.
pub fn page_window(total: usize, per_page: usize, page: usize) -> (usize, usize) {
    let per_page = per_page.max(1);
    let pages = total.div_ceil(per_page).max(1);
    let page = page.clamp(1, pages);
    ((page - 1) * per_page, pages)
}

/// Reads a 1-based page number from a URL; anything odd means the first page.
pub fn parse_page(text: Option<String>) -> usize {
    text.and_then(|t| t.trim().parse::<usize>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1)
}

/// "Rows 101–200 of 5,000" with Previous / Next links built by `href(page)`.
#[component]
pub fn Pager(
    total: usize,
    per_page: usize,
    page: usize,
    href: impl Fn(usize) -> String + 'static,
) -> impl IntoView {
    let (offset, pages) = page_window(total, per_page, page);
    let page = page.clamp(1, pages);
    let shown_to = (offset + per_page).min(total);
    let summary = if total == 0 {
        "No rows".to_string()
    } else {
        format!(
            "Rows {}–{} of {} (page {page} of {pages})",
            thousands(offset as u64 + 1),
            thousands(shown_to as u64),
            thousands(total as u64)
        )
    };
    let prev = (page > 1).then(|| href(page - 1));
    let next = (page < pages).then(|| href(page + 1));
    view! {
        <nav class="pager" aria-label="Pages">
            <span>{summary}</span>
            {prev.map(|h| view! { <a class="button" href=h rel="prev">"Previous page"</a> })}
            {next.map(|h| view! { <a class="button" href=h rel="next">"Next page"</a> })}
        </nav>
    }
    .into_any()
}

/// How the bar and the badges group a run's results: one colour each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutcomeGroup {
    /// Deleted, deactivated, or already gone: nothing left to do.
    Done,
    /// The site refused or an error stopped it: the admin (or Stack support) must look.
    Failed,
    /// Left alone on purpose: the user changed since the preview.
    Skipped,
    /// The run stopped before reaching the user.
    NotAttempted,
}

impl OutcomeGroup {
    pub const ALL: [OutcomeGroup; 4] = [
        OutcomeGroup::Done,
        OutcomeGroup::Failed,
        OutcomeGroup::Skipped,
        OutcomeGroup::NotAttempted,
    ];

    pub fn of(outcome: ItemOutcome) -> OutcomeGroup {
        match outcome {
            o if o.is_success() => OutcomeGroup::Done,
            ItemOutcome::ChangedSincePreview => OutcomeGroup::Skipped,
            ItemOutcome::NotAttempted => OutcomeGroup::NotAttempted,
            _ => OutcomeGroup::Failed,
        }
    }

    /// The CSS name of the group's colour (the same for the bar and the badges).
    pub fn key(self) -> &'static str {
        match self {
            OutcomeGroup::Done => "done",
            OutcomeGroup::Failed => "failed",
            OutcomeGroup::Skipped => "skipped",
            OutcomeGroup::NotAttempted => "not-attempted",
        }
    }

    pub fn words(self, action: UserAction) -> &'static str {
        match (self, action) {
            (OutcomeGroup::Done, UserAction::Delete) => "deleted",
            (OutcomeGroup::Done, _) => "deactivated",
            (OutcomeGroup::Failed, _) => "failed",
            (OutcomeGroup::Skipped, _) => "skipped",
            (OutcomeGroup::NotAttempted, _) => "not attempted",
        }
    }
}

/// One outcome's count in the bar's words, then what exactly happened when the bar's word
/// does not say it all: "deleted", "failed: community creator", "skipped: changed since
/// preview". The same group word beside the bar and in the list, never two names.
pub fn count_words(outcome: ItemOutcome, action: UserAction) -> String {
    let group = OutcomeGroup::of(outcome).words(action);
    match outcome.label() {
        label if label == group => group.to_string(),
        label => format!("{group}: {label}"),
    }
}

/// Results per group, in [`OutcomeGroup::ALL`] order.
pub fn group_totals(counts: &[(ItemOutcome, u64)]) -> [(OutcomeGroup, u64); 4] {
    OutcomeGroup::ALL.map(|g| {
        let n = counts
            .iter()
            .filter(|(o, _)| OutcomeGroup::of(*o) == g)
            .map(|(_, n)| *n)
            .sum();
        (g, n)
    })
}

/// The bar's sentence, for screen readers and as its caption: "12 deleted, 1 failed,
/// 0 skipped, 0 not attempted, 27 still to do"; the last part only while users are left.
pub fn outcome_sentence(counts: &[(ItemOutcome, u64)], total: u64, action: UserAction) -> String {
    let totals = group_totals(counts);
    let done: u64 = totals.iter().map(|(_, n)| n).sum();
    let mut parts: Vec<String> = totals
        .iter()
        .map(|(g, n)| format!("{} {}", thousands(*n), g.words(action)))
        .collect();
    let left = total.saturating_sub(done);
    if left > 0 {
        parts.push(format!("{} still to do", thousands(left)));
    }
    format!(
        "Outcome of {}: {}",
        users(total.max(done)),
        parts.join(", ")
    )
}

/// Each group's share of the bar in percent of `total` (never below a thin visible sliver for
/// a group that has users, so one failure among thousands still shows).
pub fn bar_shares(counts: &[(ItemOutcome, u64)], total: u64) -> [(OutcomeGroup, f64); 4] {
    let totals = group_totals(counts);
    let done: u64 = totals.iter().map(|(_, n)| n).sum();
    let whole = total.max(done).max(1) as f64;
    totals.map(|(g, n)| {
        let share = if n == 0 {
            0.0
        } else {
            (n as f64 / whole * 100.0).max(0.5)
        };
        (g, share)
    })
}

/// A run's results as one bar in the badges' colours, with the numbers as text: the bar is
/// an image named by its sentence; the legend repeats the numbers for sighted readers.
#[component]
pub fn OutcomeBar(
    counts: Vec<(ItemOutcome, u64)>,
    total: u64,
    action: UserAction,
) -> impl IntoView {
    let sentence = outcome_sentence(&counts, total, action);
    let segments = bar_shares(&counts, total)
        .into_iter()
        .filter(|(_, share)| *share > 0.0)
        .map(|(g, share)| {
            view! { <span class=format!("seg seg-{}", g.key()) style=format!("width:{share:.2}%")></span> }
        })
        .collect_view();
    let legend = group_totals(&counts)
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(g, n)| {
            view! {
                <li>
                    <span class=format!("swatch seg-{}", g.key()) aria-hidden="true"></span>
                    {format!("{} {}", thousands(n), g.words(action))}
                </li>
            }
        })
        .collect_view();
    view! {
        <div class="outcome-bar" role="img" aria-label=sentence data-testid="outcome-bar">
            {segments}
        </div>
        <ul class="outcome-legend" aria-hidden="true">{legend}</ul>
    }
    .into_any()
}

/// 12345 → "12,345", so big counts read at a glance.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A message from the site split in two: the sentence for the admin, without the HTTP
/// status the server put in it, and that status for whoever looks deeper ("the site answered
/// with HTTP status 502"). Status codes stay out of the main path (docs/glossary.md).
pub fn plain_and_technical(message: &str) -> (String, Option<String>) {
    let mut plain = message.to_string();
    let mut statuses: Vec<String> = Vec::new();
    while let Some(at) = plain.find("HTTP ") {
        let code = &plain[at + 5..];
        let digits = code.bytes().take_while(u8::is_ascii_digit).count();
        if digits != 3 {
            break;
        }
        statuses.push(code[..3].to_string());
        let end = at + 8;
        let (start, end, with) = if plain[..at].ends_with(" (") && plain[end..].starts_with(')') {
            (at - 2, end + 1, "")
        } else if plain[end..].starts_with(": ") {
            (at, end + 2, "")
        } else if at == 0 {
            (at, end, "An error")
        } else {
            (at, end, "an error")
        };
        plain.replace_range(start..end, with);
    }
    let mut plain = plain.trim().to_string();
    let removed = !statuses.is_empty();
    if let Some(first) = plain.chars().next().filter(|c| removed && c.is_lowercase()) {
        plain.replace_range(..first.len_utf8(), &first.to_uppercase().to_string());
    }
    let technical = (!statuses.is_empty()).then(|| {
        format!(
            "The site answered with HTTP status {}.",
            statuses.join(", then ")
        )
    });
    (plain, technical)
}

/// A message from the site: its plain sentence, and its HTTP status folded away under
/// "Details for your IT team" when it had one.
#[component]
pub fn PlainMessage(#[prop(into)] message: String) -> impl IntoView {
    let (plain, technical) = plain_and_technical(&message);
    view! {
        {plain}
        {technical.map(|t| view! {
            <details class="technical">
                <summary>"Details for your IT team"</summary>
                {t}
            </details>
        })}
    }
}

/// "1 user" / "3 users".
pub fn users(n: u64) -> String {
    if n == 1 {
        "1 user".into()
    } else {
        format!("{} users", thousands(n))
    }
}

/// "Delete" / "Deactivate", as a run's title says it.
pub fn action_words(action: UserAction) -> &'static str {
    match action {
        UserAction::Delete => "Delete",
        UserAction::Deactivate => "Deactivate",
        UserAction::DeactivateThenDelete => "Deactivate now, delete later",
    }
}

/// A job's state in the admin's words.
pub fn state_words(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "Waiting to start",
        JobState::Running => "Running",
        JobState::Paused => "Paused",
        JobState::Cancelling => "Cancelling",
        JobState::Finished => "Finished",
        JobState::Stopped => "Stopped",
        JobState::Failed => "Failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_window_clamps_and_counts() {
        assert_eq!(page_window(0, 100, 1), (0, 1));
        assert_eq!(page_window(100, 100, 1), (0, 1));
        assert_eq!(page_window(101, 100, 2), (100, 2));
        assert_eq!(page_window(101, 100, 99), (100, 2));
        assert_eq!(page_window(10_000, 100, 0), (0, 100));
        assert_eq!(page_window(5, 0, 3), (2, 5));
    }

    #[test]
    fn odd_page_numbers_mean_first_page() {
        assert_eq!(parse_page(None), 1);
        assert_eq!(parse_page(Some("0".into())), 1);
        assert_eq!(parse_page(Some("-3".into())), 1);
        assert_eq!(parse_page(Some("abc".into())), 1);
        assert_eq!(parse_page(Some(" 7 ".into())), 7);
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn http_statuses_leave_the_sentence() {
        let split = |m: &str| plain_and_technical(m);
        assert_eq!(
            split("The site reported an error (HTTP 502): upstream down"),
            (
                "The site reported an error: upstream down".to_string(),
                Some("The site answered with HTTP status 502.".to_string())
            )
        );
        assert_eq!(
            split("The site refused the SCIM token (HTTP 401). Check it.").0,
            "The site refused the SCIM token. Check it."
        );
        assert_eq!(
            split("HTTP 404: nothing answers at this address").0,
            "Nothing answers at this address"
        );
        assert_eq!(
            split("HTTP 500 with no message").0,
            "An error with no message"
        );
        let (plain, tech) = split("HTTP 500: a; then HTTP 503: b");
        assert_eq!(plain, "A; then b");
        assert_eq!(
            tech.as_deref(),
            Some("The site answered with HTTP status 500, then 503.")
        );
        // Nothing to split: the message as it is.
        for m in [
            "Deleted.",
            "",
            "HTTP 5",
            "HTTP abc",
            "see HTTP 12345 docs",
            "ééé HTTP ",
        ] {
            assert_eq!(split(m), (m.trim().to_string(), None), "{m}");
        }
    }

    #[test]
    fn counts_use_the_bar_s_word_first() {
        use ItemOutcome::*;
        assert_eq!(count_words(Deleted, UserAction::Delete), "deleted");
        assert_eq!(
            count_words(Deactivated, UserAction::Deactivate),
            "deactivated"
        );
        assert_eq!(
            count_words(AlreadyGone, UserAction::Delete),
            "deleted: already gone"
        );
        assert_eq!(count_words(Failed, UserAction::Delete), "failed");
        assert_eq!(
            count_words(CommunityCreator, UserAction::Delete),
            "failed: community creator"
        );
        assert_eq!(
            count_words(ChangedSincePreview, UserAction::Deactivate),
            "skipped: changed since preview"
        );
        assert_eq!(
            count_words(NotAttempted, UserAction::Delete),
            "not attempted"
        );
    }

    #[test]
    fn outcomes_fall_into_four_groups() {
        use OutcomeGroup::*;
        assert_eq!(OutcomeGroup::of(ItemOutcome::Deleted), Done);
        assert_eq!(OutcomeGroup::of(ItemOutcome::Deactivated), Done);
        assert_eq!(OutcomeGroup::of(ItemOutcome::AlreadyGone), Done);
        assert_eq!(OutcomeGroup::of(ItemOutcome::ChangedSincePreview), Skipped);
        assert_eq!(OutcomeGroup::of(ItemOutcome::NotAttempted), NotAttempted);
        for o in [
            ItemOutcome::DeletionNotEnabled,
            ItemOutcome::Privileged,
            ItemOutcome::CommunityCreator,
            ItemOutcome::SystemAccount,
            ItemOutcome::Failed,
        ] {
            assert_eq!(OutcomeGroup::of(o), Failed, "{o:?}");
        }
    }

    #[test]
    fn the_bar_says_its_numbers() {
        let counts = vec![
            (ItemOutcome::Deleted, 10),
            (ItemOutcome::AlreadyGone, 2),
            (ItemOutcome::CommunityCreator, 1),
        ];
        assert_eq!(
            outcome_sentence(&counts, 40, UserAction::Delete),
            "Outcome of 40 users: 12 deleted, 1 failed, 0 skipped, 0 not attempted, 27 still to do"
        );
        assert_eq!(
            outcome_sentence(&[(ItemOutcome::Deactivated, 1)], 1, UserAction::Deactivate),
            "Outcome of 1 user: 1 deactivated, 0 failed, 0 skipped, 0 not attempted"
        );
        // More results than the total (a stale total) never reads as negative work left.
        assert_eq!(
            outcome_sentence(&[(ItemOutcome::Failed, 3)], 2, UserAction::Delete),
            "Outcome of 3 users: 0 deleted, 3 failed, 0 skipped, 0 not attempted"
        );
    }

    #[test]
    fn bar_shares_are_proportional_and_small_groups_stay_visible() {
        let shares = bar_shares(
            &[(ItemOutcome::Deleted, 9_999), (ItemOutcome::Failed, 1)],
            10_000,
        );
        assert!((shares[0].1 - 99.99).abs() < 1e-9);
        assert_eq!(shares[1], (OutcomeGroup::Failed, 0.5));
        assert_eq!(shares[2], (OutcomeGroup::Skipped, 0.0));
        let half = bar_shares(&[(ItemOutcome::Deleted, 5)], 10);
        assert_eq!(half[0].1, 50.0);
        assert_eq!(bar_shares(&[], 0)[0].1, 0.0);
    }

    #[test]
    fn user_counts_read_naturally() {
        assert_eq!(users(1), "1 user");
        assert_eq!(users(0), "0 users");
        assert_eq!(users(2500), "2,500 users");
    }
}
