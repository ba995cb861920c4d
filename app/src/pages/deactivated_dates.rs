//! The dates the Choose page's deactivated list shows: when an account was created, and when
//! the retention policy's daily listings first saw it deactivated ("Deactivated since"), with
//! the box that keeps only those deactivated for at least the policy's days.

use crate::team::DeactivatedSince;
use leptos::prelude::*;
use std::collections::HashMap;

/// The day an account was created, from SCIM `meta.created` (RFC 3339); "—" when unknown.
pub fn created_date(created: Option<&str>) -> String {
    match created.map(str::trim) {
        Some(text) if text.len() >= 10 && text.is_char_boundary(10) => text[..10].to_string(),
        Some(text) if !text.is_empty() => text.to_string(),
        _ => "—".to_string(),
    }
}

/// What the list knows of each user's deactivation: (the day first seen, long enough).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sightings {
    pub min_days: Option<i64>,
    by_id: HashMap<String, (String, bool)>,
}

impl From<DeactivatedSince> for Sightings {
    fn from(seen: DeactivatedSince) -> Sightings {
        Sightings {
            min_days: seen.min_days,
            by_id: seen
                .users
                .into_iter()
                .map(|u| (u.account_id, (created_date(Some(&u.since)), u.long_enough)))
                .collect(),
        }
    }
}

impl Sightings {
    /// "2026-11-02", or "not seen yet" for a user no daily listing saw deactivated.
    pub fn since(&self, id: &str) -> String {
        self.by_id
            .get(id)
            .map_or_else(|| "not seen yet".to_string(), |(day, _)| day.clone())
    }

    /// Whether `id` stays in the list when only those deactivated long enough are kept.
    pub fn kept(&self, id: &str, only_long_enough: bool) -> bool {
        !only_long_enough || self.by_id.get(id).is_some_and(|(_, long)| *long)
    }
}

/// The box, shown only while the team's retention policy is on.
#[component]
pub fn LongEnoughFilter(sightings: Signal<Sightings>, only: RwSignal<bool>) -> impl IntoView {
    move || {
        sightings.with(|s| s.min_days).map(|days| {
            view! {
                <div class="field checkbox">
                    <input
                        id="only-long-enough"
                        type="checkbox"
                        prop:checked=move || only.get()
                        on:change=move |ev| only.set(event_target_checked(&ev))
                    />
                    <label for="only-long-enough">
                        {format!("Only users deactivated for at least {days} days (the retention policy's days)")}
                    </label>
                </div>
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::team::DeactivatedSinceView;

    #[test]
    fn created_dates_show_the_day_or_a_dash() {
        assert_eq!(created_date(Some("2024-03-05T10:20:30Z")), "2024-03-05");
        assert_eq!(created_date(Some(" 2024-03-05 ")), "2024-03-05");
        assert_eq!(created_date(Some("yesterday")), "yesterday");
        assert_eq!(created_date(Some("2024-03-0é5T")), "2024-03-0é5T");
        assert_eq!(created_date(Some("")), "—");
        assert_eq!(created_date(None), "—");
    }

    #[test]
    fn only_users_seen_long_enough_are_kept_when_asked() {
        let seen = Sightings::from(DeactivatedSince {
            min_days: Some(30),
            users: vec![
                DeactivatedSinceView {
                    account_id: "1".into(),
                    since: "2026-10-01T09:00:00+00:00".into(),
                    long_enough: true,
                },
                DeactivatedSinceView {
                    account_id: "2".into(),
                    since: "2026-12-01T09:00:00+00:00".into(),
                    long_enough: false,
                },
            ],
        });
        assert_eq!(seen.since("1"), "2026-10-01");
        assert_eq!(seen.since("3"), "not seen yet");
        assert!(seen.kept("1", true) && !seen.kept("2", true) && !seen.kept("3", true));
        assert!(seen.kept("2", false) && seen.kept("3", false));
    }
}
