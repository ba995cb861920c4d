//! The Run page's undo window (docs/undo-window.md): the date, every user with "Restore",
//! "Restore everyone and cancel the deletion", and for owners "Delete now" with the phrase
//! typed again. Plain forms (`/run/undo/…`), so they work before the page's script loads; the
//! server decides who may press them.

use super::super::preview::encode;
use crate::backend::UndoWindowView;
use crate::team::Role;
use leptos::prelude::*;

#[component]
pub(super) fn UndoWindowCard(job: String, window: UndoWindowView) -> impl IntoView {
    let me = Resource::new(|| (), |_| crate::api::whoami());
    let role = move || {
        me.get()
            .and_then(Result::ok)
            .flatten()
            .and_then(|me| me.team)
            .map(|t| t.role)
    };
    let open = window.open;
    let left = window.users.iter().filter(|u| u.restorable).count();
    let rows = window
        .users
        .iter()
        .cloned()
        .map(|user| {
            let restore = (user.restorable).then(|| {
                view! {
                    <form class="form inline" method="post" action="/run/undo/restore">
                        <input type="hidden" name="job" value=job.clone() />
                        <input type="hidden" name="account" value=user.account_id.clone() />
                        <button type="submit" class="button" aria-label=format!("Restore {}", user.name)>"Restore"</button>
                    </form>
                }
            });
            view! {
                <tr data-testid="undo-user">
                    <td data-label="Name">{user.name}</td>
                    <td data-label="Email">{user.email}</td>
                    <td data-label="Account ID" class="mono">{user.account_id}</td>
                    <td data-label="Outcome" data-testid="undo-outcome">{user.outcome}</td>
                    <td data-label="Action">{restore}</td>
                </tr>
            }
        })
        .collect_view();
    let waiting = window.waiting_preview.clone().map(|p| {
        view! { <p><a href=format!("/preview?id={}", encode(p.as_str()))>"Open the preview that waits for you"</a></p> }
    });
    let deletion = window.delete_job.clone().map(|j| {
        view! { <p><a href=format!("/run?id={}", encode(j.as_str())) data-testid="deletion-run">"Open the deletion run"</a></p> }
    });
    let phrase = window.phrase.clone();
    let job_for_forms = job.clone();
    view! {
        <div class="next-steps" id="undo-window" aria-labelledby="undo-heading">
            <h2 id="undo-heading">"Undo window"</h2>
            <p role="status" data-testid="undo-status"><strong>{window.status.clone()}</strong></p>
            <p class="hint">{format!("Confirmed by {}. Until the date anyone restored is reactivated at the site at once and left out of the deletion; at the date only users still deactivated and unchanged are deleted.", window.confirmed_by)}</p>
            {waiting}
            {deletion}
            <div class="table-wrap">
                <table class="stack" data-testid="undo-users">
                    <caption class="visually-hidden">"Users of the undo window"</caption>
                    <thead>
                        <tr>
                            <th scope="col">"Name"</th>
                            <th scope="col">"Email"</th>
                            <th scope="col">"Account ID"</th>
                            <th scope="col">"Outcome"</th>
                            <th scope="col">"Action"</th>
                        </tr>
                    </thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
            {(open && left > 0).then(|| view! {
                <form class="form inline" method="post" action="/run/undo/cancel">
                    <input type="hidden" name="job" value=job_for_forms.clone() />
                    <button type="submit" class="button primary">"Restore everyone and cancel the deletion"</button>
                </form>
            })}
            {move || (open && left > 0 && role() == Some(Role::Owner)).then(|| {
                let job = job_for_forms.clone();
                let phrase = phrase.clone();
                view! {
                    <form class="form" method="post" action="/run/undo/delete-now">
                        <input type="hidden" name="job" value=job />
                        <div class="field">
                            <label for="delete-now-phrase">{format!("Delete now, without waiting for the date: type {phrase}")}</label>
                            <input id="delete-now-phrase" name="phrase" type="text" autocomplete="off" />
                        </div>
                        <button type="submit" class="button danger">"Delete now"</button>
                    </form>
                }
            })}
        </div>
    }
}
