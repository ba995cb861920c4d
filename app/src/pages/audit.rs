//! The Audit screen: the team's audit trail, newest first, filtered by kind and by day, a page
//! at a time, with the same entries as a CSV download. Rendered whole by the server, without
//! script: the filter is a plain GET form and paging is links, so every view has its own
//! address. Details are shown in words; the CSV keeps their JSON.

use super::parts::{error_text, ErrorBox};
use super::preview::encode;
use super::times::When;
use crate::api::audit_page;
use crate::audit::{details_in_words, AuditAction, AuditEntryView, AuditFilter};
use crate::Named;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

/// The page's address for `filter`, from entry `before` down (None = the newest).
fn page_address(filter: &AuditFilter, before: Option<i64>) -> String {
    let mut query = filter.query();
    if let Some(b) = before {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(&format!("before={b}"));
    }
    match query.is_empty() {
        true => "/audit".to_string(),
        false => format!("/audit?{query}"),
    }
}

#[component]
pub fn AuditTrail() -> impl IntoView {
    let query = use_query_map();
    let asked = move || {
        query.with(|q| {
            let value = |k: &str| q.get(k).unwrap_or_default();
            let before = value("before").trim().parse::<i64>().unwrap_or(0).max(0);
            (
                AuditFilter::from_query(&value("action"), &value("from"), &value("to")),
                before,
            )
        })
    };
    let entries = Resource::new(asked, |(filter, before)| {
        audit_page(
            filter
                .action
                .map(|a| a.key().to_string())
                .unwrap_or_default(),
            filter.from.unwrap_or_default(),
            filter.to.unwrap_or_default(),
            before,
        )
    });
    let filter = move || asked().0;
    view! {
        <section class="card" aria-labelledby="audit-heading">
            <h1 id="audit-heading">"Audit trail"</h1>
            <p class="lead">
                "Everything done in this console for your team, newest first: who did it, when (in your time zone), and on which preview or run. Entries are never changed or removed."
            </p>
            <details class="more">
                <summary>"How to prove that no entry was changed"</summary>
                <p>
                    "Each entry is sealed with the one before it. Whoever runs the console's server can check the seals with the command "
                    <code>"offboard audit verify"</code>
                    ", which names the first entry that was changed, removed or forged (see the deployment guide)."
                </p>
            </details>
            <form method="get" action="/audit" class="audit-filter" aria-label="Filter the audit trail">
                <div class="field">
                    <label for="audit-action">"What"</label>
                    <select id="audit-action" name="action">
                        <option value="" selected=move || filter().action.is_none()>"Everything"</option>
                        {AuditAction::ALL
                            .into_iter()
                            .map(|a| {
                                view! {
                                    <option value=a.key() selected=move || filter().action == Some(a)>
                                        {a.words()}
                                    </option>
                                }
                            })
                            .collect_view()}
                    </select>
                </div>
                <div class="field">
                    <label for="audit-from">"From day"</label>
                    <input id="audit-from" name="from" type="date" aria-describedby="audit-days" prop:value=move || filter().from.unwrap_or_default() />
                </div>
                <div class="field">
                    <label for="audit-to">"To day"</label>
                    <input id="audit-to" name="to" type="date" aria-describedby="audit-days" prop:value=move || filter().to.unwrap_or_default() />
                </div>
                <p class="hint" id="audit-days">
                    "Both days are included. A day here runs from midnight to midnight in UTC, the world's reference time (London's time in winter), so near midnight an entry may fall on the day before or after the one your clock shows."
                </p>
                <div class="actions">
                    <button type="submit" class="button primary">"Show"</button>
                    <a href=move || filter().csv_download() download="" data-testid="audit-csv">
                        "Download these entries (CSV)"
                    </a>
                </div>
            </form>
            <Transition fallback=|| view! { <p>"Loading the audit trail…"</p> }>
                {move || {
                    entries
                        .get()
                        .map(|r| match r {
                            Err(e) => view! { <ErrorBox message=error_text(&e) /> }.into_any(),
                            Ok(page) if page.entries.is_empty() => {
                                view! { <p data-testid="audit-empty">"No entries match."</p> }.into_any()
                            }
                            Ok(page) => {
                                let (filter, before) = asked();
                                let older = page
                                    .more
                                    .then(|| page.entries.last().map(|e| page_address(&filter, Some(e.seq))))
                                    .flatten();
                                let newest = (before > 0).then(|| page_address(&filter, None));
                                view! {
                                    <div class="table-wrap">
                                        <table class="stack audit">
                                            <caption class="visually-hidden">"Audit entries, newest first"</caption>
                                            <thead>
                                                <tr>
                                                    <th scope="col">"When"</th>
                                                    <th scope="col">"Who"</th>
                                                    <th scope="col">"What"</th>
                                                    <th scope="col">"About"</th>
                                                    <th scope="col">"Details"</th>
                                                </tr>
                                            </thead>
                                            <tbody>
                                                {page.entries.into_iter().map(entry_row).collect_view()}
                                            </tbody>
                                        </table>
                                    </div>
                                    <nav class="pager" aria-label="Audit pages">
                                        {newest.map(|href| view! { <a href=href>"Newest entries"</a> })}
                                        {older.map(|href| view! { <a href=href>"Older entries"</a> })}
                                    </nav>
                                }
                                    .into_any()
                            }
                        })
                }}
            </Transition>
        </section>
    }
    .into_any()
}

/// The screen an entry is about: a run's page for what happened to a run, a preview's page for
/// a preview and the approval asked on it. None for the rest (a connection, a member…).
fn about_address(action: AuditAction, target: &str) -> Option<String> {
    use AuditAction::*;
    let page = match action {
        RunConfirmed | RunPaused | RunResumed | RunCancelled | RunEnded | ApprovalGiven => "run",
        PreviewMade | PreviewRevised | AccountChosen | ChoiceUndone | ApprovalRequested
        | ApprovalDeclined | DeletionPrepared => "preview",
        _ => return None,
    };
    (!target.is_empty()).then(|| format!("/{page}?id={}", encode(target)))
}

fn entry_row(e: AuditEntryView) -> impl IntoView {
    let about = e.target.map(|id| match about_address(e.action, &id) {
        Some(href) => view! { <a href=href>{id}</a> }.into_any(),
        None => id.into_any(),
    });
    view! {
        <tr>
            <td data-label="When">
                <When at=e.at.clone() />
            </td>
            <td data-label="Who">{e.actor}</td>
            <td data-label="What">{e.action.words()}</td>
            <td data-label="About" class="id">{about}</td>
            <td data-label="Details" class="details">
                <ul class="audit-details">
                    {details_in_words(&e.details)
                        .into_iter()
                        .map(|line| view! { <li>{line}</li> })
                        .collect_view()}
                </ul>
            </td>
        </tr>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_link_to_the_run_or_preview_they_are_about() {
        use AuditAction::*;
        for (action, target, expected) in [
            (RunEnded, "9f0c-1", Some("/run?id=9f0c-1")),
            (ApprovalGiven, "j", Some("/run?id=j")),
            (PreviewRevised, "a b&c", Some("/preview?id=a%20b%26c")),
            (ApprovalDeclined, "p", Some("/preview?id=p")),
            (MemberAdded, "someone", None),
            (RunEnded, "", None),
        ] {
            assert_eq!(
                about_address(action, target).as_deref(),
                expected,
                "{action:?} {target}"
            );
        }
    }

    #[test]
    fn page_addresses_keep_the_filter() {
        let none = AuditFilter::default();
        assert_eq!(page_address(&none, None), "/audit");
        assert_eq!(page_address(&none, Some(40)), "/audit?before=40");
        let f = AuditFilter::from_query("run_paused", "2026-01-02", "");
        assert_eq!(
            page_address(&f, Some(7)),
            "/audit?action=run_paused&from=2026-01-02&before=7"
        );
    }
}
