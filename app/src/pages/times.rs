//! Times for people: every instant on a screen is a `<time datetime=…>` whose words are the
//! reader's own time zone, named ("7 Dec 2026, 13:17 CET"), never raw RFC 3339 text.
//!
//! Why this way (docs/glossary.md, "Times"): only the browser knows the reader's zone, and
//! the server keeps no zone database. So the server writes every time in UTC, named
//! ("7 Dec 2026, 12:17 UTC": true, if not local), inside `<time datetime=…>`, and the browser
//! rewrites the words with its own `Intl` formatter, the same options in both places:
//! - the hydrated app: [`When`] switches to the browser's words once the WASM has taken the
//!   page over (the `BrowserClock` context the app provides flips then);
//! - the screens the server renders whole: they load no WASM, only `/local-times.js`, a few
//!   lines that rewrite each `<time datetime>` the same way. Without script the UTC words
//!   stay, still naming their zone.
//!
//! Downloads (CSV, JSON) keep UTC and say so in their header.

use leptos::prelude::*;

/// Set by the hydrated app: true once the page runs in the browser, whose zone [`When`] then
/// uses. Absent on the server-rendered screens (their script does the same).
#[derive(Clone, Copy)]
pub struct BrowserClock(pub Signal<bool>);

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// An instant in UTC, to the minute (the screens show no seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct UtcMinute {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

fn digits(text: &str) -> Option<u32> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

fn days_in_month(year: i64, month: u32) -> u32 {
    let next = if month == 12 {
        days_from_civil(year + 1, 1, 1)
    } else {
        days_from_civil(year, month + 1, 1)
    };
    (next - days_from_civil(year, month, 1)) as u32
}

/// Reads `2026-12-07T12:17:31Z`, `…T12:17:31.123456+01:00` or `2026-12-07 12:17` (no zone:
/// the console's own stored times are UTC) into UTC. None for anything else.
fn parse(text: &str) -> Option<UtcMinute> {
    let t = text.trim();
    if !t.is_ascii() || t.len() < 16 {
        return None;
    }
    let (date, rest) = t.split_at(10);
    let mut parts = date.split('-');
    let (year, month, day) = (
        digits(parts.next()?)? as i64,
        digits(parts.next()?)?,
        digits(parts.next()?)?,
    );
    if date.as_bytes()[4] != b'-' || !(1..=12).contains(&month) {
        return None;
    }
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let hour = digits(rest.get(..2)?)?;
    let minute = digits(rest.get(3..5)?)?;
    if rest.as_bytes()[2] != b':' || hour > 23 || minute > 59 {
        return None;
    }
    // Seconds and their fraction, then the zone.
    let after = &rest[5..];
    let zone_at = after.find(['Z', 'z', '+', '-']).unwrap_or(after.len());
    let (seconds, zone) = after.split_at(zone_at);
    if !seconds.is_empty() {
        let s = seconds.strip_prefix(':')?;
        let (whole, fraction) = s.split_once('.').unwrap_or((s, "0"));
        if whole.len() != 2 || digits(whole)? > 60 || digits(fraction).is_none() {
            return None;
        }
    }
    let offset_minutes: i64 = match zone {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (h, m) = zone[1..].split_once(':')?;
            let (h, m) = (digits(h)?, digits(m)?);
            if h > 23 || m > 59 || zone.len() != 6 {
                return None;
            }
            sign * (h as i64 * 60 + m as i64)
        }
    };
    let local = days_from_civil(year, month, day) * 1440 + (hour * 60 + minute) as i64;
    let utc = local - offset_minutes;
    let (year, month, day) = civil_from_days(utc.div_euclid(1440));
    let of_day = utc.rem_euclid(1440) as u32;
    Some(UtcMinute {
        year,
        month,
        day,
        hour: of_day / 60,
        minute: of_day % 60,
    })
}

/// "7 Dec 2026, 12:17 UTC": the words the server writes, and the browser's own for a reader
/// in UTC. Text that is no time is shown as it is.
pub fn utc_words(rfc3339: &str) -> String {
    match parse(rfc3339) {
        Some(t) => format!(
            "{} {} {}, {:02}:{:02} UTC",
            t.day,
            MONTHS[(t.month - 1) as usize],
            t.year,
            t.hour,
            t.minute
        ),
        None => rfc3339.trim().to_string(),
    }
}

/// The words of the browser's own zone: the `Intl` options `/local-times.js` uses too
/// (public/local-times.js). None when the browser cannot read the time.
#[cfg(feature = "hydrate")]
fn browser_words(rfc3339: &str) -> Option<String> {
    use wasm_bindgen::JsValue;
    let date = js_sys::Date::new(&JsValue::from_str(rfc3339.trim()));
    if date.get_time().is_nan() {
        return None;
    }
    let options = js_sys::Object::new();
    for (key, value) in [
        ("day", "numeric"),
        ("month", "short"),
        ("year", "numeric"),
        ("hour", "2-digit"),
        ("minute", "2-digit"),
        ("hourCycle", "h23"),
        ("timeZoneName", "short"),
    ] {
        js_sys::Reflect::set(&options, &key.into(), &value.into()).ok()?;
    }
    date.to_locale_string("en-GB", &options).as_string()
}

/// The words for `rfc3339` now: the browser's zone once the app runs, UTC before.
fn words_now(rfc3339: &str, in_browser: bool) -> String {
    #[cfg(feature = "hydrate")]
    if in_browser {
        if let Some(words) = browser_words(rfc3339) {
            return words;
        }
    }
    let _ = in_browser;
    utc_words(rfc3339)
}

/// One instant, in the reader's zone (see the module's comment).
#[component]
pub fn When(#[prop(into)] at: String) -> impl IntoView {
    let clock = use_context::<BrowserClock>();
    let datetime = at.clone();
    let words = move || words_now(&at, clock.is_some_and(|c| c.0.get()));
    view! { <time datetime=datetime>{words}</time> }
}

/// A sentence with times in it, so each time can be a [`When`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Time(String),
}

/// A sentence of pieces, the times in the reader's zone.
pub fn sentence(pieces: Vec<Piece>) -> impl IntoView {
    pieces
        .into_iter()
        .map(|p| match p {
            Piece::Text(t) => t.into_any(),
            Piece::Time(at) => view! { <When at=at /> }.into_any(),
        })
        .collect_view()
}

/// The sentence as the server first writes it (times in UTC), for the tests.
#[cfg(test)]
pub fn sentence_text(pieces: &[Piece]) -> String {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Text(t) => t.clone(),
            Piece::Time(at) => utc_words(at),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_times_read_as_utc_words_with_the_zone_named() {
        assert_eq!(utc_words("2026-12-07T12:17:31Z"), "7 Dec 2026, 12:17 UTC");
        assert_eq!(
            utc_words("2026-12-07T12:17:31.123456Z"),
            "7 Dec 2026, 12:17 UTC"
        );
        assert_eq!(
            utc_words(" 2026-01-01T00:00:00+00:00 "),
            "1 Jan 2026, 00:00 UTC"
        );
        assert_eq!(utc_words("2026-12-07 12:15"), "7 Dec 2026, 12:15 UTC");
    }

    #[test]
    fn offsets_move_the_time_across_days_months_and_years() {
        assert_eq!(
            utc_words("2026-12-07T13:17:00+01:00"),
            "7 Dec 2026, 12:17 UTC"
        );
        assert_eq!(
            utc_words("2027-01-01T00:30:00+01:00"),
            "31 Dec 2026, 23:30 UTC"
        );
        assert_eq!(
            utc_words("2026-02-28T22:00:00-05:30"),
            "1 Mar 2026, 03:30 UTC"
        );
        assert_eq!(
            utc_words("2024-02-28T23:00:00-02:00"),
            "29 Feb 2024, 01:00 UTC"
        );
        assert_eq!(
            utc_words("1970-01-01T00:00:00+00:01"),
            "31 Dec 1969, 23:59 UTC"
        );
    }

    #[test]
    fn text_that_is_no_time_is_shown_as_it_is() {
        for text in [
            "yesterday",
            "",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-12-07T24:00:00Z",
            "2026-12-07T12:60:00Z",
            "2026-12-07T12:17:31+0100",
            "2026-12-07T12:17:31+25:00",
            "2026-12-07T12:17:xxZ",
            "2026-12-07X12:17:31Z",
            "ééééééééééééééééééééé",
            "+2026-12-07T12:17Z",
            "2026-1-07T12:17:31Z",
        ] {
            assert_eq!(utc_words(text), text.trim(), "{text}");
        }
    }

    #[test]
    fn day_counts_round_trip() {
        for days in [-800_000, -1, 0, 1, 59, 365, 10_957, 20_794, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(1900, 2), 28);
    }

    #[test]
    fn sentences_keep_their_times_as_times() {
        let pieces = vec![
            Piece::Text("Waiting since ".into()),
            Piece::Time("2026-12-07T12:00:00Z".into()),
            Piece::Text(".".into()),
        ];
        assert_eq!(
            sentence_text(&pieces),
            "Waiting since 7 Dec 2026, 12:00 UTC."
        );
    }
}
