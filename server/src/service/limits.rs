//! Per-team limits: how many previews and runs a team may make in an hour, and how many runs
//! may go on at once against one site. They keep one team (or one stuck script) from making
//! the console list a site over and over or hammer a site with parallel runs.
//!
//! Decisions: previews and runs per hour are counted in the database over a sliding hour (one
//! row each, table `team_usage`), so every replica counts the same hour and a restart forgets
//! nothing; two requests at the very same moment may both pass the count (a rate limit, not a
//! safety rule, so no lock). Runs per site are counted from the database too (every team's
//! unfinished runs, in the transaction that writes a run). A revision counts as a preview: it
//! re-resolves the whole list, and so does a preview that fails.
//!
//! A site's request limit is shared by splitting it, not by asking a shared counter before
//! each request: every run gets `site_concurrency / runs_per_site` requests in flight, and at
//! most `runs_per_site` runs go on against a site at once (all replicas together, checked in
//! the transaction that writes the run), so the site never sees more than `site_concurrency`
//! at once from the whole console. A counter in the database would cost a round trip per
//! request and still need leases for replicas that die holding a slot; the price of the split
//! is that a run alone on its site uses only its share when `runs_per_site` is above 1.

use crate::storage::{Storage, StorageError};
use app::backend::ConsoleError;
use app::ids::TeamId;
use chrono::{DateTime, Duration, Utc};
use model::Named;

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

/// What is counted per team; the database names it by its `Named` key (`preview`, `run`).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[strum(serialize_all = "lowercase")]
pub enum Counted {
    Preview,
    Run,
}

/// Refuses one more `what` when the team has had `limit` of them in the hour before `now`
/// (`used` of them, the oldest at `oldest`), saying when the next one will be allowed.
pub fn hourly_room(
    what: Counted,
    used: usize,
    oldest: Option<DateTime<Utc>>,
    limit: u32,
    now: DateTime<Utc>,
) -> Result<(), ConsoleError> {
    if used < limit as usize {
        return Ok(());
    }
    let wait = oldest
        .map(|oldest| (oldest + Duration::hours(1) - now).num_minutes() + 1)
        .unwrap_or(60)
        .clamp(1, 60);
    let (things, flag) = match what {
        Counted::Preview => ("previews", "--previews-per-hour"),
        Counted::Run => ("runs", "--runs-per-hour"),
    };
    Err(ConsoleError::new(format!(
        "Your team has made {limit} {things} in the last hour, the most this console allows. \
         Try again in about {wait} minutes (the console's operator can raise the limit with \
         {flag})."
    )))
}

/// Refuses one more `what` for `team` past its hourly `limit`. Counted in the database, so
/// every replica counts the same hour and a restart forgets nothing.
pub async fn check_hourly(
    storage: &dyn Storage,
    team: TeamId,
    what: Counted,
    limit: u32,
    now: DateTime<Utc>,
) -> Result<(), ConsoleError> {
    let (used, oldest) = storage
        .usage_since(team, what.key(), now - Duration::hours(1))
        .await?;
    hourly_room(what, used, oldest, limit, now)
}

/// Counts one more `what` for `team` at `now` (after [`check_hourly`] allowed it: a run is
/// counted once it has started, so a mistyped phrase costs nothing).
pub async fn count_hourly(
    storage: &dyn Storage,
    team: TeamId,
    what: Counted,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    storage
        .record_usage(team, what.key(), now, now - Duration::hours(1))
        .await
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
    fn counted_names_are_pinned() {
        model::names::assert_names::<Counted>(&["preview", "run"]);
    }

    #[test]
    fn the_hour_allows_the_limit_then_says_when_the_next_one_is_allowed() {
        let start = Utc::now();
        assert!(hourly_room(Counted::Run, 0, None, 3, start).is_ok());
        assert!(hourly_room(Counted::Run, 2, Some(start), 3, start).is_ok());
        let refused = hourly_room(
            Counted::Run,
            3,
            Some(start),
            3,
            start + Duration::minutes(10),
        )
        .unwrap_err();
        assert!(
            refused.message.contains("3 runs in the last hour")
                && refused.message.contains("about 51 minutes")
                && refused.message.contains("--runs-per-hour"),
            "{}",
            refused.message
        );
        let previews = hourly_room(Counted::Preview, 5, None, 5, start).unwrap_err();
        assert!(previews.message.contains("5 previews") && previews.message.contains("about 60"));
        // A clock that went back never makes the wait negative or longer than the hour.
        let odd =
            hourly_room(Counted::Run, 1, Some(start + Duration::hours(3)), 1, start).unwrap_err();
        assert!(odd.message.contains("about 60 minutes"), "{}", odd.message);
        let late =
            hourly_room(Counted::Run, 1, Some(start - Duration::hours(3)), 1, start).unwrap_err();
        assert!(late.message.contains("about 1 minutes"), "{}", late.message);
    }

    /// The counts live in the database: a second console on the same file (a replica, or the
    /// same console after a restart) sees them; teams and kinds are counted apart.
    #[tokio::test]
    async fn every_console_on_the_database_counts_the_same_hour() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("offboard.db").display());
        let first = crate::storage::open(&url).await.unwrap().storage;
        let a = TeamId::BUILT_IN;
        let b = first.create_team("Support").await.unwrap().id;
        // Whole seconds: the database keeps microseconds.
        let start = chrono::SubsecRound::trunc_subsecs(Utc::now(), 0) - Duration::minutes(30);
        // A run of team `a` at `at`, as starting one checks and counts it (3 an hour).
        let run_at = async |storage: &dyn Storage, at: DateTime<Utc>| {
            check_hourly(storage, a, Counted::Run, 3, at).await.unwrap();
            count_hourly(storage, a, Counted::Run, at).await.unwrap();
        };
        for i in 0..3 {
            run_at(first.as_ref(), start + Duration::minutes(i)).await;
        }
        let second = crate::storage::open(&url).await.unwrap().storage;
        let now = start + Duration::minutes(10);
        let refused = check_hourly(second.as_ref(), a, Counted::Run, 3, now)
            .await
            .unwrap_err();
        assert!(
            refused.message.contains("about 51 minutes"),
            "{}",
            refused.message
        );
        assert!(check_hourly(second.as_ref(), b, Counted::Run, 3, now)
            .await
            .is_ok());
        assert!(check_hourly(second.as_ref(), a, Counted::Preview, 3, now)
            .await
            .is_ok());
        // An hour after the first, one more is allowed; the old rows are forgotten as it counts.
        let later = start + Duration::minutes(60);
        run_at(second.as_ref(), later).await;
        assert!(check_hourly(first.as_ref(), a, Counted::Run, 3, later)
            .await
            .is_err());
        let (kept, _) = first
            .usage_since(a, "run", later - Duration::days(1))
            .await
            .unwrap();
        assert_eq!(kept, 3, "the one from more than an hour before is gone");
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
