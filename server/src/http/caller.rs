//! Who is asking: the one place a request's team is decided. Today every request acts for the
//! built-in team (the console has no sign-in yet); sign-in replaces [`Caller::of`] and nothing
//! else, because every handler and server function gets its team from here.

use crate::service::Actor;
use app::ids::TeamId;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

/// The caller of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The team whose records the request may read and change.
    pub team: TeamId,
    /// Who is acting, for the audit trail and a run's "started by".
    pub actor: Actor,
}

impl Caller {
    /// The caller a request comes from.
    fn of(_request: &Request) -> Caller {
        Caller {
            team: TeamId::BUILT_IN,
            actor: Actor::ConsoleAdmin,
        }
    }

    /// The caller of the request a page or server function is answering (put there by
    /// [`identify`]); `None` outside a request.
    pub fn from_leptos_context() -> Option<Caller> {
        leptos::prelude::use_context::<Parts>().and_then(|p| p.extensions.get::<Caller>().copied())
    }
}

/// Middleware: learns the caller and keeps it with the request for handlers and pages.
pub async fn identify(mut request: Request, next: Next) -> Response {
    let caller = Caller::of(&request);
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// A handler's `Caller` argument. Refused (500) if [`identify`] did not run: a request whose
/// team is unknown must not act for any team.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = super::error::HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Caller, Self::Rejection> {
        parts.extensions.get::<Caller>().copied().ok_or_else(|| {
            tracing::error!("a request reached a handler without a caller");
            super::error::HttpError::failed("The console could not tell who is asking.")
        })
    }
}
