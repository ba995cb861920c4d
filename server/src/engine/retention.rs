//! The retention policy's pure rules: reading the owner's weekday, time and time zone, the next
//! time the policy prepares a deletion (in the team's zone, across daylight-saving changes),
//! and "deactivated for at least N days". No clock and no storage: the service passes times in.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono::{Timelike, Weekday};
use chrono_tz::Tz;

/// The fewest and most days a policy may ask a user to have been deactivated.
pub const MIN_DAYS: std::ops::RangeInclusive<i64> = 1..=365;

/// The time zone a team has until an owner chooses one.
pub const DEFAULT_ZONE: &str = "UTC";

/// The weekdays in the order the Team page lists them, with the key each is stored by
/// (`Weekday::num_days_from_monday`).
pub const WEEKDAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

/// When a policy prepares a deletion: every `weekday` at `at`, read in `zone`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub zone: Tz,
    pub weekday: Weekday,
    pub at: NaiveTime,
}

/// The IANA zone `name` ("Europe/Berlin"), or the admin's words for a name that is not one.
pub fn parse_zone(name: &str) -> Result<Tz, String> {
    let name = name.trim();
    if name.is_empty() {
        return Ok(Tz::UTC);
    }
    name.parse::<Tz>().map_err(|_| {
        format!(
            "\"{name}\" is not a time zone Offboard knows: use its IANA name, such as Europe/Berlin or America/New_York."
        )
    })
}

/// A weekday from its English name or first three letters ("monday", "Mon"), or its stored
/// number (0 = Monday).
pub fn parse_weekday(text: &str) -> Option<Weekday> {
    let text = text.trim().to_ascii_lowercase();
    if let Ok(n) = text.parse::<usize>() {
        return WEEKDAYS.get(n).copied();
    }
    WEEKDAYS.into_iter().find(|day| {
        let name = weekday_name(*day).to_ascii_lowercase();
        text.len() >= 3 && name.starts_with(&text)
    })
}

/// A time of day written `HH:MM` (24-hour), as a browser's time field sends it.
pub fn parse_time(text: &str) -> Option<NaiveTime> {
    let (hours, minutes) = text.trim().split_once(':')?;
    let shaped =
        |part: &str| (1..=2).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit());
    if !shaped(hours) || minutes.len() != 2 || !shaped(minutes) {
        return None;
    }
    NaiveTime::from_hms_opt(hours.parse().ok()?, minutes.parse().ok()?, 0)
}

/// The English name the Team page shows.
pub fn weekday_name(day: Weekday) -> &'static str {
    model::team::WEEKDAY_NAMES[day.num_days_from_monday() as usize]
}

/// Minutes after midnight, as stored.
pub fn minute_of_day(at: NaiveTime) -> i64 {
    i64::from(at.hour()) * 60 + i64::from(at.minute())
}

/// The time `minute` minutes after midnight (None outside one day).
pub fn time_of_minute(minute: i64) -> Option<NaiveTime> {
    let minute = u32::try_from(minute).ok()?;
    NaiveTime::from_hms_opt(minute / 60, minute % 60, 0)
}

impl Schedule {
    /// The first time strictly after `after` that the schedule names, as an instant. A local
    /// time that a change to summer time skips (02:30 on the night clocks go from 02:00 to
    /// 03:00) is read as the same wall-clock distance past the change (03:30); one that a
    /// change to winter time repeats is the first of the two. So it fires once a week, always.
    pub fn next_after(&self, after: DateTime<Utc>) -> DateTime<Utc> {
        let start = after.with_timezone(&self.zone).date_naive();
        // Eight days always hold the weekday once more after today; the ninth covers a time
        // today that already passed.
        for offset in 0..9 {
            let Some(day) = start.checked_add_signed(Duration::days(offset)) else {
                break;
            };
            if day.weekday() != self.weekday {
                continue;
            }
            let instant = self.instant_on(day);
            if instant > after {
                return instant;
            }
        }
        // Unreachable for any real date; a week later keeps the policy going if it ever were.
        after + Duration::weeks(1)
    }

    /// The instant of the schedule's time on the local date `day`.
    fn instant_on(&self, day: NaiveDate) -> DateTime<Utc> {
        let local = day.and_time(self.at);
        match self.zone.from_local_datetime(&local) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
            LocalResult::None => {
                // In a gap: the offset before the gap, applied to the wall-clock time, lands
                // past it by as much as the time was into it.
                let before = self
                    .zone
                    .offset_from_utc_datetime(&(local - Duration::hours(3)));
                let naive_utc = local - Duration::seconds(i64::from(offset_seconds(&before)));
                Utc.from_utc_datetime(&naive_utc)
            }
        }
    }
}

fn offset_seconds(offset: &<Tz as TimeZone>::Offset) -> i32 {
    use chrono::Offset;
    offset.fix().local_minus_utc()
}

/// Whether a user first seen deactivated at `since` has been deactivated for at least
/// `min_days` whole days at `now` (a day is 24 hours).
pub fn deactivated_long_enough(since: DateTime<Utc>, now: DateTime<Utc>, min_days: i64) -> bool {
    now - since >= Duration::days(min_days)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .expect("a real time")
    }

    fn berlin(weekday: Weekday, hour: u32, minute: u32) -> Schedule {
        Schedule {
            zone: chrono_tz::Europe::Berlin,
            weekday,
            at: NaiveTime::from_hms_opt(hour, minute, 0).expect("a time"),
        }
    }

    #[test]
    fn the_next_time_is_the_weekday_at_the_local_time() {
        // Tuesday 8 Dec 2026, 10:00 UTC: Monday 09:00 Berlin (UTC+1 in winter) is next week.
        let s = berlin(Weekday::Mon, 9, 0);
        assert_eq!(
            s.next_after(utc(2026, 12, 8, 10, 0)),
            utc(2026, 12, 14, 8, 0)
        );
        // Later the same day in the zone: today.
        let s = berlin(Weekday::Tue, 18, 30);
        assert_eq!(
            s.next_after(utc(2026, 12, 8, 10, 0)),
            utc(2026, 12, 8, 17, 30)
        );
        // Exactly at the time: strictly after, so the next week.
        assert_eq!(
            s.next_after(utc(2026, 12, 8, 17, 30)),
            utc(2026, 12, 15, 17, 30)
        );
    }

    #[test]
    fn summer_and_winter_time_keep_the_wall_clock_time() {
        // Berlin goes to summer time on Sunday 28 March 2027 (02:00 → 03:00).
        let s = berlin(Weekday::Mon, 9, 0);
        assert_eq!(s.next_after(utc(2027, 3, 22, 9, 0)), utc(2027, 3, 29, 7, 0));
        assert_eq!(s.next_after(utc(2027, 3, 20, 0, 0)), utc(2027, 3, 22, 8, 0));
        // And back on Sunday 31 October 2027.
        assert_eq!(
            s.next_after(utc(2027, 10, 26, 0, 0)),
            utc(2027, 11, 1, 8, 0)
        );
    }

    #[test]
    fn a_time_the_change_skips_or_repeats_fires_once() {
        // 02:30 on 28 March 2027 does not exist in Berlin: read as 03:30 summer time.
        let skipped = berlin(Weekday::Sun, 2, 30);
        assert_eq!(
            skipped.next_after(utc(2027, 3, 27, 0, 0)),
            utc(2027, 3, 28, 1, 30)
        );
        // 02:30 on 31 October 2027 happens twice: the first (summer time, UTC+2).
        let repeated = berlin(Weekday::Sun, 2, 30);
        let first = repeated.next_after(utc(2027, 10, 30, 0, 0));
        assert_eq!(first, utc(2027, 10, 31, 0, 30));
        assert_eq!(repeated.next_after(first), utc(2027, 11, 7, 1, 30));
    }

    #[test]
    fn a_zone_east_of_utc_can_be_a_day_ahead() {
        // Monday 00:15 in Tokyo is Sunday 15:15 UTC.
        let s = Schedule {
            zone: chrono_tz::Asia::Tokyo,
            weekday: Weekday::Mon,
            at: NaiveTime::from_hms_opt(0, 15, 0).expect("a time"),
        };
        let next = s.next_after(utc(2026, 12, 8, 0, 0));
        assert_eq!(next, utc(2026, 12, 13, 15, 15));
        assert_eq!(next.weekday(), Weekday::Sun);
    }

    #[test]
    fn weekdays_times_and_zones_are_read_or_refused() {
        assert_eq!(parse_weekday("monday"), Some(Weekday::Mon));
        assert_eq!(parse_weekday(" Fri "), Some(Weekday::Fri));
        assert_eq!(parse_weekday("6"), Some(Weekday::Sun));
        for refused in ["", "mo", "7", "funday", "-1"] {
            assert_eq!(parse_weekday(refused), None, "{refused:?}");
        }
        assert_eq!(parse_time("09:05"), NaiveTime::from_hms_opt(9, 5, 0));
        assert_eq!(parse_time("23:59"), NaiveTime::from_hms_opt(23, 59, 0));
        for refused in [
            "24:00", "9", "09:5", "09:60", "aa:bb", "", "-1:00", "09:05:00",
        ] {
            assert_eq!(parse_time(refused), None, "{refused:?}");
        }
        assert_eq!(parse_zone("Europe/Berlin"), Ok(chrono_tz::Europe::Berlin));
        assert_eq!(parse_zone(""), Ok(Tz::UTC));
        let refused = parse_zone("Mars/Olympus").expect_err("not a zone");
        assert!(refused.contains("IANA name"), "{refused}");
        assert_eq!(
            time_of_minute(minute_of_day(NaiveTime::from_hms_opt(7, 45, 0).expect("t"))),
            NaiveTime::from_hms_opt(7, 45, 0)
        );
        assert_eq!(time_of_minute(1440), None);
        assert_eq!(time_of_minute(-1), None);
    }

    #[test]
    fn at_least_n_days_counts_whole_days() {
        let since = utc(2026, 12, 1, 12, 0);
        assert!(!deactivated_long_enough(
            since,
            utc(2026, 12, 31, 11, 59),
            30
        ));
        assert!(deactivated_long_enough(since, utc(2026, 12, 31, 12, 0), 30));
        assert!(deactivated_long_enough(since, utc(2027, 1, 1, 0, 0), 30));
    }
}
