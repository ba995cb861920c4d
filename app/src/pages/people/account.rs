//! The Account page: who you are, your teams, your password, your email choices and your
//! sessions.

use super::email_choices::EmailChoicesForm;
use super::password_fields;
use super::{ProblemNote, SessionNotice};
use crate::api::whoami;
use crate::pages::parts::{error_text, ErrorBox};
use crate::Named;
use leptos::prelude::*;

#[component]
pub fn Account() -> impl IntoView {
    let me = Resource::new(|| (), |_| whoami());
    view! {
        <section class="card" aria-labelledby="account-heading">
            <h1 id="account-heading">"Your account"</h1>
            <ProblemNote />
            <SessionNotice />
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || {
                    me.get()
                        .map(|answer| match answer {
                            Ok(Some(me)) => account_view(me).into_any(),
                            Ok(None) => view! { <p>"You are not signed in."</p> }.into_any(),
                            Err(e) => view! { <ErrorBox message=error_text(&e) /> }.into_any(),
                        })
                }}
            </Suspense>
        </section>
    }
}

fn account_view(me: crate::team::SignedInView) -> impl IntoView {
    let current = me.team.as_ref().map(|t| t.id);
    let teams = me.teams.clone();
    view! {
        <p data-testid="signed-in-as">{format!("Signed in as {} ({})", me.name, me.email)}</p>
        {if teams.is_empty() {
            view! {
                <p class="error" role="alert" data-testid="no-team">
                    "You are not a member of any team yet. Ask a team owner for an invitation link."
                </p>
            }
                .into_any()
        } else {
            view! {
                <h2>"Your teams"</h2>
                <form method="post" action="/account/team" class="form inline">
                    <label for="team">"Show the console for"</label>
                    <select id="team" name="team">
                        {teams
                            .into_iter()
                            .map(|t| {
                                let selected = Some(t.id) == current;
                                view! {
                                    <option value=t.id.get().to_string() selected=selected>
                                        {format!("{} ({})", t.name, t.role.key())}
                                    </option>
                                }
                            })
                            .collect_view()}
                    </select>
                    <button type="submit" class="button">"Switch"</button>
                </form>
            }
                .into_any()
        }}
        {me
            .console_owner
            .then(|| {
                view! {
                    <p>
                        <a href="/teams">"Teams of this console"</a>
                        " (you are a console owner)"
                    </p>
                }
            })}
        {me
            .has_password
            .then(|| {
                view! {
                    <h2>"Change your password"</h2>
                    <form method="post" action="/account/password" class="form">
                        <div class="field">
                            <label for="current">"Current password"</label>
                            <input id="current" name="current" type="password" required autocomplete="current-password" />
                        </div>
                        {password_fields("New password")}
                        <button type="submit" class="button">"Change password"</button>
                    </form>
                }
            })}
        {me.has_password.then(|| view! { <LinkSignOn /> })}
        <EmailChoicesForm />
        <h2>"Sign out"</h2>
        <div class="actions">
            <form method="post" action="/sign-out">
                <button type="submit" class="button">"Sign out"</button>
            </form>
            <form method="post" action="/account/sign-out-everywhere">
                <button type="submit" class="button danger">"Sign out everywhere"</button>
            </form>
        </div>
        <p class="hint">"Sign out everywhere ends your sessions on every browser and device."</p>
    }
}

/// For a password account on a console with single sign-on: link the company's sign-in to
/// this account (signed in to both), so it opens this account from then on.
#[component]
fn LinkSignOn() -> impl IntoView {
    let options = Resource::new(|| (), |_| crate::api::sign_in_options());
    view! {
        <Suspense fallback=|| ()>
            {move || {
                options
                    .get()
                    .and_then(Result::ok)
                    .and_then(|o| o.sso)
                    .map(|label| {
                        view! {
                            <h2>"Your company's sign-in"</h2>
                            <p class="hint">
                                "Link it to this account to sign in with it from now on. It must \
                                 say the same email as this account."
                            </p>
                            <p>
                                <a class="button" href="/sign-in/sso" rel="external" data-testid="link-sso">
                                    {format!("Link your company's sign-in ({label})")}
                                </a>
                            </p>
                        }
                    })
            }}
        </Suspense>
    }
}
