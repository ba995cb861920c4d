//! "Waiting for you" on Overview: the requests this person may approve, their own requests,
//! the team's paused runs and the runs that ended with failures, each with its way on. The
//! header counts the same list (`SignedInView::waiting`).

use super::parts::{action_words, error_text, state_words, users, ErrorBox};
use super::preview::{approval_words, encode, PreviewAgain};
use super::times::{sentence, When};
use crate::api::waiting_for_you;
use crate::backend::{ApprovalRequestView, JobView, WaitingForYou};
use crate::model::ItemOutcome;
use crate::team::{ApprovalState, PreparedDeletionView};
use leptos::prelude::*;

/// The card's id: the header's count links to it.
pub const WAITING_ID: &str = "waiting-for-you";

#[component]
pub fn Waiting() -> impl IntoView {
    let waiting = Resource::new(|| (), |_| waiting_for_you());
    view! {
        <section class="card" id=WAITING_ID aria-labelledby="waiting-heading">
            <h2 id="waiting-heading">"Waiting for you"</h2>
            <Transition fallback=|| view! { <p>"Looking for what waits for you…"</p> }>
                {move || {
                    waiting
                        .get()
                        .map(|w| match w {
                            Err(e) => view! { <ErrorBox message=error_text(&e) /> }.into_any(),
                            Ok(w) if w.count() == 0 => {
                                view! { <p data-testid="nothing-waits">"Nothing waits for you right now."</p> }
                                    .into_any()
                            }
                            Ok(w) => view! { <Lists waiting=w /> }.into_any(),
                        })
                }}
            </Transition>
        </section>
    }
}

#[component]
fn Lists(waiting: WaitingForYou) -> impl IntoView {
    let WaitingForYou {
        to_approve,
        yours,
        to_decide,
        with_failures,
        prepared,
        deletions_due,
    } = waiting;
    view! {
        {(!prepared.is_empty()).then(|| view! {
            <h3>"Deletions prepared by the retention policy"</h3>
            <ul class="requests" data-testid="prepared-deletions">
                {prepared.into_iter().map(|p| view! { <Prepared deletion=p /> }).collect_view()}
            </ul>
        })}
        {(!to_approve.is_empty()).then(|| view! {
            <h3>"To approve"</h3>
            <ul class="requests">
                {to_approve.into_iter().map(|r| view! { <ToApprove request=r /> }).collect_view()}
            </ul>
        })}
        {(!yours.is_empty()).then(|| view! {
            <h3>"Your requests"</h3>
            <ul class="requests">
                {yours.into_iter().map(|r| view! { <Yours request=r /> }).collect_view()}
            </ul>
        })}
        {(!to_decide.is_empty()).then(|| view! {
            <h3>"Paused runs"</h3>
            <ul class="requests">
                {to_decide.into_iter().map(|j| view! { <RunItem job=j /> }).collect_view()}
            </ul>
        })}
        {(!with_failures.is_empty()).then(|| view! {
            <h3>"Runs that ended with failures"</h3>
            <ul class="requests">
                {with_failures.into_iter().map(|j| view! { <RunItem job=j /> }).collect_view()}
            </ul>
        })}
        {(!deletions_due.is_empty()).then(|| view! {
            <h3>"Deletions coming"</h3>
            <ul class="requests" data-testid="deletions-due">
                {deletions_due.into_iter().map(|d| view! { <DeletionDue due=d /> }).collect_view()}
            </ul>
        })}
    }
}

/// "Delete 3 users".
fn what(request: &ApprovalRequestView) -> String {
    format!("{} {}", action_words(request.action), users(request.users))
}

fn preview_href(request: &ApprovalRequestView) -> String {
    format!("/preview?id={}", encode(request.preview_id.as_str()))
}

/// Someone else's request: who asked, when, what, until when; the link to approve it.
#[component]
fn ToApprove(request: ApprovalRequestView) -> impl IntoView {
    let a = &request.approval;
    let asked = format!(
        "{} asks to {} (asked ",
        a.requested_by,
        what(&request).to_lowercase()
    );
    let (requested_at, expires_at) = (a.requested_at.clone(), a.expires_at.clone());
    view! {
        <li>
            <p>{asked}<When at=requested_at />"; the request expires "<When at=expires_at />")."</p>
            <p>
                <a class="button primary" href=preview_href(&request)>"Review and approve"</a>
            </p>
        </li>
    }
}

/// The person's own request: still waiting, or declined with the reason and a way on.
#[component]
fn Yours(request: ApprovalRequestView) -> impl IntoView {
    let (heading, words) = approval_words(&request.approval);
    let what = what(&request);
    let again = (request.approval.state == ApprovalState::Declined).then(|| {
        view! {
            <PreviewAgain
                preview_id=request.preview_id.to_string()
                label=format!("Preview again: {what}")
            />
        }
    });
    view! {
        <li>
            <p>
                <strong>{format!("{heading}: ")}</strong>
                <a href=preview_href(&request)>{what.clone()}</a>
            </p>
            <p>{sentence(words)}</p>
            {again}
        </li>
    }
}

/// A deletion the team's retention policy prepared: nobody is deleted until a person types
/// its phrase on the preview.
#[component]
fn Prepared(deletion: PreparedDeletionView) -> impl IntoView {
    let href = format!("/preview?id={}", encode(deletion.preview_id.as_str()));
    view! {
        <li>
            <p>
                <strong>{format!("Delete {}: ", users(deletion.users))}</strong>
                "prepared by the retention policy at "<When at=deletion.made_at />
                ". Nobody is deleted until you confirm it."
            </p>
            <p><a class="button primary" href=href>"Review the deletion"</a></p>
        </li>
    }
}

/// A paused run, or one that ended with failures: its state, counts, reason and its page.
#[component]
fn RunItem(job: JobView) -> impl IntoView {
    let failed = job
        .counts
        .iter()
        .filter(|(outcome, _)| *outcome == ItemOutcome::Failed)
        .map(|(_, n)| *n)
        .sum::<u64>();
    let title = format!(
        "{}: {} {}, started by {} at ",
        state_words(job.state),
        action_words(job.action),
        users(job.total),
        job.created_by,
    );
    let (started, started_again) = (job.created_at.clone(), job.created_at.clone());
    let counts = format!(
        "{} of {} done, {} failed.",
        job.done,
        users(job.total),
        failed
    );
    let href = format!("/run?id={}", encode(&job.id));
    view! {
        <li>
            <p><strong>{title}<When at=started /></strong></p>
            <p>{counts} {job.reason.map(|r| format!(" {r}"))}</p>
            <p><a href=href>"Open the run of "<When at=started_again /></a></p>
        </li>
    }
}

/// An undo window's coming deletion: the date, how many, and where to restore them (or the
/// preview that waits for a person at the date).
#[component]
fn DeletionDue(due: crate::backend::DeletionDueView) -> impl IntoView {
    let (text, href, link) = match &due.waiting_preview {
        Some(preview) => (
            format!(
                "The deletion date {} came: {} to confirm again.",
                due.delete_on,
                users(due.users)
            ),
            format!("/preview?id={}", encode(preview.as_str())),
            "Open the preview",
        ),
        None => (
            format!(
                "{} will be deleted on {} unless restored.",
                users(due.users),
                due.delete_on
            ),
            format!("/run?id={}#undo-window", encode(due.job_id.as_str())),
            "Open the run to restore anyone",
        ),
    };
    view! {
        <li>
            <p><strong>{text}</strong></p>
            <p><a href=href>{link}</a></p>
        </li>
    }
}
