//! The Team page: its members and their roles, open invitations, and the team's settings.

use super::{new_link_view, session_notice, NoticeResource};
use super::{query_value, ProblemNote};
use crate::api::{account_notice, team_page, whoami};
use crate::pages::parts::{error_text, ErrorBox};
use crate::pages::times::When;
use crate::team::{removal_consent, Role};
use crate::Named;
use leptos::prelude::*;

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
        <super::retention::TeamRetention />
        <super::notifications::TeamNotifications />
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
                                    <td><When at=i.expires.clone() /></td>
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
            <p data-testid="undo-setting">
                {format!("Undo window: deletion after {} days.", settings.days_before_deletion)}
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
            <div class="field">
                <label for="days_before_deletion">"Days before deletion (\"Deactivate now, delete after N days\")"</label>
                <input id="days_before_deletion" name="days_before_deletion" type="number" min="1" max="90"
                    value=settings.days_before_deletion.to_string() />
            </div>
            <div class="field checkbox">
                <input id="ask_again_at_date" name="ask_again_at_date" type="checkbox" checked=settings.ask_again_at_date />
                <label for="ask_again_at_date">"Ask again at the date (the deletion waits for a person to confirm it)"</label>
            </div>
            <button type="submit" class="button">"Save settings"</button>
        </form>
    }
    .into_any()
}
