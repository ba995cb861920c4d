//! The Preview screen's last step: the confirm box with the typed phrase (or the request for
//! approval), and the approver's card with its decline form.

use super::super::parts::{users, ActionFeedback};
use super::{encode, run_button_text};
use crate::api::{request_approval, start_job};
use crate::backend::PreviewSummary;
use crate::confirm::{phrase_matches, phrase_problem};
use crate::model::Action as UserAction;
use crate::team::{ApprovalState, ApprovalView};
use leptos::prelude::*;
use leptos_router::hooks::use_navigate;

#[component]
pub(super) fn ConfirmCard(summary: PreviewSummary) -> impl IntoView {
    let count = summary.counts.selected;
    if summary.used {
        return view! {
            <section class="card" aria-labelledby="confirm-heading">
                <h2 id="confirm-heading">"Already run"</h2>
                <p>
                    "A run was already started from this preview; a preview runs only once. See it in "
                    <a href="/history" rel="external">"History"</a> ", or " <a href="/choose">"choose users again"</a> "."
                </p>
            </section>
        }
        .into_any();
    }
    if count == 0 {
        return view! {
            <section class="card" aria-labelledby="confirm-heading">
                <h2 id="confirm-heading">"Nothing to do"</h2>
                <p>"No row of this preview leads to a user that can be processed, so there is nothing to run."</p>
            </section>
        }
        .into_any();
    }
    // A request for approval this person cannot act on (their own, or one already decided)
    // replaces the phrase box; a request by someone else is approved by typing the phrase.
    if let Some(request) = summary.approval.clone() {
        if request.yours || request.state != ApprovalState::Awaiting {
            return view! { <ApprovalCard request preview_id=summary.id.to_string() /> }.into_any();
        }
    }
    let approving = summary.approval.clone();
    let asks_approval = summary.needs_approval && approving.is_none();
    let navigate = use_navigate();
    let phrase = summary.phrase.clone();
    let typed = RwSignal::new(String::new());
    let id = summary.id.to_string();
    let start = Action::new({
        let id = id.clone();
        move |typed: &String| start_job(id.clone(), typed.clone())
    });
    let ask = Action::new({
        let id = id.clone();
        move |typed: &String| request_approval(id.clone(), typed.clone())
    });
    Effect::new(move |_| {
        if let Some(Ok(job)) = start.value().get() {
            navigate(&format!("/run?id={}", encode(&job.id)), Default::default());
        }
    });
    let asked = move || ask.value().get().and_then(Result::ok);
    let warning = match summary.action {
        UserAction::Delete => format!(
            "Deleting up to {} cannot be undone: the accounts are removed for good and their posts are credited to a generic user.",
            users(count as u64)
        ),
        UserAction::Deactivate => format!(
            "Deactivating up to {} blocks their sign-in; you can reactivate them later from the site's admin settings.",
            users(count as u64)
        ),
    };
    // "Up to": the site may still refuse some users when the run reaches them (a community
    // creator, a user changed since the preview), and only then says so.
    let refusals = "The site may refuse some of them when the run reaches them (for example users who created a community); the results list each one.";
    let button_text = if asks_approval {
        "Ask a second operator to approve".to_string()
    } else {
        run_button_text(summary.action, count)
    };
    let pending = move || start.pending().get() || ask.pending().get();
    // Set once the admin tries to start (Enter or the button) with a phrase that does not
    // match yet: from then on the hint also says what is missing, not only what is wrong.
    let tried = RwSignal::new(false);
    let matches_phrase = {
        let phrase = phrase.clone();
        move || phrase_matches(&phrase, &typed.get())
    };
    let can_start = {
        let m = matches_phrase.clone();
        move || m() && !pending()
    };
    let problem = {
        let phrase = phrase.clone();
        move || phrase_problem(&phrase, &typed.get(), tried.get())
    };
    let form = view! {
        <section class="card confirm" aria-labelledby="confirm-heading">
            <h2 id="confirm-heading">"Confirm"</h2>
            {approving.clone().map(|request| view! {
                <p class="warning" role="status" data-testid="approval-request">
                    {format!(
                        "{} asked for this run at {} and needs a second operator. Check the counts and rows above; typing the phrase approves it and starts the run at once.",
                        request.requested_by,
                        request.requested_at,
                    )}
                </p>
            })}
            {asks_approval.then(|| view! {
                <p class="hint" data-testid="approval-needed">
                    "Your team needs a second operator for this run: typing the phrase asks them. The run starts when one of them opens this preview and types it too."
                </p>
            })}
            <p class="danger-text">{warning}</p>
            <p class="hint">{refusals}</p>
            <p>"To go ahead, type this phrase exactly: " <code data-testid="phrase">{phrase.clone()}</code></p>
            <form
                class="form"
                on:submit=move |ev| {
                    ev.prevent_default();
                    if matches_phrase() {
                        if start.pending().get_untracked() || ask.pending().get_untracked() {
                        } else if asks_approval {
                            ask.dispatch(typed.get_untracked());
                        } else {
                            start.dispatch(typed.get_untracked());
                        }
                    } else {
                        tried.set(true);
                    }
                }
            >
                <div class="field">
                    <label for="typed-phrase">"Type the phrase to confirm"</label>
                    <input
                        id="typed-phrase"
                        type="text"
                        autocomplete="off"
                        autocapitalize="characters"
                        spellcheck="false"
                        aria-describedby="phrase-hint"
                        prop:value=move || typed.get()
                        on:input=move |ev| typed.set(event_target_value(&ev))
                    />
                    // Polite and live: said after the admin pauses, never instead of the phrase.
                    <p id="phrase-hint" class="phrase-hint" aria-live="polite" data-testid="phrase-hint">
                        {problem}
                    </p>
                </div>
                // aria-disabled, not disabled: a disabled default button makes Enter do nothing
                // at all, where the admin should hear why the phrase is not accepted.
                <button
                    type="submit"
                    class=match summary.action {
                        UserAction::Delete => "button danger",
                        UserAction::Deactivate => "button primary",
                    }
                    aria-disabled=move || (!can_start()).to_string()
                >
                    {button_text}
                </button>
            </form>
            <ActionFeedback action=start working="Checking the site again and starting the run…" />
            <ActionFeedback action=ask working="Asking for approval…" />
            {approving.map(|request| view! {
                <DeclineForm preview_id=id.clone() own=request.yours />
            })}
        </section>
    };
    let preview_id = summary.id.to_string();
    // Once the request is made, its state replaces the phrase box.
    view! {
        {move || {
            asked()
                .map(|request| {
                    view! { <ApprovalCard request preview_id=preview_id.clone() /> }
                })
        }}
        <div hidden=move || asked().is_some()>{form}</div>
    }
    .into_any()
}

/// A request for approval this person cannot approve: their own (waiting, with a way to
/// withdraw it), or one that was declined or expired.
#[component]
fn ApprovalCard(request: ApprovalView, preview_id: String) -> impl IntoView {
    let words = match request.state {
        ApprovalState::Awaiting => format!(
            "Waiting for a second operator since {}. Ask another operator of your team to open this page and type the phrase; the request expires at {}.",
            request.requested_at, request.expires_at,
        ),
        ApprovalState::Declined => format!(
            "{} declined this run: {}",
            request.decided_by.clone().unwrap_or_default(),
            request.reason.clone().unwrap_or_default(),
        ),
        ApprovalState::Expired => "Nobody approved this run in time, so the request expired. Make a new preview to ask again.".to_string(),
        ApprovalState::Approved => format!(
            "{} approved this run.",
            request.decided_by.clone().unwrap_or_default()
        ),
    };
    let waiting = request.state == ApprovalState::Awaiting;
    view! {
        <section class="card confirm" aria-labelledby="approval-heading">
            <h2 id="approval-heading">"Awaiting approval"</h2>
            <p role="status" data-testid="approval-state">{words}</p>
            {waiting.then(|| view! { <DeclineForm preview_id own=request.yours /> })}
            {(!waiting).then(|| view! { <p><a href="/choose">"Choose users again"</a></p> })}
        </section>
    }
}

/// Declining a request (or withdrawing one's own) with a reason.
#[component]
fn DeclineForm(preview_id: String, own: bool) -> impl IntoView {
    let reason = RwSignal::new(String::new());
    let decline = Action::new(move |reason: &String| {
        crate::api::decline_approval(preview_id.clone(), reason.clone())
    });
    let label = if own {
        "Withdraw the request"
    } else {
        "Decline"
    };
    view! {
        <form
            class="form inline"
            on:submit=move |ev| {
                ev.prevent_default();
                decline.dispatch(reason.get_untracked());
            }
        >
            <label for="decline-reason">"Reason"</label>
            <input
                id="decline-reason"
                type="text"
                maxlength="500"
                prop:value=move || reason.get()
                on:input=move |ev| reason.set(event_target_value(&ev))
            />
            <button type="submit" class="button">{label}</button>
        </form>
        <ActionFeedback action=decline working="Saving…" />
        {move || decline.value().get().and_then(Result::ok).map(|_| view! {
            <p role="status" class="notice" data-testid="declined">"Done: the run will not start from this request."</p>
        })}
    }
}
