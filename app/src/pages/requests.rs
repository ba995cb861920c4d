//! The team's requests for approval that no run came from, listed on Overview and History
//! in the words the Preview page uses, each with its way on (open it, or preview again).

use super::parts::{action_words, error_text, users, ErrorBox};
use super::preview::{approval_words, encode, PreviewAgain};
use super::times::sentence;
use crate::api::approval_requests;
use crate::backend::ApprovalRequestView;
use crate::team::ApprovalState;
use leptos::prelude::*;

/// A card listing the requests; nothing at all when there are none.
#[component]
pub fn ApprovalRequests() -> impl IntoView {
    let requests = Resource::new(|| (), |_| approval_requests());
    view! {
        <Transition fallback=|| ()>
            {move || {
                requests
                    .get()
                    .map(|r| match r {
                        Err(e) => {
                            view! {
                                <section class="card" aria-labelledby="requests-heading">
                                    <h2 id="requests-heading">"Requests for approval"</h2>
                                    <ErrorBox message=error_text(&e) />
                                </section>
                            }
                                .into_any()
                        }
                        Ok(list) if list.is_empty() => ().into_any(),
                        Ok(list) => {
                            view! {
                                <section class="card" aria-labelledby="requests-heading">
                                    <h2 id="requests-heading">"Requests for approval"</h2>
                                    <ul class="requests" data-testid="approval-requests">
                                        {list.into_iter().map(|r| view! { <Request request=r /> }).collect_view()}
                                    </ul>
                                </section>
                            }
                                .into_any()
                        }
                    })
            }}
        </Transition>
    }
}

/// One request: what it would run, its state in the Preview page's words, and its way on.
#[component]
fn Request(request: ApprovalRequestView) -> impl IntoView {
    let (heading, words) = approval_words(&request.approval);
    let what = format!("{} {}", action_words(request.action), users(request.users));
    let href = format!("/preview?id={}", encode(request.preview_id.as_str()));
    let again = (request.approval.state != ApprovalState::Awaiting).then(|| {
        view! {
            <PreviewAgain
                preview_id=request.preview_id.to_string()
                label=format!("Preview again: {what}, asked by {}", request.approval.requested_by)
            />
        }
    });
    view! {
        <li>
            <p>
                <strong>{format!("{heading}: ")}</strong>
                <a href=href.clone()>{what.clone()}</a>
            </p>
            <p>{sentence(words)}</p>
            {again}
        </li>
    }
}
