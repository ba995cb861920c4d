//! The proxy environment against the real binary: with HTTPS_PROXY (and its kin) set, the
//! console still goes straight to the site and the "proxy" hears nothing; with
//! `--sites-proxy`, requests go through it, and a guarded name is refused before the proxy is
//! asked to connect. The proxy is a bare TCP listener on loopback (a stand-in, not a real
//! proxy): it writes down each request's first line and answers 502.

mod support;

use serde_json::json;
use std::sync::{Arc, Mutex};
use support::console_process::ConsoleProcess;
use support::fault_server::FaultServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The stand-in proxy: its address and the first line of every request it got.
async fn stand_in_proxy() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let heard = Arc::new(Mutex::new(Vec::new()));
    let log = heard.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                let first = text.lines().next().unwrap_or("(nothing)").to_string();
                log.lock().unwrap().push(first);
                let _ = socket
                    .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    (address, heard)
}

#[tokio::test]
async fn the_proxy_environment_is_ignored_and_the_site_is_reached_directly() {
    let (proxy, heard) = stand_in_proxy().await;
    let site = FaultServer::start(&["--users", "5"]);
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("HTTPS_PROXY", proxy.as_str()),
        ("https_proxy", proxy.as_str()),
        ("HTTP_PROXY", proxy.as_str()),
        ("http_proxy", proxy.as_str()),
        ("ALL_PROXY", proxy.as_str()),
        ("all_proxy", proxy.as_str()),
        ("NO_PROXY", ""),
        ("no_proxy", ""),
    ];
    let console = ConsoleProcess::start_with_env(
        &dir.path().join("data"),
        &["--allow-http-loopback-sites"],
        &env,
    )
    .await;
    let diagnosis = console.save_connection(&site.base, "", "").await;
    assert_eq!(diagnosis["ok"], json!(true), "{diagnosis}");
    assert!(
        heard.lock().unwrap().is_empty(),
        "the proxy from the environment was used: {:?}",
        heard.lock().unwrap()
    );
}

#[tokio::test]
async fn with_a_sites_proxy_guarded_names_are_refused_before_the_proxy_is_asked() {
    let (proxy, heard) = stand_in_proxy().await;
    let site = FaultServer::start(&["--users", "5"]);
    let dir = tempfile::tempdir().unwrap();
    let console =
        ConsoleProcess::start_with(&dir.path().join("data"), &["--sites-proxy", &proxy]).await;
    for name in [
        "https://metadata.google.internal",
        "https://localhost",
        "https://intranet",
    ] {
        let diagnosis = console.save_connection(name, "", "").await;
        assert_eq!(diagnosis["ok"], json!(false), "{name}: {diagnosis}");
        let message = diagnosis["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("points inside a private network"),
            "{name}: {message}"
        );
    }
    assert!(
        heard.lock().unwrap().is_empty(),
        "the proxy was asked: {:?}",
        heard.lock().unwrap()
    );
    // An allowed site goes through the named proxy (which answers 502 here).
    let diagnosis = console.save_connection(&site.base, "", "").await;
    assert_eq!(diagnosis["ok"], json!(false), "{diagnosis}");
    let heard = heard.lock().unwrap().clone();
    assert!(
        heard
            .iter()
            .any(|line| line.starts_with("GET http://127.0.0.1:")),
        "{heard:?}"
    );
}
