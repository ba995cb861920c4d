//! The console's site-address guard inside the real HTTP client. Names are resolved by a STUB
//! lookup (a fake, as the issue asks: tests must never send traffic to 10.0.0.1 or a metadata
//! service), so a name can "resolve" to an internal address; the guard must refuse it in the
//! client's own resolver, before any connection. Where traffic is allowed it goes to REAL
//! loopback servers: the project's fault server (a FAKE Stack site, a test double), or a bare
//! TCP listener that counts accepts.

mod support;

use server::scim::http::{HttpOptions, HttpScim};
use server::scim::site_guard::{NameLookup, SiteGuard};
use server::scim::{ScimEndpoint, ScimProvider, ScimToken, TransportError};
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::fault_server::{FaultServer, TOKEN};

/// A stub resolver: fixed answers, and a count of the names asked.
struct StubLookup {
    answers: HashMap<String, Vec<IpAddr>>,
    asked: AtomicUsize,
}

impl StubLookup {
    fn new(answers: &[(&str, &[&str])]) -> Arc<StubLookup> {
        Arc::new(StubLookup {
            answers: answers
                .iter()
                .map(|(name, ips)| {
                    (
                        name.to_string(),
                        ips.iter().map(|ip| ip.parse().unwrap()).collect(),
                    )
                })
                .collect(),
            asked: AtomicUsize::new(0),
        })
    }
}

impl NameLookup for StubLookup {
    fn lookup(
        &self,
        host: String,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
        self.asked.fetch_add(1, Ordering::SeqCst);
        let found = self.answers.get(&host).cloned();
        Box::pin(async move {
            found.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such host"))
        })
    }
}

fn guarded(
    site: &str,
    allow_loopback: bool,
    allowed: &[&str],
    lookup: Arc<StubLookup>,
) -> Result<HttpScim, String> {
    let endpoint = ScimEndpoint::from_site_url(site).map_err(|e| e.to_string())?;
    let allowed: Vec<String> = allowed.iter().map(|h| h.to_string()).collect();
    let guard = SiteGuard::new(allow_loopback, &allowed).with_lookup(lookup);
    HttpScim::new(
        endpoint,
        ScimToken::new(TOKEN),
        HttpOptions {
            timeout: Duration::from_secs(5),
            extra_ca_bundle: None,
            site_guard: Some(guard),
        },
    )
    .map_err(|e| e.to_string())
}

fn is_refusal(err: &TransportError) -> bool {
    matches!(err, TransportError::Other(m) if m.contains("points inside a private network"))
}

#[tokio::test]
async fn names_resolving_to_internal_addresses_are_refused_before_connecting() {
    let lookup = StubLookup::new(&[
        ("intranet.example", &["10.0.0.1"]),
        ("metadata.example", &["169.254.169.254"]),
        ("v6-metadata.example", &["fd00:ec2::254"]),
        ("mapped.example", &["::ffff:10.0.0.1"]),
        ("mixed.example", &["151.101.1.69", "10.0.0.1"]),
        ("loopback.example", &["127.0.0.1"]),
        // IPv6 forms that carry the metadata service's IPv4 address.
        ("six-to-four.example", &["2002:a9fe:a9fe::"]),
        ("siit.example", &["::ffff:0:a9fe:a9fe"]),
        ("local-nat64.example", &["64:ff9b:1::a9fe:a9fe"]),
        ("teredo.example", &["2001:0:808:808::5601:5601"]),
    ]);
    for (asked, name) in [
        "intranet.example",
        "metadata.example",
        "v6-metadata.example",
        "mapped.example",
        "mixed.example",
        "loopback.example",
        "six-to-four.example",
        "siit.example",
        "local-nat64.example",
        "teredo.example",
    ]
    .into_iter()
    .enumerate()
    {
        let scim = guarded(&format!("https://{name}"), false, &[], lookup.clone()).unwrap();
        let err = scim.list_users(1, 1).await.unwrap_err();
        assert!(is_refusal(&err), "{name}: {err:?}");
        let text = err.to_string();
        assert!(text.contains(name), "{text}");
        for detail in [
            "10.0.0.1",
            "169.254",
            "fd00",
            "os error",
            "refused",
            "timed out",
        ] {
            assert!(!text.contains(detail), "{name}: {detail} in {text}");
        }
        // Refused in the resolver: the name was looked up once, and no connection was tried
        // (no connect error or timeout in the answer, checked above).
        assert_eq!(lookup.asked.load(Ordering::SeqCst), asked + 1, "{name}");
    }
    // The same forms written as the site's address are refused before any request.
    for literal in [
        "https://[2002:a9fe:a9fe::]",
        "https://[::ffff:0:a9fe:a9fe]",
        "https://[64:ff9b:1::a9fe:a9fe]",
        "https://[2001:0:a9fe:a9fe::1]",
    ] {
        let refused = guarded(literal, false, &[], lookup.clone()).unwrap_err();
        assert!(
            refused.contains("points inside a private network"),
            "{literal}: {refused}"
        );
    }
}

#[tokio::test]
async fn plain_http_to_loopback_needs_the_flag_and_then_reaches_the_real_server() {
    let site = FaultServer::start(&["--users", "5"]);
    let port = site.base.rsplit(':').next().unwrap().to_string();
    let local = format!("http://localhost:{port}");
    let lookup = StubLookup::new(&[("localhost", &["127.0.0.1"])]);

    let refused = guarded(&local, false, &[], lookup.clone()).unwrap_err();
    assert!(refused.contains("plain http"), "{refused}");
    let refused = guarded(&site.base, false, &[], lookup.clone()).unwrap_err();
    assert!(refused.contains("plain http"), "{refused}");

    let scim = guarded(&local, true, &[], lookup.clone()).unwrap();
    let reply = scim
        .list_users(1, 1)
        .await
        .expect("the fault server answers");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(lookup.asked.load(Ordering::SeqCst) >= 1);

    // The loopback flag opens this machine only, not a private network a name points at.
    let rebound = StubLookup::new(&[("localhost", &["10.0.0.1"])]);
    let scim = guarded(&local, true, &[], rebound).unwrap();
    assert!(is_refusal(&scim.list_users(1, 1).await.unwrap_err()));
}

#[tokio::test]
async fn an_allow_listed_host_may_resolve_inside_the_network() {
    // A bare loopback listener stands for the internal site: it counts the connections it
    // gets (the TLS handshake then fails, which is fine: only reaching it matters here).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    let site = format!("https://scim.internal.test:{port}");
    let lookup = StubLookup::new(&[("scim.internal.test", &["127.0.0.1"])]);

    let scim = guarded(&site, false, &[], lookup.clone()).unwrap();
    assert!(is_refusal(&scim.list_users(1, 1).await.unwrap_err()));
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "a refused name was connected to"
    );

    let scim = guarded(&site, false, &["SCIM.Internal.Test"], lookup).unwrap();
    let err = scim.list_users(1, 1).await.unwrap_err();
    assert!(!is_refusal(&err), "{err:?}");
    assert!(
        accepted.load(Ordering::SeqCst) >= 1,
        "the allow-listed host was not reached"
    );
}

#[tokio::test]
async fn a_guarded_console_does_not_say_whether_a_port_answers() {
    // A port nothing listens on (bound, read, released).
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let lookup = StubLookup::new(&[]);
    let scim = guarded(&format!("http://127.0.0.1:{closed}"), true, &[], lookup).unwrap();
    let err = scim.list_users(1, 1).await.unwrap_err();
    assert_eq!(
        err,
        TransportError::Connect("no connection could be opened to the site".into())
    );
}
