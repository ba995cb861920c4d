//! The undo window's forms on the Run page (docs/undo-window.md), plain HTML posts so they
//! work before the page's script has loaded: "Restore" one user and "Restore everyone and
//! cancel the deletion" (operators), "Delete now" with the phrase typed again (owners). Each
//! leads back to the run's page, or to a page saying in words why nothing was done.

use super::accounts::FormPost;
use super::caller::{for_member, GatedRoutes};
use super::error::HttpError;
use super::Caller;
use app::backend::ConsoleError;
use app::ids::JobId;
use axum::extract::Form;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use serde::Deserialize;

type UndoPost = FormPost<Caller>;

pub fn routes() -> GatedRoutes {
    GatedRoutes::new()
        .route("/run/undo/restore", for_member(post(restore)))
        .route("/run/undo/cancel", for_member(post(cancel)))
        .route("/run/undo/delete-now", for_member(post(delete_now)))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UndoForm {
    job: String,
    account: String,
    phrase: String,
}

/// Back to the run's page (at its undo window), or the refusal in words.
fn answer(job: &str, done: Result<(), ConsoleError>) -> Response {
    match done {
        Ok(()) => Redirect::to(&format!(
            "/run?id={}#undo-window",
            url::form_urlencoded::byte_serialize(job.as_bytes()).collect::<String>()
        ))
        .into_response(),
        Err(e) => HttpError::from(e).into_response(),
    }
}

/// `POST /run/undo/restore`: `job`, `account`.
async fn restore(post: UndoPost, Form(form): Form<UndoForm>) -> Response {
    let team = post.team();
    let done = async {
        team.as_operator()?
            .restore_user(JobId::new(form.job.trim()), form.account.trim())
            .await
    }
    .await;
    answer(&form.job, done)
}

/// `POST /run/undo/cancel`: `job`.
async fn cancel(post: UndoPost, Form(form): Form<UndoForm>) -> Response {
    let team = post.team();
    let done = async {
        team.as_operator()?
            .restore_everyone(JobId::new(form.job.trim()))
            .await
            .map(drop)
    }
    .await;
    answer(&form.job, done)
}

/// `POST /run/undo/delete-now`: `job`, `phrase`. Leads to the deletion run when one started.
async fn delete_now(post: UndoPost, Form(form): Form<UndoForm>) -> Response {
    let team = post.team();
    let done = async {
        team.as_owner()?
            .delete_now(JobId::new(form.job.trim()), &form.phrase)
            .await
    }
    .await;
    match done {
        Ok(Some(run)) => answer(run.as_str(), Ok(())),
        Ok(None) => answer(&form.job, Ok(())),
        Err(e) => answer(&form.job, Err(e)),
    }
}
