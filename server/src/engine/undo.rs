//! The undo window's pure decisions: the date a "Deactivate now, delete after N days" run
//! names, when a reminder is due, and, at the date, which user is deleted and why each other
//! one is not (docs/undo-window.md).

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use model::deletion::SiteUser;

/// Days before the date the team is reminded, furthest first.
pub const REMINDER_DAYS: [i64; 2] = [3, 1];

/// How far ahead "Waiting for you" shows a coming deletion.
pub const SHOWN_DAYS_AHEAD: i64 = 7;

/// The date (`YYYY-MM-DD`) `days` days after `now`'s day in the team's time zone `zone`:
/// what the phrase names.
pub fn deletion_date(now: DateTime<Utc>, days: u16, zone: Tz) -> String {
    let day = now.with_timezone(&zone).date_naive();
    day.checked_add_days(Days::new(u64::from(days)))
        .unwrap_or(day)
        .format("%Y-%m-%d")
        .to_string()
}

/// The instant a date's deletion is due: the first moment of that day in the team's time zone
/// `zone` (where a clock change skips midnight, the first moment that exists). None for text
/// that is not a date.
pub fn due_at(delete_on: &str, zone: Tz) -> Option<DateTime<Utc>> {
    let day = NaiveDate::parse_from_str(delete_on, "%Y-%m-%d").ok()?;
    let first = (0..=3)
        .filter_map(|hour| day.and_hms_opt(hour, 0, 0))
        .find_map(|local| zone.from_local_datetime(&local).earliest())?;
    Some(first.with_timezone(&Utc))
}

/// The reminder due at `now` for a deletion due at `due`, given the smallest number of days
/// already reminded for: at most one, the nearest (a console down over both reminder days
/// sends only the 1-day one), and none once the date has come.
pub fn reminder_due(now: DateTime<Utc>, due: DateTime<Utc>, reminded: Option<i64>) -> Option<i64> {
    if now >= due {
        return None;
    }
    let left = due - now;
    REMINDER_DAYS
        .iter()
        .rev()
        .find(|&&days| left <= chrono::Duration::days(days))
        .copied()
        .filter(|&days| reminded.is_none_or(|done| days < done))
}

/// A user as the undo run deactivated them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptUser {
    pub account_id: String,
    pub emails: Vec<String>,
    /// Restored from the run's page before the date.
    pub restored: bool,
}

/// What the date decides for one user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
pub enum Verdict {
    /// Still deactivated, the same account and emails, not a moderator or admin: deleted.
    Deleted,
    /// Restored from the run's page, or reactivated at the site meanwhile.
    Restored,
    /// Another email, or a moderator or admin now.
    Changed,
    /// No longer on the site.
    Gone,
}

impl Verdict {
    /// The words the run's page and the trail use.
    pub fn words(self) -> &'static str {
        match self {
            Verdict::Deleted => "deleted at the date",
            Verdict::Restored => "restored — not deleted",
            Verdict::Changed => "changed since — not deleted",
            Verdict::Gone => "not on the site any more — not deleted",
        }
    }
}

/// What the date decides for `kept`, given the site's users now (`found`: the one with its
/// account id, if any).
pub fn verdict(kept: &KeptUser, found: Option<&SiteUser>) -> Verdict {
    if kept.restored {
        return Verdict::Restored;
    }
    let Some(user) = found else {
        return Verdict::Gone;
    };
    if user.active {
        return Verdict::Restored;
    }
    if user.role.is_privileged() || normalised(&user.emails) != normalised(&kept.emails) {
        return Verdict::Changed;
    }
    Verdict::Deleted
}

/// Emails compared as a set, ignoring case and surrounding space.
fn normalised(emails: &[String]) -> Vec<String> {
    let mut all: Vec<String> = emails.iter().map(|e| e.trim().to_lowercase()).collect();
    all.sort();
    all.dedup();
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use model::deletion::Role;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, day, hour, 0, 0).unwrap()
    }

    fn site_user(active: bool, role: Role, emails: &[&str]) -> SiteUser {
        SiteUser {
            id: "7".into(),
            external_id: None,
            user_name: None,
            display_name: None,
            emails: emails.iter().map(|e| e.to_string()).collect(),
            primary_email: None,
            active,
            role,
            created: None,
        }
    }

    #[test]
    fn the_date_is_the_days_after_today_in_the_team_s_zone() {
        let utc = Tz::UTC;
        assert_eq!(deletion_date(at(7, 23), 30, utc), "2027-01-06");
        assert_eq!(deletion_date(at(7, 0), 1, utc), "2026-12-08");
        assert_eq!(
            due_at("2027-01-06", utc),
            Some(Utc.with_ymd_and_hms(2027, 1, 6, 0, 0, 0).unwrap())
        );
        assert_eq!(due_at("6 January", utc), None);
        // 23:00 UTC on the 7th is already the 8th in Berlin, still the 7th in Los Angeles.
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let angeles: Tz = "America/Los_Angeles".parse().unwrap();
        assert_eq!(deletion_date(at(7, 23), 30, berlin), "2027-01-07");
        assert_eq!(deletion_date(at(7, 23), 30, angeles), "2027-01-06");
        // Due at the start of the day where the team is: 23:00 UTC the day before in Berlin
        // (winter), 08:00 UTC in Los Angeles.
        assert_eq!(
            due_at("2027-01-06", berlin),
            Some(Utc.with_ymd_and_hms(2027, 1, 5, 23, 0, 0).unwrap())
        );
        assert_eq!(
            due_at("2027-01-06", angeles),
            Some(Utc.with_ymd_and_hms(2027, 1, 6, 8, 0, 0).unwrap())
        );
        // Where the clock skips midnight (Santiago, 2026-09-06), the first hour that exists.
        let santiago: Tz = "America/Santiago".parse().unwrap();
        assert_eq!(
            due_at("2026-09-06", santiago),
            Some(Utc.with_ymd_and_hms(2026, 9, 6, 4, 0, 0).unwrap())
        );
    }

    #[test]
    fn reminders_come_three_days_and_one_day_before_each_once() {
        let due = at(20, 0);
        assert_eq!(reminder_due(at(10, 0), due, None), None);
        assert_eq!(reminder_due(at(17, 0), due, None), Some(3));
        assert_eq!(reminder_due(at(17, 1), due, Some(3)), None, "written once");
        assert_eq!(reminder_due(at(19, 0), due, Some(3)), Some(1));
        assert_eq!(reminder_due(at(19, 5), due, Some(1)), None);
        assert_eq!(
            reminder_due(at(19, 12), due, None),
            Some(1),
            "a console down on the third day sends only the nearest"
        );
        assert_eq!(
            reminder_due(at(20, 0), due, None),
            None,
            "the date itself deletes"
        );
    }

    #[test]
    fn only_the_same_deactivated_ordinary_user_is_deleted() {
        let kept = KeptUser {
            account_id: "7".into(),
            emails: vec!["Ana@Example.com".into(), "ana@old.example".into()],
            restored: false,
        };
        let same = site_user(
            false,
            Role::Registered,
            &["ana@old.example", "ana@example.com "],
        );
        assert_eq!(verdict(&kept, Some(&same)), Verdict::Deleted);
        let restored = KeptUser {
            restored: true,
            ..kept.clone()
        };
        assert_eq!(verdict(&restored, Some(&same)), Verdict::Restored);
        let active = site_user(
            true,
            Role::Registered,
            &["ana@example.com", "ana@old.example"],
        );
        assert_eq!(verdict(&kept, Some(&active)), Verdict::Restored);
        let moved = site_user(false, Role::Registered, &["ana@example.com"]);
        assert_eq!(verdict(&kept, Some(&moved)), Verdict::Changed);
        let promoted = site_user(
            false,
            Role::Moderator,
            &["ana@example.com", "ana@old.example"],
        );
        assert_eq!(verdict(&kept, Some(&promoted)), Verdict::Changed);
        assert_eq!(verdict(&kept, None), Verdict::Gone);
        assert_eq!(Verdict::Changed.words(), "changed since — not deleted");
        let name: &str = Verdict::Restored.into();
        assert_eq!(name, "restored");
    }
}
