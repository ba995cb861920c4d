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
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::{Listener, ListenerExt};
use axum::{Json, Router};
use leptos::prelude::*;
use leptos_axum::{generate_route_list, handle_server_fns_with_context, LeptosRoutes};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tower_http::services::ServeDir;
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

    let leptos_options = leptos_options(&args.site_root, args.addr);
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
    axum::serve(without_delay(listener), app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the web server stopped with an error")?;
    tracing::info!("Offboard console stopped");
    Ok(())
}

/// Where Leptos finds the site. A site built by `make site` has content-hashed bundle names
/// listed in `hash.txt` at its root; Leptos then writes those names into every page. (Leptos
/// looks for the hash file next to the executable unless given an absolute path, hence the
/// absolute path.)
pub fn leptos_options(site_root: &Path, addr: std::net::SocketAddr) -> LeptosOptions {
    let hash_file = std::path::absolute(site_root.join(HASH_FILE))
        .unwrap_or_else(|_| site_root.join(HASH_FILE));
    LeptosOptions::builder()
        .output_name("offboard")
        .site_root(site_root.to_string_lossy().to_string())
        .site_pkg_dir(BUNDLE_DIR)
        .site_addr(addr)
        .hash_files(hash_file.is_file())
        .hash_file(Arc::from(hash_file.to_string_lossy().as_ref()))
        .build()
}

/// The hash list `make site` writes at the site root (scripts/finish-site.mjs).
const HASH_FILE: &str = "hash.txt";
/// The site folder holding the browser bundle (WASM, its JS loader, the stylesheet).
const BUNDLE_DIR: &str = "pkg";
/// For a file whose name carries a hash of its content: a new build has new names.
const CACHE_FOREVER: &str = "public, max-age=31536000, immutable";
/// For pages: the browser keeps a copy but asks before each use, so a new build shows at once.
const CACHE_REVALIDATE: &str = "no-cache";

/// `/pkg/…`: the bundle, as the `.br` or `.gz` copy made at build time when the request's
/// Accept-Encoding allows it, the file itself otherwise.
pub fn bundle_files(site_root: &Path) -> ServeDir {
    ServeDir::new(site_root.join(BUNDLE_DIR))
        .precompressed_br()
        .precompressed_gzip()
}

/// True for `offboard.0123456789abcdef.wasm`: a name with a hex part of 8 digits or more.
fn is_content_hashed(file_name: &str) -> bool {
    let parts: Vec<&str> = file_name.split('.').collect();
    parts.len() >= 3
        && parts[1..parts.len() - 1]
            .iter()
            .any(|p| p.len() >= 8 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Sets how long browsers keep what they fetched: content-hashed bundle files forever, HTML
/// pages only with a check. Other responses keep the header their handler chose. Bundle files
/// also say that they vary with Accept-Encoding.
pub async fn cache_policy(request: Request, next: Next) -> Response {
    let bundle_file = request
        .uri()
        .path()
        .strip_prefix(&format!("/{BUNDLE_DIR}/"))
        .map(str::to_string);
    let hashed = bundle_file
        .as_deref()
        .is_some_and(|name| !name.contains('/') && is_content_hashed(name));
    let mut response = next.run(request).await;
    if bundle_file.is_some() {
        // The same address gives brotli, gzip or raw bytes: shared caches must keep them apart.
        response
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if response.headers().contains_key(header::CACHE_CONTROL) {
        return response;
    }
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let policy = if hashed && response.status().is_success() {
        Some(CACHE_FOREVER)
    } else if is_html {
        Some(CACHE_REVALIDATE)
    } else {
        None
    };
    if let Some(policy) = policy {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
    }
    response
}

/// The console's routes: health check, server functions, pages, static files.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let backend = state.backend.clone();
    let context = move || provide_context(backend.clone());
    let options = state.leptos_options.clone();
    let site_root = PathBuf::from(state.leptos_options.site_root.to_string());
    Router::new()
        .route("/healthz", get(healthz))
        .nest_service(&format!("/{BUNDLE_DIR}"), bundle_files(&site_root))
        .merge(crate::console_routes::routes())
        .route(
            "/api/{*fn_name}",
            get(server_fn_handler).post(server_fn_handler),
        )
        .leptos_routes_with_context(&state, routes, context, move || shell(options.clone()))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(middleware::from_fn(cache_policy))
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

/// `listener`, with `TCP_NODELAY` on every connection it accepts. Without it the second write
/// of a response (the body after the headers) waits for the browser's delayed ACK, about 40 ms
/// on Linux, on every request of a kept-alive connection.
pub fn without_delay(
    listener: tokio::net::TcpListener,
) -> impl Listener<Io = tokio::net::TcpStream, Addr = std::net::SocketAddr> {
    listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY on a connection");
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::response::Html;
    use tower::ServiceExt;

    const HASHED: &str = "offboard.0123456789abcdef.js";

    /// A site folder as `make site` leaves it: each copy has different bytes, so the body
    /// shows which one was sent.
    fn built_site() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join(BUNDLE_DIR);
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::write(pkg.join(HASHED), "raw script").unwrap();
        std::fs::write(pkg.join(format!("{HASHED}.br")), "brotli bytes").unwrap();
        std::fs::write(pkg.join(format!("{HASHED}.gz")), "gzip bytes").unwrap();
        std::fs::write(pkg.join("unhashed.js"), "old-style name").unwrap();
        dir
    }

    fn site_router(site: &Path) -> Router {
        Router::new()
            .nest_service("/pkg", bundle_files(site))
            .route("/page", get(|| async { Html("<p>a page</p>") }))
            .layer(middleware::from_fn(cache_policy))
    }

    async fn fetch(router: &Router, path: &str, accept: Option<&str>) -> (Response, String) {
        let mut request = Request::builder().uri(path);
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT_ENCODING, accept);
        }
        let response = router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        (Response::from_parts(parts, Body::empty()), text)
    }

    fn header_of(response: &Response, name: header::HeaderName) -> Option<&str> {
        response.headers().get(name).and_then(|v| v.to_str().ok())
    }

    #[tokio::test]
    async fn bundle_files_are_sent_compressed_when_the_browser_accepts_it() {
        let site = built_site();
        let router = site_router(site.path());
        let path = format!("/pkg/{HASHED}");
        for (accept, encoding, body) in [
            (Some("gzip, deflate, br"), Some("br"), "brotli bytes"),
            (Some("gzip"), Some("gzip"), "gzip bytes"),
            (Some("identity"), None, "raw script"),
            (None, None, "raw script"),
        ] {
            let (response, text) = fetch(&router, &path, accept).await;
            assert_eq!(response.status(), StatusCode::OK, "{accept:?}");
            assert_eq!(header_of(&response, header::CONTENT_ENCODING), encoding);
            assert_eq!(text, body, "{accept:?}");
            assert_eq!(
                header_of(&response, header::CONTENT_TYPE),
                Some("text/javascript")
            );
            assert_eq!(
                header_of(&response, header::CACHE_CONTROL),
                Some(CACHE_FOREVER)
            );
            assert_eq!(header_of(&response, header::VARY), Some("accept-encoding"));
        }
    }

    #[tokio::test]
    async fn only_hashed_names_are_cached_forever_and_pages_are_revalidated() {
        let site = built_site();
        let router = site_router(site.path());
        let (response, text) = fetch(&router, "/pkg/unhashed.js", Some("br")).await;
        assert_eq!(text, "old-style name");
        assert_eq!(header_of(&response, header::CACHE_CONTROL), None);
        let (response, _) = fetch(&router, "/pkg/offboard.deadbeef00.css", None).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(header_of(&response, header::CACHE_CONTROL), None);
        let (response, text) = fetch(&router, "/page", None).await;
        assert_eq!(text, "<p>a page</p>");
        assert_eq!(
            header_of(&response, header::CACHE_CONTROL),
            Some(CACHE_REVALIDATE)
        );
    }

    #[test]
    fn content_hashed_names_are_recognised() {
        assert!(is_content_hashed("offboard.0123456789abcdef.wasm"));
        assert!(is_content_hashed("offboard.DEADBEEF.css"));
        assert!(!is_content_hashed("offboard.wasm"));
        assert!(!is_content_hashed("offboard.js.br"));
        assert!(!is_content_hashed("offboard.1234567.js"), "too short");
        assert!(
            !is_content_hashed("offboard.0123456789abcdeg.js"),
            "not hex"
        );
        assert!(!is_content_hashed("0123456789abcdef"));
    }

    #[test]
    fn a_built_site_names_its_hash_file_absolutely() {
        let site = built_site();
        let addr = "127.0.0.1:3000".parse().unwrap();
        assert!(!leptos_options(site.path(), addr).hash_files);
        std::fs::write(site.path().join(HASH_FILE), "js: 0123456789abcdef\n").unwrap();
        let options = leptos_options(site.path(), addr);
        assert!(options.hash_files);
        assert!(Path::new(options.hash_file.as_ref()).is_absolute());
    }

    #[tokio::test]
    async fn accepted_connections_send_without_delay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut listener = without_delay(listener);
        let client = tokio::spawn(tokio::net::TcpStream::connect(addr));
        let (accepted, _) = listener.accept().await;
        // A plain accepted socket has Nagle's algorithm on (the ~40 ms stall this prevents).
        assert!(accepted.nodelay().unwrap());
        client.await.unwrap().unwrap();
    }
}
