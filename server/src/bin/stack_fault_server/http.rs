//! The fault server's HTTP face: SCIM routes per edition, the `/_control` API, in-flight tracking.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::faults;
use crate::site::{Admission, Reply, RequestKind, SettingsChange, Site, Startup};
use crate::users;

/// Which Stack product the server pretends to be; decides the SCIM path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Edition {
    /// `/api/scim/v2/users`
    Enterprise,
    /// `/c/{team}/auth/scim/v2/users`
    Business,
}

#[derive(Clone)]
pub struct App {
    site: Arc<Mutex<Site>>,
    startup: Arc<Startup>,
    shutdown: watch::Receiver<bool>,
}

impl App {
    pub fn new(startup: Startup, shutdown: watch::Receiver<bool>) -> App {
        App {
            site: Arc::new(Mutex::new(Site::new(&startup))),
            startup: Arc::new(startup),
            shutdown,
        }
    }

    /// A panic in one handler must not wedge every later request, so a poisoned lock is reused.
    fn site(&self) -> MutexGuard<'_, Site> {
        self.site
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sleeps, but wakes at once when the server is shutting down.
    async fn sleep(&self, duration: Duration) {
        let mut shutdown = self.shutdown.clone();
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = shutdown.changed() => {}
        }
    }

    /// Every SCIM request: admission (auth, throttling, faults), the work, then any
    /// scripted silence.
    async fn respond(
        &self,
        headers: &HeaderMap,
        kind: RequestKind,
        account_id: Option<&str>,
        work: impl FnOnce(&mut Site) -> Reply,
    ) -> Response {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        let admission = self.site().admit(authorization, kind, account_id);
        match admission {
            Admission::Reply(reply) => into_response(reply),
            Admission::SleepThenReply(duration, reply) => {
                self.sleep(duration).await;
                into_response(reply)
            }
            Admission::Proceed { then_sleep } => {
                let reply = work(&mut self.site());
                if let Some(duration) = then_sleep {
                    self.sleep(duration).await;
                }
                into_response(reply)
            }
        }
    }
}

fn into_response(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = if reply.html {
        (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<!DOCTYPE html><html><head><title>Log in</title></head>\
             <body><form action=\"/users/login\">Log in to continue</form></body></html>",
        )
            .into_response()
    } else {
        match reply.body {
            Some(body) => (status, Json(body)).into_response(),
            None => status.into_response(),
        }
    };
    if let Some(value) = reply
        .retry_after
        .and_then(|v| HeaderValue::from_str(&v).ok())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Counts requests in flight (for `peak_in_flight`), adds the configured latency, and
/// records each reply's status. The guard also counts requests whose client hung up.
async fn track_scim_request(State(app): State<App>, request: Request, next: Next) -> Response {
    struct InFlight<'a> {
        app: &'a App,
        delete: bool,
        status: Option<u16>,
    }
    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            self.app.site().request_finished(self.delete, self.status);
        }
    }
    let delete = request.method() == Method::DELETE;
    let latency = {
        let mut site = app.site();
        site.request_started(delete);
        site.settings.latency_ms
    };
    let mut guard = InFlight {
        app: &app,
        delete,
        status: None,
    };
    if latency > 0 {
        app.sleep(Duration::from_millis(latency)).await;
    }
    // A held DELETE waits here until the test lets it go (or the server stops).
    while delete && app.site().settings.hold_deletes && !*app.shutdown.borrow() {
        app.sleep(Duration::from_millis(10)).await;
    }
    let response = if app.site().settings.down {
        // Down: nothing behind the proxy answers.
        StatusCode::SERVICE_UNAVAILABLE.into_response()
    } else {
        next.run(request).await
    };
    guard.status = Some(response.status().as_u16());
    response
}

fn account(params: &HashMap<String, String>) -> String {
    params.get("id").cloned().unwrap_or_default()
}

async fn list_users(
    State(app): State<App>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    app.respond(&headers, RequestKind::List, None, |site| site.list(&query))
        .await
}

async fn create_user(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    app.respond(&headers, RequestKind::Create, None, |site| {
        site.create(&body)
    })
    .await
}

/// GET, DELETE, PATCH or PUT on one user: the methods of one route, one handler.
async fn one_user(
    State(app): State<App>,
    Path(params): Path<HashMap<String, String>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = account(&params);
    let kind = match method {
        Method::DELETE => RequestKind::Delete,
        Method::PATCH => RequestKind::Patch,
        Method::PUT => RequestKind::Put,
        _ => RequestKind::Get,
    };
    app.respond(&headers, kind, Some(&id), |site| match kind {
        RequestKind::Delete => site.delete(&id),
        RequestKind::Patch => site.patch(&id, &body),
        RequestKind::Put => site.put(&id, &body),
        _ => site.get(&id),
    })
    .await
}

fn scim_routes(users_path: &str) -> Router<App> {
    Router::new()
        .route(users_path, get(list_users).post(create_user))
        .route(
            &format!("{users_path}/{{id}}"),
            get(one_user).delete(one_user).patch(one_user).put(one_user),
        )
}

/// The SCIM path for the edition, as the official script builds it from the site URL.
pub fn users_path(edition: Edition) -> &'static str {
    match edition {
        Edition::Enterprise => "/api/scim/v2/users",
        Edition::Business => "/c/{team}/auth/scim/v2/users",
    }
}

/// The RFC 7644 style base some providers use; always served.
pub const RFC_USERS_PATH: &str = "/v2/Users";

fn control_error(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "ErrorMessage": message.into() })),
    )
        .into_response()
}

async fn control_state(State(app): State<App>) -> Json<Value> {
    Json(app.site().state_json())
}

async fn control_reset(State(app): State<App>) -> Json<Value> {
    let mut site = app.site();
    site.reset(&app.startup);
    Json(site.state_json())
}

async fn control_users(State(app): State<App>, Json(body): Json<Value>) -> Response {
    match users::load(body) {
        Ok(loaded) => {
            let count = loaded.len();
            app.site().replace_users(loaded);
            Json(json!({ "users": count })).into_response()
        }
        Err(problem) => control_error(problem),
    }
}

#[derive(Deserialize)]
struct FaultScript {
    account_id: Value,
    script: Vec<String>,
}

async fn control_faults(State(app): State<App>, Json(body): Json<FaultScript>) -> Response {
    let account_id = match body.account_id {
        Value::String(id) if !id.is_empty() => id,
        Value::Number(id) => id.to_string(),
        _ => return control_error("account_id must be a non-empty string or a number"),
    };
    let steps: Result<Vec<_>, String> = body.script.iter().map(|s| faults::parse_step(s)).collect();
    match steps {
        Ok(steps) => {
            let count = steps.len();
            app.site().set_script(account_id.clone(), steps);
            Json(json!({ "account_id": account_id, "steps": count })).into_response()
        }
        Err(problem) => control_error(problem),
    }
}

#[derive(Deserialize)]
struct Burst {
    count: u64,
    #[serde(default = "default_burst_status")]
    status: u16,
}

fn default_burst_status() -> u16 {
    503
}

async fn control_burst(State(app): State<App>, Json(burst): Json<Burst>) -> Response {
    if !(400..=599).contains(&burst.status) {
        return control_error("status must be between 400 and 599");
    }
    app.site().set_burst(burst.count, burst.status);
    Json(json!({ "count": burst.count, "status": burst.status })).into_response()
}

async fn control_settings(
    State(app): State<App>,
    Json(change): Json<SettingsChange>,
) -> Json<Value> {
    let mut site = app.site();
    site.change_settings(change);
    let settings = &site.settings;
    Json(json!({
        "latency_ms": settings.latency_ms,
        "rate_limit": settings.rate_limit,
        "retry_after_date": settings.retry_after_date,
        "page_cap": settings.page_cap,
        "ignore_filter": settings.ignore_filter,
        "deletion_disabled": settings.deletion_disabled,
        "promotion_allowed": settings.promotion_allowed,
        "timeout_sleep_ms": settings.timeout_sleep_ms,
        "hold_deletes": settings.hold_deletes,
        "down": settings.down,
    }))
}

/// The control API needs no token, so it answers loopback callers only (the server also
/// binds to 127.0.0.1, this is the second lock on the door).
async fn loopback_only(request: Request, next: Next) -> Response {
    let remote = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    match remote {
        Some(ip) if !ip.is_loopback() => (
            StatusCode::FORBIDDEN,
            Json(json!({"ErrorMessage": "The control API answers local callers only."})),
        )
            .into_response(),
        _ => next.run(request).await,
    }
}

async fn not_a_scim_path() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        Body::from("<!DOCTYPE html><html><body><h1>Page not found</h1></body></html>"),
    )
        .into_response()
}

pub fn router(app: App, edition: Edition) -> Router {
    let scim = scim_routes(users_path(edition))
        .merge(scim_routes(RFC_USERS_PATH))
        .route_layer(middleware::from_fn_with_state(
            app.clone(),
            track_scim_request,
        ));
    let control = Router::new()
        .route("/_control/state", get(control_state))
        .route("/_control/reset", post(control_reset))
        .route("/_control/users", post(control_users))
        .route("/_control/faults", post(control_faults))
        .route("/_control/burst", post(control_burst))
        .route("/_control/settings", post(control_settings))
        .route_layer(middleware::from_fn(loopback_only));
    scim.merge(control)
        .fallback(not_a_scim_path)
        .with_state(app)
}
