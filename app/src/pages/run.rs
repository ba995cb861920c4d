//! The Run screen: progress, counts, rate and time left, the newest results as they arrive
//! (Server-Sent Events, resumed by the browser), pause/resume/cancel, and the reports.

use super::parts::{error_text, short_time, thousands, ErrorBox};
use super::preview::encode;
use crate::api::{control_job, list_jobs, load_job};
use crate::backend::{JobEventView, JobView};
use crate::model::{ItemOutcome, ItemResult};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use std::collections::{BTreeMap, VecDeque};

/// Live rows kept on the page: enough to watch, never thousands of DOM rows.
pub const LIVE_ROWS: usize = 200;
// Only the browser follows the live log; the server renders the first state.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
/// The rate is measured over the last minute of results, so a pause does not haunt it forever.
const RATE_WINDOW_MS: f64 = 60_000.0;

/// True once a job will not change any more.
pub fn has_ended(state: &str) -> bool {
    matches!(state, "finished" | "stopped" | "failed")
}

/// A job's state in the admin's words.
pub fn state_words(state: &str) -> &str {
    match state {
        "queued" => "Waiting to start",
        "running" => "Running",
        "paused" => "Paused",
        "cancelling" => "Cancelling",
        "finished" => "Finished",
        "stopped" => "Stopped",
        "failed" => "Failed",
        other => other,
    }
}

/// What the page knows from the live log: results so far, per outcome, the newest rows, and
/// (time, done) samples for the rate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LiveTally {
    pub last_seq: i64,
    pub done: u64,
    pub counts: BTreeMap<ItemOutcome, u64>,
    /// Newest first, at most [`LIVE_ROWS`].
    pub rows: VecDeque<ItemResult>,
    samples: VecDeque<(f64, u64)>,
}

impl LiveTally {
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    /// Takes one event; `at_ms` is its time in milliseconds when it could be read. An event
    /// already seen (a replay after reconnecting) is ignored.
    pub fn apply(&mut self, event: &JobEventView, at_ms: Option<f64>) {
        if event.seq <= self.last_seq {
            return;
        }
        self.last_seq = event.seq;
        let Some(result) = &event.result else {
            return;
        };
        self.done += 1;
        *self.counts.entry(result.outcome).or_default() += 1;
        self.rows.push_front(result.clone());
        self.rows.truncate(LIVE_ROWS);
        if let Some(t) = at_ms.filter(|t| t.is_finite()) {
            self.samples.push_back((t, self.done));
            while self
                .samples
                .front()
                .is_some_and(|(first, _)| t - first > RATE_WINDOW_MS)
            {
                self.samples.pop_front();
            }
        }
    }

    /// Users per second over the recent window, once there is at least a second of data.
    pub fn rate(&self) -> Option<f64> {
        let (t0, d0) = *self.samples.front()?;
        let (t1, d1) = *self.samples.back()?;
        let seconds = (t1 - t0) / 1000.0;
        (seconds >= 1.0 && d1 > d0).then(|| (d1 - d0) as f64 / seconds)
    }
}

/// Seconds left at `rate` users per second.
pub fn eta_seconds(done: u64, total: u64, rate: Option<f64>) -> Option<f64> {
    let rate = rate.filter(|r| *r > 0.0 && r.is_finite())?;
    Some(total.saturating_sub(done) as f64 / rate)
}

/// "about 2 h 5 min", "about 3 min", "less than a minute".
pub fn duration_words(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 60.0 {
        return "less than a minute".into();
    }
    let minutes = (seconds / 60.0).round() as u64;
    if minutes < 60 {
        format!("about {minutes} min")
    } else {
        format!("about {} h {} min", minutes / 60, minutes % 60)
    }
}

#[component]
pub fn RunPage() -> impl IntoView {
    let query = use_query_map();
    let id = Memo::new(move |_| query.with(|q| q.get("id")).unwrap_or_default());
    let job = Resource::new(
        move || id.get(),
        |id| async move {
            if id.is_empty() {
                let jobs = list_jobs().await?;
                Ok(jobs
                    .into_iter()
                    .max_by(|a, b| a.created_at.cmp(&b.created_at)))
            } else {
                load_job(id).await.map(Some)
            }
        },
    );
    view! {
        <Transition fallback=|| view! { <section class="card"><p>"Loading the run…"</p></section> }>
            {move || {
                job.get()
                    .map(|r| match r {
                        Ok(Some(j)) => view! { <RunView job=j /> }.into_any(),
                        Ok(None) => {
                            view! {
                                <section class="card">
                                    <h1>"Run"</h1>
                                    <p>
                                        "No run yet. " <a href="/choose">"Choose users"</a>
                                        ", check the preview, and confirm to start one."
                                    </p>
                                </section>
                            }
                                .into_any()
                        }
                        Err(e) => {
                            view! {
                                <section class="card">
                                    <h1>"Run"</h1>
                                    <ErrorBox message=error_text(&e) />
                                </section>
                            }
                                .into_any()
                        }
                    })
            }}
        </Transition>
    }
    .into_any()
}

#[component]
fn RunView(job: JobView) -> impl IntoView {
    let id = job.id.clone();
    let job = RwSignal::new(job);
    let tally = RwSignal::new(LiveTally::default());
    let control = Action::new(move |command: &&'static str| {
        let id = job.get_untracked().id;
        control_job(id, command.to_string())
    });
    Effect::new(move |_| {
        if let Some(Ok(j)) = control.value().get() {
            job.set(j);
        }
    });
    // Even for a run that has ended: the stream replays its results (only the newest are
    // kept) and then closes.
    watch_events(id.clone(), job, tally);
    let live = move || tally.with(|t| t.last_seq > 0);
    let done = move || {
        let from_job = job.with(|j| j.done);
        if live() {
            tally.with(|t| t.done).max(from_job)
        } else {
            from_job
        }
    };
    let total = move || job.with(|j| j.total);
    let counts = move || -> Vec<(ItemOutcome, u64)> {
        let final_counts = job.with(|j| j.counts.clone());
        if has_ended(&job.with(|j| j.state.clone())) && !final_counts.is_empty() || !live() {
            final_counts
        } else {
            tally.with(|t| t.counts.iter().map(|(o, n)| (*o, *n)).collect())
        }
    };
    let rate = move || tally.with(LiveTally::rate);
    let state = move || job.with(|j| j.state.clone());
    let ended = move || has_ended(&state());
    let action_word = match job.get_untracked().action {
        crate::model::Action::Delete => "Delete",
        crate::model::Action::Deactivate => "Deactivate",
    };
    view! {
        <section class="card" aria-labelledby="run-heading">
            <h1 id="run-heading">{format!("Run: {action_word} users")}</h1>
            <p class="muted">
                {move || {
                    job.with(|j| {
                        format!(
                            "On {} · started by {} · created {}",
                            j.site_url,
                            j.created_by,
                            short_time(&j.created_at),
                        )
                    })
                }}
            </p>
            <p role="status" data-testid="run-state" class="run-state">
                {move || {
                    let reason = job.with(|j| j.reason.clone()).map(|r| format!(": {r}")).unwrap_or_default();
                    format!("{}{}", state_words(&state()), reason)
                }}
            </p>
            <progress
                aria-label="Users processed"
                max=move || total().max(1).to_string()
                value=move || done().to_string()
            ></progress>
            <p data-testid="progress-text">
                {move || {
                    let mut line = format!("{} of {} users processed", thousands(done()), thousands(total()));
                    if !ended() {
                        if let Some(r) = rate() {
                            line.push_str(&format!(" · {r:.1} users per second"));
                            if let Some(eta) = eta_seconds(done(), total(), Some(r)) {
                                line.push_str(&format!(" · {} left", duration_words(eta)));
                            }
                        }
                    }
                    line
                }}
            </p>
            <ul class="outcome-counts" aria-label="Results so far">
                {move || {
                    counts()
                        .into_iter()
                        .map(|(o, n)| {
                            view! {
                                <li class=if o.is_success() { "good" } else { "bad" }>
                                    <strong>{thousands(n)}</strong> " " {o.label()}
                                </li>
                            }
                        })
                        .collect_view()
                }}
            </ul>
            <Show when=move || !ended()>
                <div class="controls" role="group" aria-label="Run controls">
                    <Show
                        when=move || state() == "paused"
                        fallback=move || {
                            view! {
                                <button type="button" class="button" disabled=move || control.pending().get() || state() == "cancelling" on:click=move |_| { control.dispatch("pause"); }>
                                    "Pause"
                                </button>
                            }
                        }
                    >
                        <button type="button" class="button" disabled=move || control.pending().get() on:click=move |_| { control.dispatch("resume"); }>
                            "Resume"
                        </button>
                    </Show>
                    <button type="button" class="button danger" disabled=move || control.pending().get() || state() == "cancelling" on:click=move |_| { control.dispatch("cancel"); }>
                        "Cancel"
                    </button>
                    <p class="hint">"The run continues on the server if you close this tab."</p>
                </div>
            </Show>
            {move || control.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorBox message=error_text(&e) /> })}
            <Show when=ended>
                <Downloads id=id.clone() />
            </Show>
        </section>
        <section class="card" aria-labelledby="live-heading">
            <h2 id="live-heading">"Latest results"</h2>
            <p class="hint">
                {format!("Newest first; the last {LIVE_ROWS} are shown. The reports hold every row.")}
            </p>
            <div class="table-wrap">
                <table data-testid="live-rows">
                    <thead>
                        <tr>
                            <th scope="col">"Account ID"</th>
                            <th scope="col">"Email"</th>
                            <th scope="col">"Result"</th>
                            <th scope="col">"Message"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {move || {
                            tally
                                .with(|t| t.rows.iter().cloned().collect::<Vec<_>>())
                                .into_iter()
                                .map(|r| {
                                    view! {
                                        <tr class=if r.outcome.is_success() { "good" } else { "bad" }>
                                            <td class="mono">{r.account_id}</td>
                                            <td>{r.email.unwrap_or_default()}</td>
                                            <td><span class="tag">{r.outcome.label()}</span></td>
                                            <td>{r.message}</td>
                                        </tr>
                                    }
                                })
                                .collect_view()
                        }}
                    </tbody>
                </table>
            </div>
        </section>
    }
    .into_any()
}

/// The job's reports.
#[component]
pub fn Downloads(id: String) -> impl IntoView {
    let base = format!("/downloads/jobs/{}", encode(&id));
    view! {
        <nav class="downloads" aria-label="Reports">
            <a class="button" href=format!("{base}/failures.json") download="">"Failures (JSON for Stack support)"</a>
            <a class="button" href=format!("{base}/results.csv") download="">"All results (CSV)"</a>
            <a class="button" href=format!("{base}/results.json") download="">"All results (JSON)"</a>
            <a class="button" href=format!("{base}/all_users.json") download="">"Site users at the start (JSON)"</a>
        </nav>
    }
    .into_any()
}

/// Follows `/jobs/{id}/events` in the browser; the browser resumes with Last-Event-ID itself.
#[cfg(feature = "hydrate")]
fn watch_events(id: String, job: RwSignal<JobView>, tally: RwSignal<LiveTally>) {
    use wasm_bindgen::{closure::Closure, JsCast};
    use web_sys::{EventSource, MessageEvent};

    let Ok(source) = EventSource::new(&format!("/jobs/{}/events", encode(&id))) else {
        return;
    };
    let on_job = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        let Some(data) = ev.data().as_string() else {
            return;
        };
        let Ok(event) = serde_json::from_str::<JobEventView>(&data) else {
            return;
        };
        let at = js_sys::Date::parse(&event.at);
        tally.update(|t| t.apply(&event, (!at.is_nan()).then_some(at)));
        if let Some(state) = event.state.clone() {
            job.update(|j| {
                j.state = state;
                j.reason = event.reason.clone();
            });
        }
    });
    let closer = source.clone();
    let on_end = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        // Closing first: otherwise the browser reconnects to a stream that has ended.
        closer.close();
        if let Some(view) = ev
            .data()
            .as_string()
            .and_then(|d| serde_json::from_str::<JobView>(&d).ok())
        {
            job.set(view);
        }
    });
    let _ = source.add_event_listener_with_callback("job", on_job.as_ref().unchecked_ref());
    let _ = source.add_event_listener_with_callback("end", on_end.as_ref().unchecked_ref());
    let held = send_wrapper::SendWrapper::new((source, on_job, on_end));
    on_cleanup(move || held.0.close());
}

#[cfg(not(feature = "hydrate"))]
fn watch_events(_id: String, _job: RwSignal<JobView>, _tally: RwSignal<LiveTally>) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(n: u64, outcome: ItemOutcome) -> ItemResult {
        ItemResult {
            account_id: n.to_string(),
            email: None,
            outcome,
            message: String::new(),
            attempts: 1,
            elapsed_ms: 5,
            demoted: false,
        }
    }

    fn event(seq: i64, r: Option<ItemResult>) -> JobEventView {
        JobEventView {
            seq,
            at: String::new(),
            result: r,
            state: None,
            reason: None,
        }
    }

    #[test]
    fn tally_counts_results_once_and_keeps_newest_rows() {
        let mut t = LiveTally::default();
        for seq in 1..=250 {
            let outcome = if seq % 10 == 0 {
                ItemOutcome::Failed
            } else {
                ItemOutcome::Deleted
            };
            t.apply(
                &event(seq, Some(result(seq as u64, outcome))),
                Some(seq as f64 * 100.0),
            );
        }
        // A replay after reconnecting changes nothing.
        t.apply(&event(200, Some(result(200, ItemOutcome::Deleted))), None);
        // A state change is not a result.
        t.apply(&event(251, None), None);
        assert_eq!(t.done, 250);
        assert_eq!(t.counts[&ItemOutcome::Failed], 25);
        assert_eq!(t.counts[&ItemOutcome::Deleted], 225);
        assert_eq!(t.rows.len(), LIVE_ROWS);
        assert_eq!(t.rows.front().map(|r| r.account_id.as_str()), Some("250"));
        assert_eq!(t.last_seq, 251);
    }

    #[test]
    fn rate_needs_a_second_and_uses_the_recent_window() {
        let mut t = LiveTally::default();
        assert_eq!(t.rate(), None);
        t.apply(&event(1, Some(result(1, ItemOutcome::Deleted))), Some(0.0));
        t.apply(
            &event(2, Some(result(2, ItemOutcome::Deleted))),
            Some(500.0),
        );
        assert_eq!(t.rate(), None);
        t.apply(
            &event(3, Some(result(3, ItemOutcome::Deleted))),
            Some(2_000.0),
        );
        assert_eq!(t.rate(), Some(1.0));
        // After a long pause the old samples fall out of the window.
        for seq in 4..=13 {
            t.apply(
                &event(seq, Some(result(seq as u64, ItemOutcome::Deleted))),
                Some(1_000_000.0 + (seq - 4) as f64 * 250.0),
            );
        }
        let r = t.rate().unwrap();
        // Nine more results over 2.25 s.
        assert!((r - 4.0).abs() < 1e-9, "{r}");
        // Unreadable times are not samples.
        t.apply(
            &event(14, Some(result(14, ItemOutcome::Deleted))),
            Some(f64::NAN),
        );
        assert!((t.rate().unwrap() - 4.0).abs() < 1e-9);
    }

    #[test]
    fn eta_and_words() {
        assert_eq!(eta_seconds(10, 100, Some(3.0)), Some(30.0));
        assert_eq!(eta_seconds(10, 100, None), None);
        assert_eq!(eta_seconds(10, 100, Some(0.0)), None);
        assert_eq!(eta_seconds(200, 100, Some(1.0)), Some(0.0));
        assert_eq!(duration_words(30.0), "less than a minute");
        assert_eq!(duration_words(f64::INFINITY), "less than a minute");
        assert_eq!(duration_words(185.0), "about 3 min");
        assert_eq!(duration_words(7500.0), "about 2 h 5 min");
    }

    #[test]
    fn only_final_states_end_a_job() {
        for s in ["finished", "stopped", "failed"] {
            assert!(has_ended(s));
        }
        for s in ["queued", "running", "paused", "cancelling", ""] {
            assert!(!has_ended(s));
        }
        assert_eq!(state_words("paused"), "Paused");
        assert_eq!(state_words("weird"), "weird");
    }
}
