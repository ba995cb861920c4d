//! Pieces several screens share: plain-words errors, paging, and small formatting helpers.

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

/// An RFC 3339 time shown without its fractions and zone noise: "2026-11-28 12:45:01".
pub fn short_time(rfc3339: &str) -> String {
    let t = rfc3339.trim();
    match t.get(..19) {
        Some(head) if t.len() >= 19 && head.as_bytes().get(10) == Some(&b'T') => {
            head.replacen('T', " ", 1)
        }
        _ => t.to_string(),
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
    fn short_time_trims_only_real_timestamps() {
        assert_eq!(
            short_time("2026-11-28T12:45:01.123Z"),
            "2026-11-28 12:45:01"
        );
        assert_eq!(
            short_time("2026-11-28T12:45:01+00:00"),
            "2026-11-28 12:45:01"
        );
        assert_eq!(short_time("yesterday"), "yesterday");
        assert_eq!(short_time("ééééééééééééééééééééé"), "ééééééééééééééééééééé");
    }

    #[test]
    fn user_counts_read_naturally() {
        assert_eq!(users(1), "1 user");
        assert_eq!(users(0), "0 users");
        assert_eq!(users(2500), "2,500 users");
    }
}
