//! The retention policy's records ([`RetentionStorage`], part of every [`super::Storage`]),
//! written once for both databases: each team's time zone and policy, the users the daily
//! listing saw deactivated (only what changed is written), and the deletions the policy
//! prepared for "Waiting for you".
//!
//! Each due time is acted on by one console process: the one whose conditional update moves it
//! on (`… WHERE next_fire_at = $due AND next_fire_at <= $now`), `now` being the console's own
//! clock, passed in, never the database's. A clock that jumps weeks ahead finds one due time,
//! moves it past the new now, and so acts once.

use super::column::{JsonText, Stamp};
use super::store::{Affected, Dialect, Store};
use super::{NewAuditEntry, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use model::ids::{PreviewId, TeamId};
use std::collections::{HashMap, HashSet};

/// A team's time zone and retention policy as stored.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct RetentionPolicyRecord {
    /// An IANA name ("Europe/Berlin").
    pub time_zone: String,
    /// Off: the site is not listed and nothing is prepared.
    pub enabled: bool,
    pub min_days: i64,
    /// 0 = Monday … 6 = Sunday.
    pub weekday: i64,
    /// Minutes after local midnight.
    pub at_minute: i64,
    #[sqlx(try_from = "Stamp")]
    pub next_fire_at: DateTime<Utc>,
    #[sqlx(try_from = "Stamp")]
    pub next_listing_at: DateTime<Utc>,
    pub saved_by: String,
    #[sqlx(try_from = "Stamp")]
    pub saved_at: DateTime<Utc>,
}

/// A user the daily listing found deactivated, since the first listing that did.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Sighting {
    pub account_id: String,
    #[sqlx(try_from = "JsonText<Vec<String>>")]
    pub emails: Vec<String>,
    #[sqlx(try_from = "Stamp")]
    pub first_seen_at: DateTime<Utc>,
}

impl From<JsonText<Vec<String>>> for Vec<String> {
    fn from(json: JsonText<Vec<String>>) -> Vec<String> {
        json.0
    }
}

/// A deletion the policy prepared: its preview, waiting for a person.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct PreparedDeletion {
    pub preview_id: PreviewId,
    #[sqlx(try_from = "Stamp")]
    pub due_at: DateTime<Utc>,
    #[sqlx(try_from = "Stamp")]
    pub made_at: DateTime<Utc>,
    pub users: i64,
}

/// What one listing of a site found deactivated: (account id, its emails).
pub type Deactivated = [(String, Vec<String>)];

/// Which of a policy's two due times a claim moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DueTime {
    /// The daily listing of the site (`next_listing_at`).
    Listing,
    /// The preparation of a deletion (`next_fire_at`).
    Firing,
}

/// How many rows a listing changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SightingChanges {
    pub first_seen: u64,
    pub dropped: u64,
}

#[async_trait]
pub trait RetentionStorage: Send + Sync {
    /// The team's policy, None when an owner never saved one.
    async fn retention_policy(&self, team_id: TeamId) -> Result<Option<RetentionPolicyRecord>>;
    /// Saves (or replaces) the team's policy and appends `audit`, in one transaction.
    async fn save_retention_policy(
        &self,
        team_id: TeamId,
        policy: &RetentionPolicyRecord,
        audit: &NewAuditEntry,
    ) -> Result<()>;
    /// The teams whose policy is on and whose listing or firing is due at `now`.
    async fn due_retention(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(TeamId, RetentionPolicyRecord)>>;
    /// Moves the team's `which` due time from `due` to `next` if it is still `due` and due at
    /// `now`: true for the one process that did, which then lists the site or prepares the
    /// deletion.
    async fn claim_due(
        &self,
        team_id: TeamId,
        which: DueTime,
        due: DateTime<Utc>,
        now: DateTime<Utc>,
        next: DateTime<Utc>,
    ) -> Result<bool>;
    /// Records what a listing of `users_url` at `at` found deactivated: a row for each user
    /// not seen so before, none kept for anyone else (seen active again, gone, or of another
    /// site). One transaction; rows already there keep their first time.
    async fn record_sightings(
        &self,
        team_id: TeamId,
        users_url: &str,
        deactivated: &Deactivated,
        at: DateTime<Utc>,
    ) -> Result<SightingChanges>;
    /// The users the daily listings saw deactivated at `users_url`, longest first.
    async fn sightings(&self, team_id: TeamId, users_url: &str) -> Result<Vec<Sighting>>;
    /// Records a deletion the policy prepared and appends `audit`, in one transaction (the
    /// notification is written with the entry).
    async fn record_prepared_deletion(
        &self,
        team_id: TeamId,
        prepared: &PreparedDeletion,
        audit: &NewAuditEntry,
    ) -> Result<()>;
    /// The team's prepared deletions that no run started from, newest first.
    async fn prepared_deletions(&self, team_id: TeamId) -> Result<Vec<PreparedDeletion>>;
}

const POLICY_COLUMNS: &str = "time_zone, enabled, min_days, weekday, at_minute, next_fire_at, \
    next_listing_at, saved_by, saved_at";

#[derive(sqlx::FromRow)]
struct DueRow {
    team_id: TeamId,
    #[sqlx(flatten)]
    policy: RetentionPolicyRecord,
}

#[async_trait]
impl<DB: Dialect> RetentionStorage for Store<DB> {
    async fn retention_policy(&self, team_id: TeamId) -> Result<Option<RetentionPolicyRecord>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {POLICY_COLUMNS} FROM retention_policies WHERE team_id = $1"
        ))
        .bind(team_id)
        .fetch_optional(self.read())
        .await?)
    }

    async fn save_retention_policy(
        &self,
        team_id: TeamId,
        policy: &RetentionPolicyRecord,
        audit: &NewAuditEntry,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO retention_policies (team_id, {POLICY_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (team_id) DO UPDATE SET time_zone = excluded.time_zone, \
             enabled = excluded.enabled, min_days = excluded.min_days, \
             weekday = excluded.weekday, at_minute = excluded.at_minute, \
             next_fire_at = excluded.next_fire_at, next_listing_at = excluded.next_listing_at, \
             saved_by = excluded.saved_by, saved_at = excluded.saved_at"
        ))
        .bind(team_id)
        .bind(&policy.time_zone)
        .bind(policy.enabled)
        .bind(policy.min_days)
        .bind(policy.weekday)
        .bind(policy.at_minute)
        .bind(Stamp(policy.next_fire_at))
        .bind(Stamp(policy.next_listing_at))
        .bind(&policy.saved_by)
        .bind(Stamp(policy.saved_at))
        .execute(DB::on(&mut *tx))
        .await?;
        Self::append_audit_in(&mut tx, self, team_id, self.clock.now(), audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn due_retention(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(TeamId, RetentionPolicyRecord)>> {
        let rows: Vec<DueRow> = sqlx::query_as(&format!(
            "SELECT team_id, {POLICY_COLUMNS} FROM retention_policies \
             WHERE enabled = $1 AND (next_listing_at <= $2 OR next_fire_at <= $2) \
             ORDER BY team_id"
        ))
        .bind(true)
        .bind(Stamp(now))
        .fetch_all(self.read())
        .await?;
        Ok(rows.into_iter().map(|r| (r.team_id, r.policy)).collect())
    }

    async fn claim_due(
        &self,
        team_id: TeamId,
        which: DueTime,
        due: DateTime<Utc>,
        now: DateTime<Utc>,
        next: DateTime<Utc>,
    ) -> Result<bool> {
        let column = match which {
            DueTime::Listing => "next_listing_at",
            DueTime::Firing => "next_fire_at",
        };
        let moved = sqlx::query(&format!(
            "UPDATE retention_policies SET {column} = $1 \
             WHERE team_id = $2 AND enabled = $3 AND {column} = $4 AND {column} <= $5"
        ))
        .bind(Stamp(next))
        .bind(team_id)
        .bind(true)
        .bind(Stamp(due))
        .bind(Stamp(now))
        .execute(self.write())
        .await?;
        Ok(moved.rows_affected() == 1)
    }

    async fn record_sightings(
        &self,
        team_id: TeamId,
        users_url: &str,
        deactivated: &Deactivated,
        at: DateTime<Utc>,
    ) -> Result<SightingChanges> {
        let mut tx = self.writer.begin().await?;
        let known: Vec<(String, String)> = sqlx::query_as(
            "SELECT account_id, users_url FROM deactivated_sightings WHERE team_id = $1",
        )
        .bind(team_id)
        .fetch_all(DB::on(&mut *tx))
        .await?;
        let seen: HashMap<&str, &Vec<String>> = deactivated
            .iter()
            .map(|(id, emails)| (id.as_str(), emails))
            .collect();
        let mut kept = HashSet::with_capacity(known.len());
        let mut changes = SightingChanges::default();
        for (account_id, url) in &known {
            if url == users_url && seen.contains_key(account_id.as_str()) {
                kept.insert(account_id.as_str());
                continue;
            }
            sqlx::query("DELETE FROM deactivated_sightings WHERE team_id = $1 AND account_id = $2")
                .bind(team_id)
                .bind(account_id)
                .execute(DB::on(&mut *tx))
                .await?;
            changes.dropped += 1;
        }
        for (account_id, emails) in deactivated {
            if kept.contains(account_id.as_str()) {
                continue;
            }
            sqlx::query(
                "INSERT INTO deactivated_sightings (team_id, users_url, account_id, emails, \
                 first_seen_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(team_id)
            .bind(users_url)
            .bind(account_id)
            .bind(serde_json::to_string(emails)?)
            .bind(Stamp(at))
            .execute(DB::on(&mut *tx))
            .await?;
            changes.first_seen += 1;
        }
        tx.commit().await?;
        Ok(changes)
    }

    async fn sightings(&self, team_id: TeamId, users_url: &str) -> Result<Vec<Sighting>> {
        Ok(sqlx::query_as(
            "SELECT account_id, emails, first_seen_at FROM deactivated_sightings \
             WHERE team_id = $1 AND users_url = $2 ORDER BY first_seen_at, account_id",
        )
        .bind(team_id)
        .bind(users_url)
        .fetch_all(self.read())
        .await?)
    }

    async fn record_prepared_deletion(
        &self,
        team_id: TeamId,
        prepared: &PreparedDeletion,
        audit: &NewAuditEntry,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO retention_previews (preview_id, team_id, due_at, made_at, users) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(prepared.preview_id.as_str())
        .bind(team_id)
        .bind(Stamp(prepared.due_at))
        .bind(Stamp(prepared.made_at))
        .bind(prepared.users)
        .execute(DB::on(&mut *tx))
        .await?;
        Self::append_audit_in(&mut tx, self, team_id, self.clock.now(), audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn prepared_deletions(&self, team_id: TeamId) -> Result<Vec<PreparedDeletion>> {
        // A preview a run started from is claimed; a removed one takes its row with it.
        Ok(sqlx::query_as(
            "SELECT r.preview_id, r.due_at, r.made_at, r.users FROM retention_previews r \
             JOIN previews p ON p.id = r.preview_id \
             WHERE r.team_id = $1 AND p.claimed_at IS NULL ORDER BY r.made_at DESC LIMIT 20",
        )
        .bind(team_id)
        .fetch_all(self.read())
        .await?)
    }
}
