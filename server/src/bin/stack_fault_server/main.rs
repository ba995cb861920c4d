//! A Stack-shaped SCIM test server that produces the faults a real site cannot produce on demand.
//!
//! Used by integration tests, end-to-end tests and the benchmark. In-memory, listens on
//! 127.0.0.1 only, prints `listening on http://127.0.0.1:PORT` as its first stdout line.
//!
//! # SCIM paths
//! `--edition enterprise`: `/api/scim/v2/users[/{id}]`; `--edition business`:
//! `/c/{team}/auth/scim/v2/users[/{id}]` (any team name). `/v2/Users[/{id}]` is always served
//! too. Methods: `GET` list (`startIndex`, `count`, `filter` = `ATTR eq "VALUE"` on `id`,
//! `userName`, `externalId`, `emails`/`emails.value`, `active`), `POST` create, and per user
//! `GET`, `DELETE`, `PATCH` (PatchOp on `active` and `userType`), `PUT`. Every SCIM request needs
//! `Authorization: Bearer <token>`, else 401 `{"ErrorMessage":"Unauthorized"}`.
//!
//! # DELETE rules (checked in this order)
//! `--deletion-disabled` → 404 and the user stays; unknown id → 404
//! `{"ErrorMessage":"User {id} not found."}`; system account → 400
//! `{"ErrorMessage":"You cannot delete or destroy System Accounts."}`; `userType` Moderator/Admin
//! → 500 whose `ErrorMessage` contains `Adjust role to User`; community creator → 500 whose
//! `ErrorMessage` contains `FK_CommunityMemberships_CreationUser`; otherwise 204.
//! `userType` changes (PATCH or PUT) apply only with `--promotion-allowed`, otherwise 200 and
//! nothing changes; "Registered" removes `userType`; an unknown role is ignored with 200.
//! PUT without a boolean `active` deactivates the user (as the official script's comment says).
//!
//! # Generated users (deterministic)
//! Always first: the system account, id `"1"`, userName/displayName `Community`, active, no
//! `emails`. Then `--users N` users, i = 1..=N, with id `1000 + i` ("1001", "1002", …):
//! userName `user{i}`, displayName `User {i}`, externalId `ext-{i}`, `name{givenName:"User",
//! familyName:"{i}"}`, emails `[{value:"user{i}@example.com", primary:true}]`, plus:
//! - i % 10 == 5: a second, non-primary email `user{i}.alt@example.org`;
//! - i % 100 == 99: a second, non-primary email `user{i-1}@example.com`, shared with user i-1
//!   (so "1098" and "1099" both hold `user98@example.com`);
//! - i % 50 == 7: `userType: "Moderator"`; i % 50 == 17: `userType: "Admin"`;
//! - i % 100 == 42: community creator (DELETE → 500 FK message);
//! - `--deactivated-every K` (K > 0): i % K == 0 → `active: false`.
//!
//! With `--seed-file PATH` (or `POST /_control/users`) the JSON array replaces all of that,
//! system account included. Objects are SCIM users as served; `id` may be omitted (next free
//! numeric id) and two marker keys, never served, mark special accounts:
//! `"systemAccount": true`, `"communityCreator": true`.
//!
//! # Control API (no token; loopback callers only)
//! - `GET /_control/state` → `{"users":[ids in order],"deleted":[ids in order],"inactive":[ids],
//!   "user_types":{id:type},"requests":{"LIST","GET","POST","PATCH","PUT","DELETE": n},
//!   "delete_requests_by_account":{id:n},"replies_by_status":{"204":n},"unauthorized":n,
//!   "in_flight":n,"peak_in_flight":n,"deletes_in_flight":n,"peak_deletes_in_flight":n,
//!   "burst_remaining":n,"scripts_left":{id:n}}`.
//!   `requests` counts authorised requests, including those answered by a fault.
//! - `POST /_control/reset` → back to the start-up users, settings and burst; counters zeroed.
//! - `POST /_control/users` with a JSON array → replaces the user set (counters kept).
//! - `POST /_control/faults` `{"account_id":"1001","script":["503","429","timeout_after_delete"]}`
//!   → the next requests naming that account (GET/PATCH/PUT/DELETE on `users/{id}`) get those
//!   replies in order, then normal service. Steps: a status `200`–`599` (answered without doing
//!   anything; 2xx with no body; 429 carries `Retry-After: 1`), `STATUS:message` (custom
//!   `ErrorMessage`), `429-date` (HTTP-date `Retry-After`), `ok` (normal), `html` (200 HTML
//!   sign-in page), `timeout_after_delete[:MS]` (do the work, then stay silent MS ms, default
//!   `--timeout-sleep-ms`), `timeout_before_delete[:MS]` (stay silent, do nothing, answer 504).
//!   A new script for an account replaces the old one.
//! - `POST /_control/burst` `{"count":N,"status":503}` → the next N SCIM requests get that status.
//! - `POST /_control/settings` with any of `latency_ms, rate_limit (0 = off), retry_after_date,
//!   page_cap, ignore_filter, deletion_disabled, promotion_allowed, timeout_sleep_ms,
//!   hold_deletes, down, token`. `token` replaces the accepted SCIM token (the site's admin issued a
//!   new one; a blank one is ignored). `hold_deletes: true` makes every DELETE wait, counted in `deletes_in_flight`,
//!   before anything is done, until `hold_deletes: false` (tests hold a run's first requests).
//! - `down: true` answers every SCIM request 503 without `Retry-After` (a site that stopped
//!   answering behind its proxy), applying nothing, until `down: false`.
//!
//! Order of faults for a SCIM request: latency, token check, rate limit (429), burst, script.

mod faults;
mod http;
mod site;
mod users;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio::sync::watch;

use http::{App, Edition};
use site::{Settings, Startup};

/// A Stack-shaped SCIM server for tests: scripted faults, throttling, slow replies.
#[derive(Parser)]
#[command(name = "stack-fault-server")]
struct Cli {
    /// Port on 127.0.0.1; 0 picks a free one (the address is printed first on stdout).
    #[arg(long, env = "FAULT_SERVER_PORT", default_value_t = 0)]
    port: u16,
    /// Bearer token the SCIM routes require.
    #[arg(long, env = "FAULT_SERVER_TOKEN", hide_env_values = true)]
    token: String,
    /// Which product's SCIM path to serve (`/v2/Users` is always served too).
    #[arg(long, env = "FAULT_SERVER_EDITION", value_enum, default_value_t = Edition::Enterprise)]
    edition: Edition,
    /// Number of generated users (the system account comes on top).
    #[arg(long, env = "FAULT_SERVER_USERS", default_value_t = 0)]
    users: u64,
    /// Every K-th generated user is deactivated (0 = none).
    #[arg(long, env = "FAULT_SERVER_DEACTIVATED_EVERY", default_value_t = 0)]
    deactivated_every: u64,
    /// Milliseconds added to every SCIM request.
    #[arg(long, env = "FAULT_SERVER_LATENCY_MS", default_value_t = 0)]
    latency_ms: u64,
    /// SCIM requests per second (token bucket, one second of burst); over it: 429.
    #[arg(long, env = "FAULT_SERVER_RATE_LIMIT")]
    rate_limit: Option<f64>,
    /// Send `Retry-After` as an HTTP date instead of seconds.
    #[arg(long, env = "FAULT_SERVER_RETRY_AFTER_DATE")]
    retry_after_date: bool,
    /// Most users a list page holds (Stack: 100).
    #[arg(long, env = "FAULT_SERVER_PAGE_CAP", default_value_t = 100)]
    page_cap: usize,
    /// Ignore `filter=` and list everyone, like a provider without filter support.
    #[arg(long, env = "FAULT_SERVER_IGNORE_FILTER")]
    ignore_filter: bool,
    /// SCIM deletion not enabled for the site: DELETE answers 404 and the user stays.
    #[arg(long, env = "FAULT_SERVER_DELETION_DISABLED")]
    deletion_disabled: bool,
    /// The site allows Moderator/Admin promotion via `userType` (else it is ignored with 200).
    #[arg(long, env = "FAULT_SERVER_PROMOTION_ALLOWED")]
    promotion_allowed: bool,
    /// JSON array of users to load instead of generated ones.
    #[arg(long, env = "FAULT_SERVER_SEED_FILE")]
    seed_file: Option<PathBuf>,
    /// The first N SCIM requests answer 503.
    #[arg(long, env = "FAULT_SERVER_BURST_503", default_value_t = 0)]
    burst_503: u64,
    /// How long `timeout_*` script steps stay silent, in milliseconds.
    #[arg(long, env = "FAULT_SERVER_TIMEOUT_SLEEP_MS", default_value_t = 30_000)]
    timeout_sleep_ms: u64,
}

fn startup(cli: &Cli) -> Result<Startup, String> {
    if cli.token.trim().is_empty() {
        return Err("the token must not be empty".into());
    }
    if cli.page_cap == 0 {
        return Err("--page-cap must be at least 1".into());
    }
    let users = match &cli.seed_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the seed file {}: {e}", path.display()))?;
            let value = serde_json::from_str(&text)
                .map_err(|e| format!("the seed file {} is not JSON: {e}", path.display()))?;
            users::load(value).map_err(|e| format!("the seed file {}: {e}", path.display()))?
        }
        None => users::generate(cli.users, cli.deactivated_every),
    };
    Ok(Startup {
        settings: Settings {
            token: cli.token.trim().to_string(),
            latency_ms: cli.latency_ms,
            rate_limit: cli.rate_limit.filter(|rate| *rate > 0.0),
            retry_after_date: cli.retry_after_date,
            page_cap: cli.page_cap,
            ignore_filter: cli.ignore_filter,
            deletion_disabled: cli.deletion_disabled,
            promotion_allowed: cli.promotion_allowed,
            timeout_sleep_ms: cli.timeout_sleep_ms,
            hold_deletes: false,
            down: false,
        },
        users,
        burst_503: cli.burst_503,
    })
}

async fn run(cli: Cli) -> Result<(), String> {
    let startup = startup(&cli)?;
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, cli.port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", cli.port))?;
    let address = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on http://{address}")
            .and_then(|()| stdout.flush())
            .map_err(|e| format!("cannot write to stdout: {e}"))?;
    }
    let (stop_sender, stop_receiver) = watch::channel(false);
    let app = App::new(startup, stop_receiver);
    let service =
        http::router(app, cli.edition).into_make_service_with_connect_info::<SocketAddr>();
    let mut stop_watch = stop_sender.subscribe();
    let server = axum::serve(listener, service).with_graceful_shutdown(async move {
        server::http::shutdown::stop_signal().await;
        // Wakes requests sleeping in latency or scripted silence so shutdown is quick.
        let _ = stop_sender.send(true);
    });
    let give_up = async move {
        let _ = stop_watch.changed().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    };
    tokio::select! {
        served = server => served.map_err(|e| format!("the server stopped: {e}")),
        () = give_up => Ok(()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(problem) => {
            eprintln!("stack-fault-server: {problem}");
            ExitCode::FAILURE
        }
    }
}
