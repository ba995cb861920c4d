//! Pushes each job's log to the people watching it, as the runner stores it.
//!
//! One in-process broadcast per job, fed by the writes themselves ([`JobFeed::write`]): a
//! stored result reaches every open `/jobs/{id}/events` stream without any of them asking the
//! database. The database stays the record. A watcher starts (or resumes, after a reconnect
//! with `Last-Event-ID`) by reading the log from its last sequence number, then follows the
//! broadcast; when it falls too far behind (the broadcast keeps the last [`FEED_CAPACITY`]
//! events), or sees a gap in the numbers, it reads the missing part from the database again.
//! While waiting it holds no database connection.
//!
//! On PostgreSQL another replica may drive the job: its writes reach this process as notices
//! ([`JobFeeds::stored_elsewhere`]). The feed then reads the new events once and publishes them
//! on the same broadcast (the *relay*), so a hundred watchers here cost one read per notice,
//! not a hundred. A watcher that sees a gap still reads the database itself.
//!
//! Why writes take a turn: sequence numbers are handed out inside each write's transaction,
//! and SQLite commits writes one at a time in that order. Publishing while holding the job's
//! turn makes the broadcast carry the events in sequence order too, so a gap means "missed",
//! never "not yet".

use crate::engine::lock;
use crate::storage::{JobEvent, JobRecord, Storage};
use app::ids::{JobId, TeamId};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

/// Events a job's broadcast keeps for watchers that are momentarily behind.
pub const FEED_CAPACITY: usize = 1024;
/// Events read from the database per round trip when a watcher catches up.
const EVENTS_PER_READ: u32 = 500;
/// A watcher also looks at the database this often when nothing arrived: a safety net for a
/// change logged by something other than this process's runner (the broadcast covers the rest).
const LOOK_AGAIN_AFTER: Duration = Duration::from_secs(2);
/// After an event arrives, a watcher waits this long for the ones right behind it, so they
/// leave in one write. A run stores hundreds of results a second: sent one by one to 200
/// watchers, the writes and wake-ups alone took a core away from the run itself.
const GATHER_FOR: Duration = Duration::from_millis(25);

/// One stored event as the broadcast carries it. Its JSON is made once, by the first watcher
/// that sends it, and shared by all the others.
pub struct PublishedEvent {
    pub event: JobEvent,
    json: OnceLock<String>,
}

impl PublishedEvent {
    fn new(event: JobEvent) -> Arc<PublishedEvent> {
        Arc::new(PublishedEvent {
            event,
            json: OnceLock::new(),
        })
    }

    /// The event's JSON, made by `render` the first time it is asked for.
    pub fn json(&self, render: impl FnOnce(&JobEvent) -> String) -> &str {
        self.json.get_or_init(|| render(&self.event))
    }

    fn ends_job(&self) -> bool {
        self.event.state_change.is_some_and(|s| s.has_ended())
    }
}

/// What a storage write logged, for [`JobFeed::write`].
pub trait Logged {
    fn logged(&self) -> Vec<JobEvent>;
}

impl Logged for JobEvent {
    fn logged(&self) -> Vec<JobEvent> {
        vec![self.clone()]
    }
}

impl Logged for Vec<JobEvent> {
    fn logged(&self) -> Vec<JobEvent> {
        self.clone()
    }
}

/// A job's broadcast.
pub struct JobFeed {
    sender: broadcast::Sender<Arc<PublishedEvent>>,
    /// Woken when the relay could not read what another process stored: the watchers read the
    /// database themselves at once instead of at their next periodic look.
    stored_elsewhere: tokio::sync::Notify,
    /// One event-logging write of this job at a time (see the module comment).
    turn: tokio::sync::Mutex<()>,
    /// The job's team, as its first watcher here named it (the relay reads the team's log).
    team: OnceLock<TeamId>,
    /// The newest event this process published or a watcher read: the relay reads after it.
    newest: AtomicI64,
    /// A relay task runs for this feed; `relay_again`: a notice came in since it last read.
    relaying: AtomicBool,
    relay_again: AtomicBool,
}

impl JobFeed {
    fn new() -> JobFeed {
        JobFeed {
            sender: broadcast::channel(FEED_CAPACITY).0,
            stored_elsewhere: tokio::sync::Notify::new(),
            turn: tokio::sync::Mutex::new(()),
            team: OnceLock::new(),
            newest: AtomicI64::new(0),
            relaying: AtomicBool::new(false),
            relay_again: AtomicBool::new(false),
        }
    }

    fn publish(&self, event: JobEvent) {
        self.newest.fetch_max(event.seq, Ordering::SeqCst);
        // No receiver is fine: nobody is watching.
        let _ = self.sender.send(PublishedEvent::new(event));
    }

    /// Reads what another process stored after the newest event known here and publishes it,
    /// until no notice is left unanswered. One task per feed at a time.
    async fn relay(self: Arc<Self>, storage: Arc<dyn Storage>, job_id: JobId) {
        loop {
            self.relay_again.store(false, Ordering::SeqCst);
            let Some(&team_id) = self.team.get() else {
                // Nobody watches here (only this process's runner wrote): nothing to relay.
                self.relaying.store(false, Ordering::SeqCst);
                break;
            };
            // Read without taking the job's turn: on the replica driving the run (notices reach
            // it too) the runner's writes must not wait for this read. An event relayed after a
            // newer one is harmless: watchers skip what they have and read a gap themselves.
            let whole_page = {
                let after = self.newest.load(Ordering::SeqCst);
                match storage
                    .events_since(team_id, &job_id, after, EVENTS_PER_READ)
                    .await
                {
                    Ok(events) => {
                        let whole_page = events.len() == EVENTS_PER_READ as usize;
                        for event in events {
                            self.publish(event);
                        }
                        whole_page
                    }
                    Err(e) => {
                        tracing::warn!(job_id = %job_id, error = %e, "could not relay a run's events from the database; its watchers read them themselves");
                        self.stored_elsewhere.notify_waiters();
                        false
                    }
                }
            };
            if whole_page || self.relay_again.load(Ordering::SeqCst) {
                continue;
            }
            self.relaying.store(false, Ordering::SeqCst);
            // A notice that came in just before the flag went down would otherwise wait: go on
            // if there is one and no other relay task has started for it.
            let missed = self.relay_again.load(Ordering::SeqCst);
            if !missed || self.relaying.swap(true, Ordering::SeqCst) {
                break;
            }
        }
    }

    /// Runs `write` (a storage call that logs events of this job) in the job's turn, then
    /// publishes what it logged. A failed write publishes nothing: it logged nothing.
    pub async fn write<T: Logged, E>(
        &self,
        write: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let _turn = self.turn.lock().await;
        let result = write.await;
        if let Ok(logged) = &result {
            for event in logged.logged() {
                self.publish(event);
            }
        }
        result
    }

    /// How many watchers follow this job now.
    pub fn watchers(&self) -> usize {
        self.sender.receiver_count()
    }
}

/// Every job's broadcast, made when the first writer or watcher asks, dropped when the last
/// one lets go.
#[derive(Default)]
pub struct JobFeeds {
    feeds: Mutex<HashMap<JobId, Weak<JobFeed>>>,
}

impl JobFeeds {
    pub fn feed(&self, job_id: &JobId) -> Arc<JobFeed> {
        let mut feeds = lock(&self.feeds);
        if let Some(feed) = feeds.get(job_id).and_then(Weak::upgrade) {
            return feed;
        }
        feeds.retain(|_, feed| feed.strong_count() > 0);
        let feed = Arc::new(JobFeed::new());
        feeds.insert(job_id.clone(), Arc::downgrade(&feed));
        feed
    }

    /// Another process stored events of `job_id`: if anybody here follows it, the relay reads
    /// them once from `storage` and publishes them to every watcher.
    pub fn stored_elsewhere(&self, storage: &Arc<dyn Storage>, job_id: &JobId) {
        let feed = lock(&self.feeds).get(job_id).and_then(Weak::upgrade);
        if let Some(feed) = feed {
            feed.relay_again.store(true, Ordering::SeqCst);
            if !feed.relaying.swap(true, Ordering::SeqCst) {
                tokio::spawn(feed.relay(storage.clone(), job_id.clone()));
            }
        }
    }

    /// Follows `job_id` (of `team_id`) from the event after `after_seq`.
    pub fn watch(
        &self,
        storage: Arc<dyn Storage>,
        team_id: TeamId,
        job_id: &JobId,
        after_seq: i64,
    ) -> Watcher {
        let feed = self.feed(job_id);
        let _ = feed.team.set(team_id);
        // Subscribed before the first read, so nothing stored after that read is missed.
        let receiver = feed.sender.subscribe();
        Watcher {
            storage,
            team_id,
            job_id: job_id.clone(),
            _feed: feed,
            receiver,
            after: after_seq.max(0),
            pending: VecDeque::new(),
            catching_up: true,
            first_read: true,
            state: WatchState::Following,
        }
    }
}

/// What a watcher receives next.
pub enum WatchItem {
    Event(Arc<PublishedEvent>),
    /// The job has ended and everything it logged was sent; the stream closes after this.
    End(Box<JobRecord>),
}

#[derive(PartialEq, Eq)]
enum WatchState {
    Following,
    /// The job's last event is queued: send what is left, then the end.
    Ending,
    Done,
}

/// One watcher's position in one job's log.
pub struct Watcher {
    storage: Arc<dyn Storage>,
    team_id: TeamId,
    job_id: JobId,
    /// Keeps the broadcast alive while someone watches.
    _feed: Arc<JobFeed>,
    receiver: broadcast::Receiver<Arc<PublishedEvent>>,
    /// The last sequence number queued for sending.
    after: i64,
    pending: VecDeque<Arc<PublishedEvent>>,
    /// Reading from the database instead of the broadcast.
    catching_up: bool,
    /// The first read also asks whether the job has already ended (nothing more will come).
    first_read: bool,
    state: WatchState,
}

impl Watcher {
    /// The next thing to send; None once the end was sent, or when the job is gone or the
    /// database fails (logged): the browser then reconnects and resumes.
    pub async fn next(&mut self) -> Option<WatchItem> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(WatchItem::Event(event));
            }
            match self.state {
                WatchState::Done => return None,
                WatchState::Ending => {
                    self.state = WatchState::Done;
                    return self
                        .job_now()
                        .await
                        .map(|job| WatchItem::End(Box::new(job)));
                }
                WatchState::Following => {}
            }
            if self.catching_up {
                self.catch_up().await?;
                continue;
            }
            let received = tokio::select! {
                received = self.receiver.recv() => Some(received),
                _ = self._feed.stored_elsewhere.notified() => None,
                _ = tokio::time::sleep(LOOK_AGAIN_AFTER) => None,
            };
            match received {
                Some(received) => {
                    self.take(received);
                    if !self.pending.is_empty() && !self.catching_up {
                        tokio::time::sleep(GATHER_FOR).await;
                        while let Some(received) = self.ready() {
                            self.take(received);
                        }
                    }
                }
                // Stored by another process, or quiet for a while: read the database.
                None => self.catching_up = true,
            }
        }
    }

    /// An event the broadcast already holds, without waiting; None when there is none (or the
    /// watcher must read the database anyway).
    fn ready(&mut self) -> Option<Result<Arc<PublishedEvent>, RecvError>> {
        if self.catching_up {
            return None;
        }
        match self.receiver.try_recv() {
            Ok(event) => Some(Ok(event)),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
            Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
        }
    }

    /// Queues the next event, skips one already sent, or switches to the database.
    fn take(&mut self, received: Result<Arc<PublishedEvent>, RecvError>) {
        match received {
            Ok(event) if event.event.seq <= self.after => {}
            Ok(event) if event.event.seq == self.after + 1 => self.queue(event),
            // A gap, or fallen behind the broadcast: the database has the rest.
            Ok(_) | Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => {
                self.catching_up = true;
            }
        }
    }

    fn queue(&mut self, event: Arc<PublishedEvent>) {
        self.after = event.event.seq;
        if event.ends_job() {
            self.state = WatchState::Ending;
        }
        self.pending.push_back(event);
    }

    /// Reads the next page of the log from the database; None when it cannot.
    async fn catch_up(&mut self) -> Option<()> {
        // Everything the broadcast holds now is at most as new as what this read returns.
        self.receiver = self.receiver.resubscribe();
        if self.first_read {
            self.first_read = false;
            if self.job_now().await?.state.has_ended() {
                // Nothing more will be logged: what the read below returns is all there is.
                self.state = WatchState::Ending;
            }
        }
        let events = match self
            .storage
            .events_since(self.team_id, &self.job_id, self.after, EVENTS_PER_READ)
            .await
        {
            Ok(events) => events,
            Err(e) => {
                tracing::error!(job_id = %self.job_id, error = %e, "job watcher could not read events");
                return None;
            }
        };
        let whole_page = events.len() == EVENTS_PER_READ as usize;
        for event in events {
            self.queue(PublishedEvent::new(event));
        }
        // The relay need not publish again what this watcher has just read.
        self._feed.newest.fetch_max(self.after, Ordering::SeqCst);
        if whole_page && self.state == WatchState::Ending {
            // More pages before the end: keep reading.
            self.state = WatchState::Following;
            self.first_read = true;
        }
        self.catching_up = whole_page;
        Some(())
    }

    async fn job_now(&self) -> Option<JobRecord> {
        match self.storage.job(self.team_id, &self.job_id).await {
            Ok(Some(job)) => Some(job),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(job_id = %self.job_id, error = %e, "job watcher could not read the job");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against a real SQLite file: the feed's promise is about what the database holds.
    use super::*;
    use crate::engine::{ItemState, RunTarget};
    use crate::storage::{JobState, NewJob, PlannedItem, PreviewRecord};
    use app::ids::PreviewId;

    const DEFAULT_TEAM: TeamId = TeamId::BUILT_IN;
    use app::model::{Action, ItemOutcome, ItemResult};

    /// The job every test follows.
    fn job() -> JobId {
        JobId::new("job-1")
    }

    struct Setup {
        _dir: tempfile::TempDir,
        storage: Arc<dyn Storage>,
        feeds: JobFeeds,
    }

    /// A running job of `users` users (u1, u2, …); its log holds `queued` and `running` (seq 1, 2).
    async fn running_job(users: usize) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("offboard.db").display());
        let storage = crate::storage::open(&url).await.unwrap().storage;
        let preview = PreviewRecord {
            id: "preview-1".into(),
            created_at: chrono::Utc::now(),
            action: Action::Delete,
            source_id: "source-1".into(),
            summary_json: "{}".into(),
            total_rows: 0,
            phrase: "DELETE 1 USER".into(),
            claimed: false,
            replaced_by: None,
        };
        storage
            .save_preview(DEFAULT_TEAM, &preview, &[])
            .await
            .unwrap();
        assert!(storage
            .claim_preview(DEFAULT_TEAM, &PreviewId::new("preview-1"))
            .await
            .unwrap());
        let items = (1..=users)
            .map(|i| {
                PlannedItem::Run(RunTarget {
                    account_id: format!("u{i}"),
                    email: None,
                    state: ItemState::Pending,
                })
            })
            .collect();
        let new_job = NewJob {
            id: job(),
            team_id: DEFAULT_TEAM,
            created_by: "admin".into(),
            created_at: chrono::Utc::now(),
            site_url: "https://acme.example".into(),
            action: Action::Delete,
            preview_id: "preview-1".into(),
            connection: crate::storage::JobConnection {
                users_url: "https://acme.example/api/scim/v2/users".into(),
                token_fingerprint: "fp".into(),
            },
            items,
            runs_per_site: 1,
            audit: Vec::new(),
            approval: None,
            undo: None,
        };
        storage.create_job(&new_job).await.unwrap();
        storage
            .set_job_state(&job(), None, JobState::Running, None)
            .await
            .unwrap();
        Setup {
            _dir: dir,
            storage,
            feeds: JobFeeds::default(),
        }
    }

    fn deleted(i: usize) -> ItemResult {
        ItemResult {
            account_id: format!("u{i}"),
            email: None,
            outcome: ItemOutcome::Deleted,
            message: "Deleted.".into(),
            attempts: 1,
            elapsed_ms: 20,
            demoted: false,
        }
    }

    impl Setup {
        /// Stores user `i`'s result the way the runner does: through the job's feed.
        async fn result(&self, i: usize) {
            self.feeds
                .feed(&job())
                .write(self.storage.record_result(&job(), None, &deleted(i)))
                .await
                .unwrap();
        }

        async fn finish(&self) {
            self.feeds
                .feed(&job())
                .write(
                    self.storage
                        .set_job_state(&job(), None, JobState::Finished, None),
                )
                .await
                .unwrap();
        }

        fn watch(&self, after: i64) -> Watcher {
            self.feeds
                .watch(self.storage.clone(), DEFAULT_TEAM, &job(), after)
        }
    }

    /// Everything a watcher sends until the end: the sequence numbers, and the job it ended on.
    async fn drain(watcher: &mut Watcher) -> (Vec<i64>, Option<JobRecord>) {
        let mut seqs = Vec::new();
        let wait = Duration::from_secs(20);
        while let Some(item) = tokio::time::timeout(wait, watcher.next()).await.unwrap() {
            match item {
                WatchItem::Event(e) => seqs.push(e.event.seq),
                WatchItem::End(job) => {
                    assert!(tokio::time::timeout(wait, watcher.next())
                        .await
                        .unwrap()
                        .is_none());
                    return (seqs, Some(*job));
                }
            }
        }
        (seqs, None)
    }

    #[tokio::test]
    async fn a_watcher_gets_every_stored_result_in_order_then_the_end() {
        let s = running_job(5).await;
        let mut watcher = s.watch(0);
        let first = watcher.next().await;
        assert!(matches!(first, Some(WatchItem::Event(ref e)) if e.event.seq == 1));
        for i in 1..=5 {
            s.result(i).await;
        }
        s.finish().await;
        let (seqs, job) = drain(&mut watcher).await;
        // queued (1) was sent; running (2), five results (3..=7), finished (8).
        assert_eq!(seqs, (2..=8).collect::<Vec<_>>());
        let job = job.expect("the end");
        assert_eq!(job.state, JobState::Finished);
        assert_eq!(job.done, 5);
    }

    #[tokio::test]
    async fn the_broadcast_delivers_without_reading_the_database() {
        let s = running_job(3).await;
        let mut watcher = s.watch(0);
        // Caught up: queued and running, read from the database.
        for seq in 1..=2 {
            assert!(
                matches!(watcher.next().await, Some(WatchItem::Event(e)) if e.event.seq == seq)
            );
        }
        assert!(!watcher.catching_up);
        s.result(1).await;
        let Some(WatchItem::Event(pushed)) = watcher.next().await else {
            panic!("no event");
        };
        assert_eq!(pushed.event.seq, 3);
        assert_eq!(pushed.event.result, Some(deleted(1)));
        assert!(!watcher.catching_up, "came through the broadcast");
        // The JSON is made once for every watcher.
        let made = pushed.json(|_| "first".into()).to_string();
        assert_eq!(pushed.json(|_| "second".into()), made);
    }

    #[tokio::test]
    async fn a_watcher_that_falls_behind_resumes_from_the_database() {
        let users = FEED_CAPACITY + 200;
        let s = running_job(users).await;
        let mut watcher = s.watch(0);
        assert!(watcher.next().await.is_some());
        // The watcher reads nothing while more results are stored than the broadcast keeps.
        for i in 1..=users {
            s.result(i).await;
        }
        s.finish().await;
        let (seqs, job) = drain(&mut watcher).await;
        let last = 2 + users as i64 + 1;
        assert_eq!(
            seqs,
            (2..=last).collect::<Vec<_>>(),
            "each event once, in order"
        );
        assert_eq!(job.unwrap().done, users as u64);
    }

    #[tokio::test]
    async fn a_reconnecting_watcher_resumes_after_its_last_event() {
        let s = running_job(4).await;
        for i in 1..=2 {
            s.result(i).await;
        }
        // It saw up to seq 3 before it lost its connection.
        let mut watcher = s.watch(3);
        for i in 3..=4 {
            s.result(i).await;
        }
        s.finish().await;
        let (seqs, job) = drain(&mut watcher).await;
        assert_eq!(seqs, vec![4, 5, 6, 7]);
        assert!(job.is_some());
    }

    #[tokio::test]
    async fn an_event_stored_outside_the_feed_is_read_from_the_database() {
        let s = running_job(3).await;
        let mut watcher = s.watch(2);
        // The first read (nothing after seq 2 yet): from now on it follows the broadcast.
        watcher.catch_up().await.unwrap();
        assert!(watcher.pending.is_empty() && !watcher.catching_up);
        // u1's result skips the broadcast (as a write by another process would); u2's does not.
        s.storage
            .record_result(&job(), None, &deleted(1))
            .await
            .unwrap();
        s.result(2).await;
        for seq in [3, 4] {
            assert!(
                matches!(watcher.next().await, Some(WatchItem::Event(e)) if e.event.seq == seq)
            );
        }
    }

    #[tokio::test]
    async fn events_another_replica_stored_are_read_once_and_pushed_to_every_watcher() {
        let s = running_job(3).await;
        let mut watchers = [s.watch(0), s.watch(0)];
        for watcher in &mut watchers {
            for seq in 1..=2 {
                assert!(
                    matches!(watcher.next().await, Some(WatchItem::Event(e)) if e.event.seq == seq)
                );
            }
            assert!(!watcher.catching_up);
        }
        // Stored by "another replica": not through this process's feed, then announced.
        for i in 1..=2 {
            s.storage
                .record_result(&job(), None, &deleted(i))
                .await
                .unwrap();
        }
        s.feeds.stored_elsewhere(&s.storage, &job());
        let mut received = Vec::new();
        for watcher in &mut watchers {
            for (seq, i) in [(3, 1), (4, 2)] {
                let Some(WatchItem::Event(e)) = watcher.next().await else {
                    panic!("no event");
                };
                assert_eq!(
                    (e.event.seq, e.event.result.clone()),
                    (seq, Some(deleted(i)))
                );
                received.push(e);
            }
        }
        // One read for both: the very same published events (a watcher reading the database
        // itself would have made its own).
        assert!(Arc::ptr_eq(&received[0], &received[2]));
        assert!(Arc::ptr_eq(&received[1], &received[3]));
        assert_eq!(s.feeds.feed(&job()).newest.load(Ordering::SeqCst), 4);
        // The end, stored elsewhere too, reaches both with the job's final record.
        s.storage
            .set_job_state(&job(), None, JobState::Finished, None)
            .await
            .unwrap();
        s.feeds.stored_elsewhere(&s.storage, &job());
        for watcher in &mut watchers {
            let (seqs, job) = drain(watcher).await;
            assert_eq!(seqs, vec![5]);
            assert_eq!(job.map(|j| j.state), Some(JobState::Finished));
        }
    }

    #[tokio::test]
    async fn a_watcher_of_an_ended_job_gets_the_rest_and_the_end() {
        let s = running_job(2).await;
        s.result(1).await;
        s.result(2).await;
        s.finish().await;
        let (seqs, job) = drain(&mut s.watch(2)).await;
        assert_eq!(seqs, vec![3, 4, 5]);
        assert_eq!(job.unwrap().state, JobState::Finished);
        let (seqs, job) = drain(&mut s.watch(5)).await;
        assert!(seqs.is_empty());
        assert!(
            job.is_some(),
            "a watcher already at the end gets the end at once"
        );
    }

    #[tokio::test]
    async fn a_feed_lives_while_someone_writes_or_watches() {
        let s = running_job(1).await;
        let watcher = s.watch(0);
        assert_eq!(s.feeds.feed(&job()).watchers(), 1);
        drop(watcher);
        assert_eq!(lock(&s.feeds.feeds).len(), 1);
        // Asking for another job's feed drops the entries nobody holds.
        let _other = s.feeds.feed(&JobId::new("job-2"));
        assert_eq!(lock(&s.feeds.feeds).len(), 1);
    }
}
