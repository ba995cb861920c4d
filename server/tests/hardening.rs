//! The console's hardening, through the real `offboard serve` binary over HTTP: forged
//! cross-site requests and foreign Host names are refused (and change nothing), every answer
//! carries the security headers, the page's CSP nonce is the one on its inline script, and a
//! site address that is plain http or an internal IP is refused before any request is sent.
//! The site is the project's fault server, a FAKE Stack site (a Stack-shaped test double, not
//! Stack); the console is the real binary.

mod support;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::console_process::ConsoleProcess;
use support::fault_server::FaultServer;

async fn connect(console: &ConsoleProcess, site_url: &str) -> Value {
    console.save_connection(site_url, "", "").await
}

/// A preview of 3 users, ready to confirm: its id and phrase.
async fn preview(console: &ConsoleProcess) -> (String, String) {
    let preview = console
        .call(
            "preview_text",
            &[
                ("file_name", "leavers.csv"),
                (
                    "text",
                    "Email\nuser1@example.com\nuser2@example.com\nuser3@example.com\n",
                ),
                ("action", "delete"),
                ("demote", "false"),
            ],
        )
        .await
        .expect("preview");
    assert_eq!(preview["counts"]["selected"], json!(3), "{preview}");
    (
        preview["id"].as_str().unwrap().to_string(),
        preview["phrase"].as_str().unwrap().to_string(),
    )
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}

/// The reproduction: another web page posts `start_job` with the (predictable)
/// phrase. Refused with 403 in plain words, and no run exists afterwards; the same call from
/// the console's own origin starts the run.
#[tokio::test]
async fn a_cross_site_start_job_with_the_right_phrase_starts_nothing() {
    let site = FaultServer::start(&["--users", "10"]);
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start(&dir.path().join("data")).await;
    assert_eq!(connect(&console, &site.base).await["ok"], json!(true));
    let (preview_id, phrase) = preview(&console).await;
    let form = [
        ("preview_id", preview_id.as_str()),
        ("typed", phrase.as_str()),
    ];

    for forged in [
        vec![("Origin", "https://evil.example")],
        vec![
            ("Origin", "https://evil.example"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
        vec![("Sec-Fetch-Site", "cross-site")],
        vec![("Origin", "null")],
        vec![("Referer", "https://evil.example/innocent-page")],
    ] {
        let mut request = console
            .http
            .post(console.url("/api/start_job"))
            .header("Accept", "application/json")
            .form(&form);
        for (name, value) in &forged {
            request = request.header(*name, *value);
        }
        let reply = request.send().await.unwrap();
        assert_eq!(reply.status(), StatusCode::FORBIDDEN, "{forged:?}");
        let body = reply.text().await.unwrap();
        assert!(body.contains("sent by another web site"), "{body}");
        assert!(body.contains("nothing was changed"), "{body}");
    }
    // A cross-site form post to a plain route is refused the same way.
    let reply = console
        .http
        .post(console.url("/choose/picked"))
        .header("Origin", "https://evil.example")
        .form(&[("account_id", "1"), ("action", "delete")])
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::FORBIDDEN);

    let jobs = console.call("jobs", &[]).await.expect("jobs");
    assert_eq!(jobs, json!([]), "a forged request started a run");
    let state = site.state().await;
    assert_eq!(
        state["requests"]["DELETE"].as_u64().unwrap_or(0),
        0,
        "{state}"
    );

    // The console's own page sends its own origin: that works.
    let reply = console
        .http
        .post(console.url("/api/start_job"))
        .header("Accept", "application/json")
        .header("Origin", console.base.as_str())
        .header("Sec-Fetch-Site", "same-origin")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        reply.status(),
        StatusCode::OK,
        "{}",
        reply.text().await.unwrap()
    );
    let jobs = console.call("jobs", &[]).await.expect("jobs");
    assert_eq!(jobs.as_array().map(Vec::len), Some(1), "{jobs}");
}

/// DNS rebinding: a page on evil.example whose name now points at 127.0.0.1 reaches the port,
/// but its requests carry `Host: evil.example`. Refused, pages and server functions alike;
/// the health check still answers (load balancers probe it by IP).
#[tokio::test]
async fn a_foreign_host_is_refused_and_loopback_names_are_answered() {
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start(&dir.path().join("data")).await;
    let port = console.base.rsplit(':').next().unwrap().to_string();
    for path in ["/", "/connect", "/api/connection"] {
        let reply = console
            .http
            .get(console.url(path))
            .header("Host", format!("evil.example:{port}"))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::FORBIDDEN, "{path}");
        assert!(reply
            .text()
            .await
            .unwrap()
            .contains("host name this console does not answer to"));
    }
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        let reply = console
            .http
            .get(console.url("/"))
            .header("Host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::OK, "{host}");
    }
    let health = console
        .http
        .get(console.url("/healthz"))
        .header("Host", "10.1.2.3:80")
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

/// With `--public-url`, only that host is answered, and only its origin may post.
#[tokio::test]
async fn with_a_public_url_only_its_host_and_origin_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start_with(
        &dir.path().join("data"),
        &["--public-url", "https://offboard.example.com"],
    )
    .await;
    let get = |host: &'static str| {
        console
            .http
            .get(console.url("/connect"))
            .header("Host", host)
            .send()
    };
    assert_eq!(
        get("offboard.example.com").await.unwrap().status(),
        StatusCode::OK
    );
    let port = console.base.rsplit(':').next().unwrap().to_string();
    let loopback = console
        .http
        .get(console.url("/connect"))
        .header("Host", format!("127.0.0.1:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(loopback.status(), StatusCode::FORBIDDEN);
    let post = |origin: &'static str| {
        console
            .http
            .post(console.url("/api/forget_token"))
            .header("Host", "offboard.example.com")
            .header("Origin", origin)
            .header("Accept", "application/json")
            .form(&[("x", "")])
            .send()
    };
    assert_eq!(
        post("https://offboard.example.com").await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        post("http://offboard.example.com").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
}

/// Every answer carries the headers; a page's CSP nonce is the one on its inline module
/// script (the only inline script Leptos writes), and differs between responses.
#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start(&dir.path().join("data")).await;
    let mut nonces = Vec::new();
    for _ in 0..2 {
        let reply = console.http.get(console.url("/")).send().await.unwrap();
        assert_eq!(reply.status(), StatusCode::OK);
        let headers = reply.headers().clone();
        assert_eq!(header(&headers, "x-frame-options"), "DENY");
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
        assert_eq!(header(&headers, "referrer-policy"), "same-origin");
        assert_eq!(header(&headers, "cache-control"), "no-store");
        let csp = header(&headers, "content-security-policy").to_string();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        let script_src = csp
            .split(';')
            .map(str::trim)
            .find(|d| d.starts_with("script-src "))
            .unwrap_or_else(|| panic!("no script-src in {csp}"));
        assert!(!script_src.contains("unsafe-inline"), "{csp}");
        let nonce = csp
            .split("'nonce-")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .unwrap_or_else(|| panic!("no nonce in {csp}"))
            .to_string();
        let html = reply.text().await.unwrap();
        let scripts: Vec<&str> = html
            .match_indices("<script")
            .map(|(i, _)| &html[i..])
            .collect();
        assert!(!scripts.is_empty(), "no script in the page");
        for script in scripts {
            let tag = &script[..script.find('>').unwrap()];
            assert!(
                tag.contains(&format!("nonce=\"{nonce}\"")),
                "{tag} lacks {nonce}"
            );
        }
        nonces.push(nonce);
    }
    assert_ne!(
        nonces[0], nonces[1],
        "the nonce must be new for every response"
    );

    for (path, method) in [
        ("/api/connection", "POST"),
        ("/healthz", "GET"),
        (
            "/downloads/jobs/00000000-0000-0000-0000-000000000000/results.csv",
            "GET",
        ),
        ("/no-such-page", "GET"),
    ] {
        let request = match method {
            "POST" => console.http.post(console.url(path)).form(&[("x", "")]),
            _ => console.http.get(console.url(path)),
        };
        let reply = request.send().await.unwrap();
        let headers = reply.headers();
        assert_eq!(header(headers, "cache-control"), "no-store", "{path}");
        assert_eq!(header(headers, "x-frame-options"), "DENY", "{path}");
        assert_eq!(
            header(headers, "x-content-type-options"),
            "nosniff",
            "{path}"
        );
        assert!(
            header(headers, "content-security-policy").contains("default-src 'none'"),
            "{path}"
        );
    }
}

/// The console refuses plain http unless started with --allow-http-loopback-sites, and
/// internal IP addresses in any case, before any request is sent. Nothing is saved.
#[tokio::test]
async fn plain_http_and_internal_site_addresses_are_refused_by_the_console() {
    let site = FaultServer::start(&["--users", "3"]);
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start_with_only(&dir.path().join("data"), &[]).await;
    let found = connect(&console, &site.base).await;
    assert_eq!(found["ok"], json!(false), "{found}");
    assert_eq!(found["kind"], json!("bad_url"), "{found}");
    assert!(
        found["message"].as_str().unwrap().contains("plain http"),
        "{found}"
    );
    let state = site.state().await;
    assert_eq!(state["requests"]["GET"].as_u64().unwrap_or(0), 0, "{state}");
    for internal in [
        "https://169.254.169.254",
        "https://10.0.0.1",
        "https://[fd00:ec2::254]",
    ] {
        let found = connect(&console, internal).await;
        assert_eq!(found["ok"], json!(false), "{internal}: {found}");
        let message = found["message"].as_str().unwrap();
        assert!(
            message.contains("points inside a private network"),
            "{message}"
        );
        assert!(message.contains("--allow-site-host"), "{message}");
    }
    let view = console.call("connection", &[]).await.expect("connection");
    assert!(!view.to_string().contains("169.254"), "{view}");
}
