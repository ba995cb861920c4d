//! The Run screen: progress, counts and a bar of outcomes, rate and time left, the newest
//! results (older ones a page at a time on demand) and the live log (Server-Sent Events,
//! reconnected after a lost connection), pause/resume/cancel, and the reports.

use super::parts::{
    action_words, count_words, error_text, state_words, thousands, ErrorBox, OutcomeBar,
    OutcomeGroup, PlainMessage,
};
use super::preview::encode;
use super::times::When;
use crate::api::{control_job, list_jobs, load_job, load_results_page};
use crate::backend::{JobCommand, JobEventView, JobResultsPage, JobView, ReportKind};
use crate::model::{ItemOutcome, ItemResult, JobState};
use crate::Named;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

mod cards;
mod undo;

use cards::{NotRemovedCard, RunAgainCard};
use std::collections::VecDeque;
use undo::UndoWindowCard;

/// Live rows kept on the page: enough to watch, never thousands of DOM rows.
pub const LIVE_ROWS: usize = 200;
/// Results the page opens with, and each "older results" page: the page never replays a
/// whole log (a run can have 100,000 events) to show its newest rows.
pub const RESULTS_PAGE: u32 = 50;
// Only the browser follows the live log; the server renders the first state.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
/// The rate is measured over the last minute of results, so a pause does not haunt it forever.
const RATE_WINDOW_MS: f64 = 60_000.0;

/// What the page knows from the results it loaded and the live log: the rows shown (newest
/// first, with their log position), where the log stands, and (time, done) samples for the rate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LiveTally {
    pub last_seq: i64,
    /// Results that arrived live since the page opened.
    pub done: u64,
    /// Newest first: at most [`LIVE_ROWS`] plus the older pages the admin asked for.
    pub rows: VecDeque<(i64, ItemResult)>,
    /// Rows the admin asked for beyond the newest: kept when new results arrive.
    older_loaded: usize,
    /// True when results older than the last row exist.
    pub more_older: bool,
    samples: VecDeque<(f64, u64)>,
}

impl LiveTally {
    /// The page's first state: the newest results and where the live log resumes.
    pub fn opening(page: &JobResultsPage) -> LiveTally {
        let mut t = LiveTally {
            last_seq: page.last_seq,
            more_older: page.more,
            ..LiveTally::default()
        };
        t.rows = page
            .results
            .iter()
            .filter_map(|e| e.result.clone().map(|r| (e.seq, r)))
            .collect();
        t
    }

    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    /// Takes one event; `at_ms` is its time in milliseconds when it could be read. An event
    /// already seen (a replay after reconnecting) is ignored. True when it was a new result.
    pub fn apply(&mut self, event: &JobEventView, at_ms: Option<f64>) -> bool {
        if event.seq <= self.last_seq {
            return false;
        }
        self.last_seq = event.seq;
        let Some(result) = &event.result else {
            return false;
        };
        self.done += 1;
        self.rows.push_front((event.seq, result.clone()));
        let keep = LIVE_ROWS + self.older_loaded;
        if self.rows.len() > keep {
            self.rows.truncate(keep);
            self.more_older = true;
        }
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
        true
    }

    /// Where the next "older results" page starts: before the oldest row shown (0 = newest).
    pub fn oldest_seq(&self) -> i64 {
        self.rows.back().map(|(seq, _)| *seq).unwrap_or(0)
    }

    /// Appends a page of older results (newest first); rows already shown are not repeated.
    pub fn add_older(&mut self, page: &JobResultsPage) {
        let oldest = self.rows.back().map(|(seq, _)| *seq);
        let mut added = 0;
        for event in &page.results {
            if oldest.is_some_and(|o| event.seq >= o) {
                continue;
            }
            if let Some(r) = &event.result {
                self.rows.push_back((event.seq, r.clone()));
                added += 1;
            }
        }
        self.older_loaded += added;
        self.more_older = page.more;
    }

    /// Users per second over the recent window, once there is at least a second of data.
    pub fn rate(&self) -> Option<f64> {
        let (t0, d0) = *self.samples.front()?;
        let (t1, d1) = *self.samples.back()?;
        let seconds = (t1 - t0) / 1000.0;
        (seconds >= 1.0 && d1 > d0).then(|| (d1 - d0) as f64 / seconds)
    }
}

/// "16 of 33 users processed, 17 not attempted": users a run left alone (cancelled, stopped)
/// have a row in the report but were not processed, so they are counted apart.
pub fn progress_words(done: u64, not_attempted: u64, total: u64) -> String {
    let not_attempted = not_attempted.min(done);
    let processed = done - not_attempted;
    let mut line = format!(
        "{} of {} users processed",
        thousands(processed),
        thousands(total)
    );
    if not_attempted > 0 {
        line.push_str(&format!(", {} not attempted", thousands(not_attempted)));
    }
    line
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

/// True when the run stopped because the site has SCIM deletion switched off: the users it did
/// not reach can only be deleted by a new run once Stack support turns deletion on.
pub fn stopped_for_deletion_not_enabled(job: &JobView) -> bool {
    job.state == JobState::Stopped
        && job
            .counts
            .iter()
            .any(|(o, n)| *o == ItemOutcome::DeletionNotEnabled && *n > 0)
}

/// The users a new run must take over after deletion was not enabled: the refused ones and
/// the ones never reached.
pub fn still_to_delete(job: &JobView) -> u64 {
    job.counts
        .iter()
        .filter(|(o, _)| {
            matches!(
                o,
                ItemOutcome::DeletionNotEnabled | ItemOutcome::NotAttempted
            )
        })
        .map(|(_, n)| *n)
        .sum()
}

/// The users an ended run did not remove: every result but deleted, deactivated and already
/// gone (`ItemOutcome::not_yet_removed`), and the users with no result. The count on the
/// "Preview the N users not yet removed" button; the server makes the preview by the same rule.
pub fn not_yet_removed(job: &JobView) -> u64 {
    let settled: u64 = job.counts.iter().map(|(_, n)| *n).sum();
    job.counts
        .iter()
        .filter(|(o, _)| o.not_yet_removed())
        .map(|(_, n)| *n)
        .sum::<u64>()
        + job.total.saturating_sub(settled)
}

/// True when the run page offers a new preview of the users not yet removed: a run that was
/// cancelled, stopped or failed with someone left (a stop for deletion not enabled has its own
/// card, `RunAgainCard`).
pub fn offers_not_removed(job: &JobView) -> bool {
    matches!(job.state, JobState::Stopped | JobState::Failed)
        && !stopped_for_deletion_not_enabled(job)
        && not_yet_removed(job) > 0
}

#[component]
pub fn RunPage() -> impl IntoView {
    let query = use_query_map();
    let id = Memo::new(move |_| query.with(|q| q.get("id")).unwrap_or_default());
    let job = Resource::new(
        move || id.get(),
        |id| async move {
            let job = if id.is_empty() {
                let jobs = list_jobs().await?;
                jobs.into_iter()
                    .max_by(|a, b| a.created_at.cmp(&b.created_at))
            } else {
                Some(load_job(id).await?)
            };
            match job {
                None => Ok(None),
                Some(j) => {
                    let page = load_results_page(j.id.to_string(), 0, RESULTS_PAGE).await?;
                    Ok(Some((j, page)))
                }
            }
        },
    );
    view! {
        <Transition fallback=|| view! { <section class="card"><p>"Loading the run…"</p></section> }>
            {move || {
                job.get()
                    .map(|r| match r {
                        Ok(Some((j, page))) => view! { <RunView job=j page /> }.into_any(),
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
fn RunView(job: JobView, page: JobResultsPage) -> impl IntoView {
    let id = job.id.to_string();
    let action = job.action;
    let ended_at_load = job.state.has_ended();
    let job = RwSignal::new(job);
    let tally = RwSignal::new(LiveTally::opening(&page));
    // False while the live log's connection is lost (the console restarted or the network
    // dropped); the page says so and reconnects by itself.
    let connected = RwSignal::new(true);
    // Set when the console ended this page's live log because the person's access ended
    // (signed out, removed from the team): its words, and no more reconnecting.
    let access_ended = RwSignal::new(None::<String>);
    let control = Action::new(move |command: &JobCommand| {
        let id = job.get_untracked().id.to_string();
        control_job(id, command.key().to_string())
    });
    Effect::new(move |_| {
        if let Some(Ok(j)) = control.value().get() {
            job.set(j);
        }
    });
    let older = {
        let id = id.clone();
        Action::new(move |_: &()| {
            let before = tally.with_untracked(LiveTally::oldest_seq);
            load_results_page(id.clone(), before, RESULTS_PAGE)
        })
    };
    Effect::new(move |_| {
        if let Some(Ok(p)) = older.value().get() {
            tally.update(|t| t.add_older(&p));
        }
    });
    // A run that has ended will not change: its newest results are already on the page.
    if !ended_at_load {
        watch_events(id.clone(), job, tally, connected, access_ended);
    }
    let done = move || job.with(|j| j.done);
    let total = move || job.with(|j| j.total);
    // Users the run left alone (cancelled, stopped) have a result but were not processed.
    let skipped = move || {
        job.with(|j| {
            j.counts
                .iter()
                .filter(|(o, _)| *o == ItemOutcome::NotAttempted)
                .map(|(_, n)| *n)
                .sum::<u64>()
        })
    };
    let rate = move || tally.with(LiveTally::rate);
    let state = move || job.with(|j| j.state);
    let ended = move || state().has_ended();
    view! {
        <section class="card" aria-labelledby="run-heading">
            <h1 id="run-heading">{format!("Run: {} users", action_words(action))}</h1>
            <p class="muted">
                {move || {
                    job.with(|j| {
                        let approved = j
                            .approved_by
                            .as_ref()
                            .map(|a| format!(" · approved by {a}"))
                            .unwrap_or_default();
                        view! {
                            {format!("On {} · started by {}{approved} · created ", j.site_url, j.created_by)}
                            <When at=j.created_at.clone() />
                        }
                    })
                }}
            </p>
            <p role="status" data-testid="run-state" class="run-state">
                {move || {
                    let reason = job.with(|j| j.reason.clone()).map(|r| format!(": {r}")).unwrap_or_default();
                    format!("{}{}", state_words(state()), reason)
                }}
            </p>
            <div role="alert" data-testid="connection-state">
                {move || match access_ended.get() {
                    Some(words) => Some(view! {
                        <p class="warning">
                            {words} " " <a href="/sign-in" rel="external">"Sign in again"</a>
                        </p>
                    }.into_any()),
                    None => (!connected.get() && !ended()).then(|| view! {
                        <p class="warning">
                            "The connection to the console was lost. Reconnecting by itself… The results below may be behind until it is back."
                        </p>
                    }.into_any()),
                }}
            </div>
            <progress
                aria-label="Users processed"
                max=move || total().max(1).to_string()
                value=move || done().saturating_sub(skipped()).to_string()
            ></progress>
            <p data-testid="progress-text">
                {move || {
                    let mut line = progress_words(done(), skipped(), total());
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
            {move || {
                let (counts, total) = job.with(|j| (j.counts.clone(), j.total));
                view! { <OutcomeBar counts total action /> }
            }}
            <ul class="outcome-counts" aria-label="Results so far">
                {move || {
                    job.with(|j| j.counts.clone())
                        .into_iter()
                        .map(|(o, n)| {
                            view! {
                                <li class=format!("group-{}", OutcomeGroup::of(o).key())>
                                    <strong>{thousands(n)}</strong> " " {count_words(o, action)}
                                </li>
                            }
                        })
                        .collect_view()
                }}
            </ul>
            <Show when=move || !ended()>
                <div class="controls" role="group" aria-label="Run controls">
                    <Show
                        when=move || state() == JobState::Paused
                        fallback=move || {
                            view! {
                                <button type="button" class="button" disabled=move || control.pending().get() || state() == JobState::Cancelling on:click=move |_| { control.dispatch(JobCommand::Pause); }>
                                    "Pause"
                                </button>
                            }
                        }
                    >
                        <button type="button" class="button" disabled=move || control.pending().get() on:click=move |_| { control.dispatch(JobCommand::Resume); }>
                            "Resume"
                        </button>
                    </Show>
                    <button type="button" class="button danger" disabled=move || control.pending().get() || state() == JobState::Cancelling on:click=move |_| { control.dispatch(JobCommand::Cancel); }>
                        "Cancel"
                    </button>
                    <p class="hint">"The run continues on the server if you close this tab."</p>
                </div>
            </Show>
            {move || control.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorBox message=error_text(&e) /> })}
            {move || job.with(stopped_for_deletion_not_enabled).then(|| view! { <RunAgainCard job=job.get() /> })}
            {move || job.with(offers_not_removed).then(|| view! { <NotRemovedCard job=job.get() /> })}
            {move || job.with(|j| j.undo.clone()).map(|window| view! { <UndoWindowCard job=job.get().id.to_string() window /> })}
            <Show when=ended>
                <Downloads id=id.clone() />
            </Show>
        </section>
        <section class="card" aria-labelledby="live-heading">
            <h2 id="live-heading">"Latest results"</h2>
            <p class="hint">"Newest first. The reports hold every row."</p>
            <div class="table-wrap">
                <table class="stack" data-testid="live-rows">
                    <caption class="visually-hidden">"Latest results"</caption>
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
                                .with(|t| t.rows.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>())
                                .into_iter()
                                .map(|r| {
                                    view! {
                                        <tr class=format!("group-{}", OutcomeGroup::of(r.outcome).key())>
                                            <td data-label="Account ID" class="mono">{r.account_id}</td>
                                            <td data-label="Email">{r.email}</td>
                                            <td data-label="Result"><span class="tag">{r.outcome.label()}</span></td>
                                            <td data-label="Message">{(!r.message.is_empty()).then(|| view! { <PlainMessage message=r.message /> })}</td>
                                        </tr>
                                    }
                                })
                                .collect_view()
                        }}
                    </tbody>
                </table>
            </div>
            <Show when=move || tally.with(|t| t.more_older)>
                <button
                    type="button"
                    class="button"
                    disabled=move || older.pending().get()
                    on:click=move |_| {
                        older.dispatch(());
                    }
                >
                    {format!("Show {RESULTS_PAGE} older results")}
                </button>
            </Show>
            {move || older.value().get().and_then(|r| r.err()).map(|e| view! { <ErrorBox message=error_text(&e) /> })}
        </section>
    }
    .into_any()
}

/// The job's reports.
#[component]
pub fn Downloads(id: String) -> impl IntoView {
    let id = encode(&id);
    let href = |kind: ReportKind| kind.run_download(&id);
    view! {
        <nav class="downloads" aria-label="Reports">
            <a class="button" href=href(ReportKind::Failures) download="">"Failures (JSON for Stack support)"</a>
            <a class="button" href=href(ReportKind::ResultsCsv) download="">"All results (CSV)"</a>
            <a class="button" href=href(ReportKind::ResultsJson) download="">"All results (JSON)"</a>
            <a class="button" href=href(ReportKind::AllUsers) download="">"Site users at the start (JSON)"</a>
            <a class="button" href=href(ReportKind::RunSummary) download="">"The run: who started and approved it (JSON)"</a>
        </nav>
    }
    .into_any()
}

/// Follows `/jobs/{id}/events` in the browser from the newest event the page has. The browser
/// resumes by itself (Last-Event-ID) after a network error; when it gives up (the console
/// answered with an error while restarting) a new stream opens after the last event the page
/// saw (see [`super::live_stream`]). The job's counts and state are re-read at most once a
/// second while results arrive, and after every reconnection, so the page catches up with what
/// it missed.
#[cfg(feature = "hydrate")]
fn watch_events(
    id: String,
    job: RwSignal<JobView>,
    tally: RwSignal<LiveTally>,
    connected: RwSignal<bool>,
    access_ended: RwSignal<Option<String>>,
) {
    use super::live_stream::{follow, Follow, Next};
    use std::cell::Cell;
    use std::rc::Rc;

    /// Re-reads the job (counts, done, state) once, unless a re-read is already on its way.
    fn refresh(pending: &Rc<Cell<bool>>, id: &str, job: RwSignal<JobView>, delay_ms: u64) {
        if pending.replace(true) {
            return;
        }
        let pending = send_wrapper::SendWrapper::new(pending.clone());
        let id = id.to_string();
        set_timeout(
            move || {
                leptos::task::spawn_local(async move {
                    if let Ok(view) = load_job(id).await {
                        // An ended view is final: never overwrite it with an older read.
                        if !job.with_untracked(|j| j.state).has_ended() {
                            job.set(view);
                        }
                    }
                    pending.set(false);
                });
            },
            std::time::Duration::from_millis(delay_ms),
        );
    }

    let pending = Rc::new(Cell::new(false));
    let on_job = {
        let (pending, id) = (pending.clone(), id.clone());
        move |data: String| {
            let Ok(event) = serde_json::from_str::<JobEventView>(&data) else {
                return Next::Listen;
            };
            let at = js_sys::Date::parse(&event.at);
            let mut new_result = false;
            tally.update(|t| new_result = t.apply(&event, (!at.is_nan()).then_some(at)));
            if let Some(state) = event.state {
                job.update(|j| {
                    j.state = state;
                    j.reason = event.reason.clone();
                });
            }
            if new_result {
                refresh(&pending, &id, job, 1000);
            }
            Next::Listen
        }
    };
    // The run ended: its final view comes with the event.
    let on_end = move |data: String| {
        connected.set(true);
        if let Ok(view) = serde_json::from_str::<JobView>(&data) {
            job.set(view);
        }
        Next::Stop
    };
    // The console ended the stream because the person's access ended: say so, and stop.
    let on_ended = move |data: String| {
        connected.set(true);
        access_ended.set(Some(data));
        Next::Stop
    };
    let on_open = {
        let (pending, id) = (pending.clone(), id.clone());
        move || {
            if !connected.get_untracked() {
                connected.set(true);
                refresh(&pending, &id, job, 0);
            }
        }
    };
    let address = {
        let id = encode(&id);
        move || {
            let after = tally.with_untracked(|t| t.last_seq);
            format!("/jobs/{id}/events?after={after}")
        }
    };
    follow(Follow {
        address: Box::new(address),
        events: vec![
            ("job", Box::new(on_job)),
            ("end", Box::new(on_end)),
            ("ended", Box::new(on_ended)),
        ],
        on_open: Box::new(on_open),
        on_lost: Box::new(move || connected.set(false)),
        reopen_after: std::time::Duration::from_secs(3),
    });
}

#[cfg(not(feature = "hydrate"))]
fn watch_events(
    _id: String,
    _job: RwSignal<JobView>,
    _tally: RwSignal<LiveTally>,
    _connected: RwSignal<bool>,
    _access_ended: RwSignal<Option<String>>,
) {
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_users_left_alone_apart() {
        assert_eq!(
            progress_words(33, 17, 33),
            "16 of 33 users processed, 17 not attempted"
        );
        assert_eq!(progress_words(60, 0, 60), "60 of 60 users processed");
        assert_eq!(progress_words(0, 0, 0), "0 of 0 users processed");
        assert_eq!(
            progress_words(3, 3, 5),
            "0 of 5 users processed, 3 not attempted"
        );
        // More "not attempted" than done is never stored; it must not underflow or go negative.
        assert_eq!(
            progress_words(2, 9, 5),
            "0 of 5 users processed, 2 not attempted"
        );
        assert_eq!(
            progress_words(1_500, 250, 2_000),
            "1,250 of 2,000 users processed, 250 not attempted"
        );
    }

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

    fn page(seqs: std::ops::RangeInclusive<i64>, last_seq: i64, more: bool) -> JobResultsPage {
        JobResultsPage {
            results: seqs
                .rev()
                .map(|s| event(s, Some(result(s as u64, ItemOutcome::Deleted))))
                .collect(),
            last_seq,
            more,
        }
    }

    fn shown(t: &LiveTally) -> Vec<i64> {
        t.rows.iter().map(|(seq, _)| *seq).collect()
    }

    #[test]
    fn tally_takes_each_result_once_and_keeps_newest_rows() {
        let mut t = LiveTally::default();
        for seq in 1..=250 {
            let outcome = if seq % 10 == 0 {
                ItemOutcome::Failed
            } else {
                ItemOutcome::Deleted
            };
            assert!(t.apply(
                &event(seq, Some(result(seq as u64, outcome))),
                Some(seq as f64 * 100.0),
            ));
        }
        // A replay after reconnecting changes nothing.
        assert!(!t.apply(&event(200, Some(result(200, ItemOutcome::Deleted))), None));
        // A state change is not a result.
        assert!(!t.apply(&event(251, None), None));
        assert_eq!(t.done, 250);
        assert_eq!(t.rows.len(), LIVE_ROWS);
        assert!(
            t.more_older,
            "rows were dropped, so older ones can be asked for"
        );
        assert_eq!(
            t.rows.front().map(|(_, r)| r.account_id.as_str()),
            Some("250")
        );
        assert_eq!(t.last_seq, 251);
    }

    #[test]
    fn the_page_opens_on_the_newest_results_and_pages_older_ones() {
        // 100,000 results: the page holds the newest 50 and resumes the log after the last event.
        let mut t = LiveTally::opening(&page(99_951..=100_000, 100_002, true));
        assert_eq!(t.rows.len(), 50);
        assert_eq!(t.last_seq, 100_002);
        assert_eq!(t.oldest_seq(), 99_951);
        assert!(t.more_older);
        // Events up to where the page opened are not counted again.
        assert!(!t.apply(&event(100_001, Some(result(1, ItemOutcome::Deleted))), None));
        t.add_older(&page(99_901..=99_950, 0, true));
        assert_eq!(t.rows.len(), 100);
        assert_eq!(t.oldest_seq(), 99_901);
        // The same page twice (a double click) adds nothing.
        t.add_older(&page(99_901..=99_950, 0, true));
        assert_eq!(t.rows.len(), 100);
        t.add_older(&page(1..=3, 0, false));
        assert!(!t.more_older);
        let seqs = shown(&t);
        assert!(
            seqs.windows(2).all(|w| w[0] > w[1]),
            "newest first, no repeats"
        );
    }

    #[test]
    fn live_results_never_push_out_the_older_pages_asked_for() {
        let mut t = LiveTally::opening(&page(151..=200, 200, true));
        t.add_older(&page(101..=150, 0, true));
        for seq in 201..=400 {
            t.apply(
                &event(seq, Some(result(seq as u64, ItemOutcome::Deleted))),
                None,
            );
        }
        assert_eq!(t.rows.len(), LIVE_ROWS + 50);
        // What was dropped is older than what is shown, so "older results" continues from there.
        assert!(t.more_older);
        assert_eq!(t.oldest_seq(), 151);
    }

    #[test]
    fn an_empty_run_opens_empty() {
        let t = LiveTally::opening(&JobResultsPage {
            results: vec![],
            last_seq: 0,
            more: false,
        });
        assert!(t.rows.is_empty());
        assert_eq!(t.oldest_seq(), 0);
        assert!(!t.more_older);
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
        for s in [JobState::Finished, JobState::Stopped, JobState::Failed] {
            assert!(s.has_ended());
        }
        for s in [
            JobState::Queued,
            JobState::Running,
            JobState::Paused,
            JobState::Cancelling,
        ] {
            assert!(!s.has_ended());
        }
        assert_eq!(state_words(JobState::Paused), "Paused");
        assert_eq!(state_words(JobState::Queued), "Waiting to start");
    }

    /// A delete run of `total` users, stopped with every user counted in `counts`.
    fn stopped_run(total: u64, counts: Vec<(ItemOutcome, u64)>) -> JobView {
        JobView {
            id: "j".into(),
            created_at: String::new(),
            created_by: String::new(),
            site_url: String::new(),
            action: crate::model::Action::Delete,
            state: JobState::Stopped,
            reason: None,
            started_at: None,
            finished_at: None,
            total,
            done: total,
            approved_by: None,
            undo: None,
            counts,
        }
    }

    #[test]
    fn a_run_stopped_for_deletion_not_enabled_offers_the_rest_again() {
        let mut job = stopped_run(
            10,
            vec![
                (ItemOutcome::Deleted, 2),
                (ItemOutcome::DeletionNotEnabled, 3),
                (ItemOutcome::CommunityCreator, 1),
                (ItemOutcome::NotAttempted, 4),
            ],
        );
        assert!(stopped_for_deletion_not_enabled(&job));
        assert_eq!(still_to_delete(&job), 7);
        job.state = JobState::Finished;
        assert!(!stopped_for_deletion_not_enabled(&job));
        job.state = JobState::Stopped;
        job.counts = vec![(ItemOutcome::NotAttempted, 4)];
        assert!(
            !stopped_for_deletion_not_enabled(&job),
            "a cancelled run is not this case"
        );
    }

    #[test]
    fn an_ended_run_offers_the_users_it_did_not_remove() {
        let mut job = stopped_run(
            33,
            vec![
                (ItemOutcome::Deleted, 14),
                (ItemOutcome::AlreadyGone, 2),
                (ItemOutcome::Failed, 1),
                (ItemOutcome::NotAttempted, 16),
            ],
        );
        assert_eq!(not_yet_removed(&job), 17);
        assert!(offers_not_removed(&job));
        // A failed run with users that never got a result counts them too.
        job.state = JobState::Failed;
        job.counts = vec![(ItemOutcome::Deleted, 10)];
        job.done = 10;
        assert_eq!(not_yet_removed(&job), 23);
        assert!(offers_not_removed(&job));
        // Nobody left, a finished run, a run still going: nothing offered.
        job.counts = vec![(ItemOutcome::Deleted, 30), (ItemOutcome::Deactivated, 3)];
        assert_eq!(not_yet_removed(&job), 0);
        assert!(!offers_not_removed(&job));
        job.counts = vec![(ItemOutcome::NotAttempted, 33)];
        for state in [JobState::Finished, JobState::Paused, JobState::Running] {
            job.state = state;
            assert!(!offers_not_removed(&job), "{state:?}");
        }
        // Counts that claim more than the total do not underflow.
        job.state = JobState::Stopped;
        job.counts = vec![(ItemOutcome::NotAttempted, 40)];
        assert_eq!(not_yet_removed(&job), 40);
        // Deletion not enabled has its own card.
        job.counts = vec![
            (ItemOutcome::DeletionNotEnabled, 3),
            (ItemOutcome::NotAttempted, 30),
        ];
        assert!(!offers_not_removed(&job));
    }
}
