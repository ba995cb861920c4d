//! Prometheus metrics for hosting teams, served on their own address (`--metrics-addr`, off by
//! default) so the console's port never exposes them. docs/operations.md says what each series
//! means and which alerts to start from.
//!
//! Crate: `prometheus-client`, the Prometheus project's own Rust client. Its label sets are
//! typed structs (derived), so a label can only ever hold what its struct names (a site's host,
//! a state, an outcome) and never an email, a token or an id by accident; it has four small
//! dependencies and no global recorder to install. (`metrics` + `metrics-exporter-prometheus`
//! takes labels as free strings at each call site and brings its own HTTP listener.)
//!
//! Every recording function here is one call from the place it measures; the figures live in
//! one process-wide registry. The command line (`offboard delete`) records too, but serves
//! nothing, so its figures simply go away with it.

use model::deletion::{ItemOutcome, JobState};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// How many connections the database pool holds, and how many of them are idle.
pub type PoolUse = Box<dyn Fn() -> (u32, usize) + Send + Sync>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// A site is named by its host alone: never its path (a Business site's path names the team),
/// its user name or password, nor a query.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SiteLabel {
    site: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SiteStatusLabel {
    site: String,
    /// The HTTP status, or `error` when no answer came (refused, reset, timed out).
    status: String,
}

/// Why a worker waited before sending again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// The site answered 429: every worker of the run waits at the shared gate.
    Throttled,
    /// A transient failure (503, a refused connection…) on one user: that worker backs off.
    Transient,
    /// A page of the user listing failed and is asked again.
    Listing,
}

impl Wait {
    fn label(self) -> &'static str {
        match self {
            Wait::Throttled => "throttled",
            Wait::Transient => "transient",
            Wait::Listing => "listing",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WaitLabel {
    reason: &'static str,
}

/// How someone signed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignInMethod {
    Password,
    Sso,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SignInLabel {
    method: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TakeOverLabel {
    after: &'static str,
}

type SecondsCounter = Counter<f64, AtomicU64>;

struct Metrics {
    registry: Registry,
    runs_started: Counter,
    runs_ended: Family<StateLabel, Counter>,
    runs_live: Gauge,
    users: Family<OutcomeLabel, Counter>,
    scim_seconds: Family<SiteLabel, Histogram, fn() -> Histogram>,
    scim_answers: Family<SiteStatusLabel, Counter>,
    scim_throttled: Family<SiteLabel, Counter>,
    waits: Family<WaitLabel, Counter>,
    wait_seconds: Family<WaitLabel, SecondsCounter>,
    streams_open: Gauge,
    streams_refused: Counter,
    sign_ins: Family<SignInLabel, Counter>,
    take_overs: Family<TakeOverLabel, Counter>,
    pool_size: Gauge,
    pool_idle: Gauge,
    pool_use: Mutex<Option<PoolUse>>,
}

/// SCIM latency buckets: 10 ms to about 20 s, doubling (a Stack site answers in tens to
/// hundreds of milliseconds; a slow one in seconds; the client gives up at 30 s).
fn scim_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 12))
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Metrics {
        // The series first, then the registry that names them (it keeps handles to each).
        let m = Metrics {
            registry: Registry::default(),
            runs_started: Counter::default(),
            runs_ended: Family::default(),
            runs_live: Gauge::default(),
            users: Family::default(),
            scim_seconds: Family::new_with_constructor(scim_histogram as fn() -> Histogram),
            scim_answers: Family::default(),
            scim_throttled: Family::default(),
            waits: Family::default(),
            wait_seconds: Family::default(),
            streams_open: Gauge::default(),
            streams_refused: Counter::default(),
            sign_ins: Family::default(),
            take_overs: Family::default(),
            pool_size: Gauge::default(),
            pool_idle: Gauge::default(),
            pool_use: Mutex::new(None),
        };
        let mut r = Registry::with_prefix("offboard");
        r.register(
            "runs_started",
            "Runs this process started driving (new, resumed or taken over)",
            m.runs_started.clone(),
        );
        r.register(
            "runs_ended",
            "Runs this process drove to their end, by the state they ended in",
            m.runs_ended.clone(),
        );
        r.register(
            "runs_live",
            "Runs this process is driving now",
            m.runs_live.clone(),
        );
        r.register(
            "users_processed",
            "Users a run settled, by outcome",
            m.users.clone(),
        );
        r.register(
            "scim_request_seconds",
            "Time from sending a SCIM request to its whole answer, per site host",
            m.scim_seconds.clone(),
        );
        r.register(
            "scim_answers",
            "SCIM answers per site host and HTTP status (status \"error\": no answer)",
            m.scim_answers.clone(),
        );
        r.register(
            "scim_throttled",
            "SCIM answers 429 (too many requests), per site host",
            m.scim_throttled.clone(),
        );
        r.register(
            "backoff_waits",
            "Waits before sending again, by reason",
            m.waits.clone(),
        );
        r.register(
            "backoff_wait_seconds",
            "Seconds of those waits, by reason",
            m.wait_seconds.clone(),
        );
        r.register(
            "live_streams_open",
            "Live-progress streams (Server-Sent Events) open now",
            m.streams_open.clone(),
        );
        r.register(
            "live_streams_refused",
            "Live-progress streams refused by a watcher cap",
            m.streams_refused.clone(),
        );
        r.register(
            "sign_ins",
            "Sign-in attempts by method and result (ok, failed)",
            m.sign_ins.clone(),
        );
        r.register(
            "lease_take_overs",
            "Runs this process took over from a stopped process (after: start, expired)",
            m.take_overs.clone(),
        );
        r.register(
            "database_pool_connections",
            "Connections the database pool holds now",
            m.pool_size.clone(),
        );
        r.register(
            "database_pool_idle_connections",
            "Connections of the database pool idle now",
            m.pool_idle.clone(),
        );
        Metrics { registry: r, ..m }
    }
}

/// The host of a site's address, lower-cased; `unknown` when there is none.
pub fn site_host(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| h.trim_matches(['[', ']']).to_ascii_lowercase())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// The label of a run's state.
fn state_label(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "queued",
        JobState::Running => "running",
        JobState::Paused => "paused",
        JobState::Cancelling => "cancelling",
        JobState::Finished => "finished",
        JobState::Stopped => "stopped",
        JobState::Failed => "failed",
    }
}

/// The label of a user's outcome.
fn outcome_label(outcome: ItemOutcome) -> &'static str {
    match outcome {
        ItemOutcome::Deleted => "deleted",
        ItemOutcome::Deactivated => "deactivated",
        ItemOutcome::AlreadyGone => "already_gone",
        ItemOutcome::DeletionNotEnabled => "deletion_not_enabled",
        ItemOutcome::Privileged => "privileged",
        ItemOutcome::CommunityCreator => "community_creator",
        ItemOutcome::SystemAccount => "system_account",
        ItemOutcome::ChangedSincePreview => "changed_since_preview",
        ItemOutcome::Failed => "failed",
        ItemOutcome::NotAttempted => "not_attempted",
    }
}

/// One more of what a gauge counts (a run driven, a stream open) until it is dropped.
pub struct Held(&'static Gauge);

impl Held {
    fn of(gauge: &'static Gauge) -> Held {
        gauge.inc();
        Held(gauge)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A run is being driven from now until the returned guard is dropped.
#[must_use = "the run counts as live while the guard is kept"]
pub fn run_live() -> Held {
    METRICS.runs_started.inc();
    Held::of(&METRICS.runs_live)
}

/// A run ended in `state`.
pub fn run_ended(state: JobState) {
    METRICS
        .runs_ended
        .get_or_create(&StateLabel {
            state: state_label(state),
        })
        .inc();
}

/// A run settled one user.
pub fn user_processed(outcome: ItemOutcome) {
    METRICS
        .users
        .get_or_create(&OutcomeLabel {
            outcome: outcome_label(outcome),
        })
        .inc();
}

/// A SCIM request to the site at `url` got `status` (None: no answer) after `took`.
pub fn scim_answer(url: &str, status: Option<u16>, took: Duration) {
    let site = site_host(url);
    METRICS
        .scim_seconds
        .get_or_create(&SiteLabel { site: site.clone() })
        .observe(took.as_secs_f64());
    if status == Some(429) {
        METRICS
            .scim_throttled
            .get_or_create(&SiteLabel { site: site.clone() })
            .inc();
    }
    let status = status.map_or_else(|| "error".to_string(), |s| s.to_string());
    METRICS
        .scim_answers
        .get_or_create(&SiteStatusLabel { site, status })
        .inc();
}

/// A worker waits `wait` before sending again, for `reason`.
pub fn backoff_wait(reason: Wait, wait: Duration) {
    let label = WaitLabel {
        reason: reason.label(),
    };
    METRICS.waits.get_or_create(&label).inc();
    METRICS
        .wait_seconds
        .get_or_create(&label)
        .inc_by(wait.as_secs_f64());
}

/// A live-progress stream opened; it counts as open until the guard is dropped.
#[must_use = "the stream counts as open while the guard is kept"]
pub fn stream_opened() -> Held {
    Held::of(&METRICS.streams_open)
}

/// A live-progress stream was refused by a cap.
pub fn stream_refused() {
    METRICS.streams_refused.inc();
}

/// Someone tried to sign in with `method`; `ok` when they got in.
pub fn sign_in(method: SignInMethod, ok: bool) {
    let result = if ok { "ok" } else { "failed" };
    let method = match method {
        SignInMethod::Password => "password",
        SignInMethod::Sso => "sso",
    };
    METRICS
        .sign_ins
        .get_or_create(&SignInLabel { method, result })
        .inc();
}

/// This process took a run over; `after` is why ("server start", "lease expired").
pub fn lease_taken_over(after: &str) {
    let after = if after.contains("start") {
        "start"
    } else {
        "expired"
    };
    METRICS
        .take_overs
        .get_or_create(&TakeOverLabel { after })
        .inc();
}

/// Where the database pool's use is read at each scrape.
pub fn watch_pool(pool_use: PoolUse) {
    *METRICS.pool_use.lock().unwrap_or_else(|e| e.into_inner()) = Some(pool_use);
}

/// Every series, in the Prometheus text format (OpenMetrics flavour).
pub fn render() -> String {
    let m = &*METRICS;
    if let Some(pool_use) = m
        .pool_use
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
    {
        let (size, idle) = pool_use();
        m.pool_size.set(i64::from(size));
        m.pool_idle.set(i64::try_from(idle).unwrap_or(i64::MAX));
    }
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &m.registry).is_err() {
        tracing::error!("could not write the metrics");
    }
    text
}

/// With `addr`, serves `GET /metrics` there from now on (and says where in the log).
pub async fn listen(addr: Option<SocketAddr>) -> anyhow::Result<()> {
    use anyhow::Context;
    let Some(addr) = addr else {
        return Ok(());
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("could not listen for metrics on {addr}"))?;
    let local = listener.local_addr().unwrap_or(addr);
    if !local.ip().is_loopback() {
        tracing::warn!(
            "metrics are served on {local} to anyone who can reach it: keep that address \
             inside the monitoring network"
        );
    }
    tracing::info!("metrics on http://{local}/metrics");
    let routes = axum::Router::new().route("/metrics", axum::routing::get(metrics_page));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, routes).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(())
}

async fn metrics_page() -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_is_named_by_its_host_alone() {
        for (url, host) in [
            (
                "https://acme.stackenterprise.co/api/scim/v2/users",
                "acme.stackenterprise.co",
            ),
            (
                "https://stackoverflowteams.com/c/acme-secret-team/auth/scim/v2/users",
                "stackoverflowteams.com",
            ),
            (
                "https://admin:tok-123@Site.Example.COM:8443/x?token=tok-456#f",
                "site.example.com",
            ),
            ("http://127.0.0.1:4000/api/scim/v2/users", "127.0.0.1"),
            ("http://[::1]:4000/", "::1"),
            ("not a url", "unknown"),
            ("", "unknown"),
            ("mailto:olive@example.com", "unknown"),
        ] {
            assert_eq!(site_host(url), host, "{url}");
        }
    }

    #[test]
    fn figures_appear_and_labels_carry_no_person_nor_token() {
        scim_answer(
            "https://admin:tok-secret-9@unit.example/c/team/users/1001?filter=olive@example.com",
            Some(429),
            Duration::from_millis(30),
        );
        scim_answer("https://unit.example/x", None, Duration::from_secs(31));
        user_processed(ItemOutcome::AlreadyGone);
        run_ended(JobState::Finished);
        backoff_wait(Wait::Throttled, Duration::from_millis(1500));
        sign_in(SignInMethod::Sso, false);
        lease_taken_over("lease expired");
        let open = stream_opened();
        let text = render();
        drop(open);
        for expected in [
            "offboard_scim_throttled_total{site=\"unit.example\"}",
            "offboard_scim_answers_total{site=\"unit.example\",status=\"429\"}",
            "offboard_scim_answers_total{site=\"unit.example\",status=\"error\"}",
            "offboard_scim_request_seconds_bucket{le=\"0.04\",site=\"unit.example\"}",
            "offboard_users_processed_total{outcome=\"already_gone\"}",
            "offboard_runs_ended_total{state=\"finished\"}",
            "offboard_backoff_waits_total{reason=\"throttled\"}",
            "offboard_sign_ins_total{method=\"sso\",result=\"failed\"}",
            "offboard_lease_take_overs_total{after=\"expired\"}",
            "offboard_live_streams_open",
        ] {
            assert!(text.contains(expected), "{expected} missing in:\n{text}");
        }
        for secret in ["tok-secret-9", "olive", "1001", "team", "admin"] {
            assert!(!text.contains(secret), "{secret} in:\n{text}");
        }
    }

    #[test]
    fn take_overs_have_two_labels_whatever_the_words() {
        for (after, label) in [
            ("server start", "start"),
            ("lease expired", "expired"),
            ("", "expired"),
        ] {
            lease_taken_over(after);
            assert!(render().contains(&format!("after=\"{label}\"")));
        }
    }
}
