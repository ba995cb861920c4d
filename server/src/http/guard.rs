//! Refuses what a browser can be tricked into sending — a request for a foreign host name (DNS
//! rebinding) and a state-changing request from another site (CSRF) — and puts the security
//! headers (CSP, no framing, nosniff, no referrer to other sites, no caching of personal data)
//! on every answer.
//!
//! Decisions (README "Hardening" says the same to the admin):
//! - Without `--public-url` the console answers only to the host it listens on and to
//!   `localhost`, `127.0.0.1` and `[::1]` with its port, so `make run` and the tests keep
//!   working and a rebinding name never does. With it, only that URL's host (and port).
//! - `GET /healthz` is answered whatever the host: load balancers probe it by IP address and it
//!   tells nothing but the version.
//! - A state-changing request (any method but GET/HEAD/OPTIONS, and every call under `/api/`,
//!   whose server functions change things whatever the method) must come from the console's
//!   own origin: `Sec-Fetch-Site`, when sent, must be `same-origin`; `Origin`, when sent, must
//!   be the console's; without `Origin`, a `Referer` must be the console's. A request with none
//!   of the three is not from a browser (every current browser sends `Origin` on a POST), so it
//!   cannot be a forged cross-site request and is let through: scripts and tests use that.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use url::Url;

/// Who may address the console, and from where forms and server calls may come.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestGuard {
    /// Accepted `Host` values, lower case (`host:port`, plus `host` alone on a default port).
    hosts: Vec<String>,
    /// Accepted `Origin` values (`scheme://host[:port]`, as browsers send them).
    origins: Vec<String>,
}

/// Why a request was refused, in the admin's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    ForeignHost,
    CrossSite,
}

impl Refusal {
    fn message(&self) -> &'static str {
        match self {
            Refusal::ForeignHost => {
                "Offboard refused this request: it was addressed to a host name this console \
                 does not answer to. Open the console at its own address (the one its operator \
                 set with --public-url)."
            }
            Refusal::CrossSite => {
                "Offboard refused this request: it was sent by another web site, not by the \
                 console's own pages, so nothing was changed. If you pressed a button in the \
                 console, reload its page and try again."
            }
        }
    }
}

impl RequestGuard {
    /// The guard for a console listening on `addr`, opened at `public_url` when given.
    pub fn new(addr: SocketAddr, public_url: Option<&Url>) -> RequestGuard {
        let mut hosts = Vec::new();
        let mut origins = Vec::new();
        match public_url {
            Some(url) => {
                let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
                let port = url.port_or_known_default().unwrap_or(80);
                hosts.push(format!("{host}:{port}"));
                if url.port().is_none() {
                    hosts.push(host);
                }
                origins.push(url.origin().ascii_serialization().to_ascii_lowercase());
            }
            None => {
                let port = addr.port();
                let listen = match addr {
                    SocketAddr::V4(a) => a.ip().to_string(),
                    SocketAddr::V6(a) => format!("[{}]", a.ip()),
                };
                for host in [listen.as_str(), "localhost", "127.0.0.1", "[::1]"] {
                    let with_port = format!("{host}:{port}");
                    if hosts.contains(&with_port) {
                        continue;
                    }
                    hosts.push(with_port.clone());
                    if port == 80 {
                        hosts.push(host.to_string());
                        origins.push(format!("http://{host}"));
                    }
                    origins.push(format!("http://{with_port}"));
                    origins.push(format!("https://{with_port}"));
                }
            }
        }
        RequestGuard { hosts, origins }
    }

    /// True when the console listens on every interface without `--public-url`: then only
    /// loopback names reach it, which the start-up log says.
    pub fn needs_public_url(addr: SocketAddr, public_url: Option<&Url>) -> bool {
        public_url.is_none() && !addr.ip().is_loopback()
    }

    /// Checks the `Host` a request was sent to.
    pub fn check_host(&self, host: Option<&str>) -> Result<(), Refusal> {
        let host = host
            .map(|h| h.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if self.hosts.contains(&host) {
            Ok(())
        } else {
            Err(Refusal::ForeignHost)
        }
    }

    /// Checks that a request which may change something comes from the console's own pages.
    pub fn check_origin(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let text = |name| {
            headers
                .get(name)
                .map(|v| v.to_str().unwrap_or("(unreadable)"))
        };
        if let Some(site) = text("sec-fetch-site") {
            if !site.trim().eq_ignore_ascii_case("same-origin") {
                return Err(Refusal::CrossSite);
            }
        }
        match (text("origin"), text("referer")) {
            (Some(origin), _) => self.own_origin(origin),
            (None, Some(referer)) => match Url::parse(referer) {
                Ok(url) => self.own_origin(&url.origin().ascii_serialization()),
                Err(_) => Err(Refusal::CrossSite),
            },
            // Not a browser (see the module's decisions).
            (None, None) => Ok(()),
        }
    }

    fn own_origin(&self, origin: &str) -> Result<(), Refusal> {
        let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        if self.origins.contains(&origin) {
            Ok(())
        } else {
            Err(Refusal::CrossSite)
        }
    }

    /// Whether `method` on `path` may change something (and so must pass [`Self::check_origin`]).
    fn changes_state(method: &Method, path: &str) -> bool {
        !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
            || path.starts_with("/api/")
    }
}

/// Middleware: the host and origin checks, then the security headers on whatever is answered.
pub async fn protect(
    State(guard): State<Arc<RequestGuard>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_string();
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    let checked = if path == "/healthz" {
        Ok(())
    } else {
        guard.check_host(host.as_deref()).and_then(|()| {
            if RequestGuard::changes_state(request.method(), &path) {
                guard.check_origin(request.headers())
            } else {
                Ok(())
            }
        })
    };
    let mut response = match checked {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            // The path is logged without its query string, which may carry personal data.
            tracing::warn!(method = %request.method(), path = %path, reason = ?refusal, "refused a request");
            (
                StatusCode::FORBIDDEN,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                refusal.message(),
            )
                .into_response()
        }
    };
    security_headers(response.headers_mut());
    response
}

/// The Content-Security-Policy: scripts only from the console itself (and the one inline
/// module script Leptos writes to start hydration, allowed by its per-response nonce), the
/// WASM compiled by the browser (`'wasm-unsafe-eval'`), no plugins, no framing, forms and
/// fetches only to the console. Inline `style` attributes stay allowed (the run's outcome bar
/// sets its widths with one); `<style>` elements do not.
pub fn content_security_policy(nonce: Option<&str>) -> String {
    let script = match nonce {
        Some(n) => format!("'self' 'nonce-{n}' 'wasm-unsafe-eval'"),
        None => "'self' 'wasm-unsafe-eval'".to_string(),
    };
    format!(
        "default-src 'none'; script-src {script}; style-src 'self'; \
         style-src-attr 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
         font-src 'self'; manifest-src 'self'; form-action 'self'; base-uri 'none'; \
         frame-ancestors 'none'; object-src 'none'"
    )
}

/// For Leptos pages: sends the policy with the nonce Leptos put on its inline scripts for this
/// response. Runs in the render's context (the router's context closure and its fallback).
pub fn page_csp() {
    let nonce = leptos::nonce::use_nonce();
    let options = leptos::prelude::use_context::<leptos_axum::ResponseOptions>();
    if let (Some(nonce), Some(options)) = (nonce, options) {
        if let Ok(value) = HeaderValue::from_str(&content_security_policy(Some(&nonce))) {
            options.insert_header(header::CONTENT_SECURITY_POLICY, value);
        }
    }
}

/// The headers every answer carries. A page keeps the policy with its nonce; anything else
/// gets the policy without one. Only content-hashed bundle files may be kept by the browser:
/// everything else (pages, server-function answers, reports, live progress) can carry
/// personal data, so it is `no-store`.
fn security_headers(headers: &mut HeaderMap) {
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        if let Ok(value) = HeaderValue::from_str(&content_security_policy(None)) {
            headers.insert(header::CONTENT_SECURITY_POLICY, value);
        }
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // `same-origin`, not `no-referrer`: under `no-referrer` Chromium sends `Origin: null` on
    // the console's own form posts, which the same-origin check must refuse.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    let kept_for_good = headers
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("immutable"));
    if !kept_for_good {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_headers as headers;

    fn local() -> RequestGuard {
        RequestGuard::new("127.0.0.1:3000".parse().unwrap(), None)
    }

    fn public() -> RequestGuard {
        let url = Url::parse("https://Offboard.Example.com/").unwrap();
        RequestGuard::new("0.0.0.0:8080".parse().unwrap(), Some(&url))
    }

    /// `guard` answers the `answered` hosts and refuses the `refused` ones.
    fn check_hosts(guard: &RequestGuard, answered: &[&str], refused: &[&str]) {
        for host in answered {
            assert_eq!(guard.check_host(Some(host)), Ok(()), "{host}");
        }
        for host in refused {
            let answer = guard.check_host(Some(host));
            assert_eq!(answer, Err(Refusal::ForeignHost), "{host}");
        }
    }

    #[test]
    fn without_a_public_url_only_loopback_names_on_the_port_are_answered() {
        let guard = local();
        check_hosts(
            &guard,
            &[
                "127.0.0.1:3000",
                "localhost:3000",
                "LOCALHOST:3000",
                "[::1]:3000",
            ],
            &[
                "evil.example:3000",
                "evil.example",
                "127.0.0.1",
                "127.0.0.1:3001",
                "localhost",
                "",
                "127.0.0.1:3000.evil.example",
            ],
        );
        assert_eq!(guard.check_host(None), Err(Refusal::ForeignHost));
    }

    #[test]
    fn the_listen_address_itself_is_answered() {
        let guard = RequestGuard::new("192.168.1.20:3000".parse().unwrap(), None);
        check_hosts(&guard, &["192.168.1.20:3000", "localhost:3000"], &[]);
        let v6 = RequestGuard::new("[fd00::5]:3000".parse().unwrap(), None);
        check_hosts(&v6, &["[fd00::5]:3000"], &[]);
    }

    #[test]
    fn with_a_public_url_only_its_host_is_answered() {
        check_hosts(
            &public(),
            &["offboard.example.com", "offboard.example.com:443"],
            &[
                "localhost:8080",
                "127.0.0.1:8080",
                "offboard.example.com:8080",
                "evil.example",
            ],
        );
        let with_port = RequestGuard::new(
            "0.0.0.0:8080".parse().unwrap(),
            Some(&Url::parse("http://console.lan:8080").unwrap()),
        );
        check_hosts(&with_port, &["console.lan:8080"], &["console.lan"]);
    }

    #[test]
    fn a_listen_address_on_every_interface_needs_a_public_url() {
        let any: SocketAddr = "0.0.0.0:3000".parse().unwrap();
        assert!(RequestGuard::needs_public_url(any, None));
        let url = Url::parse("https://offboard.example.com").unwrap();
        assert!(!RequestGuard::needs_public_url(any, Some(&url)));
        assert!(!RequestGuard::needs_public_url(
            "127.0.0.1:3000".parse().unwrap(),
            None
        ));
    }

    #[test]
    fn the_consoles_own_pages_may_post() {
        let guard = local();
        for own in [
            headers(&[
                ("origin", "http://127.0.0.1:3000"),
                ("sec-fetch-site", "same-origin"),
            ]),
            headers(&[("origin", "http://localhost:3000")]),
            headers(&[("referer", "http://127.0.0.1:3000/preview?id=x")]),
            // Not a browser: nothing to forge with.
            headers(&[]),
        ] {
            assert_eq!(guard.check_origin(&own), Ok(()), "{own:?}");
        }
        let public = public();
        let own = headers(&[("origin", "https://offboard.example.com")]);
        assert_eq!(public.check_origin(&own), Ok(()));
    }

    #[test]
    fn another_site_may_not_post() {
        let guard = local();
        for forged in [
            headers(&[("origin", "https://evil.example")]),
            headers(&[("origin", "null")]),
            headers(&[("origin", "http://127.0.0.1:3001")]),
            headers(&[("origin", "http://127.0.0.1:3000.evil.example")]),
            headers(&[("sec-fetch-site", "cross-site")]),
            headers(&[
                ("sec-fetch-site", "same-site"),
                ("origin", "http://127.0.0.1:3000"),
            ]),
            headers(&[("sec-fetch-site", "none")]),
            headers(&[("referer", "https://evil.example/page")]),
            headers(&[("referer", "not a url")]),
        ] {
            assert_eq!(
                guard.check_origin(&forged),
                Err(Refusal::CrossSite),
                "{forged:?}"
            );
        }
        // The public console does not accept its loopback origin either.
        let public = public();
        let loopback = headers(&[("origin", "http://127.0.0.1:8080")]);
        assert_eq!(public.check_origin(&loopback), Err(Refusal::CrossSite));
    }

    #[test]
    fn server_functions_are_checked_whatever_the_method() {
        assert!(RequestGuard::changes_state(&Method::POST, "/choose/picked"));
        assert!(RequestGuard::changes_state(&Method::DELETE, "/anything"));
        assert!(RequestGuard::changes_state(&Method::GET, "/api/start_job"));
        assert!(!RequestGuard::changes_state(&Method::GET, "/preview"));
        assert!(!RequestGuard::changes_state(
            &Method::HEAD,
            "/downloads/jobs/x/results.csv"
        ));
    }

    #[test]
    fn every_answer_gets_the_headers_and_only_bundle_files_are_cached() {
        let mut page = headers(&[("cache-control", "no-cache")]);
        security_headers(&mut page);
        assert_eq!(page["cache-control"], "no-store");
        assert_eq!(page["x-frame-options"], "DENY");
        assert_eq!(page["x-content-type-options"], "nosniff");
        assert_eq!(page["referrer-policy"], "same-origin");
        let csp = page["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        let mut bundle = headers(&[("cache-control", "public, max-age=31536000, immutable")]);
        security_headers(&mut bundle);
        assert_eq!(
            bundle["cache-control"],
            "public, max-age=31536000, immutable"
        );
        let mut with_nonce = headers(&[(
            "content-security-policy",
            &content_security_policy(Some("abc")),
        )]);
        security_headers(&mut with_nonce);
        assert!(with_nonce["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("'nonce-abc'"));
    }

    #[test]
    fn the_policy_allows_no_inline_script() {
        for policy in [
            content_security_policy(None),
            content_security_policy(Some("n0nce")),
        ] {
            let script = policy
                .split(';')
                .map(str::trim)
                .find(|d| d.starts_with("script-src"))
                .unwrap();
            let sources: Vec<&str> = script.split_whitespace().skip(1).collect();
            assert!(!sources.contains(&"'unsafe-inline'"), "{script}");
            assert!(!sources.contains(&"'unsafe-eval'"), "{script}");
            assert!(!sources.contains(&"*"), "{script}");
            assert!(policy.contains("default-src 'none'"), "{policy}");
        }
    }
}
