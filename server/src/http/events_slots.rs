//! How many live-progress streams are open, and who holds them: caps per run, per person (on
//! one run and in all), per team and in all, so no one browser, person or team can take every
//! place and lock the others out.

use super::access::AccessChecks;
use crate::engine::lock;
use app::ids::{AccountId, JobId, TeamId};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Streams one person may hold on one run by default: a few tabs, never the run's every place.
pub const PER_PERSON_PER_RUN: usize = 5;
/// Streams one person may hold in all by default.
pub const PER_PERSON: usize = 20;
/// How often an open stream checks by default that its viewer may still see the run.
pub const RECHECK: Duration = Duration::from_secs(2);

/// The caps (`--max-watchers*` flags) and how often open streams re-check their viewer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatcherLimits {
    pub per_run: usize,
    pub total: usize,
    pub per_person_per_run: usize,
    pub per_person: usize,
    pub per_team: usize,
    pub recheck: Duration,
}

impl WatcherLimits {
    /// `per_run` and `total` as given, the rest at their defaults (a team: half of `total`).
    pub fn new(per_run: usize, total: usize) -> WatcherLimits {
        WatcherLimits {
            per_run,
            total,
            per_person_per_run: PER_PERSON_PER_RUN,
            per_person: PER_PERSON,
            per_team: total / 2,
            recheck: RECHECK,
        }
        .at_least_one()
    }

    /// The limits `offboard serve` was started with.
    pub fn of(args: &crate::config::ServeArgs) -> WatcherLimits {
        WatcherLimits {
            per_run: args.max_watchers_per_run,
            total: args.max_watchers,
            per_person_per_run: args.max_watchers_per_person_per_run,
            per_person: args.max_watchers_per_person,
            per_team: args.max_watchers_per_team.unwrap_or(args.max_watchers / 2),
            recheck: Duration::from_secs(args.watcher_recheck_seconds),
        }
        .at_least_one()
    }

    /// A cap of 0 would refuse everyone: every cap is at least one stream, and a re-check
    /// period at least a tenth of a second.
    fn at_least_one(self) -> WatcherLimits {
        WatcherLimits {
            per_run: self.per_run.max(1),
            total: self.total.max(1),
            per_person_per_run: self.per_person_per_run.max(1),
            per_person: self.per_person.max(1),
            per_team: self.per_team.max(1),
            recheck: self.recheck.max(Duration::from_millis(100)),
        }
    }
}

/// Who holds a stream, and of which run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub person: AccountId,
    pub team: TeamId,
    pub job: JobId,
}

/// Which cap refused a stream: each has its own words and status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The person holds `per_person_per_run` streams of this run already.
    PersonOnRun(usize),
    /// The person holds `per_person` streams in all already.
    Person(usize),
    /// The run has `per_run` watchers.
    Run,
    /// The person's team holds its share of the console's streams.
    Team,
    /// The console holds `total` streams.
    Console,
}

impl Refusal {
    /// Refusals the person can end themselves (close tabs) are theirs (429); the others are
    /// the console being full (503).
    pub fn is_the_persons(self) -> bool {
        matches!(self, Refusal::PersonOnRun(_) | Refusal::Person(_))
    }

    pub fn words(self) -> String {
        match self {
            Refusal::PersonOnRun(n) => format!(
                "You are following this run in too many tabs or windows ({n} at most). Close \
                 some of them, then reload this page."
            ),
            Refusal::Person(n) => format!(
                "You are following runs in too many tabs or windows ({n} at most). Close some \
                 of them, then reload this page."
            ),
            Refusal::Run => "Too many browsers are following this run right now. Close other \
                             tabs showing this run, or reload this page in a minute."
                .to_string(),
            Refusal::Team => "Too many browsers of your team are following runs on this \
                              console right now. Close other tabs showing runs, or reload this \
                              page in a minute."
                .to_string(),
            Refusal::Console => "Too many browsers are following runs on this console right \
                                 now. Close other tabs showing this run, or reload this page in \
                                 a minute."
                .to_string(),
        }
    }
}

/// The streams open now, counted every way a cap looks at them.
#[derive(Debug, Default)]
struct Taken {
    all: usize,
    runs: HashMap<JobId, usize>,
    teams: HashMap<TeamId, usize>,
    people: HashMap<AccountId, usize>,
    people_on_runs: HashMap<(AccountId, JobId), usize>,
}

fn count<K: Hash + Eq>(map: &HashMap<K, usize>, key: &K) -> usize {
    map.get(key).copied().unwrap_or(0)
}

fn add<K: Hash + Eq>(map: &mut HashMap<K, usize>, key: K) {
    *map.entry(key).or_insert(0) += 1;
}

/// One fewer for `key`; a count that reaches 0 leaves the map, so it holds only open streams.
fn remove<K: Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl Taken {
    /// Counts one more stream for `holder`, unless a cap is reached. The person's own caps
    /// come first: someone over them is told to close tabs, not that the console is full.
    fn take(&mut self, limits: &WatcherLimits, holder: &Holder) -> Result<(), Refusal> {
        let on_run = (holder.person, holder.job.clone());
        if count(&self.people_on_runs, &on_run) >= limits.per_person_per_run {
            return Err(Refusal::PersonOnRun(limits.per_person_per_run));
        }
        if count(&self.people, &holder.person) >= limits.per_person {
            return Err(Refusal::Person(limits.per_person));
        }
        if count(&self.runs, &holder.job) >= limits.per_run {
            return Err(Refusal::Run);
        }
        if count(&self.teams, &holder.team) >= limits.per_team {
            return Err(Refusal::Team);
        }
        if self.all >= limits.total {
            return Err(Refusal::Console);
        }
        add(&mut self.people_on_runs, on_run);
        add(&mut self.people, holder.person);
        add(&mut self.runs, holder.job.clone());
        add(&mut self.teams, holder.team);
        self.all += 1;
        Ok(())
    }

    fn give_back(&mut self, holder: &Holder) {
        remove(
            &mut self.people_on_runs,
            &(holder.person, holder.job.clone()),
        );
        remove(&mut self.people, &holder.person);
        remove(&mut self.runs, &holder.job);
        remove(&mut self.teams, &holder.team);
        self.all = self.all.saturating_sub(1);
    }
}

/// The console's open live-progress streams and their caps. Each stream holds a connection
/// and a file descriptor for as long as the browser stays: without a cap, a page left open in
/// 800 tabs (or a script) exhausts the server's descriptors; without caps per person and per
/// team, one viewer's script takes a run's every place and its owner cannot follow it.
pub struct WatcherSlots {
    limits: WatcherLimits,
    taken: Mutex<Taken>,
    /// The re-checks of open streams' sessions, shared by the streams of one session.
    pub(super) checks: AccessChecks,
}

/// One open stream's place; given back when the stream ends (the browser left, the run
/// ended, or the viewer's access did).
pub struct WatcherSlot {
    slots: Arc<WatcherSlots>,
    holder: Holder,
    _open: crate::metrics::Held,
}

impl WatcherSlots {
    /// `per_run` streams of one run and `total` in all; the other caps at their defaults.
    pub fn new(per_run: usize, total: usize) -> Arc<WatcherSlots> {
        WatcherSlots::with_limits(WatcherLimits::new(per_run, total))
    }

    pub fn with_limits(limits: WatcherLimits) -> Arc<WatcherSlots> {
        let limits = limits.at_least_one();
        Arc::new(WatcherSlots {
            limits,
            taken: Mutex::new(Taken::default()),
            checks: AccessChecks::new(limits.recheck),
        })
    }

    pub fn limits(&self) -> WatcherLimits {
        self.limits
    }

    /// A place for one more stream of `holder`, or the cap that refuses it.
    pub fn take(self: &Arc<Self>, holder: Holder) -> Result<WatcherSlot, Refusal> {
        let taken = lock(&self.taken).take(&self.limits, &holder);
        taken.inspect_err(|_| crate::metrics::stream_refused())?;
        Ok(WatcherSlot {
            slots: self.clone(),
            holder,
            _open: crate::metrics::stream_opened(),
        })
    }

    /// Streams open now, in all.
    pub fn open(&self) -> usize {
        lock(&self.taken).all
    }
}

impl Drop for WatcherSlot {
    fn drop(&mut self) {
        lock(&self.slots.taken).give_back(&self.holder);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> WatcherLimits {
        WatcherLimits {
            per_run: 6,
            total: 10,
            per_person_per_run: 2,
            per_person: 3,
            per_team: 7,
            recheck: RECHECK,
        }
    }

    fn holder(person: i64, team: i64, job: &str) -> Holder {
        Holder {
            person: AccountId::new(person),
            team: TeamId::new(team),
            job: JobId::from(job.to_string()),
        }
    }

    #[test]
    fn one_person_cannot_take_a_runs_every_place() {
        let mut taken = Taken::default();
        let l = limits();
        let viewer = holder(2, 1, "run");
        assert_eq!(taken.take(&l, &viewer), Ok(()));
        assert_eq!(taken.take(&l, &viewer), Ok(()));
        assert_eq!(taken.take(&l, &viewer), Err(Refusal::PersonOnRun(2)));
        // The owner of the same team still gets in.
        assert_eq!(taken.take(&l, &holder(1, 1, "run")), Ok(()));
        // The viewer may follow another run, up to their own total.
        assert_eq!(taken.take(&l, &holder(2, 1, "other")), Ok(()));
        assert_eq!(
            taken.take(&l, &holder(2, 1, "third")),
            Err(Refusal::Person(3))
        );
        assert!(Refusal::PersonOnRun(2).is_the_persons() && Refusal::Person(3).is_the_persons());
        // A refusal counts nothing.
        assert_eq!(taken.all, 4);
        assert_eq!(count(&taken.people, &AccountId::new(2)), 3);
    }

    #[test]
    fn a_run_has_its_cap_whoever_asks() {
        let mut taken = Taken::default();
        let l = limits();
        for person in 1..=6 {
            assert_eq!(taken.take(&l, &holder(person, 1, "run")), Ok(()));
        }
        assert_eq!(taken.take(&l, &holder(7, 1, "run")), Err(Refusal::Run));
        assert!(!Refusal::Run.is_the_persons());
        assert_eq!(taken.take(&l, &holder(7, 1, "other")), Ok(()));
    }

    #[test]
    fn one_team_keeps_a_share_of_the_console_for_the_others() {
        let mut taken = Taken::default();
        let l = limits();
        // Team 1's people fill its share of 7 over several runs.
        for person in 1..=7 {
            let run = format!("run{}", person % 3);
            assert_eq!(taken.take(&l, &holder(person, 1, &run)), Ok(()));
        }
        assert_eq!(taken.take(&l, &holder(8, 1, "run9")), Err(Refusal::Team));
        // Team 2 still gets the rest of the console, and then the console is full.
        for person in 11..=13 {
            assert_eq!(taken.take(&l, &holder(person, 2, "b")), Ok(()));
        }
        assert_eq!(taken.take(&l, &holder(14, 3, "c")), Err(Refusal::Console));
        assert_eq!(taken.all, 10);
    }

    #[test]
    fn places_given_back_are_counted_nowhere() {
        let mut taken = Taken::default();
        let l = limits();
        let viewer = holder(2, 1, "run");
        taken.take(&l, &viewer).unwrap();
        taken.take(&l, &viewer).unwrap();
        taken.give_back(&viewer);
        assert_eq!(taken.take(&l, &viewer), Ok(()));
        taken.give_back(&viewer);
        taken.give_back(&viewer);
        assert_eq!(taken.all, 0);
        assert!(taken.runs.is_empty() && taken.teams.is_empty());
        assert!(taken.people.is_empty() && taken.people_on_runs.is_empty());
        // Giving back more than was taken (never done) leaves the counts at nothing.
        taken.give_back(&viewer);
        assert_eq!(taken.all, 0);
        assert!(taken.people.is_empty());
    }

    #[tokio::test]
    async fn a_dropped_slot_gives_its_place_back() {
        let slots = WatcherSlots::with_limits(limits());
        let viewer = holder(2, 1, "run");
        let first = slots.take(viewer.clone()).unwrap();
        let second = slots.take(viewer.clone()).unwrap();
        assert_eq!(
            slots.take(viewer.clone()).err(),
            Some(Refusal::PersonOnRun(2))
        );
        assert_eq!(slots.open(), 2);
        drop(first);
        assert_eq!(slots.open(), 1);
        let third = slots.take(viewer.clone()).unwrap();
        drop((second, third));
        assert_eq!(slots.open(), 0);
        assert!(lock(&slots.taken).people_on_runs.is_empty());
    }

    #[test]
    fn no_cap_is_zero_and_a_team_gets_half_by_default() {
        let zero = WatcherLimits {
            per_run: 0,
            total: 0,
            per_person_per_run: 0,
            per_person: 0,
            per_team: 0,
            recheck: Duration::ZERO,
        }
        .at_least_one();
        assert_eq!((zero.per_run, zero.total, zero.per_team), (1, 1, 1));
        assert_eq!((zero.per_person_per_run, zero.per_person), (1, 1));
        assert!(zero.recheck >= Duration::from_millis(100));
        let defaults = WatcherLimits::new(250, 500);
        assert_eq!(defaults.per_team, 250);
        assert_eq!(defaults.per_person_per_run, PER_PERSON_PER_RUN);
        assert_eq!(WatcherLimits::new(1, 1).per_team, 1);
    }

    #[test]
    fn the_words_name_the_cap_and_never_zero() {
        assert!(Refusal::PersonOnRun(5).words().contains("(5 at most)"));
        assert!(Refusal::Person(20).words().contains("(20 at most)"));
        for r in [Refusal::Run, Refusal::Team, Refusal::Console] {
            assert!(r.words().starts_with("Too many browsers"), "{r:?}");
        }
    }
}
