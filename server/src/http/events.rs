//! A run's live log as Server-Sent Events, with caps on how many browsers may follow runs
//! (`slots`) and a re-check of each stream's viewer while it is open (`access`).

// Files beside this one, not in a folder of their own: `tests/accounts.rs` reads every file
// of `src/http` for the routes it registers.
#[path = "events_access.rs"]
mod access;
#[path = "events_slots.rs"]
mod slots;

use slots::{Holder, WatcherSlot};
pub use slots::{WatcherLimits, WatcherSlots};

use super::caller::{for_member, GatedRoutes};
use super::error::HttpError;
use super::shutdown::{reconnect_event, ShuttingDown};
use super::{AppState, Caller};
use crate::service::job_feed::{WatchItem, Watcher};
use crate::service::views::{event_view, job_view};
use app::ids::JobId;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use std::convert::Infallible;
use std::time::Duration;
use tower_sessions::Session;

pub fn routes() -> GatedRoutes {
    GatedRoutes::new().route("/jobs/{id}/events", for_member(get(job_events)))
}

#[derive(serde::Deserialize)]
struct After {
    after: Option<i64>,
}

/// Where a watcher resumes: `Last-Event-ID` wins over `?after=`.
fn resume_point(headers: &HeaderMap, query: &After) -> i64 {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or(query.after)
        .unwrap_or(0)
        .max(0)
}

/// `GET /jobs/{id}/events`.
async fn job_events(
    State(state): State<AppState>,
    caller: Caller,
    session: Option<Extension<Session>>,
    stopping: Option<Extension<ShuttingDown>>,
    Path(job_id): Path<JobId>,
    Query(query): Query<After>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let team = state.service.for_member(&caller.member);
    let viewer = team.as_viewer()?;
    let job = viewer.team_job(&job_id).await?;
    let holder = Holder {
        person: caller.member.person.account,
        team: caller.team(),
        job: job.id.clone(),
    };
    let slot = state.watchers.take(holder).map_err(|refusal| {
        tracing::warn!(job_id = %job.id, open = state.watchers.open(), cap = ?refusal, "live-progress stream refused: too many watchers");
        let status = if refusal.is_the_persons() {
            StatusCode::TOO_MANY_REQUESTS
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        HttpError::new(status, &refusal.words())
    })?;
    let access = match session {
        Some(Extension(session)) => state
            .watchers
            .checks
            .follow(
                &state.service,
                &session,
                caller.member.person.account,
                caller.team(),
            )
            .ok_or_else(|| {
                HttpError::new(
                    StatusCode::UNAUTHORIZED,
                    "Sign in first: you are not signed in, or your session has ended.",
                )
            })?,
        None => access::Access::unchecked(),
    };
    let live = Live {
        _slot: slot,
        watcher: viewer.watch_job(&job, resume_point(&headers, &query)),
        access,
        stopping: stopping.map(|Extension(s)| s).unwrap_or_default(),
    };
    let stream = futures::stream::unfold(Some(live), |live| async move {
        let mut live = live?;
        let next = tokio::select! {
            // Access is looked at first: once it has ended, nothing more is sent.
            biased;
            ending = live.access.ended() => Err(Some(ending)),
            // The console stops: the browser is told to come back (to another replica).
            () = live.stopping.wait() => Err(None),
            item = live.watcher.next() => Ok(item?),
        };
        let event = match next {
            Ok(WatchItem::Event(published)) => Event::default()
                .id(published.event.seq.to_string())
                .event("job")
                .data(published.json(|e| json_text(&event_view(e)))),
            Ok(WatchItem::End(job)) => Event::default()
                .event("end")
                .data(json_text(&job_view(&job))),
            // The last event says why; the stream closes and its place is given back.
            Err(None) => return Some((Ok(reconnect_event()), None)),
            Err(Some(ending)) => {
                return Some((
                    Ok::<Event, Infallible>(Event::default().event("ended").data(ending.words())),
                    None,
                ))
            }
        };
        Some((Ok(event), Some(live)))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// An open stream: its place, its position in the run's log, and its viewer's access.
struct Live {
    /// Held for as long as the stream is open, given back when it is dropped.
    _slot: WatcherSlot,
    watcher: Watcher,
    access: access::Access,
    /// Set when the console is told to stop: the stream ends with a reconnect hint.
    stopping: ShuttingDown,
}

/// One SSE `data:` line of JSON (our views always serialise).
fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_string())
}
