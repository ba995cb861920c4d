//! Single sign-on routes: `GET /sign-in/sso` sends the browser to the company's sign-in
//! service with a fresh pending sign-in (PKCE, state, nonce) kept in the session;
//! `GET /sign-in/sso/callback` checks what comes back (`crate::sso`) and signs the verified
//! email in, if a team has added it (`service::accounts`).

use super::accounts::{notice, start_session};
use super::caller::Visitor;
use super::AppState;
use crate::service::accounts::SsoIdentity;
use crate::sso::{Callback, PendingSignIn, SsoError};
use app::backend::ConsoleError;
use app::team::AccountProblem;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use tower_sessions::Session;

/// Where the session keeps the sign-in under way (used once: removed when the browser comes
/// back, whatever the outcome).
const PENDING: &str = "sso_pending";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sign-in/sso", get(start))
        .route(crate::sso::CALLBACK_PATH, get(callback))
}

fn sso_failed() -> String {
    format!("/sign-in?problem={}", AccountProblem::SsoFailed.code())
}

/// `GET /sign-in/sso`.
async fn start(State(state): State<AppState>, session: Session) -> Response {
    let Some(sso) = state.sso.as_ref() else {
        return notice(
            &session,
            "/sign-in",
            &ConsoleError::not_found("Single sign-on is not set up on this console."),
        )
        .await;
    };
    let (to_provider, pending) = sso.start();
    if let Err(e) = session.insert(PENDING, pending).await {
        tracing::error!(error = %e, "could not keep a pending sign-in in the session");
        return notice(
            &session,
            &sso_failed(),
            &ConsoleError::failed("Offboard could not keep your session; see the server log."),
        )
        .await;
    }
    Redirect::to(to_provider.as_str()).into_response()
}

/// `GET /sign-in/sso/callback?code=…&state=…` (or `?error=…`).
async fn callback(
    State(state): State<AppState>,
    session: Session,
    visitor: Visitor,
    Query(answer): Query<Callback>,
) -> Response {
    let Some(sso) = state.sso.as_ref() else {
        return Redirect::to("/sign-in").into_response();
    };
    let pending = session
        .remove::<PendingSignIn>(PENDING)
        .await
        .ok()
        .flatten();
    let verified = match pending {
        None => Err(SsoError::Expired),
        Some(pending) => sso.finish(pending, answer).await,
    };
    let identity = match verified {
        Ok(identity) => identity,
        Err(e) => {
            match &e {
                SsoError::ClientRejected
                | SsoError::Unreachable { .. }
                | SsoError::Untrusted { .. } => {
                    tracing::error!(error = %e, "single sign-on failed")
                }
                _ => tracing::warn!(error = %e, "single sign-on refused"),
            }
            return notice(&session, &sso_failed(), &ConsoleError::new(e.to_string())).await;
        }
    };
    // Someone already signed in here who comes back from the company's sign-in is linking
    // the two (signed in to both); anyone else signs in.
    let linking = visitor.person().cloned();
    let who = SsoIdentity {
        issuer: sso.issuer(),
        subject: &identity.subject,
        email: &identity.email,
        name: identity.name.as_deref(),
    };
    match state.service.sign_in_with_sso(&who, linking.as_ref()).await {
        Ok(person) => match start_session(&state.service, &session, &person, None).await {
            Ok(()) => Redirect::to("/").into_response(),
            Err(e) => notice(&session, &sso_failed(), &e).await,
        },
        Err(crate::service::accounts::AccountRefusal::Problem(AccountProblem::NotAllowed)) => {
            let words = format!(
                "{} is not a member of any team on this console. Ask a team owner to add this \
                 email on their Team page, then sign in again.",
                identity.email
            );
            notice(&session, &sso_failed(), &ConsoleError::new(words)).await
        }
        Err(crate::service::accounts::AccountRefusal::Problem(p)) => {
            notice(&session, &sso_failed(), &ConsoleError::new(p.words())).await
        }
        Err(crate::service::accounts::AccountRefusal::Failed(e)) => {
            notice(&session, &sso_failed(), &e).await
        }
    }
}
