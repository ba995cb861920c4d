//! A run's live log as Server-Sent Events, with caps on how many browsers may follow runs.

use super::error::HttpError;
use super::{AppState, Caller};
use crate::service::job_feed::WatchItem;
use crate::service::views::{event_view, job_view};
use app::ids::JobId;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::convert::Infallible;
use std::time::Duration;

pub fn routes() -> Router<AppState> {
    Router::new().route("/jobs/{id}/events", get(job_events))
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

/// How many live-progress streams are open, per run and in all. Each stream holds a
/// connection and a file descriptor for as long as the browser stays: without a cap, a page
/// left open in 800 tabs (or a script) exhausts the server's descriptors.
pub struct WatcherSlots {
    per_run: usize,
    total: usize,
    taken: std::sync::Mutex<(usize, std::collections::HashMap<JobId, usize>)>,
}

/// One open stream's place; given back when the stream ends (the browser left).
pub struct WatcherSlot {
    slots: std::sync::Arc<WatcherSlots>,
    job_id: JobId,
}

impl WatcherSlots {
    pub fn new(per_run: usize, total: usize) -> std::sync::Arc<WatcherSlots> {
        std::sync::Arc::new(WatcherSlots {
            per_run: per_run.max(1),
            total: total.max(1),
            taken: std::sync::Mutex::new((0, std::collections::HashMap::new())),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, std::collections::HashMap<JobId, usize>)> {
        self.taken.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for one more watcher of `job_id`, or `None` when either cap is reached.
    pub fn take(self: &std::sync::Arc<Self>, job_id: &JobId) -> Option<WatcherSlot> {
        let mut taken = self.lock();
        let (all, per_run) = &mut *taken;
        let this_run = per_run.entry(job_id.clone()).or_insert(0);
        if *all >= self.total || *this_run >= self.per_run {
            return None;
        }
        *this_run += 1;
        *all += 1;
        Some(WatcherSlot {
            slots: self.clone(),
            job_id: job_id.clone(),
        })
    }

    /// Streams open now, in all.
    pub fn open(&self) -> usize {
        self.lock().0
    }
}

impl Drop for WatcherSlot {
    fn drop(&mut self) {
        let mut taken = self.slots.lock();
        let (all, per_run) = &mut *taken;
        *all = all.saturating_sub(1);
        if let Some(n) = per_run.get_mut(&self.job_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_run.remove(&self.job_id);
            }
        }
    }
}

/// `GET /jobs/{id}/events`.
async fn job_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(job_id): Path<JobId>,
    Query(query): Query<After>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let team = state.service.for_member(&caller.member);
    let job = team.team_job(&job_id).await?;
    let Some(slot) = state.watchers.take(&job.id) else {
        tracing::warn!(job_id = %job.id, open = state.watchers.open(), "live-progress stream refused: too many watchers");
        return Err(HttpError::unavailable(
            "Too many browsers are following runs on this console right now. Close other \
             tabs showing this run, or reload this page in a minute.",
        ));
    };
    let watcher = team.watch_job(&job, resume_point(&headers, &query));
    // The slot travels with the stream and is given back when the browser leaves.
    let stream = futures::stream::unfold((slot, watcher), |(slot, mut watcher)| async move {
        let event = match watcher.next().await? {
            WatchItem::Event(published) => Event::default()
                .id(published.event.seq.to_string())
                .event("job")
                .data(published.json(|e| json_text(&event_view(e)))),
            WatchItem::End(job) => Event::default()
                .event("end")
                .data(json_text(&job_view(&job))),
        };
        Some((Ok::<Event, Infallible>(event), (slot, watcher)))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// One SSE `data:` line of JSON (our views always serialise).
fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_string())
}
