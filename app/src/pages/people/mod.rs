//! Signing in and the people screens: sign-in, the first owner's setup, joining a team from an
//! invitation, a password reset, the Account page, the Team page (members, invitations) and
//! the console owner's Teams page. Every form is a plain HTML form posted to the server
//! (`server/src/http/accounts.rs`), so it works before the page's script has loaded.
//!
//! One file a screen family: [`ways_in`] (sign-in, setup, joining, reset), [`account`],
//! [`team`] (members, invitations, settings) and [`teams`] (the console owner's list); this
//! file holds the pieces they share (notices, password fields, a link shown once).

mod account;
mod email_choices;
mod notifications;
mod retention;
mod team;
mod teams;
mod ways_in;

pub use account::Account;
pub use team::Team;
pub use teams::Teams;
pub use ways_in::{Join, Reset, Setup, SignIn};

use super::parts::ErrorBox;
use super::times::When;
use crate::api::account_notice;
use crate::team::{AccountProblem, NewLink, MIN_PASSWORD_CHARS};
use crate::Named;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

/// A query value of the current address ("" when absent).
fn query_value(key: &'static str) -> impl Fn() -> String + Copy {
    let query = use_query_map();
    move || query.with(|q| q.get(key)).unwrap_or_default()
}

/// The words for `?problem=…`, if the address carries a known code. "done" is said by
/// [`SessionNotice`], which has the words saying what was done.
#[component]
fn ProblemNote() -> impl IntoView {
    let code = query_value("problem");
    move || {
        AccountProblem::from_key(&code())
            .filter(|p| *p != AccountProblem::Done)
            .map(|p| {
                let class = if p.is_success() { "notice" } else { "error" };
                view! {
                    <p role="alert" class=class data-testid="problem">
                        {p.words()}
                    </p>
                }
            })
    }
}

/// Words a form left in the session, shown once: why it was refused, or what it did ("Done."
/// when the address says done and the words were lost).
#[component]
fn SessionNotice() -> impl IntoView {
    session_notice(Resource::new(|| (), |_| account_notice()))
}

/// The words a form left in the session, shown once: the resource reading them must be made
/// once per page (the words are taken as they are read), so a page that renders its body again
/// when its data arrives makes it outside that body and passes it in.
type NoticeResource = Resource<Result<(Option<String>, Option<String>), ServerFnError>>;

fn session_notice(notice: NoticeResource) -> impl IntoView {
    let code = query_value("problem");
    view! {
        <Suspense fallback=|| ()>
            {move || {
                let (refused, done) = notice.get().and_then(Result::ok).unwrap_or_default();
                let done = done.or_else(|| {
                    (AccountProblem::from_key(&code()) == Some(AccountProblem::Done))
                        .then(|| AccountProblem::Done.words().to_string())
                });
                view! {
                    {refused.map(|message| view! { <ErrorBox message /> })}
                    {done.map(|words| view! {
                        <p role="status" class="notice" data-testid="done">{words}</p>
                    })}
                }
            }}
        </Suspense>
    }
}

fn password_fields(label: &'static str) -> impl IntoView {
    view! {
        <div class="field">
            <label for="password">{label}</label>
            <input
                id="password"
                name="password"
                type="password"
                required
                minlength=MIN_PASSWORD_CHARS
                autocomplete="new-password"
            />
            <p class="hint">
                {format!("At least {MIN_PASSWORD_CHARS} characters; a few words together work well.")}
            </p>
        </div>
        <div class="field">
            <label for="again">"The same password again"</label>
            <input id="again" name="again" type="password" required autocomplete="new-password" />
        </div>
    }
}

fn new_person_fields() -> impl IntoView {
    view! {
        <div class="field">
            <label for="name">"Your name"</label>
            <input id="name" name="name" type="text" required maxlength="100" autocomplete="name" />
        </div>
        <div class="field">
            <label for="email">"Your work email"</label>
            <input id="email" name="email" type="email" required autocomplete="email" />
        </div>
        {password_fields("Choose a password")}
    }
}

/// A link just made, shown once with a note to pass it on privately.
fn new_link_view(link: NewLink) -> impl IntoView {
    view! {
        <div class="notice" role="status" data-testid="new-link">
            <p>{link.what}</p>
            <p>
                <code data-testid="new-link-url">{link.url}</code>
            </p>
            <p class="hint">
                "Send it privately; it works once, until "
                <When at=link.expires />
                ". It is not shown again."
            </p>
        </div>
    }
}
