//! The browser bundle and caching: where Leptos finds the built site, the precompressed
//! `/pkg/…` files, and how long browsers may keep what they fetched.

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use leptos::prelude::LeptosOptions;
use std::path::Path;
use std::sync::Arc;
use tower_http::services::ServeDir;

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
pub const BUNDLE_DIR: &str = "pkg";
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::response::Html;
    use axum::routing::get;
    use axum::{middleware, Router};
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
}
