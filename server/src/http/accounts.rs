//! Sign-in and the account and team forms, as plain HTML form posts (they work before the
//! page's script loads): each reads its fields, calls the service, and redirects back with a
//! fixed problem code (`?problem=…`) or with words kept in the session for the next page.
//! The Team and Teams pages' forms are in `team_forms.rs`.

use super::caller::{for_person, open, GatedRoutes, SignedInVisitor, Visitor, SIGNED_IN};
use super::client_address::ClientAddress;
use super::{AppState, Caller};
use crate::service::accounts::{AccountRefusal, NewPerson, Person};
use crate::service::{Console, TeamConsole};
use app::backend::{ConsoleError, ACCOUNT_DONE, ACCOUNT_NOTICE as NOTICE, NEW_LINK};
use app::ids::TeamId;
use app::team::{AccountProblem, NewLink};
use axum::extract::{Form, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::post;
use axum::Extension;
use model::Named;
use serde::Deserialize;
use tower_sessions::Session;

pub fn routes() -> GatedRoutes {
    GatedRoutes::new()
        .route("/sign-in", open(post(sign_in)))
        .route("/sign-out", open(post(sign_out)))
        .route("/setup", open(post(setup)))
        .route("/join", open(post(join)))
        .route("/reset", open(post(reset)))
        .route("/account/password", for_person(post(change_password)))
        .route(
            "/account/sign-out-everywhere",
            for_person(post(sign_out_everywhere)),
        )
        .route("/account/team", for_person(post(switch_team)))
}

/// A form post: the console, the browser's session (`S`: an `Option` where a form works
/// without one), and who posted it (`()` for anyone, a [`Visitor`], a [`SignedInVisitor`], a
/// [`Caller`]). Each part refuses a request as it always does.
pub(super) struct FormPost<Who, S = Session> {
    pub(super) state: AppState,
    pub(super) session: S,
    pub(super) who: Who,
}

impl<Who, S> FromRequestParts<AppState> for FormPost<Who, S>
where
    Who: FromRequestParts<AppState> + Send,
    Who::Rejection: IntoResponse,
    S: FromRequestParts<AppState> + Send,
    S::Rejection: IntoResponse,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let session = S::from_request_parts(parts, state).await;
        let session = session.map_err(IntoResponse::into_response)?;
        let who = Who::from_request_parts(parts, state).await;
        let who = who.map_err(IntoResponse::into_response)?;
        Ok(FormPost {
            state: state.clone(),
            session,
            who,
        })
    }
}

impl<S> FormPost<Caller, S> {
    /// The caller's team, as the service lets them act on it.
    pub(super) fn team(&self) -> TeamConsole {
        self.state.service.for_member(&self.who.member)
    }
}

/// Where to go after signing in: a path on this console only (never `//host` or a full URL,
/// which would make the sign-in form an open redirect).
pub fn safe_next(next: &str) -> &str {
    let plain = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control());
    if plain && !next.starts_with("/sign-in") {
        next
    } else {
        "/"
    }
}

pub(super) fn with_problem(path: &str, problem: AccountProblem) -> Response {
    // The query goes before a `#section`, so the page still opens at that section.
    let (path, section) = path.split_once('#').map_or((path, ""), |(p, s)| (p, s));
    let sep = if path.contains('?') { '&' } else { '?' };
    let section = if section.is_empty() {
        String::new()
    } else {
        format!("#{section}")
    };
    Redirect::to(&format!("{path}{sep}problem={}{section}", problem.key())).into_response()
}

/// A refusal as the form's page shows it: a fixed problem, or Offboard failing (its words
/// kept for the page in the session, the address says only "failed").
async fn refused(session: &Session, path: &str, refusal: AccountRefusal) -> Response {
    match refusal {
        AccountRefusal::Problem(p) => with_problem(path, p),
        AccountRefusal::Failed(e) => notice(session, path, &e).await,
    }
}

/// Back to `path`: `done` (what the form did, in words shown once) when it did what it asked,
/// else its refusal's words.
pub(super) async fn done_or_notice(
    session: &Session,
    path: &str,
    answer: Result<(), ConsoleError>,
    done: impl FnOnce() -> String,
) -> Response {
    match answer {
        Ok(()) => {
            // The address says "done"; the words saying what was done wait in the session
            // (the page shows "Done." only if they are lost).
            if let Err(e) = session.insert(ACCOUNT_DONE, done()).await {
                tracing::warn!(error = %e, "could not keep what a form did in the session");
            }
            with_problem(path, AccountProblem::Done)
        }
        Err(e) => notice(session, path, &e).await,
    }
}

/// Back to `path` with `error`'s words waiting in the session. A role that does not allow
/// the form is answered 403 at once (the pages never offer such a form: it was forged).
/// A visitor with no stored session gets none for this: the words are logged and the address
/// carries [`AccountProblem::Unavailable`] (else every anonymous failure stored a row).
pub(super) async fn notice(session: &Session, path: &str, error: &ConsoleError) -> Response {
    notice_or(session, path, error, AccountProblem::Unavailable).await
}

/// [`notice`], with `anonymous` the problem code a visitor without a stored session gets.
pub(super) async fn notice_or(
    session: &Session,
    path: &str,
    error: &ConsoleError,
    anonymous: AccountProblem,
) -> Response {
    if error.kind == app::backend::ConsoleErrorKind::Forbidden {
        return super::error::HttpError::from(error.clone()).into_response();
    }
    if !has_stored_session(session).await {
        tracing::info!(notice = %error.message, "a form failed for a visitor without a session");
        return with_problem(path, anonymous);
    }
    if let Err(e) = session.insert(NOTICE, error.message.clone()).await {
        tracing::warn!(error = %e, "could not keep a notice in the session");
    }
    Redirect::to(path).into_response()
}

/// Whether the visitor's session is one the store holds. Reading it first matters: a cookie
/// naming no stored session (made up, or ended) still gives the session an id until it is
/// read.
pub(super) async fn has_stored_session(session: &Session) -> bool {
    session.get_value(NOTICE).await.is_ok() && session.id().is_some()
}

/// Starts a fresh session for `person` (a new id: whatever id the browser had before is
/// dropped, so a planted session id is useless) and keeps the team they were in, if any.
pub async fn start_session(
    console: &Console,
    session: &Session,
    person: &Person,
    team: Option<TeamId>,
) -> Result<(), ConsoleError> {
    let mut signed_in = console.session_for(person).await?;
    signed_in.team = team;
    // The standard lifetime, whatever a pending single sign-on set before.
    session.set_expiry(Some(super::SESSION_EXPIRY));
    session.cycle_id().await.map_err(session_failed)?;
    session
        .insert(SIGNED_IN, signed_in)
        .await
        .map_err(session_failed)
}

pub(super) fn session_failed(e: tower_sessions::session::Error) -> ConsoleError {
    tracing::error!(error = %e, "the session store failed");
    ConsoleError::failed("Offboard could not keep your session; see the server log.")
}

/// The address a sign-in is counted against: the client's, as the front door worked it out
/// (behind a `--trusted-proxy`, the address that proxy forwarded; `http::client_address`).
fn address_of(client: Option<&ClientAddress>) -> String {
    client
        .map(|ClientAddress(ip)| ip.to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SignInForm {
    email: String,
    password: String,
    next: String,
}

/// `POST /sign-in`.
async fn sign_in(
    State(state): State<AppState>,
    session: Session,
    client: Option<Extension<ClientAddress>>,
    Form(form): Form<SignInForm>,
) -> Response {
    let address = address_of(client.as_ref().map(|Extension(c)| c));
    let back = format!(
        "/sign-in?next={}",
        url::form_urlencoded::byte_serialize(form.next.as_bytes()).collect::<String>()
    );
    let signed_in = state
        .service
        .sign_in_with_password(&form.email, &form.password, &address)
        .await;
    crate::metrics::sign_in(crate::metrics::SignInMethod::Password, signed_in.is_ok());
    match signed_in {
        Ok(person) => match start_session(&state.service, &session, &person, None).await {
            Ok(()) => Redirect::to(safe_next(&form.next)).into_response(),
            Err(e) => notice(&session, &back, &e).await,
        },
        Err(refusal) => refused(&session, &back, refusal).await,
    }
}

/// `POST /sign-out`: this session only.
async fn sign_out(session: Session) -> Response {
    signed_out(&session).await
}

/// The session ended here, and back to the sign-in page saying so.
async fn signed_out(session: &Session) -> Response {
    let _ = session.flush().await;
    with_problem("/sign-in", AccountProblem::SignedOut)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NewPersonForm {
    code: String,
    email: String,
    name: String,
    password: String,
    again: String,
}

impl NewPersonForm {
    fn person(&self) -> NewPerson<'_> {
        NewPerson {
            email: &self.email,
            name: &self.name,
            password: &self.password,
            again: &self.again,
        }
    }

    fn back(&self, page: &str) -> String {
        format!(
            "{page}?code={}",
            url::form_urlencoded::byte_serialize(self.code.as_bytes()).collect::<String>()
        )
    }
}

/// `POST /setup`: the first owner's account, from the link printed in the log.
async fn setup(post: FormPost<()>, Form(form): Form<NewPersonForm>) -> Response {
    let FormPost { state, session, .. } = post;
    match state
        .service
        .complete_setup(&form.code, form.person())
        .await
    {
        // The first thing a new console needs is its site: straight to the Connect page.
        Ok(person) => signed_in_to(&state, &session, &person, None, "/connect").await,
        Err(refusal) => refused(&session, &form.back("/setup"), refusal).await,
    }
}

/// `POST /join`: accepts an invitation, as the signed-in person or as a new account.
async fn join(post: FormPost<Visitor>, Form(form): Form<NewPersonForm>) -> Response {
    let FormPost {
        state,
        session,
        who: visitor,
    } = post;
    let signed_in = visitor.person().cloned();
    let new_person = form.person();
    let answer = state
        .service
        .join(
            &form.code,
            signed_in.as_ref(),
            signed_in.is_none().then_some(new_person),
        )
        .await;
    match answer {
        Ok((person, team)) => signed_in_to(&state, &session, &person, Some(team), "/").await,
        Err(refusal) => refused(&session, &form.back("/join"), refusal).await,
    }
}

async fn signed_in_to(
    state: &AppState,
    session: &Session,
    person: &Person,
    team: Option<TeamId>,
    to: &str,
) -> Response {
    match start_session(&state.service, session, person, team).await {
        Ok(()) => Redirect::to(to).into_response(),
        Err(e) => notice(session, "/sign-in", &e).await,
    }
}

/// `POST /reset`: a new password from a console owner's reset link (the link's code and the
/// new password twice: [`NewPersonForm`]'s fields).
async fn reset(post: FormPost<()>, Form(form): Form<NewPersonForm>) -> Response {
    let FormPost { state, session, .. } = post;
    let reset = state
        .service
        .complete_reset(&form.code, &form.password, &form.again);
    match reset.await {
        Ok(person) => signed_in_to(&state, &session, &person, None, "/").await,
        Err(refusal) => refused(&session, &form.back("/reset"), refusal).await,
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PasswordForm {
    current: String,
    password: String,
    again: String,
}

/// `POST /account/password`: every other session ends; this one goes on with a new id.
async fn change_password(
    post: FormPost<SignedInVisitor>,
    Form(form): Form<PasswordForm>,
) -> Response {
    let FormPost {
        state,
        session,
        who,
    } = post;
    let (person, kept) = (who.person, who.session);
    let change = state
        .service
        .change_password(&person, &form.current, &form.password, &form.again);
    match change.await {
        Ok(()) => match start_session(&state.service, &session, &person, kept.team).await {
            Ok(()) => with_problem("/account", AccountProblem::PasswordChanged),
            Err(e) => notice(&session, "/sign-in", &e).await,
        },
        // Here the password typed is the current one, not a sign-in: say so.
        Err(AccountRefusal::Problem(AccountProblem::WrongPassword)) => {
            with_problem("/account", AccountProblem::CurrentPasswordWrong)
        }
        Err(refusal) => refused(&session, "/account", refusal).await,
    }
}

/// `POST /account/sign-out-everywhere`: every session of the account ends, this one too.
async fn sign_out_everywhere(post: FormPost<Visitor>) -> Response {
    let FormPost {
        state,
        session,
        who,
    } = post;
    if let Some(person) = who.person() {
        if let Err(e) = state.service.sign_out_everywhere(person).await {
            return notice(&session, "/account", &e).await;
        }
    }
    signed_out(&session).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TeamForm {
    team: i64,
}

/// `POST /account/team`: shows another of the person's teams.
async fn switch_team(post: FormPost<SignedInVisitor>, Form(form): Form<TeamForm>) -> Response {
    let FormPost {
        state,
        session,
        who,
    } = post;
    let (person, mut kept) = (who.person, who.session);
    let wanted = TeamId::new(form.team);
    match state.service.member(&person, Some(wanted)).await {
        Ok(Some(member)) if member.team == wanted => {
            kept.team = Some(wanted);
            if let Err(e) = session.insert(SIGNED_IN, kept).await {
                return notice(&session, "/account", &session_failed(e)).await;
            }
            Redirect::to("/").into_response()
        }
        // Not one of theirs: the same answer as a team that does not exist.
        Ok(_) => {
            notice(
                &session,
                "/account",
                &ConsoleError::not_found("That team does not exist."),
            )
            .await
        }
        Err(e) => notice(&session, "/account", &e).await,
    }
}

/// The address links are made with: `--public-url` when set, else the address this request
/// came to (its Host was checked against the allowed names by the request guard).
pub(super) fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.public_url {
        return url.as_str().trim_end_matches('/').to_string();
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// Back to `back` with the new link shown once, or with the refusal's words.
pub(super) async fn link_or_notice(
    session: &Session,
    back: &str,
    answer: Result<NewLink, ConsoleError>,
) -> Response {
    match answer {
        Ok(link) => keep_link(session, link, back).await,
        Err(e) => notice(session, back, &e).await,
    }
}

async fn keep_link(session: &Session, link: NewLink, back: &str) -> Response {
    if let Err(e) = session.insert(NEW_LINK, link).await {
        return notice(session, back, &session_failed(e)).await;
    }
    Redirect::to(back).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_only_returns_to_paths_of_this_console() {
        assert_eq!(safe_next("/history"), "/history");
        assert_eq!(safe_next("/run?job=1&x=2"), "/run?job=1&x=2");
        for outside in [
            "",
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "javascript:alert(1)",
            "history",
            "/sign-in?next=/x",
            "/ok\r\nSet-Cookie: x=1",
        ] {
            assert_eq!(safe_next(outside), "/", "{outside:?}");
        }
    }
}
