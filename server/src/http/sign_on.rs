//! Single sign-on routes: `GET /sign-in/sso` sends the browser to the company's sign-in
//! service with a fresh pending sign-in (PKCE, state, nonce) kept in the session;
//! `GET /sign-in/sso/callback` checks what comes back (`crate::sso`) and signs the verified
//! email in, if a team has added it (`service::accounts`).
//!
//! Only a started single sign-on stores a session for someone not signed in, and that one is
//! bounded: it lasts the pending sign-in's 10 minutes (then the sweep deletes it), and only so
//! many may be started in that time, from one address and in all ([`PendingBudget`]).

use super::accounts::{has_stored_session, notice, start_session};
use super::caller::{open, GatedRoutes};
use super::caller::{Visitor, SIGNED_IN};
use super::client_address::ClientAddress;
use super::AppState;
use crate::service::accounts::{SignedIn, SsoIdentity};
use crate::sso::{Callback, PendingSignIn, SsoError};
use app::backend::ConsoleError;
use app::team::AccountProblem;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Extension;
use model::Named;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};
use tower_sessions::{Expiry, Session};

/// Where the session keeps the sign-in under way (used once: removed when the browser comes
/// back, whatever the outcome).
const PENDING: &str = "sso_pending";

pub fn routes() -> GatedRoutes {
    GatedRoutes::new()
        .route("/sign-in/sso", open(get(start)))
        .route(crate::sso::CALLBACK_PATH, open(get(callback)))
}

/// How long a pending sign-in is good for ([`crate::sso::checks::PENDING_LIFETIME_SECS`]).
const PENDING_LIFETIME: Duration =
    Duration::from_secs(crate::sso::checks::PENDING_LIFETIME_SECS.unsigned_abs());

/// Pending sign-ins one address may start in [`PENDING_LIFETIME`] (an office behind one NAT
/// address signing in at nine), and all addresses together on this console.
const PENDING_PER_ADDRESS: usize = 30;
const PENDING_IN_ALL: usize = 2_000;

/// The single sign-ins started lately, oldest first: at most `in_all` of them are kept, so
/// this is bounded too.
struct PendingBudget {
    window: Duration,
    per_address: usize,
    in_all: usize,
    started: Mutex<VecDeque<(Instant, IpAddr)>>,
}

impl PendingBudget {
    fn new(window: Duration, per_address: usize, in_all: usize) -> PendingBudget {
        PendingBudget {
            window,
            per_address,
            in_all,
            started: Mutex::default(),
        }
    }

    /// Counts a sign-in started by `address` at `now`, or says there is no room for it.
    fn try_start(&self, now: Instant, address: IpAddr) -> bool {
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        while started
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) >= self.window)
        {
            started.pop_front();
        }
        let from_address = started.iter().filter(|(_, a)| *a == address).count();
        if started.len() >= self.in_all || from_address >= self.per_address {
            return false;
        }
        started.push_back((now, address));
        true
    }
}

static BUDGET: LazyLock<PendingBudget> =
    LazyLock::new(|| PendingBudget::new(PENDING_LIFETIME, PENDING_PER_ADDRESS, PENDING_IN_ALL));

fn sso_failed() -> String {
    format!("/sign-in?problem={}", AccountProblem::SsoFailed.key())
}

/// A session that holds no signed-in person ends with its pending sign-in, not 8 hours later.
async fn briefly_if_not_signed_in(session: &Session) {
    if !matches!(session.get::<SignedIn>(SIGNED_IN).await, Ok(Some(_))) {
        let lifetime = PENDING_LIFETIME.as_secs().try_into().unwrap_or(i64::MAX);
        session.set_expiry(Some(Expiry::OnInactivity(
            tower_sessions::cookie::time::Duration::seconds(lifetime),
        )));
    }
}

/// `GET /sign-in/sso`.
async fn start(
    State(state): State<AppState>,
    session: Session,
    client: Option<Extension<ClientAddress>>,
) -> Response {
    let Some(sso) = state.sso.as_ref() else {
        // Nothing stored: an address that is not set up costs the console nothing.
        let to = format!("/sign-in?problem={}", AccountProblem::SsoOff.key());
        return Redirect::to(&to).into_response();
    };
    let address = client.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |Extension(c)| c.0);
    if !BUDGET.try_start(Instant::now(), address) {
        tracing::warn!(%address, "too many single sign-ins started; this one was refused");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "60")],
            "Too many single sign-ins were started lately. Wait a few minutes, then try again.",
        )
            .into_response();
    }
    let (to_provider, pending) = sso.start();
    briefly_if_not_signed_in(&session).await;
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

/// Back to the sign-in page with `error`'s words. A session that signs nobody in ends with
/// its pending sign-in, not 8 hours later.
async fn failed(session: &Session, error: &ConsoleError) -> Response {
    briefly_if_not_signed_in(session).await;
    notice(session, &sso_failed(), error).await
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
    if !has_stored_session(&session).await {
        // No sign-in was started from this browser (or it ended): nothing to keep words in,
        // and nothing is stored for a made-up callback.
        let to = format!("/sign-in?problem={}", AccountProblem::SessionExpired.key());
        return Redirect::to(&to).into_response();
    }
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
            return failed(&session, &ConsoleError::new(e.to_string())).await;
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
    let signed_in = state.service.sign_in_with_sso(&who, linking.as_ref()).await;
    crate::metrics::sign_in(crate::metrics::SignInMethod::Sso, signed_in.is_ok());
    match signed_in {
        Ok(person) => match start_session(&state.service, &session, &person, None).await {
            Ok(()) => Redirect::to("/").into_response(),
            Err(e) => failed(&session, &e).await,
        },
        Err(crate::service::accounts::AccountRefusal::Problem(AccountProblem::NotAllowed)) => {
            let words = format!(
                "{} is not a member of any team on this console. Ask a team owner to add this \
                 email on their Team page, then sign in again.",
                identity.email
            );
            failed(&session, &ConsoleError::new(words)).await
        }
        // Fixed words: the address carries them, no session needed.
        Err(crate::service::accounts::AccountRefusal::Problem(
            p @ AccountProblem::PasswordAccountExists,
        )) => Redirect::to(&format!("/sign-in?problem={}", p.key())).into_response(),
        Err(crate::service::accounts::AccountRefusal::Problem(p)) => {
            failed(&session, &ConsoleError::new(p.words())).await
        }
        Err(crate::service::accounts::AccountRefusal::Failed(e)) => failed(&session, &e).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pending_budget_holds_per_address_and_in_all_and_frees_with_time() {
        let budget = PendingBudget::new(Duration::from_secs(600), 2, 3);
        let t0 = Instant::now();
        let (a, b, c): (IpAddr, IpAddr, IpAddr) = (
            "192.0.2.1".parse().unwrap(),
            "192.0.2.2".parse().unwrap(),
            "192.0.2.3".parse().unwrap(),
        );
        assert!(budget.try_start(t0, a));
        assert!(budget.try_start(t0, a));
        assert!(!budget.try_start(t0, a), "per address");
        assert!(budget.try_start(t0 + Duration::from_secs(1), b));
        assert!(!budget.try_start(t0 + Duration::from_secs(1), c), "in all");
        // The first two age out; the third is still counted.
        let later = t0 + Duration::from_secs(600);
        assert!(budget.try_start(later, a));
        assert!(budget.try_start(later, c));
        assert!(!budget.try_start(later, c), "b's and a's and c's fill it");
        assert_eq!(budget.started.lock().unwrap().len(), 3);
    }
}
