//! The Account page's email choices: which events reach the signed-in person by email (a plain
//! form posted to `/account/email`, so it works before the page's script has loaded).

use crate::api::email_choices;
use crate::pages::parts::{error_text, ErrorBox};
use crate::team::EmailChoices;
use leptos::prelude::*;

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

fn choices_view(choices: EmailChoices) -> impl IntoView {
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
