//! The Run page's "What to do now" cards: a new preview of the users a stopped run did not
//! delete (deletion not enabled), or of those a cancelled, stopped or failed run did not
//! remove.

use super::super::parts::{error_text, users, ErrorBox};
use super::super::preview::encode;
use super::{not_yet_removed, still_to_delete};
use crate::api::{load_results_page, preview_picked};
use crate::backend::JobView;
use crate::model::ItemOutcome;
use crate::Named;
use leptos::prelude::*;
use leptos_router::hooks::use_navigate;

/// What to do after a run stopped because SCIM deletion is not enabled: a stopped run cannot
/// be resumed, so the way on is a new preview of the users it did not delete, one click away.
#[component]
pub(super) fn RunAgainCard(job: JobView) -> impl IntoView {
    let left = still_to_delete(&job);
    let navigate = use_navigate();
    let id = job.id.to_string();
    let action = job.action;
    let again = Action::new(move |_: &()| {
        let id = id.clone();
        async move {
            let ids = remaining_account_ids(&id).await?;
            if ids.is_empty() {
                return Err(ServerFnError::new(
                    "This run has no user left to delete: every one was deleted or settled.",
                ));
            }
            preview_picked(ids.join("\n"), action.key().to_string(), false).await
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(summary)) = again.value().get() {
            navigate(
                &format!("/preview?id={}", encode(&summary.id)),
                Default::default(),
            );
        }
    });
    view! {
        <div class="next-steps" aria-labelledby="again-heading">
            <h2 id="again-heading">"What to do now"</h2>
            <ol>
                <li>"Ask Stack support to enable SCIM user deletion for your site (or turn it on in the site's SCIM admin settings, if your site shows that option)."</li>
                <li>{format!("Once it is on, make a new preview of the {} this run did not delete, check it, and confirm it. A stopped run cannot be resumed; the new run picks up where this one stopped.", users(left))}</li>
            </ol>
            <button
                type="button"
                class="button primary"
                disabled=move || again.pending().get()
                on:click=move |_| {
                    again.dispatch(());
                }
            >
                {format!("Preview the {} again", users(left))}
            </button>
            <div aria-live="polite">
                {move || again.pending().get().then(|| view! { <p role="status">"Listing the site's users and making a new preview…"</p> })}
                {move || again.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorBox message=error_text(&e) /> })}
            </div>
        </div>
    }
    .into_any()
}

/// The way on after a cancelled, stopped or failed run: a new preview of exactly the users it
/// did not remove, as a plain form (`POST /run/not-removed`) that leads to that preview.
#[component]
pub(super) fn NotRemovedCard(job: JobView) -> impl IntoView {
    let left = not_yet_removed(&job);
    let label = format!("Preview the {} not yet removed", users(left));
    view! {
        <div class="next-steps" aria-labelledby="not-removed-heading">
            <h2 id="not-removed-heading">"What to do now"</h2>
            <p>
                {format!("{} of this run {} not removed. A new preview lists them against the site as it is now, shows what will happen to each, and starts nothing until you confirm it.", users(left), if left == 1 { "was" } else { "were" })}
            </p>
            <form class="form inline" method="post" action="/run/not-removed">
                <input type="hidden" name="job" value=job.id.to_string() />
                <button type="submit" class="button primary">{label}</button>
            </form>
        </div>
    }
}

/// The account IDs a new run must take over: refused because deletion was not enabled, or
/// never reached. Read page by page from the run's log, oldest last.
async fn remaining_account_ids(job_id: &str) -> Result<Vec<String>, ServerFnError> {
    let mut ids = Vec::new();
    let mut before = 0;
    loop {
        let page = load_results_page(job_id.to_string(), before, 1000).await?;
        for event in &page.results {
            if let Some(r) = &event.result {
                if matches!(
                    r.outcome,
                    ItemOutcome::DeletionNotEnabled | ItemOutcome::NotAttempted
                ) {
                    ids.push(r.account_id.clone());
                }
            }
        }
        match page.results.last() {
            Some(last) if page.more => before = last.seq,
            _ => break,
        }
    }
    ids.reverse();
    ids.dedup();
    Ok(ids)
}
