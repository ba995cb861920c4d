//! The screens of the deletion flow (filled in by the console work) and the not-found page.

use leptos::prelude::*;

#[component]
fn StepIntro(title: &'static str, text: &'static str) -> impl IntoView {
    view! {
        <section class="card">
            <h1>{title}</h1>
            <p>{text}</p>
        </section>
    }
}

#[component]
pub fn Connect() -> impl IntoView {
    view! {
        <StepIntro
            title="Connect a site"
            text="Enter your Stack Internal site URL and its SCIM token. The token is stored encrypted on this server and never sent back to your browser."
        />
    }
}

#[component]
pub fn Choose() -> impl IntoView {
    view! {
        <StepIntro
            title="Choose users"
            text="Upload a CSV of emails or account IDs, or pick from the site's deactivated users."
        />
    }
}

#[component]
pub fn PreviewPage() -> impl IntoView {
    view! {
        <StepIntro
            title="Preview"
            text="Every row of your list, the account it matched, and whether it will be deleted and why."
        />
    }
}

#[component]
pub fn RunPage() -> impl IntoView {
    view! {
        <StepIntro
            title="Run"
            text="Results appear here as each user is processed. The run continues if you close this tab."
        />
    }
}

#[component]
pub fn History() -> impl IntoView {
    view! { <StepIntro title="History" text="Past runs for your team, with their reports." /> }
}

#[component]
pub fn NotFound() -> impl IntoView {
    view! {
        <StepIntro
            title="Page not found"
            text="There is no page at this address. Use the steps above to find your way."
        />
    }
}
