//! The start screen: what Offboard does, the steps, and a live check of the console's storage.

use crate::backend::StorageStatus;
use leptos::prelude::*;

/// Asks the server to check its database and report what it holds.
#[server(endpoint = "check_storage")]
pub async fn check_storage() -> Result<StorageStatus, ServerFnError> {
    let backend = crate::backend::backend()?;
    backend
        .storage_status()
        .await
        .map_err(|e| ServerFnError::new(e.message))
}

#[component]
pub fn Overview() -> impl IntoView {
    let recheck = Action::new(|_: &()| check_storage());
    let status = Resource::new(move || recheck.version().get(), |_| check_storage());
    view! {
        <section class="card">
            <h1>"Offboard"</h1>
            <p class="lead">
                "Delete users from your Stack Internal site through SCIM, safely: "
                "you see exactly who will be deleted before anything happens, "
                "and keep a record of every result."
            </p>
            <ol class="path">
                <li>"Connect your site with its SCIM token."</li>
                <li>"Choose users: upload a CSV of emails or account IDs, or pick deactivated users."</li>
                <li>"Preview every row and why it will or will not be deleted."</li>
                <li>"Type the confirmation phrase; watch each result arrive."</li>
                <li>"Download the report for your records or for Stack support."</li>
            </ol>
            <p>
                <a class="button primary" href="/connect">
                    "Start: connect a site"
                </a>
            </p>
        </section>
        <section class="card" aria-labelledby="storage-heading">
            <h2 id="storage-heading">"Console storage"</h2>
            <Transition fallback=|| view! { <p>"Checking storage…"</p> }>
                {move || {
                    status
                        .get()
                        .map(|result| match result {
                            Ok(s) => {
                                view! {
                                    <p role="status" data-testid="storage-status">
                                        {format!(
                                            "{} is working: {} migrations applied, {} jobs in history (checked {}).",
                                            s.database,
                                            s.migrations,
                                            s.jobs,
                                            s.checked_at,
                                        )}
                                    </p>
                                }
                                    .into_any()
                            }
                            Err(e) => {
                                view! {
                                    <p role="alert" class="error">
                                        {format!("Storage check failed: {e}")}
                                    </p>
                                }
                                    .into_any()
                            }
                        })
                }}
            </Transition>
            <button
                type="button"
                class="button"
                on:click=move |_| {
                    recheck.dispatch(());
                }
            >
                "Check again"
            </button>
        </section>
    }
}
