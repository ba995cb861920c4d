//! The deletion engine: read the admin's file, resolve it against the site's users, preview,
//! run, report. Pure pieces take values and return values; only `listing`, `connection` and
//! `runner` talk to a [`crate::scim::ScimProvider`].

pub mod backoff;
pub mod connection;
pub mod earlier;
pub mod file_input;
pub mod job_state;
pub mod listing;
pub mod report;
pub mod resolve;
pub mod retention;
pub mod runner;
pub mod undo;

use chrono::{DateTime, Utc};
use std::sync::{Mutex, MutexGuard};

/// Locks a mutex even when a thread panicked while holding it: the bookkeeping it guards (a
/// run's counters, the watchers and runs a process keeps) must outlive one failed task. The
/// one definition for every floor that keeps such state.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// One user the run will act on, taken from a confirmed preview (re-checked at run start).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunTarget {
    pub account_id: String,
    /// The email the admin gave (or the user's primary email), for reports.
    pub email: Option<String>,
    /// Where the previous attempt got to: a target left `Sending` by a crash is settled with a
    /// GET before anything is re-sent.
    pub state: ItemState,
}

pub use model::deletion::ItemState;

/// Wall-clock time, behind a trait so reports and job records can be tested with a fixed clock.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
