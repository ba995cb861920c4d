//! The Account page's email forms: which events reach the signed-in person by email, and
//! confirming their address by the link mailed to it. Each sends the person back to the
//! Account page, with the words of what was done or why it was refused.

use super::accounts::{notice, with_problem, FormPost};
use super::caller::{for_person, GatedRoutes, SignedInVisitor};
use app::backend::ConsoleError;
use app::team::AccountProblem;
use axum::extract::Form;
use axum::response::Response;
use axum::routing::post;
use serde::Deserialize;

pub fn routes() -> GatedRoutes {
    GatedRoutes::new()
        .route("/account/email", for_person(post(save_choices)))
        .route(
            "/account/confirm-email/send",
            for_person(post(send_confirmation)),
        )
        .route("/account/confirm-email", for_person(post(confirm)))
}

/// Back to the Account page: `done`'s words when `outcome` worked, else the refusal's.
async fn back_to_account<T>(
    post: &FormPost<SignedInVisitor>,
    outcome: Result<T, ConsoleError>,
    done: AccountProblem,
) -> Response {
    match outcome {
        Ok(_) => with_problem("/account", done),
        Err(e) => notice(&post.session, "/account", &e).await,
    }
}

/// A ticked box sends its event's key with the value "on" (an unticked one sends nothing).
#[derive(Deserialize)]
pub(super) struct ChoicesForm {
    #[serde(flatten)]
    ticked: std::collections::BTreeMap<String, String>,
}

/// `POST /account/email`: keeps which events reach the signed-in person by email.
pub(super) async fn save_choices(
    post: FormPost<SignedInVisitor>,
    Form(form): Form<ChoicesForm>,
) -> Response {
    let on: Vec<&str> = form
        .ticked
        .iter()
        .filter(|(_, value)| value.as_str() == "on")
        .map(|(event, _)| event.as_str())
        .collect();
    let person = &post.who.person;
    let outcome = post.state.service.set_email_choices(person, &on).await;
    back_to_account(&post, outcome, AccountProblem::EmailChoicesSaved).await
}

/// `POST /account/confirm-email/send`: mails the signed-in person a link that confirms their
/// address.
pub(super) async fn send_confirmation(post: FormPost<SignedInVisitor>) -> Response {
    let outcome = post
        .state
        .service
        .send_email_confirmation(&post.who.person)
        .await;
    back_to_account(&post, outcome, AccountProblem::ConfirmationSent).await
}

#[derive(Deserialize)]
pub(super) struct ConfirmForm {
    code: String,
}

/// `POST /account/confirm-email`: confirms the signed-in person's address with the code the
/// mailed link carried (a form on the Account page: opening the link changes nothing).
pub(super) async fn confirm(
    post: FormPost<SignedInVisitor>,
    Form(form): Form<ConfirmForm>,
) -> Response {
    let person = &post.who.person;
    let outcome = post.state.service.confirm_email(person, &form.code).await;
    back_to_account(&post, outcome, AccountProblem::EmailConfirmed).await
}
