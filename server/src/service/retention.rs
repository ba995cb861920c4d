//! The retention policy (docs/retention.md): an owner's time zone and policy on the Team page,
//! the daily listing of the team's site that records who it found deactivated and since when,
//! and, at the policy's due time, a delete preview of those deactivated long enough, put in
//! "Waiting for you" with a notification. It never deletes: a person confirms the preview.
//!
//! Every console process runs the worker ([`spawn`]); each due listing and each due time is
//! acted on by the one process whose conditional update moved it on (storage/retention.rs),
//! compared with this console's own clock.

use super::desks::{OwnerDesk, ViewerDesk};
use super::people::Actor;
use super::sites::{list_deactivated, open_site};
use super::Console;
use crate::engine::retention::{
    deactivated_long_enough, minute_of_day, parse_time, parse_weekday, parse_zone, time_of_minute,
    Schedule, MIN_DAYS, WEEKDAYS,
};
use crate::storage::{DueTime, NewAuditEntry, PreparedDeletion, RetentionPolicyRecord, Sighting};
use app::backend::ConsoleError;
use app::ids::TeamId;
use app::model::Action;
use app::team::{DeactivatedSince, DeactivatedSinceView, PreparedDeletionView, RetentionPage};
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use model::audit::AuditAction;
use serde_json::json;
use std::sync::Arc;

/// How often the site of a team with a policy on is listed.
pub const LISTING_EVERY_HOURS: i64 = 24;
/// How often the worker looks for what is due (a cheap indexed read).
const POLL: std::time::Duration = std::time::Duration::from_secs(5);

/// What an owner typed in the Team page's retention form.
#[derive(Clone, Debug, Default)]
pub struct RetentionChoice {
    pub time_zone: String,
    pub enabled: bool,
    pub min_days: String,
    pub weekday: String,
    pub at: String,
}

/// The schedule a stored policy names; None when the stored zone or time is damaged.
fn schedule_of(policy: &RetentionPolicyRecord) -> Option<Schedule> {
    Some(Schedule {
        zone: parse_zone(&policy.time_zone).ok()?,
        weekday: *WEEKDAYS.get(usize::try_from(policy.weekday).ok()?)?,
        at: time_of_minute(policy.at_minute)?,
    })
}

/// "Monday 14 Dec 2026, 09:00 Europe/Berlin": a time in the team's zone, named.
fn in_zone(at: DateTime<Utc>, zone: Tz) -> String {
    format!(
        "{} {}",
        at.with_timezone(&zone).format("%A %-d %b %Y, %H:%M"),
        zone.name()
    )
}

/// The policy the choice asks for, or the admin's words for what is wrong with it.
fn checked(choice: &RetentionChoice) -> Result<(Schedule, i64), ConsoleError> {
    let zone = parse_zone(&choice.time_zone).map_err(ConsoleError::new)?;
    let weekday = parse_weekday(&choice.weekday)
        .ok_or_else(|| ConsoleError::new("Choose the weekday the deletion is prepared on."))?;
    let at = parse_time(&choice.at)
        .ok_or_else(|| ConsoleError::new("Write the time as hours and minutes, such as 09:00."))?;
    let min_days = choice
        .min_days
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|n| MIN_DAYS.contains(n))
        .ok_or_else(|| {
            ConsoleError::new(format!(
                "The number of days is a whole number from {} to {}.",
                MIN_DAYS.start(),
                MIN_DAYS.end()
            ))
        })?;
    Ok((Schedule { zone, weekday, at }, min_days))
}

impl OwnerDesk<'_> {
    /// The Team page's retention section: the policy as saved (or the form's defaults), when
    /// it next acts, and what the daily listings saw.
    pub async fn retention_page(&self) -> Result<RetentionPage, ConsoleError> {
        let storage = &self.console.storage;
        let Some(policy) = storage.retention_policy(self.team).await? else {
            return Ok(RetentionPage::default());
        };
        let now = self.console.clock.now();
        let seen = self.sightings_here().await?;
        let long_enough = seen
            .iter()
            .filter(|s| deactivated_long_enough(s.first_seen_at, now, policy.min_days))
            .count();
        let next_time = schedule_of(&policy)
            .filter(|_| policy.enabled)
            .map(|s| in_zone(policy.next_fire_at, s.zone));
        Ok(RetentionPage {
            time_zone: policy.time_zone.clone(),
            enabled: policy.enabled,
            min_days: policy.min_days,
            weekday: policy.weekday,
            at: time_of_minute(policy.at_minute)
                .map(|t| t.format("%H:%M").to_string())
                .unwrap_or_default(),
            next_time,
            saved_by: Some(policy.saved_by),
            saved_at: Some(policy.saved_at.to_rfc3339()),
            seen_deactivated: seen.len() as u64,
            long_enough: long_enough as u64,
        })
    }

    /// Saves the team's zone and policy; returns the words the page confirms it with. Turning
    /// it on lists the site within moments, then daily.
    pub async fn save_retention(&self, choice: &RetentionChoice) -> Result<String, ConsoleError> {
        let (schedule, min_days) = checked(choice)?;
        let now = self.console.clock.now();
        let next_fire_at = schedule.next_after(now);
        let by = self.actor_name().await;
        let policy = RetentionPolicyRecord {
            time_zone: schedule.zone.name().to_string(),
            enabled: choice.enabled,
            min_days,
            weekday: i64::from(schedule.weekday.num_days_from_monday()),
            at_minute: minute_of_day(schedule.at),
            next_fire_at,
            next_listing_at: now,
            saved_by: by.clone(),
            saved_at: now,
        };
        let audit = NewAuditEntry {
            actor: by,
            action: AuditAction::TeamSettingsChanged,
            target: None,
            details: json!({
                "retention_policy": if choice.enabled { "on" } else { "off" },
                "time_zone": policy.time_zone,
                "min_days": min_days,
                "weekday": policy.weekday,
                "at": schedule.at.format("%H:%M").to_string(),
            }),
        };
        self.console
            .storage
            .save_retention_policy(self.team, &policy, &audit)
            .await?;
        Ok(if choice.enabled {
            format!(
                "The retention policy is on: the next deletion of users deactivated for at least {min_days} days is prepared {}. Nobody is deleted until a person confirms it.",
                in_zone(next_fire_at, schedule.zone)
            )
        } else {
            format!(
                "The retention policy is off. The team's time zone is {}.",
                schedule.zone.name()
            )
        })
    }
}

impl ViewerDesk<'_> {
    /// The deletions the policy prepared that no run started from (none for a viewer, who
    /// cannot confirm one).
    pub async fn prepared_deletions(&self) -> Result<Vec<PreparedDeletionView>, ConsoleError> {
        if self.role < app::team::Role::Operator {
            return Ok(Vec::new());
        }
        let prepared = self.console.storage.prepared_deletions(self.team).await?;
        Ok(prepared
            .into_iter()
            .map(|p| PreparedDeletionView {
                preview_id: p.preview_id,
                users: u64::try_from(p.users).unwrap_or(0),
                made_at: p.made_at.to_rfc3339(),
            })
            .collect())
    }

    /// When the daily listings first saw each user of the site deactivated, and whether for
    /// at least the policy's days (the Choose page's "Deactivated since").
    pub async fn deactivated_since(&self) -> Result<DeactivatedSince, ConsoleError> {
        let policy = self.console.storage.retention_policy(self.team).await?;
        let min_days = policy.filter(|p| p.enabled).map(|p| p.min_days);
        let now = self.console.clock.now();
        let users = self
            .sightings_here()
            .await?
            .into_iter()
            .map(|s| DeactivatedSinceView {
                long_enough: min_days
                    .is_some_and(|days| deactivated_long_enough(s.first_seen_at, now, days)),
                account_id: s.account_id,
                since: s.first_seen_at.to_rfc3339(),
            })
            .collect();
        Ok(DeactivatedSince { min_days, users })
    }
}

impl super::TeamConsole {
    /// What the daily listings saw at the site the team is connected to now (nothing when it
    /// is not connected).
    async fn sightings_here(&self) -> Result<Vec<Sighting>, ConsoleError> {
        let Some(record) = self.console.storage.connection(self.team).await? else {
            return Ok(Vec::new());
        };
        let Ok(endpoint) =
            super::sites::connection_endpoint(&record.site_url, record.scim_base_url.as_deref())
        else {
            return Ok(Vec::new());
        };
        Ok(self
            .console
            .storage
            .sightings(self.team, endpoint.users_url())
            .await?)
    }
}

/// Starts this process's worker; it runs until the process ends.
pub fn spawn(console: Arc<Console>) {
    tokio::spawn(async move {
        loop {
            act_on_due(&console).await;
            tokio::time::sleep(POLL).await;
        }
    });
}

/// What one pass of the worker did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Acted {
    pub listings: usize,
    pub prepared: usize,
}

/// Lists the sites and prepares the deletions due now on this console's clock, each claimed
/// first so no other process does it too. A team's listing comes before its firing, so a
/// console that was down (or whose clock jumped) prepares from what the site is now.
pub async fn act_on_due(console: &Arc<Console>) -> Acted {
    let now = console.clock.now();
    let mut acted = Acted::default();
    let due = match console.storage.due_retention(now).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the retention policies that are due");
            return acted;
        }
    };
    for (team, policy) in due {
        if policy.next_listing_at <= now {
            let next = now + Duration::hours(LISTING_EVERY_HOURS);
            match console
                .storage
                .claim_due(team, DueTime::Listing, policy.next_listing_at, now, next)
                .await
            {
                Ok(true) => {
                    list_and_record(console, team, now).await;
                    acted.listings += 1;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, %team, "could not claim a site listing"),
            }
        }
        if policy.next_fire_at <= now && fire(console, team, &policy, now).await {
            acted.prepared += 1;
        }
    }
    acted
}

/// Lists the team's site and records who is deactivated; a failure is logged and waits for
/// the next day's listing.
async fn list_and_record(console: &Console, team: TeamId, now: DateTime<Utc>) {
    let listed = async {
        let site = open_site(
            console.storage.as_ref(),
            &console.secrets,
            &console.http,
            team,
        )
        .await?;
        // Only the deactivated users are held, and only their ids and emails past this point.
        let deactivated: Vec<(String, Vec<String>)> = list_deactivated(site.provider.as_ref())
            .await?
            .into_iter()
            .map(|u| (u.id, u.emails))
            .collect();
        let users_url = site.endpoint.users_url().to_string();
        Ok::<_, ConsoleError>(
            console
                .storage
                .record_sightings(team, &users_url, &deactivated, now)
                .await?,
        )
    };
    match listed.await {
        Ok(changes) => tracing::info!(
            %team,
            first_seen = changes.first_seen,
            dropped = changes.dropped,
            "listed the site for the retention policy"
        ),
        Err(e) => {
            tracing::warn!(%team, error = %e.message, "the retention policy's listing failed")
        }
    }
}

/// Claims the policy's due time and prepares its deletion; true when this process made one.
async fn fire(
    console: &Arc<Console>,
    team: TeamId,
    policy: &RetentionPolicyRecord,
    now: DateTime<Utc>,
) -> bool {
    let Some(schedule) = schedule_of(policy) else {
        tracing::error!(%team, "the stored retention policy is damaged: it does not fire");
        return false;
    };
    let next = schedule.next_after(now);
    match console
        .storage
        .claim_due(team, DueTime::Firing, policy.next_fire_at, now, next)
        .await
    {
        Ok(true) => {}
        Ok(false) => return false,
        Err(e) => {
            tracing::warn!(error = %e, %team, "could not claim the retention policy's due time");
            return false;
        }
    }
    match prepare(console, team, policy, now).await {
        Ok(Some(users)) => {
            tracing::info!(%team, users, "the retention policy prepared a deletion");
            true
        }
        Ok(None) => {
            tracing::info!(%team, "the retention policy found nobody deactivated long enough");
            false
        }
        Err(e) => {
            tracing::warn!(%team, error = %e.message, "the retention policy could not prepare its deletion");
            false
        }
    }
}

/// A delete preview of the users deactivated for at least the policy's days, made by the
/// policy, recorded for "Waiting for you" with its notification; None when nobody qualifies.
async fn prepare(
    console: &Arc<Console>,
    team: TeamId,
    policy: &RetentionPolicyRecord,
    now: DateTime<Utc>,
) -> Result<Option<u64>, ConsoleError> {
    let acting = console.for_team(team, Actor::RetentionPolicy);
    let account_ids: Vec<String> = acting
        .sightings_here()
        .await?
        .into_iter()
        .filter(|s| deactivated_long_enough(s.first_seen_at, now, policy.min_days))
        .map(|s| s.account_id)
        .collect();
    if account_ids.is_empty() {
        return Ok(None);
    }
    let summary = acting
        .as_operator()?
        .preview_picked(account_ids, Action::Delete, false)
        .await?;
    let users = summary.counts.selected as u64;
    let audit = NewAuditEntry {
        actor: Actor::RetentionPolicy.name(None),
        action: AuditAction::DeletionPrepared,
        target: Some(summary.id.to_string()),
        details: json!({ "users": users, "min_days": policy.min_days }),
    };
    let prepared = PreparedDeletion {
        preview_id: summary.id,
        due_at: policy.next_fire_at,
        made_at: now,
        users: i64::try_from(users).unwrap_or(i64::MAX),
    };
    console
        .storage
        .record_prepared_deletion(team, &prepared, &audit)
        .await?;
    Ok(Some(users))
}

/// The team's time zone (set with its retention policy; UTC when none is set): where an undo
/// window's date begins.
pub(crate) async fn team_zone(
    storage: &dyn crate::storage::Storage,
    team: app::ids::TeamId,
) -> Result<chrono_tz::Tz, crate::storage::StorageError> {
    let policy = storage.retention_policy(team).await?;
    Ok(policy
        .and_then(|p| crate::engine::retention::parse_zone(&p.time_zone).ok())
        .unwrap_or(chrono_tz::Tz::UTC))
}
