//! Listing and connection checks against a REAL `scim2-server` process (RFC 7644, caps pages
//! at 1000 users), through the real HTTP client. Only `a_silent_server_times_out` uses a
//! stand-in (a socket that never answers), since no real server can be made to hang.

mod support;

use app::model::Role;
use serde_json::{json, Value};
use server::engine::connection::{check_connection, ConnectionDiagnosis};
use server::engine::listing::{list_all_users, ListingError, ListingOptions};
use server::scim::http::{HttpOptions, HttpScim};
use server::scim::{ScimEndpoint, ScimProvider, ScimToken};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;
use support::scim2_server::free_port;
use support::Scim2Server;

const TOKEN: &str = "integration-test-token-0123456789";

fn client(base: &str, token: &str) -> HttpScim {
    let endpoint = ScimEndpoint::from_scim_base(base, None).expect("base URL");
    HttpScim::new(endpoint, ScimToken::new(token), HttpOptions::default()).expect("client")
}

/// User number `i` in a mix of shapes seen in real directories.
fn varied_user(i: usize) -> Value {
    let mut user = json!({
        "userName": format!("user{i:04}"),
        "name": {"givenName": format!("Given{i}"), "familyName": "Family"},
    });
    match i % 10 {
        0 => {} // no emails key at all
        1 => user["emails"] = json!([]),
        2 => {
            user["emails"] = json!([
                {"value": format!("old{i}@acme.example")},
                {"value": format!("u{i}@acme.example"), "primary": true},
                {"value": format!("alias{i}@acme.example")},
            ])
        }
        3 => {
            user["emails"] = json!([
                {"value": format!("u{i}@acme.example")},
                {"value": format!("other{i}@acme.example")},
            ])
        }
        _ => user["emails"] = json!([{"value": format!("u{i}@acme.example"), "primary": true}]),
    }
    if i.is_multiple_of(7) {
        user["active"] = json!(false);
    }
    match i % 100 {
        5 => user["userType"] = json!("Admin"),
        6 => user["userType"] = json!("Moderator"),
        _ => {}
    }
    if i.is_multiple_of(3) {
        user["displayName"] = json!(format!("Display {i}"));
        user["externalId"] = json!(format!("ext-{i}"));
    }
    user
}

#[tokio::test]
async fn lists_2500_users_across_the_server_page_cap() {
    let server = Scim2Server::start(TOKEN);
    let n = 2500;
    let ids = server.seed_users(n, varied_user).await;
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), n, "distinct ids");
    let scim = client(&server.base_url(), TOKEN);

    assert_eq!(
        check_connection(&scim).await,
        ConnectionDiagnosis::Ok { user_count: n }
    );

    let index_of: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let want: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut orders = Vec::new();
    // 100 a page (25 pages, 4 at a time); and 5000 asked, which the server cuts to 1000.
    for page_size in [100, 5000] {
        let opts = ListingOptions {
            page_size,
            ..ListingOptions::default()
        };
        let last = Mutex::new((0, 0));
        let progress = |done, total| *last.lock().unwrap() = (done, total);
        let users = list_all_users(&scim, &opts, &progress)
            .await
            .expect("listing");
        assert_eq!(users.len(), n, "page size {page_size}");
        let got: HashSet<&str> = users.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(got, want, "page size {page_size}");
        assert_eq!(*last.lock().unwrap(), (n, n));

        for user in &users {
            let i = index_of[user.id.as_str()];
            assert_eq!(
                user.user_name.as_deref(),
                Some(format!("user{i:04}").as_str())
            );
            assert_eq!(user.active, !i.is_multiple_of(7), "active of user {i}");
            let role = match i % 100 {
                5 => Role::Admin,
                6 => Role::Moderator,
                _ => Role::Registered,
            };
            assert_eq!(user.role, role, "role of user {i}");
            let display = if i.is_multiple_of(3) {
                format!("Display {i}")
            } else {
                format!("Given{i} Family")
            };
            assert_eq!(user.display_name.as_deref(), Some(display.as_str()));
            assert_eq!(
                user.external_id,
                i.is_multiple_of(3).then(|| format!("ext-{i}"))
            );
            assert!(user.created.is_some(), "meta.created of user {i}");
            let (emails, primary): (Vec<String>, Option<String>) = match i % 10 {
                0 | 1 => (vec![], None),
                2 => (
                    vec![
                        format!("old{i}@acme.example"),
                        format!("u{i}@acme.example"),
                        format!("alias{i}@acme.example"),
                    ],
                    Some(format!("u{i}@acme.example")),
                ),
                3 => (
                    vec![
                        format!("u{i}@acme.example"),
                        format!("other{i}@acme.example"),
                    ],
                    Some(format!("u{i}@acme.example")),
                ),
                _ => (
                    vec![format!("u{i}@acme.example")],
                    Some(format!("u{i}@acme.example")),
                ),
            };
            assert_eq!(user.emails, emails, "emails of user {i}");
            assert_eq!(user.primary_email, primary, "primary email of user {i}");
        }
        orders.push(users.into_iter().map(|u| u.id).collect::<Vec<_>>());
    }
    assert_eq!(orders[0], orders[1], "same order whatever the page size");
}

#[tokio::test]
async fn a_wrong_token_is_refused() {
    let server = Scim2Server::start(TOKEN);
    let scim = client(&server.base_url(), "not-the-token");
    let d = check_connection(&scim).await;
    assert_eq!(d, ConnectionDiagnosis::BadToken { status: 401 });
    assert!(!d.message().contains("not-the-token"));
    let err = list_all_users(&scim, &ListingOptions::default(), &|_, _| {})
        .await
        .unwrap_err();
    assert_eq!(err, ListingError::Unauthorized { status: 401 });
}

#[tokio::test]
async fn a_dead_port_is_a_connect_error() {
    let port = free_port();
    let scim = client(&format!("http://127.0.0.1:{port}/v2"), TOKEN);
    let d = check_connection(&scim).await;
    assert!(matches!(d, ConnectionDiagnosis::Connect { .. }), "{d:?}");
    assert!(
        d.message().starts_with("Could not connect"),
        "{}",
        d.message()
    );
}

#[tokio::test]
async fn a_path_that_is_not_scim_says_so() {
    let server = Scim2Server::start(TOKEN);
    let base = format!("http://127.0.0.1:{}/api/scim/v2", server.port());
    let scim = client(&base, TOKEN);
    let d = check_connection(&scim).await;
    assert!(
        matches!(d, ConnectionDiagnosis::NotScim { status: 404, .. }),
        "{d:?}"
    );
    let err = list_all_users(&scim, &ListingOptions::default(), &|_, _| {})
        .await
        .unwrap_err();
    assert!(matches!(err, ListingError::NotScim { .. }), "{err:?}");
}

#[tokio::test]
async fn get_patch_and_delete_reach_the_right_user() {
    let server = Scim2Server::start(TOKEN);
    let ids = server.seed_users(3, varied_user).await;
    let scim = client(&server.base_url(), TOKEN);
    let target = &ids[1];

    let got = scim.get_user(target).await.expect("GET");
    assert_eq!(got.status, 200);
    assert!(got.content_type.as_deref().unwrap_or("").contains("json"));
    let body: Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(body["id"], target.as_str());

    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": false}],
    });
    let patched = scim.patch_user(target, &patch).await.expect("PATCH");
    assert!(matches!(patched.status, 200 | 204), "{patched:?}");
    let after: Value = serde_json::from_str(&scim.get_user(target).await.unwrap().body).unwrap();
    assert_eq!(after["active"], false);

    let deleted = scim.delete_user(target).await.expect("DELETE");
    assert_eq!(deleted.status, 204);
    assert_eq!(scim.get_user(target).await.unwrap().status, 404);
    // The other users are untouched.
    let users = list_all_users(&scim, &ListingOptions::default(), &|_, _| {})
        .await
        .unwrap();
    let left: HashSet<String> = users.into_iter().map(|u| u.id).collect();
    assert_eq!(left, HashSet::from([ids[0].clone(), ids[2].clone()]));
    // An id that is not one path segment is never sent.
    assert!(scim.delete_user("..").await.is_err());
    assert_eq!(
        check_connection(&scim).await,
        ConnectionDiagnosis::Ok { user_count: 2 }
    );
}

#[tokio::test]
async fn a_silent_server_times_out() {
    // A stand-in, not scim2-server: accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let endpoint =
        ScimEndpoint::from_scim_base(&format!("http://127.0.0.1:{port}/v2"), None).unwrap();
    let opts = HttpOptions {
        timeout: Duration::from_secs(1),
        ..HttpOptions::default()
    };
    let scim = HttpScim::new(endpoint, ScimToken::new(TOKEN), opts).unwrap();
    assert_eq!(
        check_connection(&scim).await,
        ConnectionDiagnosis::Timeout { seconds: 1 }
    );
    hold.abort();
}

#[tokio::test]
async fn tls_is_verified_and_an_extra_ca_is_trusted() {
    // A stand-in HTTPS server (not scim2-server) with a certificate from a private test CA.
    let server = support::TlsStandIn::start();
    let endpoint = ScimEndpoint::from_scim_base(&server.base_url(), None).unwrap();

    let untrusting = HttpScim::new(
        endpoint.clone(),
        ScimToken::new(TOKEN),
        HttpOptions::default(),
    )
    .unwrap();
    let d = check_connection(&untrusting).await;
    assert!(
        matches!(&d, ConnectionDiagnosis::Tls { detail } if detail.contains("UnknownIssuer")),
        "{d:?}"
    );
    assert!(d.message().contains("--ca-bundle"));

    let opts = HttpOptions {
        extra_ca_bundle: Some(support::TlsStandIn::ca_bundle()),
        ..HttpOptions::default()
    };
    let trusting = HttpScim::new(endpoint, ScimToken::new(TOKEN), opts).unwrap();
    assert_eq!(
        check_connection(&trusting).await,
        ConnectionDiagnosis::Ok { user_count: 1 }
    );
    let users = list_all_users(&trusting, &ListingOptions::default(), &|_, _| {})
        .await
        .unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].id, "tls-1");
}

/// A bundle of two company CAs (the `--ca-bundle` file of a company with two): a site signed by
/// either is trusted, proved by connecting to one of each; the second is refused without it.
#[tokio::test]
async fn both_cas_of_a_two_ca_bundle_are_trusted() {
    let first = support::TlsStandIn::start();
    let second = support::TlsStandIn::start_second();
    let dir = tempfile::tempdir().unwrap();
    let both = dir.path().join("company-cas.pem");
    let mut pem = std::fs::read_to_string(support::TlsStandIn::ca_bundle()).unwrap();
    pem.push_str(&std::fs::read_to_string(support::TlsStandIn::second_ca()).unwrap());
    std::fs::write(&both, pem).unwrap();
    let client = |server: &support::TlsStandIn, bundle: &std::path::Path| {
        let endpoint = ScimEndpoint::from_scim_base(&server.base_url(), None).unwrap();
        let opts = HttpOptions {
            extra_ca_bundle: Some(bundle.to_path_buf()),
            ..HttpOptions::default()
        };
        HttpScim::new(endpoint, ScimToken::new(TOKEN), opts).unwrap()
    };
    for server in [&first, &second] {
        assert_eq!(
            check_connection(&client(server, &both)).await,
            ConnectionDiagnosis::Ok { user_count: 1 }
        );
    }
    // The second site really needs the second CA: with the first alone it is refused.
    let d = check_connection(&client(&second, &support::TlsStandIn::ca_bundle())).await;
    assert!(
        matches!(&d, ConnectionDiagnosis::Tls { detail } if detail.contains("UnknownIssuer")),
        "{d:?}"
    );
}
