//! Who is asking: the one place a request's person, team and role are decided, from its
//! session. [`identify`] runs on every route, after routing: it learns the visitor and refuses
//! what the matched route did not open to them. A route declares its [`Reach`] where it is
//! registered ([`GatedRoutes::route`] takes one of [`open`], [`for_person`], [`for_member`];
//! pages and server functions are declared where `http::router` registers them); a route
//! that declared nothing needs a team member, so a new route is closed until it says
//! otherwise. What a member may do in their team is their role's handle in the service.

use super::AppState;
use crate::service::accounts::SignedIn;
use crate::service::{Console, Member, Person};
use app::ids::TeamId;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::MethodRouter;
use axum::Router;
use std::collections::HashMap;
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

/// What a route needs of its visitor, from the least to the most.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reach {
    /// Anyone: sign-in, setup, invitations, password resets, health, static files.
    Public,
    /// A signed-in person, with or without a team: the Account and Teams pages and forms.
    Person,
    /// A member of a team: everything else (their role is checked by the service).
    Member,
}

/// A route's handlers with the reach they declared.
pub struct Gated {
    reach: Reach,
    method: MethodRouter<AppState>,
}

/// Open to anyone.
pub fn open(method: MethodRouter<AppState>) -> Gated {
    Gated {
        reach: Reach::Public,
        method,
    }
}

/// Open to anyone signed in, with or without a team.
pub fn for_person(method: MethodRouter<AppState>) -> Gated {
    Gated {
        reach: Reach::Person,
        method,
    }
}

/// Open to members of a team (the role each action needs is the service's handle).
pub fn for_member(method: MethodRouter<AppState>) -> Gated {
    Gated {
        reach: Reach::Member,
        method,
    }
}

/// Plain routes, each registered with the reach it declared: the only way to add one.
#[derive(Default)]
pub struct GatedRoutes {
    router: Router<AppState>,
    doors: Doors,
}

impl GatedRoutes {
    pub fn new() -> GatedRoutes {
        GatedRoutes::default()
    }

    /// Registers `path` with what it declared.
    pub fn route(mut self, path: &str, gated: Gated) -> GatedRoutes {
        self.router = self.router.route(path, gated.method);
        self.doors.declare(path, gated.reach);
        self
    }

    pub fn merge(mut self, other: GatedRoutes) -> GatedRoutes {
        self.router = self.router.merge(other.router);
        self.doors.join(other.doors);
        self
    }

    /// The router, and what its routes declared (for [`identify`]).
    pub fn into_parts(self) -> (Router<AppState>, Doors) {
        (self.router, self.doors)
    }
}

/// What each route declared, by the route's template (what [`MatchedPath`] says), for
/// [`identify`]. Anything not declared needs a team member.
#[derive(Clone, Debug, Default)]
pub struct Doors {
    routes: HashMap<String, Reach>,
    /// Server functions are declared by name: the routes under this prefix (each function's
    /// own, and the catch-all one) are theirs.
    server_fns: HashMap<String, Reach>,
    server_fn_prefix: Option<String>,
    /// Nested services open to anyone (the script bundle), by path prefix.
    open_prefixes: Vec<String>,
    /// Files the fallback serves to anyone (it answers everything no route matched).
    open_files: Vec<String>,
}

impl Doors {
    /// Declares `template`'s reach. A template declared twice (a page and its form post share
    /// one) keeps the stricter reach: a door is never opened by accident.
    pub fn declare(&mut self, template: &str, reach: Reach) {
        let kept = self.routes.entry(template.to_string()).or_insert(reach);
        *kept = (*kept).max(reach);
    }

    /// Where the server functions are (e.g. `/api/`: each has its route there) and the reach
    /// of those that need less than a member; every other server function needs a member.
    pub fn declare_server_fns(&mut self, prefix: &str, reaches: &[(&str, Reach)]) {
        self.server_fn_prefix = Some(prefix.to_string());
        for (name, reach) in reaches {
            self.server_fns.insert(name.to_string(), *reach);
        }
    }

    /// Everything under `prefix/` (a nested service) is open to anyone.
    pub fn declare_open_prefix(&mut self, prefix: &str) {
        self.open_prefixes.push(format!("{prefix}/"));
    }

    /// `path`, served by the fallback, is open to anyone.
    pub fn declare_open_file(&mut self, path: &str) {
        self.open_files.push(path.to_string());
    }

    fn join(&mut self, other: Doors) {
        for (template, reach) in other.routes {
            self.declare(&template, reach);
        }
        self.server_fns.extend(other.server_fns);
        self.server_fn_prefix = self.server_fn_prefix.take().or(other.server_fn_prefix);
        self.open_prefixes.extend(other.open_prefixes);
        self.open_files.extend(other.open_files);
    }

    /// What a request for `path` needs, `template` being the route it matched (None: the
    /// fallback).
    pub fn reach(&self, template: Option<&str>, path: &str) -> Reach {
        if self.open_prefixes.iter().any(|p| path.starts_with(p)) {
            return Reach::Public;
        }
        let server_fn = |t: &str| {
            let prefix = self.server_fn_prefix.as_deref()?;
            t.starts_with(prefix).then(|| path.strip_prefix(prefix))
        };
        match template {
            Some(t) if server_fn(t).is_some() => server_fn(t)
                .flatten()
                .and_then(|name| self.server_fns.get(name))
                .copied()
                .unwrap_or(Reach::Member),
            Some(t) => self.routes.get(t).copied().unwrap_or(Reach::Member),
            None if self.open_files.iter().any(|f| f == path) => Reach::Public,
            None => Reach::Member,
        }
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

/// Middleware, after routing: learns the visitor and keeps it (and the [`Caller`], for a
/// member) with the request; refuses what the matched route did not open to the visitor. A request that already carries a
/// `Caller` (put there by a test harness driving routes alone) is left as it is.
pub async fn identify(
    State((console, doors)): State<(Arc<Console>, Arc<Doors>)>,
    mut request: Request,
    next: Next,
) -> Response {
    if request.extensions().get::<Caller>().is_some() {
        return next.run(request).await;
    }
    let visitor = visitor_of(&console, request.extensions().get::<Session>()).await;
    let template = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let needs = doors.reach(template.as_deref(), request.uri().path());
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

    /// The doors the console declares: its plain routes, and what `http::router` declares for
    /// pages, server functions and static files.
    fn console_doors() -> Doors {
        let (_, mut doors) = super::super::plain_route_set().into_parts();
        super::super::declare_pages_and_files(&mut doors);
        doors
    }

    #[test]
    fn only_declared_routes_are_open_and_everything_else_needs_a_team() {
        let doors = console_doors();
        let api = Some("/api/{*fn_name}");
        // Routes declared with the path itself as their template (each server function also
        // has its own route, as Leptos registers them: "/api/whoami").
        for (reach, paths) in [
            (
                Reach::Public,
                &[
                    "/sign-in",
                    "/sign-in/sso",
                    "/sign-in/sso/callback",
                    "/setup",
                    "/join",
                ][..],
            ),
            (Reach::Public, &["/reset", "/healthz", "/api/whoami"]),
            (
                Reach::Person,
                &[
                    "/account",
                    "/account/password",
                    "/teams",
                    "/teams/reset-links",
                ],
            ),
            (Reach::Member, &["/", "/connect", "/team", "/team/members"]),
            // A route nobody declared needs a team.
            (Reach::Member, &["/api/start_job", "/undeclared"]),
        ] {
            for path in paths {
                assert_eq!(doors.reach(Some(path), path), reach, "{path}");
            }
        }
        for (template, reach, paths) in [
            (
                None,
                Reach::Public,
                &["/pkg/offboard.wasm", "/favicon.svg"][..],
            ),
            (Some("/pkg/{*rest}"), Reach::Public, &["/pkg/offboard.wasm"]),
            (api, Reach::Public, &["/api/whoami", "/api/link_info"]),
            (api, Reach::Person, &["/api/console_teams"]),
            (api, Reach::Member, &["/api/start_job", "/api/whoamix"]),
            (
                Some("/downloads/jobs/{job_id}/{file}"),
                Reach::Member,
                &["/downloads/jobs/x/failures.json"],
            ),
            (
                Some("/jobs/{id}/events"),
                Reach::Member,
                &["/jobs/x/events"],
            ),
            // Look-alikes of open paths are not open, and a path nobody declared needs a team.
            (
                None,
                Reach::Member,
                &[
                    "/sign-inx",
                    "/joined",
                    "/pkgs/x",
                    "/favicon.svgx",
                    "/unknown",
                ],
            ),
        ] {
            for path in paths {
                assert_eq!(doors.reach(template, path), reach, "{path}");
            }
        }
    }
}
