//! The ways in: signing in (password or single sign-on), the first owner's setup, joining a
//! team from an invitation, and a password reset from a link.

use super::{new_person_fields, password_fields};
use super::{query_value, ProblemNote, SessionNotice};
use crate::api::link_info;
use crate::pages::parts::{error_text, ErrorBox};
use crate::team::{AccountProblem, LinkInfo, Role};
use crate::Named;
use leptos::prelude::*;

#[component]
pub fn SignIn() -> impl IntoView {
    let next = query_value("next");
    view! {
        <section class="card narrow" aria-labelledby="sign-in-heading">
            <h1 id="sign-in-heading">"Sign in to Offboard"</h1>
            <ProblemNote />
            <SessionNotice />
            <form method="post" action="/sign-in" class="form">
                <input type="hidden" name="next" value=next />
                <div class="field">
                    <label for="email">"Email"</label>
                    <input id="email" name="email" type="email" required autocomplete="username" autofocus />
                </div>
                <div class="field">
                    <label for="password">"Password"</label>
                    <input id="password" name="password" type="password" required autocomplete="current-password" />
                </div>
                <button type="submit" class="button primary">"Sign in"</button>
            </form>
            <SsoChoice />
            <p class="hint">
                "Forgot your password? Ask a console owner for a reset link. New here? Ask a team owner for an invitation."
            </p>
        </section>
    }
}

/// The single sign-on button, when the console has a company sign-in service configured.
#[component]
fn SsoChoice() -> impl IntoView {
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
                            <p class="or">"or"</p>
                            <p>
                                // rel=external: a server route, not a page of the app (the
                                // router would otherwise look for a page there).
                                <a class="button" href="/sign-in/sso" rel="external" data-testid="sso">
                                    {format!("Sign in with {label}")}
                                </a>
                            </p>
                        }
                    })
            }}
        </Suspense>
    }
}

/// What a one-time link's page shows while the link is being checked, when it no longer
/// works, or its form.
fn with_link<V: IntoView + 'static>(
    purpose: &'static str,
    form: impl Fn(String, LinkInfo) -> V + Send + Sync + 'static,
) -> impl IntoView {
    let code = query_value("code");
    let info = Resource::new(code, move |code| link_info(purpose.to_string(), code));
    view! {
        <Suspense fallback=|| view! { <p>"Checking the link…"</p> }>
            {move || {
                info.get()
                    .map(|answer| match answer {
                        Ok(found) if found.valid => form(code(), found).into_any(),
                        Ok(_) => {
                            view! {
                                <p role="alert" class="error" data-testid="link-invalid">
                                    {AccountProblem::LinkInvalid.words()}
                                </p>
                            }
                                .into_any()
                        }
                        Err(e) => view! { <ErrorBox message=error_text(&e) /> }.into_any(),
                    })
            }}
        </Suspense>
    }
}

#[component]
pub fn Setup() -> impl IntoView {
    view! {
        <section class="card narrow" aria-labelledby="setup-heading">
            <h1 id="setup-heading">"Create the first owner account"</h1>
            <p>
                "You will own this console: you create teams, invite their owners, and can give anyone a password-reset link."
            </p>
            <ProblemNote />
            <SessionNotice />
            {with_link(
                "setup",
                |code, _| {
                    view! {
                        <form method="post" action="/setup" class="form">
                            <input type="hidden" name="code" value=code />
                            {new_person_fields()}
                            <button type="submit" class="button primary">"Create my account"</button>
                        </form>
                    }
                },
            )}
        </section>
    }
}

#[component]
pub fn Join() -> impl IntoView {
    view! {
        <section class="card narrow" aria-labelledby="join-heading">
            <h1 id="join-heading">"Join a team"</h1>
            <ProblemNote />
            <SessionNotice />
            {with_link(
                "invitation",
                |code, info| {
                    let team = info.team_name.clone().unwrap_or_default();
                    let role = info.role.unwrap_or(Role::Viewer);
                    let intro = format!(
                        "You are invited to {team} as {0}: {0}s may {1}.",
                        role.key(),
                        role.allows(),
                    );
                    let sign_in = format!(
                        "/sign-in?next={}",
                        crate::pages::preview::encode(format!("/join?code={code}")),
                    );
                    let invited = info.email.clone().unwrap_or_default();
                    match info.signed_in_as {
                        Some(email) if email == invited => {
                            view! {
                                <p data-testid="invitation">{intro}</p>
                                <form method="post" action="/join" class="form">
                                    <input type="hidden" name="code" value=code />
                                    <button type="submit" class="button primary">
                                        {format!("Join {team} as {email}")}
                                    </button>
                                </form>
                            }
                                .into_any()
                        }
                        Some(email) => {
                            view! {
                                <p data-testid="invitation">{intro}</p>
                                <p role="alert" class="error" data-testid="invitation-other-email">
                                    {format!(
                                        "This invitation is for {invited}, and you are signed in as \
                                         {email}. Only {invited} can accept it: sign out and open the \
                                         link again, or ask the team's owner for an invitation for \
                                         {email}.",
                                    )}
                                </p>
                                <form method="post" action="/sign-out">
                                    <button type="submit" class="button">"Sign out"</button>
                                </form>
                            }
                                .into_any()
                        }
                        None => {
                            view! {
                                <p data-testid="invitation">{intro}</p>
                                <p>
                                    "Already have an account here with "
                                    <strong>{invited.clone()}</strong>
                                    "? "
                                    <a href=sign_in>"Sign in first"</a>
                                    ", then open this link again."
                                </p>
                                <form method="post" action="/join" class="form">
                                    <input type="hidden" name="code" value=code />
                                    <div class="field">
                                        <label for="name">"Your name"</label>
                                        <input id="name" name="name" type="text" required maxlength="100" autocomplete="name" />
                                    </div>
                                    <div class="field">
                                        <label for="email">"Your work email"</label>
                                        <input
                                            id="email"
                                            name="email"
                                            type="email"
                                            value=invited.clone()
                                            readonly
                                            autocomplete="email"
                                        />
                                        <p class="hint">"The invitation was made for this address: only it can join."</p>
                                    </div>
                                    {password_fields("Choose a password")}
                                    <button type="submit" class="button primary">"Create my account and join"</button>
                                </form>
                            }
                                .into_any()
                        }
                    }
                },
            )}
        </section>
    }
}

#[component]
pub fn Reset() -> impl IntoView {
    view! {
        <section class="card narrow" aria-labelledby="reset-heading">
            <h1 id="reset-heading">"Choose a new password"</h1>
            <ProblemNote />
            <SessionNotice />
            {with_link(
                "reset",
                |code, _| {
                    view! {
                        <form method="post" action="/reset" class="form">
                            <input type="hidden" name="code" value=code />
                            {password_fields("New password")}
                            <button type="submit" class="button primary">"Save and sign in"</button>
                        </form>
                    }
                },
            )}
        </section>
    }
}
