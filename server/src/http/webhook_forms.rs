//! The Team page's notifications forms, as plain HTML form posts through the owner's handle:
//! save the webhook address (its signing secret waits in the session for the page that shows
//! it once), send a test message, remove the webhook. Each redirects back to the Team page's
//! notifications section as `accounts.rs` describes.

use super::accounts::{done_or_notice, FormPost};
use super::caller::{for_member, GatedRoutes};
use super::Caller;
use app::backend::NEW_WEBHOOK_SECRET;
use axum::extract::Form;
use axum::response::Response;
use axum::routing::post;
use serde::Deserialize;

/// Where each form leads back: the Team page, at its notifications section.
const BACK: &str = "/team#notifications";

type OwnerPost = FormPost<Caller>;

pub fn routes() -> GatedRoutes {
    GatedRoutes::new()
        .route("/team/webhook", for_member(post(save_webhook)))
        .route(
            "/team/webhook/test",
            for_member(post(|p: OwnerPost| press(p, Button::Test))),
        )
        .route(
            "/team/webhook/remove",
            for_member(post(|p: OwnerPost| press(p, Button::Remove))),
        )
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct WebhookForm {
    address: String,
}

/// `POST /team/webhook`: an owner saves the team's webhook address.
async fn save_webhook(post: OwnerPost, Form(form): Form<WebhookForm>) -> Response {
    let team = post.team();
    let saved = async { team.as_owner()?.save_webhook(&form.address).await }.await;
    let answer = match saved {
        Ok(secret) => {
            // Lost only if the session store fails: then the owner saves again for a new one.
            if let Err(e) = post
                .session
                .insert(NEW_WEBHOOK_SECRET, secret.expose().clone())
                .await
            {
                tracing::warn!(error = %e, "could not keep the new signing secret for the page");
            }
            Ok(())
        }
        Err(e) => Err(e),
    };
    done_or_notice(&post.session, BACK, answer, || {
        "The webhook address was saved. Copy its signing secret below now: it is not shown again."
            .to_string()
    })
    .await
}

/// The two buttons that post no fields: "Send a test message" and "Remove webhook".
#[derive(Clone, Copy)]
enum Button {
    Test,
    Remove,
}

/// `POST /team/webhook/test` and `POST /team/webhook/remove`: an owner sends a test message,
/// or removes the team's webhook (what was not sent yet is not sent).
async fn press(post: OwnerPost, button: Button) -> Response {
    let team = post.team();
    let answer = async {
        let owner = team.as_owner()?;
        match button {
            Button::Test => owner.send_test_message().await,
            Button::Remove => owner.remove_webhook().await,
        }
    }
    .await;
    done_or_notice(&post.session, BACK, answer, || {
        match button {
            Button::Test => {
                "A test message is on its way: the delivery log below says when it arrived."
            }
            Button::Remove => {
                "The webhook was removed: nothing more is sent to it, including messages not yet sent."
            }
        }
        .to_string()
    })
    .await
}
