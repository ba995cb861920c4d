//! The HTTP floor: wiring of Leptos pages and server functions, sessions, the plain routes,
//! static files, request logs, the health check and the readiness check. Handlers are thin: they learn the caller
//! (`caller.rs`), call the service for the caller's team, and map its answer. `router()` is
//! separate from `serve()` so tests drive it without a socket.

mod account_email;
mod accounts;
mod assets;
pub mod caller;
pub mod client_address;
mod downloads;
mod error;
mod events;
mod forms;
pub mod front_door;
pub mod guard;
mod readiness;
mod retention_forms;
pub mod shutdown;
mod sign_on;
mod state;
mod team_forms;
mod undo_forms;
mod webhook_forms;

pub use assets::{bundle_files, cache_policy, leptos_options};
pub use caller::Caller;
use caller::{open, Doors, GatedRoutes, Reach};
pub use events::WatcherSlots;
pub use forms::MAX_UPLOAD_BYTES;
pub use state::AppState;

use crate::config::{LogFormat, ServeArgs};
use crate::scim::site_guard::SiteGuard;
use crate::secret::{AuditKey, SecretBox};
use crate::service::{self, Console, Settings};
use anyhow::Context;
use app::backend::{AccountsBackend, ConsoleBackend};
use app::{shell, static_shell, App, StaticApp};
use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use leptos::prelude::*;
use leptos_axum::{generate_route_list, handle_server_fns_with_context, LeptosRoutes};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

/// Installs the log subscriber (text or JSON lines on stderr).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_sessions=warn")
    });
    // Colours only on a terminal: a log file or journald gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runs the console until Ctrl-C or SIGTERM.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    if let Some(warning) = crate::data_folder::prepare(&args.database.data_dir)? {
        tracing::warn!("{warning}");
    }
    // Listening comes first, so `/readyz` answers 503 while the database opens and migrates.
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("could not listen on {}", args.addr))?;
    crate::metrics::listen(args.metrics_addr).await?;
    let open_files = front_door::raise_open_file_limit();
    let max_connections = front_door::fit_to_files(args.max_connections as usize, open_files);
    if max_connections < args.max_connections as usize {
        tracing::warn!(
            open_files,
            max_connections,
            "the open-file limit allows fewer connections than --max-connections; raise the \
             limit (LimitNOFILE= under systemd, --ulimit nofile= in Docker)"
        );
    }
    let rules = front_door::DoorRules {
        header_timeout: Duration::from_secs(args.header_timeout_seconds),
        max_connections,
        max_per_address: args.max_connections_per_address as usize,
        trusted: Arc::new(client_address::TrustedProxies::new(
            args.trusted_proxy.clone(),
        )),
    };
    let starting = readiness::Starting::default();
    let shutting_down = starting.shutting_down.clone();
    shutting_down.on_signal();
    let server = tokio::spawn({
        let routes = starting.router();
        let stop = shutting_down.clone();
        // Each request learns its connection's peer and its client's address (sign-in
        // throttling counts per client address) before the readiness router hands it on.
        front_door::serve(listener, routes, rules, async move { stop.wait().await })
    });
    // The audit trail's signing key, apart from the token key (see `secret::AuditKey`).
    let audit_key_text = args.audit_key_text().map_err(anyhow::Error::msg)?;
    let audit_key = AuditKey::load_or_create(
        &args.database.data_dir,
        audit_key_text.as_ref().map(|k| k.expose().as_str()),
    )
    .context("could not load the key that signs the audit trail")?;
    let webhook_key = audit_key.clone();
    let db = service::audit::open_signed(&args.database.effective_database_url(), audit_key)
        .await
        .context("could not open the database")?;
    crate::metrics::watch_pool(db.pool.usage_reader());
    if server.is_finished() {
        // Told to stop while the database was opening: stop before any run resumes.
        server
            .await
            .context("the web server stopped unexpectedly")?;
        tracing::info!("Offboard console stopped before it was ready");
        return Ok(());
    }

    let session_store = db
        .pool
        .session_store()
        .await
        .context("could not prepare the session table")?;
    spawn_session_sweep(
        session_store.clone(),
        Duration::from_secs(args.session_sweep_seconds),
    );
    let secure = args.cookies_secure();
    if secure && args.addr.ip().is_loopback() && args.public_url.is_none() {
        tracing::warn!("--secure-cookies is set but the console is plain http: browsers will not keep the sign-in cookie");
    }
    let sessions = session_layer(session_store, secure);

    let secret_key_text = args.secret_key_text().map_err(anyhow::Error::msg)?;
    let secrets = SecretBox::load_or_create(
        &args.database.data_dir,
        secret_key_text.as_ref().map(|k| k.expose().as_str()),
    )
    .context("could not load the key that encrypts SCIM tokens")?;
    let mut settings = Settings::new(args.database.data_dir.clone());
    settings.limits = service::limits::Limits {
        previews_per_hour: args.previews_per_hour,
        runs_per_hour: args.runs_per_hour,
        runs_per_site: args.runs_per_site.max(1),
        site_concurrency: usize::from(args.site_concurrency),
    };
    settings.limits.check().map_err(anyhow::Error::msg)?;
    // A run alone on its site may use all of the site's requests.
    settings.run.concurrency = settings.limits.site_concurrency;
    settings.job_lease = Duration::from_secs(args.job_lease_seconds);
    settings.webhook_key = webhook_key;
    settings.public_url = args
        .public_url
        .as_ref()
        .map(|u| u.as_str().trim_end_matches('/').to_string());
    settings.http.site_guard = Some(
        SiteGuard::new(args.allow_http_loopback_sites, &args.allow_site_host)
            .through_proxy(args.sites_proxy.clone()),
    );
    // Single sign-on is checked (and the service's settings read) before the console starts:
    // a typo in an issuer is said at once, not at the first sign-in.
    let sso = match args.sso_settings().map_err(anyhow::Error::msg)? {
        Some(settings) => Some(Arc::new(
            crate::sso::SsoClient::discover(settings)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        )),
        None => None,
    };
    settings.mail = match args.mail_settings().map_err(anyhow::Error::msg)? {
        Some(mail) => Some(service::notify::Mailer {
            server: Arc::new(service::notify::mail::Smtp::new(&mail).map_err(anyhow::Error::msg)?),
            from: mail.from.clone(),
        }),
        None => None,
    };
    let console = service::build(db.storage.clone(), secrets, settings);
    announce_setup_link(&console, &args).await;
    console.jobs.resume_unfinished().await;
    // Other replicas exist only on PostgreSQL: one SQLite process resumes its runs at start.
    if args
        .database
        .effective_database_url()
        .starts_with("postgres")
    {
        console.jobs.keep_claiming();
        console.jobs.follow_other_replicas().await;
    }
    // Told to stop: the runs are handed back at once, not after the open pages close (and
    // again below, in case the server stopped before this task's turn came).
    let jobs = console.jobs.clone();
    tokio::spawn({
        let (jobs, stop) = (jobs.clone(), shutting_down.clone());
        async move {
            stop.wait().await;
            jobs.hand_back().await;
        }
    });
    spawn_preview_sweep(console.clone(), args.preview_hours);
    // Every process delivers notifications; each delivery is claimed by one at a time.
    service::notify::worker::spawn(console.clone());
    // Every process looks for due retention listings and deletions; one claims each.
    service::retention::spawn(console.clone());
    // Every process runs the undo windows' clock; each date is claimed by one at a time.
    service::undo::spawn(console.clone());
    service::audit::log_heads_every(
        db.storage.clone(),
        Duration::from_secs(args.audit_head_log_seconds),
    );
    let state = AppState {
        leptos_options: leptos_options(&args.site_root_in_force(), args.addr),
        service: console,
        watchers: WatcherSlots::with_limits(events::WatcherLimits::of(&args)),
        public_url: args.public_url.clone(),
        sso,
    };
    let guard = guard::RequestGuard::new(args.addr, args.public_url.as_ref());
    if guard::RequestGuard::needs_public_url(args.addr, args.public_url.as_ref()) {
        tracing::warn!(
            "the console listens on {0} without --public-url: it answers only to the host \
             names {0}, localhost:{1}, 127.0.0.1:{1} and [::1]:{1}; set --public-url to the \
             address people open",
            args.addr,
            args.addr.port()
        );
    }
    let service = state.service.clone();
    let app = router(state)
        .layer(middleware::from_fn_with_state(
            Arc::new(guard),
            guard::protect,
        ))
        .layer(sessions)
        // Open live-progress streams end with a reconnect hint when the console stops.
        .layer(axum::Extension(shutting_down));
    starting.ready(app, service);
    tracing::info!(
        addr = %args.addr,
        data_dir = %args.database.data_dir.display(),
        "Offboard console listening on http://{}",
        args.addr
    );
    server
        .await
        .context("the web server stopped unexpectedly")?;
    jobs.hand_back().await;
    tracing::info!("Offboard console stopped");
    Ok(())
}

/// Sessions: kept in the database, cookie `HttpOnly`, `SameSite=Lax` (Strict would drop the
/// cookie on the way back from the company's sign-in page, a cross-site redirect), `Secure`
/// unless the console is plain http on loopback, ended after 8 idle hours (and 12 hours after
/// sign-in whatever happens: `http::caller`).
pub fn session_layer<S: tower_sessions::SessionStore + Clone>(
    store: S,
    secure: bool,
) -> SessionManagerLayer<S> {
    SessionManagerLayer::new(store)
        .with_name("offboard_session")
        .with_secure(secure)
        .with_same_site(SameSite::Lax)
        .with_http_only(true)
        .with_expiry(SESSION_EXPIRY)
}

/// A session ends after 8 idle hours.
pub const SESSION_EXPIRY: Expiry =
    Expiry::OnInactivity(tower_sessions::cookie::time::Duration::hours(8));

/// While the console has no account, prints a one-time link that creates the first owner.
/// It is in the log on purpose: whoever can read the server's log runs the server.
async fn announce_setup_link(console: &Console, args: &ServeArgs) {
    match console.setup_link().await {
        Ok(Some(secret)) => {
            let base = match &args.public_url {
                Some(url) => url.as_str().trim_end_matches('/').to_string(),
                None => format!("http://{}", args.addr),
            };
            tracing::warn!(
                "No one can sign in yet. Open {base}/setup?code={secret} to create the first \
                 owner account (the link works once, for {} hours; restart the console for a \
                 new one).",
                service::accounts::SETUP_LINK_HOURS
            );
        }
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e.message, "could not make the setup link"),
    }
}

/// The console's routes: health check, server functions, pages, plain routes, static files.
/// Every request first learns its caller ([`caller::identify`]); pages and server functions
/// then see the service only as the caller's team's ([`team_backend`]).
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let service = state.service.clone();
    let sso = state.sso.clone();
    let context = move || {
        guard::page_csp();
        team_backend(&service, sso.as_deref());
    };
    let options = state.leptos_options.clone();
    let static_options = state.leptos_options.clone();
    let site_root = PathBuf::from(state.leptos_options.site_root.to_string());
    let (plain, mut doors) = plain_route_set().into_parts();
    declare_pages_and_files(&mut doors);
    Router::new()
        .merge(plain)
        .nest_service(
            &format!("/{}", assets::BUNDLE_DIR),
            bundle_files(&site_root),
        )
        .route(SERVER_FNS, get(server_fn_handler).post(server_fn_handler))
        .merge(static_pages(context.clone(), static_options))
        .leptos_routes_with_context(&state, routes, context, move || shell(options.clone()))
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(guard::page_csp, shell))
        .layer(middleware::from_fn(cache_policy))
        .layer(middleware::from_fn_with_state(
            (state.service.clone(), Arc::new(doors)),
            caller::identify,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(request_served),
        )
        .with_state(state)
}

/// The screens the server renders whole (sign-in, account, team…, History, Audit trail) once
/// their data is read, without the app's script (see `app::shell`). Their paths come from
/// [`StaticApp`]'s own routes.
fn static_pages(
    context: impl Fn() + Clone + Send + Sync + 'static,
    options: leptos::prelude::LeptosOptions,
) -> Router<AppState> {
    let render =
        leptos_axum::render_app_async_with_context(context, move || static_shell(options.clone()));
    generate_route_list(StaticApp)
        .into_iter()
        .fold(Router::new(), |router, listing| {
            let render = render.clone();
            router.route(listing.path(), get(move |request: Request| render(request)))
        })
}

/// The plain routes (health, forms, live events, downloads, sign-in and account forms), for the
/// router and for tests that drive them alone (those put a [`Caller`] in the request).
pub fn plain_routes() -> Router<AppState> {
    plain_route_set().into_parts().0
}

/// The plain routes with what each declared it needs.
fn plain_route_set() -> GatedRoutes {
    GatedRoutes::new()
        .route("/healthz", open(get(healthz)))
        .merge(forms::routes())
        .merge(events::routes())
        .merge(downloads::routes())
        .merge(accounts::routes())
        .merge(account_email::routes())
        .merge(team_forms::routes())
        .merge(webhook_forms::routes())
        .merge(retention_forms::routes())
        .merge(undo_forms::routes())
        .merge(sign_on::routes())
}

/// The server functions' one route.
const SERVER_FNS: &str = "/api/{*fn_name}";

/// What the app's pages and server functions, the script bundle and the static files need
/// (declared here, where they are registered; the app declares only their paths). Anything
/// not named needs a team member.
fn declare_pages_and_files(doors: &mut Doors) {
    for page in ["/sign-in", "/setup", "/join", "/reset"] {
        doors.declare(page, Reach::Public);
    }
    for page in ["/account", "/teams"] {
        doors.declare(page, Reach::Person);
    }
    doors.declare_server_fns(
        "/api/",
        &[
            // Answers None to a visitor who is not signed in (the header asks on every page).
            ("whoami", Reach::Public),
            // Says whether a link still works, for the setup, join and reset pages.
            ("link_info", Reach::Public),
            // Whether the sign-in page shows a single sign-on button.
            ("sign_in_options", Reach::Public),
            // Words a refused form left in the visitor's own session (a failed sign-in too).
            ("account_notice", Reach::Public),
            // A console owner's Teams page (the console owner's handle refuses others).
            ("console_teams", Reach::Person),
            // The Account page's email choices and confirmation: anyone signed in, a team or
            // not (confirming the address is how a membership granted by email arrives).
            ("email_choices", Reach::Person),
        ],
    );
    doors.declare_open_prefix(&format!("/{}", assets::BUNDLE_DIR));
    doors.declare_open_file("/favicon.svg");
    // The static screens' one script (app/src/pages/times.rs): sign-in and setup load it too.
    doors.declare_open_file("/local-times.js");
}

/// The span of one request's log line: method and the route's template (`/jobs/{id}/events`,
/// never the ids nor the query string, which may carry personal data). Bodies are never logged.
fn request_span(request: &Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "(no route)".to_string());
    tracing::info_span!("request", method = %request.method(), route = %route)
}

/// One log line per answered request: status and latency, in the request's span.
fn request_served(response: &Response, latency: Duration, _: &tracing::Span) {
    tracing::info!(
        status = response.status().as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0,
        "request served"
    );
}

/// Puts the service, as the caller's team sees it, where pages and server functions find it.
/// Without a caller nothing is provided, so a server function refuses rather than guess a team.
fn team_backend(service: &Arc<Console>, sso: Option<&crate::sso::SsoClient>) {
    if let Some(caller) = Caller::from_leptos_context() {
        let backend: Arc<dyn ConsoleBackend> = Arc::new(service.for_member(&caller.member));
        provide_context(backend);
    }
    if let Some(visitor) = caller::Visitor::from_leptos_context() {
        let backend: Arc<dyn AccountsBackend> = Arc::new(service::accounts::VisitorConsole::new(
            service.clone(),
            visitor.person().cloned(),
            visitor.member().cloned(),
            sso.map(sso_label),
        ));
        provide_context(backend);
    }
}

/// The single sign-on button's words: the sign-in service's host ("login.acme.example").
fn sso_label(sso: &crate::sso::SsoClient) -> String {
    let issuer = sso.issuer();
    let host = url::Url::parse(issuer)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| issuer.to_string());
    format!("your company's sign-in ({host})")
}

async fn server_fn_handler(State(state): State<AppState>, request: Request) -> Response {
    let service = state.service.clone();
    let sso = state.sso.clone();
    handle_server_fns_with_context(move || team_backend(&service, sso.as_deref()), request)
        .await
        .into_response()
}

/// `GET /healthz`: 200 with the version when the database answers, 503 otherwise.
async fn healthz(State(state): State<AppState>) -> Response {
    let version = env!("CARGO_PKG_VERSION");
    match state.service.database_health().await {
        Ok(h) => Json(serde_json::json!({
            "status": "ok",
            "version": version,
            "database": { "status": "ok", "kind": h.database, "migrations": h.migrations },
        }))
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: database failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({
                    "status": "error",
                    "version": version,
                    "database": { "status": "error" },
                })),
            )
                .into_response()
        }
    }
}

/// Deletes ended sessions from the database at start and then every `period` (the store only
/// ignores them when read, so without this every forgotten session stayed forever). A failed
/// sweep is said and the next one tried.
fn spawn_session_sweep<S>(store: S, period: Duration)
where
    S: tower_sessions::session_store::ExpiredDeletion + Send + Sync + 'static,
{
    tokio::spawn(async move {
        let mut every = tokio::time::interval(period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if let Err(e) = store.delete_expired().await {
                tracing::warn!(error = %e, "could not delete ended sessions");
            }
        }
    });
}

/// Removes unconfirmed previews older than `hours` at start and then every hour, so uploads
/// and listings do not pile up in the data folder; and forgets old sign-in failures.
fn spawn_preview_sweep(console: Arc<Console>, hours: u32) {
    let keep = chrono::Duration::hours(i64::from(hours.max(1)));
    tokio::spawn(async move {
        let mut every_hour = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every_hour.tick().await;
            console.expire_previews(keep).await;
            console.forget_old_sign_in_failures().await;
        }
    });
}

/// Request headers from (name, value) pairs, a name given twice standing twice: what the
/// tests of the front door's checks send.
#[cfg(test)]
pub(crate) fn test_headers(pairs: &[(&'static str, &str)]) -> axum::http::HeaderMap {
    let mut map = axum::http::HeaderMap::new();
    for (name, value) in pairs {
        let value = axum::http::HeaderValue::from_str(value).expect("a header value");
        map.append(*name, value);
    }
    map
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn accepted_connections_send_without_delay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(tokio::net::TcpStream::connect(addr));
        let (accepted, _) = listener.accept().await.unwrap();
        // A plain accepted socket has Nagle's algorithm on (the ~40 ms stall this prevents).
        assert!(!accepted.nodelay().unwrap());
        super::front_door::without_delay(&accepted);
        assert!(accepted.nodelay().unwrap());
        client.await.unwrap().unwrap();
    }
}
