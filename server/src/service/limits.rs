//! Per-team limits: how many previews and runs a team may make in an hour, and how many runs
//! may go on at once against one site. They keep one team (or one stuck script) from making
//! the console list a site over and over or hammer a site with parallel runs.
//!
//! Decisions: previews and runs per hour are counted in this process's memory over a sliding
//! hour (a restart forgets them; with several console processes each counts its own). Runs per
//! site are counted from the database (every team's unfinished runs), so they hold across
//! processes and restarts. A revision counts as a preview: it re-resolves the whole list.
//!
//! A site's request limit is shared by splitting it, not by asking a shared counter before
//! each request: every run gets `site_concurrency / runs_per_site` requests in flight, and at
//! most `runs_per_site` runs go on against a site at once (all replicas together, checked in
//! the transaction that writes the run), so the site never sees more than `site_concurrency`
//! at once from the whole console. A counter in the database would cost a round trip per
//! request and still need leases for replicas that die holding a slot; the price of the split
//! is that a run alone on its site uses only its share when `runs_per_site` is above 1.

use app::backend::ConsoleError;
use app::ids::TeamId;
use chrono::{DateTime, Duration, Utc};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// The limits `offboard serve` applies (flags `--previews-per-hour`, `--runs-per-hour`,
/// `--runs-per-site`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub previews_per_hour: u32,
    pub runs_per_hour: u32,
    /// Runs queued or running at once against one site, all teams together.
    pub runs_per_site: usize,
    /// Requests in flight at once against one site, all its runs together.
    pub site_concurrency: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            previews_per_hour: 120,
            runs_per_hour: 30,
            runs_per_site: 1,
            site_concurrency: 8,
        }
    }
}

impl Limits {
    /// Requests one run may have in flight: its equal share of the site's (at least 1).
    pub fn requests_per_run(&self) -> usize {
        (self.site_concurrency / self.runs_per_site.max(1)).max(1)
    }

    /// Refuses limits under which the runs of one site could together send more than the
    /// site's requests at once.
    pub fn check(&self) -> Result<(), String> {
        if self.runs_per_site > self.site_concurrency.max(1) {
            return Err(format!(
                "--runs-per-site ({}) cannot be more than --site-concurrency ({}): each run \
                 needs at least one request of the site's share.",
                self.runs_per_site, self.site_concurrency
            ));
        }
        Ok(())
    }
}

/// What is counted per team.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Counted {
    Preview,
    Run,
}

/// When each counted thing happened, oldest first.
type Times = VecDeque<DateTime<Utc>>;

/// The sliding-hour counters of every team.
#[derive(Default)]
pub struct TeamCounters {
    seen: Mutex<HashMap<(TeamId, Counted), Times>>,
}

impl TeamCounters {
    /// Counts one more `what` for `team` at `now`, or refuses (counting nothing) when the team
    /// has had `limit` in the hour before.
    pub fn take(
        &self,
        team: TeamId,
        what: Counted,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<(), ConsoleError> {
        self.check(team, what, limit, now)?;
        self.count(team, what, now);
        Ok(())
    }

    /// Counts one more `what` (made after [`TeamCounters::check`] allowed it: a run is counted
    /// once it has started, so a mistyped phrase costs nothing).
    pub fn count(&self, team: TeamId, what: Counted, now: DateTime<Utc>) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.entry((team, what)).or_default().push_back(now);
    }

    /// Refuses when `team` has had `limit` of `what` in the hour before `now`.
    pub fn check(
        &self,
        team: TeamId,
        what: Counted,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<(), ConsoleError> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let times = seen.entry((team, what)).or_default();
        while times
            .front()
            .is_some_and(|t| now - *t >= Duration::hours(1))
        {
            times.pop_front();
        }
        if times.len() >= limit as usize {
            let wait = times
                .front()
                .map(|oldest| (*oldest + Duration::hours(1) - now).num_minutes() + 1)
                .unwrap_or(60);
            let (things, flag) = match what {
                Counted::Preview => ("previews", "--previews-per-hour"),
                Counted::Run => ("runs", "--runs-per-hour"),
            };
            return Err(ConsoleError::new(format!(
                "Your team has made {limit} {things} in the last hour, the most this console \
                 allows. Try again in about {wait} minutes (the console's operator can raise \
                 the limit with {flag})."
            )));
        }
        Ok(())
    }
}

/// Refuses a new run when `running` runs already go on against the site.
pub fn site_has_room(running: usize, limits: &Limits, site_url: &str) -> Result<(), ConsoleError> {
    if running >= limits.runs_per_site {
        return Err(ConsoleError::new(format!(
            "A run is already going on against {site_url} (this console allows {} at a time per \
             site, so the site's request limit is not shared between runs; a paused run counts \
             until it is cancelled). Start this one when it has ended.",
            limits.runs_per_site
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_team_gets_its_limit_per_sliding_hour_and_teams_do_not_share_it() {
        let counters = TeamCounters::default();
        let (a, b) = (TeamId::new(1), TeamId::new(2));
        let start = Utc::now();
        for i in 0..3 {
            counters
                .take(a, Counted::Run, 3, start + Duration::minutes(i))
                .unwrap();
        }
        let refused = counters
            .take(a, Counted::Run, 3, start + Duration::minutes(10))
            .unwrap_err();
        assert!(
            refused.message.contains("3 runs in the last hour"),
            "{}",
            refused.message
        );
        assert!(
            refused.message.contains("about 51 minutes"),
            "{}",
            refused.message
        );
        // Another team, and another kind, are counted apart.
        counters.take(b, Counted::Run, 3, start).unwrap();
        counters.take(a, Counted::Preview, 3, start).unwrap();
        // An hour after the first, one more is allowed.
        counters
            .take(a, Counted::Run, 3, start + Duration::minutes(60))
            .unwrap();
        assert!(counters
            .take(a, Counted::Run, 3, start + Duration::minutes(60))
            .is_err());
    }

    #[test]
    fn a_site_takes_as_many_runs_at_once_as_allowed() {
        let limits = Limits::default();
        assert!(site_has_room(0, &limits, "https://acme.example").is_ok());
        let busy = site_has_room(1, &limits, "https://acme.example").unwrap_err();
        assert!(busy
            .message
            .contains("already going on against https://acme.example"));
        let two = Limits {
            runs_per_site: 2,
            ..limits
        };
        assert!(site_has_room(1, &two, "x").is_ok());
    }

    #[test]
    fn the_runs_of_one_site_never_add_up_to_more_than_its_requests() {
        for site_concurrency in 1..=20 {
            for runs_per_site in 1..=site_concurrency {
                let limits = Limits {
                    runs_per_site,
                    site_concurrency,
                    ..Limits::default()
                };
                assert!(limits.check().is_ok());
                let each = limits.requests_per_run();
                assert!(each >= 1);
                assert!(
                    each * runs_per_site <= site_concurrency,
                    "{runs_per_site} runs x {each} > {site_concurrency}"
                );
            }
        }
        assert_eq!(
            Limits::default().requests_per_run(),
            8,
            "one run alone uses all 8"
        );
        let three = Limits {
            runs_per_site: 3,
            ..Limits::default()
        };
        assert_eq!(three.requests_per_run(), 2);
        let too_many = Limits {
            runs_per_site: 9,
            ..Limits::default()
        };
        let refused = too_many.check().unwrap_err();
        assert!(refused.contains("--runs-per-site (9)"), "{refused}");
    }
}
