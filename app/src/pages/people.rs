//! Signing in and the people screens: sign-in, the first owner's setup, joining a team from an
//! invitation, a password reset, the Account page, the Team page (members, invitations) and
//! the console owner's Teams page. Every form is a plain HTML form posted to the server
//! (`server/src/http/accounts.rs`), so it works before the page's script has loaded.

use super::parts::{error_text, ErrorBox};
use crate::api::{account_notice, console_teams, link_info, team_page, whoami};
use crate::team::{removal_consent, AccountProblem, LinkInfo, NewLink, Role, MIN_PASSWORD_CHARS};
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
                        super::preview::encode(format!("/join?code={code}")),
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

/// A link just made, shown once with a note to pass it on privately.
fn new_link_view(link: NewLink) -> impl IntoView {
    view! {
        <div class="notice" role="status" data-testid="new-link">
            <p>{link.what}</p>
            <p>
                <code data-testid="new-link-url">{link.url}</code>
            </p>
            <p class="hint">
                {format!(
                    "Send it privately; it works once, until {}. It is not shown again.",
                    link.expires,
                )}
            </p>
        </div>
    }
}

fn role_options(selected: Role) -> impl IntoView {
    Role::ALL
        .into_iter()
        .map(move |r| {
            view! {
                <option value=r.key() selected=r == selected>
                    {r.words()}
                </option>
            }
        })
        .collect_view()
}

#[component]
pub fn Team() -> impl IntoView {
    let page = Resource::new(|| (), |_| team_page());
    let me = Resource::new(|| (), |_| whoami());
    let notice: NoticeResource = Resource::new(|| (), |_| account_notice());
    let removing = query_value("remove");
    view! {
        <section class="card" aria-labelledby="team-heading">
            <Suspense fallback=|| view! { <p>"Loading the team…"</p> }>
                {move || {
                    let my_email = me.get().and_then(Result::ok).flatten().map(|m| m.email).unwrap_or_default();
                    page.get()
                        .map(|answer| match answer {
                            Ok(page) => team_view(page, &my_email, &removing(), notice).into_any(),
                            Err(e) => view! { <ErrorBox message=error_text(&e) /> }.into_any(),
                        })
                }}
            </Suspense>
        </section>
    }
}

/// The step between "Remove" and the removal: who, from which team, and what they lose, with a
/// box to tick (it works without script: the page is rendered whole by the server).
fn confirm_removal_view(
    member: &crate::team::MemberView,
    team: &str,
    yourself: bool,
) -> impl IntoView {
    let email = member.email.clone();
    let heading = if yourself {
        format!("Remove yourself from {team}?")
    } else {
        format!("Remove {email} from {team}?")
    };
    let what = format!(
        "{} is {} here and may {}. Removing {} takes that away at once; their past runs and reports stay.",
        email,
        member.role.words(),
        member.role.allows(),
        if yourself { "yourself" } else { "them" },
    );
    view! {
        <section id="confirm-remove" class="confirm-remove" aria-labelledby="confirm-remove-heading">
            <h2 id="confirm-remove-heading">{heading}</h2>
            <p>{what}</p>
            <form method="post" action="/team/members/remove" class="form">
                <input type="hidden" name="email" value=email.clone() />
                <div class="field checkbox">
                    <input id="confirm-remove-box" name="confirm" type="checkbox" value="yes" required />
                    <label for="confirm-remove-box">{removal_consent(&email, team, yourself)}</label>
                </div>
                <div class="member-actions">
                    <button type="submit" class="button danger">
                        {if yourself { "Remove myself".to_string() } else { format!("Remove {email} now") }}
                    </button>
                    <a class="button" href="/team">{format!("Keep {email}")}</a>
                </div>
            </form>
        </section>
    }
}

fn team_view(
    page: crate::team::TeamPage,
    my_email: &str,
    removing: &str,
    notice: NoticeResource,
) -> impl IntoView {
    let owner = page.team.role == Role::Owner;
    let invitations = page.invitations.clone();
    let team_name = page.team.name.clone();
    let is_me = |email: &str| !my_email.is_empty() && email.eq_ignore_ascii_case(my_email);
    // Only a member of this team is ever asked about: `?remove=` names nobody else.
    let confirm = owner
        .then(|| {
            page.members
                .iter()
                .find(|m| !removing.is_empty() && m.email.eq_ignore_ascii_case(removing.trim()))
        })
        .flatten()
        .map(|m| confirm_removal_view(m, &team_name, is_me(&m.email)));
    view! {
        <h1 id="team-heading">{page.team.name.clone()}</h1>
        <p>{format!("You are {} here: you may {}.", page.team.role.key(), page.team.role.allows())}</p>
        <ProblemNote />
        {session_notice(notice)}
        {confirm}
        {page.new_link.map(new_link_view)}
        <div class="table-wrap">
        <table class="table stack" data-testid="members">
            <caption>"Members"</caption>
            <thead>
                <tr>
                    <th scope="col">"Person"</th>
                    <th scope="col">"Role"</th>
                    <th scope="col">"Added by"</th>
                </tr>
            </thead>
            <tbody>
                {page
                    .members
                    .into_iter()
                    .map(|m| {
                        let who = match (&m.name, m.joined) {
                            (Some(name), true) => format!("{name} ({})", m.email),
                            _ => format!(
                                "{} (waits for them to sign in with your company's sign-in)",
                                m.email,
                            ),
                        };
                        let email = m.email.clone();
                        let remove_label = if is_me(&email) {
                            format!("Remove yourself ({email})")
                        } else {
                            format!("Remove {email}")
                        };
                        let role_cell = if owner {
                            view! {
                                <div class="member-actions">
                                    <form method="post" action="/team/members" class="inline">
                                        <input type="hidden" name="email" value=email.clone() />
                                        <label class="visually-hidden" for=format!("role-{email}")>
                                            {format!("Role of {email}")}
                                        </label>
                                        <select id=format!("role-{email}") name="role">
                                            {role_options(m.role)}
                                        </select>
                                        <button type="submit" class="button small">"Change"</button>
                                    </form>
                                    // Asks first: the removal itself is the form on the next page.
                                    <form method="get" action="/team#confirm-remove" class="inline">
                                        <input type="hidden" name="remove" value=email.clone() />
                                        <button type="submit" class="button small danger">{remove_label}</button>
                                    </form>
                                </div>
                            }
                                .into_any()
                        } else {
                            view! { <span>{m.role.words()}</span> }.into_any()
                        };
                        view! {
                            <tr>
                                <td data-label="Person">{who}</td>
                                <td data-label="Role">{role_cell}</td>
                                <td data-label="Added by">{m.added_by}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
        </div>
        <h2>"Two-person approval"</h2>
        {settings_view(page.settings, owner)}
        {owner
            .then(|| {
                view! {
                    <h2>"Invite someone"</h2>
                    <p class="hint">
                        "An invitation is for one person: only an account with the email you enter can accept it."
                    </p>
                    <form method="post" action="/team/invitations" class="form inline">
                        <label for="invite-email">"Their email"</label>
                        <input id="invite-email" name="email" type="email" required />
                        <label for="invite-role">"Invite as"</label>
                        <select id="invite-role" name="role">
                            {role_options(Role::Operator)}
                        </select>
                        <button type="submit" class="button primary">"Make an invitation link"</button>
                    </form>
                    {invitations_view(invitations.clone())}
                    <h2>"Add by email"</h2>
                    <p class="hint">
                        "For colleagues who sign in through your company's sign-in service: they are members as soon as they sign in with it. An account with only a password does not take this up: invite it instead."
                    </p>
                    <form method="post" action="/team/members" class="form inline">
                        <label for="member-email">"Email"</label>
                        <input id="member-email" name="email" type="email" required />
                        <label for="member-role">"Their role"</label>
                        <select id="member-role" name="role">
                            {role_options(Role::Viewer)}
                        </select>
                        <button type="submit" class="button">"Add"</button>
                    </form>
                }
            })}
    }
}

/// The invitations that still open, each with "Revoke" (owners only).
fn invitations_view(invitations: Vec<crate::team::InvitationView>) -> impl IntoView {
    if invitations.is_empty() {
        return view! { <p class="hint" data-testid="no-invitations">"No invitation is open."</p> }
            .into_any();
    }
    view! {
        <div class="table-wrap">
            <table class="table" data-testid="invitations">
                <caption>"Open invitations"</caption>
                <thead>
                    <tr>
                        <th scope="col">"For"</th>
                        <th scope="col">"Role"</th>
                        <th scope="col">"Made by"</th>
                        <th scope="col">"Works until"</th>
                        <th scope="col">"Action"</th>
                    </tr>
                </thead>
                <tbody>
                    {invitations
                        .into_iter()
                        .map(|i| {
                            view! {
                                <tr>
                                    <td>{i.email.clone()}</td>
                                    <td>{i.role.words()}</td>
                                    <td>{i.made_by}</td>
                                    <td>{i.expires}</td>
                                    <td>
                                        <form method="post" action="/team/invitations/revoke" class="inline">
                                            <input type="hidden" name="id" value=i.id />
                                            <button type="submit" class="button small danger">
                                                {format!("Revoke the invitation for {}", i.email)}
                                            </button>
                                        </form>
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

/// When runs need a second operator: a form for owners, words for everyone else.
fn settings_view(settings: crate::team::TeamSettings, owner: bool) -> impl IntoView {
    use crate::team::ApprovalPolicy;
    let deactivations = if settings.approve_deactivations {
        "Deactivations need approval too."
    } else {
        "Deactivations (reversible) start without a second operator."
    };
    if !owner {
        return view! {
            <p data-testid="approval-setting">
                {format!("Delete runs need a second operator: {}. {deactivations}", settings.approval.words().to_lowercase())}
            </p>
        }
        .into_any();
    }
    view! {
        <form method="post" action="/team/settings" class="form">
            <div class="field">
                <label for="approval">"A delete run needs a second operator's approval"</label>
                <select id="approval" name="approval">
                    {ApprovalPolicy::ALL
                        .into_iter()
                        .map(|p| view! {
                            <option value=p.key() selected=p == settings.approval>{p.words()}</option>
                        })
                        .collect_view()}
                </select>
            </div>
            <div class="field checkbox">
                <input
                    id="approve_deactivations"
                    name="approve_deactivations"
                    type="checkbox"
                    checked=settings.approve_deactivations
                />
                <label for="approve_deactivations">"Deactivations need approval too"</label>
            </div>
            <button type="submit" class="button">"Save settings"</button>
        </form>
    }
    .into_any()
}

/// A team with no owner left: a console owner gives it one (nobody else can).
fn ownerless_view(team: i64, name: String) -> impl IntoView {
    let field = format!("owner-{team}");
    view! {
        <p class="error" data-testid="ownerless">"No owner"</p>
        <form method="post" action="/teams/owner" class="form inline">
            <input type="hidden" name="team" value=team.to_string() />
            <label for=field.clone()>{format!("Owner for {name} (email)")}</label>
            <input id=field name="email" type="email" required />
            <button type="submit" class="button small">"Make owner"</button>
        </form>
    }
}

#[component]
pub fn Teams() -> impl IntoView {
    let teams = Resource::new(|| (), |_| console_teams());
    view! {
        <section class="card" aria-labelledby="teams-heading">
            <h1 id="teams-heading">"Teams of this console"</h1>
            <ProblemNote />
            <SessionNotice />
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || {
                    teams
                        .get()
                        .map(|answer| match answer {
                            Ok((teams, link)) => {
                                view! {
                                    {link.map(new_link_view)}
                                    <div class="table-wrap">
                                    <table class="table" data-testid="teams">
                                        <thead>
                                            <tr>
                                                <th scope="col">"Team"</th>
                                                <th scope="col">"Members"</th>
                                                <th scope="col">"Owners"</th>
                                            </tr>
                                        </thead>
                                        <tbody>
                                            {teams
                                                .into_iter()
                                                .map(|t| {
                                                    let owners = if t.owners.is_empty() {
                                                        ownerless_view(t.id.get(), t.name.clone()).into_any()
                                                    } else {
                                                        view! { <span>{t.owners.join(", ")}</span> }.into_any()
                                                    };
                                                    view! {
                                                        <tr>
                                                            <td>{t.name}</td>
                                                            <td>{t.members}</td>
                                                            <td>{owners}</td>
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
                            Err(e) => view! { <ErrorBox message=error_text(&e) /> }.into_any(),
                        })
                }}
            </Suspense>
            <h2>"Create a team"</h2>
            <p class="hint">
                "You become its first owner: invite its owners from its Team page (switch to it on your Account page), then leave it if you like."
            </p>
            <form method="post" action="/teams" class="form inline">
                <label for="team-name">"Team name"</label>
                <input id="team-name" name="name" type="text" required maxlength="100" />
                <button type="submit" class="button primary">"Create team"</button>
            </form>
            <h2>"Password-reset link"</h2>
            <form method="post" action="/teams/reset-links" class="form inline">
                <label for="reset-email">"Email of the account"</label>
                <input id="reset-email" name="email" type="email" required />
                <button type="submit" class="button">"Make a reset link"</button>
            </form>
        </section>
    }
}
