//! The Preview screen: counts per outcome (which filter the table), every row page by page,
//! the options (action, demotion, column), and the confirm box with the typed phrase.

use super::choose::ActionChoice;
use super::parts::{
    error_text, focus_by_id, page_window, parse_page, thousands, users, ActionFeedback, ErrorBox,
    Pager,
};
use super::times::When;
use crate::api::{load_preview, preview_rows, revise_preview};
use crate::backend::PreviewSummary;
use crate::model::{Action as UserAction, PreviewOutcome, PreviewRow, PreviewSource, Role};
use crate::Named;
use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};
use leptos_router::NavigateOptions;

mod confirm;
use confirm::ConfirmCard;
pub(crate) use confirm::{approval_words, PreviewAgain};

const ROWS_PER_PAGE: usize = 100;

/// The preview page's address for a filter and a page.
pub fn preview_href(id: &str, outcome: Option<PreviewOutcome>, page: usize) -> String {
    let mut href = format!("/preview?id={}", encode(id));
    if let Some(o) = outcome {
        href.push_str("&outcome=");
        href.push_str(o.key());
    }
    if page > 1 {
        href.push_str(&format!("&page={page}"));
    }
    href
}

/// Percent-encodes an id for a query string (ids are normally plain, but never trust that).
pub fn encode(text: impl AsRef<str>) -> String {
    let text = text.as_ref();
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The confirm button's words: "Delete 37 users" / "Deactivate 1 user".
pub fn run_button_text(action: UserAction, count: usize) -> String {
    let verb = match action.now() {
        UserAction::Delete => "Delete",
        _ => "Deactivate",
    };
    format!("{verb} {}", users(count as u64))
}

/// The id of the option the admin just changed, kept across the preview it replaces.
#[derive(Clone, Copy)]
struct RefocusAfterRevise(RwSignal<Option<&'static str>>);

#[component]
pub fn PreviewPage() -> impl IntoView {
    let query = use_query_map();
    let id = Memo::new(move |_| query.with(|q| q.get("id")).unwrap_or_default());
    let outcome = Memo::new(move |_| {
        query
            .with(|q| q.get("outcome"))
            .and_then(|o| PreviewOutcome::from_key(&o))
    });
    let page = Memo::new(move |_| parse_page(query.with(|q| q.get("page"))));
    provide_context(RefocusAfterRevise(RwSignal::new(None)));
    // A viewer may read a preview but not change it: the choice buttons are an operator's.
    let me = Resource::new(|| (), |_| crate::api::whoami());
    let summary = Resource::new(
        move || id.get(),
        |id| async move {
            if id.is_empty() {
                Ok(None)
            } else {
                load_preview(id).await.map(Some)
            }
        },
    );
    view! {
        <Transition fallback=|| view! { <section class="card"><p>"Loading the preview…"</p></section> }>
            {move || {
                summary
                    .get()
                    .map(|r| match r {
                        Ok(None) => {
                            view! {
                                <section class="card">
                                    <h1>"Preview"</h1>
                                    <p>
                                        "There is no preview to show yet. "
                                        <a href="/choose">"Choose users first"</a>
                                        "."
                                    </p>
                                </section>
                            }
                                .into_any()
                        }
                        Ok(Some(s)) => {
                            let role = me.get().and_then(Result::ok).flatten().and_then(|m| m.team).map(|t| t.role);
                            let may_change = role.is_none_or(|r| r >= crate::team::Role::Operator);
                            view! { <PreviewView summary=s outcome page may_change /> }.into_any()
                        }
                        Err(e) => {
                            view! {
                                <section class="card">
                                    <h1>"Preview"</h1>
                                    <ErrorBox message=error_text(&e) />
                                    <p><a href="/choose">"Choose users again"</a></p>
                                </section>
                            }
                                .into_any()
                        }
                    })
            }}
        </Transition>
    }
    .into_any()
}

#[component]
fn PreviewView(
    summary: PreviewSummary,
    outcome: Memo<Option<PreviewOutcome>>,
    page: Memo<usize>,
    /// Whether this person may change the preview (an operator or owner): else no choice
    /// buttons, only what the site says of each account.
    may_change: bool,
) -> impl IntoView {
    let id = summary.id.to_string();
    let source_line = match &summary.source {
        PreviewSource::File { file_name, .. } => format!("From the file {file_name}"),
        PreviewSource::Deactivated => "From the site's deactivated users".to_string(),
        PreviewSource::Picked => "Users you picked from the deactivated list".to_string(),
    };
    let action = summary.action;
    let counts = summary.counts.clone();
    let total_rows = summary.total_rows;
    let may_be_refused = counts.may_be_refused;
    let count_buttons = PreviewOutcome::ALL
        .into_iter()
        .map(|o| {
            // Rows the site may refuse are still tried: the promise is "up to N".
            let up_to = o == PreviewOutcome::Selected && may_be_refused > 0;
            (
                Some(o),
                o.label_for(action).to_string(),
                counts.get(o),
                up_to,
            )
        })
        .collect::<Vec<_>>();
    let refused_note = (may_be_refused > 0).then(|| {
        view! {
            <p class="warning">
                {refused_words(may_be_refused, counts.selected, action)}
            </p>
        }
    });
    let id_for_filters = id.clone();
    view! {
        <section class="card" aria-labelledby="preview-heading">
            <h1 id="preview-heading">"Preview"</h1>
            <p class="lead">
                {source_line} ", " {format!("{} rows. ", thousands(total_rows as u64))}
                "Nothing has been changed on your site."
            </p>
            <div class="counts" role="group" aria-label="Filter rows by outcome">
                {
                    let href = preview_href(&id_for_filters, None, 1);
                    view! { <FilterButton href label="all rows".into() count=total_rows up_to=false active=move || outcome.get().is_none() /> }
                }
                {count_buttons
                    .into_iter()
                    .map(|(o, label, n, up_to)| {
                        let href = preview_href(&id_for_filters, o, 1);
                        view! { <FilterButton href label count=n up_to active=move || outcome.get() == o /> }
                    })
                    .collect_view()}
            </div>
            {refused_note}
            <p>
                <a href="#options-heading">"Skip to the options and the confirmation"</a>
            </p>
            <p class="warning">
                "Remove these users from your identity provider (Okta, Entra ID, …) first. Otherwise single sign-on re-creates their accounts the next time they sign in or the next sync runs."
            </p>
        </section>
        // Only a file has lines: a preview of site users has no empty "Line" column.
        <RowsTable id=id.clone() action outcome page lines=matches!(summary.source, PreviewSource::File { .. }) choosing=may_change && rows_may_change(&summary) />
        <OptionsCard summary=summary.clone() />
        <ConfirmCard summary />
    }
    .into_any()
}

/// A count that filters the table; it works as a plain link-like form before the script loads.
#[component]
fn FilterButton(
    href: String,
    label: String,
    count: usize,
    /// "up to N": some of these rows may be refused by the site.
    up_to: bool,
    active: impl Fn() -> bool + Send + Sync + 'static,
) -> impl IntoView {
    let navigate = use_navigate();
    let target = href.clone();
    view! {
        <button
            type="button"
            class="count"
            aria-pressed=move || active().to_string()
            data-href=href
            on:click=move |_| navigate(&target, Default::default())
        >
            <span class="count-number">
                {up_to.then_some("up to ")} {thousands(count as u64)}
            </span>
            <span class="count-label">{label}</span>
        </button>
    }
    .into_any()
}

/// Whether an account may still be chosen for an ambiguous row (or a choice undone): not once
/// a run was started from the preview, nor once a second operator was asked to approve it
/// (the run must be the preview they were asked about).
pub fn rows_may_change(summary: &PreviewSummary) -> bool {
    !summary.used && summary.approval.is_none()
}

#[component]
fn RowsTable(
    id: String,
    action: UserAction,
    outcome: Memo<Option<PreviewOutcome>>,
    page: Memo<usize>,
    lines: bool,
    /// Ambiguous rows offer a choice among their accounts.
    choosing: bool,
) -> impl IntoView {
    let choose_on = choosing.then(|| id.clone());
    let id_for_rows = id.clone();
    let download = format!("/downloads/previews/{}/preview.csv", encode(&id));
    let rows = Resource::new(
        move || (id_for_rows.clone(), outcome.get(), page.get()),
        |(id, outcome, page)| async move {
            let offset = (page.max(1) - 1) * ROWS_PER_PAGE;
            preview_rows(
                id,
                outcome.map(PreviewOutcome::key).unwrap_or("").to_string(),
                offset,
                ROWS_PER_PAGE,
            )
            .await
        },
    );
    view! {
        <section class="card" aria-labelledby="rows-heading">
            <h2 id="rows-heading">
                {move || match outcome.get() {
                    None => "Every row".to_string(),
                    Some(o) => format!("Rows: {}", o.label_for(action)),
                }}
            </h2>
            <Transition fallback=|| view! { <p>"Loading rows…"</p> }>
                {
                    let id = id.clone();
                    move || {
                        let id = id.clone();
                        let choose_on = choose_on.clone();
                        rows.get()
                            .map(move |r| match r {
                                Err(e) => view! { <ErrorBox message=error_text(&e) /> }.into_any(),
                                Ok(p) => {
                                    let (_, pages) = page_window(p.matching, ROWS_PER_PAGE, page.get_untracked());
                                    let current = page.get_untracked().clamp(1, pages);
                                    let filter = outcome.get_untracked();
                                    let href_id = id.clone();
                                    view! {
                                        <div class="table-wrap">
                                            <table class="rows stack">
                                                <caption class="visually-hidden">"Preview rows"</caption>
                                                <thead>
                                                    <tr>
                                                        {lines.then(|| view! { <th scope="col" class="col-line">"Line"</th> })}
                                                        <th scope="col" class="col-input">"Input"</th>
                                                        <th scope="col" class="col-outcome">"Outcome"</th>
                                                        <th scope="col" class="col-account">"Account"</th>
                                                        <th scope="col">"Reason"</th>
                                                    </tr>
                                                </thead>
                                                <tbody>
                                                    {p.rows
                                                        .into_iter()
                                                        .map(|r| view! { <PreviewRowLine row=r action lines choose_on=choose_on.clone() /> })
                                                        .collect_view()}
                                                </tbody>
                                            </table>
                                        </div>
                                        <Pager
                                            total=p.matching
                                            per_page=ROWS_PER_PAGE
                                            page=current
                                            href=move |n| preview_href(&href_id, filter, n)
                                        />
                                    }
                                        .into_any()
                                }
                            })
                    }
                }
            </Transition>
            <p>
                <a class="button" href=download download="">
                    "Download the preview (CSV)"
                </a>
            </p>
        </section>
    }
    .into_any()
}

/// What the note under the counts says when the site may refuse some selected rows.
pub fn refused_words(may_be_refused: usize, selected: usize, action: UserAction) -> String {
    let verb = match action.now() {
        UserAction::Delete => "deleted",
        _ => "deactivated",
    };
    format!(
        "Up to {selected} will be {verb}: {may_be_refused} may be refused by Stack, as an earlier run found (the rows marked “may be refused” say why). Offboard still tries them."
    )
}

/// The other emails of an account: the input already shows the one the admin gave.
pub fn other_emails(emails: &[String], input: &str) -> Vec<String> {
    emails
        .iter()
        .filter(|e| !e.trim().eq_ignore_ascii_case(input.trim()))
        .cloned()
        .collect()
}

/// One preview row: a table row on a laptop, a card on a phone (the `data-label`s name each
/// value when the header row is hidden). At most two lines for an ordinary row.
#[component]
fn PreviewRowLine(
    row: PreviewRow,
    action: UserAction,
    lines: bool,
    /// The preview's id when an account may be chosen for an ambiguous row.
    choose_on: Option<String>,
) -> impl IntoView {
    // Choosing needs the row's line: only a file's rows can be ambiguous, and all have one.
    let choose_on = choose_on.zip(row.line);
    let account = if !row.candidates.is_empty() && row.chosen.is_none() {
        let items = row
            .candidates
            .iter()
            .map(|c| {
                let choose = choose_on.clone().map(|(preview, line)| {
                    view! {
                        <ChooseForm preview line account=c.account_id.clone() action />
                    }
                });
                let name = c
                    .display_name
                    .clone()
                    .or(c.user_name.clone())
                    .unwrap_or_default();
                let emails = c.emails.join(", ");
                let apart = c.telling_apart();
                let apart = (!apart.is_empty())
                    .then(|| view! { <span class="muted small">" · " {apart}</span> });
                view! {
                    <li>
                        <span class="mono">{c.account_id.clone()}</span>
                        " " {name}
                        <span class="muted">" · " {emails}</span>
                        {apart}
                        " " <span class="not-touched">"not touched"</span>
                        {choose}
                    </li>
                }
            })
            .collect_view();
        view! { <ul class="candidates" aria-label="Possible accounts, none touched">{items}</ul> }
            .into_any()
    } else if let Some(account_id) = row.account_id.clone() {
        let name = row
            .display_name
            .clone()
            .or(row.user_name.clone())
            .unwrap_or_default();
        let role = row
            .role
            .clone()
            .filter(|r| *r != Role::Registered)
            .map(|r| format!(" · {r}"));
        let others = other_emails(&row.emails, &row.input);
        let others = (!others.is_empty()).then(|| format!(" · {}", others.join(", ")));
        // A chosen row names the accounts it was chosen among and left alone.
        let left_alone = left_alone_words(&row).map(|words| {
            view! { <span class="muted small">{words}</span> }
        });
        view! {
            <div class="account">
                <span>{name} {role}</span>
                <span class="muted small">
                    "ID " <span class="mono">{account_id}</span> {others}
                </span>
                {left_alone}
            </div>
        }
        .into_any()
    } else {
        ().into_any()
    };
    let tag = if row.may_be_refused.is_some() {
        "may be refused"
    } else {
        row.outcome.label_for(action)
    };
    // A chosen row says who chose and when instead of the stored "chosen by …" (which the
    // reports keep), with the way back.
    let chosen_note = row.chosen.clone().map(|choice| {
        let undo = choose_on.clone().map(|(preview, line)| {
            view! {
                <form class="form inline" method="post" action="/preview/choose">
                    <input type="hidden" name="preview" value=preview />
                    <input type="hidden" name="line" value=line.to_string() />
                    <input type="hidden" name="undo" value="yes" />
                    <button type="submit" class="button" aria-label=format!("Undo choice for line {line}")>
                        "Undo choice"
                    </button>
                </form>
            }
        });
        view! {
            <span class="chosen-note" data-testid="chosen-note">
                {format!("Chosen by {} on ", choice.by)} <When at=choice.at.clone() />
            </span>
            {undo}
        }
    });
    let stored_reason = match &row.chosen {
        Some(choice) => row
            .reason
            .strip_prefix(&format!("chosen by {}", choice.by))
            .unwrap_or(&row.reason)
            .trim_start_matches("; ")
            .to_string(),
        None => row.reason.clone(),
    };
    let reason = [row.may_be_refused.clone(), Some(stored_reason)]
        .into_iter()
        .flatten()
        .filter(|r| !r.is_empty())
        .collect::<Vec<_>>()
        .join(". ");
    let earlier = row.earlier_run.clone().map(|run| {
        let href = format!("/run?id={}", encode(&run.job_id));
        let label = format!("The run of {} by {}", run.day, run.by);
        view! { " " <a href=href aria-label=label>"See that run"</a> }
    });
    view! {
        <tr class=format!("outcome-{}", row.outcome.key()) id=row.line.map(|l| format!("line-{l}"))>
            {lines.then(|| view! { <td data-label="Line">{row.line.map(|l| l.to_string())}</td> })}
            <td data-label="Input" class="mono input">{row.input.clone()}</td>
            <td data-label="Outcome"><span class="tag">{tag}</span></td>
            <td data-label="Account">{account}</td>
            <td data-label="Reason">
                {chosen_note} {(!reason.is_empty()).then_some(reason)} {earlier}
            </td>
        </tr>
    }
    .into_any()
}

/// "Delete this account" beside one of an ambiguous row's accounts: a plain form
/// (`POST /preview/choose`), so it works before the page's script has loaded.
#[component]
fn ChooseForm(preview: String, line: usize, account: String, action: UserAction) -> impl IntoView {
    let verb = match action.now() {
        UserAction::Delete => "Delete this account",
        _ => "Deactivate this account",
    };
    view! {
        <form class="form inline choose" method="post" action="/preview/choose">
            <input type="hidden" name="preview" value=preview />
            <input type="hidden" name="line" value=line.to_string() />
            <input type="hidden" name="account" value=account.clone() />
            <button type="submit" class="button" aria-label=format!("{verb}: {account}")>
                {verb}
            </button>
        </form>
    }
}

/// "The other account with this email, 236, is not touched." for a row whose account was
/// chosen among several; None for other rows.
pub fn left_alone_words(row: &PreviewRow) -> Option<String> {
    let chosen = row.chosen.as_ref()?;
    let others: Vec<&str> = row
        .candidates
        .iter()
        .map(|c| c.account_id.as_str())
        .filter(|id| id.trim() != chosen.account_id.trim())
        .collect();
    match others.as_slice() {
        [] => None,
        [one] => Some(format!(
            "The other account with this email, {one}, is not touched."
        )),
        many => Some(format!(
            "The other accounts with this email, {}, are not touched.",
            many.join(", ")
        )),
    }
}

/// Action, demotion and column: any change makes a new preview and shows it.
#[component]
fn OptionsCard(summary: PreviewSummary) -> impl IntoView {
    let navigate = use_navigate();
    let id = summary.id.to_string();
    let action = RwSignal::new(summary.action.key().to_string());
    let demote = RwSignal::new(summary.demote_privileged);
    let column = RwSignal::new(match &summary.source {
        PreviewSource::File { column, .. } => Some(column.index),
        _ => None,
    });
    // Which control the admin changed, so the same control has the focus again once the new
    // preview replaces this one (and the page does not jump back to the top).
    let refocus = use_context::<RefocusAfterRevise>();
    let mark = move |control: &'static str| {
        if let Some(RefocusAfterRevise(r)) = refocus {
            r.set(Some(control));
        }
    };
    Effect::new(move |_| {
        if let Some(RefocusAfterRevise(r)) = refocus {
            if let Some(control) = r.get_untracked() {
                r.set(None);
                focus_by_id(control);
            }
        }
    });
    let revise = Action::new(move |_: &()| {
        revise_preview(
            id.clone(),
            action.get_untracked(),
            demote.get_untracked(),
            // The page holds the 0-based index; the backend counts columns from 1.
            column.get_untracked().map(|c| c + 1),
        )
    });
    Effect::new(move |_| {
        if let Some(Ok(s)) = revise.value().get() {
            navigate(
                &preview_href(s.id.as_str(), None, 1),
                NavigateOptions {
                    scroll: false,
                    ..Default::default()
                },
            );
        }
    });
    let column_picker = match &summary.source {
        PreviewSource::File { column: choice, .. } if !choice.all_columns.is_empty() => {
            let choice = choice.clone();
            Some(view! {
                <div class="field">
                    <p>
                        {format!("Offboard read column “{}”: {}", choice.header.clone().unwrap_or_else(|| format!("Column {}", choice.index + 1)), choice.reason)}
                        {format!(" (file read as {}, separated by {}).", choice.encoding, choice.delimiter)}
                    </p>
                    <label for="column">"Column with emails or account IDs"</label>
                    <select
                        id="column"
                        on:change=move |ev| {
                            if let Ok(i) = event_target_value(&ev).parse::<usize>() {
                                column.set(Some(i));
                                mark("column");
                                revise.dispatch(());
                            }
                        }
                    >
                        {choice
                            .all_columns
                            .iter()
                            .enumerate()
                            .map(|(i, name)| {
                                view! { <option value=i.to_string() selected=i == choice.index>{name.clone()}</option> }
                            })
                            .collect_view()}
                    </select>
                </div>
            })
        }
        _ => None,
    };
    view! {
        <section class="card" aria-labelledby="options-heading">
            <h2 id="options-heading">"Options"</h2>
            {column_picker}
            <ActionChoice
                name="preview-action"
                deactivate=summary.action == UserAction::Deactivate
                undo_window=summary.action == UserAction::DeactivateThenDelete
                already_deactivated=summary.action == UserAction::Delete
                    && !matches!(summary.source, PreviewSource::File { .. })
                on_pick=Callback::new(move |a: String| {
                    mark(match UserAction::from_key(&a) {
                        Some(UserAction::Deactivate) => "preview-action-deactivate",
                        Some(UserAction::DeactivateThenDelete) => "preview-action-deactivate_then_delete",
                        _ => "preview-action-delete",
                    });
                    action.set(a);
                    revise.dispatch(());
                })
            />
            <div class="field checkbox">
                <input
                    id="preview-demote"
                    type="checkbox"
                    checked=summary.demote_privileged
                    on:change=move |ev| {
                        demote.set(event_target_checked(&ev));
                        mark("preview-demote");
                        revise.dispatch(());
                    }
                />
                <label for="preview-demote">
                    "Demote moderators and admins to ordinary users first (otherwise they are skipped)"
                </label>
            </div>
            <ActionFeedback action=revise working="Updating the preview…" />
        </section>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_note_says_up_to() {
        assert_eq!(
            refused_words(2, 12, UserAction::Delete),
            "Up to 12 will be deleted: 2 may be refused by Stack, as an earlier run found (the rows marked “may be refused” say why). Offboard still tries them."
        );
        assert!(refused_words(1, 1, UserAction::Deactivate)
            .starts_with("Up to 1 will be deactivated: 1 may"));
    }

    #[test]
    fn hrefs_keep_filter_and_page() {
        assert_eq!(preview_href("p1", None, 1), "/preview?id=p1");
        assert_eq!(
            preview_href("p1", Some(PreviewOutcome::NotFound), 3),
            "/preview?id=p1&outcome=not_found&page=3"
        );
        assert_eq!(preview_href("a b&c", None, 0), "/preview?id=a%20b%26c");
    }

    #[test]
    fn run_button_names_action_and_count() {
        assert_eq!(run_button_text(UserAction::Delete, 37), "Delete 37 users");
        assert_eq!(
            run_button_text(UserAction::Deactivate, 1),
            "Deactivate 1 user"
        );
        assert_eq!(
            run_button_text(UserAction::Delete, 12000),
            "Delete 12,000 users"
        );
        // The undo window deactivates now: its button says what happens now.
        assert_eq!(
            run_button_text(UserAction::DeactivateThenDelete, 4),
            "Deactivate 4 users"
        );
    }
}
