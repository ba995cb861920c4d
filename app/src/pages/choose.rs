//! The Choose screen: upload or paste a list (a plain form that works before the page's
//! script loads), or tick users in the site's list of deactivated users.

use super::deactivated_dates::{created_date, LongEnoughFilter, Sightings};
use super::parts::{error_text, thousands, ErrorBox};
use crate::api::{
    choose_pasted, choose_problem, deactivated_since, deactivated_users, preview_picked,
};
use crate::model::SiteUser;
use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};
use std::collections::HashSet;

/// Rows of the deactivated list shown at once: a site can have thousands.
const LIST_PAGE: usize = 100;

/// True when the user's name, username, any email or account ID contains every word searched.
pub fn user_matches(user: &SiteUser, search: &str) -> bool {
    let haystack = [
        Some(user.id.as_str()),
        user.display_name.as_deref(),
        user.user_name.as_deref(),
        user.external_id.as_deref(),
    ]
    .into_iter()
    .flatten()
    .chain(user.emails.iter().map(String::as_str))
    .collect::<Vec<_>>()
    .join("\n");
    let haystack = lower_case(&haystack);
    search
        .split_whitespace()
        .all(|word| haystack.contains(&lower_case(word)))
}

/// Unicode lower case, for a search that ignores case in any language. In the browser the
/// browser's own `toLowerCase` does it (same Unicode rules): Rust's `to_lowercase` would bring
/// its Unicode case tables into the WASM download (docs/benchmarks.md, "Browser bundle").
fn lower_case(text: &str) -> String {
    #[cfg(feature = "hydrate")]
    {
        String::from(js_sys::JsString::from(text).to_lower_case())
    }
    #[cfg(not(feature = "hydrate"))]
    {
        text.to_lowercase()
    }
}

/// The name a person recognises: display name, else username, else email, else account ID.
pub fn user_label(user: &SiteUser) -> String {
    user.display_name
        .as_deref()
        .or(user.user_name.as_deref())
        .or(user.display_email())
        .unwrap_or(&user.id)
        .to_string()
}

#[component]
pub fn Choose() -> impl IntoView {
    let query = use_query_map();
    // The address holds only a code; the words come from the server (see ChooseProblem).
    // An empty or unknown code has no words (the server answers None).
    let problem = Resource::new(
        move || query.with(|q| q.get("error")).unwrap_or_default(),
        choose_problem,
    );
    view! {
        <section class="card" aria-labelledby="choose-heading">
            <h1 id="choose-heading">"Choose users"</h1>
            <p class="lead">
                "Give Offboard a list of emails or account IDs, or pick from the users your site has already deactivated. Nothing happens yet: the next step shows you exactly who would be affected."
            </p>
            <Transition fallback=|| ()>
                {move || {
                    problem
                        .get()
                        .and_then(Result::ok)
                        .flatten()
                        .map(|message| view! { <ErrorBox message /> })
                }}
            </Transition>
        </section>
        <UploadForm failed=Signal::derive(move || query.with(|q| q.get("error")).as_deref() == Some("preview_failed")) />
        <DeactivatedList />
    }
    .into_any()
}

#[component]
fn UploadForm(failed: Signal<bool>) -> impl IntoView {
    // After a failed preview of a pasted list, the list is shown again as it was sent.
    let pasted_before = Resource::new(
        move || failed.get(),
        |failed| async move {
            if failed {
                choose_pasted().await.ok().flatten()
            } else {
                None
            }
        },
    );
    let file_name = RwSignal::new(String::new());
    let dragging = RwSignal::new(false);
    let input_ref = NodeRef::<leptos::html::Input>::new();
    view! {
        <section class="card" aria-labelledby="upload-heading">
            <h2 id="upload-heading">"Upload or paste a list"</h2>
            <form
                method="post"
                action="/choose/upload"
                enctype="multipart/form-data"
                class="form"
            >
                <div
                    class="dropzone"
                    class:dragging=move || dragging.get()
                    on:dragover=move |ev| {
                        ev.prevent_default();
                        dragging.set(true);
                    }
                    on:dragleave=move |_| dragging.set(false)
                    on:drop=move |ev| {
                        ev.prevent_default();
                        dragging.set(false);
                        drop_into(&ev, input_ref, file_name);
                    }
                >
                    <label for="file">"File with emails or account IDs (CSV, TSV or text)"</label>
                    <input
                        id="file"
                        name="file"
                        type="file"
                        accept=".csv,.txt,.tsv,text/csv,text/plain,text/tab-separated-values"
                        node_ref=input_ref
                        on:change=move |_| {
                            file_name.set(chosen_name(input_ref));
                        }
                    />
                    <p class="hint">
                        {move || {
                            let name = file_name.get();
                            if name.is_empty() {
                                "Or drag a file here. One column of emails or account IDs is enough; Offboard finds the right column in a spreadsheet export.".to_string()
                            } else {
                                format!("Chosen: {name}")
                            }
                        }}
                    </p>
                </div>
                <div class="field">
                    <label for="pasted">"or paste a list"</label>
                    <Transition fallback=|| view! {
                        <textarea id="pasted" name="pasted" rows="5" placeholder="one email or account ID per line"></textarea>
                    }>
                        {move || {
                            let before = pasted_before.get().flatten().unwrap_or_default();
                            view! {
                                <textarea
                                    id="pasted"
                                    name="pasted"
                                    rows="5"
                                    placeholder="one email or account ID per line"
                                >
                                    {before}
                                </textarea>
                            }
                        }}
                    </Transition>
                </div>
                <ActionChoice name="action" />
                <div class="field checkbox">
                    <input id="demote" name="demote" type="checkbox" />
                    <label for="demote">
                        "Demote moderators and admins to ordinary users first (otherwise they are skipped)"
                    </label>
                </div>
                <button type="submit" class="button primary">
                    "Preview these users"
                </button>
            </form>
        </section>
    }
    .into_any()
}

/// Delete (irreversible) or Deactivate (reversible), as radio buttons.
#[component]
pub fn ActionChoice(
    name: &'static str,
    #[prop(optional)] deactivate: bool,
    /// "Deactivate now, delete after N days" is the current choice.
    #[prop(optional)]
    undo_window: bool,
    // Users already deactivated (the site's deactivated list): only Delete is left to do, so
    // no choice is offered.
    #[prop(optional)] already_deactivated: bool,
    #[prop(optional, into)] on_pick: Option<Callback<String>>,
) -> impl IntoView {
    if already_deactivated {
        return view! {
            <div class="choice" role="group" aria-labelledby=format!("{name}-only")>
                <p id=format!("{name}-only")>
                    <strong>"These users will be deleted (irreversible)."</strong>
                    " They are already deactivated, so deactivating is not offered. Delete removes the account for good and credits its posts to a generic user."
                </p>
            </div>
        }
        .into_any();
    }
    let pick = move |value: &'static str| {
        if let Some(cb) = on_pick {
            cb.run(value.to_string());
        }
    };
    view! {
        <fieldset class="choice">
            <legend>"What should happen to these users?"</legend>
            <div>
                <input
                    type="radio"
                    id=format!("{name}-delete")
                    name=name
                    value="delete"
                    checked=!deactivate && !undo_window
                    on:change=move |_| pick("delete")
                />
                <label for=format!("{name}-delete")>"Delete (irreversible)"</label>
            </div>
            <div>
                <input
                    type="radio"
                    id=format!("{name}-deactivate")
                    name=name
                    value="deactivate"
                    checked=deactivate
                    on:change=move |_| pick("deactivate")
                />
                <label for=format!("{name}-deactivate")>"Deactivate (reversible)"</label>
            </div>
            <div>
                <input
                    type="radio"
                    id=format!("{name}-deactivate_then_delete")
                    name=name
                    value="deactivate_then_delete"
                    checked=undo_window
                    on:change=move |_| pick("deactivate_then_delete")
                />
                <label for=format!("{name}-deactivate_then_delete")>
                    "Deactivate now, delete after the team's days before deletion"
                </label>
            </div>
            <p class="hint">
                "Delete removes the account for good and credits its posts to a generic user. Deactivate only blocks sign-in; you can reactivate the account later. Deactivate now, delete later: the run's page can restore anyone until the date, then Offboard deletes those still deactivated and unchanged."
            </p>
        </fieldset>
    }
    .into_any()
}

/// The name of the file the admin chose, read from the input itself.
fn chosen_name(input: NodeRef<leptos::html::Input>) -> String {
    #[cfg(feature = "hydrate")]
    {
        input
            .get_untracked()
            .and_then(|el| el.files())
            .and_then(|files| files.get(0))
            .map(|f| f.name())
            .unwrap_or_default()
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = input;
        String::new()
    }
}

/// Puts a dropped file into the form's file input, so the plain form submits it.
fn drop_into(
    ev: &leptos::ev::DragEvent,
    input: NodeRef<leptos::html::Input>,
    file_name: RwSignal<String>,
) {
    #[cfg(feature = "hydrate")]
    {
        let Some(files) = ev.data_transfer().and_then(|dt| dt.files()) else {
            return;
        };
        if files.length() == 0 {
            return;
        }
        if let Some(el) = input.get_untracked() {
            el.set_files(Some(&files));
        }
        file_name.set(chosen_name(input));
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (ev, input, file_name);
    }
}

#[component]
fn DeactivatedList() -> impl IntoView {
    let load = Action::new(|_: &()| deactivated_users());
    let search = RwSignal::new(String::new());
    let picked = RwSignal::new(HashSet::<String>::new());
    let page = RwSignal::new(1usize);
    let navigate = use_navigate();
    // The same choices as the upload form, so deactivated moderators can be demoted and
    // deleted from here instead of showing up as skipped on the Preview.
    let action = RwSignal::new("delete".to_string());
    let demote = RwSignal::new(false);
    let preview = Action::new(move |ids: &String| {
        preview_picked(ids.clone(), action.get_untracked(), demote.get_untracked())
    });
    Effect::new(move |_| {
        if let Some(Ok(summary)) = preview.value().get() {
            navigate(&format!("/preview?id={}", summary.id), Default::default());
        }
    });
    let users = move || load.value().get().and_then(|r| r.ok()).unwrap_or_default();
    // When the daily listings first saw each user deactivated (nothing when they never did).
    let seen = Action::new(|_: &()| deactivated_since());
    let sightings = Signal::derive(move || {
        let got = seen.value().get().and_then(|r| r.ok());
        got.map(Sightings::from).unwrap_or_default()
    });
    let only_long = RwSignal::new(false);
    let matching = Memo::new(move |_| {
        let s = search.get();
        let (only, seen) = (only_long.get(), sightings.get());
        users()
            .into_iter()
            .filter(|u| user_matches(u, &s) && seen.kept(&u.id, only))
            .collect::<Vec<_>>()
    });
    view! {
        <section class="card" aria-labelledby="deactivated-heading">
            <h2 id="deactivated-heading">"Deactivated users"</h2>
            <p>
                "Users your identity provider already deactivated on the site. Tick the ones to remove, then preview them."
            </p>
            <button
                type="button"
                class="button"
                on:click=move |_| {
                    load.dispatch(());
                    seen.dispatch(());
                }
                disabled=move || load.pending().get()
            >
                {move || {
                    if load.pending().get() {
                        "Listing the site's users…"
                    } else if load.value().with(Option::is_some) {
                        "Reload deactivated users"
                    } else {
                        "Show deactivated users"
                    }
                }}
            </button>
            {move || {
                load.value()
                    .get()
                    .and_then(|r| r.err())
                    .map(|e| view! { <ErrorBox message=error_text(&e) /> })
            }}
            <Show when=move || load.value().with(|v| matches!(v, Some(Ok(_))))>
                <div class="toolbar">
                    <div class="field">
                        <label for="user-search">"Search by name, email or account ID"</label>
                        <input
                            id="user-search"
                            type="search"
                            prop:value=move || search.get()
                            on:input=move |ev| {
                                search.set(event_target_value(&ev));
                                page.set(1);
                            }
                        />
                    </div>
                    <button
                        type="button"
                        class="button"
                        on:click=move |_| {
                            picked.update(|p| p.extend(matching.get().into_iter().map(|u| u.id)))
                        }
                    >
                        "Select all"
                    </button>
                    <button type="button" class="button" on:click=move |_| picked.update(HashSet::clear)>
                        "Select none"
                    </button>
                </div>
                <p role="status" data-testid="picked-count">
                    {move || {
                        format!(
                            "{} selected of {} deactivated users ({} shown by the search)",
                            thousands(picked.with(HashSet::len) as u64),
                            thousands(users().len() as u64),
                            thousands(matching.with(Vec::len) as u64),
                        )
                    }}
                </p>
                <LongEnoughFilter sightings only=only_long />
                <UserTable matching picked page sightings />
                <ActionChoice
                    name="picked-action"
                    already_deactivated=true
                    on_pick=Callback::new(move |a: String| action.set(a))
                />
                <div class="field checkbox">
                    <input
                        id="picked-demote"
                        type="checkbox"
                        prop:checked=move || demote.get()
                        on:change=move |ev| demote.set(event_target_checked(&ev))
                    />
                    <label for="picked-demote">
                        "Demote moderators and admins to ordinary users first (otherwise they are skipped)"
                    </label>
                </div>
                // Stays in sight at the bottom of the window while a long list scrolls by.
                <div class="sticky-bar" role="group" aria-label="Selected users">
                    <span data-testid="sticky-count">
                        {move || format!("{} selected", thousands(picked.with(HashSet::len) as u64))}
                    </span>
                    <button
                        type="button"
                        class="button primary"
                        disabled=move || picked.with(HashSet::is_empty) || preview.pending().get()
                        on:click=move |_| {
                            let ids = in_id_order(picked.get().into_iter().collect());
                            preview.dispatch(ids.join("\n"));
                        }
                    >
                        "Preview selected"
                    </button>
                </div>
                {move || {
                    preview
                        .value()
                        .get()
                        .and_then(|r| r.err())
                        .map(|e| view! { <ErrorBox message=error_text(&e) /> })
                }}
            </Show>
        </section>
    }
    .into_any()
}

#[component]
fn UserTable(
    matching: Memo<Vec<SiteUser>>,
    picked: RwSignal<HashSet<String>>,
    page: RwSignal<usize>,
    sightings: Signal<Sightings>,
) -> impl IntoView {
    let pages = move || matching.with(|m| m.len().div_ceil(LIST_PAGE).max(1));
    let shown = move || {
        let p = page.get().clamp(1, pages());
        matching.with(|m| {
            m.iter()
                .skip((p - 1) * LIST_PAGE)
                .take(LIST_PAGE)
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    // A comparison written inside a `view!` attribute (`disabled=move || a >= b`) ends the
    // tag at its `>` and prints the rest as text: the closures are named out here instead.
    let on_first = move || page.get() <= 1;
    let on_last = move || page.get() >= pages();
    view! {
        <div class="table-wrap">
            <table class="stack">
                <caption class="visually-hidden">"Deactivated users"</caption>
                <thead>
                    <tr>
                        <th scope="col">"Select"</th>
                        <th scope="col">"Name"</th>
                        <th scope="col">"Email"</th>
                        <th scope="col">"Account ID"</th>
                        <th scope="col">"Role"</th>
                        <th scope="col">"Created"</th>
                        <th scope="col">"Deactivated since"</th>
                    </tr>
                </thead>
                <tbody>
                    <For each=shown key=|u| u.id.clone() let:user>
                        {
                            let id = user.id.clone();
                            let id_for_check = id.clone();
                            let label = format!("Select {}", user_label(&user));
                            view! {
                                <tr>
                                    <td data-label="Select">
                                        <input
                                            type="checkbox"
                                            aria-label=label
                                            prop:checked=move || picked.with(|p| p.contains(&id_for_check))
                                            on:change=move |ev| {
                                                let on = event_target_checked(&ev);
                                                let id = id.clone();
                                                picked.update(|p| {
                                                    if on {
                                                        p.insert(id);
                                                    } else {
                                                        p.remove(&id);
                                                    }
                                                });
                                            }
                                        />
                                    </td>
                                    <td data-label="Name">{user_label(&user)}</td>
                                    <td data-label="Email">{user.display_email().map(str::to_string)}</td>
                                    <td data-label="Account ID" class="mono">{user.id.clone()}</td>
                                    <td data-label="Role">{user.role.to_string()}</td>
                                    <td data-label="Created">{created_date(user.created.as_deref())}</td>
                                    <td data-label="Deactivated since">{sightings.with(|s| s.since(&user.id))}</td>
                                </tr>
                            }
                        }
                    </For>
                </tbody>
            </table>
        </div>
        <Show when=move || { pages() > 1 }>
            <nav class="pager" aria-label="Pages of deactivated users">
                <span>{move || format!("Page {} of {}", page.get().clamp(1, pages()), pages())}</span>
                <button
                    type="button"
                    class="button"
                    disabled=on_first
                    on:click=move |_| page.update(|p| *p = p.saturating_sub(1).max(1))
                >
                    "Previous page"
                </button>
                <button
                    type="button"
                    class="button"
                    disabled=on_last
                    on:click=move |_| page.update(|p| *p = (*p + 1).min(pages()))
                >
                    "Next page"
                </button>
            </nav>
        </Show>
    }
    .into_any()
}

/// Account IDs in the site's order: numbers as numbers ("9" before "10", without limit on
/// their length), anything else after them, as text.
fn in_id_order(mut ids: Vec<String>) -> Vec<String> {
    fn key(id: &str) -> (bool, usize, &str) {
        let id = id.trim();
        let digits = id.trim_start_matches('0');
        match !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) {
            true => (false, digits.len(), digits),
            false => (true, 0, id),
        }
    }
    ids.sort_by(|a, b| key(a).cmp(&key(b)).then_with(|| a.cmp(b)));
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_sort_as_numbers() {
        let ids = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            in_id_order(ids(&[
                "10",
                "9",
                "100",
                "x1",
                "011",
                "2",
                "99999999999999999999999"
            ])),
            ids(&[
                "2",
                "9",
                "10",
                "011",
                "100",
                "99999999999999999999999",
                "x1"
            ])
        );
        assert_eq!(in_id_order(ids(&["", "1"])), ids(&["1", ""]));
        assert_eq!(in_id_order(ids(&["007", "7"])), ids(&["007", "7"]));
    }

    fn user() -> SiteUser {
        SiteUser {
            id: "4711".into(),
            display_name: Some("Ada Lovelace".into()),
            user_name: Some("ada".into()),
            emails: vec!["ada@example.com".into(), "A.L@Corp.example".into()],
            ..Default::default()
        }
    }

    #[test]
    fn search_looks_at_names_emails_and_ids() {
        let u = user();
        assert!(user_matches(&u, ""));
        assert!(user_matches(&u, "   "));
        assert!(user_matches(&u, "lovelace"));
        assert!(user_matches(&u, "a.l@corp"));
        assert!(user_matches(&u, "4711"));
        assert!(user_matches(&u, "ada 4711"));
        assert!(!user_matches(&u, "ada 4712"));
        assert!(!user_matches(&u, "babbage"));
    }

    #[test]
    fn search_ignores_case_beyond_ascii() {
        let u = SiteUser {
            id: "9".into(),
            display_name: Some("Émile Ørsted".into()),
            ..Default::default()
        };
        assert!(user_matches(&u, "émile"));
        assert!(user_matches(&u, "ØRSTED"));
        assert!(!user_matches(&u, "emile"));
    }

    #[test]
    fn label_falls_back_to_what_is_there() {
        let mut u = user();
        assert_eq!(user_label(&u), "Ada Lovelace");
        u.display_name = None;
        assert_eq!(user_label(&u), "ada");
        u.user_name = None;
        assert_eq!(user_label(&u), "ada@example.com");
        u.emails.clear();
        assert_eq!(user_label(&u), "4711");
    }
}
