//! The accept loop: which connections the console takes (a global and a per-address cap),
//! how long a client may take to send a request's headers, and what every request learns of
//! its connection (the peer, and the client address `client_address` reads from it) before
//! any route runs. Without these, one client holding half-sent requests open ran the process
//! out of file descriptors and nobody could sign in.

use super::client_address::{canonical, ClientAddress, TrustedProxies};
use axum::extract::{ConnectInfo, Request};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

/// Files kept free for the database, sites, reports and logs when the connection cap is fitted
/// to the open-file limit.
const FILES_FOR_THE_REST: u64 = 256;

/// How the door is kept.
#[derive(Clone, Debug)]
pub struct DoorRules {
    /// Time to send a request's headers, from the connection's start or its previous answer.
    pub header_timeout: Duration,
    pub max_connections: usize,
    pub max_per_address: usize,
    pub trusted: Arc<TrustedProxies>,
}

/// Open connections, in all and per peer address.
#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// The connection caps. [`Caps::admit`] gives a ticket that frees the place when dropped.
#[derive(Clone, Debug)]
pub struct Caps {
    max_connections: usize,
    max_per_address: usize,
    trusted: Arc<TrustedProxies>,
    counts: Arc<Mutex<Counts>>,
}

/// One admitted connection's place under the caps.
#[derive(Debug)]
pub struct Ticket {
    caps: Caps,
    /// `None` for a trusted proxy, which is counted only in the total.
    address: Option<IpAddr>,
}

impl Caps {
    pub fn new(
        max_connections: usize,
        max_per_address: usize,
        trusted: Arc<TrustedProxies>,
    ) -> Caps {
        Caps {
            max_connections: max_connections.max(1),
            max_per_address: max_per_address.max(1),
            trusted,
            counts: Arc::default(),
        }
    }

    /// A place for a connection from `peer`, or `None` when the console or this address is
    /// full. A reverse proxy carries many people's connections, so a trusted one is held only
    /// to the total.
    pub fn admit(&self, peer: IpAddr) -> Option<Ticket> {
        let peer = canonical(peer);
        let address = (!self.trusted.trusts(peer)).then_some(peer);
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.total >= self.max_connections {
            return None;
        }
        if let Some(address) = address {
            let held = counts.per_address.entry(address).or_insert(0);
            if *held >= self.max_per_address {
                return None;
            }
            *held += 1;
        }
        counts.total += 1;
        Some(Ticket {
            caps: self.clone(),
            address,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut counts = self.caps.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(address) = self.address {
            if let Some(held) = counts.per_address.get_mut(&address) {
                *held -= 1;
                if *held == 0 {
                    // The map holds only addresses with a connection open: it cannot grow
                    // with every address ever seen.
                    counts.per_address.remove(&address);
                }
            }
        }
    }
}

/// Raises this process's open-file limit to the most it may have (the soft limit to the hard
/// one: often 1,024 to 524,288 under systemd), and returns the limit in force.
pub fn raise_open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct passed.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            // SAFETY: as above.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                limit = raised;
            } else {
                tracing::warn!(
                    soft = limit.rlim_cur,
                    hard = limit.rlim_max,
                    "could not raise the open-file limit"
                );
            }
        }
        #[allow(clippy::useless_conversion)] // rlim_t is u64 on Linux, not everywhere.
        Some(u64::from(limit.rlim_cur))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// `wanted`, lowered so that connections leave [`FILES_FOR_THE_REST`] files of `open_files`.
pub fn fit_to_files(wanted: usize, open_files: Option<u64>) -> usize {
    match open_files {
        Some(files) => {
            let room =
                usize::try_from(files.saturating_sub(FILES_FOR_THE_REST)).unwrap_or(usize::MAX);
            wanted.min(room.max(16))
        }
        None => wanted,
    }
}

/// Serves `routes` on `listener` until `shutdown` completes, then stops accepting and waits
/// for the open connections to finish (each is told to close after its current request).
pub async fn serve(
    listener: TcpListener,
    routes: Router,
    rules: DoorRules,
    shutdown: impl Future<Output = ()>,
) {
    let caps = Caps::new(
        rules.max_connections,
        rules.max_per_address,
        rules.trusted.clone(),
    );
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(rules.header_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        // A silent HTTP/2 peer is found out and dropped: pinged every interval, closed when
        // a ping goes unanswered for as long.
        .keep_alive_interval(Some(rules.header_timeout.max(Duration::from_secs(5))))
        .keep_alive_timeout(rules.header_timeout.max(Duration::from_secs(5)))
        .max_concurrent_streams(64);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(ticket) = caps.admit(peer.ip()) else {
            // Closed at once, nothing read: a full door costs one accept, not a file.
            tracing::debug!(open = caps.open(), "a connection over the cap was closed");
            drop(tcp);
            continue;
        };
        without_delay(&tcp);
        let service = {
            let (routes, trusted) = (routes.clone(), rules.trusted.clone());
            // The peer ([`ConnectInfo`]) and the client's address ([`ClientAddress`]) go into
            // every request before anything else sees it.
            tower::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let mut request: Request = request.map(axum::body::Body::new);
                let client = trusted.client_ip(peer.ip(), request.headers());
                request.extensions_mut().insert(ConnectInfo(peer));
                request.extensions_mut().insert(ClientAddress(client));
                routes.clone().oneshot(request)
            })
        };
        let service = hyper_util::service::TowerToHyperService::new(service);
        let (builder, watcher) = (builder.clone(), graceful.watcher());
        let header_timeout = rules.header_timeout;
        tokio::spawn(async move {
            // hyper's header timeout starts once it knows the protocol; a client that sends
            // nothing (or half the HTTP/2 preface) would never get that far.
            if first_bytes_within(&tcp, header_timeout).await {
                let connection = builder
                    .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                    .into_owned();
                if let Err(e) = watcher.watch(connection).await {
                    tracing::debug!(error = %e, "a connection ended with an error");
                }
            }
            drop(ticket);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The HTTP/2 connection preface: a client that sends a prefix of it may still be either.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether, within `limit`, the client sent enough to tell HTTP/1 from HTTP/2 (nothing is
/// consumed: the bytes are only peeked at). A closed or silent connection is `false`.
async fn first_bytes_within(tcp: &TcpStream, limit: Duration) -> bool {
    let enough = async {
        let mut buf = [0u8; H2_PREFACE.len()];
        loop {
            let n = match tcp.peek(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            };
            if n == H2_PREFACE.len() || buf[..n] != H2_PREFACE[..n] {
                return true;
            }
            // Part of the preface, and peeking again at once would see the same bytes.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(limit, enough).await.unwrap_or(false)
}

/// `TCP_NODELAY` on: without it the second write of a response (the body after the headers)
/// waits for the browser's delayed ACK, about 40 ms on Linux, on every kept-alive request.
pub fn without_delay(tcp: &TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY on a connection");
    }
}

/// After a failed accept: a connection that died before it was taken is nothing; anything
/// else (out of files) is said, and the loop pauses so it does not spin.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "could not accept a connection");
    tokio::time::sleep(Duration::from_millis(250)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn ip(text: &str) -> IpAddr {
        IpAddr::from_str(text).unwrap()
    }

    fn trusting(list: &[&str]) -> Arc<TrustedProxies> {
        Arc::new(TrustedProxies::new(
            list.iter().map(|c| c.parse().unwrap()).collect(),
        ))
    }

    #[test]
    fn one_address_gets_its_share_and_others_still_get_in() {
        let caps = Caps::new(10, 3, trusting(&[]));
        let held: Vec<_> = (0..3)
            .map(|_| caps.admit(ip("192.0.2.1")).unwrap())
            .collect();
        assert!(caps.admit(ip("192.0.2.1")).is_none());
        // The same peer written as IPv4-mapped IPv6 is the same address.
        assert!(caps.admit(ip("::ffff:192.0.2.1")).is_none());
        let other = caps.admit(ip("192.0.2.2")).unwrap();
        assert_eq!(caps.open(), 4);
        drop(held);
        assert_eq!(caps.open(), 1);
        assert!(caps.admit(ip("192.0.2.1")).is_some());
        drop(other);
        assert_eq!(caps.open(), 0);
        assert!(caps.counts.lock().unwrap().per_address.is_empty());
    }

    #[test]
    fn the_total_holds_for_everyone_and_proxies_only_count_in_it() {
        let caps = Caps::new(5, 2, trusting(&["10.0.0.0/8"]));
        let proxy: Vec<_> = (0..4)
            .map(|_| caps.admit(ip("10.0.0.5")).unwrap())
            .collect();
        let one = caps.admit(ip("192.0.2.1")).unwrap();
        assert!(caps.admit(ip("192.0.2.2")).is_none(), "total reached");
        assert!(caps.admit(ip("10.0.0.5")).is_none(), "a proxy too");
        drop(one);
        assert!(caps.admit(ip("10.0.0.6")).is_some());
        drop(proxy);
    }

    #[test]
    fn zero_caps_still_admit_one() {
        let caps = Caps::new(0, 0, trusting(&[]));
        let first = caps.admit(ip("192.0.2.1"));
        assert!(first.is_some());
        assert!(caps.admit(ip("192.0.2.2")).is_none());
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_or_half_preface_client_is_given_up_on() {
        use tokio::io::AsyncWriteExt;
        let limit = Duration::from_secs(5);
        let (_silent, server) = pair().await;
        assert!(!first_bytes_within(&server, limit).await);
        let (mut half, server) = pair().await;
        half.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        assert!(!first_bytes_within(&server, limit).await);
        let (closed, server) = pair().await;
        drop(closed);
        assert!(!first_bytes_within(&server, limit).await);
    }

    #[tokio::test]
    async fn http1_and_http2_clients_are_told_apart_at_once() {
        use tokio::io::AsyncWriteExt;
        let limit = Duration::from_secs(30);
        let (mut h1, server) = pair().await;
        h1.write_all(b"G").await.unwrap();
        assert!(first_bytes_within(&server, limit).await);
        let (mut h2, server) = pair().await;
        h2.write_all(H2_PREFACE).await.unwrap();
        assert!(first_bytes_within(&server, limit).await);
        // Nothing was consumed: hyper reads the same bytes.
        let mut buf = [0u8; 24];
        assert_eq!(server.peek(&mut buf).await.unwrap(), 24);
    }

    #[test]
    fn the_cap_fits_the_open_file_limit() {
        assert_eq!(fit_to_files(4096, None), 4096);
        assert_eq!(fit_to_files(4096, Some(1_048_576)), 4096);
        assert_eq!(fit_to_files(4096, Some(1024)), 768);
        assert_eq!(fit_to_files(4096, Some(100)), 16);
        assert_eq!(fit_to_files(10, Some(1024)), 10);
    }
}
