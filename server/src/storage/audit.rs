//! The audit trail's records: appending an entry to its team's signed chain, reading entries
//! back a page at a time, and walking every chain (the rules: crate::audit_chain).

use super::column::Stamp;
use super::{Result, StorageError};
pub use crate::audit_chain::{
    head_line, BreakKind, ChainBreak, ChainReport, ExpectedHeads, GENESIS,
};
use crate::audit_chain::{old_entries_seal, AuditRow, ChainWalk, HeadRow, CHAIN_HMAC};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use model::audit::AuditAction;
use model::ids::TeamId;
use model::Named;

mod sql;

/// Entries read per query while verifying, so a long trail is never held in memory whole.
const VERIFY_BATCH: i64 = 1000;

/// An entry about to be appended; the storage numbers, times and chains it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAuditEntry {
    /// Who did it, as the console names them.
    pub actor: String,
    pub action: AuditAction,
    /// The preview or run it is about.
    pub target: Option<String>,
    /// Counts and ids only (never a token, never a list of users).
    pub details: serde_json::Value,
}

/// An entry as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub team_id: TeamId,
    /// 1, 2, 3… within the team.
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: AuditAction,
    pub target: Option<String>,
    /// The details as stored (JSON text).
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Which entries to read: one kind, first and last day (UTC, `YYYY-MM-DD`, both included),
/// below `before` (None = from the newest), at most `limit`, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub action: Option<AuditAction>,
    pub from_day: Option<String>,
    pub to_day: Option<String>,
    pub before: Option<i64>,
    pub limit: u32,
}

impl AuditRow {
    fn into_entry(self) -> Result<AuditEntry> {
        Ok(AuditEntry {
            team_id: self.team_id,
            seq: self.seq,
            at: Stamp::parse(&self.at)?.0,
            actor: self.actor,
            action: AuditAction::from_key(&self.action).ok_or_else(|| {
                StorageError::Damaged(format!("unknown audit action {:?}", self.action))
            })?,
            target: (!self.target.is_empty()).then_some(self.target),
            details: self.details,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

/// The teams' audit trails.
#[async_trait]
pub trait AuditStorage: Send + Sync {
    /// Appends an entry to the team's audit trail: numbered, timed and chained here.
    async fn append_audit(&self, team_id: TeamId, entry: &NewAuditEntry) -> Result<AuditEntry>;
    /// The team's audit entries matching `query`, newest first.
    async fn audit_entries(&self, team_id: TeamId, query: &AuditQuery) -> Result<Vec<AuditEntry>>;
    /// Walks every team's audit chain and says where the first break is, if any.
    async fn verify_audit(&self) -> Result<ChainReport> {
        self.verify_audit_against(&ExpectedHeads::default()).await
    }
    /// [`AuditStorage::verify_audit`], also comparing each trail with heads `recorded`
    /// earlier; stops at the first break. Each team is read in one transaction that sees one
    /// snapshot, so an append while it reads cannot look like a break.
    async fn verify_audit_against(&self, recorded: &ExpectedHeads) -> Result<ChainReport>;
    /// Each team's newest audit entry number and hash, as the trail's heads keep them.
    async fn audit_heads(&self) -> Result<Vec<(TeamId, i64, String)>>;
    /// Seals, with this storage's audit key, the entries each team wrote before the trail was
    /// keyed; once per database. Teams sealed.
    async fn seal_old_audit_entries(&self) -> Result<u64>;
}
