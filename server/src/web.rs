//! The HTTP side of the console: wiring of Leptos pages and server functions, sessions,
//! static files and the health check. `router()` is separate from `serve()` so tests can
//! drive it without a socket.

use crate::config::{LogFormat, ServeArgs};
use crate::console::Console;
use crate::console_routes::WatcherSlots;
use crate::engine::runner::RunOptions;
use crate::engine::SystemClock;
use crate::jobs::JobSupervisor;
use crate::scim::http::HttpOptions;
use crate::secret::SecretBox;
use crate::storage::{self, Storage, DEFAULT_TEAM};
use anyhow::Context;
use app::backend::ConsoleBackend;
use app::{shell, App};
use axum::extract::{FromRef, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use leptos::prelude::*;
use leptos_axum::{generate_route_list, handle_server_fns_with_context, LeptosRoutes};
use std::sync::Arc;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_sqlx_store::SqliteStore;

/// Everything a request handler may need.
#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub storage: Arc<dyn Storage>,
    pub backend: Arc<dyn ConsoleBackend>,
    pub jobs: Arc<JobSupervisor>,
    /// Caps on open live-progress streams.
    pub watchers: Arc<WatcherSlots>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> LeptosOptions {
        state.leptos_options.clone()
    }
}

/// Installs the log subscriber (text or JSON lines on stderr).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_sessions=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runs the console until Ctrl-C or SIGTERM.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_format);
    if let Some(warning) = crate::data_folder::prepare(&args.data_dir)? {
        tracing::warn!("{warning}");
    }
    let db = storage::open(&args.effective_database_url())
        .await
        .context("could not open the database")?;

    let session_store = SqliteStore::new(db.sqlite.clone());
    session_store
        .migrate()
        .await
        .context("could not prepare the session table")?;
    let sessions = SessionManagerLayer::new(session_store)
        .with_secure(args.secure_cookies)
        .with_same_site(SameSite::Strict)
        .with_http_only(true)
        .with_expiry(Expiry::OnInactivity(
            tower_sessions::cookie::time::Duration::hours(8),
        ));

    let leptos_options = LeptosOptions::builder()
        .output_name("offboard")
        .site_root(args.site_root.to_string_lossy().to_string())
        .site_pkg_dir("pkg")
        .site_addr(args.addr)
        .build();
    let secrets = SecretBox::load_or_create(
        &args.data_dir,
        args.secret_key.as_ref().map(|k| k.0.as_str()),
    )
    .context("could not load the key that encrypts SCIM tokens")?;
    let http = HttpOptions::default();
    let jobs = JobSupervisor::new(
        db.storage.clone(),
        secrets.clone(),
        http.clone(),
        RunOptions::default(),
        args.data_dir.clone(),
    );
    jobs.resume_unfinished().await;
    let console = Arc::new(Console::new(
        db.storage.clone(),
        Arc::new(SystemClock),
        secrets,
        http,
        jobs.clone(),
    ));
    spawn_preview_sweep(console.clone(), args.preview_hours);
    let backend: Arc<dyn ConsoleBackend> = console;
    let state = AppState {
        leptos_options,
        storage: db.storage.clone(),
        backend,
        jobs,
        watchers: WatcherSlots::new(args.max_watchers_per_run, args.max_watchers),
    };
    let app = router(state).layer(sessions);

    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("could not listen on {}", args.addr))?;
    tracing::info!(
        addr = %args.addr,
        data_dir = %args.data_dir.display(),
        "Offboard console listening on http://{}",
        args.addr
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the web server stopped with an error")?;
    tracing::info!("Offboard console stopped");
    Ok(())
}

/// The console's routes: health check, server functions, pages, static files.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let backend = state.backend.clone();
    let context = move || provide_context(backend.clone());
    let options = state.leptos_options.clone();
    Router::new()
        .route("/healthz", get(healthz))
        .merge(crate::console_routes::routes())
        .route(
            "/api/{*fn_name}",
            get(server_fn_handler).post(server_fn_handler),
        )
        .leptos_routes_with_context(&state, routes, context, move || shell(options.clone()))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .with_state(state)
}

async fn server_fn_handler(State(state): State<AppState>, request: Request) -> Response {
    let backend = state.backend.clone();
    handle_server_fns_with_context(move || provide_context(backend.clone()), request)
        .await
        .into_response()
}

/// `GET /healthz`: 200 with the version when the database answers, 503 otherwise.
async fn healthz(State(state): State<AppState>) -> Response {
    let version = env!("CARGO_PKG_VERSION");
    match state.storage.health(DEFAULT_TEAM).await {
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

/// Removes unconfirmed previews older than `hours` at start and then every hour, so uploads
/// and listings do not pile up in the data folder.
fn spawn_preview_sweep(console: Arc<Console>, hours: u32) {
    let keep = chrono::Duration::hours(i64::from(hours.max(1)));
    tokio::spawn(async move {
        let mut every_hour = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every_hour.tick().await;
            console.expire_previews(keep).await;
        }
    });
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
