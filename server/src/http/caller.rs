//! Who is asking: the one place a request's person, team and role are decided, from its
//! session. [`identify`] runs before every route; what a request may reach without being
//! signed in, or without a team, is decided here too ([`Reach`]), so a new route is closed
//! until it is listed.

use crate::service::accounts::SignedIn;
use crate::service::{Console, Member, Person};
use app::ids::TeamId;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use std::sync::Arc;
use tower_sessions::Session;

/// Where the session keeps who is signed in.
pub const SIGNED_IN: &str = "signed_in";
/// A session ends this long after sign-in however busy it is (the idle limit is the session
/// layer's, see `http::session_layer`).
pub const SESSION_LIFETIME_HOURS: i64 = 12;

/// Who a request comes from.
#[derive(Clone, Debug)]
pub enum Visitor {
    /// Not signed in; `expired` when the request carried a session that has ended.
    Anonymous { expired: bool },
    /// Boxed: a visitor is made once per request and moved around, an anonymous one is tiny.
    SignedIn(Box<SignedInVisitor>),
}

/// A signed-in visitor: the person, their session, and their membership in the team the
/// console shows (None if they belong to no team).
#[derive(Clone, Debug)]
pub struct SignedInVisitor {
    pub person: Person,
    pub session: SignedIn,
    pub member: Option<Member>,
}

impl Visitor {
    pub fn person(&self) -> Option<&Person> {
        match self {
            Visitor::SignedIn(v) => Some(&v.person),
            Visitor::Anonymous { .. } => None,
        }
    }

    pub fn member(&self) -> Option<&Member> {
        match self {
            Visitor::SignedIn(v) => v.member.as_ref(),
            Visitor::Anonymous { .. } => None,
        }
    }

    /// The visitor of the request a page or server function is answering.
    pub fn from_leptos_context() -> Option<Visitor> {
        leptos::prelude::use_context::<Parts>().and_then(|p| p.extensions.get::<Visitor>().cloned())
    }
}

/// A signed-in member of the team a request acts for. Handlers that touch a team's records
/// take one; it exists only when [`identify`] found a member.
#[derive(Clone, Debug)]
pub struct Caller {
    pub member: Member,
}

impl Caller {
    pub fn team(&self) -> TeamId {
        self.member.team
    }

    /// The caller of the request a page or server function is answering; `None` outside a
    /// request or for a visitor who is not a member of a team.
    pub fn from_leptos_context() -> Option<Caller> {
        leptos::prelude::use_context::<Parts>().and_then(|p| p.extensions.get::<Caller>().cloned())
    }
}

/// What a path needs of its visitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Anyone: sign-in, setup, invitations, password resets, health, static files.
    Public,
    /// A signed-in person, with or without a team: the Account and Teams pages and forms.
    Person,
    /// A member of a team: everything else (their role is checked by the service).
    Member,
}

/// The reach of `path`. Anything not listed needs a team member.
pub fn reach(path: &str) -> Reach {
    const PUBLIC: [&str; 12] = [
        "/sign-in",
        "/sign-out",
        "/setup",
        "/join",
        "/reset",
        "/healthz",
        "/readyz",
        "/favicon.svg",
        // Answers None to a visitor who is not signed in (the header asks on every page).
        "/api/whoami",
        // Says whether a link still works, for the setup, join and reset pages.
        "/api/link_info",
        // Whether the sign-in page shows a single sign-on button.
        "/api/sign_in_options",
        // Words a refused form left in the visitor's own session (a failed sign-in too).
        "/api/account_notice",
    ];
    const PERSON: [&str; 3] = ["/account", "/teams", "/api/console_teams"];
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    if PUBLIC.iter().any(|p| under(p))
        || path.starts_with(&format!("/{}/", super::assets::BUNDLE_DIR))
    {
        Reach::Public
    } else if PERSON.iter().any(|p| under(p)) {
        Reach::Person
    } else {
        Reach::Member
    }
}

/// The visitor a session belongs to. A session that has ended (absolute lifetime, signed out
/// everywhere, password changed, account gone) is emptied.
pub async fn visitor_of(console: &Console, session: Option<&Session>) -> Visitor {
    let Some(session) = session else {
        return Visitor::Anonymous { expired: false };
    };
    let stored = match session.get::<SignedIn>(SIGNED_IN).await {
        Ok(Some(stored)) => stored,
        Ok(None) => return Visitor::Anonymous { expired: false },
        Err(e) => {
            tracing::warn!(error = %e, "could not read a session");
            return Visitor::Anonymous { expired: true };
        }
    };
    let lifetime = chrono::Duration::hours(SESSION_LIFETIME_HOURS);
    let person = match console.person(&stored, lifetime).await {
        Ok(Some(person)) => person,
        Ok(None) => {
            let _ = session.flush().await;
            return Visitor::Anonymous { expired: true };
        }
        Err(_) => return Visitor::Anonymous { expired: false },
    };
    let member = console.member(&person, stored.team).await.ok().flatten();
    Visitor::SignedIn(Box::new(SignedInVisitor {
        person,
        session: stored,
        member,
    }))
}

/// Middleware: learns the visitor and keeps it (and the [`Caller`], for a member) with the
/// request; refuses what the visitor may not reach. A request that already carries a
/// `Caller` (put there by a test harness driving routes alone) is left as it is.
pub async fn identify(
    State(console): State<Arc<Console>>,
    mut request: Request,
    next: Next,
) -> Response {
    if request.extensions().get::<Caller>().is_some() {
        return next.run(request).await;
    }
    let visitor = visitor_of(&console, request.extensions().get::<Session>()).await;
    let path = request.uri().path().to_string();
    let needs = reach(&path);
    let refusal = match (&visitor, needs) {
        (_, Reach::Public) => None,
        (Visitor::Anonymous { expired }, _) => Some(not_signed_in(&request, *expired)),
        (Visitor::SignedIn(v), Reach::Member) if v.member.is_none() => Some(no_team(&request)),
        _ => None,
    };
    if let Some(refusal) = refusal {
        return refusal;
    }
    if let Some(member) = visitor.member() {
        let caller = Caller {
            member: member.clone(),
        };
        request.extensions_mut().insert(caller);
    }
    request.extensions_mut().insert(visitor);
    next.run(request).await
}

/// A page asked for by a browser (it gets a redirect, not a bare status).
fn wants_page(request: &Request) -> bool {
    let path = request.uri().path();
    request.method() == Method::GET
        && !path.starts_with("/api/")
        && !path.starts_with("/downloads/")
        && !path.ends_with("/events")
}

fn not_signed_in(request: &Request, expired: bool) -> Response {
    if wants_page(request) {
        let next = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let problem = if expired {
            "&problem=session-expired"
        } else {
            ""
        };
        let target = format!(
            "/sign-in?next={}{problem}",
            percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)
        );
        Redirect::to(&target).into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            "Sign in first: you are not signed in, or your session has ended.",
        )
            .into_response()
    }
}

fn no_team(request: &Request) -> Response {
    if wants_page(request) {
        Redirect::to("/account").into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            "You are not a member of any team yet: ask a team owner for an invitation.",
        )
            .into_response()
    }
}

/// A handler's `Caller` argument. Refused (401) if [`identify`] found no member: a request
/// whose team is unknown must not act for any team.
impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = super::error::HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Caller, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            super::error::HttpError::new(
                StatusCode::UNAUTHORIZED,
                "Sign in first: you are not signed in, or your session has ended.",
            )
        })
    }
}

/// A handler's `Visitor` argument (always there after [`identify`]).
impl<S: Send + Sync> FromRequestParts<S> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Visitor, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Visitor>()
            .cloned()
            .unwrap_or(Visitor::Anonymous { expired: false }))
    }
}

/// A handler's `SignedInVisitor` argument: the account forms need someone signed in; anyone
/// else is sent back to the sign-in page, told their session ended.
impl<S: Send + Sync> FromRequestParts<S> for SignedInVisitor {
    type Rejection = Redirect;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<SignedInVisitor, Self::Rejection> {
        match parts.extensions.get::<Visitor>() {
            Some(Visitor::SignedIn(v)) => Ok((**v).clone()),
            _ => Err(Redirect::to("/sign-in?problem=session-expired")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_paths_are_open_and_everything_else_needs_a_team() {
        for public in [
            "/sign-in",
            "/sign-in/sso",
            "/sign-in/sso/callback",
            "/setup",
            "/join",
            "/reset",
            "/healthz",
            "/pkg/offboard.wasm",
            "/api/whoami",
        ] {
            assert_eq!(reach(public), Reach::Public, "{public}");
        }
        for person in [
            "/account",
            "/account/password",
            "/teams",
            "/api/console_teams",
        ] {
            assert_eq!(reach(person), Reach::Person, "{person}");
        }
        for member in [
            "/",
            "/connect",
            "/api/start_job",
            "/downloads/jobs/x/failures.json",
            "/jobs/x/events",
            // Look-alikes of open paths are not open.
            "/sign-inx",
            "/joined",
            "/api/whoamix",
            "/pkgs/x",
            "/unknown",
        ] {
            assert_eq!(reach(member), Reach::Member, "{member}");
        }
    }
}
