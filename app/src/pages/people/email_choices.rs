//! The Account page's email: confirming the address (a link mailed to it opens this page with
//! `?confirm=<code>`; the form here confirms) and which events reach the person by email.
//! Plain forms posted to `/account/confirm-email*` and `/account/email`, so they work before
//! the page's script has loaded.

use crate::api::email_choices;
use crate::pages::parts::{error_text, ErrorBox};
use crate::team::EmailChoices;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

#[component]
pub fn EmailChoicesForm() -> impl IntoView {
    let choices = Resource::new(|| (), |_| email_choices());
    view! {
        <Suspense fallback=|| ()>
            {move || {
                choices
                    .get()
                    .map(|answer| match answer {
                        Ok(Some(choices)) => choices_view(choices).into_any(),
                        Ok(None) => ().into_any(),
                        Err(e) => view! { <ErrorBox message=error_text(&e) /> }.into_any(),
                    })
            }}
        </Suspense>
    }
}

/// "Confirm your email address": with the code from a mailed link, the button that confirms;
/// else the button that mails a link. Shown only while the address is not proven and the
/// console can send mail.
fn confirm_view(email: String) -> impl IntoView {
    let code = use_query_map().with_untracked(|q| q.get("confirm").unwrap_or_default());
    view! {
        <h2 id="confirm-email">"Confirm your email address"</h2>
        <p class="hint">
            {format!(
                "Teams can give a membership to {email} before you join them. It reaches this \
                 account once you confirm that the address is yours."
            )}
        </p>
        {if code.is_empty() {
            view! {
                <form method="post" action="/account/confirm-email/send" class="form inline">
                    <button type="submit" class="button">"Email me a confirmation link"</button>
                </form>
            }
                .into_any()
        } else {
            view! {
                <form method="post" action="/account/confirm-email" class="form inline">
                    <input type="hidden" name="code" value=code />
                    <button type="submit" class="button primary">
                        "Confirm my email address"
                    </button>
                </form>
            }
                .into_any()
        }}
    }
}

fn choices_view(choices: EmailChoices) -> impl IntoView {
    let confirm =
        (choices.mail_on && !choices.confirmed).then(|| confirm_view(choices.email.clone()));
    let note = if choices.mail_on {
        format!(
            "Offboard emails {} about what concerns you, unless you turn it off here.",
            choices.email
        )
    } else {
        "This console does not send email yet (its administrator has not set up a mail \
         server). Your choices are kept for when it does."
            .to_string()
    };
    view! {
        {confirm}
        <h2 id="email-heading">"Email notifications"</h2>
        <p class="hint" data-testid="email-note">{note}</p>
        <form method="post" action="/account/email" class="form" data-testid="email-choices">
            <fieldset class="choice">
                <legend>"Email me when"</legend>
                {choices
                    .choices
                    .into_iter()
                    .map(|choice| {
                        let id = format!("email-{}", choice.event);
                        view! {
                            <div>
                                <input
                                    type="checkbox"
                                    id=id.clone()
                                    name=choice.event
                                    value="on"
                                    checked=choice.on
                                />
                                <label for=id>{choice.label}</label>
                            </div>
                        }
                    })
                    .collect_view()}
            </fieldset>
            <button type="submit" class="button">"Save email choices"</button>
        </form>
    }
}
