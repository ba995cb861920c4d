//! The console's front door against the real binary: whose address a sign-in is counted
//! against (a forwarded one only from a `--trusted-proxy`), and half-sent requests that must
//! not shut the door (connection caps, the header timeout). Everything stays on loopback; the
//! "other client" sockets come from 127.0.0.2, which is loopback too on Linux. The live
//! progress stream's run deletes on the project's fault server, a FAKE Stack site (a test
//! double, slowed so the run outlasts the header timeout).

mod support;

use reqwest::StatusCode;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use support::console_process::{client_with, session_cookie, ConsoleProcess, FIRST_OWNER};

/// Failures one address may have in 15 minutes before it is throttled
/// (`service::accounts::FAILURES_PER_ADDRESS`).
const PER_ADDRESS: usize = server::service::accounts::FAILURES_PER_ADDRESS as usize;

/// A sign-in as someone not signed in, with `X-Forwarded-For` if given: the `problem` code
/// the console answered with, or "signed-in" with its session cookie.
async fn sign_in_from(
    console: &ConsoleProcess,
    forwarded_for: Option<&str>,
    email: &str,
    password: &str,
) -> String {
    let mut request = client_with(None).post(console.url("/sign-in")).form(&[
        ("email", email),
        ("password", password),
        ("next", "/"),
    ]);
    if let Some(value) = forwarded_for {
        request = request.header("X-Forwarded-For", value);
    }
    let reply = request.send().await.expect("sign-in");
    assert_eq!(reply.status(), StatusCode::SEE_OTHER);
    if session_cookie(&reply).is_some() {
        return "signed-in".to_string();
    }
    let location = reply
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string();
    location
        .split(['?', '&'])
        .find_map(|part| part.strip_prefix("problem="))
        .unwrap_or(&location)
        .to_string()
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_address_has_its_own_count() {
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start_with(
        &dir.path().join("data"),
        &["--trusted-proxy", "127.0.0.1/32"],
    )
    .await;
    // A stranger behind the proxy fills their address's count with random emails.
    for i in 0..PER_ADDRESS {
        let email = format!("stranger{i}@example.com");
        let answer = sign_in_from(&console, Some("198.51.100.1"), &email, "guess").await;
        assert_eq!(answer, "wrong-password", "attempt {i}");
    }
    // Past its allowance the address is slowed down (never locked out: each attempt is still
    // checked, later), as its own address.
    let answer = sign_in_from(&console, Some("198.51.100.1"), "late@example.com", "x").await;
    assert_eq!(answer, "wrong-password");
    console
        .log_once_it_says("sign-ins from 198.51.100.1 are slowed down")
        .await;
    // Entries the client wrote left of what the proxy appended change nothing.
    let answer = sign_in_from(
        &console,
        Some("203.0.113.9, 198.51.100.1"),
        "later@example.com",
        "x",
    )
    .await;
    assert_eq!(answer, "wrong-password");
    // Someone else behind the same proxy is counted apart: not slowed, and the owner's right
    // password works.
    let answer = sign_in_from(&console, Some("198.51.100.2"), "typo@example.com", "x").await;
    assert_eq!(answer, "wrong-password");
    let (email, _, password) = FIRST_OWNER;
    let answer = sign_in_from(&console, Some("198.51.100.2"), email, password).await;
    assert_eq!(answer, "signed-in", "log:\n{}", console.log_text());
    let log = console.log_text();
    assert_eq!(
        log.matches("sign-ins from 198.51.100.1 are slowed down")
            .count(),
        2,
        "{log}"
    );
    for other in ["203.0.113.9", "198.51.100.2", "127.0.0.1"] {
        assert!(
            !log.contains(&format!("sign-ins from {other} are slowed")),
            "{other}: {log}"
        );
    }
}

#[tokio::test]
async fn without_a_trusted_proxy_a_forged_forwarded_for_dodges_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start(&dir.path().join("data")).await;
    for i in 0..PER_ADDRESS {
        let email = format!("stranger{i}@example.com");
        let forged = format!("198.51.100.{}", i + 1);
        let answer = sign_in_from(&console, Some(&forged), &email, "guess").await;
        assert_eq!(answer, "wrong-password", "attempt {i}");
    }
    // A new forged address each time, and RFC 7239's header too: still this peer's count,
    // so this peer is the one slowed down.
    let answer = sign_in_from(&console, Some("203.0.113.77"), "late@example.com", "x").await;
    assert_eq!(answer, "wrong-password");
    let reply = client_with(None)
        .post(console.url("/sign-in"))
        .header("Forwarded", "for=203.0.113.78")
        .form(&[("email", "later@example.com"), ("password", "x")])
        .send()
        .await
        .unwrap();
    let location = reply.headers()["location"].to_str().unwrap().to_string();
    assert!(location.contains("problem=wrong-password"), "{location}");
    console
        .log_once_it_says("sign-ins from 127.0.0.1 are slowed down")
        .await;
    let log = console.log_text();
    assert_eq!(
        log.matches("sign-ins from 127.0.0.1 are slowed down")
            .count(),
        2,
        "{log}"
    );
    assert!(!log.contains("sign-ins from 203.0.113"), "{log}");
}

/// Lets this test process hold a thousand sockets where the soft open-file limit is 1,024.
fn raise_own_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn console_addr(console: &ConsoleProcess) -> SocketAddr {
    console
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("console address")
}

/// `count` connections from `from` (a loopback address), each with a request whose headers
/// never end: the slowloris attack. Connections the console refuses outright still count as
/// opened here (a refused one shows up closed).
async fn half_sent(console: &ConsoleProcess, from: &str, count: usize) -> Vec<TcpStream> {
    let to = console_addr(console);
    let head = format!("GET /healthz HTTP/1.1\r\nHost: {to}\r\nX-Waiting: ");
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(format!("{from}:0").parse().expect("source"))
            .expect("bind the source address");
        let stream = socket.connect(to).await.expect("connect");
        let mut stream = stream.into_std().expect("std socket");
        // A refused connection may be closed before this write: that is fine.
        let _ = stream.write_all(head.as_bytes());
        sockets.push(stream);
    }
    sockets
}

/// Whether the console closed `socket` (end of stream or reset), without waiting.
fn is_closed(socket: &TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    let mut reader = socket;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}

/// Waits (up to 60 s) until at least `wanted` of `sockets` are closed; how many are.
async fn until_closed(sockets: &[TcpStream], wanted: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let closed = sockets.iter().filter(|s| is_closed(s)).count();
        if closed >= wanted || Instant::now() >= deadline {
            return closed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn healthz(console: &ConsoleProcess) -> StatusCode {
    client_with(None)
        .get(console.url("/healthz"))
        .send()
        .await
        .expect("/healthz answers")
        .status()
}

#[tokio::test]
async fn half_sent_requests_from_one_address_cannot_shut_the_door() {
    raise_own_file_limit();
    let dir = tempfile::tempdir().unwrap();
    // A header timeout longer than the test: every connection closed here is closed by the
    // per-address cap (256 by default).
    let console = ConsoleProcess::start_with(
        &dir.path().join("data"),
        &["--header-timeout-seconds", "300"],
    )
    .await;
    let attack = half_sent(&console, "127.0.0.2", 600).await;
    let closed = until_closed(&attack, 600 - 256).await;
    assert!(closed >= 600 - 256, "only {closed} of 600 were refused");
    assert!(
        closed < 600,
        "the attacker's own share stays open until the header timeout"
    );

    // Everyone else still gets in while the attacker's share is held open.
    assert_eq!(healthz(&console).await, StatusCode::OK);
    let (email, _, password) = FIRST_OWNER;
    assert_eq!(
        sign_in_from(&console, None, email, password).await,
        "signed-in"
    );
    // The attacker's held sockets are still open: the door was open despite them.
    let still_open = attack.iter().filter(|s| !is_closed(s)).count();
    assert!(still_open > 0 && still_open <= 256, "{still_open}");
}

#[tokio::test]
async fn the_global_cap_holds_and_the_header_timeout_frees_the_door() {
    raise_own_file_limit();
    let dir = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start_with(
        &dir.path().join("data"),
        &[
            "--max-connections",
            "100",
            "--max-connections-per-address",
            "100000",
            "--header-timeout-seconds",
            "2",
        ],
    )
    .await;
    let attack = half_sent(&console, "127.0.0.2", 300).await;
    // Over the total: refused at once, whatever the per-address cap allows.
    let closed = until_closed(&attack, 200).await;
    assert!(closed >= 200, "only {closed} of 300 were refused");
    // The rest are closed when their headers do not come in time.
    let closed = until_closed(&attack, 300).await;
    assert_eq!(closed, 300, "half-sent requests stayed open");
    // And the door is open again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while healthz(&console).await != StatusCode::OK {
        assert!(
            Instant::now() < deadline,
            "the console did not answer again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads one whole answer (headers, then Content-Length bytes) from `socket`: its text.
fn read_answer(socket: &mut TcpStream) -> String {
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return text;
            }
        }
        match socket.read(&mut buf) {
            Ok(0) => return String::from_utf8_lossy(&got).to_string(),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("reading the answer: {e}; so far: {text}"),
        }
    }
}

/// A connection that sends half its headers and no more: the console closes it when its
/// header timeout has passed, which tells a test the timeout passed without a clock.
fn header_timeout_witness(to: std::net::SocketAddr) -> TcpStream {
    let mut socket = TcpStream::connect(to).unwrap();
    socket
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {to}\r\nX-A: ").as_bytes())
        .unwrap();
    socket.set_nonblocking(true).unwrap();
    socket
}

/// Waits (up to 30 s) for the console to close `socket`.
async fn closed_within_bound(socket: &TcpStream) -> bool {
    socket.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if is_closed(socket) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn the_header_timeout_closes_slow_and_idle_connections_but_not_slow_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let console =
        ConsoleProcess::start_with(&dir.path().join("data"), &["--header-timeout-seconds", "1"])
            .await;
    let to = console_addr(&console);

    // Headers that never end: closed.
    let mut slow = TcpStream::connect(to).unwrap();
    slow.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {to}\r\nX-A: ").as_bytes())
        .unwrap();
    assert!(
        closed_within_bound(&slow).await,
        "a half-sent request stayed open"
    );

    // A client that sends nothing at all, or half the HTTP/2 preface: closed too.
    let silent = TcpStream::connect(to).unwrap();
    assert!(
        closed_within_bound(&silent).await,
        "a silent connection stayed open"
    );
    let mut half_preface = TcpStream::connect(to).unwrap();
    half_preface.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
    assert!(
        closed_within_bound(&half_preface).await,
        "half an HTTP/2 preface stayed open"
    );

    // A kept-alive connection left idle after its answer: closed.
    let mut idle = TcpStream::connect(to).unwrap();
    idle.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {to}\r\n\r\n").as_bytes())
        .unwrap();
    let answer = read_answer(&mut idle);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        closed_within_bound(&idle).await,
        "an idle connection stayed open"
    );

    // A body that takes longer than the header timeout to arrive is still read whole: the
    // timeout is for headers only (uploads are not cut). No clock decides "longer": a second
    // connection, opened once the upload's headers are sent, sends half its headers; the rest
    // of the body is sent only after the console has closed that one for its header timeout.
    let body = "email=nobody%40example.com&password=wrong-password-here&next=%2F";
    let mut upload = TcpStream::connect(to).unwrap();
    upload
        .write_all(
            format!(
                "POST /sign-in HTTP/1.1\r\nHost: {to}\r\nContent-Type: \
                 application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    upload.write_all(first).unwrap();
    let timed_out = header_timeout_witness(to);
    assert!(
        closed_within_bound(&timed_out).await,
        "the witness connection was never closed"
    );
    upload.write_all(rest).unwrap();
    let answer = read_answer(&mut upload);
    assert!(answer.starts_with("HTTP/1.1 303"), "{answer}");
    assert!(answer.contains("problem=wrong-password"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_progress_stream_outlasts_the_header_timeout() {
    use support::fault_server::FaultServer;
    // A run of 48 deletes at 400 ms each, 8 at a time: some seconds of live progress, on a
    // console whose header timeout is one second.
    let site = FaultServer::start(&["--users", "60", "--latency-ms", "400"]);
    let dir = tempfile::tempdir().unwrap();
    let console =
        ConsoleProcess::start_with(&dir.path().join("data"), &["--header-timeout-seconds", "1"])
            .await;
    let diagnosis = console.save_connection(&site.base, "", "").await;
    assert_eq!(diagnosis["ok"], serde_json::json!(true), "{diagnosis}");
    let mut pasted = String::from("Email\n");
    for i in 1..=48 {
        pasted.push_str(&format!("user{i}@example.com\n"));
    }
    let preview = console.preview_text(&pasted, "delete").await;
    let job_id = console.start_run(&preview).await;

    let mut stream = console
        .http
        .get(console.url(&format!("/jobs/{job_id}/events")))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .expect("events");
    assert_eq!(stream.status(), StatusCode::OK);
    // Opened with the stream, cut by the header timeout: closed by the end of the run only if
    // the stream outlived the header timeout (what makes this test mean anything).
    let timed_out = header_timeout_witness(console_addr(&console));
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !text.contains("event: end") {
        assert!(Instant::now() < deadline, "no end on the stream:\n{text}");
        match tokio::time::timeout(Duration::from_secs(10), stream.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(Ok(None)) => panic!("the stream was cut before the run ended:\n{text}"),
            Ok(Err(e)) => panic!("the stream failed: {e}\n{text}"),
            Err(_) => {}
        }
    }
    assert!(
        is_closed(&timed_out),
        "the run ended before the header timeout cut a connection opened with the stream"
    );
    assert!(text.contains("\"finished\""), "{text}");
}
