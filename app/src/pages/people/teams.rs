//! The console owner's Teams page: every team with its members and owners, a new team, and
//! password-reset links.

use super::new_link_view;
use super::{ProblemNote, SessionNotice};
use crate::api::console_teams;
use crate::pages::parts::{error_text, ErrorBox};
use leptos::prelude::*;

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
