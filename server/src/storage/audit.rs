//! The audit trail's records: appending an entry to its team's hash chain, reading entries
//! back a page at a time, and walking every chain to prove no entry was edited, removed or
//! moved.
//!
//! The chain: each entry's `hash` is the SHA-256 of its canonical content (team, seq, time,
//! actor, action, target, details and the previous entry's hash, as a JSON array of strings:
//! unambiguous, and independent of how any JSON library orders keys, because the stored texts
//! are hashed as they are). The first entry of a team follows [`GENESIS`]. Chains are per team:
//! a team's trail is checkable on its own, and appends of two teams never depend on each other.
//!
//! What it proves: an entry edited, removed or moved after it was written no longer matches
//! its hash or its neighbour, unless whoever changed it also recomputed every later hash (and
//! the head). A plain hash cannot stop that; noting the head hash `verify` prints somewhere
//! else (a ticket, a log shipper) can. See docs/architecture.md, "Audit trail".

use super::rows::{parse_stamp, stamp};
use super::{Result, StorageError};
use app::audit::AuditAction;
use app::ids::TeamId;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::fmt;

/// The "previous hash" of a team's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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

/// One stored row, as text: verifying hashes exactly what is stored.
#[derive(sqlx::FromRow)]
struct AuditRow {
    team_id: TeamId,
    seq: i64,
    at: String,
    actor: String,
    action: String,
    target: String,
    details: String,
    prev_hash: String,
    hash: String,
}

impl AuditRow {
    fn into_entry(self) -> Result<AuditEntry> {
        Ok(AuditEntry {
            team_id: self.team_id,
            seq: self.seq,
            at: parse_stamp(&self.at)?,
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

    /// The hash this row's content gives.
    fn content_hash(&self) -> String {
        entry_hash(&Content {
            team_id: self.team_id,
            seq: self.seq,
            at: &self.at,
            actor: &self.actor,
            action: &self.action,
            target: &self.target,
            details: &self.details,
            prev_hash: &self.prev_hash,
        })
    }
}

/// What an entry's hash covers, as stored text.
struct Content<'a> {
    team_id: TeamId,
    seq: i64,
    at: &'a str,
    actor: &'a str,
    action: &'a str,
    target: &'a str,
    details: &'a str,
    prev_hash: &'a str,
}

/// SHA-256 (lowercase hex) of the entry's canonical form: a JSON array of its fields as strings,
/// in a fixed order. Strings are escaped by JSON, so no two different entries share a form.
fn entry_hash(c: &Content<'_>) -> String {
    let canonical = serde_json::json!([
        "offboard-audit-v1",
        c.team_id.get().to_string(),
        c.seq.to_string(),
        c.at,
        c.actor,
        c.action,
        c.target,
        c.details,
        c.prev_hash,
    ])
    .to_string();
    let digest = Sha256::digest(canonical.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The chain's SQL, written once for both databases (`$n` placeholders work on both). The
/// head row is read `$head_lock`: PostgreSQL must lock it so a concurrent append of the same
/// team waits; SQLite's single writer already makes appends take turns.
macro_rules! chain_queries {
    ($module:ident, $db:ty, $head_lock:literal) => {
        pub(super) mod $module {
            use super::*;

            type Pool = sqlx::Pool<$db>;

        /// Appends `entry` to `team_id`'s chain at time `at`, in one transaction on `writer`.
        pub async fn append(
            writer: &Pool,
            team_id: TeamId,
            at: DateTime<Utc>,
            entry: &NewAuditEntry,
        ) -> Result<AuditEntry> {
            let mut tx = writer.begin().await?;
            let appended = append_in(&mut tx, team_id, at, entry).await?;
            tx.commit().await?;
            Ok(appended)
        }

        /// Appends `entry` inside the caller's transaction: the entry is kept exactly when
        /// what it records is (a run and its confirmation, see `create_job`).
        pub async fn append_in(
            tx: &mut sqlx::Transaction<'_, $db>,
            team_id: TeamId,
            at: DateTime<Utc>,
            entry: &NewAuditEntry,
        ) -> Result<AuditEntry> {
            // A write first: it takes the database's write lock, so a concurrent append waits here
            // instead of reading the same head and failing (or forking the chain) later.
            sqlx::query(
                "INSERT INTO audit_heads (team_id, last_seq, last_hash) VALUES ($1, 0, $2) \
                 ON CONFLICT (team_id) DO NOTHING",
            )
            .bind(team_id)
            .bind(GENESIS)
            .execute(&mut **tx)
            .await?;
            let (last_seq, last_hash): (i64, String) =
                sqlx::query_as(concat!("SELECT last_seq, last_hash FROM audit_heads WHERE team_id = $1", $head_lock))
                    .bind(team_id)
                    .fetch_one(&mut **tx)
                    .await?;
            let row = AuditRow {
                team_id,
                seq: last_seq + 1,
                at: stamp(at),
                actor: entry.actor.clone(),
                action: entry.action.key().to_string(),
                target: entry.target.clone().unwrap_or_default(),
                details: entry.details.to_string(),
                prev_hash: last_hash,
                hash: String::new(),
            };
            let row = AuditRow {
                hash: row.content_hash(),
                ..row
            };
            sqlx::query(
                "INSERT INTO audit_entries (team_id, seq, at, actor, action, target, details, \
                 prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
            .execute(&mut **tx)
            .await?;
            sqlx::query("UPDATE audit_heads SET last_seq = $1, last_hash = $2 WHERE team_id = $3")
                .bind(row.seq)
                .bind(&row.hash)
                .bind(team_id)
                .execute(&mut **tx)
                .await?;
            row.into_entry()
        }

        /// The team's entries matching `query`, newest first.
        pub async fn entries(
            pool: &Pool,
            team_id: TeamId,
            query: &AuditQuery,
        ) -> Result<Vec<AuditEntry>> {
            let mut sql = sqlx::QueryBuilder::<$db>::new(
                "SELECT team_id, seq, at, actor, action, target, details, prev_hash, hash \
                 FROM audit_entries WHERE team_id = ",
            );
            sql.push_bind(team_id);
            if let Some(action) = query.action {
                sql.push(" AND action = ").push_bind(action.key());
            }
            // Stored times are RFC 3339 UTC text, so a day compares as a prefix: from the day's
            // start, and up to (not including) the text just after the day's last instant.
            if let Some(day) = &query.from_day {
                sql.push(" AND at >= ").push_bind(day.clone());
            }
            if let Some(day) = &query.to_day {
                sql.push(" AND at < ").push_bind(format!("{day}U"));
            }
            if let Some(before) = query.before {
                sql.push(" AND seq < ").push_bind(before);
            }
            sql.push(" ORDER BY seq DESC LIMIT ")
                .push_bind(i64::from(query.limit));
            let rows: Vec<AuditRow> = sql.build_query_as().fetch_all(pool).await?;
            rows.into_iter().map(AuditRow::into_entry).collect()
        }

        /// Walks every team's chain, stopping at the first break.
        pub async fn verify(pool: &Pool) -> Result<ChainReport> {
            let teams: Vec<TeamId> = sqlx::query_scalar(
                "SELECT team_id FROM audit_entries UNION SELECT team_id FROM audit_heads ORDER BY 1",
            )
            .fetch_all(pool)
            .await?;
            let mut report = ChainReport {
                entries: 0,
                heads: Vec::new(),
                broken: None,
            };
            for team_id in teams {
                let mut walk = ChainWalk::new(team_id);
                let mut after = 0_i64;
                loop {
                    let rows: Vec<AuditRow> = sqlx::query_as(
                        "SELECT team_id, seq, at, actor, action, target, details, prev_hash, hash \
                         FROM audit_entries WHERE team_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                    )
                    .bind(team_id)
                    .bind(after)
                    .bind(VERIFY_BATCH)
                    .fetch_all(pool)
                    .await?;
                    let Some(last) = rows.last() else { break };
                    after = last.seq;
                    for row in &rows {
                        if let Err(broken) = walk.step(row) {
                            report.broken = Some(broken);
                            return Ok(report);
                        }
                        report.entries += 1;
                    }
                }
                let head: Option<(i64, String)> =
                    sqlx::query_as("SELECT last_seq, last_hash FROM audit_heads WHERE team_id = $1")
                        .bind(team_id)
                        .fetch_optional(pool)
                        .await?;
                if let Err(broken) = walk.finish(head) {
                    report.broken = Some(broken);
                    return Ok(report);
                }
                report
                    .heads
                    .push((team_id, walk.last_seq, walk.last_hash.clone()));
            }
            Ok(report)
        }

        }
    };
}

chain_queries!(on_sqlite, sqlx::Sqlite, "");
chain_queries!(on_postgres, sqlx::Postgres, " FOR UPDATE");
pub(super) use on_sqlite::{append, entries, verify};

/// What walking the chains found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainReport {
    /// Entries checked (all teams), up to the first break.
    pub entries: u64,
    /// Each team's newest entry and its hash, for an admin to note elsewhere.
    pub heads: Vec<(TeamId, i64, String)>,
    /// The first break found, if any.
    pub broken: Option<ChainBreak>,
}

/// Where a chain is broken, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainBreak {
    pub team_id: TeamId,
    pub seq: i64,
    pub why: BreakKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BreakKind {
    /// The entry's content does not give its stored hash: it was edited (or moved, since its
    /// number is part of what is hashed).
    Edited,
    /// The entry does not name the previous entry's hash: the one before it was replaced.
    NotLinked,
    /// Entries are numbered 1, 2, 3…: this number is absent, so the entry was removed.
    Missing,
    /// The chain ends before the entry its head names: entries at the end were removed.
    TailRemoved { last_found: i64 },
    /// The head (newest entry) does not match the last entry found.
    HeadMismatch,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (team, seq) = (self.team_id, self.seq);
        match &self.why {
            BreakKind::Edited => write!(
                f,
                "entry {seq} of team {team} was changed: its content no longer matches its \
                 hash (edited, or moved from another place in the trail)"
            ),
            BreakKind::NotLinked => write!(
                f,
                "entry {seq} of team {team} does not follow entry {}: the entry before it was \
                 replaced or changed",
                seq - 1
            ),
            BreakKind::Missing => write!(
                f,
                "entry {seq} of team {team} is missing: it was removed from the trail"
            ),
            BreakKind::TailRemoved { last_found } => write!(
                f,
                "team {team}'s trail ends at entry {last_found}, but it had reached entry \
                 {seq}: the newest entries were removed"
            ),
            BreakKind::HeadMismatch => write!(
                f,
                "entry {seq} of team {team} is not the entry the trail last recorded: the \
                 newest entry was changed or replaced"
            ),
        }
    }
}

/// Walks one team's chain in seq order: pure, one row at a time.
struct ChainWalk {
    team_id: TeamId,
    last_seq: i64,
    last_hash: String,
}

impl ChainWalk {
    fn new(team_id: TeamId) -> ChainWalk {
        ChainWalk {
            team_id,
            last_seq: 0,
            last_hash: GENESIS.to_string(),
        }
    }

    fn broken(&self, seq: i64, why: BreakKind) -> ChainBreak {
        ChainBreak {
            team_id: self.team_id,
            seq,
            why,
        }
    }

    /// Checks the next row (rows come in increasing seq order).
    fn step(&mut self, row: &AuditRow) -> std::result::Result<(), ChainBreak> {
        let expected = self.last_seq + 1;
        if row.seq != expected {
            return Err(self.broken(expected, BreakKind::Missing));
        }
        if row.content_hash() != row.hash {
            return Err(self.broken(row.seq, BreakKind::Edited));
        }
        if row.prev_hash != self.last_hash {
            return Err(self.broken(row.seq, BreakKind::NotLinked));
        }
        self.last_seq = row.seq;
        self.last_hash = row.hash.clone();
        Ok(())
    }

    /// Compares the end of the walk with the head the appends kept.
    fn finish(&self, head: Option<(i64, String)>) -> std::result::Result<(), ChainBreak> {
        let (head_seq, head_hash) = head.unwrap_or((0, GENESIS.to_string()));
        if head_seq > self.last_seq {
            return Err(self.broken(
                head_seq,
                BreakKind::TailRemoved {
                    last_found: self.last_seq,
                },
            ));
        }
        if head_seq < self.last_seq || head_hash != self.last_hash {
            return Err(self.broken(self.last_seq, BreakKind::HeadMismatch));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, prev_hash: &str, actor: &str) -> AuditRow {
        let r = AuditRow {
            team_id: TeamId::BUILT_IN,
            seq,
            at: "2026-11-30T12:00:00.000000Z".into(),
            actor: actor.into(),
            action: "run_paused".into(),
            target: "job-1".into(),
            details: "{}".into(),
            prev_hash: prev_hash.into(),
            hash: String::new(),
        };
        AuditRow {
            hash: r.content_hash(),
            ..r
        }
    }

    fn chain(n: i64) -> Vec<AuditRow> {
        let mut rows: Vec<AuditRow> = Vec::new();
        for seq in 1..=n {
            let prev = rows.last().map_or(GENESIS.to_string(), |r| r.hash.clone());
            rows.push(row(seq, &prev, "me@example.com"));
        }
        rows
    }

    fn walk(rows: &[AuditRow], head: Option<(i64, String)>) -> std::result::Result<(), ChainBreak> {
        let mut w = ChainWalk::new(TeamId::BUILT_IN);
        for r in rows {
            w.step(r)?;
        }
        w.finish(head)
    }

    fn head_of(rows: &[AuditRow]) -> Option<(i64, String)> {
        rows.last().map(|r| (r.seq, r.hash.clone()))
    }

    #[test]
    fn the_hash_covers_every_field_and_is_lowercase_hex() {
        let base = row(1, GENESIS, "a");
        assert_eq!(base.hash.len(), 64);
        assert!(base
            .hash
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        let variants = [
            AuditRow {
                seq: 2,
                ..row(1, GENESIS, "a")
            },
            AuditRow {
                team_id: TeamId::new(2),
                ..row(1, GENESIS, "a")
            },
            AuditRow {
                at: "2026-11-30T12:00:00.000001Z".into(),
                ..row(1, GENESIS, "a")
            },
            AuditRow {
                actor: "b".into(),
                ..row(1, GENESIS, "a")
            },
            AuditRow {
                action: "run_resumed".into(),
                ..row(1, GENESIS, "a")
            },
            AuditRow {
                target: "job-2".into(),
                ..row(1, GENESIS, "a")
            },
            AuditRow {
                details: "{\"n\":1}".into(),
                ..row(1, GENESIS, "a")
            },
            AuditRow {
                prev_hash: "1".repeat(64),
                ..row(1, GENESIS, "a")
            },
        ];
        for v in &variants {
            assert_ne!(v.content_hash(), base.hash);
        }
        // Field boundaries cannot be shifted: "ab" + "" is not "a" + "b".
        let left = AuditRow {
            actor: "ab".into(),
            target: String::new(),
            ..row(1, GENESIS, "")
        };
        let right = AuditRow {
            actor: "a".into(),
            target: "b".into(),
            ..row(1, GENESIS, "")
        };
        assert_ne!(left.content_hash(), right.content_hash());
    }

    #[test]
    fn an_intact_chain_passes_and_an_empty_one_too() {
        let rows = chain(5);
        assert_eq!(walk(&rows, head_of(&rows)), Ok(()));
        assert_eq!(walk(&[], None), Ok(()));
    }

    #[test]
    fn every_kind_of_tampering_is_named() {
        let rows = chain(5);
        let head = head_of(&rows);

        let mut edited = chain(5);
        edited[2].actor = "someone else".into();
        let e = walk(&edited, head.clone()).unwrap_err();
        assert_eq!((e.seq, e.why.clone()), (3, BreakKind::Edited));
        assert!(
            e.to_string().contains("entry 3 of team 1 was changed"),
            "{e}"
        );

        let mut removed = chain(5);
        removed.remove(1);
        let e = walk(&removed, head.clone()).unwrap_err();
        assert_eq!((e.seq, e.why), (2, BreakKind::Missing));

        // Removed, and the later numbers shifted down to hide the gap: the hashes say so.
        let mut renumbered = chain(5);
        renumbered.remove(1);
        for r in renumbered.iter_mut().skip(1) {
            r.seq -= 1;
        }
        let e = walk(&renumbered, head.clone()).unwrap_err();
        assert_eq!((e.seq, e.why), (2, BreakKind::Edited));

        // Replaced whole, with a hash recomputed for its own content: the next one notices.
        let mut replaced = chain(5);
        replaced[1] = row(2, &replaced[0].hash, "forger");
        let e = walk(&replaced, head.clone()).unwrap_err();
        assert_eq!((e.seq, e.why), (3, BreakKind::NotLinked));

        let mut swapped = chain(5);
        swapped.swap(1, 2);
        (swapped[1].seq, swapped[2].seq) = (2, 3);
        let e = walk(&swapped, head.clone()).unwrap_err();
        assert_eq!((e.seq, e.why), (2, BreakKind::Edited));

        let mut cut = chain(5);
        cut.truncate(3);
        let e = walk(&cut, head.clone()).unwrap_err();
        assert_eq!(
            (e.seq, e.why.clone()),
            (5, BreakKind::TailRemoved { last_found: 3 })
        );
        assert!(e.to_string().contains("newest entries were removed"), "{e}");

        let mut last_replaced = chain(5);
        last_replaced[4] = row(5, &last_replaced[3].hash, "forger");
        let e = walk(&last_replaced, head).unwrap_err();
        assert_eq!((e.seq, e.why), (5, BreakKind::HeadMismatch));
    }
}
