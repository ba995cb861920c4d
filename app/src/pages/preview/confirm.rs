//! The Preview screen's last step: the confirm box with the typed phrase (or the request for
//! approval), and the approver's card with its decline form.

use super::super::parts::{users, ActionFeedback};
use super::super::times::{sentence, Piece, When};
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
    // A request made here, or declined here by the approver: its state replaces the phrase
    // box, so the page never shows a run button beside a request that can no longer start.
    let decided = RwSignal::new(None::<ApprovalView>);
    let asked = move || {
        decided
            .get()
            .or_else(|| ask.value().get().and_then(Result::ok))
    };
    let warning = match summary.action {
        UserAction::Delete => format!(
            "Deleting up to {} cannot be undone: the accounts are removed for good and their posts are credited to a generic user.",
            users(count as u64)
        ),
        UserAction::Deactivate => format!(
            "Deactivating up to {} blocks their sign-in; you can reactivate them later from the site's admin settings.",
            users(count as u64)
        ),
        UserAction::DeactivateThenDelete => format!(
            "Deactivating up to {} blocks their sign-in now. On {} Offboard deletes those still deactivated and unchanged, for good; until then the run's page restores anyone you choose.",
            users(count as u64),
            summary.delete_on.as_deref().unwrap_or("the date in the phrase")
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
                    {format!("{} asked for this run at ", request.requested_by)}
                    <When at=request.requested_at.clone() />
                    " and needs a second operator. Check the counts and rows above; typing the phrase approves it and starts the run at once."

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
                        UserAction::Delete | UserAction::DeactivateThenDelete => "button danger",
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
                <DeclineForm
                    preview_id=id.clone()
                    own=request.yours
                    on_decided=Callback::new(move |view| decided.set(Some(view)))
                />
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

/// The heading and the sentence a request's state is told in: the same words on the Preview
/// page (the requester's and the approver's), Overview and History. Times are pieces of
/// their own, shown in the reader's zone.
pub(crate) fn approval_words(request: &ApprovalView) -> (&'static str, Vec<Piece>) {
    let by = request.decided_by.as_deref().unwrap_or("Another operator");
    let text = |t: String| vec![Piece::Text(t)];
    match request.state {
        ApprovalState::Awaiting => (
            "Awaiting approval",
            vec![
                Piece::Text("Waiting for a second operator since ".into()),
                Piece::Time(request.requested_at.clone()),
                Piece::Text(format!(
                    " ({} asked); the request expires at ",
                    request.requested_by
                )),
                Piece::Time(request.expires_at.clone()),
                Piece::Text(".".into()),
            ],
        ),
        ApprovalState::Declined => (
            "Declined",
            text(format!(
                "{by} declined this run: {}. Nothing was run.",
                request
                    .reason
                    .as_deref()
                    .unwrap_or("no reason given")
                    .trim_end_matches('.'),
            )),
        ),
        ApprovalState::Expired => (
            "Request expired",
            text(
                "Nobody approved this run in time, so the request expired. Nothing was run."
                    .to_string(),
            ),
        ),
        ApprovalState::Approved => ("Approved", text(format!("{by} approved this run."))),
    }
}

/// A request for approval this person cannot approve: their own (waiting, with a way to
/// withdraw it), or one that was declined or expired (with a way to preview the same users
/// again). Withdrawing turns the card into the declined one in place.
#[component]
fn ApprovalCard(request: ApprovalView, preview_id: String) -> impl IntoView {
    let shown = RwSignal::new(request);
    move || {
        let request = shown.get();
        let (heading, words) = approval_words(&request);
        let waiting = request.state == ApprovalState::Awaiting;
        let ask_others = (waiting && request.yours)
            .then_some("Ask another operator of your team to open this page and type the phrase.");
        let preview_id = preview_id.clone();
        view! {
            <section class="card confirm" aria-labelledby="approval-heading">
                <h2 id="approval-heading">{heading}</h2>
                <p role="status" data-testid="approval-state">{sentence(words)}</p>
                {ask_others.map(|text| view! { <p class="hint">{text}</p> })}
                {if waiting {
                    view! {
                        <DeclineForm
                            preview_id
                            own=request.yours
                            on_decided=Callback::new(move |view| shown.set(view))
                        />
                    }
                        .into_any()
                } else {
                    view! {
                        <p>"Preview again to make a new preview of the same users, with the site as it is now."</p>
                        <PreviewAgain preview_id label="Preview again".to_string() />
                        <p><a href="/choose">"Choose other users"</a></p>
                    }
                        .into_any()
                }}
            </section>
        }
    }
}

/// "Preview again": a new preview of the same users (a fresh listing of the site), as a plain
/// form so it works on every page, with or without script (`POST /preview/again`).
#[component]
pub(crate) fn PreviewAgain(preview_id: String, label: String) -> impl IntoView {
    view! {
        <form class="form inline" method="post" action="/preview/again">
            <input type="hidden" name="preview" value=preview_id />
            <button type="submit" class="button primary" aria-label=label>"Preview again"</button>
        </form>
    }
}

/// Declining a request (or withdrawing one's own) with a reason; `on_decided` gets the
/// request as it stands after.
#[component]
fn DeclineForm(preview_id: String, own: bool, on_decided: Callback<ApprovalView>) -> impl IntoView {
    let reason = RwSignal::new(String::new());
    let decline = Action::new(move |reason: &String| {
        crate::api::decline_approval(preview_id.clone(), reason.clone())
    });
    Effect::new(move |_| {
        if let Some(Ok(view)) = decline.value().get() {
            on_decided.run(view);
        }
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
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::times::sentence_text;
    use crate::team::{ApprovalState, ApprovalView};

    fn approval_words(request: &ApprovalView) -> (&'static str, String) {
        let (heading, words) = super::approval_words(request);
        (heading, sentence_text(&words))
    }

    fn request(state: ApprovalState) -> ApprovalView {
        ApprovalView {
            state,
            requested_by: "Opal <opal@example.com>".into(),
            requested_at: "2026-12-07T12:00:00Z".into(),
            expires_at: "2026-12-08T12:00:00Z".into(),
            decided_by: Some("Olive <olive@example.com>".into()),
            reason: Some("Wrong list.".into()),
            yours: false,
        }
    }

    #[test]
    fn each_state_has_its_own_heading_and_never_reads_as_waiting_once_decided() {
        let (h, w) = approval_words(&request(ApprovalState::Declined));
        assert_eq!(h, "Declined");
        assert_eq!(
            w,
            "Olive <olive@example.com> declined this run: Wrong list. Nothing was run."
        );
        for state in [
            ApprovalState::Declined,
            ApprovalState::Expired,
            ApprovalState::Approved,
        ] {
            let (h, w) = approval_words(&request(state));
            assert_ne!(h, "Awaiting approval");
            assert!(!w.contains("Waiting"), "{w}");
        }
        let (h, w) = approval_words(&request(ApprovalState::Awaiting));
        assert_eq!(h, "Awaiting approval");
        assert!(
            w.starts_with("Waiting for a second operator since 7 Dec 2026, 12:00 UTC"),
            "{w}"
        );
        let mut no_reason = request(ApprovalState::Declined);
        no_reason.reason = None;
        no_reason.decided_by = None;
        assert_eq!(
            approval_words(&no_reason).1,
            "Another operator declined this run: no reason given. Nothing was run."
        );
    }
}
