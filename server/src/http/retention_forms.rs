//! The Team page's retention form, as a plain HTML form post through the owner's handle: the
//! team's time zone and its retention policy (docs/retention.md). Redirects back to the Team
//! page's retention section as `accounts.rs` describes.

use super::accounts::{done_or_notice, FormPost};
use super::caller::{for_member, GatedRoutes};
use super::Caller;
use crate::service::retention::RetentionChoice;
use axum::extract::Form;
use axum::response::Response;
use axum::routing::post;
use serde::Deserialize;

/// Where the form leads back: the Team page, at its retention section.
const BACK: &str = "/team#retention";

pub fn routes() -> GatedRoutes {
    GatedRoutes::new().route("/team/retention", for_member(post(save_retention)))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RetentionForm {
    time_zone: String,
    /// A checkbox: present ("on") when ticked.
    enabled: Option<String>,
    min_days: String,
    weekday: String,
    at: String,
}

/// `POST /team/retention`: an owner saves the team's time zone and retention policy.
async fn save_retention(post: FormPost<Caller>, Form(form): Form<RetentionForm>) -> Response {
    let choice = RetentionChoice {
        time_zone: form.time_zone,
        enabled: form.enabled.is_some(),
        min_days: form.min_days,
        weekday: form.weekday,
        at: form.at,
    };
    let team = post.team();
    let answer = async { team.as_owner()?.save_retention(&choice).await }.await;
    let (answer, words) = match answer {
        Ok(words) => (Ok(()), words),
        Err(e) => (Err(e), String::new()),
    };
    done_or_notice(&post.session, BACK, answer, || words).await
}
