//! The audit trail's statements, written once for both databases: appending inside a
//! transaction, reading pages, walking the chains. A child of audit.rs, so it reads the
//! stored rows' private parts.

use super::*;
use crate::storage::store::{Dialect, Store};
use std::collections::{BTreeSet, HashSet};

impl<DB: Dialect> Store<DB> {
    /// Appends `entry` inside the caller's transaction: the entry is kept exactly when
    /// what it records is (a run and its confirmation, see `create_job`).
    pub(in crate::storage) async fn append_audit_in(
        conn: &mut DB::Connection,
        store: &Self,
        team_id: TeamId,
        at: DateTime<Utc>,
        entry: &NewAuditEntry,
    ) -> Result<AuditEntry> {
        let key = &store.audit_key;
        // A write first: it takes the database's write lock, so a concurrent append waits here
        // instead of reading the same head and failing (or forking the chain) later.
        sqlx::query(
            "INSERT INTO audit_heads (team_id, last_seq, last_hash) VALUES ($1, 0, $2) \
             ON CONFLICT (team_id) DO NOTHING",
        )
        .bind(team_id)
        .bind(GENESIS)
        .execute(DB::on(&mut *conn))
        .await?;
        let (last_seq, last_hash): (i64, String) = sqlx::query_as(&format!(
            "SELECT last_seq, last_hash FROM audit_heads WHERE team_id = $1{}",
            DB::FOR_UPDATE
        ))
        .bind(team_id)
        .fetch_one(DB::on(&mut *conn))
        .await?;
        // Every new entry is keyed; the first one names the last unkeyed entry's hash.
        let row = AuditRow {
            team_id,
            seq: last_seq + 1,
            at: Stamp::text(at),
            actor: entry.actor.clone(),
            action: entry.action.key().to_string(),
            target: entry.target.clone().unwrap_or_default(),
            details: entry.details.to_string(),
            prev_hash: last_hash,
            hash: String::new(),
            chain: CHAIN_HMAC,
        };
        let hash = row.content_hash(key).ok_or_else(|| {
            StorageError::Damaged("the audit trail's seal is unknown".to_string())
        })?;
        let row = AuditRow { hash, ..row };
        sqlx::query(
            "INSERT INTO audit_entries (team_id, seq, at, actor, action, target, details, \
             prev_hash, hash, chain) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(row.team_id)
        .bind(row.seq)
        .bind(&row.at)
        .bind(&row.actor)
        .bind(&row.action)
        .bind(&row.target)
        .bind(&row.details)
        .bind(&row.prev_hash)
        .bind(&row.hash)
        .bind(row.chain)
        .execute(DB::on(&mut *conn))
        .await?;
        sqlx::query("UPDATE audit_heads SET last_seq = $1, last_hash = $2 WHERE team_id = $3")
            .bind(row.seq)
            .bind(&row.hash)
            .bind(team_id)
            .execute(DB::on(&mut *conn))
            .await?;
        // The event's notification, if it makes one, is kept exactly when its entry is.
        Self::queue_notification_in(conn, store, team_id, at, entry.action.key(), entry).await?;
        row.into_entry()
    }
}

#[async_trait]
impl<DB: Dialect> AuditStorage for Store<DB> {
    /// Appends in one transaction on the writer: the audit trail's appends queue with the runs'
    /// writes on SQLite.
    async fn append_audit(&self, team_id: TeamId, entry: &NewAuditEntry) -> Result<AuditEntry> {
        let mut tx = self.writer.begin().await?;
        let now = self.clock.now();
        let appended = Self::append_audit_in(&mut tx, self, team_id, now, entry).await?;
        tx.commit().await?;
        Ok(appended)
    }

    /// The team's entries matching `query`, newest first.
    async fn audit_entries(&self, team_id: TeamId, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        // Stored times are RFC 3339 UTC text, so a day compares as a prefix: from the day's
        // start, and up to (not including) the text just after the day's last instant. A
        // filter left out is bound as NULL, which lets every entry through.
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT team_id, seq, at, actor, action, target, details, prev_hash, hash, chain \
             FROM audit_entries WHERE team_id = $1 AND ($2 IS NULL OR action = $2) \
             AND ($3 IS NULL OR at >= $3) AND ($4 IS NULL OR at < $4) \
             AND seq < $5 ORDER BY seq DESC LIMIT $6",
        )
        .bind(team_id)
        .bind(query.action.map(|action| action.key().to_string()))
        .bind(query.from_day.clone())
        .bind(query.to_day.as_ref().map(|day| format!("{day}U")))
        .bind(query.before.unwrap_or(i64::MAX))
        .bind(i64::from(query.limit))
        .fetch_all(self.read())
        .await?;
        rows.into_iter().map(AuditRow::into_entry).collect()
    }

    /// Walks the chain of every team (every team in `teams`, and any other that has
    /// entries, a head or a recorded head) with `key`, comparing it with `recorded`;
    /// stops at the first break.
    async fn verify_audit_against(&self, recorded: &ExpectedHeads) -> Result<ChainReport> {
        let key = &self.audit_key;
        let existing: Vec<TeamId> = sqlx::query_scalar("SELECT id FROM teams")
            .fetch_all(self.read())
            .await?;
        let with_trail: Vec<TeamId> = sqlx::query_scalar(
            "SELECT team_id FROM audit_entries UNION SELECT team_id FROM audit_heads",
        )
        .fetch_all(self.read())
        .await?;
        let existing: HashSet<TeamId> = existing.into_iter().collect();
        let teams: BTreeSet<TeamId> = existing
            .iter()
            .copied()
            .chain(with_trail)
            .chain(recorded.teams())
            .collect();
        let mut report = ChainReport::default();
        for team_id in teams {
            let mut tx = self.snapshot().await?;
            let head: Option<HeadRow> = sqlx::query_as(
                "SELECT last_seq, last_hash, legacy_until, legacy_hash, legacy_seal \
                 FROM audit_heads WHERE team_id = $1",
            )
            .bind(team_id)
            .fetch_optional(DB::on(&mut *tx))
            .await?;
            let mut walk = ChainWalk::new(team_id, key, recorded.of(team_id));
            if let Some(head) = &head {
                walk.old_entries = head.sealed_old_entries(team_id, key);
            }
            let mut after = 0_i64;
            loop {
                let rows: Vec<AuditRow> = sqlx::query_as(
                    "SELECT team_id, seq, at, actor, action, target, details, prev_hash, hash, \
                     chain FROM audit_entries WHERE team_id = $1 AND seq > $2 ORDER BY seq \
                     LIMIT $3",
                )
                .bind(team_id)
                .bind(after)
                .bind(VERIFY_BATCH)
                .fetch_all(DB::on(&mut *tx))
                .await?;
                let Some(last) = rows.last() else { break };
                after = last.seq;
                for row in &rows {
                    if let Err(broken) = walk.step(row) {
                        report.broken = Some(broken);
                        return Ok(report);
                    }
                    report.entries += 1;
                    if row.chain != CHAIN_HMAC {
                        report.unkeyed += 1;
                    }
                }
            }
            tx.rollback().await?;
            let head = head.map(|h| (h.last_seq, h.last_hash));
            if let Err(broken) = walk.finish(head, existing.contains(&team_id)) {
                report.broken = Some(broken);
                return Ok(report);
            }
            report.recorded_found += walk.recorded_found;
            report
                .heads
                .push((team_id, walk.last_seq, walk.last_hash.clone()));
        }
        Ok(report)
    }

    /// Each team's head (newest entry number and hash) as `audit_heads` keeps it.
    async fn audit_heads(&self) -> Result<Vec<(TeamId, i64, String)>> {
        Ok(
            sqlx::query_as("SELECT team_id, last_seq, last_hash FROM audit_heads ORDER BY team_id")
                .fetch_all(self.read())
                .await?,
        )
    }

    /// Seals each team's entries from before the trail was keyed (migration 0013 noted
    /// how many and the last one's hash) with `key`, once per database: only while no
    /// keyed entry and no seal exist. Returns how many teams were sealed.
    ///
    /// Decision: once anything is keyed this never runs again, so whoever clears a seal
    /// (to pass off a rewritten trail as old) cannot get it made again by a restart; an
    /// unsealed team is held to the strict rule (no unkeyed entry at all).
    async fn seal_old_audit_entries(&self) -> Result<u64> {
        let mut tx = self.writer.begin().await?;
        let keyed: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM audit_entries WHERE chain = 2) \
             OR EXISTS (SELECT 1 FROM audit_heads WHERE legacy_seal <> '')",
        )
        .fetch_one(DB::on(&mut *tx))
        .await?;
        if keyed {
            return Ok(0);
        }
        let old: Vec<(TeamId, i64, String)> = sqlx::query_as(
            "SELECT team_id, legacy_until, legacy_hash FROM audit_heads \
             WHERE legacy_until > 0 ORDER BY team_id",
        )
        .fetch_all(DB::on(&mut *tx))
        .await?;
        for (team_id, until, hash) in &old {
            sqlx::query("UPDATE audit_heads SET legacy_seal = $1 WHERE team_id = $2")
                .bind(old_entries_seal(&self.audit_key, *team_id, *until, hash))
                .bind(team_id)
                .execute(DB::on(&mut *tx))
                .await?;
        }
        tx.commit().await?;
        Ok(old.len() as u64)
    }
}
