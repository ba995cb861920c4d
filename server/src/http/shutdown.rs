//! The console's hand-over when told to stop (SIGTERM, Ctrl-C): one flag, set once, that
//! every part reads. The front door stops accepting and lets requests in flight finish,
//! `/readyz` answers 503 "shutting down", open live-progress streams end with a reconnect hint
//! (so the browser comes back through the proxy to another replica) and the runs' leases are
//! handed back. Without the hint an open stream kept the replica alive until its run ended.

use axum::response::sse::Event;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How soon a browser whose stream ended for a shutdown comes back (the SSE `retry:` field):
/// soon, since another replica is there already, but not at once, so a proxy that still
/// holds a connection to this replica has a moment to notice it went away.
pub const RECONNECT_AFTER: Duration = Duration::from_millis(500);

/// The SSE event name of the hint; the page has no handler for it on purpose: the browser's
/// own reconnection (after `retry:`) is what it relies on.
pub const RECONNECT_EVENT: &str = "reconnect";

/// Whether the console was told to stop. Cloned into every part that must react; a default
/// one is never set (tests that drive routes alone).
#[derive(Clone, Debug)]
pub struct ShuttingDown {
    flag: Arc<watch::Sender<bool>>,
}

impl Default for ShuttingDown {
    fn default() -> ShuttingDown {
        ShuttingDown {
            flag: Arc::new(watch::Sender::new(false)),
        }
    }
}

impl ShuttingDown {
    /// From now on the console is stopping. Setting it again changes nothing.
    pub fn begin(&self) {
        self.flag
            .send_if_modified(|set| !std::mem::replace(set, true));
    }

    pub fn is_set(&self) -> bool {
        *self.flag.borrow()
    }

    /// Completes once [`ShuttingDown::begin`] was called (at once if it was already).
    pub async fn wait(&self) {
        let mut seen = self.flag.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail while this is borrowed.
        let _ = seen.wait_for(|set| *set).await;
    }

    /// Sets the flag when the process is told to stop (SIGTERM or Ctrl-C).
    pub fn on_signal(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            stop_signal().await;
            tracing::info!("told to stop: handing over to the other replicas");
            this.begin();
        });
    }
}

/// The last event of a live-progress stream ended because the console stops: no data the page
/// acts on, only `retry:` so the browser reconnects (with `Last-Event-ID`, so it misses nothing)
/// after [`RECONNECT_AFTER`].
pub fn reconnect_event() -> Event {
    Event::default()
        .event(RECONNECT_EVENT)
        .retry(RECONNECT_AFTER)
        .data("This console is restarting; reconnecting.")
}

/// Ctrl-C or SIGTERM, whichever comes first (also how the test site server stops). A handler
/// that cannot be installed waits forever rather than stopping at once.
pub async fn stop_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::sse::Sse;
    use axum::response::IntoResponse;

    #[tokio::test]
    async fn waiting_ends_once_begun_and_at_once_after() {
        let flag = ShuttingDown::default();
        assert!(!flag.is_set());
        let waiter = tokio::spawn({
            let flag = flag.clone();
            async move { flag.wait().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        flag.begin();
        flag.begin();
        waiter.await.unwrap();
        assert!(flag.is_set());
        // A stream opened after the flag was set ends at once too.
        tokio::time::timeout(Duration::from_secs(5), flag.wait())
            .await
            .expect("an already-set flag does not wait");
    }

    #[tokio::test]
    async fn a_default_flag_is_never_set() {
        let flag = ShuttingDown::default();
        let waited = tokio::time::timeout(Duration::from_millis(50), flag.wait()).await;
        assert!(waited.is_err());
    }

    #[tokio::test]
    async fn the_hint_tells_the_browser_to_come_back_soon() {
        let stream = futures::stream::iter([Ok::<_, std::convert::Infallible>(reconnect_event())]);
        let body = Sse::new(stream).into_response().into_body();
        let bytes = axum::body::to_bytes(body, 4096).await.unwrap();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(text.contains("event: reconnect\n"), "{text}");
        assert!(text.contains("retry: 500\n"), "{text}");
        // No `id:` line: the browser keeps the last event id it saw, and resumes after it.
        assert!(!text.contains("id:"), "{text}");
    }
}
