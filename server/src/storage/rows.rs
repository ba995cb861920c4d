//! The rows either database hands back (`sqlx::FromRow`, one struct per query shape, generic
//! over the driver) and how each becomes a record. Times are stored as RFC 3339 text and enums
//! by their serde name, so those two are read here; ids and states are stored as themselves
//! (`sqlx::Type`: text and integers on SQLite, the `jobstate`/`itemstate` enum types on
//! PostgreSQL).

use super::{
    ConnectionRecord, JobConnection, JobEvent, JobRecord, PreviewRecord, PreviewSourceRecord,
    Result, StorageError,
};
use crate::engine::{ItemState, RunTarget};
use chrono::{DateTime, SecondsFormat, Utc};
use model::deletion::{Action, ItemOutcome, ItemResult, JobState};
use model::hidden::Hidden;
use model::ids::{JobId, PreviewId, TeamId};
use std::collections::BTreeMap;

/// Fixed fraction digits, so stored times sort correctly as text.
pub(super) fn stamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(super) fn parse_stamp(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StorageError::Damaged(format!("unreadable time {text:?}")))
}

/// Enums are stored by their serde name ("Delete", "Deleted"), the same text JSON carries.
pub(super) fn enum_name<T: serde::Serialize>(value: &T) -> Result<String> {
    match serde_json::to_value(value)? {
        serde_json::Value::String(name) => Ok(name),
        other => Err(StorageError::Damaged(format!(
            "expected a plain name, got {other}"
        ))),
    }
}

pub(super) fn enum_from_name<T: serde::de::DeserializeOwned>(what: &str, name: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map_err(|_| StorageError::Damaged(format!("unknown {what} {name:?}")))
}

fn optional_stamp(text: Option<String>) -> Result<Option<DateTime<Utc>>> {
    text.as_deref().map(parse_stamp).transpose()
}

pub(super) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// `SELECT {JOB_COLUMNS} FROM jobs …`
#[derive(sqlx::FromRow)]
pub(super) struct JobRow {
    pub id: JobId,
    team_id: TeamId,
    created_by: String,
    created_at: String,
    site_url: String,
    action: String,
    preview_id: Option<PreviewId>,
    state: JobState,
    reason: Option<String>,
    started_at: Option<String>,
    finished_at: Option<String>,
    users_url: Option<String>,
    token_fingerprint: Option<String>,
    approved_by: Option<String>,
    approved_at: Option<String>,
}

/// `SELECT state, outcome, COUNT(*) AS n FROM job_items … GROUP BY state, outcome`
#[derive(sqlx::FromRow)]
pub(super) struct TallyRow {
    state: ItemState,
    outcome: Option<String>,
    n: i64,
}

impl JobRow {
    /// The job, with its users counted from `tallies`.
    pub fn into_record(self, tallies: Vec<TallyRow>) -> Result<JobRecord> {
        let (mut total, mut done, mut counts) = (0u64, 0u64, BTreeMap::new());
        for tally in tallies {
            let n = to_u64(tally.n);
            total += n;
            if tally.state == ItemState::Done {
                done += n;
                let outcome = tally.outcome.ok_or_else(|| {
                    StorageError::Damaged(format!(
                        "a finished user of job {} has no outcome",
                        self.id
                    ))
                })?;
                *counts
                    .entry(enum_from_name::<ItemOutcome>("outcome", &outcome)?)
                    .or_insert(0) += n;
            }
        }
        Ok(JobRecord {
            team_id: self.team_id,
            created_by: self.created_by,
            created_at: parse_stamp(&self.created_at)?,
            site_url: self.site_url,
            action: enum_from_name::<Action>("action", &self.action)?,
            preview_id: self.preview_id,
            connection: match (self.users_url, self.token_fingerprint) {
                (Some(users_url), Some(token_fingerprint)) => Some(JobConnection {
                    users_url,
                    token_fingerprint,
                }),
                _ => None,
            },
            state: self.state,
            reason: self.reason,
            started_at: optional_stamp(self.started_at)?,
            finished_at: optional_stamp(self.finished_at)?,
            approved_by: self.approved_by,
            approved_at: optional_stamp(self.approved_at)?,
            total,
            done,
            counts,
            id: self.id,
        })
    }
}

/// `SELECT {ITEM_RESULT_COLUMNS} FROM job_items …` (finished users).
#[derive(sqlx::FromRow)]
pub(super) struct ItemResultRow {
    account_id: String,
    email: Option<String>,
    outcome: Option<String>,
    message: String,
    attempts: i64,
    elapsed_ms: i64,
    demoted: bool,
}

impl TryFrom<ItemResultRow> for ItemResult {
    type Error = StorageError;

    fn try_from(row: ItemResultRow) -> Result<ItemResult> {
        let outcome = row.outcome.ok_or_else(|| {
            StorageError::Damaged(format!("finished user {} has no outcome", row.account_id))
        })?;
        Ok(ItemResult {
            account_id: row.account_id,
            email: row.email,
            outcome: enum_from_name("outcome", &outcome)?,
            message: row.message,
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
            elapsed_ms: to_u64(row.elapsed_ms),
            demoted: row.demoted,
        })
    }
}

/// `SELECT account_id, email, state FROM job_items …` (users still to act on).
#[derive(sqlx::FromRow)]
pub(super) struct TargetRow {
    account_id: String,
    email: Option<String>,
    state: ItemState,
}

impl From<TargetRow> for RunTarget {
    fn from(row: TargetRow) -> RunTarget {
        RunTarget {
            account_id: row.account_id,
            email: row.email,
            state: row.state,
        }
    }
}

/// `SELECT e.seq, e.at, e.result_json, e.state_change, e.reason FROM job_events e …`
#[derive(sqlx::FromRow)]
pub(super) struct JobEventRow {
    seq: i64,
    at: String,
    result_json: Option<String>,
    state_change: Option<JobState>,
    reason: Option<String>,
}

impl TryFrom<JobEventRow> for JobEvent {
    type Error = StorageError;

    fn try_from(row: JobEventRow) -> Result<JobEvent> {
        Ok(JobEvent {
            seq: row.seq,
            at: parse_stamp(&row.at)?,
            result: row
                .result_json
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| {
                    StorageError::Damaged(format!("unreadable result in the job log: {e}"))
                })?,
            state_change: row.state_change,
            reason: row.reason,
        })
    }
}

/// `SELECT site_url, scim_base_url, token_ciphertext, token_hint, operator_email, updated_at
/// FROM connections …`
#[derive(sqlx::FromRow)]
pub(super) struct ConnectionRow {
    site_url: String,
    scim_base_url: Option<String>,
    token_ciphertext: Option<String>,
    token_hint: String,
    operator_email: Option<String>,
    updated_at: String,
}

impl TryFrom<ConnectionRow> for ConnectionRecord {
    type Error = StorageError;

    fn try_from(row: ConnectionRow) -> Result<ConnectionRecord> {
        Ok(ConnectionRecord {
            site_url: row.site_url,
            scim_base_url: row.scim_base_url,
            token_ciphertext: row.token_ciphertext.map(Hidden::new),
            token_hint: row.token_hint,
            operator_email: row.operator_email,
            updated_at: parse_stamp(&row.updated_at)?,
        })
    }
}

/// `SELECT id, created_at, users_url, token_fingerprint, input_json, listing_json FROM
/// preview_sources …`
#[derive(sqlx::FromRow)]
pub(super) struct PreviewSourceRow {
    id: String,
    created_at: String,
    users_url: String,
    token_fingerprint: String,
    input_json: String,
    listing_json: String,
}

impl TryFrom<PreviewSourceRow> for PreviewSourceRecord {
    type Error = StorageError;

    fn try_from(row: PreviewSourceRow) -> Result<PreviewSourceRecord> {
        Ok(PreviewSourceRecord {
            id: row.id,
            created_at: parse_stamp(&row.created_at)?,
            users_url: row.users_url,
            token_fingerprint: row.token_fingerprint,
            input_json: row.input_json,
            listing_json: row.listing_json,
        })
    }
}

/// `SELECT id, created_at, action, phrase, source_id, summary_json, total_rows,
/// claimed_at IS NOT NULL AS claimed, replaced_by FROM previews …`
#[derive(sqlx::FromRow)]
pub(super) struct PreviewRecordRow {
    id: PreviewId,
    created_at: String,
    action: String,
    phrase: String,
    source_id: Option<String>,
    summary_json: String,
    total_rows: i64,
    claimed: bool,
    replaced_by: Option<PreviewId>,
}

impl TryFrom<PreviewRecordRow> for PreviewRecord {
    type Error = StorageError;

    fn try_from(row: PreviewRecordRow) -> Result<PreviewRecord> {
        Ok(PreviewRecord {
            id: row.id,
            created_at: parse_stamp(&row.created_at)?,
            action: enum_from_name("action", &row.action)?,
            source_id: row.source_id.unwrap_or_default(),
            summary_json: row.summary_json,
            total_rows: to_u64(row.total_rows) as usize,
            phrase: row.phrase,
            claimed: row.claimed,
            replaced_by: row.replaced_by,
        })
    }
}
