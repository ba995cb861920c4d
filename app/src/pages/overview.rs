//! The start screen for an admin: is a site connected and answering, how did the last runs
//! end, and what to do next. (The console's own health is for operators: `/healthz` and logs.)

use super::parts::{action_words, state_words};
use super::parts::{error_text, users, ErrorBox, OutcomeBar, PlainMessage};
use super::preview::encode;
use super::requests::ApprovalRequests;
use super::times::When;
use super::waiting::Waiting;
use crate::api::{check_connection, list_jobs, load_connection};
use crate::backend::{ConnectionView, Diagnosis, JobView};
use crate::team::Role;
use leptos::prelude::*;

/// Runs shown on the start screen; History has the rest.
const RECENT_RUNS: usize = 3;

/// The one thing to do next, as the button's words and its address.
pub fn next_step(
    connection: &ConnectionView,
    diagnosis: Option<&Diagnosis>,
    runs: &[JobView],
    may_run: bool,
) -> (String, String) {
    if let Some(active) = runs.iter().find(|j| !j.state.has_ended()) {
        return (
            "Follow the run in progress".into(),
            format!("/run?id={}", encode(&active.id)),
        );
    }
    // A viewer may not connect, choose or start: the way on is what they may read.
    if !may_run {
        return ("See the runs in History".into(), "/history".into());
    }
    if !connection.token_saved {
        return ("Connect your site".into(), "/connect".into());
    }
    match diagnosis {
        Some(d) if !d.ok => ("Fix the connection".into(), "/connect".into()),
        _ => ("Choose users to remove".into(), "/choose".into()),
    }
}

#[component]
pub fn Overview() -> impl IntoView {
    let recheck = Action::new(|_: &()| check_connection());
    let me = Resource::new(|| (), |_| crate::api::whoami());
    let connection = Resource::new(|| (), |_| load_connection());
    let diagnosis = Resource::new(move || recheck.version().get(), |_| check_connection());
    let runs = Resource::new(
        || (),
        |_| async move {
            let mut jobs = list_jobs().await?;
            jobs.sort_by(|a, b| b.created_at.cmp(&a.created_at));
            Ok::<_, ServerFnError>(jobs)
        },
    );
    view! {
        <section class="card" aria-labelledby="overview-heading">
            <h1 id="overview-heading">"Offboard"</h1>
            <p class="lead">
                "Remove people who left from your Stack Internal site, safely: you see exactly who will be deleted before anything happens, and keep a record of every result."
            </p>
            <Transition fallback=|| view! { <p>"Looking at your site…"</p> }>
                {move || {
                    let conn = connection.get()?.ok()?;
                    let diag = diagnosis.get().and_then(Result::ok);
                    let jobs = runs.get().and_then(Result::ok).unwrap_or_default();
                    let role = me.get()?.ok().flatten().and_then(|me| me.team).map(|t| t.role);
                    let may_run = role.is_none_or(|r| r >= Role::Operator);
                    let (label, href) = next_step(&conn, diag.as_ref(), &jobs, may_run);
                    Some(view! {
                        {(!may_run).then(|| view! {
                            <p data-testid="role-note">
                                "You are a viewer in this team: you can follow runs and download their reports, but not connect the site, choose users or start a run. A team owner can make you an operator."
                            </p>
                        })}
                        <p>
                            // rel=external: History is served whole by the server.
                            <a
                                class="button primary"
                                rel=(href == "/history").then_some("external")
                                href=href
                                data-testid="next-step"
                            >
                                {label}
                            </a>
                        </p>
                    })
                }}
            </Transition>
        </section>
        <Waiting />
        <ApprovalRequests />
        <section class="card" aria-labelledby="site-heading">
            <h2 id="site-heading">"Your site"</h2>
            <Transition fallback=|| view! { <p>"Checking the connection…"</p> }>
                {move || {
                    let conn = connection.get().map(|r| r.map_err(|e| error_text(&e)));
                    let diag = diagnosis.get();
                    match (conn, diag) {
                        (Some(Err(message)), _) => view! { <ErrorBox message /> }.into_any(),
                        (Some(Ok(c)), _) if !c.token_saved => {
                            view! {
                                <p data-testid="site-status">
                                    "No site is connected yet. " <a href="/connect">"Connect your site"</a>
                                    " with its address and SCIM token to start."
                                </p>
                            }
                                .into_any()
                        }
                        (Some(Ok(c)), Some(d)) => {
                            let site = c.site_url.unwrap_or_default();
                            let verdict = match d {
                                Ok(d) if d.ok => {
                                    let text = match d.user_count {
                                        Some(n) => format!("{site} is connected and answering: it lists {}.", users(n as u64)),
                                        None => format!("{site} is connected and answering."),
                                    };
                                    view! { <p class="ok" role="status" data-testid="site-status">{text}</p> }.into_any()
                                }
                                Ok(d) => view! { <div class="error" role="alert" data-testid="site-status">{format!("{site}: ")}<PlainMessage message=d.message /> " " <a href="/connect">"Check the connection settings"</a></div> }.into_any(),
                                Err(e) => view! { <ErrorBox message=error_text(&e) /> }.into_any(),
                            };
                            view! {
                                {verdict}
                                <button
                                    type="button"
                                    class="button"
                                    disabled=move || recheck.pending().get()
                                    on:click=move |_| {
                                        recheck.dispatch(());
                                    }
                                >
                                    "Check the connection again"
                                </button>
                            }
                                .into_any()
                        }
                        _ => view! { <p>"Checking the connection…"</p> }.into_any(),
                    }
                }}
            </Transition>
        </section>
        <section class="card" aria-labelledby="recent-heading">
            <h2 id="recent-heading">"Last runs"</h2>
            <Transition fallback=|| view! { <p>"Loading the last runs…"</p> }>
                {move || {
                    runs.get()
                        .map(|r| match r {
                            Err(e) => view! { <ErrorBox message=error_text(&e) /> }.into_any(),
                            Ok(list) if list.is_empty() => {
                                view! { <p>"No run yet. The runs you start appear here with how they ended."</p> }.into_any()
                            }
                            Ok(list) => {
                                let items = list
                                    .into_iter()
                                    .take(RECENT_RUNS)
                                    .map(|j| view! { <RecentRun job=j /> })
                                    .collect_view();
                                view! {
                                    <ul class="recent-runs">{items}</ul>
                                    <p><a href="/history" rel="external">"See every run in History"</a></p>
                                }
                                    .into_any()
                            }
                        })
                }}
            </Transition>
        </section>
        <section class="card" aria-labelledby="how-heading">
            <h2 id="how-heading">"How it works"</h2>
            <ol class="path">
                <li>"Connect your site with its SCIM token."</li>
                <li>"Choose users: upload a CSV of emails or account IDs, or pick deactivated users."</li>
                <li>"Preview every row and why it will or will not be deleted."</li>
                <li>"Type the confirmation phrase; watch each result arrive."</li>
                <li>"Download the report for your records or for Stack support."</li>
            </ol>
        </section>
    }
}

/// One past run: when, what, how it ended, as a bar.
#[component]
fn RecentRun(job: JobView) -> impl IntoView {
    let title = format!(
        "{} · {} · {} · ",
        action_words(job.action),
        users(job.total),
        state_words(job.state),
    );
    view! {
        <li>
            <a href=format!("/run?id={}", encode(&job.id))>{title}<When at=job.created_at.clone() /></a>
            <OutcomeBar counts=job.counts total=job.total action=job.action />
        </li>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Action, DiagnosisKind, JobState};

    fn job(id: &str, state: JobState) -> JobView {
        JobView {
            id: id.into(),
            created_at: "2026-11-28T12:00:00Z".into(),
            created_by: "me@example.com".into(),
            site_url: "https://acme.stackenterprise.co".into(),
            action: Action::Delete,
            state,
            reason: None,
            started_at: None,
            finished_at: None,
            total: 3,
            done: 1,
            counts: vec![],
            approved_by: None,
            undo: None,
        }
    }

    fn connected() -> ConnectionView {
        ConnectionView {
            token_saved: true,
            ..Default::default()
        }
    }

    fn verdict(ok: bool) -> Diagnosis {
        Diagnosis {
            ok,
            kind: if ok {
                DiagnosisKind::Ok
            } else {
                DiagnosisKind::BadToken
            },
            message: String::new(),
            user_count: None,
        }
    }

    #[test]
    fn the_next_step_follows_where_the_admin_is() {
        let none = ConnectionView::default();
        assert_eq!(next_step(&none, None, &[], true).1, "/connect");
        assert_eq!(
            next_step(&connected(), Some(&verdict(false)), &[], true).0,
            "Fix the connection"
        );
        assert_eq!(
            next_step(&connected(), Some(&verdict(true)), &[], true).1,
            "/choose"
        );
        // While the check is still running, choosing users is the way on.
        assert_eq!(next_step(&connected(), None, &[], true).1, "/choose");
        let runs = [job("old", JobState::Finished), job("a b", JobState::Paused)];
        assert_eq!(
            next_step(&connected(), Some(&verdict(true)), &runs, true),
            (
                "Follow the run in progress".to_string(),
                "/run?id=a%20b".to_string()
            )
        );
        // A run in progress matters more than a connection that broke since it started.
        assert_eq!(
            next_step(&none, None, &runs, true).0,
            "Follow the run in progress"
        );
        // A viewer is led to what they may read, never to choosing users.
        assert_eq!(
            next_step(&connected(), Some(&verdict(true)), &[], false),
            (
                "See the runs in History".to_string(),
                "/history".to_string()
            )
        );
        assert_eq!(next_step(&none, None, &[], false).1, "/history");
        // A run in progress is theirs to follow too.
        assert_eq!(
            next_step(&none, None, &runs, false).0,
            "Follow the run in progress"
        );
        let ended = [job("x", JobState::Finished), job("y", JobState::Stopped)];
        assert_eq!(
            next_step(&connected(), Some(&verdict(true)), &ended, true).1,
            "/choose"
        );
    }
}
