//! The real SCIM client: HTTPS requests to a site's users endpoint, with timeouts and TLS
//! that is always verified.

use super::endpoint::EndpointError;
use super::site_guard::{refusal_in, SiteGuard};
use super::{ScimEndpoint, ScimProvider, ScimReply, ScimToken, TransportError};
use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use std::error::Error as _;
use std::path::PathBuf;
use std::time::Duration;

/// Replies larger than this are not read: no SCIM page is near it, and a hostile or broken
/// server must not be able to exhaust memory.
pub const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;

/// What a guarded console says about any connection that could not be opened.
const GUARDED_CONNECT_FAILURE: &str = "no connection could be opened to the site";

/// Idle keep-alive connections kept per host; enough for the runner's highest concurrency.
const POOL_IDLE_PER_HOST: usize = 32;

/// How the HTTP client behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpOptions {
    /// Limit for a whole request, reply body included.
    pub timeout: Duration,
    /// A PEM file with one or more extra CA certificates to trust (a company's own CA),
    /// added to the built-in roots. There is deliberately no way to turn verification off.
    pub extra_ca_bundle: Option<PathBuf>,
    /// Which addresses may be reached (the hosted console's guard); `None` for the command
    /// line, where the admin names the site on their own machine.
    pub site_guard: Option<SiteGuard>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            timeout: Duration::from_secs(30),
            extra_ca_bundle: None,
            site_guard: None,
        }
    }
}

/// The client could not be set up (before any request was sent).
#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    #[error("Could not read the CA bundle {path}: {detail}")]
    CaBundleUnreadable { path: PathBuf, detail: String },
    #[error(
        "The CA bundle {0} holds no PEM certificate (expected -----BEGIN CERTIFICATE----- blocks)"
    )]
    CaBundleEmpty(PathBuf),
    #[error("Could not set up the HTTP client: {0}")]
    Client(String),
    #[error("{0}")]
    Refused(#[from] super::site_guard::SiteRefused),
}

/// [`ScimProvider`] over HTTPS (reqwest + rustls). `Debug` shows the token as `<hidden>`.
#[derive(Debug)]
pub struct HttpScim {
    client: reqwest::Client,
    endpoint: ScimEndpoint,
    token: ScimToken,
    timeout: Duration,
    /// Whether the site guard is on: then connection failures say nothing a port scan could use.
    guarded: bool,
    /// With a proxy for sites, the guard and the site's host name, checked before each request
    /// (the proxy resolves the name, so the resolver guard never sees it).
    before_proxy: Option<(SiteGuard, String)>,
}

impl HttpScim {
    pub fn new(
        endpoint: ScimEndpoint,
        token: ScimToken,
        opts: HttpOptions,
    ) -> Result<HttpScim, HttpSetupError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/scim+json, application/json"),
        );
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("Offboard/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_keepalive(Duration::from_secs(30))
            // A redirect is reported as it is (the engine calls it "not a SCIM endpoint"):
            // following one could turn a DELETE into something else or send it elsewhere.
            .redirect(reqwest::redirect::Policy::none());
        let mut before_proxy = None;
        if let Some(guard) = &opts.site_guard {
            let users_url = url::Url::parse(endpoint.users_url())
                .map_err(|e| HttpSetupError::Client(e.to_string()))?;
            guard.check_url(&users_url)?;
            match &guard.proxy {
                // Only the operator's own proxy, never one from the environment; the site's
                // name is checked before each request instead of in a resolver.
                Some(proxy) => {
                    let proxy = reqwest::Proxy::all(proxy.expose().as_str()).map_err(|_| {
                        HttpSetupError::Client("the --sites-proxy address cannot be used".into())
                    })?;
                    builder = builder.no_proxy().proxy(proxy);
                    let host = users_url.host_str().unwrap_or_default().to_string();
                    before_proxy = Some((guard.clone(), host));
                }
                // No proxy, whatever HTTPS_PROXY says: the addresses a name resolves to are
                // checked where the client resolves them, so the address checked is the one
                // connected to.
                None => builder = builder.no_proxy().dns_resolver(guard.resolver()),
            }
        }
        if let Some(path) = &opts.extra_ca_bundle {
            for cert in read_ca_bundle(path)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| HttpSetupError::Client(describe_chain(&e)))?;
        Ok(HttpScim {
            client,
            endpoint,
            token,
            timeout: opts.timeout,
            guarded: opts.site_guard.is_some(),
            before_proxy,
        })
    }

    pub fn endpoint(&self) -> &ScimEndpoint {
        &self.endpoint
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<ScimReply, TransportError> {
        if let Some((guard, host)) = &self.before_proxy {
            guard
                .check_host_before_proxy(host)
                .await
                .map_err(|refused| TransportError::Other(refused.to_string()))?;
        }
        let mut auth =
            HeaderValue::from_str(&format!("Bearer {}", self.token.expose())).map_err(|_| {
                TransportError::Other(
                    "the SCIM token holds characters that cannot be sent in a header".to_string(),
                )
            })?;
        auth.set_sensitive(true);
        let sent = std::time::Instant::now();
        let response = request.header(AUTHORIZATION, auth).send().await;
        let answered = response.as_ref().ok().map(|r| r.status().as_u16());
        crate::metrics::scim_answer(self.endpoint.users_url(), answered, sent.elapsed());
        let response = response.map_err(|e| self.transport_error(&e))?;
        let status = response.status().as_u16();
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let retry_after = header(RETRY_AFTER);
        let content_type = header(CONTENT_TYPE);
        let body = read_capped(response)
            .await
            .map_err(|e| self.transport_error(&e))?
            .ok_or_else(|| {
                TransportError::Other(format!(
                    "the site's reply (HTTP {status}) was larger than {} MiB and was not read",
                    MAX_REPLY_BYTES / (1024 * 1024)
                ))
            })?;
        Ok(ScimReply {
            status,
            retry_after,
            content_type,
            body,
        })
    }

    fn transport_error(&self, err: &reqwest::Error) -> TransportError {
        if let Some(refused) = refusal_in(err) {
            return TransportError::Other(refused.to_string());
        }
        let found = classify_failure(
            err.is_timeout(),
            err.is_connect(),
            &error_chain(err),
            self.timeout.as_secs().max(1),
        );
        match found {
            // Refused, reset or unanswered connections look alike on a guarded console, so
            // its messages cannot be used to map which ports answer where.
            TransportError::Connect(_) | TransportError::Timeout(_)
                if self.guarded && err.is_connect() =>
            {
                TransportError::Connect(GUARDED_CONNECT_FAILURE.to_string())
            }
            other => other,
        }
    }

    fn user_request(
        &self,
        method: reqwest::Method,
        account_id: &str,
    ) -> Result<reqwest::RequestBuilder, TransportError> {
        let url = self.endpoint.user_url(account_id).map_err(refused)?;
        Ok(self.client.request(method, url))
    }
}

#[async_trait]
impl ScimProvider for HttpScim {
    async fn list_users(
        &self,
        start_index: usize,
        count: usize,
    ) -> Result<ScimReply, TransportError> {
        let request = self.client.get(self.endpoint.users_url()).query(&[
            ("startIndex", start_index.to_string()),
            ("count", count.to_string()),
        ]);
        self.send(request).await
    }

    async fn get_user(&self, account_id: &str) -> Result<ScimReply, TransportError> {
        self.send(self.user_request(reqwest::Method::GET, account_id)?)
            .await
    }

    async fn delete_user(&self, account_id: &str) -> Result<ScimReply, TransportError> {
        self.send(self.user_request(reqwest::Method::DELETE, account_id)?)
            .await
    }

    async fn patch_user(
        &self,
        account_id: &str,
        patch: &serde_json::Value,
    ) -> Result<ScimReply, TransportError> {
        let request = self
            .user_request(reqwest::Method::PATCH, account_id)?
            .header(CONTENT_TYPE, "application/scim+json")
            .body(patch.to_string());
        self.send(request).await
    }
}

fn read_ca_bundle(path: &PathBuf) -> Result<Vec<reqwest::Certificate>, HttpSetupError> {
    let pem = std::fs::read(path).map_err(|e| HttpSetupError::CaBundleUnreadable {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        HttpSetupError::CaBundleUnreadable {
            path: path.clone(),
            detail: describe_chain(&e),
        }
    })?;
    if certs.is_empty() {
        return Err(HttpSetupError::CaBundleEmpty(path.clone()));
    }
    Ok(certs)
}

/// The body as text, or `None` when it is larger than [`MAX_REPLY_BYTES`]. Bytes that are not
/// UTF-8 are replaced rather than failing, so an odd error page still yields a message.
async fn read_capped(mut response: reqwest::Response) -> Result<Option<String>, reqwest::Error> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_REPLY_BYTES as u64)
    {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if bytes.len() + chunk.len() > MAX_REPLY_BYTES {
            return Ok(None);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// Every message in the error's source chain, outermost first.
fn error_chain(err: &reqwest::Error) -> Vec<String> {
    let mut chain = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        chain.push(e.to_string());
        source = e.source();
    }
    chain
}

fn describe_chain(err: &reqwest::Error) -> String {
    error_chain(err).join(": ")
}

/// Words in a failure's messages that say the TLS handshake failed (lower case).
const TLS_WORDS: &[&str] = &[
    "certificate",
    "unknownissuer",
    "tls",
    "handshake",
    "rustls",
    "peer sent",
    "alert",
];

/// Words in a failure's messages that say the site's name did not resolve (lower case).
const DNS_WORDS: &[&str] = &[
    "dns error",
    "failed to lookup address",
    "name or service not known",
    "no such host",
    "nodename nor servname",
    "temporary failure in name resolution",
];

/// Sorts a failed request into the [`TransportError`] kinds from reqwest's flags and the
/// messages of its source chain (hyper and rustls errors are not reachable as types without
/// depending on their crates directly, and their messages are stable enough for this).
fn classify_failure(
    is_timeout: bool,
    is_connect: bool,
    chain: &[String],
    timeout_secs: u64,
) -> TransportError {
    let lower: Vec<String> = chain.iter().map(|m| m.to_lowercase()).collect();
    let any = |needles: &[&str]| {
        lower
            .iter()
            .any(|m| needles.iter().any(|needle| m.contains(needle)))
    };
    // The innermost message is usually the most precise ("UnknownIssuer", "Connection refused").
    let detail = chain
        .iter()
        .rev()
        .find(|m| !m.trim().is_empty())
        .cloned()
        .unwrap_or_else(|| "no details".to_string());
    if any(TLS_WORDS) {
        return TransportError::Tls(detail);
    }
    if is_timeout {
        return TransportError::Timeout(timeout_secs);
    }
    if any(DNS_WORDS) {
        return TransportError::Dns(detail);
    }
    if is_connect {
        return TransportError::Connect(detail);
    }
    TransportError::Other(detail)
}

/// An id the endpoint refused becomes a failure with no request sent (its message says so).
fn refused(err: EndpointError) -> TransportError {
    TransportError::Other(err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn dns_failures() {
        let c = chain(&[
            "error sending request for url (https://nope.invalid/)",
            "client error (Connect)",
            "dns error",
            "failed to lookup address information: Name or service not known",
        ]);
        assert!(matches!(
            classify_failure(false, true, &c, 30),
            TransportError::Dns(d) if d.contains("Name or service not known")
        ));
    }

    /// (timed out?, a connect error?, the error's chain, what it is called)
    #[test]
    fn each_failure_is_named_from_its_chain() {
        let cases = [
            // An unknown issuer is TLS even when flagged connect.
            (
                false,
                true,
                vec![
                    "error sending request for url (https://acme.example/api/scim/v2/users)",
                    "client error (Connect)",
                    "invalid peer certificate: UnknownIssuer",
                ],
                TransportError::Tls("invalid peer certificate: UnknownIssuer".into()),
            ),
            // Timeouts carry the configured seconds.
            (
                true,
                false,
                vec!["error sending request", "operation timed out"],
                TransportError::Timeout(7),
            ),
            (
                false,
                true,
                vec![
                    "error sending request for url (http://127.0.0.1:9/v2/Users)",
                    "client error (Connect)",
                    "tcp connect error",
                    "Connection refused (os error 111)",
                ],
                TransportError::Connect("Connection refused (os error 111)".into()),
            ),
            // Anything else is Other, and never empty.
            (
                false,
                false,
                vec!["connection reset by peer"],
                TransportError::Other("connection reset by peer".into()),
            ),
            (
                false,
                false,
                vec![],
                TransportError::Other("no details".into()),
            ),
        ];
        for (timed_out, connect, parts, expected) in cases {
            let seconds = if timed_out { 7 } else { 30 };
            let named = classify_failure(timed_out, connect, &chain(&parts), seconds);
            assert_eq!(named, expected, "{parts:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_token() {
        let endpoint = ScimEndpoint::from_scim_base("http://127.0.0.1:1/v2", None).unwrap();
        let scim = HttpScim::new(
            endpoint,
            ScimToken::new("super-secret-token-123"),
            HttpOptions::default(),
        )
        .unwrap();
        let shown = format!("{scim:?}");
        assert!(!shown.contains("super-secret"), "{shown}");
        assert!(shown.contains("<hidden>"), "{shown}");
    }

    #[test]
    fn ca_bundle_problems_are_reported_in_plain_words() {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = ScimEndpoint::from_scim_base("http://127.0.0.1:1/v2", None).unwrap();
        let missing = dir.path().join("missing.pem");
        let err = HttpScim::new(
            endpoint.clone(),
            ScimToken::new("t"),
            HttpOptions {
                extra_ca_bundle: Some(missing),
                ..HttpOptions::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(err, HttpSetupError::CaBundleUnreadable { .. }),
            "{err}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = HttpScim::new(
            endpoint,
            ScimToken::new("t"),
            HttpOptions {
                extra_ca_bundle: Some(empty),
                ..HttpOptions::default()
            },
        )
        .unwrap_err();
        assert!(matches!(err, HttpSetupError::CaBundleEmpty(_)), "{err}");
    }

    /// Two self-signed CA certificates made with openssl for this test only.
    const TWO_CAS: &str = "-----BEGIN CERTIFICATE-----\nMIIBkTCCATegAwIBAgIUJBHFxLZVx3OGSKnI1LEOfPvaCGwwCgYIKoZIzj0EAwIw\nHTEbMBkGA1UEAwwST2ZmYm9hcmQgdGVzdCBDQSAxMCAXDTI2MTEyODEyMDIwMloY\nDzIxMjYxMTA0MTIwMjAyWjAdMRswGQYDVQQDDBJPZmZib2FyZCB0ZXN0IENBIDEw\nWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATtKpfpXgsZgLqVPOLLBKFFXq7tbYPV\nyovQfBbPGjNdc+D8svnvokPML9D9Pmx5lrBlmoPkT52ClHousb3WcUmEo1MwUTAd\nBgNVHQ4EFgQUW2OgtyLDxx037s1hwDlOhhGdZF8wHwYDVR0jBBgwFoAUW2OgtyLD\nxx037s1hwDlOhhGdZF8wDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBF\nAiBMSj3/m1DxkV7b4te9FKcPgBomlNPTEq8Ma7U15xawsAIhAPdJV+dPpvjN1IrV\nLUTj9b3hvQuylWtyixGKIwx0Z0qb\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nMIIBkTCCATegAwIBAgIUDQkKvDTtOSvQf0ZhIIAf4F6xjj0wCgYIKoZIzj0EAwIw\nHTEbMBkGA1UEAwwST2ZmYm9hcmQgdGVzdCBDQSAyMCAXDTI2MTEyODEyMDIwMloY\nDzIxMjYxMTA0MTIwMjAyWjAdMRswGQYDVQQDDBJPZmZib2FyZCB0ZXN0IENBIDIw\nWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARMinozWIHKgBPApGqttcrw4k2WmhgB\n7yez6vcNd/SsQLDJLvq56w/C+6M0M9vuornWH+cYFUtZkgwydS2vZZbAo1MwUTAd\nBgNVHQ4EFgQUH56VH42jH9Vv+E0fACksM/HOUXkwHwYDVR0jBBgwFoAUH56VH42j\nH9Vv+E0fACksM/HOUXkwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBF\nAiEAnPI7b+hAPytSrff3Y/5NZE0QI9Ge3h5IVOxjG9mqNjACIE1YIP7ycn9vPjV1\nYZCw24kw+CR0Qz10gZjfyiosjJls\n-----END CERTIFICATE-----\n";

    #[test]
    fn a_bundle_with_several_certificates_is_accepted() {
        // Read and built here; that both are trusted is proved by connecting to a server of
        // each (tests/scim2_listing.rs, both_cas_of_a_two_ca_bundle_are_trusted).
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("company-cas.pem");
        std::fs::write(&bundle, TWO_CAS).unwrap();
        assert_eq!(read_ca_bundle(&bundle).unwrap().len(), 2);
        let endpoint = ScimEndpoint::from_scim_base("http://127.0.0.1:1/v2", None).unwrap();
        let opts = HttpOptions {
            extra_ca_bundle: Some(bundle),
            ..HttpOptions::default()
        };
        assert!(HttpScim::new(endpoint, ScimToken::new("t"), opts).is_ok());
    }

    #[tokio::test]
    async fn unaddressable_ids_send_nothing() {
        // Port 1 on loopback: if a request were sent it would fail with Connect, not Other.
        let endpoint = ScimEndpoint::from_scim_base("http://127.0.0.1:1/v2", None).unwrap();
        let scim = HttpScim::new(endpoint, ScimToken::new("t"), HttpOptions::default()).unwrap();
        for id in ["", ".", ".."] {
            let err = scim.delete_user(id).await.unwrap_err();
            assert!(
                matches!(&err, TransportError::Other(m) if m.contains("no request was sent")),
                "{id:?}: {err:?}"
            );
        }
    }
}
