//! The audit trail's chain rules, pure (no database): sealing an entry, walking a team's
//! chain to prove no entry was edited, removed or moved, and reading the heads noted earlier
//! that prove none was cut from the end. Storage (storage/audit.rs) reads and writes the
//! rows; what they must satisfy is here, testable on its own.
//!
//! The chain: each entry's `hash` seals its canonical content (team, seq, time, actor,
//! action, target, details and the previous entry's hash, as a JSON array of strings:
//! unambiguous, and independent of how any JSON library orders keys, because the stored texts
//! are sealed as they are). The first entry of a team follows [`GENESIS`]. Chains are per
//! team: a team's trail is checkable on its own, and appends of two teams never wait on each
//! other.
//!
//! The seal, per entry (`audit_entries.chain`): entries written since migration 0013 are
//! [`CHAIN_HMAC`], an HMAC-SHA256 under the audit key ([`AuditKey`], kept outside the
//! database), so whoever edits the database without the key cannot make an entry, or a
//! recomputed chain, verify. Entries written before are [`CHAIN_SHA256`] (plain SHA-256) and
//! still verify as they did, up to the last one the console sealed with the key at its first
//! start (`AuditStorage::seal_old_audit_entries`); the first keyed entry names the last
//! unkeyed one's hash, which anchors them too. No downgrade: an unkeyed entry beyond the
//! sealed ones, or after a keyed one, is a break.
//!
//! What the database alone cannot prove: that nothing was cut from the end. Whoever deletes
//! the newest entries and moves the head back (or erases a trail and writes an empty head)
//! leaves a shorter trail that is intact in itself. The console logs every team's head
//! regularly ([`head_line`]); `verify` compared with those lines ([`ExpectedHeads`]) catches
//! it. See docs/architecture.md, "Audit trail".

use crate::secret::AuditKey;
use model::ids::TeamId;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// The "previous hash" of a team's first entry, and the hash of a team's empty trail.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `audit_entries.chain` of an entry sealed with plain SHA-256 (written before 0013).
pub const CHAIN_SHA256: i32 = 1;
/// `audit_entries.chain` of an entry sealed with HMAC-SHA256 under the audit key.
pub const CHAIN_HMAC: i32 = 2;

/// One stored row, as text (its time too): verifying seals exactly what is stored.
#[derive(Clone, sqlx::FromRow)]
pub(crate) struct AuditRow {
    pub(crate) team_id: TeamId,
    pub(crate) seq: i64,
    pub(crate) at: String,
    pub(crate) actor: String,
    pub(crate) action: String,
    pub(crate) target: String,
    pub(crate) details: String,
    pub(crate) prev_hash: String,
    pub(crate) hash: String,
    pub(crate) chain: i32,
}

impl AuditRow {
    /// The seal this row's content gives under its own `chain` kind (None: a kind this
    /// version does not know, which no Offboard wrote).
    pub(crate) fn content_hash(&self, key: &AuditKey) -> Option<String> {
        seal(
            self.chain,
            &Content {
                team_id: self.team_id,
                seq: self.seq,
                at: &self.at,
                actor: &self.actor,
                action: &self.action,
                target: &self.target,
                details: &self.details,
                prev_hash: &self.prev_hash,
            },
            key,
        )
    }
}

/// What an entry's seal covers, as stored text.
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

/// The entry's canonical form: a JSON array of `tag` and its fields as strings, in a fixed
/// order. Strings are escaped by JSON, so no two different entries share a form; the tag
/// names the seal, so an entry's form under one kind is never its form under the other.
fn canonical(tag: &str, c: &Content<'_>) -> String {
    serde_json::json!([
        tag,
        c.team_id.get().to_string(),
        c.seq.to_string(),
        c.at,
        c.actor,
        c.action,
        c.target,
        c.details,
        c.prev_hash,
    ])
    .to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The seal (lowercase hex) of `c` under `chain`: SHA-256 of the `offboard-audit-v1` form,
/// or HMAC-SHA256 under `key` of the `offboard-audit-v2` form.
fn seal(chain: i32, c: &Content<'_>, key: &AuditKey) -> Option<String> {
    match chain {
        CHAIN_SHA256 => Some(hex(&Sha256::digest(
            canonical("offboard-audit-v1", c).as_bytes(),
        ))),
        CHAIN_HMAC => Some(hex(&key.mac(canonical("offboard-audit-v2", c).as_bytes()))),
        _ => None,
    }
}

/// A team's head row, with what migration 0013 noted of its entries from before the key.
#[derive(sqlx::FromRow)]
pub(crate) struct HeadRow {
    pub(crate) last_seq: i64,
    pub(crate) last_hash: String,
    /// The last entry written before the trail was keyed (0: none), and its hash.
    legacy_until: i64,
    legacy_hash: String,
    /// [`old_entries_seal`] of the two, made once with the key ('' while unsealed).
    legacy_seal: String,
}

impl HeadRow {
    /// The team's entries from before the key (the last one's number and hash), if the
    /// console sealed them with `key`; None (no unkeyed entry allowed) otherwise.
    pub(crate) fn sealed_old_entries(
        &self,
        team_id: TeamId,
        key: &AuditKey,
    ) -> Option<(i64, String)> {
        (self.legacy_until > 0
            && self.legacy_seal
                == old_entries_seal(key, team_id, self.legacy_until, &self.legacy_hash))
        .then(|| (self.legacy_until, self.legacy_hash.clone()))
    }
}

/// HMAC-SHA256 under `key` of the `offboard-audit-old-v2` form of a team's last unkeyed
/// entry (number and hash): what lets those entries keep verifying, and no other.
pub(crate) fn old_entries_seal(key: &AuditKey, team_id: TeamId, until: i64, hash: &str) -> String {
    let form = serde_json::json!([
        "offboard-audit-old-v2",
        team_id.get().to_string(),
        until.to_string(),
        hash
    ])
    .to_string();
    hex(&key.mac(form.as_bytes()))
}

/// What walking the chains found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainReport {
    /// Entries checked (all teams), up to the first break.
    pub entries: u64,
    /// Of those, the entries sealed with plain SHA-256 (written before the trail was keyed).
    pub unkeyed: u64,
    /// Recorded heads found in place (see [`ExpectedHeads`]).
    pub recorded_found: u64,
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
    /// The entry's content does not give its stored seal: it was edited (or moved, since its
    /// number is part of what is sealed), or sealed without the audit key.
    Edited,
    /// The entry does not name the previous entry's hash: the one before it was replaced.
    NotLinked,
    /// Entries are numbered 1, 2, 3…: this number is absent, so the entry was removed.
    Missing,
    /// The chain ends before the entry its head names: entries at the end were removed.
    TailRemoved { last_found: i64 },
    /// The head (newest entry) does not match the last entry found.
    HeadMismatch,
    /// An unkeyed entry after a keyed one: written (or rewritten) without the audit key.
    Downgraded,
    /// An unkeyed entry beyond the team's sealed entries from before the key (or in a team
    /// that has none): written (or rewritten) without the audit key.
    NotKeyed,
    /// The last entry from before the key no longer has the hash sealed when the trail was
    /// keyed: the old entries were rewritten.
    OldEntriesChanged,
    /// The team has entries but no head: the head was removed.
    HeadRemoved,
    /// The team exists but has neither entries nor a head (every team gets a head when it is
    /// created, migration 0013): its trail was erased.
    TrailErased,
    /// A head recorded earlier is beyond the trail's end: the newest entries were removed
    /// (and the head moved back).
    ShorterThanRecorded { last_found: i64 },
    /// The entry at a recorded head's position is not the one recorded (`line` of the file).
    NotAsRecorded { line: usize },
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (team, seq) = (self.team_id, self.seq);
        match &self.why {
            BreakKind::Edited => write!(
                f,
                "entry {seq} of team {team} was changed: its content no longer matches its \
                 hash (edited, moved from another place in the trail, or written without the \
                 audit key)"
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
            BreakKind::Downgraded => write!(
                f,
                "entry {seq} of team {team} is sealed without the audit key although entries \
                 before it are keyed: it was written or rewritten by someone without the key"
            ),
            BreakKind::NotKeyed => write!(
                f,
                "entry {seq} of team {team} is not signed with the audit key and is not one of \
                 the team's entries from before the trail was keyed: it was written or \
                 rewritten by someone without the key (or the console has not started since \
                 the upgrade that keyed the trail: start it once)"
            ),
            BreakKind::OldEntriesChanged => write!(
                f,
                "entry {seq} of team {team}, the last one written before the trail was keyed, \
                 is not the entry sealed then: the old entries were rewritten"
            ),
            BreakKind::HeadRemoved => write!(
                f,
                "team {team}'s trail has {seq} entries but no head: its head was removed"
            ),
            BreakKind::TrailErased => write!(
                f,
                "team {team} exists but its trail has neither entries nor a head: the trail \
                 was erased"
            ),
            BreakKind::ShorterThanRecorded { last_found } => write!(
                f,
                "team {team}'s trail ends at entry {last_found}, but entry {seq} was recorded \
                 earlier: the newest entries were removed and the head moved back"
            ),
            BreakKind::NotAsRecorded { line } => write!(
                f,
                "entry {seq} of team {team} is not the entry recorded earlier (line {line} of \
                 the expected heads): the trail was rewritten from there on"
            ),
        }
    }
}

/// The start of the line the console logs for each team's head, and `verify` prints.
pub const HEAD_LINE_PREFIX: &str = "audit head: team ";

/// The line that records a team's head: `audit head: team 3 entry 12 hash 5f…`. The console
/// logs it (`service::audit::log_heads_every`) and `verify` prints it, so either output can
/// be given back to `verify --expect-heads`.
pub fn head_line(team_id: TeamId, seq: i64, hash: &str) -> String {
    format!("{HEAD_LINE_PREFIX}{team_id} entry {seq} hash {hash}")
}

/// A head noted earlier: the hash entry `seq` had, and the line of the file that said so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedHead {
    pub hash: String,
    pub line: usize,
}

/// Heads noted earlier (from the console's log or a plain file), by team and entry number.
/// Several may name the same entry (each replica logs, every period): each must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExpectedHeads {
    by_team: BTreeMap<TeamId, BTreeMap<i64, Vec<RecordedHead>>>,
}

impl ExpectedHeads {
    /// Reads `text`: the console's log (text or JSON lines: any line holding
    /// `audit head: team T entry S hash H`), `verify`'s own output, or plain `T S H` lines.
    /// Other lines (the rest of a log, blank lines, `#` comments) are skipped; a head line
    /// that does not read whole is refused (a damaged anchor must not pass silently).
    pub fn parse(text: &str) -> std::result::Result<ExpectedHeads, String> {
        let mut heads = ExpectedHeads::default();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let Some((team, seq, hash)) =
                parse_head_line(raw).map_err(|why| format!("line {line}: {why}"))?
            else {
                continue;
            };
            let recorded = heads
                .by_team
                .entry(team)
                .or_default()
                .entry(seq)
                .or_default();
            if !recorded.iter().any(|r| r.hash == hash) {
                recorded.push(RecordedHead { hash, line });
            }
        }
        Ok(heads)
    }

    /// How many distinct heads were read.
    pub fn len(&self) -> usize {
        self.by_team
            .values()
            .flat_map(|seqs| seqs.values())
            .map(Vec::len)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_team.is_empty()
    }

    pub(crate) fn teams(&self) -> impl Iterator<Item = TeamId> + '_ {
        self.by_team.keys().copied()
    }

    pub(crate) fn of(&self, team_id: TeamId) -> Option<&BTreeMap<i64, Vec<RecordedHead>>> {
        self.by_team.get(&team_id)
    }
}

/// One line of an expected-heads file: a head, nothing (not a head line), or why not.
fn parse_head_line(raw: &str) -> std::result::Result<Option<(TeamId, i64, String)>, String> {
    let text = raw.trim();
    if let Some(at) = text.find(HEAD_LINE_PREFIX) {
        let mut words = text[at + HEAD_LINE_PREFIX.len()..].split_whitespace();
        let team = words.next().and_then(|w| w.parse::<i64>().ok());
        let entry = words.next();
        let seq = words.next().and_then(|w| w.parse::<i64>().ok());
        let hash_word = words.next();
        // In a JSON log the hash is followed by the closing quote of the message.
        let hash = words.next().map(|w| {
            w.chars()
                .take_while(char::is_ascii_hexdigit)
                .collect::<String>()
        });
        return match (team, entry, seq, hash_word, hash) {
            (Some(team), Some("entry"), Some(seq), Some("hash"), Some(hash)) => {
                checked(team, seq, &hash).map(Some)
            }
            _ => Err(format!(
                "it reads as a head (\"{HEAD_LINE_PREFIX}…\") but not as \
                 \"{HEAD_LINE_PREFIX}T entry S hash H\""
            )),
        };
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        [team, seq, hash] => match (team.parse::<i64>(), seq.parse::<i64>()) {
            (Ok(team), Ok(seq)) => checked(team, seq, hash).map(Some),
            _ => Ok(None),
        },
        _ => Ok(None),
    }
}

/// A head's parts, checked: a team number, an entry number, a SHA-256-sized lowercase hex.
fn checked(team: i64, seq: i64, hash: &str) -> std::result::Result<(TeamId, i64, String), String> {
    if team < 1 {
        return Err(format!("{team} is not a team number"));
    }
    if seq < 0 {
        return Err(format!("{seq} is not an entry number"));
    }
    let hex_ok = hash.len() == 64
        && hash
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    if !hex_ok {
        return Err("the hash is not 64 lowercase hexadecimal digits".to_string());
    }
    Ok((TeamId::new(team), seq, hash.to_string()))
}

/// Walks one team's chain in seq order: pure, one row at a time.
pub(crate) struct ChainWalk<'a> {
    team_id: TeamId,
    pub(crate) last_seq: i64,
    pub(crate) last_hash: String,
    /// A keyed entry was seen: every later one must be keyed too.
    keyed: bool,
    /// The team's sealed entries from before the key: the last one's number and hash.
    pub(crate) old_entries: Option<(i64, String)>,
    key: &'a AuditKey,
    recorded: Option<&'a BTreeMap<i64, Vec<RecordedHead>>>,
    /// Recorded heads found in place so far.
    pub(crate) recorded_found: u64,
}

impl<'a> ChainWalk<'a> {
    pub(crate) fn new(
        team_id: TeamId,
        key: &'a AuditKey,
        recorded: Option<&'a BTreeMap<i64, Vec<RecordedHead>>>,
    ) -> ChainWalk<'a> {
        ChainWalk {
            team_id,
            last_seq: 0,
            last_hash: GENESIS.to_string(),
            keyed: false,
            old_entries: None,
            key,
            recorded,
            recorded_found: 0,
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
    pub(crate) fn step(&mut self, row: &AuditRow) -> std::result::Result<(), ChainBreak> {
        let expected = self.last_seq + 1;
        if row.seq != expected {
            return Err(self.broken(expected, BreakKind::Missing));
        }
        if row.chain != CHAIN_HMAC {
            if self.keyed {
                return Err(self.broken(row.seq, BreakKind::Downgraded));
            }
            if row.seq > self.old_until() {
                return Err(self.broken(row.seq, BreakKind::NotKeyed));
            }
        }
        if row.content_hash(self.key).as_deref() != Some(row.hash.as_str()) {
            return Err(self.broken(row.seq, BreakKind::Edited));
        }
        if row.prev_hash != self.last_hash {
            return Err(self.broken(row.seq, BreakKind::NotLinked));
        }
        if let Some((until, hash)) = &self.old_entries {
            if row.seq == *until && row.hash != *hash {
                return Err(self.broken(row.seq, BreakKind::OldEntriesChanged));
            }
        }
        for recorded in self
            .recorded
            .and_then(|r| r.get(&row.seq))
            .into_iter()
            .flatten()
        {
            if recorded.hash != row.hash {
                let line = recorded.line;
                return Err(self.broken(row.seq, BreakKind::NotAsRecorded { line }));
            }
            self.recorded_found += 1;
        }
        self.keyed |= row.chain == CHAIN_HMAC;
        self.last_seq = row.seq;
        self.last_hash = row.hash.clone();
        Ok(())
    }

    /// The number of the team's last sealed entry from before the key (0: none).
    fn old_until(&self) -> i64 {
        self.old_entries.as_ref().map_or(0, |(until, _)| *until)
    }

    /// Compares the end of the walk with the head the appends kept (`exists`: the team is in
    /// `teams`) and with the heads recorded earlier.
    pub(crate) fn finish(
        &mut self,
        head: Option<(i64, String)>,
        exists: bool,
    ) -> std::result::Result<(), ChainBreak> {
        match head {
            None if self.last_seq > 0 => {
                return Err(self.broken(self.last_seq, BreakKind::HeadRemoved));
            }
            None if exists => return Err(self.broken(0, BreakKind::TrailErased)),
            None => {}
            Some((head_seq, _)) if head_seq > self.last_seq => {
                return Err(self.broken(
                    head_seq,
                    BreakKind::TailRemoved {
                        last_found: self.last_seq,
                    },
                ));
            }
            Some((head_seq, head_hash))
                if head_seq < self.last_seq || head_hash != self.last_hash =>
            {
                return Err(self.broken(self.last_seq, BreakKind::HeadMismatch));
            }
            Some(_) => {}
        }
        if self.old_until() > self.last_seq {
            return Err(self.broken(
                self.old_until(),
                BreakKind::TailRemoved {
                    last_found: self.last_seq,
                },
            ));
        }
        let furthest = self
            .recorded
            .and_then(|r| r.last_key_value())
            .map(|(seq, _)| *seq);
        if let Some(seq) = furthest.filter(|seq| *seq > self.last_seq) {
            return Err(self.broken(
                seq,
                BreakKind::ShorterThanRecorded {
                    last_found: self.last_seq,
                },
            ));
        }
        // A recorded empty trail (entry 0) holds when the trail is there at all.
        if let Some(at_zero) = self.recorded.and_then(|r| r.get(&0)) {
            self.recorded_found += at_zero.len() as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key of the fixed test vector: the bytes 0, 1, … 31.
    fn key() -> AuditKey {
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8;
        }
        AuditKey::from_bytes(bytes)
    }

    fn row_of(chain: i32, seq: i64, prev_hash: &str, actor: &str) -> AuditRow {
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
            chain,
        };
        AuditRow {
            hash: r.content_hash(&key()).expect("a known seal"),
            ..r
        }
    }

    fn row(seq: i64, prev_hash: &str, actor: &str) -> AuditRow {
        row_of(CHAIN_HMAC, seq, prev_hash, actor)
    }

    /// `unkeyed` entries sealed the old way, then `keyed` sealed with the key, linked.
    fn mixed_chain(unkeyed: i64, keyed: i64) -> Vec<AuditRow> {
        let mut rows: Vec<AuditRow> = Vec::new();
        for seq in 1..=unkeyed + keyed {
            let prev = rows.last().map_or(GENESIS.to_string(), |r| r.hash.clone());
            let chain = if seq <= unkeyed {
                CHAIN_SHA256
            } else {
                CHAIN_HMAC
            };
            rows.push(row_of(chain, seq, &prev, "me@example.com"));
        }
        rows
    }

    fn chain(n: i64) -> Vec<AuditRow> {
        mixed_chain(0, n)
    }

    fn walk_with(
        rows: &[AuditRow],
        head: Option<(i64, String)>,
        recorded: &ExpectedHeads,
    ) -> std::result::Result<(), ChainBreak> {
        walk_full(rows, head, recorded, None)
    }

    /// `old_entries`: the team's sealed entries from before the key (see `HeadRow`).
    fn walk_full(
        rows: &[AuditRow],
        head: Option<(i64, String)>,
        recorded: &ExpectedHeads,
        old_entries: Option<(i64, String)>,
    ) -> std::result::Result<(), ChainBreak> {
        let key = key();
        let mut w = ChainWalk::new(TeamId::BUILT_IN, &key, recorded.of(TeamId::BUILT_IN));
        w.old_entries = old_entries;
        for r in rows {
            w.step(r)?;
        }
        w.finish(head, true)
    }

    fn walk(rows: &[AuditRow], head: Option<(i64, String)>) -> std::result::Result<(), ChainBreak> {
        walk_with(rows, head, &ExpectedHeads::default())
    }

    /// As the migration notes them: the last unkeyed entry of a genuine trail.
    fn old_of(rows: &[AuditRow]) -> Option<(i64, String)> {
        rows.iter()
            .rfind(|r| r.chain == CHAIN_SHA256)
            .map(|r| (r.seq, r.hash.clone()))
    }

    fn walk_old(
        rows: &[AuditRow],
        head: Option<(i64, String)>,
        old: Option<(i64, String)>,
    ) -> std::result::Result<(), ChainBreak> {
        walk_full(rows, head, &ExpectedHeads::default(), old)
    }

    fn head_of(rows: &[AuditRow]) -> Option<(i64, String)> {
        Some(
            rows.last()
                .map_or((0, GENESIS.to_string()), |r| (r.seq, r.hash.clone())),
        )
    }

    /// A fixed entry and its seals, computed outside this code so a change of format fails:
    ///
    /// python3 -c 'import hmac,hashlib,json; f=["1","1","2026-11-30T12:00:00.000000Z",
    ///   "me@example.com","run_paused","job-1","{\"n\":1}","0"*64];
    ///   v2=json.dumps(["offboard-audit-v2"]+f,separators=(",",":"));
    ///   v1=json.dumps(["offboard-audit-v1"]+f,separators=(",",":"));
    ///   print(hmac.new(bytes(range(32)),v2.encode(),hashlib.sha256).hexdigest());
    ///   print(hashlib.sha256(v1.encode()).hexdigest())'
    #[test]
    fn the_seals_match_a_test_vector_computed_elsewhere() {
        let entry = |chain| AuditRow {
            team_id: TeamId::BUILT_IN,
            seq: 1,
            at: "2026-11-30T12:00:00.000000Z".into(),
            actor: "me@example.com".into(),
            action: "run_paused".into(),
            target: "job-1".into(),
            details: r#"{"n":1}"#.into(),
            prev_hash: GENESIS.into(),
            hash: String::new(),
            chain,
        };
        assert_eq!(
            entry(CHAIN_HMAC).content_hash(&key()).as_deref(),
            Some("8ad54c13ff2e7107999c25b22999a80a720498b97118b566360f54d7e2baaadc")
        );
        assert_eq!(
            entry(CHAIN_SHA256).content_hash(&key()).as_deref(),
            Some("f928ce94c91753d0730e373195f17e72ef93bc7f7d81b94f6ab2426b03e0f650")
        );
        // Another key gives another seal; the old seal needs none.
        let other = AuditKey::from_bytes([7; 32]);
        assert_ne!(
            entry(CHAIN_HMAC).content_hash(&other),
            entry(CHAIN_HMAC).content_hash(&key())
        );
        assert_eq!(
            entry(CHAIN_SHA256).content_hash(&other),
            entry(CHAIN_SHA256).content_hash(&key())
        );
        // A seal kind no Offboard wrote seals nothing.
        assert_eq!(entry(0).content_hash(&key()), None);
        assert_eq!(entry(3).content_hash(&key()), None);
    }

    #[test]
    fn the_hash_covers_every_field_and_is_lowercase_hex() {
        let base = row(1, GENESIS, "a");
        assert_eq!(base.hash.len(), 64);
        assert!(base
            .hash
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        // One change to each field in turn.
        let changes: [fn(&mut AuditRow); 9] = [
            |r| r.seq = 2,
            |r| r.team_id = TeamId::new(2),
            |r| r.at = "2026-11-30T12:00:00.000001Z".into(),
            |r| r.actor = "b".into(),
            |r| r.action = "run_resumed".into(),
            |r| r.target = "job-2".into(),
            |r| r.details = "{\"n\":1}".into(),
            |r| r.prev_hash = "1".repeat(64),
            |r| r.chain = CHAIN_SHA256,
        ];
        for change in changes {
            let mut changed = row(1, GENESIS, "a");
            change(&mut changed);
            assert_ne!(changed.content_hash(&key()), Some(base.hash.clone()));
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
        assert_ne!(left.content_hash(&key()), right.content_hash(&key()));
    }

    #[test]
    fn an_intact_chain_passes_and_an_empty_one_too() {
        let rows = chain(5);
        assert_eq!(walk(&rows, head_of(&rows)), Ok(()));
        assert_eq!(walk(&[], head_of(&[])), Ok(()));
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

        // Removed, and the later numbers shifted down to hide the gap: the seals say so.
        let mut renumbered = chain(5);
        renumbered.remove(1);
        for r in renumbered.iter_mut().skip(1) {
            r.seq -= 1;
        }
        let e = walk(&renumbered, head.clone()).unwrap_err();
        assert_eq!((e.seq, e.why), (2, BreakKind::Edited));

        // Replaced whole, with a seal made with the key for its own content: the next one
        // notices (only a key holder can do even this much).
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

    #[test]
    fn without_the_key_an_edit_cannot_be_hidden_by_recomputing_the_chain() {
        // Entry 3 edited, and every seal from there on (or from entry 1) recomputed as anyone
        // can: with SHA-256 (the old seal, marked as such) or with a key of their own.
        for (from, chain_kind, forger_key, expected) in [
            (2, CHAIN_SHA256, key(), BreakKind::Downgraded),
            (0, CHAIN_SHA256, key(), BreakKind::NotKeyed),
            (
                2,
                CHAIN_HMAC,
                AuditKey::from_bytes([9; 32]),
                BreakKind::Edited,
            ),
        ] {
            let mut rows = chain(5);
            rows[2].actor = "someone else".into();
            for i in from..rows.len() {
                rows[i].prev_hash = if i == 0 {
                    GENESIS.to_string()
                } else {
                    rows[i - 1].hash.clone()
                };
                rows[i].chain = chain_kind;
                rows[i].hash = rows[i].content_hash(&forger_key).unwrap();
            }
            let head = head_of(&rows);
            let e = walk(&rows, head).unwrap_err();
            let seq = if from == 0 { 1 } else { 3 };
            assert_eq!((e.seq, e.why.clone()), (seq, expected), "{e}");
        }
    }

    #[test]
    fn old_unkeyed_entries_verify_and_the_first_keyed_one_links_to_them() {
        let rows = mixed_chain(3, 2);
        assert_eq!(rows[3].chain, CHAIN_HMAC);
        assert_eq!(rows[3].prev_hash, rows[2].hash);
        assert_eq!(walk_old(&rows, head_of(&rows), old_of(&rows)), Ok(()));
        // A trail written before the key verifies as it did, once its old entries are sealed.
        let old = mixed_chain(4, 0);
        assert_eq!(walk_old(&old, head_of(&old), old_of(&old)), Ok(()));
        // Unsealed (or its seal removed), the strict rule holds: no unkeyed entry at all.
        let e = walk(&old, head_of(&old)).unwrap_err();
        assert_eq!((e.seq, e.why.clone()), (1, BreakKind::NotKeyed));
        assert!(e.to_string().contains("start it once"), "{e}");

        // An old entry rewritten with the SHA-256 of every later old entry recomputed: the
        // sealed hash of the last old entry says so (and the keyed entry after it too).
        let genuine = old_of(&rows);
        let mut rewritten = mixed_chain(3, 2);
        rewritten[1].actor = "forger".into();
        rewritten[1].hash = rewritten[1].content_hash(&key()).unwrap();
        rewritten[2].prev_hash = rewritten[1].hash.clone();
        rewritten[2].hash = rewritten[2].content_hash(&key()).unwrap();
        let e = walk_old(&rewritten, head_of(&rewritten), genuine.clone()).unwrap_err();
        assert_eq!((e.seq, e.why), (3, BreakKind::OldEntriesChanged));

        // Old entries cut from the end (the keyed ones too): shorter than sealed.
        let cut = &rows[..2];
        let e = walk_old(cut, head_of(cut), genuine).unwrap_err();
        assert_eq!(
            (e.seq, e.why),
            (3, BreakKind::TailRemoved { last_found: 2 })
        );
    }

    #[test]
    fn old_entries_count_only_under_a_seal_made_with_the_key() {
        let team = TeamId::BUILT_IN;
        let hash = "ab".repeat(32);
        let head = |until: i64, seal: String| HeadRow {
            last_seq: until,
            last_hash: hash.clone(),
            legacy_until: until,
            legacy_hash: hash.clone(),
            legacy_seal: seal,
        };
        let sealed = head(3, old_entries_seal(&key(), team, 3, &hash));
        assert_eq!(
            sealed.sealed_old_entries(team, &key()),
            Some((3, hash.clone()))
        );
        // Another key, another team, a number raised to cover more, no seal: none.
        let other = AuditKey::from_bytes([1; 32]);
        assert_eq!(sealed.sealed_old_entries(team, &other), None);
        assert_eq!(sealed.sealed_old_entries(TeamId::new(2), &key()), None);
        let raised = HeadRow {
            legacy_until: 9,
            ..head(3, old_entries_seal(&key(), team, 3, &hash))
        };
        assert_eq!(raised.sealed_old_entries(team, &key()), None);
        assert_eq!(
            head(3, String::new()).sealed_old_entries(team, &key()),
            None
        );
        assert_eq!(
            head(0, String::new()).sealed_old_entries(team, &key()),
            None
        );
    }

    #[test]
    fn an_unkeyed_entry_after_a_keyed_one_is_a_downgrade() {
        let mut rows = mixed_chain(1, 3);
        let last = rows.len() - 1;
        rows[last] = row_of(CHAIN_SHA256, 4, &rows[last - 1].hash, "forger");
        let e = walk_old(&rows, head_of(&rows), Some((1, rows[0].hash.clone()))).unwrap_err();
        assert_eq!((e.seq, e.why.clone()), (4, BreakKind::Downgraded));
        assert!(e.to_string().contains("without the key"), "{e}");
    }

    #[test]
    fn a_missing_head_or_an_erased_trail_is_named() {
        let rows = chain(3);
        let e = walk(&rows, None).unwrap_err();
        assert_eq!((e.seq, e.why.clone()), (3, BreakKind::HeadRemoved));
        assert!(e.to_string().contains("no head"), "{e}");

        let e = walk(&[], None).unwrap_err();
        assert_eq!((e.seq, e.why.clone()), (0, BreakKind::TrailErased));
        assert!(e.to_string().contains("team 1 exists"), "{e}");

        // A team that is not in `teams` and has nothing: nothing to say.
        let key = key();
        let mut w = ChainWalk::new(TeamId::new(5), &key, None);
        assert_eq!(w.finish(None, false), Ok(()));
    }

    fn recorded(lines: &[(i64, &str)]) -> ExpectedHeads {
        let text: String = lines
            .iter()
            .map(|(seq, hash)| format!("1 {seq} {hash}\n"))
            .collect();
        ExpectedHeads::parse(&text).expect("parse")
    }

    #[test]
    fn heads_recorded_earlier_catch_a_trail_cut_back() {
        let full = chain(6);
        let anchors = recorded(&[(4, &full[3].hash), (6, &full[5].hash)]);
        let key = key();
        let mut w = ChainWalk::new(TeamId::BUILT_IN, &key, anchors.of(TeamId::BUILT_IN));
        for r in &full {
            w.step(r).unwrap();
        }
        assert_eq!(w.finish(head_of(&full), true), Ok(()));
        assert_eq!(w.recorded_found, 2);

        // Entries 5 and 6 deleted and the head moved back to 4: intact in itself…
        let cut = &full[..4];
        assert_eq!(walk(cut, head_of(cut)), Ok(()));
        // …but shorter than recorded.
        let e = walk_with(cut, head_of(cut), &anchors).unwrap_err();
        assert_eq!(
            (e.seq, e.why.clone()),
            (6, BreakKind::ShorterThanRecorded { last_found: 4 })
        );
        assert!(
            e.to_string().contains("team 1's trail ends at entry 4"),
            "{e}"
        );

        // Erased whole and an empty head written: shorter than recorded too.
        let e = walk_with(&[], head_of(&[]), &anchors).unwrap_err();
        assert_eq!(e.why, BreakKind::ShorterThanRecorded { last_found: 0 });

        // Cut back and then written on (as a key holder could): entry 6 is another entry.
        let mut rewritten = full[..5].to_vec();
        rewritten.push(row(6, &full[4].hash, "someone else"));
        let e = walk_with(&rewritten, head_of(&rewritten), &anchors).unwrap_err();
        assert_eq!((e.seq, e.why), (6, BreakKind::NotAsRecorded { line: 2 }));
    }

    #[test]
    fn a_file_with_two_hashes_for_one_entry_can_never_pass() {
        let full = chain(3);
        let anchors = recorded(&[(3, &full[2].hash), (3, &"a".repeat(64))]);
        assert_eq!(anchors.len(), 2);
        let e = walk_with(&full, head_of(&full), &anchors).unwrap_err();
        assert_eq!((e.seq, e.why), (3, BreakKind::NotAsRecorded { line: 2 }));
    }

    #[test]
    fn expected_heads_are_read_from_logs_plain_lines_and_verify_output() {
        let h = "5f".repeat(32);
        let text = format!(
            "2026-12-07T13:00:00.123Z  INFO server::service::audit: {line1}\n\
             2026-12-07T13:00:00.124Z  INFO server::http: Offboard console listening\n\
             {{\"timestamp\":\"…\",\"level\":\"INFO\",\"fields\":{{\"message\":\"{line2}\"}},\"target\":\"x\"}}\n\
             # noted by hand\n\
             \n\
             3 7 {h}\n\
             {line3}\n\
             12 entries, chain intact\n",
            line1 = head_line(TeamId::new(1), 4, &h),
            line2 = head_line(TeamId::new(2), 9, &h),
            line3 = head_line(TeamId::new(1), 4, &h),
        );
        let heads = ExpectedHeads::parse(&text).expect("parse");
        // Team 1 entry 4 twice with the same hash counts once.
        assert_eq!(heads.len(), 3);
        let teams: Vec<TeamId> = heads.teams().collect();
        assert_eq!(teams, [TeamId::new(1), TeamId::new(2), TeamId::new(3)]);
        assert_eq!(
            heads.of(TeamId::new(2)).and_then(|t| t.get(&9)),
            Some(&vec![RecordedHead {
                hash: h.clone(),
                line: 3
            }])
        );
        assert!(ExpectedHeads::parse("").expect("empty").is_empty());
    }

    #[test]
    fn a_damaged_head_line_is_refused_with_its_line_number() {
        let h = "ab".repeat(32);
        for (bad, why) in [
            (
                format!("audit head: team 1 entry 4 hash {}", &h[..63]),
                "64 lowercase",
            ),
            (
                format!("audit head: team 1 entry 4 hash {}", h.to_uppercase()),
                "64 lowercase",
            ),
            (
                format!("audit head: team 1 entry 4 hash {h}0"),
                "64 lowercase",
            ),
            (
                format!("audit head: team x entry 4 hash {h}"),
                "T entry S hash H",
            ),
            ("audit head: team 1 entry 4".to_string(), "T entry S hash H"),
            (format!("audit head: team 0 entry 4 hash {h}"), "not a team"),
            (format!("1 -4 {h}"), "not an entry"),
            ("1 4 not-a-hash".to_string(), "64 lowercase"),
        ] {
            let err = ExpectedHeads::parse(&format!("# first\n{bad}\n")).unwrap_err();
            assert!(err.starts_with("line 2: "), "{bad}: {err}");
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn the_head_line_reads_back() {
        let h = "0123456789abcdef".repeat(4);
        let line = head_line(TeamId::new(42), 17, &h);
        assert_eq!(line, format!("audit head: team 42 entry 17 hash {h}"));
        assert_eq!(parse_head_line(&line), Ok(Some((TeamId::new(42), 17, h))));
    }
}
