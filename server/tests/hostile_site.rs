//! A hostile SCIM server, for real: an HTTP server on loopback (an axum app in this test) that
//! answers the listing with absurd numbers and oversized bodies. Offboard's real HTTP client
//! and listing must answer with plain errors after a bounded number of requests, never abort.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use futures::StreamExt;
use server::engine::connection::check_connection;
use server::engine::listing::{list_all_users, ListingError, ListingOptions};
use server::scim::http::{HttpOptions, HttpScim, MAX_REPLY_BYTES};
use server::scim::{ScimEndpoint, ScimToken};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
struct Hostile {
    body: Arc<String>,
    requests: Arc<AtomicUsize>,
}

async fn users(State(site): State<Hostile>) -> impl IntoResponse {
    site.requests.fetch_add(1, Ordering::SeqCst);
    (
        [(header::CONTENT_TYPE, "application/scim+json")],
        site.body.as_str().to_string(),
    )
}

/// Serves `body` for every listing page; returns the client and the request counter.
async fn hostile_site(body: String) -> (HttpScim, Arc<AtomicUsize>) {
    let requests = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/scim/v2/Users", get(users))
        .with_state(Hostile {
            body: Arc::new(body),
            requests: requests.clone(),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let endpoint = ScimEndpoint::from_scim_base(&format!("http://{addr}/scim/v2"), None).unwrap();
    let client = HttpScim::new(
        endpoint,
        ScimToken::new("hostile-test-token"),
        HttpOptions {
            timeout: Duration::from_secs(20),
            extra_ca_bundle: None,
            site_guard: None,
        },
    )
    .unwrap();
    (client, requests)
}

/// The default listing, retrying without the half-second waits.
fn quick_retries() -> ListingOptions {
    ListingOptions {
        retry_base_delay: Duration::from_millis(1),
        ..ListingOptions::default()
    }
}

fn page(total: &str, resources: &str) -> String {
    format!(
        r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":{total},"startIndex":1,"itemsPerPage":1,"Resources":{resources}}}"#
    )
}

#[tokio::test]
async fn absurd_totals_get_a_plain_refusal_after_one_request() {
    // Before the cap, each of these made the listing collect every page start up front and
    // the allocation aborted the whole server.
    for (total, reported) in [
        ("18446744073709551615", "18446744073709551615"),
        ("1e17", "100000000000000000"),
        ("\"1e17\"", "100000000000000000"),
        ("1000001", "1000001"),
    ] {
        let (client, requests) = hostile_site(page(total, r#"[{"id":"1","userName":"a"}]"#)).await;
        let err = list_all_users(&client, &ListingOptions::default(), &|_, _| {})
            .await
            .unwrap_err();
        assert!(
            matches!(err, ListingError::TooMany { .. }),
            "{total}: {err}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&format!("reported {reported} users"))
                && text.contains("more than Offboard will list"),
            "{text}"
        );
        assert_eq!(requests.load(Ordering::SeqCst), 1, "{total}");
        let diagnosis = check_connection(&client).await;
        assert!(
            diagnosis.message().contains("more than Offboard will list"),
            "{}",
            diagnosis.message()
        );
    }
}

#[tokio::test]
async fn a_site_claiming_more_users_than_it_lists_is_refused_quickly() {
    // 1,000,000 claimed (within the cap), one user listed, then empty pages: the listing stops
    // at the first empty page instead of asking for a million of them.
    let (client, requests) = hostile_site(page("1000000", r#"[{"id":"1"}]"#)).await;
    let err = list_all_users(&client, &quick_retries(), &|_, _| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ListingError::Inconsistent(_)), "{err}");
    // This server repeats user 1 on every page: duplicates or a short list, either way a
    // plain error after at most two listings of a few pages each.
    assert!(requests.load(Ordering::SeqCst) <= 100, "{requests:?}");
}

#[tokio::test]
async fn an_oversized_page_is_refused_in_plain_words() {
    let user =
        r#"{"id":"1","userName":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},"#;
    let many = user.repeat(MAX_REPLY_BYTES / user.len() + 10);
    let body = page("2", &format!("[{}]", many.trim_end_matches(',')));
    assert!(body.len() > MAX_REPLY_BYTES);
    let (client, _) = hostile_site(body).await;
    let err = list_all_users(&client, &quick_retries(), &|_, _| {})
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("MiB") || text.contains("large"), "{text}");
}

/// An endless page, counted as the server hands it out: a client that buffered the whole
/// reply before looking at its size would never finish (and end on its timeout, not on the
/// size); Offboard's stops reading past the limit, so the server hands out a bounded amount.
#[tokio::test]
async fn an_endless_page_is_cut_off_at_the_limit_while_it_streams() {
    const CHUNK: usize = 64 * 1024;
    let handed_out = Arc::new(AtomicUsize::new(0));
    let counter = handed_out.clone();
    let app = Router::new().route(
        "/scim/v2/Users",
        get(move || {
            let counter = counter.clone();
            async move {
                let head = page("2", "[").into_bytes();
                let filler = axum::body::Bytes::from(vec![b' '; CHUNK]);
                let endless = futures::stream::iter(std::iter::once(axum::body::Bytes::from(head)))
                    .chain(futures::stream::repeat(filler))
                    .map(move |chunk| {
                        counter.fetch_add(chunk.len(), Ordering::SeqCst);
                        Ok::<_, std::convert::Infallible>(chunk)
                    });
                (
                    [(header::CONTENT_TYPE, "application/scim+json")],
                    axum::body::Body::from_stream(endless),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let endpoint = ScimEndpoint::from_scim_base(&format!("http://{addr}/scim/v2"), None).unwrap();
    let client = HttpScim::new(
        endpoint,
        ScimToken::new("hostile-test-token"),
        HttpOptions {
            timeout: Duration::from_secs(60),
            extra_ca_bundle: None,
            site_guard: None,
        },
    )
    .unwrap();
    let options = ListingOptions {
        concurrency: 1,
        max_attempts: 1,
        ..quick_retries()
    };
    let err = list_all_users(&client, &options, &|_, _| {})
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        (text.contains("MiB") || text.contains("large")) && !text.contains("timed out"),
        "{text}"
    );
    // One try, which read at most the limit (plus what sat in the sockets' and the server's
    // buffers), never the endless rest.
    let sent = handed_out.load(Ordering::SeqCst);
    assert!(
        sent <= MAX_REPLY_BYTES + 16 * 1024 * 1024,
        "{} MiB handed out",
        sent / (1024 * 1024)
    );
}
