//! When the site has stopped answering: the run-wide streak of requests that got no usable
//! answer, and the rule that turns it into a pause instead of a list of failed users.
//!
//! Decision: one user whose requests go unanswered is that user's problem (it fails after its
//! tries, as before). The *site* has stopped answering when, at the moment a user runs out of
//! tries, the last [`SITE_DOWN_AFTER`] requests of the whole run (all workers together) got no
//! usable answer (no connection, a timeout, 408/502/503/504) and they were for at least two
//! different users. Any answer the site gives (a success, a
//! refusal, a 429, a 401) ends the streak: a site that answers is up. Then the run pauses itself
//! and the users hit by the outage keep no result, so a resume takes them up again (each is
//! re-read with a GET before anything is sent; see `Rereads`).
//!
//! Two users, because one user's requests failing tells nothing about the site (a run of one
//! user, or the last user, fails as before). With several requests in flight (the console's
//! default) an outage reaches several users at once; a run sending one request at a time
//! records its first user of the outage as failed and pauses at the second.

use std::collections::BTreeSet;
use std::time::SystemTime;

/// Requests in a row without a usable answer, across the run, that make a site "down" (the
/// same number as one user's tries, so a site that is down pauses the run as the first user
/// gives up).
pub const SITE_DOWN_AFTER: u32 = 6;

/// The current streak of unanswered requests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Silence {
    /// Requests in a row that got no usable answer.
    pub in_a_row: u32,
    /// Up to two of the users those requests were for (two are enough to tell a site from a user).
    users: BTreeSet<String>,
    /// When the first of them went unanswered: when the site stopped answering.
    pub since: Option<SystemTime>,
}

impl Silence {
    /// The site answered something: the streak is over.
    pub fn heard(&mut self) {
        *self = Silence::default();
    }

    /// A request for `account_id` got no usable answer at `now`.
    pub fn unanswered(&mut self, account_id: &str, now: SystemTime) {
        self.in_a_row = self.in_a_row.saturating_add(1);
        self.since.get_or_insert(now);
        if self.users.len() < 2 {
            self.users.insert(account_id.to_string());
        }
    }

    /// Different users among the unanswered requests (counted up to two).
    pub fn users(&self) -> usize {
        self.users.len()
    }
}

/// True when the site has stopped answering: at least `threshold` requests in a row (at least
/// one) went unanswered, for two or more users.
pub fn site_stopped_answering(silence: &Silence, threshold: u32) -> bool {
    silence.in_a_row >= threshold.max(1) && silence.users() >= 2
}

/// The pause's words, with the time the site stopped answering: "your site stopped answering
/// at 12:20 UTC. Resume when it is back." (the page puts "Paused: " before it).
pub fn site_down_words(since: SystemTime) -> String {
    let at: chrono::DateTime<chrono::Utc> = since.into();
    format!(
        "your site stopped answering at {} UTC. Resume when it is back.",
        at.format("%H:%M")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn silence(requests: &[&str]) -> Silence {
        let mut s = Silence::default();
        for (i, id) in requests.iter().enumerate() {
            s.unanswered(id, at(1_000 + i as u64));
        }
        s
    }

    #[test]
    fn several_users_unanswered_in_a_row_is_a_site_down() {
        let s = silence(&["1", "2", "3", "1", "2", "3"]);
        assert!(site_stopped_answering(&s, SITE_DOWN_AFTER));
        assert_eq!(s.since, Some(at(1_000)), "the first unanswered request");
        assert_eq!(s.users(), 2, "counted up to two");
    }

    #[test]
    fn fewer_requests_than_the_threshold_are_not() {
        let s = silence(&["1", "2", "3", "4", "5"]);
        assert!(!site_stopped_answering(&s, SITE_DOWN_AFTER));
        assert!(!site_stopped_answering(
            &Silence::default(),
            SITE_DOWN_AFTER
        ));
    }

    #[test]
    fn one_users_trouble_is_not_a_site_down() {
        let s = silence(&["7"; 12]);
        assert!(!site_stopped_answering(&s, SITE_DOWN_AFTER));
        let mut s = s;
        s.unanswered("8", at(9_999));
        assert!(site_stopped_answering(&s, SITE_DOWN_AFTER));
        assert_eq!(s.since, Some(at(1_000)), "since the first of the streak");
    }

    #[test]
    fn any_answer_ends_the_streak() {
        let mut s = silence(&["1", "2", "3", "4", "5"]);
        s.heard();
        assert_eq!(s, Silence::default());
        s.unanswered("6", at(5_000));
        assert!(!site_stopped_answering(&s, SITE_DOWN_AFTER));
        assert_eq!(s.since, Some(at(5_000)), "a new streak has its own start");
    }

    #[test]
    fn nasty_thresholds_and_counts() {
        let two = silence(&["1", "2"]);
        // A threshold of 0 means 1: a streak is needed at all.
        assert!(!site_stopped_answering(&Silence::default(), 0));
        assert!(site_stopped_answering(&two, 0));
        assert!(!site_stopped_answering(&silence(&["1"]), 0));
        let mut long = Silence::default();
        for i in 0..10_000u32 {
            long.unanswered(&i.to_string(), at(7));
        }
        assert_eq!(
            long.users(),
            2,
            "the set stays small however long the outage"
        );
        assert!(site_stopped_answering(&long, 10_000));
        assert!(!site_stopped_answering(&long, 10_001));
        long.in_a_row = u32::MAX;
        long.unanswered("x", at(8));
        assert_eq!(long.in_a_row, u32::MAX, "saturates");
    }

    #[test]
    fn the_words_name_the_minute_in_utc() {
        // 2026-12-07 12:20:59 UTC
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_646_059);
        assert_eq!(
            site_down_words(t),
            "your site stopped answering at 12:20 UTC. Resume when it is back."
        );
    }
}
