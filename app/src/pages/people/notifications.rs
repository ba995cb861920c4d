//! The Team page's notifications section (owners only): where the team's events go (a webhook
//! for Slack, Microsoft Teams or any signed receiver), its signing secret shown once, a test
//! message, and the delivery log.

use crate::api::webhook_page;
use crate::pages::parts::{error_text, ErrorBox};
use crate::pages::times::When;
use crate::team::{DeliveryView, WebhookPage, WebhookView};
use leptos::prelude::*;

/// A card of its own below the team; nothing at all for members who are not owners.
#[component]
pub fn TeamNotifications() -> impl IntoView {
    let page = Resource::new(|| (), |_| webhook_page());
    view! {
        <Suspense fallback=|| ()>
            {move || {
                page.get()
                    .map(|answer| match answer {
                        Ok(Some(page)) => notifications_view(page).into_any(),
                        Ok(None) => ().into_any(),
                        Err(e) => view! { <ErrorBox message=error_text(&e) /> }.into_any(),
                    })
            }}
        </Suspense>
    }
}

fn notifications_view(page: WebhookPage) -> impl IntoView {
    view! {
        <section class="card" id="notifications" aria-labelledby="notifications-heading">
            <h2 id="notifications-heading">"Notifications"</h2>
            <p>
                "Offboard can tell your team's chat or automation tool when someone asks for approval, when a run is approved or declined, when a run ends, and when an invitation is accepted. Each message has counts and a link, never the list of users."
            </p>
            {page.new_secret.map(secret_view)}
            {match page.webhook {
                Some(webhook) => saved_view(webhook).into_any(),
                None => view! { <p data-testid="webhook-state">"No webhook yet: nothing is sent."</p> }.into_any(),
            }}
            <form method="post" action="/team/webhook" class="form">
                <div class="field">
                    <label for="webhook-address">"Webhook address"</label>
                    <input
                        id="webhook-address"
                        name="address"
                        type="url"
                        required
                        autocomplete="off"
                        placeholder="https://hooks.slack.com/services/…"
                        aria-describedby="webhook-address-hint"
                    />
                    <p class="hint" id="webhook-address-hint">
                        "A Slack incoming webhook, a Microsoft Teams workflow webhook, or any https address that accepts a signed JSON event. Saving a new address replaces the old one and makes a new signing secret."
                    </p>
                </div>
                <button type="submit" class="button">"Save webhook address"</button>
            </form>
            {log_view(page.deliveries)}
        </section>
    }
}

/// The signing secret just made: the only time it is shown.
fn secret_view(secret: String) -> impl IntoView {
    view! {
        <div class="notice" role="status" data-testid="webhook-secret">
            <p>"Signing secret for this webhook:"</p>
            <p><code data-testid="webhook-secret-value">{secret}</code></p>
            <p class="hint">
                "Copy it now: it is not shown again. A receiver of your own checks each message's X-Offboard-Signature header with it; Slack and Microsoft Teams do not need it."
            </p>
        </div>
    }
}

fn saved_view(webhook: WebhookView) -> impl IntoView {
    view! {
        <p data-testid="webhook-state">
            "Messages go to " <strong>{webhook.address}</strong> ", as " {webhook.receiver}
            ". Saved by " {webhook.saved_by} " " <When at=webhook.saved_at /> "."
        </p>
        <div class="actions">
            <form method="post" action="/team/webhook/test" class="inline">
                <button type="submit" class="button">"Send a test message"</button>
            </form>
            <form method="post" action="/team/webhook/remove" class="inline">
                <button type="submit" class="button danger">"Remove webhook"</button>
            </form>
        </div>
    }
}

fn log_view(deliveries: Vec<DeliveryView>) -> impl IntoView {
    if deliveries.is_empty() {
        return view! { <p class="hint">"Nothing has been sent yet."</p> }.into_any();
    }
    view! {
        <div class="table-wrap">
            <table class="table stack" data-testid="delivery-log">
                <caption>"Delivery log (newest first)"</caption>
                <thead>
                    <tr>
                        <th scope="col">"When"</th>
                        <th scope="col">"What"</th>
                        <th scope="col">"To"</th>
                        <th scope="col">"Result"</th>
                    </tr>
                </thead>
                <tbody>
                    {deliveries
                        .into_iter()
                        .map(|d| {
                            view! {
                                <tr>
                                    <td data-label="When"><When at=d.made_at /></td>
                                    <td data-label="What">{d.what} " (" {d.by} ")"</td>
                                    <td data-label="To">{d.to}</td>
                                    <td data-label="Result">
                                        <strong>{d.state}</strong>
                                        {(!d.detail.is_empty()).then(|| format!(": {}", d.detail))}
                                    </td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}
