//! The Team page's retention section (owners only): the team's time zone, and the policy
//! "Prepare a deletion of the users deactivated for at least N days, every <weekday> at <time>".
//! A plain form the server reads; the policy never deletes, a person confirms what it prepares.

use crate::api::retention_page;
use crate::pages::parts::{error_text, ErrorBox};
use crate::pages::times::When;
use crate::team::{RetentionPage, WEEKDAY_NAMES};
use leptos::prelude::*;

/// A few zones offered as the owner types; any IANA name is accepted.
const SUGGESTED_ZONES: [&str; 10] = [
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Paris",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
];

/// A card of its own on the Team page; nothing at all for members who are not owners.
#[component]
pub fn TeamRetention() -> impl IntoView {
    let page = Resource::new(|| (), |_| retention_page());
    view! {
        <Suspense fallback=|| ()>
            {move || {
                page.get()
                    .map(|answer| match answer {
                        Ok(Some(page)) => retention_view(page).into_any(),
                        Ok(None) => ().into_any(),
                        Err(e) => view! { <ErrorBox message=error_text(&e) /> }.into_any(),
                    })
            }}
        </Suspense>
    }
}

fn retention_view(page: RetentionPage) -> impl IntoView {
    view! {
        <section class="card" id="retention" aria-labelledby="retention-heading">
            <h2 id="retention-heading">"Retention policy"</h2>
            <p>
                "Offboard can prepare, every week, a deletion of the users who have been deactivated on your site for a while. It lists your site once a day to see who is deactivated and since when. It never deletes by itself: the deletion waits in \"Waiting for you\" until someone confirms it."
            </p>
            {state_view(&page)}
            <form method="post" action="/team/retention" class="form">
                <div class="field">
                    <label for="retention-zone">"Team's time zone"</label>
                    <input
                        id="retention-zone"
                        name="time_zone"
                        type="text"
                        list="retention-zones"
                        required
                        autocomplete="off"
                        value=page.time_zone.clone()
                        aria-describedby="retention-zone-hint"
                    />
                    <datalist id="retention-zones">
                        {SUGGESTED_ZONES.map(|z| view! { <option value=z></option> }).collect_view()}
                    </datalist>
                    <p class="hint" id="retention-zone-hint">
                        "Its name in the IANA list, such as Europe/Berlin or America/New_York. The weekday and time below are read in it, summer time included."
                    </p>
                </div>
                <div class="field checkbox">
                    <input id="retention-on" name="enabled" type="checkbox" checked=page.enabled />
                    <label for="retention-on">"Prepare deletions on a schedule"</label>
                </div>
                <fieldset class="field">
                    <legend>"Prepare a deletion of the users deactivated for at least"</legend>
                    <label for="retention-days">"Days deactivated"</label>
                    <input
                        id="retention-days"
                        name="min_days"
                        type="number"
                        min="1"
                        max="365"
                        required
                        value=page.min_days.to_string()
                    />
                    <label for="retention-weekday">"Every"</label>
                    <select id="retention-weekday" name="weekday">
                        {WEEKDAY_NAMES
                            .iter()
                            .enumerate()
                            .map(|(n, name)| {
                                let selected = n as i64 == page.weekday;
                                view! { <option value=n.to_string() selected=selected>{*name}</option> }
                            })
                            .collect_view()}
                    </select>
                    <label for="retention-at">"At"</label>
                    <input id="retention-at" name="at" type="time" required value=page.at.clone() />
                </fieldset>
                <button type="submit" class="button">"Save retention policy"</button>
            </form>
        </section>
    }
}

/// What is saved: on (and when it next acts) or off, who saved it, what the listings saw.
fn state_view(page: &RetentionPage) -> impl IntoView {
    let state = match (&page.next_time, page.enabled) {
        (Some(next), true) => format!(
            "On: the next deletion of users deactivated for at least {} days is prepared {next}.",
            page.min_days
        ),
        _ => "Off: nothing is prepared.".to_string(),
    };
    let saved = page
        .saved_by
        .clone()
        .zip(page.saved_at.clone())
        .map(|(by, at)| {
            view! { <p class="hint">"Saved by " {by} " " <When at=at /> "."</p> }
        });
    let seen = page.enabled.then(|| {
        format!(
            "The daily listings saw {} deactivated users on your site, {} of them for at least {} days.",
            page.seen_deactivated, page.long_enough, page.min_days
        )
    });
    view! {
        <p data-testid="retention-state">{state}</p>
        {seen.map(|s| view! { <p data-testid="retention-seen">{s}</p> })}
        {saved}
    }
}
